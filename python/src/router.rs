//! The `Router` class.
//!
//! Keyword arguments and provider dicts become core's JSON config (`RouterConfig::from_json`),
//! so every invalid value is a `RouterConfigError` naming the field exactly as the Rust API does.
//! Requests are serialized with `json.dumps` and checked by `ChatRequest::from_json` before
//! anything is sent.

use crate::awaitable::{Answer, LoopIo, awaitable};
use crate::blocking::{self, SyncNet};
use crate::errors::{self, Secrets};
use crate::json;
use crate::route::Route;
use crate::runtime::{fork_generation, runtime};
use crate::stream::{AsyncStream, SyncStream};
use f3dx_router_core::{ChatRequest, Routed, RouterConfig};
use f3dx_router_tokio::{Router, RouterBuilder};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyMapping, PyString, PyTuple};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// An in-process LLM-provider router. Thread-safe: share one across threads and tasks.
#[pyclass(frozen, subclass, name = "Router", module = "f3dx_router._native")]
pub(crate) struct PyRouter {
    /// What the router was built from, to build it again in a forked child.
    builder: RouterBuilder,
    /// The router of this process (see [`PyRouter::router`]).
    driver: Mutex<ProcessRouter>,
    policy: &'static str,
    secrets: Arc<Secrets>,
    /// The TLS trust of attempts an event loop's thread sends itself (HTTP/2 offered first: the
    /// loop keeps a shared connection's IO running between calls), made at the first awaited
    /// call; `None` if it could not be made (awaited calls then use the runtime's pool).
    loop_tls: OnceLock<Option<Arc<rustls::ClientConfig>>>,
}

/// A router, the connections of its sync calls, and the fork generation they were made in.
struct ProcessRouter {
    generation: usize,
    router: Router,
    /// Made at the first sync call; `None` inside if it could not be (those calls then use the
    /// runtime's pool).
    sync_net: OnceLock<Option<Arc<SyncNet>>>,
}

/// `str`, `bytes`, or a list/tuple of them: PEM text with one or more certificates.
fn pem_list(value: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let one = |v: &Bound<'_, PyAny>| -> PyResult<String> {
        if let Ok(s) = v.cast::<PyString>() {
            return Ok(s.to_str()?.to_owned());
        }
        if let Ok(b) = v.cast::<PyBytes>() {
            return String::from_utf8(b.as_bytes().to_vec())
                .map_err(|_| PyValueError::new_err("root_certificates: PEM bytes are not UTF-8"));
        }
        Err(PyTypeError::new_err(
            "root_certificates must be PEM text (str or bytes) or a list of them",
        ))
    };
    if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        value.try_iter()?.map(|v| one(&v?)).collect()
    } else {
        Ok(vec![one(value)?])
    }
}

static CHAT_COMPLETION: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `f3dx_router.ChatCompletion(json.loads(body))` with `.route` set.
pub(crate) fn completion<'py>(
    py: Python<'py>,
    routed: &Routed,
    secrets: &Secrets,
) -> PyResult<Bound<'py, PyAny>> {
    let cls = CHAT_COMPLETION
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(
                py.import("f3dx_router._types")?
                    .getattr("ChatCompletion")?
                    .unbind(),
            )
        })?
        .bind(py);
    let data = json::loads(py, &routed.body)?;
    let obj = cls.call1((data,))?;
    obj.setattr("route", Route::from_routed(routed, secrets))?;
    Ok(obj)
}

impl ProcessRouter {
    fn new(generation: usize, router: Router) -> Self {
        ProcessRouter {
            generation,
            router,
            sync_net: OnceLock::new(),
        }
    }
}

impl PyRouter {
    /// This process's router (see [`Self::process_router`]).
    fn router(&self, py: Python<'_>) -> PyResult<Router> {
        Ok(self.process_router(py)?.router.clone())
    }

