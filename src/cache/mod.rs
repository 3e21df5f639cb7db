//! The embeddable cache layer: what a Pingora `ProxyHttp` calls from its hooks.
//!
//! [`TagCache`] holds the route table, the storage, the coalescing lock, the
//! tag registry and the metrics. Each of its methods is named after, and meant
//! to be called from, the Pingora hook of the same name; [`crate::proxy`]
//! wires them into tagcache's own proxy, and `examples/embed.rs` shows a
//! custom proxy doing the same.
//!
//! ```text
//!  request_cache_filter  match route, read identity, normalize query, decide bypass, enable cache
//!  cache_key_callback    hand the framed key to pingora-cache
//!  cache_hit_filter      client no-cache, tag generations (hard purge = miss, soft = stale)
//!  upstream_request_filter / upstream_response_filter
//!                        time the origin, read and strip origin tag headers
//!  response_cache_filter decide storability, compute tags, build CacheMeta + EntryInfo
//!  response_filter       X-Cache-Status, X-Cache-Layer, Cache-Status, debug key
//!  logging               count the request
//! ```

mod ctx;
mod headers;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header;
use pingora_cache::cache_control::CacheControl;
use pingora_cache::key::HashBinary;
use pingora_cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora_cache::storage::Storage;
use pingora_cache::{
    CacheKey, CacheMeta, CacheOptionOverrides, ForcedFreshness, NoCacheReason, RespCacheable,
    VarianceBuilder,
};
use pingora_error::{Error, ErrorSource, ErrorType};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;

pub use ctx::RequestCtx;

use crate::config::{Config, IdentitySource, Route};
use crate::key::{self, BypassReason, Identity};
use crate::metrics::{CacheStatus, Metrics};
use crate::purge::registry::{TagRegistry, Verdict};
use crate::route::Router;
use crate::storage::{EntryInfo, MemoryStore};
use crate::tags;

/// Longest workspace or user id accepted from a request.
const MAX_IDENTITY_LEN: usize = 256;

/// The cache layer. Cheap to share: wrap it in an `Arc`.
pub struct TagCache {
    config: Arc<Config>,
    router: Router,
    storage: &'static (dyn Storage + Sync),
    memory: Option<&'static MemoryStore>,
    lock: Option<&'static CacheKeyLockImpl>,
    registry: Arc<TagRegistry>,
    metrics: Arc<Metrics>,
    /// Hash of each route's implicit tag, by route index.
    route_tags: Vec<u64>,
}

