//! Purge fan-out: every instance's `TagRegistry` follows one epoch kept in Redis.
//!
//! # The epoch across instances
//!
//! Redis holds the epoch (`{prefix}:epoch`, field `e`). A purge on any
//! instance runs one script that takes the next generation `g`, appends the
//! purge to a log stream and publishes it; every instance applies it to its
//! registry with [`TagRegistry::apply`], which records `g` for the tags and
//! moves the local epoch *mirror* up to `g`.
//!
//! An entry's `born` is read from the local mirror before its fetch starts.
//! The mirror only ever takes values Redis has handed out, and Redis handed
//! out `g` only after every generation below it, each after its backend write
//! (the backend purges after it writes). So if `born = b`, every purge with a
//! generation up to `b` happened before the fetch started, and the fetch saw
//! its write; every purge above `b` may have raced the fetch, and covers the
//! entry. Messages may arrive out of order across purgers, or late: a late
//! one still purges every entry born before it. That is why `born` must come
//! from the mirror, which is never ahead of the true epoch, and never from a
//! local counter.
//!
//! # Lost messages and the resync window
//!
//! Pub/sub loses messages only when the subscription's connection breaks. The
//! listener pings Redis every `heartbeat` and gives up on the connection when
//! a ping is not answered within another `heartbeat` (a ping's answer comes
//! after every message published before it), so a broken link is noticed
//! within `2 × heartbeat`. From then until it has resubscribed and replayed
//! the log, the instance is *suspect*: it serves only entries fetched within
//! the last `2 × heartbeat` (see [`Fanout::suspect_window`]), fetching the
//! rest again. A purge this instance missed therefore stops being served
//! within `2 × heartbeat` of being made. On reconnection it replays the log
//! from the last purge it applied (the log keeps the retention window, and a
//! purge older than that can no longer touch a live entry), and leaves the
//! suspect state.
//!
//! If Redis lost its state (restarted empty, or went back to an older
//! snapshot), the purges of the gap cannot be known. The epoch hash carries a
//! random identity; an instance that finds another identity than the one it
//! knew, or an epoch behind its mirror, raises the epoch past everything it
//! has seen and sets a global *floor* there: every entry born before it, on
//! every instance and in Redis, is purged. A purge script run with an
//! outdated identity is refused, so no purger can reuse a generation.
//!
//! # Purging everything
//!
//! A purge of everything takes the next generation `g` like any purge, and
//! makes it the global floor (field `f` of the epoch hash, the same floor a
//! loss of state sets): every instance raises its registry's floor to `g` on
//! the announcement, or when it synchronizes later. It is one counter, O(1),
//! whatever the number of entries, and it is logged and acknowledged as
//! other purges are.
//!
//! # Sync purges
//!
//! With `purge.consistency: sync`, every instance that applies a sync purge
//! acknowledges it (`{prefix}:acks`, score = generation), and the purger
//! answers once every live instance (`{prefix}:instances`, refreshed by each
//! instance's heartbeat) has acknowledged, or `purge.sync_timeout` passed.
//!
//! A complete answer promises that no instance serves anything older, so an
//! instance the purger did not wait for must not serve stored responses. In
//! sync mode each instance therefore holds a *lease* (`lease.rs`): a
//! heartbeat sent at `t` keeps it registered until at least
//! `t + 3 × heartbeat` in Redis (Redis counts from when it receives the
//! beat), and the instance serves stored responses only until
//! `t + 3 × heartbeat` less a margin, by its own clock
//! ([`Fanout::confirmed`]). A beat that finds the registration broken (first
//! beat, a lapse, Redis lost the set) starts a new one, and the instance
//! serves again only after a log replay begun after it joined, which applies
//! every purge completed while it was not waited for. A broken connection to
//! Redis (a restart or a failover) may have lost the set, so it ends the
//! lease at once. Until confirmed, requests on cached routes bypass the
//! cache (`detail=unconfirmed`): the origin answers, nothing is stored or
//! served. Async mode keeps the resync window above.
//!
//! An instance may be slow to see its connection break (it is busy, or its
//! path to Redis stalls), and until it does it trusts its lease. When Redis
//! lost its state, the live set went with it, so a purge made on the new
//! state could not wait for such an instance. The epoch hash therefore
//! records when its identity was created (field `c`), and a sync purge is
//! not complete until `3 × heartbeat` after that: every lease granted by the
//! old state has run out by then. Every instance of a cluster must share
//! `redis.heartbeat` for this to hold.
//!
//! Graceful shutdown leaves the live set before the instance has drained,
//! so [`Fanout::halt`] ends the lease for good (and makes an async instance
//! suspect): what it still answers while it drains comes from the origin.
//!
//! # Redis down
//!
//! A purge that cannot reach Redis is applied locally without moving the
//! mirror ([`TagRegistry::purge_pending`]), kept in an outbox that is sent as
//! soon as Redis answers again, and reported as not shared.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::Shared;
use crate::config::Consistency;
use crate::generations::TagRegistry;

mod follow;
mod lease;
mod publish;
mod wire;

use follow::SyncState;
pub use lease::LeaseView;
use lease::Lease;
use publish::Outbox;