    /// This process's router and the connections of its sync calls.
    fn sync_router(&self, py: Python<'_>) -> PyResult<(Router, Option<Arc<SyncNet>>)> {
        let process = self.process_router(py)?;
        let net = process.sync_net.get_or_init(|| {
            // HTTP/1.1 only: a connection is driven by the thread whose call uses it, and an
            // HTTP/2 connection shared by several threads' calls would have nobody to drive it.
            #[cfg(unix)]
            return process
                .router
                .spawner_tls_config(false)
                .ok()
                .map(|tls| Arc::new(SyncNet::new(Arc::new(tls), &process.router)));
            #[cfg(not(unix))]
            None
        });
        Ok((process.router.clone(), net.clone()))
    }

    /// This process's router and sync connections. In a forked child, the parent's are left as
    /// they are (its timer and connections belong to threads this process does not have;
    /// dropping them could block on a lock a parent thread held at the fork) and new ones are
    /// made: fresh routing state, the same configuration.
    fn process_router(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, ProcessRouter>> {
        let mut process = crate::lock(&self.driver);
        let generation = fork_generation();
        if process.generation != generation {
            let router = {
                let _entered = runtime().enter();
                self.builder
                    .clone()
                    .build()
                    .map_err(|e| errors::build_error(py, &e, &self.secrets))?
            };
            let parents = std::mem::replace(&mut *process, ProcessRouter::new(generation, router));
            std::mem::forget(parents);
        }
        Ok(process)
    }

    /// The TLS trust for attempts an event loop's thread sends itself (see `loop_tls`).
    fn loop_tls(&self, router: &Router) -> Option<Arc<rustls::ClientConfig>> {
        self.loop_tls
            .get_or_init(|| router.spawner_tls_config(true).ok().map(Arc::new))
            .clone()
    }

    /// Checks the request (a mapping, JSON-serializable, an OpenAI chat request) before anything
    /// is sent. `stream`, when given, sets the request's `"stream"` key.
    fn parse(
        &self,
        py: Python<'_>,
        request: &Bound<'_, PyAny>,
        stream: Option<bool>,
    ) -> PyResult<ChatRequest> {
        let Ok(mapping) = request.cast::<PyMapping>() else {
            return Err(PyTypeError::new_err(format!(
                "request must be a dict holding an OpenAI chat request, got {}",
                request.get_type().name()?
            )));
        };
        let body = if stream.is_some() || !request.is_instance_of::<PyDict>() {
            let copy = PyDict::new(py);
            copy.update(mapping)?;
            if let Some(stream) = stream {
                copy.set_item("stream", stream)?;
            }
            copy.into_any()
        } else {
            request.clone()
        };
        let text = json::dumps(py, &body).map_err(|e| {
            let message = format!("request is not JSON-serializable: {}", e.value(py));
            if e.is_instance_of::<PyTypeError>(py) {
                PyTypeError::new_err(message)
            } else {
                match errors::request_error_type(py) {
                    Ok(ty) => PyErr::from_type(ty.clone(), message),
                    Err(e) => e,
                }
            }
        })?;
        ChatRequest::from_json(text.into_bytes())
            .map_err(|e| errors::request_error(py, &e, &self.secrets))
    }

    /// The request on behalf of `tenant` (the validity classifier keeps tenants apart).
    fn for_tenant(
        &self,
        py: Python<'_>,
        request: ChatRequest,
        tenant: Option<&str>,
    ) -> PyResult<ChatRequest> {
        match tenant {
            None => Ok(request),
            Some(t) => request
                .with_tenant(t)
                .map_err(|e| errors::request_error(py, &e, &self.secrets)),
        }
    }
}

impl Drop for PyRouter {
    /// The connections event loops keep for this router's calls can serve no other router:
    /// every loop lets go of them now rather than at its next sweep.
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(Some(tls)) = self.loop_tls.get() {
            crate::net::forget_loop_connections(tls);
        }
    }
}

