//! What the host asks of JavaScript, queued as [`Command`]s the JS driver takes after every call
//! into the module: start a `fetch`, abort one, set a timer, poll a call that has news.
//!
//! Nothing here calls JavaScript. The host executes the machine's actions under its lock, into
//! this module's [`Transport`] and [`TimerSource`]; both only queue. The JS driver then takes the
//! queue ([`Bridge::take`]) and executes it in order, so no call into the module ever re-enters
//! it, and the order of sends, aborts and deliveries is the machine's.

use f3dx_router_core::Time;
use f3dx_router_host::{Attempt, AttemptAbort, AttemptSink, TimerSource, Transport};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Wake;
use wasm_bindgen::prelude::wasm_bindgen;

/// One thing for the JS driver to do. `kind` says which; the fields it does not use are empty.
#[wasm_bindgen(getter_with_clone)]
#[derive(Debug, Clone, Default)]
pub struct Command {
    /// `send` (fetch `url`), `abort` (the fetch of `id`), `wake` (call `fireTimers` at `at`),
    /// `ready` (poll call `id`).
    pub kind: String,
    /// The attempt (`send`, `abort`) or the call (`ready`).
    pub id: u32,
    /// `wake`: the time to fire the timers, in the `now` milliseconds the driver passes in.
    pub at: f64,
    /// `send`: HTTP method.
    pub method: String,
    /// `send`: absolute URL.
    pub url: String,
    /// `send`: header names and values, alternating (the provider's key among them: the JS
    /// driver hands them to `fetch` and keeps them nowhere).
    pub headers: Vec<String>,
    /// `send`: the request body.
    pub body: Vec<u8>,
}

impl Command {
    fn new(kind: &str, id: u32) -> Command {
        Command {
            kind: kind.to_owned(),
            id,
            ..Command::default()
        }
    }
}

/// The queue of commands, and the sinks of the attempts JS is running.
#[derive(Debug, Default)]
pub(crate) struct Bridge {
    commands: Mutex<Vec<Command>>,
    /// Attempt key -> its sink, while its fetch runs. Keys are this bridge's, small numbers JS
    /// can hold exactly (the machine's `AttemptId` is a u64).
    sinks: Mutex<HashMap<u32, AttemptSink>>,
    next_attempt: AtomicU64,
}

/// The module is single-threaded; a poisoned lock only means a panic, which aborts on wasm.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Bridge {
    fn push(&self, command: Command) {
        lock(&self.commands).push(command);
    }

    /// Everything queued since the last take, in order.
    pub(crate) fn take(&self) -> Vec<Command> {
        std::mem::take(&mut *lock(&self.commands))
    }

    /// Runs `report` on attempt `key`'s sink, if the attempt is still running; returns what it
    /// returned, or `None` for an attempt that is over (aborted, or its last report made).
    ///
    /// The sink is taken out of the table while it reports: the report takes the host's lock,
    /// under which the transport may start or abort attempts (and so touch the table).
    pub(crate) fn report<R>(
        &self,
        key: u32,
        report: impl FnOnce(&mut AttemptSink) -> R,
    ) -> Option<R> {
        let mut sink = lock(&self.sinks).remove(&key)?;
        let r = report(&mut sink);
        if sink.is_open() {
            lock(&self.sinks).insert(key, sink);
        }
        Some(r)
    }

    /// Takes attempt `key`'s sink for its last report (`end` or `fail`, which consume it).
    pub(crate) fn finish(&self, key: u32) -> Option<AttemptSink> {
        lock(&self.sinks).remove(&key)
    }

    /// Attempts whose fetch is running (for tests and `inFlight`).
    pub(crate) fn running(&self) -> usize {
        lock(&self.sinks).len()
    }
}

/// Starts attempts as `send` commands; the JS driver runs each as a `fetch`.
#[derive(Debug)]
pub(crate) struct FetchTransport(pub(crate) Arc<Bridge>);

impl Transport for FetchTransport {
    fn spawn(&self, attempt: Attempt) -> Box<dyn AttemptAbort> {
        let bridge = &self.0;
        // Wraps after 2^32 attempts; a key is in use only while its fetch runs.
        let key = bridge.next_attempt.fetch_add(1, Ordering::Relaxed) as u32;
        let (parts, body) = attempt.request.into_parts();
        let mut headers = Vec::with_capacity(parts.headers.len() * 2);
        for (name, value) in &parts.headers {
            // The machine builds headers from config strings: valid UTF-8.
            headers.push(name.as_str().to_owned());
            headers.push(String::from_utf8_lossy(value.as_bytes()).into_owned());
        }
        bridge.push(Command {
            method: parts.method.as_str().to_owned(),
            url: parts.uri.to_string(),
            headers,
            body: body.to_vec(),
            ..Command::new("send", key)
        });
        lock(&bridge.sinks).insert(key, attempt.sink);
        Box::new(AbortFetch {
            bridge: bridge.clone(),
            key,
        })
    }
}

/// Aborts one attempt: an `abort` command (the fetch's `AbortController.abort()`, which closes
/// its connection) and its sink dropped (the host has marked it cancelled, so it feeds nothing).
struct AbortFetch {
    bridge: Arc<Bridge>,
    key: u32,
}

impl AttemptAbort for AbortFetch {
    fn abort(&self) {
        let sink = lock(&self.bridge.sinks).remove(&self.key);
        drop(sink);
        self.bridge.push(Command::new("abort", self.key));
    }
}

/// The machine's clock is the `now` the JS driver passes into every call (`performance.now()`
/// milliseconds); alarms are `wake` commands the driver turns into `setTimeout`.
#[derive(Debug)]
pub(crate) struct JsClock {
    bridge: Arc<Bridge>,
    nanos: AtomicU64,
}

impl JsClock {
    pub(crate) fn new(bridge: Arc<Bridge>, now_ms: f64) -> JsClock {
        let clock = JsClock {
            bridge,
            nanos: AtomicU64::new(0),
        };
        clock.set(now_ms);
        clock
    }

    /// Sets the time to `now_ms`; the clock never goes back (a smaller value is ignored).
    pub(crate) fn set(&self, now_ms: f64) {
        self.nanos.fetch_max(ms_to_nanos(now_ms), Ordering::Relaxed);
    }
}

impl TimerSource for JsClock {
    fn now(&self) -> Time {
        Time::from_nanos(self.nanos.load(Ordering::Relaxed))
    }

    fn wake_at(&self, at: Time) {
        self.bridge.push(Command {
            at: nanos_to_ms(at.as_nanos()),
            ..Command::new("wake", 0)
        });
    }
}

/// Wakes a call as a `ready` command: its caller (the JS promise or stream) polls it.
pub(crate) struct CallWaker {
    pub(crate) bridge: Arc<Bridge>,
    pub(crate) call: u32,
}

impl Wake for CallWaker {
    fn wake(self: Arc<Self>) {
        self.bridge.push(Command::new("ready", self.call));
    }
}

/// `performance.now()` milliseconds (fractional, never negative in practice) to nanoseconds;
/// NaN and negatives are 0.
pub(crate) fn ms_to_nanos(ms: f64) -> u64 {
    // `as` saturates: NaN -> 0, negative -> 0, huge -> u64::MAX.
    (ms * 1e6) as u64
}

/// Nanoseconds to milliseconds for JS.
pub(crate) fn nanos_to_ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}
