//! What the server saw: one [`Recorded`] per provider request, and how that request ended.
//!
//! Tests of a router care as much about what reached the provider (headers, body, how many tries,
//! whether a hedged loser's connection was really closed) as about what came back, so every
//! provider request is kept, and its [`Outcome`] is updated when the response finishes or the
//! client goes away. The outcome is tracked by a guard that lives in the request future and then
//! in the response body: if hyper drops either before the last byte was handed over, the client
//! disconnected.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;

use super::script::Step;
use super::shapes::Shape;

/// How a recorded request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The response is still being produced (a delay, a stall, a slow stream).
    Pending,
    /// The whole response was handed to the connection.
    Completed,
    /// The client closed the connection (or reset the HTTP/2 stream) before the response ended:
    /// a cancelled request, a hedged loser, a client timeout.
    ClientDisconnected,
    /// The server ended it on purpose, as scripted (`reset`, `truncate_after_bytes`,
    /// `cut_after_events`).
    ServerClosed,
}

impl Outcome {
    fn from_u8(v: u8) -> Outcome {
        match v {
            1 => Outcome::Completed,
            2 => Outcome::ClientDisconnected,
            3 => Outcome::ServerClosed,
            _ => Outcome::Pending,
        }
    }
}

/// One request a provider received, as the server saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    /// Position in this provider's list (0 for its first request since the last reset).
    pub index: usize,
    /// The provider name from the path.
    pub provider: String,
    /// Which API the path addressed.
    pub shape: Shape,
    /// `POST`, usually.
    pub method: String,
    /// The request path, e.g. `/a/v1/chat/completions` (with the query, if any).
    pub path: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// Headers, names lowercased; repeated headers are joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The raw body (in JSON: a string, invalid UTF-8 replaced).
    #[serde(with = "body_text")]
    pub body: Bytes,
    /// The body parsed as JSON, when it is JSON.
    pub json: Option<Value>,
    /// The step that was served.
    pub step: Step,
    /// Whether `step` came from the script queue (false: the provider's default).
    pub scripted: bool,
    /// When the request head arrived, in milliseconds since the server started.
    pub received_at_ms: f64,
    /// How the exchange ended (at the time of the snapshot).
    pub outcome: Outcome,
    /// `outcome == ClientDisconnected`, spelt out for JSON consumers.
    pub client_disconnected: bool,
}

mod body_text {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        Ok(Bytes::from(String::deserialize(d)?))
    }
}

/// A recorded request with its live outcome.
#[derive(Debug)]
pub(crate) struct Entry {
    pub data: Recorded,
    outcome: AtomicU8,
    changed: Arc<Notify>,
}

impl Entry {
    pub fn new(data: Recorded, changed: Arc<Notify>) -> Entry {
        Entry {
            data,
            outcome: AtomicU8::new(0),
            changed,
        }
    }

    pub fn outcome(&self) -> Outcome {
        Outcome::from_u8(self.outcome.load(Ordering::Acquire))
    }

    /// Sets the outcome once; later calls are ignored.
    fn settle(&self, outcome: Outcome) {
        let v = match outcome {
            Outcome::Pending => return,
            Outcome::Completed => 1,
            Outcome::ClientDisconnected => 2,
            Outcome::ServerClosed => 3,
        };
        if self
            .outcome
            .compare_exchange(0, v, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.changed.notify_waiters();
        }
    }

    pub fn snapshot(&self) -> Recorded {
        let mut r = self.data.clone();
        r.outcome = self.outcome();
        r.client_disconnected = r.outcome == Outcome::ClientDisconnected;
        r
    }
}

/// Settles an [`Entry`]: `Completed` or `ServerClosed` when told, `ClientDisconnected` when
/// dropped before that (hyper dropped the request future or the response body).
#[derive(Debug)]
pub(crate) struct Guard(Option<Arc<Entry>>);

impl Guard {
    pub fn new(entry: Arc<Entry>) -> Guard {
        Guard(Some(entry))
    }

    /// A guard that records nothing (recording off).
    pub fn none() -> Guard {
        Guard(None)
    }

    pub fn complete(&mut self) {
        if let Some(e) = self.0.take() {
            e.settle(Outcome::Completed);
        }
    }

    pub fn server_closed(&mut self) {
        if let Some(e) = self.0.take() {
            e.settle(Outcome::ServerClosed);
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(e) = self.0.take() {
            e.settle(Outcome::ClientDisconnected);
        }
    }
}

/// Waits until `check` holds, re-checking whenever a recording changes, for at most `timeout`.
pub(crate) async fn wait_until(
    changed: &Notify,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if check() {
            return true;
        }
        // Counters (connections) change without a notification: poll them too, gently.
        let tick = tokio::time::Instant::now() + Duration::from_millis(5);
        if tokio::time::timeout_at(deadline.min(tick), notified)
            .await
            .is_err()
            && tokio::time::Instant::now() >= deadline
        {
            return check();
        }
    }
}
