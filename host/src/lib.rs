//! # f3dx-router-host
//!
//! The one host of core's [`RouterMachine`](f3dx_router_core::RouterMachine) that every driver
//! shares: the lock, the calls in flight and their wakers, executing the machine's actions into
//! a driver's [`Transport`], cancel on drop, `mock` providers played in-process, and timers as
//! "wake me at T" asked of the driver's [`TimerSource`]. No IO, no runtime, no clock of its own.
//!
//! A driver is then two small pieces and a front:
//! - a [`Transport`]: start an HTTP attempt (the machine's `http::Request`), report what happens
//!   through its [`AttemptSink`], return an [`AttemptAbort`] that stops it;
//! - a [`TimerSource`]: tell the time, and make sure [`Host::fire_timers`] is called at the time
//!   [`TimerSource::wake_at`] last asked for (a task sleeping, or waiting callers themselves);
//! - its `Router`: [`Host::submit`] a request and wait on the [`Call`] in its own way (await it,
//!   park a thread on it). Dropping the call cancels the request.
//!
//! ## Run loop
//!
//! A complete driver for callers that block, in the style of `f3dx-router-blocking` (which
//! adds the HTTP): the caller's thread waits on its call with a waker that unparks it, bounded by
//! the host's next due time, and fires the timers itself when that time comes.
//!
//! ```
//! use f3dx_router_core::{ChatRequest, RouterConfig, RouterMachine, Time};
//! use f3dx_router_host::{Attempt, AttemptAbort, Event, Host, TimerSource, Transport};
//! use std::sync::Arc;
//! use std::task::{Context, Poll, Wake, Waker};
//! use std::time::{Duration, Instant};
//!
//! /// The clock; callers wait for due times themselves, so an alarm needs no thread here
//! /// (a real driver wakes one waiting caller, see f3dx-router-blocking).
//! struct Clock(Instant);
//! impl TimerSource for Clock {
//!     fn now(&self) -> Time {
//!         Time::from_nanos(self.0.elapsed().as_nanos() as u64)
//!     }
//!     fn wake_at(&self, _at: Time) {}
//! }
//!
//! /// The network: here, none (the provider below is a `mock`, played by the host).
//! struct NoNetwork;
//! struct Nothing;
//! impl AttemptAbort for Nothing {
//!     fn abort(&self) {}
//! }
//! impl Transport for NoNetwork {
//!     fn spawn(&self, attempt: Attempt) -> Box<dyn AttemptAbort> {
//!         // A real transport sends `attempt.request` on its own thread or task and reports
//!         // through `attempt.sink` (`head`, `body`, `end`, or `fail`).
//!         attempt.sink.fail(f3dx_router_core::TransportErrorKind::Refused);
//!         Box::new(Nothing)
//!     }
//! }
//!
//! /// Wakes the waiting thread.
//! struct Unpark(std::thread::Thread);
//! impl Wake for Unpark {
//!     fn wake(self: Arc<Self>) {
//!         self.0.unpark();
//!     }
//! }
//!
//! let config = RouterConfig::from_json(
//!     br#"{"providers": [{"name": "m", "kind": "mock",
//!          "mock": {"latency": {"kind": "fixed", "ms": 5}}}]}"#,
//! )?;
//! let clock = Arc::new(Clock(Instant::now()));
//! let host = Host::new(RouterMachine::new(config, 0)?, clock.clone(), Duration::ZERO);
//! let request = ChatRequest::from_json(
//!     br#"{"model": "m", "messages": [{"role": "user", "content": "hi"}]}"#.to_vec(),
//! )?;
//!
//! let mut call = host.submit(request, false, Arc::new(NoNetwork));
//! let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
//! let mut cx = Context::from_waker(&waker);
//! let routed = loop {
//!     if let Poll::Ready(outcome) = call.poll_outcome(&mut cx) {
//!         break outcome?;
//!     }
//!     match host.next_due() {
//!         Some(due) if due <= clock.now() => {
//!             host.fire_timers();
//!         }
//!         Some(due) => std::thread::park_timeout(due.saturating_since(clock.now())),
//!         None => std::thread::park(),
//!     }
//! };
//! assert_eq!(&*routed.provider_name, "m");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! An async driver (tokio, async-std, smol) is the same with a task as the timer: it sleeps
//! until the time [`Host::fire_timers`] returned, or until [`TimerSource::wake_at`] nudges it
//! earlier, then fires again; callers `poll_fn(|cx| call.poll_outcome(cx)).await`.
#![warn(missing_docs, missing_debug_implementations)]

mod call;
mod call_error;
mod host;
mod sink;
mod slot;
mod transport;

pub use call::Call;
pub use call_error::RouterCallError;
pub use host::Host;
pub use sink::AttemptSink;
pub use slot::{Event, STREAM_BUFFER};
pub use transport::{Attempt, AttemptAbort, TimerSource, Transport, io_error_kind};
