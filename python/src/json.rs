//! Python objects <-> JSON through the interpreter's own `json` module (C-accelerated, no extra
//! dependency, and exactly the types a user expects back: dict, list, str, int, float, bool,
//! None).
//!
//! One `JSONEncoder` and one `JSONDecoder` per interpreter, made once: `json.dumps` with keyword
//! arguments builds a new encoder on every call, and `json.loads` of bytes first sniffs their
//! encoding; together that was about a microsecond of every call. And where the interpreter has
//! them, their C parts are called directly (`c_make_encoder`, `c_make_scanner`): `encode` and
//! `decode` are Python functions around them (frames, a closure, a whitespace regex), another
//! 1.4 µs of every call, GIL held. Each C part is checked against its Python path once, at
//! first use; if it is missing, or its signature or answer differs, the Python path is used.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

/// The interpreter's JSON machinery, made once.
struct Codec {
    /// `JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode`.
    encode: Py<PyAny>,
    /// `c_make_encoder` and its arguments after `markers`, for the same output.
    c_encoder: Option<(Py<PyAny>, Vec<Py<PyAny>>)>,
    /// `JSONDecoder().decode`, what `json.loads` calls.
    decode: Py<PyAny>,
    /// `c_make_scanner(JSONDecoder())`: `(text, index) -> (value, end)`.
    scanner: Option<Py<PyAny>>,
}

static CODEC: PyOnceLock<Codec> = PyOnceLock::new();

fn codec(py: Python<'_>) -> PyResult<&Codec> {
    CODEC.get_or_try_init(py, || {
        let json = py.import("json")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("allow_nan", false)?;
        kwargs.set_item("ensure_ascii", false)?;
        kwargs.set_item("separators", (",", ":"))?;
        let encoder = json.getattr("JSONEncoder")?.call((), Some(&kwargs))?;
        let decoder = json.getattr("JSONDecoder")?.call0()?;
        let mut codec = Codec {
            encode: encoder.getattr("encode")?.unbind(),
            c_encoder: None,
            decode: decoder.getattr("decode")?.unbind(),
            scanner: None,
        };
        let c_make_encoder = py.import("json.encoder")?.getattr("c_make_encoder")?;
        if !c_make_encoder.is_none() {
            let args = vec![
                encoder.getattr("default")?.unbind(),
                py.import("json.encoder")?
                    .getattr("encode_basestring")?
                    .unbind(),
                py.None(),
                ":".into_pyobject(py)?.into_any().unbind(),
                ",".into_pyobject(py)?.into_any().unbind(),
                false.into_pyobject(py)?.to_owned().into_any().unbind(),
                false.into_pyobject(py)?.to_owned().into_any().unbind(),
                false.into_pyobject(py)?.to_owned().into_any().unbind(),
            ];
            codec.c_encoder = Some((c_make_encoder.unbind(), args));
        }
        let c_make_scanner = py.import("json.scanner")?.getattr("c_make_scanner")?;
        if !c_make_scanner.is_none() {
            codec.scanner = Some(c_make_scanner.call1((decoder,))?.unbind());
        }
        codec.check(py);
        Ok::<_, PyErr>(codec)
    })
}

impl Codec {
    /// Drops a C part that fails or disagrees with its Python path on a probe.
    fn check(&mut self, py: Python<'_>) {
        const PROBE: &str = r#"{"a":[1,-2.5,"é\n",null,true,{}],"b":{"c":"d"}}"#;
        let Ok(expected) = self.decode.bind(py).call1((PROBE,)) else {
            return;
        };
        let scanned = self.scanner.as_ref().map(|_| self.fast_loads(py, PROBE));
        if !matches!(scanned, Some(Ok(Some(ref v))) if v.eq(&expected).unwrap_or(false)) {
            self.scanner = None;
        }
        let encoded = self.c_encoder.as_ref().map(|_| self.encoded(py, &expected));
        let slow = self.encode.bind(py).call1((&expected,));
        let agree = match (encoded, slow) {
            (Some(Ok(fast)), Ok(slow)) => fast.as_any().eq(&slow).unwrap_or(false),
            _ => false,
        };
        if !agree {
            self.c_encoder = None;
        }
    }

    /// `value` as JSON text: through `c_make_encoder` where it passed the check (a fresh
    /// encoder per call, so that its circular-reference markers never outlive one encoding),
    /// else through `encode`.
    fn encoded<'py>(
        &self,
        py: Python<'py>,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyString>> {
        let Some((make, rest)) = &self.c_encoder else {
            return self
                .encode
                .bind(py)
                .call1((value,))?
                .cast_into()
                .map_err(Into::into);
        };
        let mut args = Vec::with_capacity(rest.len() + 1);
        args.push(PyDict::new(py).into_any());
        args.extend(rest.iter().map(|a| a.bind(py).clone()));
        let encoder = make.bind(py).call1(PyTuple::new(py, args)?)?;
        let chunks = encoder.call1((value, 0))?;
        // A one-item tuple (3.12+) or list (earlier) of text, or chunks to join.
        let single = if let Ok(tuple) = chunks.cast::<PyTuple>() {
            (tuple.len() == 1).then(|| tuple.get_item(0)).transpose()?
        } else if let Ok(list) = chunks.cast::<PyList>() {
            (list.len() == 1).then(|| list.get_item(0)).transpose()?
        } else {
            None
        };
        let text = match single {
            Some(text) => text,
            None => PyString::new(py, "").call_method1("join", (chunks,))?,
        };
        text.cast_into().map_err(Into::into)
    }

    /// `text` through the C scanner; `None` when it cannot tell (leading or trailing
    /// non-JSON, an error): the Python path then decides, with its own error messages.
    fn fast_loads<'py>(&self, py: Python<'py>, text: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(scanner) = &self.scanner else {
            return Ok(None);
        };
        let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
        let bytes = text.as_bytes();
        // ASCII whitespace around the value: byte counts are character counts there.
        let lead = bytes.iter().take_while(|b| is_space(b)).count();
        let trail = bytes[lead..]
            .iter()
            .rev()
            .take_while(|b| is_space(b))
            .count();
        let string = PyString::new(py, text);
        let chars = string.len()?;
        let Ok(scanned) = scanner.bind(py).call1((&string, lead)) else {
            return Ok(None);
        };
        let (value, end): (Bound<'py, PyAny>, usize) = scanned.extract()?;
        Ok((end + trail == chars).then_some(value))
    }
}

/// Whether the encoder's and the decoder's C parts are in use. For tests.
#[pyfunction]
pub(crate) fn _json_fast_paths(py: Python<'_>) -> PyResult<(bool, bool)> {
    let codec = codec(py)?;
    Ok((codec.c_encoder.is_some(), codec.scanner.is_some()))
}

/// `value` as compact JSON text. Raises `TypeError` for what JSON cannot hold (sets, bytes,
/// objects) and `ValueError` for NaN, infinities and circular references, as `json.dumps` does.
pub(crate) fn dumps(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<String> {
    codec(py)?.encoded(py, value)?.extract()
}

/// `json.loads(bytes)` for UTF-8 JSON (what the router hands back always is).
pub(crate) fn loads<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        pyo3::exceptions::PyValueError::new_err(format!("JSON text is not UTF-8: {e}"))
    })?;
    let codec = codec(py)?;
    match codec.fast_loads(py, text)? {
        Some(value) => Ok(value),
        None => codec.decode.bind(py).call1((PyString::new(py, text),)),
    }
}
