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
//! sync mode each instance therefore holds a *lease*: a heartbeat sent at `t`
//! keeps it registered until at least `t + 3 × heartbeat` in Redis (Redis
//! counts from when it receives the beat), and the instance serves stored
//! responses only until `t + 3 × heartbeat` less a margin, by its own clock
//! ([`Fanout::confirmed`]). A beat that finds the registration broken (first
//! beat, a lapse, Redis lost the set) starts a new one, and the instance
//! serves again only after a log replay begun after it joined, which
//! applies every purge completed while it was not waited for. A broken
//! connection to Redis (a restart or a failover) may have lost the set, so
//! it ends the lease at once. Until confirmed, requests on cached routes
//! bypass the cache (`detail=unconfirmed`): the origin answers, nothing is
//! stored or served. Async mode keeps the resync window above.
//!
//! # Redis down
//!
//! A purge that cannot reach Redis is applied locally without moving the
//! mirror ([`TagRegistry::purge_pending`]), kept in an outbox that is sent as
//! soon as Redis answers again, and reported as not shared.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::Value;
use tokio::sync::Notify;

use super::{int, scripts, text, Shared, SharedError};
use crate::config::Consistency;
use crate::generations::TagRegistry;

/// Most tags kept in the outbox while Redis is unreachable; beyond it, the
/// outbox is replaced by a global floor once Redis is back.
const OUTBOX_LIMIT: usize = 100_000;
/// Log entries read per round trip when replaying.
const REPLAY_BATCH: usize = 512;

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

/// What a purge covers.
#[derive(Debug, Clone, Copy)]
enum Scope<'a> {
    /// Entries with any of these tags, dropped or (`soft`) marked stale.
    Tags { tags: &'a [u64], soft: bool },
    /// Every entry.
    All,
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

#[derive(Debug, Default)]
struct SyncState {
    /// The epoch identity this instance last synchronized with.
    known_id: Option<String>,
    /// The id of the newest log entry applied.
    last_log_id: Option<String>,
    /// Whether the registry has been synchronized at least once.
    synced: bool,
}

#[derive(Debug, Default)]
struct Outbox {
    hard: HashSet<u64>,
    soft: HashSet<u64>,
    overflow: bool,
    /// A purge of everything is waiting; it covers every tag in the outbox.
    all: bool,
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
    lease: Mutex<Lease>,
    /// Sync mode: until when stored responses may be served, in milliseconds
    /// after `base` (0: not now). Read on every hit; written with `lease`.
    confirmed_until: AtomicU64,
    /// The origin of `confirmed_until`.
    base: Instant,
}

/// Sync mode: what this instance knows of its own registration in the live
/// set (`{prefix}:instances`). A sync purge waits only for registered
/// instances, so an instance serves stored responses only while it is
/// certainly registered and has replayed every purge completed before its
/// registration began.
#[derive(Debug, Default)]
struct Lease {
    /// Until when the last heartbeat's registration certainly holds: sent
    /// time plus its time to live, less a margin (local clock; Redis counts
    /// the same duration from a later moment, when it receives the beat).
    until: Option<Instant>,
    /// When the current unbroken registration began (the answer to the beat
    /// that made it). `None` after the registration may have been lost.
    registered: Option<Instant>,
    /// A resync that started after `registered` has completed.
    replayed: bool,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

/// A log entry or pub/sub message, parsed.
#[derive(Debug, PartialEq, Eq)]
struct Purge {
    generation: u64,
    id: String,
    soft: bool,
    sync: bool,
    tags: Vec<u64>,
    /// A purge of everything: its generation is a floor.
    all: bool,
}

fn parse_tags(s: &str) -> Option<Vec<u64>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    s.split(',')
        .map(|t| u64::from_str_radix(t, 16).ok())
        .collect()
}

fn tags_arg(tags: &[u64]) -> String {
    let mut out = String::with_capacity(tags.len() * 17);
    for (i, t) in tags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("{t:016x}"));
    }
    out
}