impl std::fmt::Debug for TagCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagCache")
            .field("routes", &self.config.routes.len())
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
        let mem = config.storage.memory.clone().unwrap_or(crate::config::MemoryStorage {
            max_size: 256 << 20,
            max_object_size: 8 << 20,
        });
        let memory: &'static MemoryStore =
            Box::leak(Box::new(MemoryStore::new(mem.max_size, mem.max_object_size)));
        Self::with_storage(config, memory, Some(memory))
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
        let route_tags = config
            .routes
            .iter()
            .map(|r| tags::hash(&tags::route_tag(&r.name)))
            .collect();
        TagCache {
            router: Router::new(&config.routes),
            config,
            storage,
            memory,
            lock,
            registry,
            metrics,
            route_tags,
        }
    }

    /// The validated configuration.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The tag generation registry.
    pub fn registry(&self) -> &Arc<TagRegistry> {
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

    /// Classifies the request and enables the cache for it when it may be
    /// cached. Call from `ProxyHttp::request_cache_filter`.
    pub fn request_cache_filter(&self, session: &mut Session, ctx: &mut RequestCtx) {
        let req = session.req_header();
        let Some(found) = self.router.find(req.uri.path()) else {
            return;
        };
        ctx.route = Some(found.index);
        let route = &self.config.routes[found.index];
        match self.classify(req, route, &found.params, ctx) {
            Ok(primary) => {
                ctx.primary = Some(primary);
                ctx.born = self.registry.epoch();
                ctx.enabled = true;
                let mut overrides = CacheOptionOverrides::default();
                overrides.wait_timeout = Some(self.config.coalescing.wait_timeout);
                session
                    .cache
                    .enable(self.storage, None, None, self.lock, Some(overrides));
            }
            Err(reason) => {
                if reason == BypassReason::UriTooLong || reason == BypassReason::TooManyParams {
                    self.metrics.limits.with_label_values(&[reason.as_str()]).inc();
                }
                ctx.bypass = Some(reason);
            }
        }
    }

    /// Decides whether the request can use the cache and builds its key.
    fn classify(
        &self,
        req: &RequestHeader,
        route: &Route,
        params: &[Cow<'_, str>],
        ctx: &mut RequestCtx,
    ) -> Result<Vec<u8>, BypassReason> {
        if req.method != http::Method::GET {
            return Err(BypassReason::Method);
        }
        let uri_len = req.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
        if uri_len > self.config.limits.max_uri_len {
            return Err(BypassReason::UriTooLong);
        }
        let tenant = &self.config.tenant;
        let workspace = match &tenant.workspace {
            Some(source) => Some(identity(req, source).ok_or(BypassReason::NoWorkspace)?),
            None => None,
        };
        let values = key::query_values(
            route,
            req.uri.query(),
            self.config.limits.max_query_params,
        )?;
        if key::bypassed(route, &values) {
            return Err(BypassReason::Rule);
        }
        let user = if key::is_per_user(route, &values) {
            let source = tenant.user.as_ref().ok_or(BypassReason::NoUser)?;
            Some(identity(req, source).ok_or(BypassReason::NoUser)?)
        } else {
            None
        };
        if route.honor_client_no_cache && client_wants_fresh(req) {
            ctx.client_no_cache = true;
        }
        let primary = key::primary(route, Identity { workspace, user }, params, &values);
        if self.config.debug_headers {
            ctx.key_debug = Some(key::describe(&primary));
        }
        ctx.workspace = workspace.map(Arc::from);
        ctx.user = user.map(Arc::from);
        Ok(primary)
    }

    /// The key a request would be stored under, as `request_cache_filter`
    /// would build it (used to purge by URL).
    ///
    /// # Errors
    /// Why the request could not be cached.
    pub fn key_for(&self, req: &RequestHeader) -> Result<CacheKey, &'static str> {
        let found = self.router.find(req.uri.path()).ok_or("no-route")?;
        let route = &self.config.routes[found.index];
        let mut ctx = RequestCtx::new();
        let primary = self
            .classify(req, route, &found.params, &mut ctx)
            .map_err(BypassReason::as_str)?;
        Ok(CacheKey::new(primary, ctx.workspace.as_deref().unwrap_or("")))
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
        let tag = ctx.workspace.as_deref().unwrap_or("");
        Ok(CacheKey::new(primary, tag))
    }

    /// Checks a found entry against client directives and tag generations.
    /// Call from `ProxyHttp::cache_hit_filter`.
    pub fn cache_hit_filter(
        &self,
        meta: &CacheMeta,
        is_fresh: bool,
        ctx: &mut RequestCtx,
    ) -> Option<ForcedFreshness> {
        if let Some(info) = EntryInfo::of(meta) {
            match self.registry.check(info) {
                Verdict::Valid => {}
                Verdict::Purged => {
                    ctx.purged = Some("purged");
                    self.metrics.purged_on_lookup.with_label_values(&["hard"]).inc();
                    return Some(ForcedFreshness::ForceMiss);
                }
                Verdict::Stale(at) => {
                    ctx.purged = Some("soft-purged");
                    self.metrics.purged_on_lookup.with_label_values(&["soft"]).inc();
                    if is_fresh {
                        return Some(ForcedFreshness::ForceExpiredServeStale {
                            expired_at: Some(at),
                        });
                    }
                }
            }
        }
        if ctx.client_no_cache {
            return Some(ForcedFreshness::ForceMiss);
        }
        None
    }

    /// Whether a stale entry may be served: during stale-while-revalidate
    /// (`error` is `None`) and when the origin failed. The entry's own
    /// windows, set from the route, still bound both. Call from
    /// `ProxyHttp::should_serve_stale`.
    pub fn should_serve_stale(&self, ctx: &RequestCtx, error: Option<&Error>) -> bool {
        let Some(route) = ctx.route.map(|i| &self.config.routes[i]) else {
            return false;
        };
        match error {
            None => !route.stale_while_revalidate.is_zero(),
            Some(e) => {
                !route.stale_if_error.is_zero()
                    && (e.esource() == &ErrorSource::Upstream
                        || matches!(e.etype(), ErrorType::HTTPStatus(code) if *code >= 500))
            }
        }
    }

    /// Marks the start of the origin request. Call from
    /// `ProxyHttp::upstream_request_filter`.
    pub fn upstream_request_filter(&self, ctx: &mut RequestCtx) {
        ctx.upstream_start = Some(std::time::Instant::now());
    }

    /// Reads and strips the origin's tag headers and times the origin. Call
    /// from `ProxyHttp::upstream_response_filter`.
    pub fn upstream_response_filter(&self, resp: &mut ResponseHeader, ctx: &mut RequestCtx) {
        if let Some(start) = ctx.upstream_start.take() {
            self.metrics
                .route(ctx.route)
                .origin_latency
                .observe(start.elapsed().as_secs_f64());
        }
        if resp.status == http::StatusCode::NOT_MODIFIED {
            ctx.revalidated = true;
        }
        for th in &self.config.purge.tag_headers {
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
        let Some(index) = ctx.route else {
            return RespCacheable::Uncacheable(NoCacheReason::NeverEnabled);
        };
        let route = &self.config.routes[index];
        if let Err(why) = storable(route, resp, self.max_object_size()) {
            ctx.not_stored = Some(why);
            return RespCacheable::Uncacheable(NoCacheReason::Custom(why));
        }
        let tags = self.entry_tags(req, route, index, primary_hash, ctx);
        let now = SystemTime::now();
        let mut meta = CacheMeta::new(
            now + route.ttl,
            now,
            secs(route.stale_while_revalidate),
            secs(route.stale_if_error),
            resp.clone(),
        );
        Arc::new(EntryInfo {
            route: u16::try_from(index).unwrap_or(u16::MAX),
            workspace: ctx.workspace.clone(),
            tags: tags.into_boxed_slice(),
            born: ctx.born,
        })
        .attach(&mut meta);
        ctx.stored = true;
        self.metrics.route(ctx.route).stores.inc();
        RespCacheable::Cacheable(meta)
    }

    fn max_object_size(&self) -> usize {
        self.config
            .storage
            .memory
            .as_ref()
            .map_or(8 << 20, |m| m.max_object_size)
    }

    /// Every tag of a new entry, hashed.
    fn entry_tags(
        &self,
        req: &RequestHeader,
        route: &Route,
        index: usize,
        primary_hash: HashBinary,
        ctx: &RequestCtx,
    ) -> Vec<u64> {
        let mut out = Vec::with_capacity(route.tags.len() + ctx.origin_tags.len() + 3);
        out.push(self.route_tags[index]);
        out.push(tags::hash(&tags::key_tag(&primary_hash)));
        if let Some(w) = ctx.workspace.as_deref() {
            out.push(tags::hash(&tags::workspace_tag(w)));
        }
        if !route.tags.is_empty() {
            // Only misses get here: re-deriving params and query is cheaper
            // than carrying owned copies through every request.
            let params = self
                .router
                .find(req.uri.path())
                .map(|m| m.params)
                .unwrap_or_default();
            let values = key::query_values(route, req.uri.query(), usize::MAX)
                .unwrap_or_default();
            let vars = RouteVars {
                route,
                params: &params,
                values: &values,
                ctx,
            };
            for t in &route.tags {
                if let Ok(tag) = tags::render(t, &vars) {
                    out.push(tags::hash(&tag));
                }
            }
        }
        out.extend(ctx.origin_tags.iter().map(|t| tags::hash(t)));
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Variance for `Vary: Accept-Encoding` responses. Call from
    /// `ProxyHttp::cache_vary_filter`.
    pub fn cache_vary_filter(&self, meta: &CacheMeta, req: &RequestHeader) -> Option<HashBinary> {
        let vary = meta.headers().get(header::VARY)?;
        let mut builder = VarianceBuilder::new();
        for name in vary.to_str().ok()?.split(',').map(str::trim) {
            if name.eq_ignore_ascii_case("accept-encoding") {
                let value = req
                    .headers
                    .get(header::ACCEPT_ENCODING)
                    .map(|v| v.as_bytes().to_vec())
                    .unwrap_or_default();
                builder.add_owned_value("accept-encoding", value);
            }
        }
        builder.finalize()
    }

    /// Adds the cache status headers. Call from `ProxyHttp::response_filter`.
    pub fn response_filter(&self, session: &mut Session, resp: &mut ResponseHeader, ctx: &mut RequestCtx) {
        headers::decorate(session, resp, ctx);
        if ctx.status == Some(CacheStatus::Stale) && ctx.upstream_start.is_some() {
            // Stale served because the origin failed: Pingora closes this
            // connection afterwards, so say so rather than invite reuse.
            session.set_keepalive(None);
        }
    }

    /// Counts the request. Call from `ProxyHttp::logging`.
    pub fn logging(&self, session: &Session, ctx: &RequestCtx, error: Option<&Error>) {
        let counters = self.metrics.route(ctx.route);
        if let Some(d) = session.cache.lookup_duration() {
            self.metrics.lookup_latency.observe(d.as_secs_f64());
        }
        if let Some(status) = ctx.status {
            counters.count(status);
        }
        if let Some(e) = error {
            let kind = match e.esource() {
                ErrorSource::Upstream => "origin",
                ErrorSource::Downstream => "client",
                _ => "internal",
            };
            self.metrics.errors.with_label_values(&[kind]).inc();
        }
    }

    /// Copies store figures into the metrics gauges (before a scrape).
    pub fn refresh_gauges(&self) {
        if let Some(m) = self.memory {
            let s = m.stats();
            self.metrics.entries.set(s.entries as i64);
            self.metrics.bytes.set(s.bytes as i64);
            self.metrics.evictions.set(s.evictions as i64);
        }
        self.metrics.tag_records.set(self.registry.len() as i64);
    }
}

/// Reads one identity from the request; malformed or oversized values count as absent.
fn identity<'r>(req: &'r RequestHeader, source: &IdentitySource) -> Option<&'r str> {
    match source {
        IdentitySource::Header(name) => {
            let mut values = req.headers.get_all(name).iter();
            let v = values.next()?;
            if values.next().is_some() {
                // Two values for one identity is an attack or a bug: refuse to guess.
                return None;
            }
            let v = v.to_str().ok()?.trim();
            (!v.is_empty() && v.len() <= MAX_IDENTITY_LEN && v.bytes().all(|b| b.is_ascii_graphic()))
                .then_some(v)
        }
    }
}

