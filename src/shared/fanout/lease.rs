//! Sync mode: this instance's lease in the live set, which decides whether
//! it may serve stored responses at all.
//!
//! A sync purge waits only for registered instances, so an instance serves
//! stored responses only while it is certainly registered and has replayed
//! every purge completed before its registration began. A heartbeat sent at
//! `t` keeps the registration until at least `t + ttl` in Redis (which
//! counts from when it receives the beat); the lease ends at `t + ttl` less
//! a margin, by this instance's clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// What this instance knows of its own registration, and the one number the
/// hit path reads.
#[derive(Debug)]
pub(super) struct Lease {
    state: Mutex<State>,
    /// Until when stored responses may be served, in milliseconds after
    /// `base` (0: not now). Read on every hit; written under `state`.
    confirmed_until: AtomicU64,
    base: Instant,
}

#[derive(Debug, Default)]
struct State {
    /// Until when the last heartbeat's registration certainly holds.
    until: Option<Instant>,
    /// When the current unbroken registration began (the answer to the beat
    /// that made it). `None` after the registration may have been lost.
    registered: Option<Instant>,
    /// A replay that started after `registered` has completed.
    replayed: bool,
    /// The instance stopped following purges for good ([`Lease::end`]).
    ended: bool,
}

impl Lease {
    pub(super) fn new() -> Self {
        Lease {
            state: Mutex::new(State::default()),
            confirmed_until: AtomicU64::new(0),
            base: Instant::now(),
        }
    }

    /// Whether stored responses may be served now.
    pub(super) fn confirmed(&self) -> bool {
        let until = self.confirmed_until.load(Ordering::Acquire);
        until != 0 && self.millis(Instant::now()) < until
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    fn publish(&self, state: &State) {
        let until = match (state.replayed && !state.ended, state.until) {
            (true, Some(until)) => self.millis(until).max(1),
            _ => 0,
        };
        self.confirmed_until.store(until, Ordering::Release);
    }

    /// A heartbeat sent at `sent`, registering for `ttl`, was answered;
    /// `was_live` says whether the registration it renewed was unbroken.
    /// Returns whether a replay must follow before the instance is
    /// confirmed again (it joined, or joined again).
    pub(super) fn renewed(&self, sent: Instant, ttl: Duration, was_live: bool) -> bool {
        let margin = (ttl / 6).max(Duration::from_millis(10));
        let mut state = self.state.lock();
        let lapsed = !was_live
            || state.registered.is_none()
            || state.until.is_none_or(|until| until <= sent);
        state.until = Some(sent + ttl.saturating_sub(margin));
        if lapsed {
            state.registered = Some(Instant::now());
            state.replayed = false;
        }
        self.publish(&state);
        lapsed
    }

    /// A replay that started at `started` completed: it covers the purges
    /// completed before the registration if the registration is older.
    pub(super) fn replayed(&self, started: Instant) {
        let mut state = self.state.lock();
        if state.registered.is_some_and(|r| r <= started) {
            state.replayed = true;
            self.publish(&state);
        }
    }

    /// The registration may be gone (the connection to Redis broke, which is
    /// what a restart or a failover does): not confirmed until a heartbeat
    /// registers again and a replay follows.
    pub(super) fn lost(&self) {
        let mut state = self.state.lock();
        state.registered = None;
        state.replayed = false;
        self.publish(&state);
    }

    /// The instance stops following purges (shutdown): never confirmed
    /// again, whatever a heartbeat still in flight answers.
    pub(super) fn end(&self) {
        let mut state = self.state.lock();
        state.ended = true;
        self.publish(&state);
    }

    /// What the lease holds now, for an operator.
    pub(super) fn view(&self) -> LeaseView {
        let state = self.state.lock();
        let now = Instant::now();
        LeaseView {
            confirmed: self.confirmed(),
            registered_ms_ago: state
                .registered
                .map(|r| now.saturating_duration_since(r).as_millis() as u64),
            remaining_ms: state
                .until
                .map(|u| u.saturating_duration_since(now).as_millis() as u64),
            replayed: state.replayed,
            ended: state.ended,
        }
    }

    /// Whether [`Lease::end`] was called: the instance follows no purge.
    pub(super) fn ended(&self) -> bool {
        self.state.lock().ended
    }
}

/// A lease as an operator sees it ([`Lease::view`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LeaseView {
    /// Stored responses may be served now.
    pub confirmed: bool,
    /// How long ago the current unbroken registration began, if there is one.
    pub registered_ms_ago: Option<u64>,
    /// How long the last heartbeat's registration still certainly holds.
    pub remaining_ms: Option<u64>,
    /// A replay begun after the registration has completed.
    pub replayed: bool,
    /// The instance stopped following purges (shutdown).
    pub ended: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_millis(600);

    #[test]
    fn confirmed_only_after_a_registration_and_a_later_replay() {
        let lease = Lease::new();
        assert!(!lease.confirmed());
        let before = Instant::now();
        assert!(
            lease.renewed(Instant::now(), TTL, false),
            "joining needs a replay"
        );
        assert!(!lease.confirmed());
        // A replay that began before the registration does not count.
        lease.replayed(before);
        assert!(!lease.confirmed());
        lease.replayed(Instant::now());
        assert!(lease.confirmed());
        // An unbroken renewal keeps it confirmed, with no replay.
        assert!(!lease.renewed(Instant::now(), TTL, true));
        assert!(lease.confirmed());
    }

    #[test]
    fn a_lapse_or_a_loss_ends_the_confirmation() {
        let lease = Lease::new();
        lease.renewed(Instant::now(), TTL, false);
        lease.replayed(Instant::now());
        assert!(lease.confirmed());
        // Redis says the registration had lapsed: join again.
        assert!(lease.renewed(Instant::now(), TTL, false));
        assert!(!lease.confirmed());
        lease.replayed(Instant::now());
        assert!(lease.confirmed());
        lease.lost();
        assert!(!lease.confirmed());
        // After a loss, even a beat that finds the registration is a new one.
        assert!(lease.renewed(Instant::now(), TTL, true));
    }

    #[test]
    fn an_ended_lease_is_never_confirmed_again() {
        let lease = Lease::new();
        lease.renewed(Instant::now(), TTL, false);
        lease.replayed(Instant::now());
        assert!(lease.confirmed());
        lease.end();
        assert!(!lease.confirmed());
        // A heartbeat and a replay that were under way do not bring it back.
        lease.renewed(Instant::now(), TTL, true);
        lease.replayed(Instant::now());
        assert!(!lease.confirmed());
    }

    #[test]
    fn the_lease_runs_out_by_the_clock() {
        let lease = Lease::new();
        let short = Duration::from_millis(60);
        lease.renewed(Instant::now(), short, false);
        lease.replayed(Instant::now());
        assert!(lease.confirmed());
        std::thread::sleep(short);
        assert!(!lease.confirmed());
        // A beat sent after the lease ran out is a lapse, whatever Redis says.
        assert!(lease.renewed(Instant::now(), TTL, true));
    }
}
