//! The embeddable cache layer: what a Pingora `ProxyHttp` calls from its hooks.
//!
//! [`TagCache`] holds the route table, the storage, the coalescing lock, the
//! tag registry and the metrics. Each of its methods is named after, and meant
//! to be called from, the Pingora hook of the same name; [`crate::proxy`]
//! wires them into tagcache's own proxy, and `examples/embed.rs` shows a
//! custom proxy doing the same.
//!
//! ```text
//!  request_filter        limits (414, 431); verify the JWT and the workspace it names (401, 403);
//!                        match route, read identity, normalize query, decide bypass
//!  serve_fresh_hit       answer a fresh memory hit directly (the fast path; else fall through)
//!  request_cache_filter  enable the cache for a cacheable request
//!  cache_key_callback    hand the framed key to pingora-cache
//!  cache_hit_filter      client no-cache, tag generations (hard purge = miss, soft = stale);
//!                        origin mode: how long the entry may be served stale
//!  upstream_request_filter / upstream_response_filter
//!                        strip unkeyed headers, time the origin, read and strip origin tag headers;
//!                        write_invalidation: what a write's answer invalidates (applied by purge::writes)
//!                        origin mode: keep a 304's fields
//!  response_cache_filter decide storability, compute tags, build CacheMeta + EntryInfo
//!                        (freshness from the route's ttl, or in origin mode from the response)
//!  response_filter       X-Cache-Status, X-Cache-Layer, Cache-Status, debug key
//!  logging               count the request
//! ```

mod active;
mod classify;
mod cluster;
mod ctx;
mod directives;
mod entry_tags;
mod explain;
mod fast_path;
mod freshness_policy;
mod front;
mod headers;
mod origin_mode;
mod policy;
mod refuse;
mod reload;
mod request_id;
mod runtime_settings;
mod storability;
mod variance;
mod writes;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header;
use pingora_cache::key::HashBinary;
use pingora_cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora_cache::storage::Storage;
use pingora_cache::{
    CacheKey, CacheMeta, CacheOptionOverrides, ForcedFreshness, NoCacheReason, RespCacheable,
};
use pingora_error::{Error, ErrorSource, ErrorType};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;

pub use crate::shared::fanout::{FanoutView, LeaseView};
pub use ctx::RequestCtx;
pub use explain::{EntryView, Explanation, TagView};
pub use front::{FrontAsked, FrontHit, FrontResponse, FrontStep, RedisLookup};
pub use reload::{ReloadError, ReloadReport};
pub use runtime_settings::{Change, SettingsWriteError};
pub use storability::NotStored;
pub use writes::{WriteInvalidation, WriteOutcome};

use storability::{shareable, storable};

use arc_swap::ArcSwap;

use crate::config::{Config, IdentitySource};
use crate::generations::{TagRegistry, Verdict};
use crate::identity::{self, Verified};
use crate::key::{BypassReason, Identity};
use crate::metrics::{CacheStatus, Metrics, OriginError};
use crate::storage::{EntryInfo, Layer, MemoryStore, Servable};
use crate::tags;
use active::Active;
use classify::{literal_target, workspace_of, Admission};
use entry_tags::entry_tags;

/// How a request was answered, for its count and log line.
struct Exchange {
    /// The response status, once the response header was written.
    status: Option<u16>,
    /// Body bytes sent.
    body_bytes: usize,
    /// How long pingora-cache's lookup took, if it looked up.
    lookup: Option<Duration>,
}

/// Why no key could be built for a URL ([`TagCache::key_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unkeyable {
    /// Not a valid request target, or an identity that cannot be a header.
    #[error("invalid URL")]
    Invalid,
    /// No route matches it.
    #[error("no-route")]
    NoRoute,
    /// A request for it would bypass the cache.
    #[error("{}", .0.as_str())]
    Bypass(BypassReason),
}

impl Unkeyable {
    /// The reason as shown to the admin API's callers.
    pub fn as_str(self) -> &'static str {
        match self {
            Unkeyable::Invalid => "invalid-url",
            Unkeyable::NoRoute => "no-route",
            Unkeyable::Bypass(reason) => reason.as_str(),
        }
    }
}

