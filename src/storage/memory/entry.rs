//! A stored entry, what it is charged, and the fresh hit handed to the fast path.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use pingora_cache::key::{CacheHashKey, HashBinary};
use pingora_cache::CacheMeta;
use pingora_http::ResponseHeader;

use crate::storage::wire::WireHead;
use crate::storage::{dead_at, EntryInfo, Layer, Servable};

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
pub(super) const ESTIMATED_MEAN_ENTRY: usize = 8 * 1024;

/// What TinyUFO holds for a key: an entry, or a tombstone left by a removal.
pub(super) type Slot = Option<Arc<Entry>>;

/// The response fields an entry keeps, everything pingora needs to rebuild its `CacheMeta`.
pub(super) struct EntryMeta {
    pub(super) header: ResponseHeader,
    pub(super) fresh_until: SystemTime,
    pub(super) created: SystemTime,
    /// The reference point for age: the meta's epoch override, or its `updated` time when
    /// that differs from `created` (after a revalidation). See [`EntryMeta::to_cache_meta`].
    pub(super) epoch: Option<SystemTime>,
    pub(super) variance: Option<HashBinary>,
    pub(super) stale_while_revalidate_sec: u32,
    pub(super) stale_if_error_sec: u32,
    pub(super) info: Option<Arc<EntryInfo>>,
    /// The header as a hit writes it, serialized once when the entry is
    /// stored ([`crate::storage::wire`]); `None` when a hit must build it
    /// the long way.
    pub(super) wire: Option<WireHead>,
}

impl EntryMeta {
    pub(super) fn of(meta: &CacheMeta) -> Self {
        let epoch = meta.epoch_override().or_else(|| {
            let updated = meta.updated();
            (updated != meta.created()).then_some(updated)
        });
        let header = meta.response_header_copy();
        EntryMeta {
            wire: WireHead::of(&header),
            header,
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
    pub(super) fn to_cache_meta(&self) -> CacheMeta {
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
    pub(super) fn dead_at(&self) -> Option<SystemTime> {
        dead_at(
            self.fresh_until,
            self.stale_while_revalidate_sec,
            self.stale_if_error_sec,
        )
    }

    /// Bytes charged for everything but the body, the header block included.
    pub(super) fn weight(&self) -> usize {
        let headers: usize = self
            .header
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + HEADER_OVERHEAD)
            .sum();
        let reason = self.header.get_reason_phrase().map_or(0, str::len);
        let wire = self.wire.as_ref().map_or(0, WireHead::len);
        ENTRY_OVERHEAD + headers + reason + wire + self.info.as_ref().map_or(0, |i| i.weight())
    }
}

/// A live stored response, found by [`MemoryStore::servable`]: the hit
/// policy decides whether it may be served as it is.
pub struct MemoryHit(pub(super) Arc<Entry>);

impl MemoryHit {
    /// The entry as a response that may be served.
    pub fn servable(&self) -> Servable<'_> {
        let meta = &self.0.meta;
        Servable {
            header: &meta.header,
            body: self.0.body.clone(),
            updated: meta.created,
            epoch: meta.epoch.unwrap_or(meta.created),
            fresh_until: meta.fresh_until,
            variance: meta.variance,
            info: meta.info.as_deref(),
            layer: Layer::Memory,
        }
    }

    /// The stored header as a hit writes it, when it has a block.
    pub fn wire(&self) -> Option<&WireHead> {
        self.0.meta.wire.as_ref()
    }
}

/// A stored response.
pub(super) struct Entry {
    /// The full 128-bit key, checked on every read: TinyUFO indexes by a 64-bit hash of it.
    pub(super) key: u128,
    pub(super) meta: EntryMeta,
    pub(super) body: Bytes,
    pub(super) dead_at: Option<SystemTime>,
    /// Bytes charged for this entry.
    pub(super) weight: usize,
}

impl Entry {
    pub(super) fn new(key: u128, meta: EntryMeta, body: Bytes) -> Self {
        let dead_at = meta.dead_at();
        let weight = meta.weight() + body.len();
        Entry {
            key,
            meta,
            body,
            dead_at,
            weight,
        }
    }

    pub(super) fn is_dead(&self, now: SystemTime) -> bool {
        self.dead_at.is_some_and(|dead_at| now > dead_at)
    }
}

/// The 128-bit store key of a cache key: `combined_bin()` read as a big-endian integer.
///
/// `CacheKey` and `CompactCacheKey` share `combined_bin()`'s default implementation (the
/// primary hash, or Blake2b-128 of primary and variance), so both give the same value.
pub(super) fn store_key<K: CacheHashKey + ?Sized>(key: &K) -> u128 {
    u128::from_be_bytes(key.combined_bin())
}

/// Running values of the two gauges while a mutation is settled under the write lock.
pub(super) struct Gauges {
    pub(super) entries: usize,
    pub(super) bytes: usize,
}
