//! The per-endpoint circuit breaker, and the small clock and cancellation helpers the client shares with
//! it.

#[allow(unused_imports)]
use super::*;

pub(super) fn unix_now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

pub(super) fn is_cancelled(cancel: &watch::Receiver<bool>) -> bool {
    *cancel.borrow() || cancel.has_changed().is_err()
}

/// Completes when the value becomes `true` or the sender is dropped.
pub(super) async fn wait_cancelled(cancel: &mut watch::Receiver<bool>) {
    let _ = cancel.wait_for(|cancelled| *cancelled).await;
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code panics while holding these locks; if one ever did, its state is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One endpoint's circuit breaker.
#[derive(Default)]
pub(super) struct Breaker {
    pub(super) state: Mutex<BreakerInner>,
    /// Woken on every state change, so waiting deliveries look again.
    pub(super) changed: Notify,
}

/// The breaker's state machine, kept free of I/O and clocks so it can be tested directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BreakerInner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

impl Default for BreakerInner {
    fn default() -> Self {
        Self::Closed { failures: 0 }
    }
}

/// What a delivery may do now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// Send; `probe` when this request is the half-open probe that decides.
    Send { probe: bool },
    /// The breaker is open until then.
    WaitUntil(Instant),
    /// Another delivery's probe is in flight.
    WaitForProbe,
}

impl BreakerInner {
    pub(super) fn admit(&mut self, now: Instant) -> Admission {
        match *self {
            Self::Closed { .. } => Admission::Send { probe: false },
            Self::Open { until } if now < until => Admission::WaitUntil(until),
            Self::Open { .. } | Self::HalfOpen { probing: false } => {
                *self = Self::HalfOpen { probing: true };
                Admission::Send { probe: true }
            }
            Self::HalfOpen { probing: true } => Admission::WaitForProbe,
        }
    }

    /// Records a success (or a permanent rejection: the endpoint is up). Returns whether it was not closed.
    pub(super) fn on_success(&mut self) -> bool {
        let was_closed = matches!(self, Self::Closed { .. });
        *self = Self::Closed { failures: 0 };
        !was_closed
    }

    /// Records a failed attempt. Returns whether the breaker opened because of it.
    pub(super) fn on_failure(
        &mut self,
        probe: bool,
        now: Instant,
        threshold: u32,
        cooldown: Duration,
    ) -> bool {
        let until = now.checked_add(cooldown).unwrap_or(now);
        match self {
            Self::Closed { failures } => {
                *failures = failures.saturating_add(1);
                if *failures >= threshold {
                    *self = Self::Open { until };
                    true
                } else {
                    false
                }
            }
            Self::HalfOpen { .. } if probe => {
                *self = Self::Open { until };
                true
            }
            // A request sent before the breaker opened: the probe decides, not this straggler.
            Self::HalfOpen { .. } | Self::Open { .. } => false,
        }
    }

    /// The probe was dropped (its delivery cancelled) without a result: let another delivery probe.
    pub(super) fn on_probe_abandoned(&mut self) {
        if *self == (Self::HalfOpen { probing: true }) {
            *self = Self::HalfOpen { probing: false };
        }
    }

    pub(super) fn public_state(&self, now: Instant) -> BreakerState {
        match *self {
            Self::Closed { .. } => BreakerState::Closed,
            Self::Open { until } if now < until => BreakerState::Open,
            Self::Open { .. } | Self::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// Permission to send one request; reports its result to the breaker. Dropped unsettled (cancelled
/// mid-request), a probe hands the probing turn back.
pub(super) struct Permit<'b> {
    pub(super) breaker: &'b Breaker,
    pub(super) probe: bool,
    pub(super) settled: bool,
}

impl Permit<'_> {
    pub(super) fn succeeded(mut self, redacted: &str) {
        self.settled = true;
        let reopened = lock(&self.breaker.state).on_success();
        self.breaker.changed.notify_waiters();
        if reopened {
            info!(url = %redacted, "Webhook circuit breaker closed; the endpoint answered.");
        }
    }

    pub(super) fn failed(mut self, redacted: &str, options: &WebhookOptions) {
        self.settled = true;
        let opened = lock(&self.breaker.state).on_failure(
            self.probe,
            Instant::now(),
            options.breaker_threshold,
            options.breaker_cooldown,
        );
        self.breaker.changed.notify_waiters();
        if opened {
            warn!(
                url = %redacted,
                cooldown_ms = u64::try_from(options.breaker_cooldown.as_millis()).unwrap_or(u64::MAX),
                probe = self.probe,
                "Webhook circuit breaker opened; pausing deliveries to this endpoint."
            );
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            lock(&self.breaker.state).on_probe_abandoned();
            self.breaker.changed.notify_waiters();
        }
    }
}
