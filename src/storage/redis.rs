//! The Redis tier: entries shared by every instance, behind pingora-cache's `Storage` trait.
//!
//! Each entry is one Redis string (see [`super::envelope`]) under
//! `{prefix}:{<hash>}`, so a hit is one `GET`. Its Redis TTL is the entry's
//! fresh time plus the longer of its stale-while-revalidate and
//! stale-if-error windows, so that Redis keeps it exactly as long as pingora
//! could still serve it, and forgets it by itself afterwards.
//!
//! Every operation goes through [`Shared::call`] (timeout, circuit breaker):
//! a lookup that fails is a miss, a fill that fails is simply not stored. A
//! value that cannot be read (another format version, a foreign key, a
//! corrupt body) is a miss too, counted as `rejected`.

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
use redis::Value;

use super::envelope::{self, Decoded, EnvelopeWriter};
use super::{EntryInfo, Layer};
use crate::shared::{Shared, SharedError};

/// The Redis tier. Build one per process and leak it for pingora's `'static`.
#[derive(Debug)]
pub struct RedisStore {
    shared: Arc<Shared>,
    max_object_size: usize,
    compress_above: usize,
}

/// How long Redis should keep an entry: until its last serve-stale window
/// closes. `None` when that moment has passed.
pub fn ttl_of(meta: &CacheMeta, now: SystemTime) -> Option<Duration> {
    dead_of(meta)?
        .duration_since(now)
        .ok()
        .filter(|d| !d.is_zero())
}

/// When the entry `meta` describes dies.
fn dead_of(meta: &CacheMeta) -> Option<SystemTime> {
    super::dead_at(
        meta.fresh_until(),
        meta.stale_while_revalidate_sec(),
        meta.stale_if_error_sec(),
    )
}

impl RedisStore {
    /// A store over `shared`, keeping bodies up to `max_object_size` and
    /// compressing those over `compress_above`.
    pub fn new(shared: Arc<Shared>, max_object_size: usize, compress_above: usize) -> Self {
        RedisStore {
            shared,
            max_object_size,
            compress_above,
        }
    }

    /// The shared Redis handle.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Largest body stored.
    pub fn max_object_size(&self) -> usize {
        self.max_object_size
    }

    /// Reads a stored value back, counting values that cannot be read.
    pub fn decode(&self, value: Vec<u8>) -> Option<Decoded> {
        match envelope::decode(value, self.max_object_size) {
            Ok(mut decoded) => {
                Layer::Redis.mark(&mut decoded.meta);
                Some(decoded)
            }
            Err(e) => {
                self.shared
                    .metrics()
                    .l2
                    .with_label_values(&["rejected"])
                    .inc();
                tracing::debug!("ignored an unreadable redis entry: {e}");
                None
            }
        }
    }

    /// Looks an entry up by its `combined_bin()`. Failures are misses.
    pub async fn fetch(&self, key: &[u8; 16]) -> Option<Decoded> {
        let name = self.shared.keys().entry(key);
        let metrics = self.shared.metrics();
        let reply: std::result::Result<Value, SharedError> = self
            .shared
            .call_local("get", |mut c| async move {
                redis::cmd("GET").arg(name).query_async(&mut c).await
            })
            .await;
        match reply {
            Ok(Value::BulkString(value)) => {
                let decoded = self.decode(value);
                if decoded.is_some() {
                    metrics.l2.with_label_values(&["hit"]).inc();
                }
                decoded
            }
            Ok(_) => {
                metrics.l2.with_label_values(&["miss"]).inc();
                None
            }
            Err(_) => {
                metrics.l2.with_label_values(&["error"]).inc();
                None
            }
        }
    }