/// What the shared part of a purge did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FanoutReport {
    /// `async` or `sync`.
    pub consistency: &'static str,
    /// Async: the purge reached Redis. Sync: every live instance applied it.
    pub complete: bool,
    /// Instances alive when the purge was answered (sync only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<usize>,
    /// Instances that applied it, this one included (sync only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acked: Option<usize>,
    /// Live instances that had not acknowledged it in time (sync only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// One instance's view of the fan-out ([`Fanout::view`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct FanoutView {
    /// This instance's identity in the live set and in acknowledgements.
    pub instance: String,
    /// `async` or `sync`.
    pub consistency: &'static str,
    /// The subscription is down or not yet replayed.
    pub suspect: bool,
    /// The registry has been synchronized with Redis at least once.
    pub synced: bool,
    /// The id of the newest purge log entry applied.
    pub last_log_id: Option<String>,
    /// Sync mode: the lease in the live set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseView>,
}

/// A purge that could not be shared.
#[derive(Debug, Clone, thiserror::Error)]
#[error("purge applied on this instance only: {reason}")]
pub struct NotShared {
    /// Why Redis could not take it.
    pub reason: String,
    /// The local generation it was recorded with.
    pub generation: u64,
}

/// Keeps one instance's registry in step with every other instance.
pub struct Fanout {
    shared: Arc<Shared>,
    registry: Arc<TagRegistry>,
    consistency: Consistency,
    sync_timeout: Duration,
    state: Mutex<SyncState>,
    outbox: Mutex<Outbox>,
    acks: Notify,
    stop: Notify,
    started: std::sync::atomic::AtomicBool,
    /// When the instance last had a healthy subscription, for the suspect window.
    suspect_since: Mutex<Option<Instant>>,
    /// Sync mode: this instance's registration in the live set.
    lease: Lease,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl Fanout {
    /// A fan-out for `registry` over `shared`. Nothing runs until [`Self::start`].
    pub fn new(
        shared: Arc<Shared>,
        registry: Arc<TagRegistry>,
        consistency: Consistency,
        sync_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Fanout {
            shared,
            registry,
            consistency,
            sync_timeout,
            state: Mutex::new(SyncState::default()),
            outbox: Mutex::new(Outbox::default()),
            acks: Notify::new(),
            stop: Notify::new(),
            started: std::sync::atomic::AtomicBool::new(false),
            suspect_since: Mutex::new(Some(Instant::now())),
            lease: Lease::new(),
        })
    }

    /// The shared Redis handle.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// How long after its fetch an entry may still be served while this
    /// instance may have missed purges: `2 × heartbeat`. `None` while the
    /// subscription is up and synchronized.
    pub fn suspect_window(&self) -> Option<Duration> {
        self.suspect_since
            .lock()
            .map(|_| self.shared.settings().heartbeat * 2)
    }

    /// Whether an entry last fetched or revalidated at `updated` may be served.
    /// Async: always while synchronized; while suspect, only within the
    /// window. Sync: while [`Self::confirmed`], whatever its age.
    pub fn trusts(&self, updated: SystemTime) -> bool {
        if self.consistency == Consistency::Sync {
            return self.lease.confirmed();
        }
        match self.suspect_window() {
            None => true,
            Some(window) => SystemTime::now()
                .duration_since(updated)
                .map_or(true, |age| age <= window),
        }
    }

    /// Sync mode: whether a sync purge answered as complete cannot be newer
    /// than what this instance serves: it is certainly in the live set (so
    /// every sync purge waits for its acknowledgement) and has replayed the
    /// purges completed before it joined. Until then a request on a cached
    /// route bypasses the cache. Always true in async mode.
    pub fn confirmed(&self) -> bool {
        self.consistency != Consistency::Sync || self.lease.confirmed()
    }

    /// How long a heartbeat keeps an instance in the live set: three
    /// heartbeats. Every instance of a cluster is expected to share
    /// `redis.heartbeat`.
    pub(super) fn registration_ttl(&self) -> Duration {
        self.shared.settings().heartbeat * 3
    }

    /// What this instance knows of its place among the others, for an
    /// operator explaining a verdict: its identity in Redis, whether it is
    /// suspect (async) and its lease (sync), and the last purge it applied.
    pub fn view(&self) -> FanoutView {
        let state = self.state.lock();
        FanoutView {
            instance: self.shared.instance().to_string(),
            consistency: match self.consistency {
                Consistency::Sync => "sync",
                Consistency::Async => "async",
            },
            suspect: self.suspect_since.lock().is_some(),
            synced: state.synced,
            last_log_id: state.last_log_id.clone(),
            lease: (self.consistency == Consistency::Sync).then(|| self.lease.view()),
        }
    }

    fn set_suspect(&self, suspect: bool) {
        let mut since = self.suspect_since.lock();
        // A replay that ends after `halt` does not make a halted instance
        // trusted again.
        let suspect = suspect || self.lease.ended();
        match (suspect, since.is_some()) {
            (true, false) => {
                tracing::warn!("purge subscription lost: serving only entries younger than the resync window until it is back");
                *since = Some(Instant::now());
            }
            (false, true) => *since = None,
            _ => {}
        }
        drop(since);
        self.shared.set_subscribed(!suspect);
    }
}

#[cfg(test)]
mod tests {}
