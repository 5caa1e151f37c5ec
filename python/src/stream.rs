//! Streaming answers: `ChatCompletionStream` (a blocking iterator) and
//! `AsyncChatCompletionStream` (an async iterator), each over one `ChunkStream`.
//!
//! Both yield each OpenAI `chat.completion.chunk` as a dict, then end; an error after the
//! stream committed ends it with `StreamInterruptedError`. Once a stream has ended, `.route`
//! tells who served it. Closing it (`close()` / `aclose()` / leaving a `with` block), or
//! dropping the last reference to it before its end, cancels the request and every attempt
//! in flight: the provider sees the connection close.

use crate::awaitable::{Answer, awaitable};
use crate::errors::{self, RouterError, Secrets};
use crate::json;
use crate::lock;
use crate::route::Route;
use crate::runtime::{self, SIGNAL_CHECK, fork_generation, runtime};
use bytes::Bytes;
use f3dx_router_core::RouteError;
use f3dx_router_tokio::ChunkStream;
use futures_util::{FutureExt, StreamExt};
use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;
use std::sync::{Arc, Mutex};

#[cfg(unix)]
use crate::net::poll::Driver;

/// What one wait on the stream gave.
enum Step {
    Chunk(Bytes),
    Failed(RouteError),
    Ended(Option<Route>),
    /// Nothing yet; time to check for signals.
    Pending,
    /// Closed or already ended.
    Closed,
}

/// Where a sync stream's attempts run (`crate::blocking`).
pub(crate) enum StreamHome {
    /// The extension's shared runtime.
    Shared,
    /// A blocking driver of the stream's own, driven by whichever thread reads the stream.
    #[cfg(unix)]
    Driver(Arc<Driver>),
}

impl StreamHome {
    /// Waits up to [`SIGNAL_CHECK`] for the stream's next item; `None` if none came.
    fn next(&self, stream: &mut ChunkStream) -> Option<Option<Result<Bytes, RouteError>>> {
        match self {
            StreamHome::Shared => runtime()
                .block_on(async { tokio::time::timeout(SIGNAL_CHECK, stream.next()).await })
                .ok(),
            #[cfg(unix)]
            StreamHome::Driver(driver) => {
                driver.run(std::pin::Pin::new(&mut stream.next()), SIGNAL_CHECK)
            }
        }
    }
}

/// The chunks of a streaming chat completion, as a blocking iterator of dicts.
#[pyclass(frozen, name = "ChatCompletionStream", module = "f3dx_router")]
pub(crate) struct SyncStream {
    stream: Mutex<Option<ChunkStream>>,
    home: StreamHome,
    /// The fork generation it was started in: its attempts belong to that process.
    generation: usize,
    route: Mutex<Option<Route>>,
    secrets: Arc<Secrets>,
}

impl SyncStream {
    pub(crate) fn new(stream: ChunkStream, home: StreamHome, secrets: Arc<Secrets>) -> Self {
        SyncStream {
            stream: Mutex::new(Some(stream)),
            home,
            generation: fork_generation(),
            route: Mutex::new(None),
            secrets,
        }
    }

    /// The next item. One already buffered is taken at once with the GIL held: releasing and
    /// taking it back for every chunk costs a context switch when other threads want it.
    /// Otherwise it waits up to [`SIGNAL_CHECK`] without the GIL.
    fn step(&self, py: Python<'_>) -> Step {
        // Not `lock`: a thread waiting on this stream holds the lock with the GIL released, and
        // blocking on it here with the GIL held would deadlock.
        if let Ok(mut slot) = self.stream.try_lock() {
            let Some(stream) = slot.as_mut() else {
                return Step::Closed;
            };
            if let Some(item) = stream.next().now_or_never() {
                return self.finish(&mut slot, item);
            }
        }
        py.detach(|| {
            let mut slot = lock(&self.stream);
            let Some(stream) = slot.as_mut() else {
                return Step::Closed;
            };
            match self.home.next(stream) {
                None => Step::Pending,
                Some(item) => self.finish(&mut slot, item),
            }
        })
    }

    /// What the stream's next item means to the caller; the stream is dropped once it ended.
    fn finish(
        &self,
        slot: &mut Option<ChunkStream>,
        item: Option<Result<Bytes, RouteError>>,
    ) -> Step {
        match item {
            Some(Ok(chunk)) => Step::Chunk(chunk),
            Some(Err(error)) => {
                *slot = None;
                Step::Failed(error)
            }
            None => {
                let route = slot
                    .as_ref()
                    .and_then(ChunkStream::routed)
                    .map(|routed| Route::from_routed(routed, &self.secrets));
                *slot = None;
                Step::Ended(route)
            }
        }
    }

    fn take(&self, py: Python<'_>) {
        py.detach(|| self.cancel());
    }