    /// Stores a finished value for `ttl`.
    async fn put(&self, key: &[u8; 16], value: Vec<u8>, ttl: Duration) -> bool {
        let name = self.shared.keys().entry(key);
        let ms = ttl.as_millis().max(1) as u64;
        let stored = self
            .shared
            .call_local("set", |mut c| async move {
                redis::cmd("SET")
                    .arg(name)
                    .arg(value)
                    .arg("PX")
                    .arg(ms)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
            .is_ok();
        let result = if stored { "stored" } else { "error" };
        self.shared
            .metrics()
            .writes
            .with_label_values(&[result])
            .inc();
        stored
    }

    async fn delete(&self, key: &[u8; 16]) -> bool {
        let name = self.shared.keys().entry(key);
        self.shared
            .call_local("del", |mut c| async move {
                redis::cmd("DEL").arg(name).query_async::<i64>(&mut c).await
            })
            .await
            .is_ok_and(|n| n > 0)
    }

    /// A miss handler writing to this store (used alone or under the tiered store).
    pub fn miss_handler(&'static self, key: &CacheKey, meta: &CacheMeta) -> RedisMiss {
        let too_large =
            super::content_length(meta.response_header()).is_some_and(|n| n > self.max_object_size);
        let writer = if too_large {
            self.shared
                .metrics()
                .writes
                .with_label_values(&["too_large"])
                .inc();
            None
        } else if self.shared.breaker().state() == crate::shared::BreakerState::Open {
            // Do not even buffer what could not be sent.
            None
        } else {
            let hint = super::content_length(meta.response_header());
            match EnvelopeWriter::new(meta, self.compress_above, hint) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::debug!("entry not stored in redis: {e}");
                    None
                }
            }
        };
        RedisMiss {
            store: self,
            key: key.combined_bin(),
            dead: dead_of(meta),
            writer,
        }
    }
}

/// How long a fill's response waits for its Redis write before leaving it
/// to finish on its own.
const FILL_WRITE_GRACE: Duration = Duration::from_millis(5);

/// Builds the value while the body streams in, and stores it on `finish`.
#[derive(Debug)]
pub struct RedisMiss {
    store: &'static RedisStore,
    key: [u8; 16],
    /// When the entry dies, and Redis may drop it.
    dead: Option<SystemTime>,
    writer: Option<EnvelopeWriter>,
}

#[async_trait]
impl HandleMiss for RedisMiss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        if writer.body_len() as usize + data.len() > self.store.max_object_size {
            self.writer = None;
            self.store
                .shared
                .metrics()
                .writes
                .with_label_values(&["too_large"])
                .inc();
        } else if writer.write(&data).is_err() {
            self.writer = None;
        }
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let Some(writer) = self.writer else {
            return Ok(MissFinishType::Created(0));
        };
        let ttl = self
            .dead
            .and_then(|d| d.duration_since(SystemTime::now()).ok())
            .filter(|d| !d.is_zero());
        let Some(ttl) = ttl else {
            self.store
                .shared
                .metrics()
                .writes
                .with_label_values(&["expired"])
                .inc();
            return Ok(MissFinishType::Created(0));
        };
        let Ok(value) = writer.finish() else {
            return Ok(MissFinishType::Created(0));
        };
        let len = value.len();
        // Pingora holds the response's last bytes until this returns. A
        // healthy Redis takes the write well within `FILL_WRITE_GRACE`, so
        // the entry is there before the client has its answer (and before
        // the coalescing lock says it is stored); a slow one does not hold
        // the client longer than that: the write goes on without it, and a
        // failed one is counted and forgotten.
        let (store, key) = (self.store, self.key);
        let write = tokio::spawn(async move { store.put(&key, value, ttl).await });
        let stored = matches!(
            tokio::time::timeout(FILL_WRITE_GRACE, write).await,
            Ok(Ok(true))
        );
        Ok(MissFinishType::Created(if stored { len } else { 0 }))
    }
}

#[async_trait]
impl Storage for RedisStore {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        if super::RedisAsked::take(key) {
            return Ok(None);
        }
        Ok(self.fetch(&key.combined_bin()).await.map(|d| {
            (d.meta, {
                let weight = d.body.len();
                Box::new(BodyHit::new(d.body, weight)) as HitHandler
            })
        }))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        Ok(Box::new(self.miss_handler(key, meta)))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let key = target.key().combined_bin();
        Ok(if self.delete(&key).await {
            PurgeOutcome::Purged(None)
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
        let bin = key.combined_bin();
        let Some(old) = self.fetch(&bin).await else {
            return Ok(false);
        };
        // The revalidated meta keeps the stored entry's tags and birth.
        let info = EntryInfo::of(meta).or_else(|| EntryInfo::of(&old.meta));
        let Some(ttl) = ttl_of(meta, SystemTime::now()) else {
            return Ok(self.delete(&bin).await);
        };
        match envelope::encode(meta, info.map(|i| &**i), &old.body, self.compress_above) {
            Ok(value) => Ok(self.put(&bin, value, ttl).await),
            Err(_) => Ok(false),
        }
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}
