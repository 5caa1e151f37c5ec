//! # f3dx-router-wasm
//!
//! The router's machine on `wasm32-unknown-unknown`, hosted by `f3dx-router-host` like every
//! other driver, driven from JavaScript (`js/router.js`: Node 20, Cloudflare Workers).
//!
//! The module does no IO and reads no clock. JavaScript passes the time in
//! (`performance.now()` milliseconds) with every call, feeds what its `fetch`es observe
//! ([`WasmRouter::head`], [`WasmRouter::body`], [`WasmRouter::end`], [`WasmRouter::fail`]), and
//! after every call takes the [`Command`]s the host queued ([`WasmRouter::take_commands`]):
//! `send` (start a fetch with its own `AbortController`), `abort`, `wake` (a `setTimeout`, then
//! [`WasmRouter::fire_timers`]), `ready` (poll that call: [`WasmRouter::poll`]). Every decision
//! is the machine's; the JS driver only executes.
//!
//! Panics abort on wasm32 (`panic = "abort"`): the host's recovery of a panic under its lock
//! (fail that one request, go on) is not available here; a panic traps and the instance is lost.
#![warn(missing_docs)]

mod bridge;
mod outcome;

pub use bridge::Command;

use bridge::{Bridge, CallWaker, FetchTransport, JsClock, nanos_to_ms};
use bytes::Bytes;
use f3dx_router_core::{ChatRequest, RouterConfig, RouterMachine, TransportErrorKind};
use f3dx_router_host::{Call, Event, Host, Transport};
use http::{HeaderMap, HeaderName, HeaderValue};
use outcome::{Secrets, input_error_json, outcome_json};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use wasm_bindgen::prelude::wasm_bindgen;

/// What [`WasmRouter::poll`] found: one stream chunk, or the outcome (exactly one is set).
#[wasm_bindgen(getter_with_clone)]
#[derive(Debug, Clone)]
pub struct Polled {
    /// One OpenAI `chat.completion.chunk` object, as JSON text.
    pub chunk: Option<String>,
    /// The outcome, as JSON text (see the `outcome` module); nothing follows it.
    pub outcome: Option<String>,
}

/// A call in flight and the waker that queues `ready` for it.
struct Pending {
    call: Call,
    waker: Waker,
}

/// One router: its host, its clock, and the calls JS holds by number.
#[wasm_bindgen]
pub struct WasmRouter {
    host: Arc<Host>,
    clock: Arc<JsClock>,
    bridge: Arc<Bridge>,
    transport: Arc<dyn Transport>,
    secrets: Secrets,
    calls: RefCell<HashMap<u32, Pending>>,
    next_call: Cell<u32>,
}

#[wasm_bindgen]
impl WasmRouter {
    /// A router for `config` (the JSON every driver takes). `env` is a JSON object of
    /// variables for `api_key_env` (a Worker's secrets); `seed` seeds the machine's random
    /// choices; `now_ms` and `unix_ms` are `performance.now()` and `Date.now()` read together.
    ///
    /// Throws the JSON text of a `ConfigError` (its field and what is wrong, never a value).
    #[wasm_bindgen(constructor)]
    pub fn new(
        config: &[u8],
        env: Option<String>,
        seed: f64,
        now_ms: f64,
        unix_ms: f64,
    ) -> Result<WasmRouter, String> {
        let config_error = |e: f3dx_router_core::ConfigError| {
            input_error_json("ConfigError", &e.to_string(), Some(e.field()))
        };
        let env: HashMap<String, String> = match env {
            None => HashMap::new(),
            Some(text) => serde_json::from_str(&text).map_err(|_| {
                input_error_json("ConfigError", "env must be an object of strings", None)
            })?,
        };
        let mut config = RouterConfig::from_json(config).map_err(config_error)?;
        config
            .resolve_api_keys(|var| env.get(var).cloned())
            .map_err(config_error)?;
        let secrets = Secrets::of(&config);
        // `as` saturates; JS numbers hold seeds up to 2^53 exactly.
        let machine = RouterMachine::new(config, seed as u64).map_err(config_error)?;
        let bridge = Arc::new(Bridge::default());
        let clock = Arc::new(JsClock::new(bridge.clone(), now_ms));
        let unix_at_epoch = Duration::from_secs_f64(((unix_ms - now_ms) / 1000.0).max(0.0));
        let host = Host::new(machine, clock.clone(), unix_at_epoch);
        Ok(WasmRouter {
            host,
            clock,
            transport: Arc::new(FetchTransport(bridge.clone())),
            bridge,
            secrets,
            calls: RefCell::default(),
            next_call: Cell::new(0),
        })
    }

