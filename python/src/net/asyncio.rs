//! Readiness from the asyncio loop: when a [`super::socket::Socket`] of a loop would block, its
//! waker is recorded here and the loop's [`Reactor`] asks asyncio to watch the fd
//! (`add_reader` / `add_writer`). asyncio calls back on the loop thread, which wakes the waiting
//! job there: no other thread takes part in the exchange.
//!
//! Registrations are added after the jobs have been polled ([`Reactor::sync`], which holds the
//! GIL), and removed lazily: a reader stays registered across requests on a pooled connection
//! and is removed when a callback finds nobody waiting. A registration the loop refuses fails
//! the socket's next read or write (its attempt ends as a reset) rather than leave it waiting. A socket dropped while registered is not
//! closed at once: its fd number could be reused by a new socket before asyncio forgot it. It
//! waits in the graveyard until `sync` has removed its registrations.

use super::socket::{Readiness, Watched};
use crate::lock;
use pyo3::intern;
use pyo3::prelude::*;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::{Arc, Mutex, Weak};
use std::task::Waker;

/// Who waits on one fd, and what asyncio watches for it.
#[derive(Default)]
struct Interest {
    /// The socket, told when asyncio reports it readable.
    socket: Weak<Watched>,
    read: Option<Waker>,
    write: Option<Waker>,
    reading: bool,
    writing: bool,
    /// asyncio refused to watch the fd.
    refused: bool,
}

#[derive(Default)]
struct State {
    fds: HashMap<RawFd, Interest>,
    /// Wants a registration asyncio does not have yet.
    to_add: Vec<RawFd>,
    /// Dropped while registered (for reading, for writing): closed once asyncio no longer
    /// watches them.
    graveyard: Vec<(Arc<Watched>, bool, bool)>,
    /// The loop is gone: a socket dropped from now on closes at once.
    closed: bool,
}

/// The fds one event loop watches for its jobs.
#[derive(Default)]
pub(crate) struct Reactor {
    state: Mutex<State>,
}