/// The cache layer. Cheap to share: wrap it in an `Arc`.
pub struct TagCache {
    /// The config requests start under, swapped whole on reload.
    active: ArcSwap<Active>,
    storage: &'static (dyn Storage + Sync),
    memory: Option<&'static MemoryStore>,
    /// The memory store when it is the first tier lookups read, so that
    /// [`Self::serve_fresh_hit`] may answer from it.
    fast: Option<&'static MemoryStore>,
    lock: Option<&'static CacheKeyLockImpl>,
    registry: Arc<TagRegistry>,
    metrics: Arc<Metrics>,
    /// The memory store's limit counters as last carried into the metrics.
    limits_seen: parking_lot::Mutex<[u64; 3]>,
    /// The Redis tier and purge fan-out, with `storage.redis`.
    redis: Option<cluster::RedisParts>,
    /// Run-time settings, read by every request without a lock.
    settings: Arc<ArcSwap<crate::settings::Settings>>,
    /// Where settings changes are kept.
    settings_store: runtime_settings::SettingsStore,
    /// Held while a settings change is written.
    settings_writer: tokio::sync::Mutex<()>,
    /// Requests in flight (see [`Self::new_ctx`]).
    in_flight: &'static AtomicUsize,
    /// The file the config came from, re-read on reload; held while one runs.
    config_file: parking_lot::Mutex<Option<std::path::PathBuf>>,
    /// Set once the background work has stopped on shutdown (the Redis tier
    /// has left the live instance set).
    stopped: AtomicBool,
    /// Per-workspace figures (`/stats/workspaces`), counted in `logging`.
    workspaces: Arc<crate::workspaces::WorkspaceStats>,
}

impl std::fmt::Debug for TagCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagCache")
            .field("routes", &self.active.load().config.routes.len())
            .finish_non_exhaustive()
    }
}

