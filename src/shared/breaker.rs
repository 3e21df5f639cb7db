//! The circuit breaker in front of Redis: stop calling a sick Redis, probe it back.
//!
//! Closed: every call goes through, and `failures` consecutive failures open
//! it. Open: no call goes through until `probe_interval` has passed since it
//! opened; then one caller is let through as the probe (half-open). A probe
//! that succeeds closes the breaker, one that fails opens it again for another
//! interval. A probe whose caller vanished (its future dropped) does not wedge
//! the breaker: after another interval a new probe is let through.
//!
//! The closed path is one atomic load, so the breaker costs nothing on the hit
//! path while Redis is healthy.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// The state of a [`Breaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the next probe.
    Open,
    /// One probe call is in flight; others are refused.
    HalfOpen,
}

impl BreakerState {
    /// The value of the `tagcache_redis_breaker_state` gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }

    /// The name shown in `/health`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// A lock-free circuit breaker.
#[derive(Debug)]
pub struct Breaker {
    state: AtomicU8,
    failures: AtomicU32,
    /// When the breaker last opened or let a probe through, in nanoseconds since `base`.
    since: AtomicU64,
    threshold: u32,
    probe_interval: Duration,
    base: Instant,
    /// Time added to the clock by tests, in nanoseconds.
    #[cfg(test)]
    skew: AtomicU64,
}

impl Breaker {
    /// A closed breaker that opens after `threshold` consecutive failures and
    /// probes every `probe_interval` while open.
    pub fn new(threshold: u32, probe_interval: Duration) -> Self {
        Breaker {
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            since: AtomicU64::new(0),
            threshold: threshold.max(1),
            probe_interval,
            base: Instant::now(),
            #[cfg(test)]
            skew: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        let now = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        #[cfg(test)]
        let now = now.saturating_add(self.skew.load(Ordering::Relaxed));
        now
    }

    /// Moves the breaker's clock forward.
    #[cfg(test)]
    fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.skew.fetch_add(by, Ordering::Relaxed);
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        match self.state.load(Ordering::Acquire) {
            CLOSED => BreakerState::Closed,
            OPEN => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }

    /// Whether a call may go through now. When it returns true in the open or
    /// half-open state, the caller is the probe and must report its outcome.
    #[inline]
    pub fn allow(&self) -> bool {
        let state = self.state.load(Ordering::Acquire);
        if state == CLOSED {
            return true;
        }
        let now = self.now();
        let since = self.since.load(Ordering::Acquire);
        let interval = u64::try_from(self.probe_interval.as_nanos()).unwrap_or(u64::MAX);
        if now.saturating_sub(since) < interval {
            return false;
        }
        // Only the caller that moves `since` forward becomes the probe.
        if self
            .since
            .compare_exchange(since, now, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        self.state.store(HALF_OPEN, Ordering::Release);
        true
    }

    /// Records a successful call. Returns true if this closed the breaker.
    #[inline]
    pub fn success(&self) -> bool {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.state.load(Ordering::Acquire) != CLOSED {
            return self.state.swap(CLOSED, Ordering::AcqRel) != CLOSED;
        }
        false
    }

    /// Records a failed call. Returns true if this opened the breaker.
    pub fn failure(&self) -> bool {
        match self.state.load(Ordering::Acquire) {
            CLOSED => {
                let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
                if failures >= self.threshold
                    && self
                        .state
                        .compare_exchange(CLOSED, OPEN, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    self.since.store(self.now(), Ordering::Release);
                    return true;
                }
                false
            }
            HALF_OPEN => {
                self.since.store(self.now(), Ordering::Release);
                self.state.store(OPEN, Ordering::Release);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_back() {
        let b = Breaker::new(3, Duration::from_secs(10));
        assert!(b.allow());
        assert!(!b.failure());
        assert!(!b.failure());
        assert!(
            !b.success(),
            "a success resets the count without a transition"
        );
        assert!(!b.failure());
        assert!(!b.failure());
        assert!(b.failure(), "third consecutive failure opens");
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow());
        b.advance(Duration::from_secs(11));
        assert!(b.allow(), "one probe after the interval");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(!b.allow(), "only one probe at a time");
        assert!(b.failure(), "a failed probe reopens");
        assert_eq!(b.state(), BreakerState::Open);
        b.advance(Duration::from_secs(11));
        assert!(b.allow());
        assert!(b.success(), "a good probe closes");
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow());
    }

    #[test]
    fn a_lost_probe_does_not_wedge_the_breaker() {
        let b = Breaker::new(1, Duration::from_secs(10));
        b.failure();
        b.advance(Duration::from_secs(11));
        assert!(b.allow());
        // The probe's caller never reports back.
        b.advance(Duration::from_secs(11));
        assert!(b.allow(), "a new probe after another interval");
    }
}
