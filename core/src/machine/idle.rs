//! The idle limit: the longest gap with no bytes from a provider, from the request being sent
//! to the response head and between body bytes or stream events (`idle_timeout_ms`, 600 s by
//! default, as the official SDKs' read timeout), so that a stalled provider or a half-open
//! connection never keeps a call open forever.
//!
//! Progress costs one store per input ([`AttemptState::last_byte`], set by the head and body
//! handlers); the timer in the queue is not moved per chunk. When it fires, it either finds
//! bytes came since (and re-arms once, at the last byte plus the limit: one queue operation per
//! limit's worth of time, not per chunk) or finds the provider silent for the whole limit and
//! ends the attempt. A slow but steady body (a byte every 100 ms) is therefore never idle.

use super::*;

impl RouterMachine {
    /// The attempt's idle timer fired: push it on past the last bytes, or end the attempt as
    /// timed out (soft, fail over; a committed stream is interrupted).
    pub(super) fn idle_timer(&mut self, now: Time, attempt: AttemptId) {
        let Some(a) = self.attempts.get_mut(&attempt) else {
            return;
        };
        let expires = a.last_byte + a.idle;
        if expires > now {
            self.timers
                .arm(&mut a.timers, expires, Timer::Idle(attempt));
            return;
        }
        let idle = a.idle;
        self.timed_out(now, attempt, || {
            format!(
                "no bytes from the provider for {} ms (idle_timeout_ms)",
                idle.as_millis()
            )
        });
    }
}