impl TagCache {
    /// Builds the cache layer for a validated config: the memory store, the
    /// coalescing lock, the tag registry and the metrics.
    ///
    /// The store and lock live for the rest of the process (pingora-cache
    /// needs `'static` references), so build one `TagCache` per process.
    pub fn new(config: Arc<Config>) -> Self {
        let mem = config
            .storage
            .memory
            .clone()
            .unwrap_or(crate::config::MemoryStorage {
                max_size: 256 << 20,
                max_object_size: 8 << 20,
                per_workspace_max: None,
            });
        let memory: &'static MemoryStore = Box::leak(Box::new(
            MemoryStore::new(mem.max_size, mem.max_object_size)
                .with_workspace_quota(mem.per_workspace_max),
        ));
        if let Some(redis) = config.storage.redis.clone() {
            let memory = config.storage.memory.is_some().then_some(memory);
            return Self {
                fast: memory,
                ..Self::with_redis(config, memory, &redis)
            };
        }
        Self {
            fast: Some(memory),
            ..Self::with_storage(config, memory, Some(memory))
        }
    }

    /// Builds the cache layer on a storage of the caller's choosing. `memory`,
    /// when given, is reported in `/stats` and metrics.
    pub fn with_storage(
        config: Arc<Config>,
        storage: &'static (dyn Storage + Sync),
        memory: Option<&'static MemoryStore>,
    ) -> Self {
        let lock: Option<&'static CacheKeyLockImpl> = if config.coalescing.enabled {
            // The age timeout bounds how long a stuck writer blocks its key.
            let age = config.upstream.read_timeout + config.upstream.connect_timeout;
            Some(Box::leak(CacheLock::new_boxed(age)))
        } else {
            None
        };
        let registry = Arc::new(TagRegistry::new(retention(&config)));
        let names: Vec<String> = config.routes.iter().map(|r| r.name.clone()).collect();
        let metrics = Metrics::new(&names);
        let workspaces = Arc::new(crate::workspaces::WorkspaceStats::new());
        metrics.register(Box::new(crate::workspaces::WorkspaceCollector::new(
            workspaces.clone(),
        )));
        TagCache {
            settings: Arc::new(ArcSwap::from_pointee(
                config
                    .state_path
                    .as_ref()
                    .map(runtime_settings::load_file)
                    .unwrap_or_default(),
            )),
            settings_store: match &config.state_path {
                Some(path) => runtime_settings::SettingsStore::File(path.clone()),
                None => runtime_settings::SettingsStore::Memory,
            },
            settings_writer: tokio::sync::Mutex::new(()),
            workspaces,
            in_flight: Box::leak(Box::new(AtomicUsize::new(0))),
            config_file: parking_lot::Mutex::new(None),
            stopped: AtomicBool::new(false),
            active: ArcSwap::from_pointee(Active::new(config, &metrics)),
            limits_seen: parking_lot::Mutex::new([0; 3]),
            redis: None,
            storage,
            memory,
            fast: None,
            lock,
            registry,
            metrics,
        }
    }

    /// The config `ctx`'s request runs under, borrowed from it, or the
    /// current one before the request took one.
    fn active_of<'a>(&self, ctx: &'a RequestCtx) -> active::ActiveRef<'a> {
        match ctx.active.as_deref() {
            Some(a) => active::ActiveRef::Borrowed(a),
            None => active::ActiveRef::Loaded(self.active.load()),
        }
    }

    /// The config a request runs under: the one it started with (taken out
    /// of `ctx`, to be put back by the caller), or the current one.
    fn take_active(&self, ctx: &mut RequestCtx) -> Arc<Active> {
        ctx.active.take().unwrap_or_else(|| self.active.load_full())
    }

    /// A context for a new request, counted as in flight until dropped.
    /// Call from `ProxyHttp::new_ctx`.
    pub fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            _in_flight: Some(ctx::InFlight::enter(self.in_flight)),
            started: Some(std::time::Instant::now()),
            ..RequestCtx::default()
        }
    }

    /// Counts a connection that waits for its first request as in flight
    /// while the guard lives, so that a graceful stop lets that request
    /// arrive and be answered (see `proxy::front`).
    pub(crate) fn expecting(&self) -> ctx::InFlight {
        ctx::InFlight::enter(self.in_flight)
    }

    /// Requests whose context is alive.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Records that the background work stopped on shutdown.
    pub fn mark_stopped(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    /// Whether [`Self::mark_stopped`] was called.
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// The configuration requests start under now.
    pub fn config(&self) -> Arc<Config> {
        self.active.load().config.clone()
    }

    /// The configuration `ctx`'s request runs under (the one it started
    /// with), or the current one before it started.
    pub fn request_config(&self, ctx: &RequestCtx) -> Arc<Config> {
        match &ctx.active {
            Some(active) => active.config.clone(),
            None => self.config(),
        }
    }

    /// The counters of the current config's routes, the unmatched bucket last.
    pub(crate) fn route_counters(&self) -> Vec<crate::metrics::RouteCounters> {
        self.active.load().all_counters().to_vec()
    }

    /// The metrics.
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The per-workspace figures.
    pub(crate) fn workspaces(&self) -> &crate::workspaces::WorkspaceStats {
        &self.workspaces
    }

    /// The tag generation registry.
    pub(crate) fn registry(&self) -> &Arc<TagRegistry> {
        &self.registry
    }

    /// The memory tier, if any.
    pub fn memory(&self) -> Option<&'static MemoryStore> {
        self.memory
    }

    /// The storage pingora-cache uses.
    pub fn storage(&self) -> &'static (dyn Storage + Sync) {
        self.storage
    }

    /// Checks the request before anything else and classifies it. Refuses
    /// requests over the limits (414, 431) and, with `tenant.jwt`, verifies
    /// the token and the workspace it names (401, 403); then matches the
    /// route and builds the key (or the bypass reason) once, for
    /// [`Self::serve_fresh_hit`] and [`Self::request_cache_filter`].
    ///
    /// Returns `true` when it has answered the request itself (414, 431, 401
    /// or 403), and the proxy must stop. Call from `ProxyHttp::request_filter`.
    ///
    /// # Errors
    /// When the refusal cannot be written to the client.
    pub async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora_error::Result<bool> {
        let active = self.take_active(ctx);
        let answered = self.check_request(&active, session, ctx).await;
        ctx.active = Some(active);
        answered
    }

    /// Enables the cache for a request [`Self::request_filter`] found
    /// cacheable (classifying it here when `request_filter` was not called).
    /// Call from `ProxyHttp::request_cache_filter`.
    pub fn request_cache_filter(&self, session: &mut Session, ctx: &mut RequestCtx) {
        let active = self.take_active(ctx);
        if !ctx.classified {
            let req = session.req_header();
            let found = if literal_target(req) {
                active.router.find(req.uri.path())
            } else {
                None
            };
            self.classify_request(&active, req, found, ctx);
            self.count_bypass_limit(ctx);
        }
        let wait_timeout = active.config.coalescing.wait_timeout;
        ctx.active = Some(active);
        if ctx.primary.is_none() {
            return;
        }
        ctx.born = self.registry.epoch();
        ctx.enabled = true;
        let mut overrides = CacheOptionOverrides::default();
        overrides.wait_timeout = Some(wait_timeout);
        session
            .cache
            .enable(self.storage, None, None, self.lock, Some(overrides));
    }

    /// The key a GET of `path_and_query` by `who` would be stored under, as
    /// `request_cache_filter` would build it: what URL purges address. The
    /// caller is trusted (the admin API): with `tenant.jwt`, `who` stands for
    /// the verified identity.
    ///
    /// # Errors
    /// Why such a request could not be cached.
    pub fn key_for(&self, path_and_query: &str, who: Identity<'_>) -> Result<CacheKey, Unkeyable> {
        let mut req = RequestHeader::build("GET", path_and_query.as_bytes(), None)
            .map_err(|_| Unkeyable::Invalid)?;
        let active = self.active.load();
        let config = &active.config;
        let tenant = &config.tenant;
        let mut ctx = RequestCtx::new();
        if tenant.jwt.is_some() {
            let id = |v: Option<&str>| v.filter(|v| identity::valid_id(v)).map(Arc::from);
            ctx.verified = Some(Verified {
                workspace: id(who.workspace),
                user: id(who.user),
            });
        } else {
            for (source, value) in [(&tenant.workspace, who.workspace), (&tenant.user, who.user)] {
                if let (Some(IdentitySource::Header(h)), Some(value)) = (source, value) {
                    req.insert_header(h.clone(), value)
                        .map_err(|_| Unkeyable::Invalid)?;
                }
            }
        }
        if !literal_target(&req) {
            return Err(Unkeyable::NoRoute);
        }
        let found = active
            .router
            .find(req.uri.path())
            .ok_or(Unkeyable::NoRoute)?;
        let route = &config.routes[found.index];
        let primary = self
            .classify(config, None, &req, route, &found.params, &mut ctx)
            .map_err(Unkeyable::Bypass)?;
        Ok(CacheKey::new(
            primary,
            ctx.workspace.as_deref().unwrap_or(""),
        ))
    }

    /// The cache key built in [`Self::request_cache_filter`]. Call from
    /// `ProxyHttp::cache_key_callback`.
    ///
    /// # Errors
    /// Fails if the cache was enabled without this layer classifying the request.
    pub fn cache_key_callback(&self, ctx: &mut RequestCtx) -> pingora_error::Result<CacheKey> {
        let primary = ctx.primary.take().ok_or_else(|| {
            Error::explain(
                ErrorType::InternalError,
                "cache enabled without a tagcache key",
            )
        })?;
        // pingora-cache asks for the key's hash several times per request;
        // computing it once here (or reusing the fast path's) saves the rest.
        let hash = ctx
            .hash
            .take()
            .unwrap_or_else(|| pingora_cache::key::hash_key(&primary));
        let mut key = cache_key(primary, ctx.workspace.as_deref(), hash);
        if ctx.redis_asked {
            key.extensions.insert(crate::storage::RedisAsked::new());
        }
        Ok(key)
    }

    /// Checks a found entry against client directives and tag generations.
    /// Call from `ProxyHttp::cache_hit_filter`.
    pub fn cache_hit_filter(
        &self,
        meta: &CacheMeta,
        is_fresh: bool,
        ctx: &mut RequestCtx,
    ) -> Option<ForcedFreshness> {
        let active = self.take_active(ctx);
        // The body is not judged: pingora-cache reads it from the hit.
        let stored = Servable::of_meta(meta, bytes::Bytes::new(), Layer::of(meta));
        let check = self.hit_policy(&active, &stored, None, ctx);
        if let Some(bounds) = ctx
            .route
            .and_then(|i| active.config.routes.get(i))
            .and_then(origin_mode::bounds)
        {
            let expired_at = match check.tags {
                Verdict::Stale(at) => Some(at),
                _ => None,
            };
            ctx.stale_limits = Some(origin_mode::StaleLimits::of(&bounds, meta, expired_at));
        }
        ctx.active = Some(active);
        match check.tags {
            Verdict::Valid => {}
            Verdict::Purged => {
                self.record_purged(ctx, "purged", "hard");
                return Some(ForcedFreshness::ForceMiss);
            }
            Verdict::Stale(at) => {
                self.record_purged(ctx, "soft-purged", "soft");
                if is_fresh {
                    return Some(ForcedFreshness::ForceExpiredServeStale {
                        expired_at: Some(at),
                    });
                }
            }
        }
        if check.unsynced {
            self.record_purged(ctx, "unsynced", "unsynced");
            return Some(ForcedFreshness::ForceMiss);
        }
        if check.refused {
            return Some(ForcedFreshness::ForceMiss);
        }
        if let (Some(at), true) = (check.capped_at, is_fresh) {
            // The route's TTL was shortened by a reload: the entry is stale
            // from its new end of freshness, its stale windows still open.
            return Some(ForcedFreshness::ForceExpiredServeStale {
                expired_at: Some(at),
            });
        }
        None
    }

    /// Notes why a found entry is not served as it is: `detail` for
    /// `Cache-Status`, `kind` for `tagcache_purged_on_lookup_total`.
    fn record_purged(&self, ctx: &mut RequestCtx, detail: &'static str, kind: &str) {
        ctx.purged = Some(detail);
        self.metrics
            .purged_on_lookup
            .with_label_values(&[kind])
            .inc();
    }

    /// Whether a stale entry may be served: during stale-while-revalidate
    /// (`error` is `None`) and when the origin failed. The entry's own
    /// windows, set from the route, still bound both. Call from
    /// `ProxyHttp::should_serve_stale`.
    pub fn should_serve_stale(&self, ctx: &RequestCtx, error: Option<&Error>) -> bool {
        let active = self.active_of(ctx);
        let Some(route) = ctx.route.and_then(|i| active.config.routes.get(i)) else {
            return false;
        };
        if route.freshness != crate::config::Freshness::Config {
            // The entry's own limits, from its stored header.
            return ctx
                .stale_limits
                .is_some_and(|limits| limits.allow(error, SystemTime::now()));
        }
        match error {
            None => !route.stale_while_revalidate.is_zero(),
            Some(e) => {
                !route.stale_if_error.is_zero()
                    && (e.esource() == &ErrorSource::Upstream
                        || matches!(e.etype(), ErrorType::HTTPStatus(code) if *code >= 500))
            }
        }
    }

    /// Strips the unkeyed headers from requests that use the cache (so the
    /// stored response cannot depend on them), sets the identity headers to
    /// the verified identity in JWT mode, and marks the start of the origin
    /// request. Call from `ProxyHttp::upstream_request_filter`.
    pub fn upstream_request_filter(
        &self,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) {
        let active = self.take_active(ctx);
        let config = &active.config;
        if ctx.enabled && ctx.strip_unkeyed {
            for h in &config.unkeyed_headers {
                upstream_request.remove_header(h);
            }
        }
        if let Some(v) = &ctx.verified {
            // The origin sees the identity the key was built from, as an
            // authenticating gateway would set it. `request_filter` already
            // refused requests whose own headers said otherwise.
            let tenant = &config.tenant;
            for (source, value) in [(&tenant.workspace, &v.workspace), (&tenant.user, &v.user)] {
                if let (Some(IdentitySource::Header(h)), Some(value)) = (source, value) {
                    let _ = upstream_request.insert_header(h.clone(), value.as_ref());
                }
            }
        }
        ctx.active = Some(active);
        if let Some(id) = &ctx.request_id {
            let _ = upstream_request.insert_header(request_id::HEADER, id.clone());
        }
        ctx.upstream_start = Some(std::time::Instant::now());
    }

    /// Reads and strips the origin's tag headers and times the origin. Call
    /// from `ProxyHttp::upstream_response_filter`.
    pub fn upstream_response_filter(&self, resp: &mut ResponseHeader, ctx: &mut RequestCtx) {
        ctx.upstream_responded = true;
        let active = self.take_active(ctx);
        if let Some(start) = ctx.upstream_start.take() {
            let counters = active.counters(ctx.route);
            let took = start.elapsed();
            ctx.origin_time = Some(took);
            counters.origin_latency.observe(took.as_secs_f64());
            counters.count_origin_response(resp.status.as_u16());
        }
        if resp.status == http::StatusCode::NOT_MODIFIED {
            ctx.revalidated = true;
        }
        drop_nominated_fields(resp);
        for th in &active.config.purge.tag_headers {
            if ctx.route.is_some() {
                for value in resp.headers.get_all(&th.name) {
                    if let Ok(v) = value.to_str() {
                        for t in tags::split_header(v, th.separator) {
                            ctx.origin_tags
                                .push(tags::origin_tag(ctx.workspace.as_deref(), t));
                        }
                    }
                }
            }
            resp.remove_header(&th.name);
        }
        if resp.status == http::StatusCode::NOT_MODIFIED
            && ctx
                .route
                .and_then(|i| active.config.routes.get(i))
                .is_some_and(|r| origin_mode::bounds(r).is_some())
        {
            ctx.not_modified = Some(Box::new(resp.clone()));
        }
        ctx.active = Some(active);
    }

    /// Decides whether the origin response is stored, and builds its
    /// `CacheMeta` with tags. Call from `ProxyHttp::response_cache_filter`.
    pub fn response_cache_filter(
        &self,
        req: &RequestHeader,
        resp: &ResponseHeader,
        primary_hash: HashBinary,
        ctx: &mut RequestCtx,
    ) -> RespCacheable {
        let active = self.take_active(ctx);
        let cacheable = self.storable_as(&active, req, resp, primary_hash, ctx);
        ctx.active = Some(active);
        cacheable
    }

    fn storable_as(
        &self,
        active: &Active,
        req: &RequestHeader,
        resp: &ResponseHeader,
        primary_hash: HashBinary,
        ctx: &mut RequestCtx,
    ) -> RespCacheable {
        let Some((index, route)) = ctx
            .route
            .and_then(|i| Some((i, active.config.routes.get(i)?)))
        else {
            return RespCacheable::Uncacheable(NoCacheReason::NeverEnabled);
        };
        let bounds = origin_mode::bounds(route);
        // RFC 9111 §4.3.4: on an origin-mode route, a 304's own fields
        // update the stored response (pingora merged only a few).
        let freshened = match (&bounds, ctx.not_modified.take()) {
            (Some(_), Some(not_modified)) => Some(origin_mode::freshen(resp, &not_modified)),
            _ => None,
        };
        let resp = freshened.as_ref().unwrap_or(resp);
        let now = SystemTime::now();
        let max_object = max_object_size(&active.config);
        let mut timing = None;
        let mut verdict = match &bounds {
            None => storable(route, resp, max_object),
            Some(bounds) => {
                storability::storable_by_origin(route, resp, max_object).and_then(|()| {
                    let t =
                        origin_mode::timing(bounds, resp, ctx.ttl_override, ctx.origin_time, now)?;
                    timing = Some(t);
                    Ok(())
                })
            }
        };
        if verdict.is_ok() && ctx.auth_unscoped && !shareable(&resp.headers) {
            verdict = Err(NotStored::Authorization);
        }
        if let Err(why) = verdict {
            if why == NotStored::TooLarge {
                self.metrics
                    .limits
                    .with_label_values(&["object-too-large"])
                    .inc();
            }
            ctx.not_stored = Some(why);
            // Waiters on other instances need not wait for the body.
            self.release_shared_lock(ctx);
            return RespCacheable::Uncacheable(NoCacheReason::Custom(why.as_str()));
        }
        let tags = entry_tags(active, req, route, index, primary_hash, ctx);
        let mut meta = match timing {
            Some(t) => {
                let mut meta = CacheMeta::new(
                    t.fresh_until,
                    now,
                    t.stale_while_revalidate,
                    t.stale_if_error,
                    owned_header(&origin_mode::stored(resp)),
                );
                meta.set_epoch_override(t.epoch);
                meta
            }
            None => CacheMeta::new(
                now + ctx.ttl_override.unwrap_or(route.ttl),
                now,
                secs(route.stale_while_revalidate),
                secs(route.stale_if_error),
                owned_header(resp),
            ),
        };
        Arc::new(EntryInfo {
            route: u16::try_from(index).unwrap_or(u16::MAX),
            workspace: ctx.workspace.clone(),
            tags: tags.into_boxed_slice(),
            born: ctx.born,
        })
        .attach(&mut meta);
        ctx.stored = true;
        active.counters(ctx.route).stores.inc();
        RespCacheable::Cacheable(meta)
    }

    /// Variance for responses that `Vary` on `Accept-Encoding` or on a
    /// header of the route's `vary` list. Call from
    /// `ProxyHttp::cache_vary_filter`.
    pub fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        req: &RequestHeader,
        ctx: &RequestCtx,
    ) -> Option<HashBinary> {
        // The request's route: the entry was found under its key, which
        // holds the route's name and key definition.
        let active = self.active_of(ctx);
        let route = ctx.route.and_then(|i| active.config.routes.get(i));
        variance::of(meta.response_header(), req, route)
    }

    /// Adds the cache status headers. Call from `ProxyHttp::response_filter`.
    pub fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) {
        headers::decorate(session, resp, ctx);
        if ctx.status == Some(CacheStatus::Stale) && ctx.upstream_start.is_some() {
            // Stale served because the origin failed: Pingora closes this
            // connection afterwards, so say so rather than invite reuse.
            session.set_keepalive(None);
        }
    }

    /// Adds the cache status headers to an error the proxy answers itself
    /// (502/504: the origin failed and nothing stale could stand in): `MISS`
    /// or `EXPIRED` when the cache was looked up, `BYPASS` when it was not.
    /// Call from `ProxyHttp::fail_to_proxy`.
    pub fn error_response_filter(
        &self,
        session: &Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) {
        ctx.origin_failed = true;
        headers::decorate(session, resp, ctx);
    }

    /// Counts the request. Call from `ProxyHttp::logging`.
    pub fn logging(&self, session: &Session, ctx: &RequestCtx, error: Option<&Error>) {
        let exchange = Exchange {
            status: session.response_written().map(|r| r.status.as_u16()),
            body_bytes: session.body_bytes_sent(),
            lookup: session.cache.lookup_duration(),
        };
        self.log_exchange(session.req_header(), ctx, &exchange, error);
    }

    /// Counts a request and writes its access log line: the proxy's
    /// `logging` hook and the front path both end a request here.
    fn log_exchange(
        &self,
        req: &RequestHeader,
        ctx: &RequestCtx,
        exchange: &Exchange,
        error: Option<&Error>,
    ) {
        self.release_shared_lock(ctx);
        let active = self.active_of(ctx);
        let counters = active.counters(ctx.route);
        if let Some(d) = exchange.lookup {
            self.metrics.lookup_latency.observe(d.as_secs_f64());
        }
        if let Some(status) = ctx.status {
            counters.count(status);
            if let Some(ws) = workspace_of(&active, req, ctx) {
                self.workspaces.record(ws, status, ctx.stored);
            }
        }
        if let Some(status) = exchange.status {
            counters.count_response(status);
        }
        if let Some(log) = &active.access {
            self.access_line(log, &active, req, exchange, ctx);
        }
        if let Some(e) = error {
            let kind = match e.esource() {
                ErrorSource::Upstream => {
                    counters.count_origin_error(OriginError::of(e.etype()));
                    "origin"
                }
                ErrorSource::Downstream => "client",
                _ => "internal",
            };
            self.metrics.errors.with_label_values(&[kind]).inc();
        }
    }

    /// Writes the request's access log line.
    fn access_line(
        &self,
        log: &crate::access_log::AccessLog,
        active: &Active,
        req: &RequestHeader,
        exchange: &Exchange,
        ctx: &RequestCtx,
    ) {
        log.record(&crate::access_log::Line {
            request_id: ctx
                .request_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-"),
            method: req.method.as_str(),
            path: req.uri.path(),
            query: req.uri.query(),
            route: ctx
                .route
                .and_then(|i| active.config.routes.get(i))
                .map(|r| r.name.as_str()),
            workspace: ctx.workspace.as_deref(),
            user: ctx.user.as_deref(),
            cache_status: ctx.status.map(CacheStatus::as_str),
            layer: ctx.layer,
            status: exchange.status.unwrap_or(0),
            bytes: exchange.body_bytes,
            total: ctx.started.map(|s| s.elapsed()).unwrap_or_default(),
            origin: ctx.origin_time,
        });
    }

    /// Reopens the access log file (SIGUSR1, after logrotate moved it).
    pub fn reopen_logs(&self) {
        if let Some(log) = &self.active.load().access {
            log.reopen();
        }
    }

    /// Copies store figures into the metrics gauges (before a scrape).
    pub fn refresh_gauges(&self) {
        // Also brings the breaker gauge up to date.
        let _ = self.redis_health();
        self.workspaces
            .set_labels(self.config().metrics.workspace_labels);
        if let Some(m) = self.memory {
            let s = m.stats();
            self.metrics.entries.set(s.entries as i64);
            self.metrics.bytes.set(s.bytes as i64);
            if let Some(mem) = &self.config().storage.memory {
                self.metrics.max_bytes.set(mem.max_size as i64);
            }
            // The store's own counters, carried into the metrics; the lock
            // keeps two concurrent scrapes from carrying the same events.
            let mut seen = self.limits_seen.lock();
            let evicted = self.metrics.evictions.get();
            self.metrics
                .evictions
                .inc_by(s.evictions.saturating_sub(evicted));
            for (i, (label, now)) in [
                ("object-too-large", s.too_large),
                ("workspace-quota-eviction", s.quota_evictions),
                ("workspace-quota-refused", s.quota_refused),
            ]
            .into_iter()
            .enumerate()
            {
                self.metrics
                    .limits
                    .with_label_values(&[label])
                    .inc_by(now.saturating_sub(seen[i]));
                seen[i] = now.max(seen[i]);
            }
        }
        self.metrics.tag_records.set(self.registry.len() as i64);
    }
}