#[pymethods]
impl PyRouter {
    #[new]
    #[pyo3(signature = (
        providers,
        *,
        policy = None,
        hedge_k = None,
        hedge_delay_ms = None,
        deadline_ms = None,
        ttft_ms = None,
        idle_timeout_ms = None,
        max_attempts = None,
        max_response_bytes = None,
        retry_after_cap_ms = None,
        health = None,
        throttle = None,
        latency_half_life_ms = None,
        seed = None,
        root_certificates = None,
        connect_timeout_ms = None,
        proxy = None,
        trust_env = None,
        validity = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        providers: &Bound<'_, PyAny>,
        policy: Option<&Bound<'_, PyAny>>,
        hedge_k: Option<&Bound<'_, PyAny>>,
        hedge_delay_ms: Option<&Bound<'_, PyAny>>,
        deadline_ms: Option<&Bound<'_, PyAny>>,
        ttft_ms: Option<&Bound<'_, PyAny>>,
        idle_timeout_ms: Option<&Bound<'_, PyAny>>,
        max_attempts: Option<&Bound<'_, PyAny>>,
        max_response_bytes: Option<&Bound<'_, PyAny>>,
        retry_after_cap_ms: Option<&Bound<'_, PyAny>>,
        health: Option<&Bound<'_, PyAny>>,
        throttle: Option<&Bound<'_, PyAny>>,
        latency_half_life_ms: Option<&Bound<'_, PyAny>>,
        seed: Option<u64>,
        root_certificates: Option<&Bound<'_, PyAny>>,
        connect_timeout_ms: Option<u64>,
        proxy: Option<&Bound<'_, PyAny>>,
        trust_env: Option<&Bound<'_, PyAny>>,
        validity: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let config = PyDict::new(py);
        config.set_item("providers", providers)?;
        for (name, value) in [
            ("policy", policy),
            ("hedge_k", hedge_k),
            ("hedge_delay_ms", hedge_delay_ms),
            ("deadline_ms", deadline_ms),
            ("ttft_ms", ttft_ms),
            ("idle_timeout_ms", idle_timeout_ms),
            ("max_attempts", max_attempts),
            ("max_response_bytes", max_response_bytes),
            ("retry_after_cap_ms", retry_after_cap_ms),
            ("health", health),
            ("throttle", throttle),
            ("latency_half_life_ms", latency_half_life_ms),
            ("proxy", proxy),
            ("trust_env", trust_env),
            ("validity", validity),
        ] {
            if let Some(value) = value
                && !value.is_none()
            {
                config.set_item(name, value)?;
            }
        }
        // json's own errors name a type or a problem ("Object of type bytes is not JSON
        // serializable", "Circular reference detected"), never a value.
        let text = json::dumps(py, config.as_any()).map_err(|e| {
            PyTypeError::new_err(format!(
                "router config is not JSON-serializable: {}",
                e.value(py)
            ))
        })?;
        // Read before validation so that even a config error is scrubbed.
        let secrets = Secrets::from_config_json(text.as_bytes(), |var| std::env::var(var).ok());
        let config = RouterConfig::from_json(text.as_bytes())
            .map_err(|e| errors::config_error(py, &e, &secrets))?;
        let policy = config.policy.name();
        let mut builder = Router::builder(config).seed(seed.unwrap_or(0));
        if let Some(pems) = root_certificates {
            for pem in pem_list(pems)? {
                builder = builder.add_root_certificate_pem(&pem);
            }
        }
        if let Some(ms) = connect_timeout_ms {
            if ms == 0 {
                return Err(errors::config_field_error(
                    py,
                    "connect_timeout_ms",
                    "must be greater than 0",
                ));
            }
            builder = builder.connect_timeout(Duration::from_millis(ms));
        }
        let router = {
            let _entered = runtime().enter();
            builder
                .clone()
                .build()
                .map_err(|e| errors::build_error(py, &e, &secrets))?
        };
        Ok(PyRouter {
            builder,
            driver: Mutex::new(ProcessRouter::new(fork_generation(), router)),
            policy,
            secrets: Arc::new(secrets),
            loop_tls: OnceLock::new(),
        })
    }

    /// Reports the caller's own validation of an answer to the validity classifier: `response`
    /// is a `ChatCompletion` or finished stream of this router (anything with a `route`), its
    /// `Route`, or the route's `id`. `False` when the router no longer remembers it.
    fn report(&self, py: Python<'_>, response: &Bound<'_, PyAny>, valid: bool) -> PyResult<bool> {
        let route = match response.getattr("route") {
            Ok(route) if !route.is_none() => route,
            _ => response.clone(),
        };
        let id = if let Ok(route) = route.cast::<Route>() {
            route.get().id()
        } else if let Ok(id) = route.extract::<u64>() {
            id
        } else {
            return Err(PyTypeError::new_err(format!(
                "report() takes a response of this router, its route or its route id, got {}",
                response.get_type().name()?
            )));
        };
        let router = self.router(py)?;
        Ok(router.report(f3dx_router_core::RequestId(id), valid))
    }

    /// Routes one chat completion, blocking with the GIL released.
    #[pyo3(signature = (request, *, stream = None, tenant = None))]
    fn chat_completions<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'py, PyAny>,
        stream: Option<bool>,
        tenant: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = self.for_tenant(py, self.parse(py, request, stream)?, tenant)?;
        let (router, net) = self.sync_router(py)?;
        if request.stream() {
            let (chunks, home) = blocking::start_stream(py, router, net.as_deref(), request)?;
            let stream = SyncStream::new(chunks, home, self.secrets.clone());
            return Ok(Bound::new(py, stream)?.into_any());
        }
        match blocking::call(py, router, net.as_deref(), request)? {
            Ok(routed) => completion(py, &routed, &self.secrets),
            Err(e) => Err(errors::route_error(py, &e, &self.secrets)),
        }
    }

    /// Routes one chat completion; returns an awaitable (no thread per call).
    #[pyo3(signature = (request, *, stream = None, tenant = None))]
    fn achat_completions<'py>(
        &self,
        py: Python<'py>,
        request: &Bound<'py, PyAny>,
        stream: Option<bool>,
        tenant: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = self.for_tenant(py, self.parse(py, request, stream)?, tenant)?;
        let router = self.router(py)?;
        let secrets = self.secrets.clone();
        let on_loop = |io: Option<&LoopIo>| match (io, self.loop_tls(&router)) {
            (Some(io), Some(tls)) => router.with_spawner(io.spawner(tls, &router)),
            _ => router.clone(),
        };
        if request.stream() {
            // Submitted at the first poll, inside the runtime's context; answered at once.
            return awaitable(py, |io| {
                let router = on_loop(io);
                async move {
                    let chunks = router.chat_completions_stream(request);
                    let stream = AsyncStream::new(chunks, secrets);
                    Answer::new(move |py| Ok(Py::new(py, stream)?.into_any()))
                }
            });
        }
        awaitable(py, |io| {
            let router = on_loop(io);
            async move {
                let outcome = router.chat_completions(request).await;
                Answer::new(move |py| match outcome {
                    Ok(routed) => completion(py, &routed, &secrets).map(Bound::unbind),
                    Err(e) => Err(errors::route_error(py, &e, &secrets)),
                })
            }
        })
    }

    /// The configured provider names, in preference order.
    #[getter]
    fn provider_names(&self) -> Vec<String> {
        self.builder.provider_names()
    }

    /// What the router knows about each provider now, in config order: one dict each (see
    /// `ProviderStats` in the stubs). Read under the machine's lock, with the GIL released.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let router = self.router(py)?;
        let stats = py.detach(|| router.stats());
        crate::stats::to_python(py, &stats)
    }

    /// `"sequential"`, `"hedged"`, `"weighted"` or `"fastest"`.
    #[getter]
    fn policy(&self) -> &'static str {
        self.policy
    }

    /// `(requests, attempts, attempt_tasks)` in flight. For tests: all zero when idle.
    fn _in_flight(&self, py: Python<'_>) -> PyResult<(usize, usize, usize)> {
        let router = self.router(py)?;
        let (requests, attempts) = router.in_flight();
        Ok((requests, attempts, router.open_tasks()))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        // Names only: no URL, no header, no key.
        let names = PyList::new(py, self.builder.provider_names())?;
        Ok(format!(
            "Router(providers={}, policy='{}')",
            names.repr()?,
            self.policy
        ))
    }
}
