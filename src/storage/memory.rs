//! The memory tier: a bounded, in-process response store on TinyUFO.
//!
//! [`MemoryStore`] implements pingora-cache's [`Storage`] trait. Entries live in a
//! [`TinyUfo`] (TinyLFU admission, S3-FIFO eviction, from pingora's own crates) keyed by
//! the 128-bit `combined_bin()` of the cache key, so a lookup by [`CacheKey`] and a purge
//! by [`CompactCacheKey`](pingora_cache::key::CompactCacheKey) address the same slot.
//!
//! # Hit path
//!
//! A lookup takes no lock: one TinyUFO read, a freshness check, and a [`CacheMeta`] rebuilt
//! from the stored fields with [`CacheMeta::new`] plus a clone of the response header. Nothing
//! is serialized or deserialized. The body is a single [`Bytes`] shared with every reader, so
//! reading it is a reference-count increment.
//!
//! # Writes and accounting
//!
//! Fills, replacements, purges, expiries and `update_meta` are serialized by one mutex. They
//! are rare next to hits, and the lock is what keeps the `entries` and `bytes` gauges exact:
//! TinyUFO replaces an existing key's value without returning it, so the store reads the old
//! value and applies the put under the same lock.
//!
//! Stored entries are immutable (`Arc<Entry>`); `update_meta` and `expire` put a new entry that
//! shares the old body.
//!
//! # Removal uses tombstones
//!
//! `TinyUfo::remove` (TinyUFO 0.9.1) leaves the key in its FIFO queue; if the key is put again
//! before that stale queue slot is popped, the small-queue weight is subtracted twice and
//! underflows (a panic with overflow checks on, a skewed eviction policy without). Purges
//! followed by refills are tagcache's normal traffic, so this store never calls `remove`: a
//! removed key's slot is overwritten with a tombstone (`None`) charged [`TOMBSTONE_COST`] bytes,
//! which TinyUFO evicts like any other item, or which the next fill of the key replaces.
//!
//! # Admission
//!
//! Puts go through TinyUFO's TinyLFU admission. When the store is full and making room for a
//! new key would evict exactly one entry, the new key is refused if that entry was written
//! more often recently (TinyLFU counts puts, not reads). A refused fill is counted in
//! [`MemoryStats::rejected`] and is just a miss: each later fill of the key raises its count
//! until it is admitted. Refills of a key that is present, or was purged and still holds its
//! tombstone, replace the slot and are never refused.
//!
//! # Expiry
//!
//! An entry is dead once its freshness and both serve-stale windows have run out. A lookup
//! that finds a dead entry removes it and misses; stale entries still inside a window are
//! returned, and pingora decides whether to serve them. Dead entries that are never looked up
//! again stay counted until TinyUFO evicts them.
//!
//! # Per-workspace quota
//!
//! With [`MemoryStore::with_workspace_quota`], the bytes of each workspace's entries (read
//! from their [`EntryInfo`]) are counted, and one workspace can never hold more than the quota:
//! before a fill that would take it over, the store evicts that workspace's own oldest entries,
//! and a single entry larger than the quota is refused. Other workspaces' entries are never
//! touched to make room for it, so one noisy tenant cannot push everyone else out. Entries
//! without a workspace (routes that are not tenant-scoped) have no quota. The bookkeeping
//! happens under the write lock, with the gauges; the hit path does not see it.
//!
//! # Weights
//!
//! TinyUFO weights are `u16`. The store charges weights in units of
//! `ceil((max_object_size + META_ALLOWANCE + ENTRY_OVERHEAD) / 65535)` bytes, rounding each
//! entry up, and gives TinyUFO a limit of `max_size / unit` units. Because every entry's byte
//! count is at most its units times the unit, the `bytes` gauge can never exceed `max_size`;
//! the store also checks that after every put.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use pingora_cache::key::{CacheHashKey, HashBinary};
use pingora_cache::storage::{
    HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget, PurgeType,
    Storage,
};
use pingora_cache::trace::SpanHandle;
use pingora_cache::{CacheEntryKey, CacheKey, CacheMeta};
use pingora_error::Result;
use pingora_http::ResponseHeader;
use tinyufo::{TinyUfo, KV};

use super::hit::BodyHit;
use super::EntryInfo;

/// Bytes charged per response header line, on top of its name and value.
///
/// An estimate from the layouts of `http` 1.x and pingora-http 0.9: the `HeaderMap` bucket
/// (hash, 32-byte name, 40-byte value, links) and its index slot come to about 110 bytes, and
/// the entry in pingora's case-preserving name map (the name again, as `Bytes`) to about 80.
pub const HEADER_OVERHEAD: usize = 192;

/// Bytes charged per stored entry, on top of headers, body and [`EntryInfo::weight`].
///
/// Covers the `Arc<Entry>` allocation (the entry struct with its inline `ResponseHeader`,
/// freshness fields and body handle, plus the two reference counts), the initial allocations
/// of the two header maps, and TinyUFO's per-item bookkeeping (its bucket, the concurrent
/// hash map node and table slot, and the FIFO queue slot), rounded up.
pub const ENTRY_OVERHEAD: usize = std::mem::size_of::<Entry>() + 16 + 256;

/// Bytes charged for a tombstone: TinyUFO's per-item bookkeeping for a key with no entry.
pub const TOMBSTONE_COST: usize = 128;

/// Room left for headers and [`EntryInfo`] above `max_object_size` when sizing weight units.
///
/// An entry whose headers push it past `max_object_size + META_ALLOWANCE` may not fit a
/// TinyUFO weight and is then refused as too large.
pub const META_ALLOWANCE: usize = 64 * 1024;

/// Mean entry size assumed when sizing TinyUFO's frequency sketch and hash table.
const ESTIMATED_MEAN_ENTRY: usize = 8 * 1024;

/// What TinyUFO holds for a key: an entry, or a tombstone left by a removal.
type Slot = Option<Arc<Entry>>;

/// Counters and gauges of a [`MemoryStore`], read with [`MemoryStore::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Entries currently stored (tombstones and cleared entries are not counted).
    pub entries: usize,
    /// Bytes charged for the stored entries: headers, body, [`EntryInfo`] and overheads.
    /// Never above the configured `max_size`.
    pub bytes: usize,
    /// Entries pushed out by TinyUFO to make room for others.
    pub evictions: u64,
    /// New keys refused by TinyLFU admission: the one entry they would have displaced had been
    /// written more often recently. See the module docs.
    pub rejected: u64,
    /// Entries found past their last serve-stale window on lookup, and removed.
    pub expired: u64,
    /// Fills not stored because the body exceeded `max_object_size` or the whole entry did
    /// not fit the store.
    pub too_large: u64,
    /// Entries evicted to keep their own workspace within its quota.
    pub quota_evictions: u64,
    /// Fills refused because the entry alone is larger than the workspace quota.
    pub quota_refused: u64,
}