/// The largest response the first tier stores.
fn max_object_size(config: &Config) -> usize {
    let storage = &config.storage;
    match (&storage.memory, &storage.redis) {
        (Some(m), _) => m.max_object_size,
        (None, Some(r)) => r.max_object_size,
        (None, None) => 8 << 20,
    }
}

/// Removes the fields the origin's `Connection` header nominates: they are
/// hop-by-hop (RFC 9110 §7.6.1), for neither the client nor the store.
/// Framing fields stay whatever the list says.
fn drop_nominated_fields(resp: &mut ResponseHeader) {
    if !resp.headers.contains_key(header::CONNECTION) {
        return;
    }
    for name in storability::connection_nominations(&resp.headers) {
        resp.remove_header(&name);
    }
}

/// A copy of `resp` that owns its bytes.
///
/// Pingora parses upstream headers as zero-copy slices of its read buffer; a
/// stored clone would keep that whole buffer (4 KiB or more) alive for the
/// entry's lifetime, outside the store's byte accounting. Copying names and
/// values keeps `max_size` an honest bound on memory.
///
/// The values are slices of one buffer: every hit clones the header, and
/// with one shared allocation those clones bump one reference count (one
/// cache line) instead of one per value.
///
/// The map has room for the headers a hit adds (`Age`, the cache status
/// headers, framing): a clone keeps the index table's size, so a hit's
/// inserts do not rehash it.
///
/// Hop-by-hop fields and those a `no-cache="..."` names are left out
/// ([`storability::unstored_fields`]): they belong to one exchange, or may
/// not be sent again without revalidation, so no hit may carry them.
fn owned_header(resp: &ResponseHeader) -> ResponseHeader {
    let skip = storability::unstored_fields(&resp.headers);
    let kept = || resp.headers.iter().filter(|(n, _)| !skip.contains(n));
    let without_skipped = || {
        let mut copy = resp.clone();
        for n in &skip {
            copy.remove_header(n);
        }
        copy
    };
    let room = resp.headers.len() + crate::storage::HIT_HEADER_ROOM;
    let Ok(mut headers) = http::HeaderMap::try_with_capacity(room) else {
        return without_skipped();
    };
    let total = kept().map(|(_, v)| v.len()).sum();
    let mut values = Vec::with_capacity(total);
    for (_, value) in kept() {
        values.extend_from_slice(value.as_bytes());
    }
    let values = bytes::Bytes::from(values);
    let mut at = 0;
    for (name, value) in kept() {
        let slice = values.slice(at..at + value.len());
        at += value.len();
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_maybe_shared(slice),
        ) else {
            continue;
        };
        let _ = headers.try_append(name, value);
    }
    // A reason phrase that was valid on the way in is valid again.
    crate::storage::bare_header(resp.status, resp.version, headers, resp.get_reason_phrase())
        .unwrap_or_else(|_| without_skipped())
}

/// pingora-cache's key for tagcache's primary key bytes and their hash,
/// tagged with the workspace.
fn cache_key(primary: Vec<u8>, workspace: Option<&str>, hash: HashBinary) -> CacheKey {
    let mut key = CacheKey::new(primary, workspace.unwrap_or(""));
    key.set_primary_bin_override(hash);
    key
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// How long a tag record must outlive its last purge: the longest an entry
/// born before it can be served, plus the longest fill.
fn retention(config: &Config) -> Duration {
    let longest = config
        .routes
        .iter()
        .map(crate::config::Route::longest_life)
        .max()
        .unwrap_or_default();
    longest
        + config.upstream.read_timeout
        + config.upstream.connect_timeout
        + config.coalescing.wait_timeout
        + Duration::from_secs(60)
}
