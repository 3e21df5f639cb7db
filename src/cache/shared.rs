//! The cache layer's Redis side: building the tiers, keeping the registry in
//! step with the other instances, and coalescing cold keys across instances.
//!
//! Cross-instance coalescing runs in `proxy_upstream_filter`, which Pingora
//! calls on a miss just before going to the origin, only for the request that
//! won pingora's per-instance lock (the other requests of this instance wait
//! on that lock as usual). It takes the key's Redis lock; if another instance
//! holds it, it polls Redis until that instance's entry lands, and serves it
//! itself. Local waiters then find the entry in Redis when pingora releases
//! them. Any Redis trouble, a lost lock, or the wait running out sends the
//! request to the origin: never an error.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use pingora_cache::key::CacheHashKey;
use pingora_cache::storage::Storage;
use pingora_cache::CachePhase;
use pingora_error::{Error, ErrorType, OrErr};
use pingora_proxy::Session;

use super::{retention, RequestCtx, TagCache};
use crate::config::{Config, RedisStorage};
use crate::metrics::CacheStatus;
use crate::purge::registry::{TagRegistry, Verdict};
use crate::shared::fanout::Fanout;
use crate::shared::lock::{Acquire, Poll};
use crate::shared::{Health, Shared};
use crate::storage::{EntryInfo, MemoryStore, RedisStore, TieredStore};

/// First and longest pause between two polls of a cross-instance waiter.
const POLL_FIRST: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(25);

/// The Redis parts of a [`TagCache`].
#[derive(Debug)]
pub(crate) struct RedisParts {
    pub(crate) store: &'static RedisStore,
    pub(crate) fanout: Arc<Fanout>,
}

/// A cross-instance lock held by a request: the key and our token.
#[derive(Debug, Clone)]
pub(crate) struct HeldLock {
    key: [u8; 16],
    token: String,
}