impl Reactor {
    pub(crate) fn want(
        &self,
        socket: &Arc<Watched>,
        readiness: Readiness,
        waker: &Waker,
    ) -> std::io::Result<()> {
        let fd = socket.as_fd().as_raw_fd();
        let mut state = lock(&self.state);
        let interest = state.fds.entry(fd).or_default();
        if interest.refused {
            return Err(std::io::Error::other(
                "the event loop refused to watch the socket",
            ));
        }
        if !Weak::ptr_eq(&interest.socket, &Arc::downgrade(socket)) {
            interest.socket = Arc::downgrade(socket);
        }
        let (slot, registered) = match readiness {
            Readiness::Read => (&mut interest.read, interest.reading),
            Readiness::Write => (&mut interest.write, interest.writing),
        };
        match slot {
            Some(current) if current.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
        if !registered {
            state.to_add.push(fd);
        }
        Ok(())
    }

    /// asyncio reports `fd` ready: wakes who waits. Nobody waiting means the registration is
    /// no longer needed: it is removed now (asyncio's watch is level-triggered and would fire
    /// again on every loop iteration).
    pub(crate) fn ready(
        &self,
        event_loop: &Bound<'_, PyAny>,
        fd: RawFd,
        readiness: Readiness,
    ) -> PyResult<()> {
        let waker = {
            let mut state = lock(&self.state);
            let Some(interest) = state.fds.get_mut(&fd) else {
                return Ok(());
            };
            let waker = match readiness {
                Readiness::Read => {
                    if let Some(socket) = interest.socket.upgrade() {
                        socket.set_readable();
                    }
                    interest.read.take()
                }
                Readiness::Write => interest.write.take(),
            };
            if waker.is_none() {
                match readiness {
                    Readiness::Read => interest.reading = false,
                    Readiness::Write => interest.writing = false,
                }
            }
            waker
        };
        match waker {
            Some(waker) => waker.wake(),
            None => remove(event_loop, fd, readiness)?,
        }
        Ok(())
    }

    /// Applies what the jobs asked for since the last call: registers new interests, forgets
    /// and closes dropped sockets. Runs on the loop thread after every round of polling.
    /// `owner` is the loop's waker object, whose `_readable` / `_writable` asyncio calls.
    pub(crate) fn sync(&self, event_loop: &Bound<'_, PyAny>, owner: &Bound<'_, PyAny>) {
        let (to_add, graveyard) = {
            let mut state = lock(&self.state);
            if state.to_add.is_empty() && state.graveyard.is_empty() {
                return;
            }
            let to_add = std::mem::take(&mut state.to_add);
            let mut adds = Vec::with_capacity(to_add.len());
            for fd in to_add {
                let Some(interest) = state.fds.get_mut(&fd) else {
                    continue; // dropped since
                };
                if interest.read.is_some() && !interest.reading {
                    interest.reading = true;
                    adds.push((fd, Readiness::Read));
                }
                if interest.write.is_some() && !interest.writing {
                    interest.writing = true;
                    adds.push((fd, Readiness::Write));
                }
            }
            (adds, std::mem::take(&mut state.graveyard))
        };
        for (stream, reading, writing) in graveyard {
            // A failure means a closed loop, which watches nothing any more.
            let fd = stream.as_fd().as_raw_fd();
            if reading {
                let _ = remove(event_loop, fd, Readiness::Read);
            }
            if writing {
                let _ = remove(event_loop, fd, Readiness::Write);
            }
            drop(stream);
        }
        for (fd, readiness) in to_add {
            if add(event_loop, owner, fd, readiness).is_err() {
                self.refuse(fd);
            }
        }
    }

    /// asyncio would not watch `fd`: its waiting jobs are woken to find out.
    fn refuse(&self, fd: RawFd) {
        let wakers = {
            let mut state = lock(&self.state);
            let Some(interest) = state.fds.get_mut(&fd) else {
                return;
            };
            interest.refused = true;
            [interest.read.take(), interest.write.take()]
        };
        wakers.into_iter().flatten().for_each(Waker::wake);
    }

    /// `stream` is dropped: it closes now if asyncio never watched it (or the loop is gone),
    /// else at the next `sync`.
    pub(crate) fn bury(&self, stream: Arc<Watched>) {
        let fd = stream.as_fd().as_raw_fd();
        let mut state = lock(&self.state);
        match state.fds.remove(&fd) {
            Some(interest) if (interest.reading || interest.writing) && !state.closed => {
                state
                    .graveyard
                    .push((stream, interest.reading, interest.writing));
            }
            _ => {
                drop(state);
                drop(stream);
            }
        }
    }

    /// The loop is going away and will never call `sync` again: buried sockets close now, and
    /// so will any dropped later (the attempts of its calls are dropped on the runtime).
    pub(crate) fn close(&self) {
        let graveyard = {
            let mut state = lock(&self.state);
            state.closed = true;
            std::mem::take(&mut state.graveyard)
        };
        drop(graveyard);
    }
}

fn add(
    event_loop: &Bound<'_, PyAny>,
    owner: &Bound<'_, PyAny>,
    fd: RawFd,
    readiness: Readiness,
) -> PyResult<()> {
    let py = event_loop.py();
    let (method, callback) = match readiness {
        Readiness::Read => (intern!(py, "add_reader"), intern!(py, "_readable")),
        Readiness::Write => (intern!(py, "add_writer"), intern!(py, "_writable")),
    };
    event_loop.call_method1(method, (fd, owner.getattr(callback)?, fd))?;
    Ok(())
}

fn remove(event_loop: &Bound<'_, PyAny>, fd: RawFd, readiness: Readiness) -> PyResult<()> {
    let py = event_loop.py();
    let method = match readiness {
        Readiness::Read => intern!(py, "remove_reader"),
        Readiness::Write => intern!(py, "remove_writer"),
    };
    event_loop.call_method1(method, (fd,))?;
    Ok(())
}
