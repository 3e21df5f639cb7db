//! [`MemoryStore`]: the TinyUFO store, its gauges and pingora-cache's `Storage` trait.

use std::any::Any;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use parking_lot::Mutex;
use pingora_cache::key::HashBinary;
use pingora_cache::storage::{
    HitHandler, MissHandler, PurgeOutcome, PurgeTarget, PurgeType, Storage,
};
use pingora_cache::trace::SpanHandle;
use pingora_cache::{CacheEntryKey, CacheKey, CacheMeta};
use pingora_error::Result;
use tinyufo::{TinyUfo, KV};

use crate::storage::hit::BodyHit;

use super::entry::*;
use super::miss::*;
use super::quota::*;

/// Counters and gauges of a [`MemoryStore`], read with [`MemoryStore::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Entries currently stored (tombstones are not counted).
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
    pub(super) cache: TinyUfo<u128, Slot>,
    /// Serializes every mutation of `cache`, so gauges and TinyUFO's own weights stay exact.
    pub(super) write: Mutex<()>,
    pub(super) max_size: usize,
    pub(super) max_object_size: usize,
    /// Bytes per TinyUFO weight unit.
    pub(super) unit: usize,
    /// TinyUFO's weight limit, in units.
    pub(super) limit_units: usize,
    pub(super) tombstone_units: u16,
    pub(super) entries: AtomicUsize,
    pub(super) bytes: AtomicUsize,
    pub(super) evictions: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) expired: AtomicU64,
    pub(super) too_large: AtomicU64,
    /// Per-workspace accounting, with a quota. Only touched under `write`.
    pub(super) quota: Option<Quota>,
    pub(super) quota_evictions: AtomicU64,
    pub(super) quota_refused: AtomicU64,
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

    /// The entry under `hash` (a [`CacheHashKey::combined_bin`]), if one is
    /// stored: what the hit fast path reads without asking pingora-cache (see
    /// `TagCache::serve_fresh_hit`). Whether it may be served as it is (fresh,
    /// not varied, ...) is the hit policy's call.
    pub fn servable(&self, hash: &HashBinary) -> Option<MemoryHit> {
        self.get(u128::from_be_bytes(*hash)).map(MemoryHit)
    }

    /// The live entry at `key`, if any: not a tombstone, not a hash collision.
    pub(super) fn get(&self, key: u128) -> Option<Arc<Entry>> {
        let entry = self.cache.get(&key)??;
        (entry.key == key).then_some(entry)
    }

    /// Weight units for `bytes`, or `None` if the entry cannot fit the store.
    pub(super) fn units(&self, bytes: usize) -> Option<u16> {
        let units = bytes.div_ceil(self.unit);
        if units == 0 || units > self.limit_units {
            return None;
        }
        u16::try_from(units).ok()
    }

    pub(super) fn gauges(&self) -> Gauges {
        Gauges {
            entries: self.entries.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    pub(super) fn publish(&self, gauges: &Gauges) {
        self.entries.store(gauges.entries, Ordering::Relaxed);
        self.bytes.store(gauges.bytes, Ordering::Relaxed);
    }

    /// Puts `slot` at `key` and settles gauges and counters. Returns whether the new entry
    /// (if `slot` holds one) is in the cache afterwards.
    ///
    /// The caller holds `self.write` and passes what `key` held before (`previous`, read under
    /// the same lock): TinyUFO drops a replaced value without returning it.
    pub(super) fn put_locked(
        &self,
        key: u128,
        slot: Slot,
        units: u16,
        previous: Option<Slot>,
        gauges: &mut Gauges,
    ) -> bool {
        let existed = previous.is_some();
        if let Some(Some(old)) = previous {
            gauges.entries = gauges.entries.saturating_sub(1);
            gauges.bytes = gauges.bytes.saturating_sub(old.weight);
            self.charge(key, &old, false);
        }
        let new = slot.clone();
        if let Some(entry) = &new {
            gauges.entries += 1;
            gauges.bytes += entry.weight;
            self.charge(key, entry, true);
        }
        let evicted = self.cache.put(key, slot, units);
        let kept = self.settle(evicted, new.as_ref(), existed, gauges);

        // TinyUFO's weight limit already bounds `bytes` (each entry is charged at most its units
        // times the unit). Should that ever not hold, the new entry gives way.
        if kept && gauges.bytes > self.max_size {
            if let Some(entry) = new {
                let evicted = self.cache.put(key, None, self.tombstone_units);
                gauges.entries = gauges.entries.saturating_sub(1);
                gauges.bytes = gauges.bytes.saturating_sub(entry.weight);
                self.charge(key, &entry, false);
                self.rejected.fetch_add(1, Ordering::Relaxed);
                self.settle(evicted, None, true, gauges);
                return false;
            }
        }
        kept
    }

    /// Accounts for what a put evicted; returns false if `new` itself was among it.
    pub(super) fn settle(
        &self,
        evicted: Vec<KV<Slot>>,
        new: Option<&Arc<Entry>>,
        existed: bool,
        gauges: &mut Gauges,
    ) -> bool {
        let mut kept = true;
        for item in evicted {
            let Some(entry) = item.data else {
                continue; // a tombstone: not in the gauges
            };
            let is_new = new.is_some_and(|new| Arc::ptr_eq(new, &entry));
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
            if is_new {
                kept = false;
            }
        }
        kept
    }

    /// Stores a complete entry, replacing what `entry.key` held. Returns whether it was kept.
    pub(super) fn admit(&self, entry: Entry) -> bool {
        let Some(units) = self.units(entry.weight) else {
            self.too_large.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let key = entry.key;
        let entry = Arc::new(entry);
        let _write = self.write.lock();
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
    pub(super) fn remove_key(&self, key: u128, expected: Option<&Arc<Entry>>) -> bool {
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
    pub(super) fn rewrite(&self, key: u128, rebuild: impl FnOnce(&Entry) -> EntryMeta) -> bool {
        let _write = self.write.lock();
        let Some(old) = self.get(key) else {
            return false;
        };
        let entry = Entry::new(key, rebuild(&old), old.body.clone());
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
    pub(super) fn target_key(target: PurgeTarget<'_>) -> Option<u128> {
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
        let oversize = crate::storage::content_length(&meta.header)
            .is_some_and(|len| len > self.max_object_size);
        Ok(Box::new(MemoryMissHandler {
            store: self,
            key: store_key(key),
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
            wire: old.meta.wire.clone(),
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