/// Whether an error means the connection broke (and redis-rs reconnects),
/// rather than Redis refusing or failing the command.
fn broken_connection(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || e.is_io_error() || e.is_connection_refusal()
}

/// A stream id `ms-seq` as a comparable pair.
fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// A message on the channel.
#[derive(Debug, PartialEq, Eq)]
enum Message {
    Purge(Purge),
    Ack,
    /// A floor; `all` when a purge of everything set it, rather than a loss
    /// of state.
    Floor {
        floor: u64,
        id: String,
        all: bool,
    },
}

fn parse_message(payload: &[u8]) -> Option<Message> {
    let s = std::str::from_utf8(payload).ok()?;
    let mut parts = s.splitn(7, '|');
    match parts.next()? {
        "p" => {
            let generation = parts.next()?.parse().ok()?;
            let id = parts.next()?.to_string();
            let soft = parts.next()? == "1";
            let sync = parts.next()? == "1";
            let _origin = parts.next()?;
            let tags = parse_tags(parts.next()?)?;
            Some(Message::Purge(Purge {
                generation,
                id,
                soft,
                sync,
                tags,
                all: false,
            }))
        }
        "a" => Some(Message::Ack),
        "f" => {
            let floor = parts.next()?.parse().ok()?;
            let id = parts.next()?.to_string();
            let all = parts.next() == Some("a");
            Some(Message::Floor { floor, id, all })
        }
        _ => None,
    }
}

