//! Cache storage: the tiers that hold responses, behind pingora-cache's `Storage` trait.
//!
//! The proxy never talks to a backend directly: it hands pingora-cache a
//! `&'static dyn Storage`, and reads what tagcache needs of an entry (route,
//! workspace, tags, birth epoch) from [`EntryInfo`], carried in the
//! `CacheMeta` extensions both ways.

pub mod memory;

use std::sync::Arc;

use pingora_cache::CacheMeta;

pub use memory::{MemoryStats, MemoryStore};

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
