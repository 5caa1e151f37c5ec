//! `Router.stats()`: core's per-provider snapshot as plain dicts (the `ProviderStats` and
//! `BudgetStats` TypedDicts of the stubs), one per provider in config order.
//!
//! Times are seconds from now (`open_until_s`, `cooldown_until_s`, `resets_in_s`), so a caller
//! needs no clock of the router's; latencies are milliseconds. Names only: no URL, header or key.

use f3dx_router_core::state::BudgetSnapshot;
use f3dx_router_core::{BreakerStats, ProviderStats};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// The list `Router.stats()` returns.
pub(crate) fn to_python<'py>(
    py: Python<'py>,
    stats: &[ProviderStats],
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for s in stats {
        list.append(provider(py, s)?)?;
    }
    Ok(list)
}

fn provider<'py>(py: Python<'py>, s: &ProviderStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &*s.name)?;
    d.set_item("requests", s.requests)?;
    d.set_item("successes", s.successes)?;
    d.set_item("soft_failures", s.soft_failures)?;
    d.set_item("hard_failures", s.hard_failures)?;
    d.set_item("timeouts", s.timeouts)?;
    d.set_item("in_flight", s.in_flight)?;
    d.set_item("latency_ewma_ms", s.latency_ewma_ms)?;
    d.set_item("latency_p50_ms", s.latency_p50_ms)?;
    d.set_item("latency_p99_ms", s.latency_p99_ms)?;
    d.set_item("breaker", s.breaker.name())?;
    let open_until = match s.breaker {
        BreakerStats::Open { for_ } => Some(for_.as_secs_f64()),
        BreakerStats::Closed | BreakerStats::HalfOpen => None,
    };
    d.set_item("open_until_s", open_until)?;
    d.set_item(
        "cooldown_until_s",
        s.cooldown_until.map(|d| d.as_secs_f64()),
    )?;
    d.set_item("budget", budget(py, &s.budget)?)?;
    Ok(d)
}

/// None when neither the config nor the provider's headers limit it.
fn budget<'py>(py: Python<'py>, b: &BudgetSnapshot) -> PyResult<Option<Bound<'py, PyDict>>> {
    if b.requests_remaining.is_none() && b.tokens_remaining.is_none() && !b.learned {
        return Ok(None);
    }
    let d = PyDict::new(py);
    d.set_item("requests_remaining", b.requests_remaining)?;
    d.set_item("tokens_remaining", b.tokens_remaining)?;
    d.set_item("resets_in_s", b.resets_in.map(|d| d.as_secs_f64()))?;
    d.set_item("learned", b.learned)?;
    Ok(Some(d))
}