    /// Starts routing an OpenAI-shape request body; returns the call's number. `stream`: its
    /// chunks are kept for [`WasmRouter::poll`] (a `stream: true` request).
    ///
    /// Throws the JSON text of an `InvalidRequestError` naming the field.
    pub fn submit(&self, request: &[u8], stream: bool, now_ms: f64) -> Result<u32, String> {
        self.clock.set(now_ms);
        let request = ChatRequest::from_json(Bytes::copy_from_slice(request)).map_err(|e| {
            let field = match &e {
                f3dx_router_core::RequestError::Field { field, .. } => Some(field.as_str()),
                _ => None,
            };
            input_error_json("InvalidRequestError", &e.to_string(), field)
        })?;
        let call = self.host.submit(request, stream, self.transport.clone());
        let id = self.next_call.get();
        self.next_call.set(id.wrapping_add(1));
        let waker = Waker::from(Arc::new(CallWaker {
            bridge: self.bridge.clone(),
            call: id,
        }));
        self.calls.borrow_mut().insert(id, Pending { call, waker });
        Ok(id)
    }

    /// The next chunk or the outcome of call `call`; `undefined` while there is none (a
    /// `ready` command says when to poll again) or for a call that is over.
    pub fn poll(&self, call: u32) -> Option<Polled> {
        let mut calls = self.calls.borrow_mut();
        let pending = calls.get_mut(&call)?;
        let mut cx = Context::from_waker(&pending.waker);
        let event = match pending.call.poll_next(&mut cx) {
            Poll::Ready(Some(event)) => event,
            Poll::Ready(None) | Poll::Pending => return None,
        };
        Some(match event {
            Event::Chunk(chunk) => Polled {
                chunk: Some(String::from_utf8_lossy(&chunk).into_owned()),
                outcome: None,
            },
            Event::Done(outcome) => {
                // Finished: dropping it cancels nothing.
                calls.remove(&call);
                Polled {
                    chunk: None,
                    outcome: Some(outcome_json(&outcome, &self.secrets)),
                }
            }
        })
    }

    /// The caller gave up on call `call`: every attempt still running is aborted.
    pub fn cancel(&self, call: u32, now_ms: f64) {
        self.clock.set(now_ms);
        let pending = self.calls.borrow_mut().remove(&call);
        // Dropped outside the borrow: the cancel runs the host, whose wakers queue commands.
        drop(pending);
    }

    /// Attempt `attempt`'s response head: its status and its headers as alternating names and
    /// values. Returns whether the attempt is still wanted (abort the fetch if not).
    pub fn head(&self, attempt: u32, status: u16, headers: Vec<String>, now_ms: f64) -> bool {
        self.clock.set(now_ms);
        let mut map = HeaderMap::with_capacity(headers.len() / 2);
        for pair in headers.chunks_exact(2) {
            // What `fetch` gives is valid HTTP; anything else is skipped rather than fatal.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(pair[0].as_bytes()),
                HeaderValue::from_str(&pair[1]),
            ) {
                map.append(name, value);
            }
        }
        self.bridge
            .report(attempt, |sink| sink.head(status, map))
            .unwrap_or(false)
    }

    /// A piece of attempt `attempt`'s body. Returns whether to keep reading.
    pub fn body(&self, attempt: u32, chunk: &[u8], now_ms: f64) -> bool {
        self.clock.set(now_ms);
        let chunk = Bytes::copy_from_slice(chunk);
        self.bridge
            .report(attempt, |sink| sink.body(chunk))
            .unwrap_or(false)
    }

    /// Attempt `attempt`'s body was read to its end.
    pub fn end(&self, attempt: u32, now_ms: f64) {
        self.clock.set(now_ms);
        if let Some(sink) = self.bridge.finish(attempt) {
            sink.end();
        }
    }

    /// Attempt `attempt`'s fetch failed: `kind` is `refused`, `reset`, `timeout`, `tls`, `dns`
    /// or anything else (`other`).
    pub fn fail(&self, attempt: u32, kind: &str, now_ms: f64) {
        self.clock.set(now_ms);
        let kind = match kind {
            "refused" => TransportErrorKind::Refused,
            "reset" => TransportErrorKind::Reset,
            "timeout" => TransportErrorKind::Timeout,
            "tls" => TransportErrorKind::Tls,
            "dns" => TransportErrorKind::Dns,
            _ => TransportErrorKind::Other,
        };
        if let Some(sink) = self.bridge.finish(attempt) {
            sink.fail(kind);
        }
    }

    /// Fires what is due (the `setTimeout` of a `wake` command came); returns when to fire
    /// next, if anything is due later.
    #[wasm_bindgen(js_name = fireTimers)]
    pub fn fire_timers(&self, now_ms: f64) -> Option<f64> {
        self.clock.set(now_ms);
        self.host.fire_timers().map(|at| nanos_to_ms(at.as_nanos()))
    }

    /// Everything the host queued since the last take, in order: execute each.
    #[wasm_bindgen(js_name = takeCommands)]
    pub fn take_commands(&self) -> Vec<Command> {
        self.bridge.take()
    }

    /// `[requests, attempts]` the machine holds, the attempts the host holds, the fetches
    /// running, and the calls JS holds: all zero when nothing is in flight.
    #[wasm_bindgen(js_name = inFlight)]
    pub fn in_flight(&self) -> Vec<u32> {
        let (requests, attempts, tasks) = self.host.in_flight();
        [
            requests,
            attempts,
            tasks,
            self.bridge.running(),
            self.calls.borrow().len(),
        ]
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        .to_vec()
    }
}
