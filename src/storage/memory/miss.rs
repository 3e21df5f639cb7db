//! The miss handler: a fill buffered until `finish` stores it.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_cache::storage::{HandleMiss, MissFinishType};
use pingora_error::Result;

use super::entry::*;
use super::store::*;

/// Buffers a fill and stores it on `finish`.
///
/// Nothing is visible to readers before `finish`; dropping the handler discards the fill.
/// A body over `max_object_size` is dropped silently: `write_body` keeps returning `Ok` so
/// the response keeps streaming to the client, and `finish` reports `Created(0)`.
pub(super) struct MemoryMissHandler {
    pub(super) store: &'static MemoryStore,
    pub(super) key: u128,
    pub(super) meta: EntryMeta,
    pub(super) chunks: Vec<Bytes>,
    pub(super) len: usize,
    pub(super) oversize: bool,
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
        let entry = Entry::new(key, meta, Bytes::from(body));
        let weight = entry.weight;
        Ok(MissFinishType::Created(if store.admit(entry) {
            weight
        } else {
            0
        }))
    }
}
