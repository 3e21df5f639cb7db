//! L1 memory in front of L2 Redis, behind one `Storage`.
//!
//! A lookup tries the memory tier, then Redis. An entry found in Redis is
//! copied into memory (promoted) before it is returned: its `CacheMeta` keeps
//! its absolute freshness deadline, so the memory copy lives exactly as long
//! as the Redis one had left. The meta returned for a Redis hit carries
//! [`super::Layer::Redis`], which becomes `X-Cache-Layer: REDIS`.
//!
//! A fill writes both tiers from the same body chunks (`Bytes` are shared,
//! not copied). Purges, expiries and meta updates go to both.

use std::any::Any;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_cache::key::CacheHashKey;
use pingora_cache::storage::{
    HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget, PurgeType,
    Storage,
};
use pingora_cache::trace::SpanHandle;
use pingora_cache::{CacheKey, CacheMeta};
use pingora_error::Result;

use super::hit::BodyHit;
use super::redis::{RedisMiss, RedisStore};
use super::MemoryStore;

/// Memory first, then Redis.
pub struct TieredStore {
    memory: &'static MemoryStore,
    redis: &'static RedisStore,
}

impl std::fmt::Debug for TieredStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredStore")
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

impl TieredStore {
    /// A store over both tiers.
    pub fn new(memory: &'static MemoryStore, redis: &'static RedisStore) -> Self {
        TieredStore { memory, redis }
    }
}

/// Copies an entry found in Redis into memory, with the time it has left.
/// A failure only costs a later Redis read.
pub(crate) async fn promote(
    memory: &'static MemoryStore,
    key: &CacheKey,
    meta: &CacheMeta,
    body: &Bytes,
) {
    let trace = pingora_cache::trace::Span::inactive().handle();
    let Ok(mut miss) = memory.get_miss_handler(key, meta, &trace).await else {
        return;
    };
    if miss.write_body(body.clone(), true).await.is_ok() {
        let _ = miss.finish().await;
    }
}

/// Writes a fill to both tiers.
struct TeeMiss {
    memory: MissHandler,
    redis: Option<RedisMiss>,
}

#[async_trait]
impl HandleMiss for TeeMiss {
    async fn write_body(&mut self, data: Bytes, eof: bool) -> Result<()> {
        if let Some(redis) = self.redis.as_mut() {
            if redis.write_body(data.clone(), eof).await.is_err() {
                self.redis = None;
            }
        }
        self.memory.write_body(data, eof).await
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let this = *self;
        let done = this.memory.finish().await;
        if let Some(redis) = this.redis {
            // Stored in Redis before pingora releases the lock and the
            // cross-instance lock is released: waiters find it there.
            let _ = Box::new(redis).finish().await;
        }
        done
    }
}

#[async_trait]
impl Storage for TieredStore {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        if let Some(hit) = self.memory.lookup(key, trace).await? {
            return Ok(Some(hit));
        }
        if super::RedisAsked::take(key) {
            return Ok(None);
        }
        let Some(found) = self.redis.fetch(&key.combined_bin()).await else {
            return Ok(None);
        };
        promote(self.memory, key, &found.meta, &found.body).await;
        let weight = found.body.len();
        Ok(Some((
            found.meta,
            Box::new(BodyHit::new(found.body, weight)),
        )))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let memory = self.memory.get_miss_handler(key, meta, trace).await?;
        Ok(Box::new(TeeMiss {
            memory,
            redis: Some(self.redis.miss_handler(key, meta)),
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        purge_type: PurgeType,
        trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let l1 = self.memory.purge(target, purge_type, trace).await?;
        if matches!(purge_type, PurgeType::Invalidation) {
            let l2 = self.redis.purge(target, purge_type, trace).await?;
            if l1 == PurgeOutcome::NotFound {
                return Ok(l2);
            }
        }
        Ok(l1)
    }

    async fn expire(
        &'static self,
        target: PurgeTarget<'_>,
        trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let l1 = self.memory.expire(target, trace).await?;
        // Redis keeps no separate freshness to rewrite cheaply: drop its copy.
        let l2 = self
            .redis
            .purge(target, PurgeType::Invalidation, trace)
            .await?;
        Ok(if l1 == PurgeOutcome::NotFound { l2 } else { l1 })
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &SpanHandle,
    ) -> Result<bool> {
        let l1 = self.memory.update_meta(key, meta, trace).await?;
        let l2 = self.redis.update_meta(key, meta, trace).await?;
        Ok(l1 || l2)
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}