/// The bounded memory tier.
///
/// Build one per process with [`MemoryStore::new`] and leak it to get the `&'static` that
/// pingora-cache wants. It evicts by itself: do not pair it with a pingora eviction manager.
pub struct MemoryStore {
    cache: TinyUfo<u128, Slot>,
    /// Serializes every mutation of `cache`, so gauges and TinyUFO's own weights stay exact.
    write: Mutex<()>,
    max_size: usize,
    max_object_size: usize,
    /// Bytes per TinyUFO weight unit.
    unit: usize,
    /// TinyUFO's weight limit, in units.
    limit_units: usize,
    tombstone_units: u16,
    /// Bumped by [`MemoryStore::clear`]; entries of an older generation are invisible.
    generation: AtomicU64,
    entries: AtomicUsize,
    bytes: AtomicUsize,
    evictions: AtomicU64,
    rejected: AtomicU64,
    expired: AtomicU64,
    too_large: AtomicU64,
    /// Per-workspace accounting, with a quota. Only touched under `write`.
    quota: Option<Quota>,
    quota_evictions: AtomicU64,
    quota_refused: AtomicU64,
}

/// The per-workspace quota and what each workspace holds.
struct Quota {
    max: usize,
    usage: Mutex<HashMap<Arc<str>, Usage>>,
}

/// What one workspace holds.
#[derive(Default)]
struct Usage {
    bytes: usize,
    entries: usize,
    /// Keys in the order they were filled, oldest first. It may hold keys that are gone or
    /// were refilled since (checked when popped), and is compacted when it grows past
    /// twice the live entries.
    order: VecDeque<u128>,
}

/// The workspace an entry is charged to.
fn workspace_of(entry: &Entry) -> Option<&Arc<str>> {
    entry.meta.info.as_ref()?.workspace.as_ref()
}

/// The response fields an entry keeps, everything pingora needs to rebuild its `CacheMeta`.
struct EntryMeta {
    header: ResponseHeader,
    fresh_until: SystemTime,
    created: SystemTime,
    /// The reference point for age: the meta's epoch override, or its `updated` time when
    /// that differs from `created` (after a revalidation). See [`EntryMeta::to_cache_meta`].
    epoch: Option<SystemTime>,
    variance: Option<HashBinary>,
    stale_while_revalidate_sec: u32,
    stale_if_error_sec: u32,
    info: Option<Arc<EntryInfo>>,
}

impl EntryMeta {
    fn of(meta: &CacheMeta) -> Self {
        let epoch = meta.epoch_override().or_else(|| {
            let updated = meta.updated();
            (updated != meta.created()).then_some(updated)
        });
        EntryMeta {
            header: meta.response_header_copy(),
            fresh_until: meta.fresh_until(),
            created: meta.created(),
            epoch,
            variance: meta.variance(),
            stale_while_revalidate_sec: meta.stale_while_revalidate_sec(),
            stale_if_error_sec: meta.stale_if_error_sec(),
            info: EntryInfo::of(meta).cloned(),
        }
    }

    /// Rebuilds the `CacheMeta` handed to pingora on a hit.
    ///
    /// `CacheMeta::new` sets `updated` and the provenance to `created`, and neither has a public
    /// setter. Age and `fresh_sec` are measured from the epoch, so a revalidated entry gets its
    /// revalidation time back as an epoch override. Provenance (only used to order Vary
    /// variants) reads as `created`, which is never earlier than the real one: at worst a
    /// variant is refetched, never served when it should not be.
    fn to_cache_meta(&self) -> CacheMeta {
        let mut meta = CacheMeta::new(
            self.fresh_until,
            self.created,
            self.stale_while_revalidate_sec,
            self.stale_if_error_sec,
            self.header.clone(),
        );
        if let Some(epoch) = self.epoch {
            meta.set_epoch_override(epoch);
        }
        if let Some(variance) = self.variance {
            meta.set_variance(variance);
        }
        if let Some(info) = &self.info {
            Arc::clone(info).attach(&mut meta);
        }
        meta
    }

    /// When the entry stops being usable at all: after the longer of its serve-stale windows.
    ///
    /// `None` means never (the addition overflowed).
    fn dead_at(&self) -> Option<SystemTime> {
        let window = self.stale_while_revalidate_sec.max(self.stale_if_error_sec);
        self.fresh_until
            .checked_add(Duration::from_secs(u64::from(window)))
    }

    /// Bytes charged for everything but the body.
    fn weight(&self) -> usize {
        let headers: usize = self
            .header
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + HEADER_OVERHEAD)
            .sum();
        let reason = self.header.get_reason_phrase().map_or(0, str::len);
        ENTRY_OVERHEAD + headers + reason + self.info.as_ref().map_or(0, |i| i.weight())
    }
}

/// A fresh stored response, found by [`MemoryStore::fresh`].
pub struct FreshHit(Arc<Entry>);

impl FreshHit {
    /// The stored response header.
    pub fn header(&self) -> &ResponseHeader {
        &self.0.meta.header
    }

    /// The body (shared, not copied).
    pub fn body(&self) -> Bytes {
        self.0.body.clone()
    }

    /// The entry's tags and birth epoch.
    pub fn info(&self) -> Option<&EntryInfo> {
        self.0.meta.info.as_deref()
    }

    /// When the response was stored (`CacheMeta::updated` of a lookup).
    pub fn created(&self) -> SystemTime {
        self.0.meta.created
    }

    /// When the response stops being fresh.
    pub fn fresh_until(&self) -> SystemTime {
        self.0.meta.fresh_until
    }

    /// Its age at `now`, measured as `CacheMeta::age` does: from the last
    /// revalidation, or from the store.
    pub fn age(&self, now: SystemTime) -> Duration {
        let epoch = self.0.meta.epoch.unwrap_or(self.0.meta.created);
        now.duration_since(epoch).unwrap_or_default()
    }
}

/// A stored response.
struct Entry {
    /// The full 128-bit key, checked on every read: TinyUFO indexes by a 64-bit hash of it.
    key: u128,
    generation: u64,
    meta: EntryMeta,
    body: Bytes,
    dead_at: Option<SystemTime>,
    /// Bytes charged for this entry.
    weight: usize,
}

impl Entry {
    fn new(key: u128, generation: u64, meta: EntryMeta, body: Bytes) -> Self {
        let dead_at = meta.dead_at();
        let weight = meta.weight() + body.len();
        Entry {
            key,
            generation,
            meta,
            body,
            dead_at,
            weight,
        }
    }

    fn is_dead(&self, now: SystemTime) -> bool {
        self.dead_at.is_some_and(|dead_at| now > dead_at)
    }

    /// Whether this entry is in the gauges: it belongs to the store's current generation.
    fn is_counted(&self, generation: u64) -> bool {
        self.generation == generation
    }
}