/// Reads one entry of an `XRANGE` reply: `[id, [field, value, ...]]`.
fn parse_log_entry(v: &Value) -> Option<Purge> {
    let Value::Array(parts) = v else { return None };
    let id = text(parts.first()?)?;
    let Value::Array(fields) = parts.get(1)? else {
        return None;
    };
    let mut purge = Purge {
        generation: 0,
        id,
        soft: false,
        sync: false,
        tags: Vec::new(),
        all: false,
    };
    for pair in fields.chunks_exact(2) {
        let name = text(&pair[0])?;
        let value = text(&pair[1])?;
        match name.as_str() {
            "g" => purge.generation = value.parse().ok()?,
            "s" => purge.soft = value == "1",
            "y" => purge.sync = value == "1",
            "t" => purge.tags = parse_tags(&value)?,
            "a" => purge.all = value == "1",
            _ => {}
        }
    }
    (purge.generation > 0).then_some(purge)
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
            lease: Mutex::new(Lease::default()),
            confirmed_until: AtomicU64::new(0),
            base: Instant::now(),
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
            return self.confirmed();
        }
        match self.suspect_window() {
            None => true,
            Some(window) => SystemTime::now()
                .duration_since(updated)
                .map_or(true, |age| age <= window),
        }
    }

    /// Sync mode: whether a sync purge answered as complete cannot be newer
    /// than what this instance serves. True while this instance is
    /// certainly in the live set (so every sync purge waits for its
    /// acknowledgement) and has replayed the purges completed before it
    /// joined. Until then a request on a cached route bypasses the cache.
    /// Always true in async mode.
    pub fn confirmed(&self) -> bool {
        if self.consistency != Consistency::Sync {
            return true;
        }
        let until = self.confirmed_until.load(Ordering::Acquire);
        until != 0 && self.millis(Instant::now()) < until
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    /// Publishes `lease` to the hit path.
    fn publish_lease(&self, lease: &Lease) {
        let until = match (lease.replayed, lease.until) {
            (true, Some(until)) => self.millis(until).max(1),
            _ => 0,
        };
        self.confirmed_until.store(until, Ordering::Release);
    }

    /// A heartbeat sent at `sent` was answered: `was_live` says whether the
    /// registration it renewed was still unbroken. Returns whether a replay
    /// must follow before the instance is confirmed again.
    fn renewed(&self, sent: Instant, ttl: Duration, was_live: bool) -> bool {
        let margin = (ttl / 6).max(Duration::from_millis(10));
        let mut lease = self.lease.lock();
        let lapsed = !was_live
            || lease.registered.is_none()
            || lease.until.is_none_or(|until| until <= sent);
        lease.until = Some(sent + ttl.saturating_sub(margin));
        if lapsed {
            lease.registered = Some(Instant::now());
            lease.replayed = false;
        }
        self.publish_lease(&lease);
        lapsed
    }

    /// A resync that started at `started` completed: the purges completed
    /// before the registration are applied if the registration is older.
    fn replayed(&self, started: Instant) {
        let mut lease = self.lease.lock();
        if lease.registered.is_some_and(|r| r <= started) {
            lease.replayed = true;
            self.publish_lease(&lease);
        }
    }

    /// The registration may be gone (the connection to Redis broke, which
    /// is what a restart or a failover does): not confirmed until a
    /// heartbeat registers again and a replay follows.
    fn registration_lost(&self) {
        let mut lease = self.lease.lock();
        lease.registered = None;
        lease.replayed = false;
        self.publish_lease(&lease);
    }

    fn set_suspect(&self, suspect: bool) {
        let mut since = self.suspect_since.lock();
        match (suspect, since.is_some()) {
            (true, false) => {
                log::warn!("purge subscription lost: serving only entries younger than the resync window until it is back");
                *since = Some(Instant::now());
            }
            (false, true) => *since = None,
            _ => {}
        }
        drop(since);
        self.shared.set_subscribed(!suspect);
    }

    /// Purges `tags` on every instance: through Redis, then locally with the
    /// generation Redis gave. In sync mode, waits for every live instance.
    ///
    /// # Errors
    /// [`NotShared`] when Redis could not take the purge: it is then applied
    /// here only, and queued to be sent once Redis answers again.
    pub async fn purge(&self, tags: &[u64], soft: bool) -> Result<(u64, FanoutReport), NotShared> {
        self.purge_scope(Scope::Tags { tags, soft }).await
    }

    /// Purges every entry on every instance: a new floor, through Redis, then
    /// locally. In sync mode, waits for every live instance.
    ///
    /// # Errors
    /// [`NotShared`] when Redis could not take the purge: it is then applied
    /// here only (nothing fetched before it reaches Redis is served), and
    /// sent once Redis answers again.
    pub async fn purge_all(&self) -> Result<(u64, FanoutReport), NotShared> {
        self.purge_scope(Scope::All).await
    }

    async fn purge_scope(&self, scope: Scope<'_>) -> Result<(u64, FanoutReport), NotShared> {
        let start = Instant::now();
        let sync = self.consistency == Consistency::Sync;
        let metrics = self.shared.metrics();
        let generation = match self.purge_in_redis(scope, sync).await {
            Ok(generation) => generation,
            Err(e) => {
                let generation = match scope {
                    Scope::Tags { tags, soft } => {
                        let generation = self.registry.purge_pending(tags, soft);
                        self.queue(tags, soft);
                        generation
                    }
                    Scope::All => {
                        let generation = self.registry.purge_all_pending();
                        self.outbox.lock().all = true;
                        generation
                    }
                };
                metrics.fanout.with_label_values(&["failed"]).inc();
                return Err(NotShared {
                    reason: e.to_string(),
                    generation,
                });
            }
        };
        match scope {
            Scope::Tags { tags, soft } => self.registry.apply(tags, generation, soft),
            Scope::All => self.registry.set_floor(generation),
        }
        let report = if sync {
            self.wait_for_acks(generation, start + self.sync_timeout)
                .await
        } else {
            FanoutReport {
                consistency: "async",
                complete: true,
                live: None,
                acked: None,
                missing: Vec::new(),
            }
        };
        let result = if report.complete { "ok" } else { "partial" };
        metrics.fanout.with_label_values(&[result]).inc();
        metrics
            .fanout_latency
            .observe(start.elapsed().as_secs_f64());
        Ok((generation, report))
    }

    /// Runs the purge script, synchronizing first if the store's identity
    /// changed. A connection that broke since the last command (Redis
    /// restarted, failed over) is retried once on a new one.
    async fn purge_in_redis(&self, scope: Scope<'_>, sync: bool) -> Result<u64, SharedError> {
        let mut resynced = false;
        let mut reconnected = false;
        loop {
            let known = self.state.lock().known_id.clone();
            let Some(known) = known else {
                if resynced {
                    return Err(SharedError::Reply("purge identity"));
                }
                resynced = true;
                self.resync().await?;
                continue;
            };
            let keys = self.shared.keys();
            let reply: Result<Value, SharedError> = self
                .shared
                .call("purge", |mut c| {
                    let mut inv = match scope {
                        Scope::Tags { tags, soft } => {
                            let mut inv = scripts::PURGE.prepare_invoke();
                            inv.key(keys.epoch());
                            inv.key(keys.log());
                            inv.arg(self.registry.retention().as_millis() as u64);
                            inv.arg(u8::from(soft));
                            inv.arg(u8::from(sync));
                            inv.arg(self.shared.instance());
                            inv.arg(tags_arg(tags));
                            inv
                        }
                        Scope::All => {
                            let mut inv = scripts::PURGE_ALL.prepare_invoke();
                            inv.key(keys.epoch());
                            inv.key(keys.log());
                            inv.arg(self.registry.retention().as_millis() as u64);
                            inv.arg(u8::from(sync));
                            inv.arg(self.shared.instance());
                            inv
                        }
                    };
                    inv.arg(keys.channel());
                    inv.arg(known);
                    async move { inv.invoke_async(&mut c).await }
                })
                .await;
            let reply = match reply {
                Err(SharedError::Redis(e)) if !reconnected && broken_connection(&e) => {
                    reconnected = true;
                    continue;
                }
                other => other?,
            };
            let Value::Array(parts) = reply else {
                return Err(SharedError::Reply("purge"));
            };
            match parts.first().and_then(int) {
                Some(-1) if !resynced => {
                    // Redis lost its state since we last synchronized.
                    resynced = true;
                    self.resync().await?;
                }
                Some(g) if g > 0 => {
                    return u64::try_from(g).map_err(|_| SharedError::Reply("purge"))
                }
                _ => return Err(SharedError::Reply("purge")),
            }
        }
    }

    async fn wait_for_acks(&self, generation: u64, deadline: Instant) -> FanoutReport {
        let keys = self.shared.keys();
        let mut last = (None, Vec::new());
        loop {
            let notified = self.acks.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let reply: Result<Value, _> = self
                .shared
                .call("sync_check", |mut c| {
                    let mut inv = scripts::MISSING.prepare_invoke();
                    inv.key(keys.instances());
                    inv.key(keys.acks());
                    inv.arg(generation);
                    inv.arg(self.shared.instance());
                    async move { inv.invoke_async(&mut c).await }
                })
                .await;
            if let Ok(Value::Array(parts)) = reply {
                let live = parts.first().and_then(int).map(|n| n.max(0) as usize);
                let missing: Vec<String> = match parts.get(1) {
                    Some(Value::Array(m)) => m.iter().filter_map(text).collect(),
                    _ => Vec::new(),
                };
                if missing.is_empty() {
                    let live = live.unwrap_or(1).max(1);
                    return FanoutReport {
                        consistency: "sync",
                        complete: true,
                        live: Some(live),
                        acked: Some(live),
                        missing,
                    };
                }
                last = (live, missing);
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let wait = (deadline - now).min(Duration::from_millis(50));
            let _ = tokio::time::timeout(wait, notified).await;
        }
        let (live, missing) = last;
        let live = live.unwrap_or(1).max(1);
        FanoutReport {
            consistency: "sync",
            complete: false,
            live: Some(live),
            acked: Some(live.saturating_sub(missing.len())),
            missing,
        }
    }

    fn queue(&self, tags: &[u64], soft: bool) {
        let mut outbox = self.outbox.lock();
        if outbox.all {
            // The waiting purge of everything covers these tags.
            return;
        }
        if outbox.hard.len() + outbox.soft.len() + tags.len() > OUTBOX_LIMIT {
            outbox.overflow = true;
            outbox.hard.clear();
            outbox.soft.clear();
            return;
        }
        let set = if soft {
            &mut outbox.soft
        } else {
            &mut outbox.hard
        };
        set.extend(tags.iter().copied());
    }

    /// Sends the purges made while Redis was unreachable.
    async fn flush_outbox(&self) {
        let (hard, soft, overflow, all) = {
            let outbox = self.outbox.lock();
            if outbox.hard.is_empty() && outbox.soft.is_empty() && !outbox.overflow && !outbox.all {
                return;
            }
            (
                outbox.hard.iter().copied().collect::<Vec<_>>(),
                outbox.soft.iter().copied().collect::<Vec<_>>(),
                outbox.overflow,
                outbox.all,
            )
        };
        if all {
            // Sent as what it is, a purge of everything: it covers every tag
            // queued with it (their entries were born before its generation).
            match self.purge_in_redis(Scope::All, false).await {
                Ok(generation) => {
                    self.registry.set_floor(generation);
                    let mut outbox = self.outbox.lock();
                    outbox.all = false;
                    outbox.overflow = false;
                    outbox.hard.clear();
                    outbox.soft.clear();
                    log::info!("sent the purge of everything made while redis was unreachable");
                }
                Err(e) => log::debug!("outbox not sent yet: {e}"),
            }
            return;
        }
        if overflow {
            if self.sync_with_redis(true).await.is_ok() {
                self.outbox.lock().overflow = false;
            }
            return;
        }
        for (tags, is_soft) in [(hard, false), (soft, true)] {
            if tags.is_empty() {
                continue;
            }
            match self
                .purge_in_redis(
                    Scope::Tags {
                        tags: &tags,
                        soft: is_soft,
                    },
                    false,
                )
                .await
            {
                Ok(generation) => {
                    self.registry.apply(&tags, generation, is_soft);
                    let mut outbox = self.outbox.lock();
                    let set = if is_soft {
                        &mut outbox.soft
                    } else {
                        &mut outbox.hard
                    };
                    for t in &tags {
                        set.remove(t);
                    }
                    log::info!(
                        "sent {} tags purged while redis was unreachable",
                        tags.len()
                    );
                }
                Err(e) => {
                    log::debug!("outbox not sent yet: {e}");
                    return;
                }
            }
        }
    }

    /// Applies one purge; acknowledges it when it is a sync purge.
    /// Applies one purge. Returns its generation when it is a sync purge,
    /// which the caller acknowledges.
    fn apply(&self, purge: &Purge) -> Option<u64> {
        if purge.all {
            self.registry.set_floor(purge.generation);
        } else {
            self.registry
                .apply(&purge.tags, purge.generation, purge.soft);
        }
        {
            let mut state = self.state.lock();
            let newer = match (&state.last_log_id, stream_id(&purge.id)) {
                (Some(last), Some(id)) => stream_id(last).is_none_or(|l| id > l),
                (None, _) => true,
                (_, None) => false,
            };
            if newer {
                state.last_log_id = Some(purge.id.clone());
            }
        }
        purge.sync.then_some(purge.generation)
    }

    /// Acknowledges every purge up to sync purge `generation` (applied in order).
    fn ack(&self, generation: u64) {
        {
            let shared = self.shared.clone();
            let ttl = (self.sync_timeout * 4).max(Duration::from_secs(10));
            self.shared.spawn(async move {
                let keys = shared.keys().clone();
                let instance = shared.instance().to_string();
                let _ = shared
                    .call("ack", |mut c| {
                        let mut inv = scripts::ACK.prepare_invoke();
                        inv.key(keys.acks());
                        inv.arg(instance);
                        inv.arg(generation);
                        inv.arg(ttl.as_millis() as u64);
                        inv.arg(keys.channel());
                        async move { inv.invoke_async::<Value>(&mut c).await }
                    })
                    .await;
            });
        }
    }

    fn on_message(&self, payload: &[u8]) {
        match parse_message(payload) {
            Some(Message::Purge(p)) => {
                if let Some(generation) = self.apply(&p) {
                    self.ack(generation);
                }
            }
            Some(Message::Ack) => self.acks.notify_waiters(),
            Some(Message::Floor { floor, id, all }) => {
                self.registry.set_floor(floor);
                self.state.lock().known_id = Some(id);
                if !all {
                    self.shared
                        .metrics()
                        .resyncs
                        .with_label_values(&["floor"])
                        .inc();
                }
            }
            None => log::debug!("ignored a malformed purge message"),
        }
    }

    /// Synchronizes with the shared epoch: detects lost state (and floors),
    /// then replays the log from the last purge applied.
    async fn resync(&self) -> Result<(), SharedError> {
        self.sync_with_redis(false).await
    }

    async fn sync_with_redis(&self, force_floor: bool) -> Result<(), SharedError> {
        let keys = self.shared.keys().clone();
        let (known, last) = {
            let state = self.state.lock();
            (state.known_id.clone(), state.last_log_id.clone())
        };
        // A forced floor claims an identity no store has, which counts as lost state.
        let known = if force_floor {
            "!".to_string()
        } else {
            known.unwrap_or_default()
        };
        let mirror = self.registry.epoch();
        let reply: Value = self
            .shared
            .call("sync", |mut c| {
                let mut inv = scripts::SYNC.prepare_invoke();
                inv.key(keys.epoch());
                inv.arg(super::token());
                inv.arg(mirror);
                inv.arg(known.as_str());
                inv.arg(keys.channel());
                async move { inv.invoke_async(&mut c).await }
            })
            .await?;
        let Value::Array(parts) = reply else {
            return Err(SharedError::Reply("sync"));
        };
        let id = parts
            .first()
            .and_then(text)
            .ok_or(SharedError::Reply("sync"))?;
        let epoch = parts
            .get(1)
            .and_then(int)
            .ok_or(SharedError::Reply("sync"))?;
        let floor = parts
            .get(2)
            .and_then(int)
            .ok_or(SharedError::Reply("sync"))?;
        let lost = parts.get(3).and_then(int) == Some(1);
        let epoch = u64::try_from(epoch).unwrap_or(0);
        let floor = u64::try_from(floor).unwrap_or(0);
        if lost {
            log::warn!(
                "redis lost its purge state: every entry born before epoch {floor} is purged"
            );
            self.shared
                .metrics()
                .resyncs
                .with_label_values(&["floor"])
                .inc();
        }
        self.registry.set_floor(floor);
        self.state.lock().known_id = Some(id);

        // Replay the log after the last purge we applied.
        let mut from = match &last {
            Some(id) => format!("({id}"),
            None => "-".to_string(),
        };
        let mut sync_up_to = None;
        loop {
            let log = keys.log();
            let start = from.clone();
            let reply: Value = self
                .shared
                .call_within(
                    "replay",
                    self.shared.settings().heartbeat.max(Duration::from_secs(1)),
                    |mut c| async move {
                        redis::cmd("XRANGE")
                            .arg(log)
                            .arg(start)
                            .arg("+")
                            .arg("COUNT")
                            .arg(REPLAY_BATCH)
                            .query_async(&mut c)
                            .await
                    },
                )
                .await?;
            let Value::Array(entries) = reply else {
                return Err(SharedError::Reply("replay"));
            };
            let n = entries.len();
            for entry in &entries {
                if let Some(purge) = parse_log_entry(entry) {
                    from = format!("({}", purge.id);
                    if let Some(generation) = self.apply(&purge) {
                        sync_up_to = Some(generation);
                    }
                }
            }
            if n < REPLAY_BATCH {
                break;
            }
        }
        // Every purge up to `epoch` was in the log we just read.
        self.registry.advance(epoch);
        // One acknowledgement covers every sync purge replayed.
        if let Some(generation) = sync_up_to {
            self.ack(generation);
        }
        let mut state = self.state.lock();
        if state.synced {
            drop(state);
            self.shared
                .metrics()
                .resyncs
                .with_label_values(&["catchup"])
                .inc();
        } else {
            state.synced = true;
        }
        Ok(())
    }

    /// Runs the subscription and the heartbeat until [`Self::stop`]. Call once
    /// per process, on the Redis runtime (see [`Self::start`]).
    async fn run(self: Arc<Self>) {
        let heartbeat = {
            let this = self.clone();
            tokio::spawn(async move { this.heartbeat_loop().await })
        };
        self.subscribe_loop().await;
        heartbeat.abort();
    }

    /// Starts the subscription and the heartbeat on the Redis runtime.
    pub fn start(self: &Arc<Self>) {
        if self.started.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let this = self.clone();
        self.shared.spawn(this.run());
    }

    /// Stops the subscription and the heartbeat.
    pub fn halt(&self) {
        self.stop.notify_waiters();
        self.stop.notify_one();
    }

    /// Stops the tasks and leaves the live instance set, so sync purges stop
    /// waiting for this instance.
    pub async fn stop(&self) {
        self.halt();
        let keys = self.shared.keys().clone();
        let instance = self.shared.instance().to_string();
        let _ = self
            .shared
            .call("leave", |mut c| async move {
                redis::cmd("ZREM")
                    .arg(keys.instances())
                    .arg(instance)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await;
    }

    async fn heartbeat_loop(&self) {
        let hb = self.shared.settings().heartbeat;
        let mut tick = tokio::time::interval(hb);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let keys = self.shared.keys().clone();
            let instance = self.shared.instance().to_string();
            let ttl = hb * 3;
            let sent = Instant::now();
            // While the breaker is open, this is also its probe.
            let beat = self
                .shared
                .call("heartbeat", |mut c| {
                    let mut inv = scripts::HEARTBEAT.prepare_invoke();
                    inv.key(keys.instances());
                    inv.arg(instance);
                    inv.arg(ttl.as_millis() as u64);
                    async move { inv.invoke_async::<Value>(&mut c).await }
                })
                .await;
            let Ok(beat) = beat else {
                continue;
            };
            if self.consistency == Consistency::Sync
                && self.renewed(sent, ttl, int(&beat) == Some(1))
            {
                // Joined (again): the purges completed while this instance
                // was not registered did not wait for it.
                let started = Instant::now();
                match self.resync().await {
                    Ok(()) => self.replayed(started),
                    Err(e) => log::debug!("purge replay after joining failed: {e}"),
                }
            }
            if self.state.lock().known_id.is_some() {
                self.flush_outbox().await;
            }
        }
    }

    async fn subscribe_loop(&self) {
        let hb = self.shared.settings().heartbeat;
        let connect_timeout = self.shared.settings().connect_timeout;
        let channel = self.shared.keys().channel();
        let mut node = 0usize;
        loop {
            self.set_suspect(true);
            let clients = self.shared.subscribe_to();
            let client = &clients[node % clients.len()];
            node = node.wrapping_add(1);
            let connected = tokio::select! {
                _ = self.stop.notified() => return,
                c = tokio::time::timeout(connect_timeout, client.get_async_pubsub()) => c,
            };
            let pubsub = match connected {
                Ok(Ok(p)) => p,
                _ => {
                    tokio::select! {
                        _ = self.stop.notified() => return,
                        _ = tokio::time::sleep(hb.min(Duration::from_millis(500))) => {}
                    }
                    continue;
                }
            };
            let (mut sink, mut stream) = pubsub.split();
            if !matches!(
                tokio::time::timeout(connect_timeout, sink.subscribe(&channel)).await,
                Ok(Ok(()))
            ) {
                continue;
            }
            // Messages published from now on are buffered in `stream` while we replay.
            let started = Instant::now();
            if let Err(e) = self.resync().await {
                log::debug!("purge resync failed: {e}");
                tokio::select! {
                    _ = self.stop.notified() => return,
                    _ = tokio::time::sleep(hb.min(Duration::from_millis(500))) => {}
                }
                continue;
            }
            self.replayed(started);
            self.set_suspect(false);
            let mut tick = tokio::time::interval(hb);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = self.stop.notified() => return,
                    msg = stream.next() => match msg {
                        Some(msg) => self.on_message(msg.get_payload_bytes()),
                        None => {
                            self.registration_lost();
                            break;
                        }
                    },
                    _ = tick.tick() => {
                        // The answer comes after every message published before the ping.
                        match tokio::time::timeout(hb, sink.ping::<Value>()).await {
                            Ok(Ok(_)) => {}
                            // Unanswered: Redis is slow or out of reach; the lease runs out.
                            Err(_) => break,
                            Ok(Err(_)) => {
                                self.registration_lost();
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        fn check(payload: &str, expected: Option<Message>) {
            assert_eq!(parse_message(payload.as_bytes()), expected, "{payload}");
        }
        let tags = [1u64, 0xdead_beef_0000_0001];
        let p = format!("p|7|1700000000000-3|1|0|inst|{}", tags_arg(&tags));
        check(
            &p,
            Some(Message::Purge(Purge {
                generation: 7,
                id: "1700000000000-3".into(),
                soft: true,
                sync: false,
                tags: tags.to_vec(),
                all: false,
            })),
        );
        check(
            "p|8|1-0|0|1|i|",
            Some(Message::Purge(Purge {
                generation: 8,
                id: "1-0".into(),
                soft: false,
                sync: true,
                tags: vec![],
                all: false,
            })),
        );
        check("a|9|inst", Some(Message::Ack));
        check(
            "f|12|abc",
            Some(Message::Floor {
                floor: 12,
                id: "abc".into(),
                all: false,
            }),
        );
        check(
            "f|13|abc|a",
            Some(Message::Floor {
                floor: 13,
                id: "abc".into(),
                all: true,
            }),
        );
        check("p|x|1-0|0|0|i|", None);
        check("p|1|1-0|0|0|i|zz", None);
        check("q|1", None);
        assert!(stream_id("5-1") > stream_id("4-9"));
        assert!(stream_id("10-0") > stream_id("9-99"));
    }

    #[test]
    fn a_logged_purge_of_everything_replays_as_a_floor() {
        let entry = |fields: &[&str]| {
            Value::Array(vec![
                Value::BulkString(b"5-0".to_vec()),
                Value::Array(
                    fields
                        .iter()
                        .map(|f| Value::BulkString(f.as_bytes().to_vec()))
                        .collect(),
                ),
            ])
        };
        let all = parse_log_entry(&entry(&[
            "g", "9", "s", "0", "y", "1", "o", "i", "t", "", "a", "1",
        ]));
        assert_eq!(
            all,
            Some(Purge {
                generation: 9,
                id: "5-0".into(),
                soft: false,
                sync: true,
                tags: vec![],
                all: true,
            })
        );
        let tags = parse_log_entry(&entry(&["g", "3", "s", "1", "y", "0", "o", "i", "t", "1"]));
        assert_eq!(tags.map(|p| (p.all, p.tags)), Some((false, vec![1])));
    }
}
