//! Cache storage: the tiers that hold responses, behind pingora-cache's `Storage` trait.
//!
//! The proxy never talks to a backend directly: it hands pingora-cache a
//! `&'static dyn Storage`, and reads what tagcache needs of an entry (route,
//! workspace, tags, birth epoch) from [`EntryInfo`], carried in the
//! `CacheMeta` extensions both ways.
//!
//! Tiers: [`MemoryStore`] (L1, per process), [`RedisStore`] (L2, shared,
//! values in the [`envelope`] format) and [`TieredStore`] (L1 then L2, with
//! promotion). Either tier works alone.

pub mod memory;
pub mod redis;
pub mod tiered;

internal_mods!(envelope, hit, servable, wire);

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pingora_cache::{CacheKey, CacheMeta};
use pingora_http::ResponseHeader;

/// Room a stored header map keeps for the headers a hit adds (`Age`,
/// `Transfer-Encoding`, `X-Cache-Status`, `X-Cache-Layer`, `Cache-Status`,
/// `X-Cache-Key`). A clone keeps the map's index table, so a hit's inserts
/// do not rehash it.
pub(crate) const HIT_HEADER_ROOM: usize = 6;

/// A pingora header without a case map, from bare `http` pieces, keeping
/// `reason` where it is not the status' canonical one. Hits, stored headers
/// and headers read from Redis are built this way: pingora's
/// `insert_header` and `append_header` parse every name again.
///
/// # Errors
/// When `reason` is not a valid reason phrase.
pub(crate) fn bare_header(
    status: http::StatusCode,
    version: http::Version,
    headers: http::HeaderMap,
    reason: Option<&str>,
) -> pingora_error::Result<ResponseHeader> {
    let mut parts = http::Response::new(()).into_parts().0;
    parts.status = status;
    parts.version = version;
    parts.headers = headers;
    let mut header = ResponseHeader::from(parts);
    if reason.is_some() && reason != status.canonical_reason() {
        header.set_reason_phrase(reason)?;
    }
    Ok(header)
}

pub use memory::{MemoryHit, MemoryStats, MemoryStore};
pub use redis::RedisStore;
pub(crate) use servable::{dead_at, Servable};
pub(crate) use tiered::promote;
pub use tiered::TieredStore;

/// The tier an entry was found in, carried in the `CacheMeta` extensions of
/// a hit (absent means memory). Shown as `X-Cache-Layer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The in-process memory tier.
    Memory,
    /// The shared Redis tier.
    Redis,
}

impl Layer {
    /// Marks `meta` as found in this tier.
    pub fn mark(self, meta: &mut CacheMeta) {
        meta.extensions_mut().insert(self);
    }

    /// The tier `meta` was found in.
    pub fn of(meta: &CacheMeta) -> Layer {
        meta.extensions()
            .get::<Layer>()
            .copied()
            .unwrap_or(Layer::Memory)
    }

    /// The `X-Cache-Layer` value.
    pub fn as_str(self) -> &'static str {
        Self::name_of(Some(self))
    }

    /// The `X-Cache-Layer` value of a response served from `layer`, or
    /// from the origin (`None`).
    pub fn name_of(layer: Option<Layer>) -> &'static str {
        match layer {
            Some(Layer::Memory) => "MEMORY",
            Some(Layer::Redis) => "REDIS",
            None => "ORIGIN",
        }
    }
}

/// Carried in a request's `CacheKey` extensions when the hit fast path has
/// already asked Redis for the key and found nothing to use (absent, or
/// Redis failing). The first lookup through pingora-cache then skips Redis:
/// a miss costs one `GET`, and a Redis stall one timeout, not two. Only the
/// first: a request that then waits on pingora's cache lock looks again and
/// finds the entry the lock holder stored.
#[derive(Debug, Clone)]
pub(crate) struct RedisAsked(Arc<AtomicBool>);

impl RedisAsked {
    /// A fresh marker, good for one skipped lookup.
    pub fn new() -> Self {
        RedisAsked(Arc::new(AtomicBool::new(true)))
    }

    /// Whether this lookup of `key` may skip Redis; `true` at most once.
    pub fn take(key: &CacheKey) -> bool {
        key.extensions
            .get::<RedisAsked>()
            .is_some_and(|m| m.0.swap(false, Ordering::AcqRel))
    }
}

impl Default for RedisAsked {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads a `Content-Length` header, if present and valid.
pub(crate) fn content_length(header: &ResponseHeader) -> Option<usize> {
    header
        .headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// What tagcache remembers about a stored entry, besides the response itself.
///
/// Set by the proxy in the `CacheMeta` extensions before the fill (see
/// [`EntryInfo::attach`]); stores keep it beside the entry and put it back in
/// the extensions of the `CacheMeta` they return on lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// Index of the route in the config's route list.
    pub route: u16,
    /// The workspace the entry belongs to, if the route is tenant-scoped.
    pub workspace: Option<Arc<str>>,
    /// Hashes of every tag of the entry (route templates, origin tags, implicit ones).
    pub tags: Box<[u64]>,
    /// The purge epoch observed when the origin fetch for this entry started.
    pub born: u64,
}

impl EntryInfo {
    /// Stores `info` in `meta`'s extensions.
    pub fn attach(self: Arc<Self>, meta: &mut CacheMeta) {
        meta.extensions_mut().insert(self);
    }

    /// Reads the info back from `meta`'s extensions, if present.
    pub fn of(meta: &CacheMeta) -> Option<&Arc<EntryInfo>> {
        meta.extensions().get::<Arc<EntryInfo>>()
    }

    /// Bytes this info costs in memory, for the store's accounting.
    pub fn weight(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.tags.len() * 8
            + self.workspace.as_ref().map_or(0, |w| w.len())
    }
}