    /// Drops an unfinished stream, which cancels the request, and has its driver drop the
    /// cancelled attempts (their connections close now).
    fn cancel(&self) {
        let Some(stream) = lock(&self.stream).take() else {
            return;
        };
        if self.generation != fork_generation() {
            // The parent's, in a forked child: cancelling would take locks and drive a runtime
            // that belong to the parent. Left alone.
            std::mem::forget(stream);
            return;
        }
        drop(stream);
        #[cfg(unix)]
        if let StreamHome::Driver(driver) = &self.home {
            driver.settle();
        }
    }
}

impl Drop for SyncStream {
    fn drop(&mut self) {
        self.cancel();
    }
}

#[pymethods]
impl SyncStream {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        if self.generation != fork_generation() {
            return Err(RouterError::new_err(
                "this stream was started in the parent process, before a fork; start it again here",
            ));
        }
        loop {
            match self.step(py) {
                Step::Pending => {
                    if let Err(interrupt) = py.check_signals() {
                        self.take(py);
                        return Err(interrupt);
                    }
                }
                Step::Chunk(chunk) => return json::loads(py, &chunk).map(Some),
                Step::Failed(error) => return Err(errors::route_error(py, &error, &self.secrets)),
                Step::Ended(route) => {
                    *lock(&self.route) = route;
                    return Ok(None);
                }
                Step::Closed => return Ok(None),
            }
        }
    }

    /// Cancels the request if it has not ended. Idempotent.
    fn close(&self, py: Python<'_>) {
        self.take(py);
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.take(py);
        false
    }

    /// The route, once the stream has ended successfully; `None` before.
    #[getter]
    fn route(&self) -> Option<Route> {
        lock(&self.route).clone()
    }

    fn __repr__(&self) -> String {
        let open = lock(&self.stream).is_some();
        format!(
            "ChatCompletionStream({})",
            if open { "open" } else { "ended" }
        )
    }
}

struct AsyncState {
    stream: tokio::sync::Mutex<Option<ChunkStream>>,
    route: Mutex<Option<Route>>,
    secrets: Arc<Secrets>,
}

/// The chunks of a streaming chat completion, as an async iterator of dicts.
#[pyclass(frozen, name = "AsyncChatCompletionStream", module = "f3dx_router")]
pub(crate) struct AsyncStream {
    state: Arc<AsyncState>,
}

impl AsyncStream {
    pub(crate) fn new(stream: ChunkStream, secrets: Arc<Secrets>) -> Self {
        AsyncStream {
            state: Arc::new(AsyncState {
                stream: tokio::sync::Mutex::new(Some(stream)),
                route: Mutex::new(None),
                secrets,
            }),
        }
    }
}

impl Drop for AsyncStream {
    fn drop(&mut self) {
        // Cancel now, not when a pending `__anext__` future (which shares the state) lets go.
        if let Ok(mut slot) = self.state.stream.try_lock() {
            slot.take();
        }
    }
}

#[pymethods]
impl AsyncStream {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        awaitable(py, |_| async move {
            let mut slot = state.stream.lock().await;
            let Some(stream) = slot.as_mut() else {
                return Answer::new(|_| Err(PyStopAsyncIteration::new_err(())));
            };
            match stream.next().await {
                Some(Ok(chunk)) => {
                    Answer::new(move |py| json::loads(py, &chunk).map(Bound::unbind))
                }
                Some(Err(error)) => {
                    *slot = None;
                    let secrets = state.secrets.clone();
                    Answer::new(move |py| Err(errors::route_error(py, &error, &secrets)))
                }
                None => {
                    let route = stream
                        .routed()
                        .map(|routed| Route::from_routed(routed, &state.secrets));
                    *slot = None;
                    *lock(&state.route) = route;
                    Answer::new(|_| Err(PyStopAsyncIteration::new_err(())))
                }
            }
        })
    }

    /// Cancels the request if it has not ended. Idempotent.
    fn aclose<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        runtime::future_into_py(py, async move {
            let stream = state.stream.lock().await.take();
            drop(stream);
            Ok(())
        })
    }

    fn __aenter__<'py>(slf: Py<Self>, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        runtime::future_into_py(py, async move { Ok(slf) })
    }

    #[pyo3(signature = (*_args))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _args: &Bound<'py, pyo3::types::PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        runtime::future_into_py(py, async move {
            let stream = state.stream.lock().await.take();
            drop(stream);
            Ok(false)
        })
    }

    /// The route, once the stream has ended successfully; `None` before.
    #[getter]
    fn route(&self) -> Option<Route> {
        lock(&self.state.route).clone()
    }

    fn __repr__(&self) -> String {
        "AsyncChatCompletionStream()".to_owned()
    }
}