impl TagCache {
    /// Builds the cache layer with the Redis tier, behind the memory tier when
    /// there is one, and starts following the other instances' purges.
    pub(crate) fn with_redis(
        config: Arc<Config>,
        memory: Option<&'static MemoryStore>,
        settings: &RedisStorage,
    ) -> Self {
        let shared = match Shared::new(settings) {
            Ok(shared) => shared,
            Err(e) => {
                // Config validation checks the URLs, so this is a runtime failure.
                log::error!("redis tier disabled: {e}");
                let memory = memory.unwrap_or_else(|| {
                    Box::leak(Box::new(MemoryStore::new(
                        256 << 20,
                        settings.max_object_size,
                    )))
                });
                return Self::with_storage(config, memory, Some(memory));
            }
        };
        let redis: &'static RedisStore = Box::leak(Box::new(RedisStore::new(
            shared.clone(),
            settings.max_object_size,
            settings.compress_above,
        )));
        let storage: &'static (dyn Storage + Sync) = match memory {
            Some(memory) => Box::leak(Box::new(TieredStore::new(memory, redis))),
            None => redis,
        };
        let mut cache = Self::with_storage(config.clone(), storage, memory);
        let keep = retention(&config);
        // The registry mirrors the shared epoch, which starts below every generation.
        cache.registry = Arc::new(TagRegistry::shared(keep));
        for collector in shared.metrics().collectors() {
            cache.metrics.register(collector);
        }
        let fanout = Fanout::new(
            shared,
            cache.registry.clone(),
            keep,
            config.purge.consistency,
            config.purge.sync_timeout,
        );
        fanout.start();
        cache.redis = Some(RedisParts {
            store: redis,
            fanout,
        });
        cache
    }

    /// The purge fan-out, with the Redis tier.
    pub fn fanout(&self) -> Option<&Arc<Fanout>> {
        self.redis.as_ref().map(|r| &r.fanout)
    }

    /// The Redis tier, if configured.
    pub fn redis_store(&self) -> Option<&'static RedisStore> {
        self.redis.as_ref().map(|r| r.store)
    }

    /// Redis health for `/health`, with the Redis tier.
    pub fn redis_health(&self) -> Option<Health> {
        self.redis.as_ref().map(|r| r.fanout.shared().health())
    }

    /// Stops following purges and leaves the set of live instances (on
    /// graceful shutdown, so sync purges stop waiting for this one).
    pub async fn leave(&self) {
        if let Some(r) = &self.redis {
            r.fanout.stop().await;
        }
    }

    /// Stops following purges at once, without telling Redis.
    pub fn halt(&self) {
        if let Some(r) = &self.redis {
            r.fanout.halt();
        }
    }

    /// While this instance may have missed purges (its subscription is down
    /// or not yet synchronized), it serves only entries fetched within the
    /// resync window (see `shared::fanout`): whether an entry stored at
    /// `updated` is outside it.
    pub(crate) fn unsynced(&self, updated: std::time::SystemTime) -> bool {
        self.fanout().is_some_and(|f| !f.trusts(updated))
    }

    /// Coalesces a cold key across instances. Call from
    /// `ProxyHttp::proxy_upstream_filter`; returns `Ok(false)` when it served
    /// the response itself (another instance's entry), `Ok(true)` to go on to
    /// the origin.
    ///
    /// # Errors
    /// Only when writing the response to the client fails.
    pub async fn proxy_upstream_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora_error::Result<bool> {
        let Some(parts) = &self.redis else {
            return Ok(true);
        };
        let coalescing = &self.config.coalescing;
        if !ctx.enabled
            || ctx.client_no_cache
            || !coalescing.enabled
            || !coalescing.across_instances
            || !session.cache.enabled()
            || session.cache.phase() != CachePhase::Miss
            || !session.cache.is_cache_lock_writer()
        {
            return Ok(true);
        }
        let shared = parts.fanout.shared();
        let metrics = shared.metrics();
        let key = session.cache.cache_key().combined_bin();
        let upstream = &self.config.upstream;
        // As long as pingora's own lock: the longest a fill can take to start and read.
        let ttl = upstream.connect_timeout + upstream.read_timeout;
        // An entry just found purged is still in Redis: do not take it again.
        let mut check_entry = ctx.purged.is_none();
        let deadline = Instant::now() + coalescing.wait_timeout;
        let mut pause = POLL_FIRST;
        loop {
            match shared.lock(&key, ttl, check_entry).await {
                Ok(Acquire::Leader(token)) => {
                    ctx.shared_lock = Some(HeldLock { key, token });
                    metrics.coalesced.with_label_values(&["leader"]).inc();
                    return Ok(true);
                }
                Ok(Acquire::Entry(value)) => {
                    if self.serve_shared(session, ctx, parts.store, value).await? {
                        return Ok(false);
                    }
                    check_entry = false;
                    continue;
                }
                Ok(Acquire::GaveUp) => {
                    metrics.coalesced.with_label_values(&["origin"]).inc();
                    return Ok(true);
                }
                Err(_) => {
                    metrics.coalesced.with_label_values(&["fallback"]).inc();
                    return Ok(true);
                }
                Ok(Acquire::Held) => {}
            }
            // Another instance is fetching: wait for its entry.
            loop {
                let now = Instant::now();
                if now >= deadline {
                    metrics.coalesced.with_label_values(&["origin"]).inc();
                    return Ok(true);
                }
                tokio::time::sleep(pause.min(deadline - now)).await;
                pause = (pause * 2).min(POLL_MAX);
                match shared.poll(&key).await {
                    Ok(Poll::Held) => {}
                    Ok(Poll::Entry(value)) => {
                        if self.serve_shared(session, ctx, parts.store, value).await? {
                            return Ok(false);
                        }
                        // The old, purged entry is still there: keep waiting.
                    }
                    // The holder finished without storing, or its lock expired: compete again.
                    Ok(Poll::Free) => {
                        check_entry = false;
                        break;
                    }
                    Ok(Poll::GaveUp) => {
                        metrics.coalesced.with_label_values(&["origin"]).inc();
                        return Ok(true);
                    }
                    Err(_) => {
                        metrics.coalesced.with_label_values(&["fallback"]).inc();
                        return Ok(true);
                    }
                }
            }
        }
    }

    /// Serves an entry another instance stored, if it may be served: readable,
    /// fresh, not purged here. Returns whether it was served.
    async fn serve_shared(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        store: &RedisStore,
        value: Vec<u8>,
    ) -> pingora_error::Result<bool> {
        let Some(found) = store.decode(value) else {
            return Ok(false);
        };
        let now = SystemTime::now();
        if !found.meta.is_fresh(now) {
            return Ok(false);
        }
        if let Some(info) = EntryInfo::of(&found.meta) {
            if self.registry.check(info) != Verdict::Valid {
                return Ok(false);
            }
        }
        if self
            .fanout()
            .is_some_and(|f| !f.trusts(found.meta.updated()))
        {
            return Ok(false);
        }
        let mut header = found.meta.response_header_copy();
        let age = now
            .duration_since(found.meta.epoch())
            .map_or(0, |d| d.as_secs());
        let ttl = found
            .meta
            .fresh_until()
            .duration_since(now)
            .map_or(0, |d| d.as_secs());
        header
            .insert_header("age", age.to_string())
            .or_err(ErrorType::InternalError, "age header")?;
        header
            .insert_header("x-cache-status", CacheStatus::Hit.as_str())
            .or_err(ErrorType::InternalError, "status header")?;
        header
            .insert_header("x-cache-layer", "REDIS")
            .or_err(ErrorType::InternalError, "layer header")?;
        header
            .insert_header(
                "cache-status",
                format!("tagcache; hit; ttl={ttl}; detail=coalesced"),
            )
            .or_err(ErrorType::InternalError, "cache-status header")?;
        if let Some(key) = &ctx.key_debug {
            let _ = header.insert_header("x-cache-key", key.as_str());
        }
        let head_only = session.req_header().method == http::Method::HEAD;
        let body = if head_only { Bytes::new() } else { found.body };
        ctx.status = Some(CacheStatus::Hit);
        ctx.coalesced = true;
        session
            .write_response_header(Box::new(header), head_only)
            .await
            .map_err(|e| Error::because(ErrorType::WriteError, "coalesced response header", e))?;
        if !head_only {
            session
                .write_response_body(Some(body), true)
                .await
                .map_err(|e| Error::because(ErrorType::WriteError, "coalesced response body", e))?;
        }
        if let Some(r) = &self.redis {
            r.fanout
                .shared()
                .metrics()
                .coalesced
                .with_label_values(&["served"])
                .inc();
        }
        Ok(true)
    }

    /// Releases the cross-instance lock of a finished request: deleted when
    /// the response was stored (the waiters find the entry), replaced by the
    /// give-up marker when it was not (they fetch on their own).
    pub(crate) fn release_shared_lock(&self, ctx: &RequestCtx) {
        let (Some(held), Some(parts)) = (ctx.shared_lock.clone(), &self.redis) else {
            return;
        };
        let give_up = !ctx.stored;
        let shared = parts.fanout.shared().clone();
        shared.clone().spawn(async move {
            let _ = shared.unlock(&held.key, &held.token, give_up).await;
        });
    }
}
