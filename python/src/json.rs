//! Python objects <-> JSON through the interpreter's own `json` module (C-accelerated, no extra
//! dependency, and exactly the types a user expects back: dict, list, str, int, float, bool,
//! None).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict};

static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn json_fn<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyAny>> {
    cell.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import("json")?.getattr(name)?.unbind())
    })
    .map(|f| f.bind(py))
}

/// `json.dumps(value, allow_nan=False)` as UTF-8 bytes. Raises `TypeError` for what JSON cannot
/// hold (sets, bytes, objects) and `ValueError` for NaN and infinities.
pub(crate) fn dumps(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<String> {
    let kwargs = PyDict::new(py);
    kwargs.set_item("allow_nan", false)?;
    kwargs.set_item("ensure_ascii", false)?;
    json_fn(py, &DUMPS, "dumps")?
        .call((value,), Some(&kwargs))?
        .extract()
}

/// `json.loads(bytes)`.
pub(crate) fn loads<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    json_fn(py, &LOADS, "loads")?.call1((PyBytes::new(py, bytes),))
}
