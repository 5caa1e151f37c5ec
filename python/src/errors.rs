//! The exception hierarchy, and the one place a Rust error becomes a Python exception.
//!
//! ```text
//! RouterError(Exception)
//! ├── RouterConfigError(RouterError, ValueError)    .field
//! ├── InvalidRequestError(RouterError, ValueError)  .field
//! ├── HardFailureError                              .provider .status .body .attempts
//! ├── AllProvidersFailedError                       .attempts
//! ├── DeadlineExceededError                         .deadline_ms .attempts
//! ├── RateLimitedError                              .retry_after (seconds) .attempts
//! ├── StreamInterruptedError                        .provider .reason .attempts
//! └── UnsupportedError                              .provider .field .attempts
//! ```
//!
//! The single-base classes are `create_exception!` types. The two that are also `ValueError`s
//! are made once per interpreter by calling `type(name, (RouterError, ValueError), ns)`:
//! `create_exception!` takes one base.
//!
//! Every message and text attribute passes through core's [`Scrubber::scrub`], which cuts out
//! every secret the router was configured with (a provider may echo a key in its error body; the
//! machine already scrubbed what it completed, this covers the binding's own texts too).

use crate::route::Attempt;
use f3dx_router_core::scrub::Scrubber;
use f3dx_router_core::{ConfigError, RequestError, RouteError};
use f3dx_router_tokio::RouterBuildError;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

pyo3::create_exception!(
    f3dx_router,
    RouterError,
    PyException,
    "Base class of every error f3dx_router raises."
);
pyo3::create_exception!(
    f3dx_router,
    HardFailureError,
    RouterError,
    "A provider rejected the request with a non-retryable 4xx; it was sent nowhere else."
);
pyo3::create_exception!(
    f3dx_router,
    AllProvidersFailedError,
    RouterError,
    "Every provider that could be tried failed softly (408, 429, 5xx, transport, timeout)."
);
pyo3::create_exception!(
    f3dx_router,
    DeadlineExceededError,
    RouterError,
    "The request deadline (deadline_ms) passed; every attempt was cancelled."
);
pyo3::create_exception!(
    f3dx_router,
    RateLimitedError,
    RouterError,
    "Every provider is cooling down after a Retry-After; the earliest is free too late."
);
pyo3::create_exception!(
    f3dx_router,
    StreamInterruptedError,
    RouterError,
    "A stream broke after its first content chunk; the chunks already yielded are all there is."
);
pyo3::create_exception!(
    f3dx_router,
    UnsupportedError,
    RouterError,
    "No provider can express a field of the request in its wire shape (e.g. n > 1 on Anthropic)."
);

static CONFIG_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static REQUEST_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `type(name, (RouterError, ValueError), {...})`, made once.
fn value_error_type<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
    doc: &str,
) -> PyResult<&'py Bound<'py, PyType>> {
    cell.get_or_try_init(py, || {
        let bases = PyTuple::new(
            py,
            [py.get_type::<RouterError>(), py.get_type::<PyValueError>()],
        )?;
        let ns = PyDict::new(py);
        ns.set_item("__module__", "f3dx_router")?;
        ns.set_item("__doc__", doc)?;
        let ty = py.get_type::<PyType>().call1((name, bases, ns))?;
        Ok::<_, PyErr>(ty.cast_into::<PyType>()?.unbind())
    })
    .map(|ty| ty.bind(py))
}

pub(crate) fn config_error_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    value_error_type(
        py,
        &CONFIG_ERROR,
        "RouterConfigError",
        "The router configuration is invalid; `field` names the offending field \
         (e.g. `providers[1].base_url`).",
    )
}

pub(crate) fn request_error_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    value_error_type(
        py,
        &REQUEST_ERROR,
        "InvalidRequestError",
        "The request is not an OpenAI chat request; `field` names what is wrong. Nothing was sent.",
    )
}

pub(crate) fn register(py: Python<'_>, m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("RouterError", py.get_type::<RouterError>())?;
    m.add("RouterConfigError", config_error_type(py)?)?;
    m.add("InvalidRequestError", request_error_type(py)?)?;
    m.add("HardFailureError", py.get_type::<HardFailureError>())?;
    m.add(
        "AllProvidersFailedError",
        py.get_type::<AllProvidersFailedError>(),
    )?;
    m.add(
        "DeadlineExceededError",
        py.get_type::<DeadlineExceededError>(),
    )?;
    m.add("RateLimitedError", py.get_type::<RateLimitedError>())?;
    m.add(
        "StreamInterruptedError",
        py.get_type::<StreamInterruptedError>(),
    )?;
    m.add("UnsupportedError", py.get_type::<UnsupportedError>())?;
    Ok(())
}

/// The secrets a router was configured with (API keys, credential headers, URL credentials),
/// cut out of every text it raises: core's one scrubber, whole occurrences only.
pub(crate) type Secrets = Scrubber;

