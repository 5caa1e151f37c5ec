//! Python objects <-> JSON through the interpreter's own `json` module (C-accelerated, no extra
//! dependency, and exactly the types a user expects back: dict, list, str, int, float, bool,
//! None).
//!
//! One `JSONEncoder` and one `JSONDecoder` per interpreter, made once: `json.dumps` with keyword
//! arguments builds a new encoder on every call, and `json.loads` of bytes first sniffs their
//! encoding; together that was about a microsecond of every call.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString};

static ENCODE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static DECODE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode`.
fn encoder(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    ENCODE
        .get_or_try_init(py, || {
            let kwargs = PyDict::new(py);
            kwargs.set_item("allow_nan", false)?;
            kwargs.set_item("ensure_ascii", false)?;
            kwargs.set_item("separators", (",", ":"))?;
            let encoder = py
                .import("json")?
                .getattr("JSONEncoder")?
                .call((), Some(&kwargs))?;
            Ok::<_, PyErr>(encoder.getattr("encode")?.unbind())
        })
        .map(|f| f.bind(py))
}

/// `JSONDecoder().decode`, what `json.loads` calls.
fn decoder(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    DECODE
        .get_or_try_init(py, || {
            let decoder = py.import("json")?.getattr("JSONDecoder")?.call0()?;
            Ok::<_, PyErr>(decoder.getattr("decode")?.unbind())
        })
        .map(|f| f.bind(py))
}

/// `value` as compact JSON text. Raises `TypeError` for what JSON cannot hold (sets, bytes,
/// objects) and `ValueError` for NaN, infinities and circular references, as `json.dumps` does.
pub(crate) fn dumps(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<String> {
    encoder(py)?.call1((value,))?.extract()
}

/// `json.loads(bytes)` for UTF-8 JSON (what the router hands back always is).
pub(crate) fn loads<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        pyo3::exceptions::PyValueError::new_err(format!("JSON text is not UTF-8: {e}"))
    })?;
    decoder(py)?.call1((PyString::new(py, text),))
}