fn client_wants_fresh(req: &RequestHeader) -> bool {
    let cc = CacheControl::from_req_headers(req);
    cc.is_some_and(|cc| cc.no_cache() || cc.has_key("max-age") && cc.max_age().ok().flatten() == Some(0))
        || req
            .headers
            .get(header::PRAGMA)
            .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"no-cache"))
}

/// Whether an origin response may be stored; the error says why not.
fn storable(route: &Route, resp: &ResponseHeader, max_object: usize) -> Result<(), &'static str> {
    if !route.statuses.contains(&resp.status.as_u16()) {
        return Err("status");
    }
    if resp.headers.contains_key(header::SET_COOKIE) {
        return Err("set-cookie");
    }
    if let Some(cc) = CacheControl::from_resp_headers(resp) {
        if cc.private() {
            return Err("private");
        }
        if cc.no_store() {
            return Err("no-store");
        }
        if cc.no_cache() {
            return Err("no-cache");
        }
    }
    for vary in resp.headers.get_all(header::VARY) {
        let Ok(v) = vary.to_str() else {
            return Err("vary");
        };
        for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return Err("vary-star");
            }
            if !name.eq_ignore_ascii_case("accept-encoding") {
                return Err("vary");
            }
        }
    }
    let len = resp
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if len.is_some_and(|l| l > max_object) {
        return Err("too-large");
    }
    Ok(())
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
        .map(|r| r.ttl + r.stale_while_revalidate.max(r.stale_if_error))
        .max()
        .unwrap_or_default();
    longest
        + config.upstream.read_timeout
        + config.upstream.connect_timeout
        + config.coalescing.wait_timeout
        + Duration::from_secs(60)
}

struct RouteVars<'a> {
    route: &'a Route,
    params: &'a [Cow<'a, str>],
    values: &'a key::QueryValues<'a>,
    ctx: &'a RequestCtx,
}

impl tags::Vars for RouteVars<'_> {
    fn workspace(&self) -> Option<&str> {
        self.ctx.workspace.as_deref()
    }
    fn user(&self) -> Option<&str> {
        self.ctx.user.as_deref()
    }
    fn var(&self, name: &str) -> Option<&str> {
        let mut i = 0;
        for seg in &self.route.segments {
            if let crate::config::Segment::Param(p) = seg {
                if p == name {
                    return self.params.get(i).map(|c| c.as_ref());
                }
                i += 1;
            }
        }
        None
    }
    fn query(&self, name: &str) -> Option<&str> {
        key::value_of(self.route, self.values, name)
    }
}

impl CacheStatus {
    /// The layer that served a response of this status, for `X-Cache-Layer`.
    pub fn layer(self) -> &'static str {
        match self {
            CacheStatus::Hit | CacheStatus::Stale | CacheStatus::Revalidated => "MEMORY",
            CacheStatus::Miss | CacheStatus::Expired | CacheStatus::Bypass => "ORIGIN",
        }
    }
}
