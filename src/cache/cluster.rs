//! The cache layer's Redis side: building the tiers, keeping the registry in
//! step with the other instances, and coalescing cold keys across instances.
//!
//! Cross-instance coalescing runs in `proxy_upstream_filter`, which Pingora
//! calls on a miss just before going to the origin, only for the request that
//! won pingora's per-instance lock (the other requests of this instance wait
//! on that lock as usual). It takes the key's Redis lock, a lease its request
//! renews while it runs (`shared::lock`); if another instance holds it, it
//! polls Redis until that holder's result marker lands: on `stored` it serves
//! the holder's entry itself if it is clean, and on anything else (not
//! stored, the entry purged during the fill or older than it) it goes to the
//! origin at once. A lock gone without a marker (its holder is gone) is
//! competed for again. Local waiters then find the entry in Redis when
//! pingora releases them. The holder leaves its marker when its response
//! turns out not storable, and in `logging` for every request that ends
//! (stored, origin failed, client gone); a request dropped before that
//! leaves `not stored` as its lease drops. Any Redis trouble, or the wait
//! running out, sends the request to the origin: never an error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora_cache::key::{CacheHashKey, HashBinary};
use pingora_cache::storage::Storage;
use pingora_cache::CachePhase;
use pingora_proxy::Session;