/// Instantiates `ty(message)` and sets `attrs` on the instance.
fn raise(
    ty: &Bound<'_, PyType>,
    message: String,
    attrs: Vec<(&'static str, Bound<'_, PyAny>)>,
) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let instance = ty.call1((message,))?;
        for (name, value) in attrs {
            instance.setattr(name, value)?;
        }
        Ok(PyErr::from_value(instance))
    };
    build().unwrap_or_else(|e| e)
}

pub(crate) fn config_error(py: Python<'_>, error: &ConfigError, secrets: &Secrets) -> PyErr {
    match config_error_type(py) {
        Ok(ty) => raise(
            ty,
            secrets.scrub(&error.to_string()).into_owned(),
            vec![(
                "field",
                secrets
                    .scrub(error.field())
                    .into_pyobject(py)
                    .expect("str")
                    .into_any(),
            )],
        ),
        Err(e) => e,
    }
}

/// A config error about a keyword argument of the binding itself (not core's JSON).
pub(crate) fn config_field_error(py: Python<'_>, field: &str, problem: &str) -> PyErr {
    match config_error_type(py) {
        Ok(ty) => raise(
            ty,
            format!("invalid router config at `{field}`: {problem}"),
            vec![("field", field.into_pyobject(py).expect("str").into_any())],
        ),
        Err(e) => e,
    }
}

pub(crate) fn build_error(py: Python<'_>, error: &RouterBuildError, secrets: &Secrets) -> PyErr {
    match error {
        RouterBuildError::Config(config) => config_error(py, config, secrets),
        RouterBuildError::Certificate(message) => {
            config_field_error(py, "root_certificates", &secrets.scrub(message))
        }
        other => RouterError::new_err(secrets.scrub(&other.to_string()).into_owned()),
    }
}

pub(crate) fn request_error(py: Python<'_>, error: &RequestError, secrets: &Secrets) -> PyErr {
    let field = match error {
        RequestError::Field { field, .. } => Some(field.clone()),
        _ => None,
    };
    match request_error_type(py) {
        Ok(ty) => raise(
            ty,
            secrets.scrub(&error.to_string()).into_owned(),
            vec![(
                "field",
                field.into_pyobject(py).expect("Option<String>").into_any(),
            )],
        ),
        Err(e) => e,
    }
}

fn attempts_list<'py>(
    py: Python<'py>,
    error: &RouteError,
    secrets: &Secrets,
) -> PyResult<Bound<'py, PyAny>> {
    let attempts: Vec<Attempt> = error
        .attempts()
        .iter()
        .map(|a| Attempt::from_record(a, secrets))
        .collect();
    Ok(attempts.into_pyobject(py)?.into_any())
}

/// The Python exception for a routing failure.
pub(crate) fn route_error(py: Python<'_>, error: &RouteError, secrets: &Secrets) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let message = secrets.scrub(&error.to_string()).into_owned();
        let mut attrs = vec![("attempts", attempts_list(py, error, secrets)?)];
        let str_obj = |s: &str| -> PyResult<Bound<'_, PyAny>> {
            Ok(secrets.scrub(s).into_pyobject(py)?.into_any())
        };
        let ty = match error {
            RouteError::HardFailure {
                provider,
                status,
                body,
                ..
            } => {
                attrs.push(("provider", str_obj(provider)?));
                attrs.push(("status", status.into_pyobject(py)?.into_any()));
                attrs.push(("body", str_obj(&String::from_utf8_lossy(body))?));
                py.get_type::<HardFailureError>()
            }
            RouteError::AllProvidersFailed { .. } => py.get_type::<AllProvidersFailedError>(),
            RouteError::DeadlineExceeded { deadline, .. } => {
                let ms = deadline.as_secs_f64() * 1000.0;
                attrs.push(("deadline_ms", ms.into_pyobject(py)?.into_any()));
                py.get_type::<DeadlineExceededError>()
            }
            RouteError::RateLimited { retry_after, .. } => {
                let secs = retry_after.as_secs_f64();
                attrs.push(("retry_after", secs.into_pyobject(py)?.into_any()));
                py.get_type::<RateLimitedError>()
            }
            RouteError::StreamInterrupted {
                provider, reason, ..
            } => {
                attrs.push(("provider", str_obj(provider)?));
                attrs.push(("reason", str_obj(reason)?));
                py.get_type::<StreamInterruptedError>()
            }
            RouteError::Unsupported {
                provider, field, ..
            } => {
                attrs.push(("provider", str_obj(provider)?));
                attrs.push(("field", str_obj(field)?));
                py.get_type::<UnsupportedError>()
            }
            // A schema in `response_format` / `tools` that does not compile: nothing was sent.
            RouteError::InvalidRequest { field, .. } => {
                attrs.push(("field", str_obj(field)?));
                request_error_type(py)?.clone()
            }
            // `Cancelled` (and any variant a newer core adds) is the base class.
            _ => py.get_type::<RouterError>(),
        };
        Ok(raise(&ty, message, attrs))
    };
    build().unwrap_or_else(|e| e)
}