/// The 128-bit store key of a cache key: `combined_bin()` read as a big-endian integer.
///
/// `CacheKey` and `CompactCacheKey` share `combined_bin()`'s default implementation (the
/// primary hash, or Blake2b-128 of primary and variance), so both give the same value.
fn store_key<K: CacheHashKey + ?Sized>(key: &K) -> u128 {
    u128::from_be_bytes(key.combined_bin())
}

/// Reads a `Content-Length` header, if present and valid.
fn content_length(header: &ResponseHeader) -> Option<usize> {
    header
        .headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Running values of the two gauges while a mutation is settled under the write lock.
struct Gauges {
    entries: usize,
    bytes: usize,
}

impl MemoryStore {
    /// Creates a store holding at most `max_size_bytes` of entries, each body at most
    /// `max_object_size` bytes.
    ///
    /// TinyUFO's frequency sketch and hash table are sized for an 8 KiB mean entry; they live
    /// outside the `max_size` budget (about 1.6 MB for 256 MiB).
    pub fn new(max_size_bytes: usize, max_object_size: usize) -> Self {
        let largest_entry = max_object_size
            .saturating_add(META_ALLOWANCE)
            .saturating_add(ENTRY_OVERHEAD);
        let unit = largest_entry.div_ceil(usize::from(u16::MAX)).max(1);
        let limit_units = max_size_bytes / unit;
        let tombstone_units = TOMBSTONE_COST
            .div_ceil(unit)
            .clamp(1, usize::from(u16::MAX));
        let estimated_entries = (max_size_bytes / ESTIMATED_MEAN_ENTRY).clamp(64, 1 << 18);
        MemoryStore {
            cache: TinyUfo::new(limit_units, estimated_entries),
            write: Mutex::new(()),
            max_size: max_size_bytes,
            max_object_size,
            unit,
            limit_units,
            // Clamped to 1..=u16::MAX just above.
            tombstone_units: u16::try_from(tombstone_units).unwrap_or(u16::MAX),
            generation: AtomicU64::new(0),
            entries: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            evictions: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            too_large: AtomicU64::new(0),
            quota: None,
            quota_evictions: AtomicU64::new(0),
            quota_refused: AtomicU64::new(0),
        }
    }

    /// Limits the bytes each workspace's entries may hold to `max` (see the module docs);
    /// `None` sets no quota.
    pub fn with_workspace_quota(mut self, max: Option<usize>) -> Self {
        self.quota = max.map(|max| Quota {
            max,
            usage: Mutex::new(HashMap::new()),
        });
        self
    }

    /// Bytes the entries of `workspace` hold now (0 without a quota, which is what enables
    /// the per-workspace accounting).
    pub fn workspace_bytes(&self, workspace: &str) -> usize {
        self.quota
            .as_ref()
            .map_or(0, |q| q.usage.lock().get(workspace).map_or(0, |u| u.bytes))
    }

    /// Bytes and entries the entries of `workspace` hold now, when the store
    /// keeps per-workspace accounting (with a quota); `None` without one.
    pub fn workspace_usage(&self, workspace: &str) -> Option<(usize, usize)> {
        let quota = self.quota.as_ref()?;
        let usage = quota.usage.lock();
        Some(
            usage
                .get(workspace)
                .map_or((0, 0), |u| (u.bytes, u.entries)),
        )
    }

    /// Charges (`add`) or refunds a counted entry to its workspace. Called wherever the gauges
    /// change, under the write lock.
    fn charge(&self, key: u128, entry: &Entry, add: bool) {
        let (Some(quota), Some(ws)) = (&self.quota, workspace_of(entry)) else {
            return;
        };
        let mut usage = quota.usage.lock();
        if add {
            let u = usage.entry(ws.clone()).or_default();
            u.bytes += entry.weight;
            u.entries += 1;
            u.order.push_back(key);
            if u.order.len() > 2 * u.entries + 16 {
                // Drop keys that no longer hold an entry of this workspace, and repeats.
                let mut seen = std::collections::HashSet::with_capacity(u.entries);
                let order = std::mem::take(&mut u.order);
                u.order = order
                    .into_iter()
                    .rev()
                    .filter(|k| *k == key || self.live_in(*k, ws))
                    .filter(|k| seen.insert(*k))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
            }
        } else if let Some(u) = usage.get_mut(ws) {
            u.bytes = u.bytes.saturating_sub(entry.weight);
            u.entries = u.entries.saturating_sub(1);
            if u.entries == 0 {
                usage.remove(ws);
            }
        }
    }

    /// Whether `key` holds a live entry of workspace `ws`.
    fn live_in(&self, key: u128, ws: &Arc<str>) -> bool {
        self.get(key)
            .is_some_and(|e| workspace_of(&e).is_some_and(|w| w == ws))
    }

    /// Makes room for `entry` within its workspace's quota by evicting that workspace's own
    /// oldest entries; returns false if the entry alone exceeds the quota. `previous` is what
    /// the entry's key holds now: replacing it frees its bytes. Called under the write lock.
    fn make_room(
        &self,
        key: u128,
        entry: &Entry,
        previous: Option<&Slot>,
        gauges: &mut Gauges,
    ) -> bool {
        let (Some(quota), Some(ws)) = (&self.quota, workspace_of(entry)) else {
            return true;
        };
        if entry.weight > quota.max {
            self.quota_refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let generation = self.current_generation();
        let freed = match previous {
            Some(Some(old))
                if old.is_counted(generation) && workspace_of(old).is_some_and(|w| w == ws) =>
            {
                old.weight
            }
            _ => 0,
        };
        loop {
            let victim = {
                let mut usage = quota.usage.lock();
                let Some(u) = usage.get_mut(ws) else {
                    return true;
                };
                if u.bytes.saturating_sub(freed) + entry.weight <= quota.max {
                    return true;
                }
                match u.order.pop_front() {
                    Some(k) => k,
                    // Nothing left to evict; the accounting says over quota, so refuse.
                    None => {
                        self.quota_refused.fetch_add(1, Ordering::Relaxed);
                        return false;
                    }
                }
            };
            if victim == key {
                continue; // being replaced: its bytes are already counted as freed
            }
            let Some(old) = self.get(victim) else {
                continue;
            };
            if workspace_of(&old).is_none_or(|w| w != ws) {
                continue;
            }
            self.put_locked(victim, None, self.tombstone_units, Some(Some(old)), gauges);
            self.quota_evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The configured bound on [`MemoryStats::bytes`].
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// The configured bound on a body.
    pub fn max_object_size(&self) -> usize {
        self.max_object_size
    }

    /// Current gauges and counters.
    ///
    /// Each field is read atomically on its own; the set is not a snapshot taken at one
    /// instant.
    pub fn stats(&self) -> MemoryStats {
        MemoryStats {
            entries: self.entries.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            expired: self.expired.load(Ordering::Relaxed),
            too_large: self.too_large.load(Ordering::Relaxed),
            quota_evictions: self.quota_evictions.load(Ordering::Relaxed),
            quota_refused: self.quota_refused.load(Ordering::Relaxed),
        }
    }

    /// Removes the entry for `key`; returns whether there was one.
    pub fn remove(&self, key: &CacheKey) -> bool {
        self.remove_key(store_key(key), None)
    }

    /// Drops every entry.
    ///
    /// Constant time: it starts a new generation and zeroes the gauges. Entries of the old
    /// generation become invisible at once and give their memory back as TinyUFO evicts them
    /// or fills replace them; until then they still count against TinyUFO's limit, so memory
    /// stays within `max_size`. Fills in flight when this runs are not stored.
    pub fn clear(&self) {
        let _write = self.write.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        if let Some(q) = &self.quota {
            q.usage.lock().clear();
        }
    }

    fn current_generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The entry under `hash` (a [`CacheHashKey::combined_bin`]) when it is
    /// fresh at `now` and stored without a variance: what a hit can serve
    /// without asking pingora-cache (see `TagCache::serve_fresh_hit`). Stale,
    /// dead and Vary entries are left to the full lookup.
    pub fn fresh(&self, hash: &HashBinary, now: SystemTime) -> Option<FreshHit> {
        let entry = self.get(u128::from_be_bytes(*hash))?;
        (entry.meta.variance.is_none() && now < entry.meta.fresh_until).then_some(FreshHit(entry))
    }

    /// The live entry at `key`, if any: not a tombstone, not a hash collision, not cleared.
    fn get(&self, key: u128) -> Option<Arc<Entry>> {
        let entry = self.cache.get(&key)??;
        (entry.key == key && entry.generation == self.current_generation()).then_some(entry)
    }

    /// Weight units for `bytes`, or `None` if the entry cannot fit the store.
    fn units(&self, bytes: usize) -> Option<u16> {
        let units = bytes.div_ceil(self.unit);
        if units == 0 || units > self.limit_units {
            return None;
        }
        u16::try_from(units).ok()
    }

    fn gauges(&self) -> Gauges {
        Gauges {
            entries: self.entries.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    fn publish(&self, gauges: &Gauges) {
        self.entries.store(gauges.entries, Ordering::Relaxed);
        self.bytes.store(gauges.bytes, Ordering::Relaxed);
    }

    /// Puts `slot` at `key` and settles gauges and counters. Returns whether the new entry
    /// (if `slot` holds one) is in the cache afterwards.
    ///
    /// The caller holds `self.write` and passes what `key` held before (`previous`, read under
    /// the same lock): TinyUFO drops a replaced value without returning it.
    fn put_locked(
        &self,
        key: u128,
        slot: Slot,
        units: u16,
        previous: Option<Slot>,
        gauges: &mut Gauges,
    ) -> bool {
        let generation = self.current_generation();
        let existed = previous.is_some();
        if let Some(Some(old)) = previous {
            if old.is_counted(generation) {
                gauges.entries = gauges.entries.saturating_sub(1);
                gauges.bytes = gauges.bytes.saturating_sub(old.weight);
                self.charge(key, &old, false);
            }
        }
        let new = slot.clone();
        if let Some(entry) = &new {
            gauges.entries += 1;
            gauges.bytes += entry.weight;
            self.charge(key, entry, true);
        }
        let evicted = self.cache.put(key, slot, units);
        let kept = self.settle(evicted, new.as_ref(), existed, generation, gauges);

        // TinyUFO's weight limit already bounds `bytes` (each entry is charged at most its units
        // times the unit). Should that ever not hold, the new entry gives way.
        if kept && gauges.bytes > self.max_size {
            if let Some(entry) = new {
                let evicted = self.cache.put(key, None, self.tombstone_units);
                gauges.entries = gauges.entries.saturating_sub(1);
                gauges.bytes = gauges.bytes.saturating_sub(entry.weight);
                self.charge(key, &entry, false);
                self.rejected.fetch_add(1, Ordering::Relaxed);
                self.settle(evicted, None, true, generation, gauges);
                return false;
            }
        }
        kept
    }

    /// Accounts for what a put evicted; returns false if `new` itself was among it.
    fn settle(
        &self,
        evicted: Vec<KV<Slot>>,
        new: Option<&Arc<Entry>>,
        existed: bool,
        generation: u64,
        gauges: &mut Gauges,
    ) -> bool {
        let mut kept = true;
        for item in evicted {
            let Some(entry) = item.data else {
                continue; // a tombstone: not in the gauges
            };
            let is_new = new.is_some_and(|new| Arc::ptr_eq(new, &entry));
            if entry.is_counted(generation) {
                gauges.entries = gauges.entries.saturating_sub(1);
                gauges.bytes = gauges.bytes.saturating_sub(entry.weight);
                self.charge(entry.key, &entry, false);
                if is_new && !existed {
                    // TinyLFU preferred the entry it would have displaced.
                    self.rejected.fetch_add(1, Ordering::Relaxed);
                } else {
                    // Includes a replacement evicting itself, which TinyUFO allows.
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                }
            }
            if is_new {
                kept = false;
            }
        }
        kept
    }

    /// Stores a complete entry, replacing what `entry.key` held. Returns whether it was kept.
    fn admit(&self, entry: Entry) -> bool {
        let Some(units) = self.units(entry.weight) else {
            self.too_large.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let key = entry.key;
        let entry = Arc::new(entry);
        let _write = self.write.lock();
        if entry.generation != self.current_generation() {
            // The fill started before a clear().
            return false;
        }
        let mut gauges = self.gauges();
        let mut previous = self.cache.get(&key);
        if !self.make_room(key, &entry, previous.as_ref(), &mut gauges) {
            self.publish(&gauges);
            return false;
        }
        if self.quota.is_some() {
            // Making room may have replaced what the key held (never, as it skips the key,
            // but read it again rather than rely on that).
            previous = self.cache.get(&key);
        }
        let kept = self.put_locked(key, Some(entry), units, previous, &mut gauges);
        self.publish(&gauges);
        kept
    }

    /// Replaces the live entry at `key` (only `expected` if given) with a tombstone.
    fn remove_key(&self, key: u128, expected: Option<&Arc<Entry>>) -> bool {
        let _write = self.write.lock();
        let Some(entry) = self.get(key) else {
            return false;
        };
        if expected.is_some_and(|expected| !Arc::ptr_eq(expected, &entry)) {
            return false; // replaced since the caller looked
        }
        let mut gauges = self.gauges();
        self.put_locked(
            key,
            None,
            self.tombstone_units,
            Some(Some(entry)),
            &mut gauges,
        );
        self.publish(&gauges);
        true
    }

    /// Replaces the live entry at `key` with one built from it by `rebuild`, sharing its body.
    /// Returns false if there was no live entry.
    fn rewrite(&self, key: u128, rebuild: impl FnOnce(&Entry) -> EntryMeta) -> bool {
        let _write = self.write.lock();
        let Some(old) = self.get(key) else {
            return false;
        };
        let entry = Entry::new(key, old.generation, rebuild(&old), old.body.clone());
        let mut gauges = self.gauges();
        match self.units(entry.weight) {
            Some(units) => {
                self.put_locked(
                    key,
                    Some(Arc::new(entry)),
                    units,
                    Some(Some(old)),
                    &mut gauges,
                );
            }
            None => {
                // The new header no longer fits; drop the entry rather than keep a stale one.
                self.too_large.fetch_add(1, Ordering::Relaxed);
                self.put_locked(
                    key,
                    None,
                    self.tombstone_units,
                    Some(Some(old)),
                    &mut gauges,
                );
            }
        }
        self.publish(&gauges);
        true
    }

    /// Resolves a purge target to a store key; `None` for targets this store cannot hold.
    fn target_key(target: PurgeTarget<'_>) -> Option<u128> {
        // This store assigns no entry IDs, so an identified entry is never one of ours.
        if matches!(target, PurgeTarget::Exact(CacheEntryKey::Identified { .. })) {
            return None;
        }
        Some(store_key(target.key()))
    }
}

#[async_trait]
impl Storage for MemoryStore {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let key = store_key(key);
        let Some(entry) = self.get(key) else {
            return Ok(None);
        };
        if entry.is_dead(SystemTime::now()) {
            if self.remove_key(key, Some(&entry)) {
                self.expired.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(None);
        }
        let meta = entry.meta.to_cache_meta();
        Ok(Some((
            meta,
            Box::new(BodyHit::new(entry.body.clone(), entry.weight)),
        )))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let meta = EntryMeta::of(meta);
        let oversize = content_length(&meta.header).is_some_and(|len| len > self.max_object_size);
        Ok(Box::new(MemoryMissHandler {
            store: self,
            key: store_key(key),
            generation: self.current_generation(),
            meta,
            chunks: Vec::new(),
            len: 0,
            oversize,
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        match Self::target_key(target) {
            Some(key) if self.remove_key(key, None) => Ok(PurgeOutcome::Purged(None)),
            _ => Ok(PurgeOutcome::NotFound),
        }
    }

    async fn expire(
        &'static self,
        target: PurgeTarget<'_>,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let Some(key) = Self::target_key(target) else {
            return Ok(PurgeOutcome::NotFound);
        };
        let now = SystemTime::now();
        // Same rule as `CacheMeta::expire_at`: fresh_until only moves earlier, and the
        // serve-stale windows now run from the purge.
        let expired = self.rewrite(key, |old| EntryMeta {
            header: old.meta.header.clone(),
            fresh_until: old.meta.fresh_until.min(now),
            info: old.meta.info.clone(),
            ..old.meta
        });
        Ok(if expired {
            PurgeOutcome::Expired
        } else {
            PurgeOutcome::NotFound
        })
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        Ok(self.rewrite(store_key(key), |old| {
            let mut new = EntryMeta::of(meta);
            // pingora merges the stored extensions into the revalidated meta, but keep ours
            // if a caller passed a meta without them.
            if new.info.is_none() {
                new.info = old.meta.info.clone();
            }
            new
        }))
    }

    fn support_streaming_partial_write(&self) -> bool {
        false
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// Buffers a fill and stores it on `finish`.
///
/// Nothing is visible to readers before `finish`; dropping the handler discards the fill.
/// A body over `max_object_size` is dropped silently: `write_body` keeps returning `Ok` so
/// the response keeps streaming to the client, and `finish` reports `Created(0)`.
struct MemoryMissHandler {
    store: &'static MemoryStore,
    key: u128,
    generation: u64,
    meta: EntryMeta,
    chunks: Vec<Bytes>,
    len: usize,
    oversize: bool,
}

#[async_trait]
impl HandleMiss for MemoryMissHandler {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        if self.oversize || data.is_empty() {
            return Ok(());
        }
        self.len = self.len.saturating_add(data.len());
        if self.len > self.store.max_object_size {
            self.oversize = true;
            self.chunks = Vec::new();
            return Ok(());
        }
        self.chunks.push(data);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let MemoryMissHandler {
            store,
            key,
            generation,
            meta,
            chunks,
            len,
            oversize,
        } = *self;
        if oversize {
            store.too_large.fetch_add(1, Ordering::Relaxed);
            return Ok(MissFinishType::Created(0));
        }
        // Always copy into one exactly sized buffer, even for a single chunk: a chunk may be a
        // slice of a larger read buffer, which would otherwise stay allocated uncounted for as
        // long as the entry lives.
        let mut body = Vec::with_capacity(len);
        for chunk in &chunks {
            body.extend_from_slice(chunk);
        }
        let entry = Entry::new(key, generation, meta, Bytes::from(body));
        let weight = entry.weight;
        Ok(MissFinishType::Created(if store.admit(entry) {
            weight
        } else {
            0
        }))
    }
}

#[cfg(test)]
#[path = "memory_quota_tests.rs"]
mod quota_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_cache::key::CompactCacheKey;
    use pingora_cache::trace::Span;

    const MIB: usize = 1024 * 1024;

    fn store(max_size: usize, max_object_size: usize) -> &'static MemoryStore {
        Box::leak(Box::new(MemoryStore::new(max_size, max_object_size)))
    }

    fn span() -> SpanHandle {
        Span::inactive().handle()
    }

    fn header() -> ResponseHeader {
        let mut header = ResponseHeader::build(200, None).unwrap();
        header
            .append_header("Content-Type", "application/json")
            .unwrap();
        header.append_header("X-Origin", "backend-1").unwrap();
        header
    }

    fn meta_with(fresh_for: i64, swr: u32, sie: u32) -> CacheMeta {
        let now = SystemTime::now();
        let fresh_until = if fresh_for >= 0 {
            now + Duration::from_secs(fresh_for.unsigned_abs())
        } else {
            now - Duration::from_secs(fresh_for.unsigned_abs())
        };
        CacheMeta::new(
            fresh_until,
            now - Duration::from_secs(1),
            swr,
            sie,
            header(),
        )
    }

    fn info() -> Arc<EntryInfo> {
        Arc::new(EntryInfo {
            route: 3,
            workspace: Some("w1".into()),
            tags: vec![11, 22, 33].into_boxed_slice(),
            born: 7,
        })
    }

    async fn fill(store: &'static MemoryStore, key: &CacheKey, meta: &CacheMeta, body: &[u8]) {
        let mut miss = store.get_miss_handler(key, meta, &span()).await.unwrap();
        // Two chunks, to exercise assembly.
        let (a, b) = body.split_at(body.len() / 2);
        miss.write_body(Bytes::copy_from_slice(a), false)
            .await
            .unwrap();
        miss.write_body(Bytes::copy_from_slice(b), true)
            .await
            .unwrap();
        miss.finish().await.unwrap();
    }

    async fn read_all(hit: &mut HitHandler) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(chunk) = hit.read_body().await.unwrap() {
            out.extend_from_slice(&chunk);
        }
        out
    }

    #[tokio::test]
    async fn put_then_lookup_returns_header_body_and_entry_info() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/api/boards/b1/contacts", "w1");
        let mut meta = meta_with(180, 10, 20);
        info().attach(&mut meta);
        let body = b"{\"contacts\":[1,2,3]}".repeat(10);
        fill(store, &key, &meta, &body).await;

        let (found, mut hit) = store.lookup(&key, &span()).await.unwrap().unwrap();
        assert_eq!(found.response_header().status, 200);
        assert_eq!(found.headers(), meta.headers());
        assert_eq!(found.fresh_until(), meta.fresh_until());
        assert_eq!(found.created(), meta.created());
        assert_eq!(found.stale_while_revalidate_sec(), 10);
        assert_eq!(found.stale_if_error_sec(), 20);
        assert_eq!(EntryInfo::of(&found), Some(&info()));
        assert_eq!(read_all(&mut hit).await, body);
        assert!(hit.read_body().await.unwrap().is_none());

        let stats = store.stats();
        assert_eq!(stats.entries, 1);
        assert_eq!(stats.bytes, hit.get_eviction_weight());
        assert!(stats.bytes > body.len() + ENTRY_OVERHEAD);
    }

    #[tokio::test]
    async fn a_missing_key_is_a_miss() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/nothing", "");
        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_large_body_is_served_in_slices() {
        let store = store(4 * MIB, MIB);
        let key = CacheKey::new("/large", "");
        let body: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        fill(store, &key, &meta_with(60, 0, 0), &body).await;
        let (_, mut hit) = store.lookup(&key, &span()).await.unwrap().unwrap();
        let first = hit.read_body().await.unwrap().unwrap();
        assert_eq!(first.len(), crate::storage::hit::READ_CHUNK);
        let mut all = first.to_vec();
        all.extend(read_all(&mut hit).await);
        assert_eq!(all, body);
    }

    #[tokio::test]
    async fn an_entry_past_its_stale_windows_is_removed_and_counted() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/dead", "");
        // Fresh until 100 s ago, serve-stale windows of 10 s and 30 s: dead 70 s ago.
        fill(store, &key, &meta_with(-100, 10, 30), b"old").await;
        assert_eq!(store.stats().entries, 1);

        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
        let stats = store.stats();
        assert_eq!(stats.expired, 1);
        assert_eq!(stats.entries, 0);
        assert_eq!(stats.bytes, 0);
        // Gone for good, not counted twice.
        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
        assert_eq!(store.stats().expired, 1);
    }

    #[tokio::test]
    async fn a_stale_entry_within_its_swr_window_is_returned() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/stale", "");
        fill(store, &key, &meta_with(-5, 60, 0), b"stale body").await;

        let (meta, mut hit) = store.lookup(&key, &span()).await.unwrap().unwrap();
        let now = SystemTime::now();
        assert!(!meta.is_fresh(now));
        assert!(meta.serve_stale_while_revalidate(now));
        assert_eq!(read_all(&mut hit).await, b"stale body");
        assert_eq!(store.stats().expired, 0);
    }

    #[tokio::test]
    async fn the_longer_stale_window_decides_when_an_entry_dies() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/sie", "");
        // SWR has run out, stale-if-error has not: pingora may still need it.
        fill(store, &key, &meta_with(-30, 10, 300), b"fallback").await;
        let (meta, _) = store.lookup(&key, &span()).await.unwrap().unwrap();
        assert!(!meta.serve_stale_while_revalidate(SystemTime::now()));
        assert!(meta.serve_stale_if_error(SystemTime::now()));
    }

    #[tokio::test]
    async fn eviction_keeps_bytes_within_max_size_and_counts_evictions() {
        let max_size = 256 * 1024;
        let store = store(max_size, 16 * 1024);
        let body = vec![b'x'; 2000];
        let meta = meta_with(60, 0, 0);
        let mut charged = 0;
        let mut n = 0;
        while charged < 10 * max_size {
            let key = CacheKey::new(format!("/item/{n}"), "");
            fill(store, &key, &meta, &body).await;
            n += 1;
            charged += body.len() + ENTRY_OVERHEAD;
            assert!(store.stats().bytes <= max_size, "after {n} fills");
        }
        let stats = store.stats();
        assert!(stats.evictions > 0);
        assert!(stats.bytes <= max_size);
        // Every fill is stored, evicted later, or refused; nothing leaks from the gauges.
        assert_eq!(
            stats.entries as u64 + stats.evictions + stats.rejected,
            n as u64
        );
        // The gauges agree with what lookups find.
        let mut live = 0;
        let mut live_bytes = 0;
        for i in 0..n {
            let key = CacheKey::new(format!("/item/{i}"), "");
            if let Some((_, hit)) = store.lookup(&key, &span()).await.unwrap() {
                live += 1;
                live_bytes += hit.get_eviction_weight();
            }
        }
        assert_eq!(live, stats.entries);
        assert_eq!(live_bytes, stats.bytes);
        // The store keeps most of its room in use.
        assert!(stats.bytes > max_size / 2, "{stats:?}");
    }

    #[tokio::test]
    async fn purge_and_refill_cycles_keep_gauges_exact() {
        // Regression test for TinyUFO 0.9.1's remove-then-put weight underflow: a key purged,
        // refilled and read twice, then pushed out by pressure, made `TinyUfo::remove` leave a
        // duplicate queue slot whose weight was subtracted twice (a panic under overflow
        // checks). Purges followed by refills must neither panic nor skew the gauges.
        let max_size = 64 * 1024;
        let store = store(max_size, 8 * 1024);
        let meta = meta_with(60, 0, 0);
        let purge = |key: CacheKey| async move {
            store
                .purge(
                    PurgeTarget::Active(&key.to_compact()),
                    PurgeType::Invalidation,
                    &span(),
                )
                .await
                .unwrap()
        };
        for round in 0..20 {
            let hot = CacheKey::new(format!("/hot/{round}"), "");
            // Once the store is full, TinyLFU may refuse a new key's first fills.
            let mut fills = 0;
            while store.lookup(&hot, &span()).await.unwrap().is_none() {
                assert!(fills < 50, "a repeatedly filled key is admitted");
                fill(store, &hot, &meta, &[b'h'; 4000]).await;
                fills += 1;
            }
            assert_eq!(purge(hot.clone()).await, PurgeOutcome::Purged(None));
            // The tombstone holds the slot, so the refill replaces it and is always admitted.
            fill(store, &hot, &meta, &[b'h'; 4000]).await;
            for _ in 0..2 {
                assert!(store.lookup(&hot, &span()).await.unwrap().is_some());
            }
            for i in 0..40 {
                let key = CacheKey::new(format!("/cold/{round}/{i}"), "");
                fill(store, &key, &meta, &vec![b'c'; 500 + 37 * i]).await;
                if i % 3 == 0 {
                    purge(key.clone()).await;
                    fill(store, &key, &meta, &[b'c'; 700]).await;
                }
                assert!(store.stats().bytes <= max_size);
            }
        }
        let mut live = 0;
        let mut live_bytes = 0;
        for round in 0..20 {
            let keys = std::iter::once(format!("/hot/{round}"))
                .chain((0..40).map(|i| format!("/cold/{round}/{i}")));
            for key in keys {
                if let Some((_, hit)) = store
                    .lookup(&CacheKey::new(key, ""), &span())
                    .await
                    .unwrap()
                {
                    live += 1;
                    live_bytes += hit.get_eviction_weight();
                }
            }
        }
        let stats = store.stats();
        assert_eq!(live, stats.entries);
        assert_eq!(live_bytes, stats.bytes);
    }

    #[test]
    fn concurrent_fills_purges_and_hits_keep_gauges_exact() {
        use futures::FutureExt;

        let max_size = 128 * 1024;
        let store = store(max_size, 8 * 1024);
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                std::thread::spawn(move || {
                    let meta = meta_with(60, 60, 0);
                    let mut x = 0x9e37_79b9_7f4a_7c15 ^ t;
                    for _ in 0..3000 {
                        // xorshift: deterministic per thread, no extra dependency
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let key = CacheKey::new(format!("/c/{}", x % 150), "");
                        let op = async {
                            match (x >> 32) % 8 {
                                0..=2 => {
                                    fill(store, &key, &meta, &vec![1u8; (x % 3000) as usize]).await
                                }
                                3 => {
                                    store
                                        .purge(
                                            PurgeTarget::Active(&key.to_compact()),
                                            PurgeType::Invalidation,
                                            &span(),
                                        )
                                        .await
                                        .unwrap();
                                }
                                4 => {
                                    store
                                        .expire(PurgeTarget::Active(&key.to_compact()), &span())
                                        .await
                                        .unwrap();
                                }
                                _ => {
                                    if let Some((_, mut hit)) =
                                        store.lookup(&key, &span()).await.unwrap()
                                    {
                                        read_all(&mut hit).await;
                                    }
                                }
                            }
                        };
                        op.now_or_never().expect("the memory store never suspends");
                        assert!(store.stats().bytes <= max_size);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let (mut live, mut live_bytes) = (0, 0);
        for i in 0..150 {
            let key = CacheKey::new(format!("/c/{i}"), "");
            let found = store.lookup(&key, &span()).now_or_never().unwrap().unwrap();
            if let Some((_, hit)) = found {
                live += 1;
                live_bytes += hit.get_eviction_weight();
            }
        }
        let stats = store.stats();
        assert_eq!(
            (live, live_bytes),
            (stats.entries, stats.bytes),
            "{stats:?}"
        );
    }

    #[tokio::test]
    async fn a_body_over_max_object_size_is_not_stored() {
        let store = store(MIB, 1000);
        let key = CacheKey::new("/big", "");
        let mut miss = store
            .get_miss_handler(&key, &meta_with(60, 0, 0), &span())
            .await
            .unwrap();
        for _ in 0..3 {
            // Writes keep succeeding so the client response keeps streaming.
            miss.write_body(Bytes::from(vec![0u8; 400]), false)
                .await
                .unwrap();
        }
        assert!(matches!(
            miss.finish().await.unwrap(),
            MissFinishType::Created(0)
        ));
        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
        let stats = store.stats();
        assert_eq!(stats.too_large, 1);
        assert_eq!(stats.entries, 0);
        assert_eq!(stats.bytes, 0);
    }

    #[tokio::test]
    async fn a_content_length_over_max_object_size_is_not_buffered() {
        let store = store(MIB, 1000);
        let key = CacheKey::new("/big-declared", "");
        let mut meta = meta_with(60, 0, 0);
        meta.response_header_mut()
            .insert_header("Content-Length", "5000")
            .unwrap();
        let mut miss = store.get_miss_handler(&key, &meta, &span()).await.unwrap();
        miss.write_body(Bytes::from_static(b"abc"), true)
            .await
            .unwrap();
        miss.finish().await.unwrap();
        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
        assert_eq!(store.stats().too_large, 1);
    }

    #[tokio::test]
    async fn a_dropped_miss_handler_stores_nothing() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/aborted", "");
        let mut miss = store
            .get_miss_handler(&key, &meta_with(60, 0, 0), &span())
            .await
            .unwrap();
        miss.write_body(Bytes::from_static(b"partial"), false)
            .await
            .unwrap();
        drop(miss);
        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
        assert_eq!(store.stats().entries, 0);
    }

    #[tokio::test]
    async fn a_refill_replaces_the_entry_and_its_bytes() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/replace", "");
        fill(store, &key, &meta_with(60, 0, 0), &[1u8; 3000]).await;
        fill(store, &key, &meta_with(60, 0, 0), &[2u8; 100]).await;
        let (_, mut hit) = store.lookup(&key, &span()).await.unwrap().unwrap();
        assert_eq!(read_all(&mut hit).await, vec![2u8; 100]);
        let stats = store.stats();
        assert_eq!(stats.entries, 1);
        assert_eq!(stats.bytes, hit.get_eviction_weight());
        assert!(stats.bytes < 3000);
    }

    #[tokio::test]
    async fn purge_removes_the_entry() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/purge-me", "w1");
        fill(store, &key, &meta_with(60, 0, 0), b"body").await;
        let compact = key.to_compact();

        let outcome = store
            .purge(
                PurgeTarget::Active(&compact),
                PurgeType::Invalidation,
                &span(),
            )
            .await
            .unwrap();
        assert_eq!(outcome, PurgeOutcome::Purged(None));
        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
        assert_eq!(store.stats().entries, 0);
        assert_eq!(store.stats().bytes, 0);

        let again = store
            .purge(
                PurgeTarget::Active(&compact),
                PurgeType::Invalidation,
                &span(),
            )
            .await
            .unwrap();
        assert_eq!(again, PurgeOutcome::NotFound);

        // A refill after a purge is stored again.
        fill(store, &key, &meta_with(60, 0, 0), b"new body").await;
        let (_, mut hit) = store.lookup(&key, &span()).await.unwrap().unwrap();
        assert_eq!(read_all(&mut hit).await, b"new body");
    }

    #[tokio::test]
    async fn purge_by_exact_target() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/exact", "");
        fill(store, &key, &meta_with(60, 0, 0), b"body").await;

        let identified =
            CacheEntryKey::identified(key.to_compact(), pingora_cache::CacheEntryId::new(9));
        let outcome = store
            .purge(
                PurgeTarget::Exact(&identified),
                PurgeType::Eviction,
                &span(),
            )
            .await
            .unwrap();
        assert_eq!(outcome, PurgeOutcome::NotFound, "we never assign entry IDs");

        let key_only = CacheEntryKey::key_only(key.to_compact());
        let outcome = store
            .purge(PurgeTarget::Exact(&key_only), PurgeType::Eviction, &span())
            .await
            .unwrap();
        assert_eq!(outcome, PurgeOutcome::Purged(None));
        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
    }

    #[test]
    fn compact_and_full_keys_address_the_same_slot() {
        fn check(key: &CacheKey) {
            let compact = key.to_compact();
            assert_eq!(store_key(key), store_key(&compact));
            assert_eq!(store_key(key), u128::from_be_bytes(key.combined_bin()));
            // A compact key rebuilt from its parts, as a purge registry would store it.
            let rebuilt = CompactCacheKey {
                primary: compact.primary,
                variance: compact.variance.clone(),
                user_tag: "anything".into(),
            };
            assert_eq!(store_key(key), store_key(&rebuilt));
        }
        check(&CacheKey::new("/plain", ""));
        let mut varied = CacheKey::new("/varied", "tag");
        varied.set_variance_key([7u8; 16]);
        check(&varied);
        let mut overridden = CacheKey::new("/ignored", "");
        overridden.set_primary_bin_override([1u8; 16]);
        check(&overridden);
        assert_ne!(
            store_key(&CacheKey::new("/varied", "tag")),
            store_key(&varied)
        );
    }

    #[tokio::test]
    async fn purge_by_compact_key_reaches_a_varied_entry() {
        let store = store(MIB, 64 * 1024);
        let mut key = CacheKey::new("/vary", "");
        key.set_variance_key([3u8; 16]);
        let mut meta = meta_with(60, 0, 0);
        meta.set_variance([3u8; 16]);
        fill(store, &key, &meta, b"variant").await;

        let (found, _) = store.lookup(&key, &span()).await.unwrap().unwrap();
        assert_eq!(found.variance(), Some([3u8; 16]));

        let outcome = store
            .purge(
                PurgeTarget::Active(&key.to_compact()),
                PurgeType::Invalidation,
                &span(),
            )
            .await
            .unwrap();
        assert_eq!(outcome, PurgeOutcome::Purged(None));
        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn expire_marks_stale_and_keeps_the_body() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/expire", "");
        let mut meta = meta_with(300, 30, 0);
        info().attach(&mut meta);
        fill(store, &key, &meta, b"keep me").await;
        let bytes_before = store.stats().bytes;

        let outcome = store
            .expire(PurgeTarget::Active(&key.to_compact()), &span())
            .await
            .unwrap();
        assert_eq!(outcome, PurgeOutcome::Expired);

        let (found, mut hit) = store.lookup(&key, &span()).await.unwrap().unwrap();
        let later = SystemTime::now() + Duration::from_secs(1);
        assert!(!found.is_fresh(later));
        assert!(found.serve_stale_while_revalidate(later));
        assert_eq!(EntryInfo::of(&found), Some(&info()));
        assert_eq!(read_all(&mut hit).await, b"keep me");
        assert_eq!(store.stats().bytes, bytes_before);
        assert_eq!(store.stats().entries, 1);

        let absent = CacheKey::new("/never", "").to_compact();
        let outcome = store
            .expire(PurgeTarget::Active(&absent), &span())
            .await
            .unwrap();
        assert_eq!(outcome, PurgeOutcome::NotFound);
    }

    #[tokio::test]
    async fn update_meta_replaces_freshness_and_header() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/revalidate", "");
        let mut meta = meta_with(-10, 60, 0);
        info().attach(&mut meta);
        fill(store, &key, &meta, b"same body").await;

        let mut header = header();
        header.append_header("ETag", "\"v2\"").unwrap();
        let now = SystemTime::now();
        let fresh_until = now + Duration::from_secs(120);
        let mut revalidated = CacheMeta::new(fresh_until, now, 5, 6, header);
        // As pingora's revalidate_cache_meta does: keep the original creation time.
        revalidated.set_epoch_override(now);
        assert!(store
            .update_meta(&key, &revalidated, &span())
            .await
            .unwrap());

        let (found, mut hit) = store.lookup(&key, &span()).await.unwrap().unwrap();
        assert_eq!(found.fresh_until(), fresh_until);
        assert!(found.is_fresh(SystemTime::now()));
        assert_eq!(found.stale_while_revalidate_sec(), 5);
        assert_eq!(found.stale_if_error_sec(), 6);
        assert_eq!(found.epoch(), now);
        assert_eq!(found.headers().get("etag").unwrap(), "\"v2\"");
        assert_eq!(
            EntryInfo::of(&found),
            Some(&info()),
            "kept from the stored entry"
        );
        assert_eq!(read_all(&mut hit).await, b"same body");
        assert_eq!(store.stats().bytes, hit.get_eviction_weight());

        let absent = CacheKey::new("/absent", "");
        assert!(!store
            .update_meta(&absent, &revalidated, &span())
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn seek_serves_ranges_and_rejects_out_of_range() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/range", "");
        fill(store, &key, &meta_with(60, 0, 0), b"test1test2").await;
        let (_, mut hit) = store.lookup(&key, &span()).await.unwrap().unwrap();
        assert!(hit.can_seek());

        let err = hit.seek(10, None).unwrap_err();
        assert_eq!(err.etype(), &pingora_error::ErrorType::InternalError);
        assert!(hit.seek(6, Some(5)).is_err());

        hit.seek(5, None).unwrap();
        assert_eq!(read_all(&mut hit).await, b"test2");
        hit.seek(4, Some(5)).unwrap();
        assert_eq!(read_all(&mut hit).await, b"1");
        // An end past the body is clamped.
        hit.seek(8, Some(100)).unwrap();
        assert_eq!(read_all(&mut hit).await, b"t2");
    }

    #[tokio::test]
    async fn remove_and_clear() {
        let store = store(MIB, 64 * 1024);
        let a = CacheKey::new("/a", "");
        let b = CacheKey::new("/b", "");
        fill(store, &a, &meta_with(60, 0, 0), b"a").await;
        fill(store, &b, &meta_with(60, 0, 0), b"b").await;
        assert!(store.remove(&a));
        assert!(!store.remove(&a));
        assert_eq!(store.stats().entries, 1);

        store.clear();
        assert_eq!(store.stats().entries, 0);
        assert_eq!(store.stats().bytes, 0);
        assert!(store.lookup(&b, &span()).await.unwrap().is_none());

        // Refilling over a cleared entry counts only the new one.
        fill(store, &b, &meta_with(60, 0, 0), b"b2").await;
        let (_, hit) = store.lookup(&b, &span()).await.unwrap().unwrap();
        assert_eq!(store.stats().entries, 1);
        assert_eq!(store.stats().bytes, hit.get_eviction_weight());
    }

    #[tokio::test]
    async fn an_entry_larger_than_the_store_is_refused() {
        let store = store(4 * 1024, 64 * 1024);
        let key = CacheKey::new("/huge", "");
        fill(store, &key, &meta_with(60, 0, 0), &[0u8; 10_000]).await;
        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
        assert_eq!(store.stats().too_large, 1);
        assert_eq!(store.stats().bytes, 0);
    }
}