use super::{cache_key, retention, runtime_settings, Active, RequestCtx, TagCache};
use crate::config::{Config, RedisStorage};
use crate::generations::TagRegistry;
use crate::shared::fanout::Fanout;
use crate::shared::lock::{Acquire, Outcome, Poll};
use crate::shared::{Health, Shared};
use crate::storage::envelope::Decoded;
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
                tracing::error!("redis tier disabled: {e}");
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
        let shared_for_settings = shared.clone();
        let fanout = Fanout::new(
            shared,
            cache.registry.clone(),
            config.purge.consistency,
            config.purge.sync_timeout,
        );
        fanout.start();
        // Settings live in Redis: read them before the first request, then
        // follow them.
        if let Some(fields) = shared_for_settings.settings_all_blocking() {
            cache
                .settings
                .store(Arc::new(runtime_settings::from_fields(&fields)));
        }
        runtime_settings::follow(Arc::downgrade(&cache.settings), shared_for_settings.clone());
        cache.settings_store = runtime_settings::SettingsStore::Redis(shared_for_settings);
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
        if self.redis.is_none() {
            return Ok(true);
        }
        let active = self.take_active(ctx);
        let go_on = self.coalesce(&active, session, ctx).await;
        ctx.active = Some(active);
        go_on
    }

    async fn coalesce(
        &self,
        active: &Active,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora_error::Result<bool> {
        let Some(parts) = &self.redis else {
            return Ok(true);
        };
        let coalescing = &active.config.coalescing;
        // Only a request that can be handed a stored response as it is
        // waits for another instance's fill; a ranged or conditional one,
        // or one on a varying route, needs what only the full path does
        // (206, 304, variance), so it goes on to the origin.
        let as_stored = ctx
            .route
            .is_some_and(|route| self.answers_as_stored(active, session.req_header(), route, ctx));
        if !ctx.enabled
            || !as_stored
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
        let lease = coalescing.lock_lease;
        // An entry just found purged is still in Redis: do not take it again.
        let mut check_entry = ctx.purged.is_none();
        let deadline = Instant::now() + coalescing.wait_timeout;
        let mut pause = POLL_FIRST;
        loop {
            match shared.lock(&key, lease, check_entry).await {
                Ok(Acquire::Leader(token)) => {
                    ctx.shared_lock = Some(shared.lease(key, token, lease));
                    metrics.coalesced.with_label_values(&["leader"]).inc();
                    return Ok(true);
                }
                Ok(Acquire::Entry(value)) => {
                    if self
                        .serve_shared(active, session, ctx, parts.store, value, None)
                        .await?
                    {
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
            // Another instance is fetching: wait for its result.
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
                    // The holder stored its answer: serve it if the entry is
                    // that fill's and still clean. Otherwise (purged during
                    // the fill, or the holder's write did not land and an
                    // older entry is there) the wait is over all the same.
                    Ok(Poll::Stored { born, entry }) => {
                        if let Some(value) = entry {
                            if self
                                .serve_shared(active, session, ctx, parts.store, value, Some(born))
                                .await?
                            {
                                return Ok(false);
                            }
                        }
                        metrics.coalesced.with_label_values(&["origin"]).inc();
                        return Ok(true);
                    }
                    Ok(Poll::GaveUp) => {
                        metrics.coalesced.with_label_values(&["origin"]).inc();
                        return Ok(true);
                    }
                    // No lock and no marker: the holder is gone (its lease
                    // ran out). Serve the entry if one is there, else compete again.
                    Ok(Poll::Free(entry)) => {
                        if let Some(value) = entry {
                            if self
                                .serve_shared(active, session, ctx, parts.store, value, None)
                                .await?
                            {
                                return Ok(false);
                            }
                        }
                        check_entry = false;
                        break;
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
    /// fresh, passing the same checks as any hit, and with `born`, from a
    /// fetch that started no earlier than that epoch (the fill a waiter
    /// waited for, not an older entry). Returns whether it was served.
    async fn serve_shared(
        &self,
        active: &Active,
        session: &mut Session,
        ctx: &mut RequestCtx,
        store: &RedisStore,
        value: Vec<u8>,
        born: Option<u64>,
    ) -> pingora_error::Result<bool> {
        let Some(found) = store.decode(value) else {
            return Ok(false);
        };
        if let Some(born) = born {
            if EntryInfo::of(&found.meta).is_none_or(|info| info.born < born) {
                return Ok(false);
            }
        }
        if !self.may_serve(active, &found, session.req_header(), ctx) {
            return Ok(false);
        }
        // As every Redis hit: copied into memory, so the next one is local.
        // The request's key is pingora-cache's by now (its lookup missed).
        if let Some(memory) = self.fast.filter(|_| session.cache.enabled()) {
            let key = session.cache.cache_key().clone();
            crate::storage::promote(memory, &key, &found.meta, &found.body).await;
        }
        ctx.coalesced = true;
        self.write_hit(session, ctx, found.servable(), None).await?;
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

    /// The fast path's Redis step ([`TagCache::serve_fresh_hit`]): one `GET`;
    /// a fresh entry that passes the hit checks is copied into memory (with
    /// a memory tier) and answered here. Returns whether it was served.
    pub(super) async fn serve_fresh_l2_hit(
        &self,
        active: &Active,
        session: &mut Session,
        ctx: &mut RequestCtx,
        store: &'static RedisStore,
        hash: HashBinary,
        started: Instant,
    ) -> pingora_error::Result<bool> {
        let Some(found) = store.fetch(&hash).await else {
            ctx.redis_asked = true;
            return Ok(false);
        };
        if !self.may_serve(active, &found, session.req_header(), ctx) {
            return Ok(false);
        }
        self.promote_under_request_key(ctx, hash, &found).await;
        self.write_hit(session, ctx, found.servable(), Some(started))
            .await?;
        Ok(true)
    }

    /// Copies an entry read from Redis under `hash` into memory (with a
    /// memory tier), under the key this request's classification built, as
    /// the tiered store copies its Redis hits.
    pub(super) async fn promote_under_request_key(
        &self,
        ctx: &RequestCtx,
        hash: HashBinary,
        found: &Decoded,
    ) {
        if let (Some(memory), Some(primary)) = (self.fast, &ctx.primary) {
            let key = cache_key(primary.clone(), ctx.workspace.as_deref(), hash);
            crate::storage::promote(memory, &key, &found.meta, &found.body).await;
        }
    }

    /// Whether an entry read from Redis may be written to this request as
    /// it is, by the hit policy.
    fn may_serve(
        &self,
        active: &Active,
        found: &Decoded,
        req: &pingora_http::RequestHeader,
        ctx: &RequestCtx,
    ) -> bool {
        self.hit_policy(active, &found.servable(), Some(req), ctx)
            .as_is()
    }

    /// Releases the cross-instance lock a request holds, leaving its result
    /// for the waiters: `stored` (with the fill's `born`) when the response
    /// was admitted, `not stored` otherwise. Call as soon as the outcome is
    /// known (a response found not storable) and when the request ends
    /// (`logging`); only the first call counts.
    pub(crate) fn release_shared_lock(&self, ctx: &RequestCtx) {
        if let Some(lease) = &ctx.shared_lock {
            lease.release(if ctx.stored {
                Outcome::Stored { born: ctx.born }
            } else {
                Outcome::NotStored
            });
        }
    }
}
