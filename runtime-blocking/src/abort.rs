//! Cancelling a ureq attempt for real. ureq has no per-request abort, but its connections
//! register a shutdown handle (`ShutdownHandle`: shut the socket down so blocked reads and
//! writes return at once). [`Tracking`] wraps ureq's default connector so that every
//! connection it makes keeps its handles, and whichever attempt is using a connection (found
//! through a thread-local set by the worker running that attempt: one attempt per worker at a
//! time) can shut it down from another thread. A cancelled attempt then ends at once and the
//! provider sees the disconnect, as under the async drivers.

use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, DefaultConnector, NextTimeout, ShutdownHandle, Transport,
};

thread_local! {
    /// The attempt this worker thread is running.
    static CURRENT: RefCell<Option<Arc<AbortSlot>>> = const { RefCell::new(None) };
}

/// What an attempt's abort reaches: the shutdown handles of the connection it is using.
#[derive(Default)]
pub(crate) struct AbortSlot {
    aborted: AtomicBool,
    handles: Mutex<Vec<Weak<dyn ShutdownHandle>>>,
}

impl AbortSlot {
    /// Runs `attempt` as this slot's attempt on the current thread.
    pub(crate) fn enter<R>(self: &Arc<Self>, attempt: impl FnOnce() -> R) -> R {
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
        let result = attempt();
        CURRENT.with(|c| *c.borrow_mut() = None);
        result
    }

    /// Shuts down the connection the attempt is using, and any it picks up later.
    pub(crate) fn abort(&self) {
        // Under the lock, so a handle held or adopted meanwhile either lands before the take or
        // sees `aborted` and shuts itself down.
        let handles = {
            let mut held = self.lock();
            self.aborted.store(true, Ordering::Release);
            std::mem::take(&mut *held)
        };
        for handle in handles.iter().filter_map(Weak::upgrade) {
            handle.shutdown();
        }
    }

    /// One more handle of the connection this slot's attempt is opening.
    fn hold(&self, handle: Weak<dyn ShutdownHandle>) {
        let mut held = self.lock();
        if self.aborted.load(Ordering::Acquire) {
            drop(held);
            if let Some(h) = handle.upgrade() {
                h.shutdown();
            }
            return;
        }
        held.push(handle);
    }

    /// A connection is used by this slot's attempt: an abort must reach it.
    fn adopt(&self, handles: &[Weak<dyn ShutdownHandle>]) {
        let mut held = self.lock();
        if self.aborted.load(Ordering::Acquire) {
            drop(held);
            handles
                .iter()
                .filter_map(Weak::upgrade)
                .for_each(|h| h.shutdown());
            return;
        }
        held.clear();
        held.extend(handles.iter().cloned());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<dyn ShutdownHandle>>> {
        self.handles.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// ureq's default connector chain (proxies, TCP, rustls), with each connection's shutdown
/// handles kept on the connection.
#[derive(Debug, Default)]
pub(crate) struct Tracking(DefaultConnector);

impl Connector<()> for Tracking {
    type Out = Tracked;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<Tracked>, ureq::Error> {
        let handles: Arc<Mutex<Vec<Weak<dyn ShutdownHandle>>>> = Arc::default();
        let register = details.register_shutdown.clone();
        let keep = handles.clone();
        let tracking = ConnectionDetails {
            uri: details.uri,
            addrs: details.addrs.clone(),
            config: details.config,
            request_level: details.request_level,
            resolver: details.resolver,
            now: details.now,
            timeout: details.timeout,
            current_time: details.current_time.clone(),
            run_connector: details.run_connector.clone(),
            register_shutdown: Arc::new(move |handle: Weak<dyn ShutdownHandle>| {
                // The attempt making this connection can shut it down at once: a cancel during
                // the TLS handshake (or a proxy's CONNECT) must not wait for the first request.
                CURRENT.with(|c| {
                    if let Some(slot) = c.borrow().as_ref() {
                        slot.hold(handle.clone());
                    }
                });
                keep.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(handle.clone());
                register(handle)
            }),
        };
        let Some(inner) = self.0.connect(&tracking, chained)? else {
            return Ok(None);
        };
        let handles = std::mem::take(&mut *handles.lock().unwrap_or_else(PoisonError::into_inner));
        Ok(Some(Tracked {
            inner,
            handles,
            adopted_by: Weak::new(),
        }))
    }
}

/// A connection that tells the attempt using it how to shut it down.
pub(crate) struct Tracked {
    inner: Box<dyn Transport>,
    handles: Vec<Weak<dyn ShutdownHandle>>,
    /// The attempt it last told (so each IO call costs a pointer comparison, not a lock).
    adopted_by: Weak<AbortSlot>,
}

impl Tracked {
    fn adopt(&mut self) {
        CURRENT.with(|c| {
            if let Some(slot) = c.borrow().as_ref()
                && !std::ptr::eq(self.adopted_by.as_ptr(), Arc::as_ptr(slot))
            {
                slot.adopt(&self.handles);
                self.adopted_by = Arc::downgrade(slot);
            }
        });
    }
}

impl fmt::Debug for Tracked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracked")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Transport for Tracked {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.adopt();
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.adopt();
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}
