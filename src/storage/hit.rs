//! The hit handler of both tiers: serves a body held in memory, whole or a range of it.

use std::any::Any;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_cache::storage::{HandleHit, Storage};
use pingora_cache::trace::SpanHandle;
use pingora_cache::CacheKey;
use pingora_error::{Error, ErrorType, Result};

/// Largest slice handed to the client per `read_body` call.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// Serves one body (a memory entry's, or an L2 value just read). Reading a
/// slice is a reference-count increment; seeking rewinds, so one handler can
/// serve several ranges.
#[derive(Debug)]
pub struct BodyHit {
    body: Bytes,
    /// Next byte to hand out.
    pos: usize,
    /// End (exclusive) of what is handed out.
    end: usize,
    /// What the entry is charged in its store, for pingora's eviction manager.
    weight: usize,
}

impl BodyHit {
    /// A hit over `body`, charged `weight` bytes.
    pub fn new(body: Bytes, weight: usize) -> Self {
        let end = body.len();
        BodyHit {
            body,
            pos: 0,
            end,
            weight,
        }
    }
}

#[async_trait]
impl HandleHit for BodyHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let to = self.end.min(self.pos.saturating_add(READ_CHUNK));
        let chunk = self.body.slice(self.pos..to);
        self.pos = to;
        Ok(Some(chunk))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    /// Restricts the next reads to `start..end` (`end` exclusive, clamped to the body).
    ///
    /// # Errors
    ///
    /// `InternalError` if `start` is not inside the body or `end` is before `start`.
    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.body.len();
        if start >= len {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("seek start out of range {start} >= {len}"),
            );
        }
        let end = end.map_or(len, |end| end.min(len));
        if end < start {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("seek end {end} before start {start}"),
            );
        }
        self.pos = start;
        self.end = end;
        Ok(())
    }

    fn get_eviction_weight(&self) -> usize {
        self.weight
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}
