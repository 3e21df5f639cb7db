//! Validated, internal configuration types: what the rest of tagcache reads.
//!
//! These are built from the YAML mirror in `super::raw` by [`super::load_str`]; they
//! are never deserialized directly and every value in them has been checked.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderName;

/// A secret read from the environment. Its `Debug` never prints the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself; call only where it is compared or sent.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the proxy listens (`listen`).
    pub listen: SocketAddr,
    /// The origin every request is forwarded to.
    pub upstream: Upstream,
    /// The admin listener.
    pub admin: Admin,
    /// Cache storage tiers.
    pub storage: Storage,
    /// Where the workspace and user identities come from.
    pub tenant: Tenant,
    /// Cached routes, in the order they are matched.
    pub routes: Vec<Route>,
    /// Invalidation events: event name to tag templates.
    pub events: BTreeMap<String, Vec<Template>>,
    /// Writes that purge tags when the origin accepts them (`invalidate:`),
    /// in the order they are matched.
    pub invalidate: Vec<WriteRule>,
    /// Purge behaviour (origin tag headers, legacy webhook).
    pub purge: Purge,
    /// Process-level settings.
    pub server: Server,
    /// Request coalescing.
    pub coalescing: Coalescing,
    /// Emit `X-Cache-Key` and the key in `Cache-Status`.
    pub debug_headers: bool,
    /// Limits applied to requests.
    pub limits: Limits,
    /// Request headers that can change the origin's response but are not in
    /// the key (`unkeyed_header_names`); each route strips them before the
    /// origin or bypasses when one is sent (`Route::unkeyed_headers`).
    pub unkeyed_headers: Vec<HeaderName>,
    /// Logging.
    pub log: Log,
    /// The file run-time settings are kept in without `storage.redis`
    /// (`state.path`); `None`: memory only.
    pub state_path: Option<std::path::PathBuf>,
    /// Metrics settings.
    pub metrics: MetricsConfig,
}

/// Most workspaces `metrics.workspace_labels` may export series for.
pub const MAX_WORKSPACE_LABELS: usize = 1000;

/// The route label metrics give requests that match no route; no route may
/// be named so.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// `metrics:`.
#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    /// How many of the busiest workspaces get per-workspace Prometheus
    /// series (`workspace_labels`, default 0: none).
    pub workspace_labels: usize,
}

/// `log:`: the process log's level and the access log.
#[derive(Debug, Clone)]
pub struct Log {
    /// The process log's filter (default `info`); `RUST_LOG` wins when set.
    pub level: String,
    /// Hash workspace and user ids in the access log (default false).
    pub hash_identities: bool,
    /// The access log, when enabled.
    pub access: Option<AccessLogConfig>,
}

/// `log.access:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// Line format.
    pub format: AccessFormat,
    /// File to append to; `None`: stdout.
    pub path: Option<std::path::PathBuf>,
    /// Keep the query string in the logged path (default true).
    pub query: bool,
    /// Rotate to `PATH.1` past this many bytes.
    pub max_size: Option<u64>,
}

/// Access log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessFormat {
    /// One JSON object per line (default).
    Json,
    /// Space-separated fields.
    Text,
}

/// The origin.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `host:port` of the origin.
    pub address: String,
    /// Use TLS to the origin.
    pub tls: bool,
    /// SNI / Host for TLS; defaults to the host part of `address`.
    pub sni: String,
    /// TCP connect timeout (default 2s).
    pub connect_timeout: Duration,
    /// Time to wait for the origin's response header and each body read (default 30s).
    pub read_timeout: Duration,
    /// Time allowed for each write to the origin (default 30s).
    pub write_timeout: Duration,
    /// How long idle keep-alive connections to the origin are kept (default 60s).
    pub idle_timeout: Duration,
    /// How many times an idempotent request is retried, on a new connection,
    /// after a reused connection failed before any byte of the answer (`0`
    /// or `1`, default 1).
    pub retries: u8,
}

/// The admin listener.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Address of the admin listener (default `127.0.0.1:9090`).
    pub listen: SocketAddr,
    /// Bearer token for everything but `/health`; required when `listen` is not loopback.
    pub token: Option<Secret>,
    /// Largest admin request body accepted (default 1 MiB).
    pub max_body: usize,
    /// Secret for `X-Tagcache-Signature` HMAC webhooks, if enabled.
    pub webhook_secret: Option<Secret>,
    /// A listener serving only `GET /metrics`, without the token, if enabled.
    pub metrics_listen: Option<SocketAddr>,
}

/// Storage tiers.
#[derive(Debug, Clone)]
pub struct Storage {
    /// The in-process memory tier.
    pub memory: Option<MemoryStorage>,
    /// The shared Redis tier (L2, purge fan-out, cross-instance coalescing).
    pub redis: Option<RedisStorage>,
}

/// The in-process memory tier.
#[derive(Debug, Clone)]
pub struct MemoryStorage {
    /// Total bytes (headers + body + per-entry overhead) the store may hold.
    pub max_size: usize,
    /// Largest single response body stored; larger ones stream through uncached.
    pub max_object_size: usize,
    /// Most bytes one workspace's entries may hold (`per_workspace_max`); a
    /// workspace over it evicts its own oldest entries, never another's.
    pub per_workspace_max: Option<usize>,
}

/// Where identities come from.
///
/// Without `jwt`, the workspace and user are the headers, trusted as sent.
/// With `jwt`, they are the verified token's claims, and the headers (which
/// default to `X-Workspace-ID` and `X-User-ID` then) only name which of the
/// token's workspaces a request acts in and must agree with the token.
#[derive(Debug, Clone, Default)]
pub struct Tenant {
    /// The workspace (tenant) identity.
    pub workspace: Option<IdentitySource>,
    /// The user identity.
    pub user: Option<IdentitySource>,
    /// JWT verification (`tenant.jwt`), if configured.
    pub jwt: Option<Jwt>,
}

/// `tenant.jwt`: verify `Authorization: Bearer` tokens locally.
#[derive(Debug, Clone)]
pub struct Jwt {
    /// Accepted algorithms, all of one family matching `key`.
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    /// The verification key.
    pub key: JwtKey,
    /// Accepted `iss` values; empty: not checked.
    pub issuer: Vec<String>,
    /// Accepted `aud` values; empty: not checked.
    pub audience: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf` (default 30s).
    pub leeway: Duration,
    /// What to do with a request on a cached route without a valid token.
    pub on_invalid: OnInvalid,
    /// Claim holding the workspace, or an array of workspaces (`tenant.workspace.claim`).
    pub workspace_claim: String,
    /// Claim holding the user id (`tenant.user.claim`), if users are configured.
    pub user_claim: Option<String>,
    /// Path parameter that names a workspace and must be one the token
    /// allows (`tenant.workspace_param`, default `workspace_id`).
    pub workspace_param: String,
}

/// Where the JWT verification key comes from.
#[derive(Debug, Clone)]
pub enum JwtKey {
    /// An HMAC secret (`HS*`).
    Secret(Secret),
    /// A PEM public key file, read once at start.
    PublicKey {
        /// The file, as resolved.
        path: std::path::PathBuf,
        /// Its contents.
        pem: Vec<u8>,
    },
    /// A JWKS file, re-read when it changes.
    Jwks {
        /// The file, as resolved.
        path: std::path::PathBuf,
        /// How often the file is checked for changes (default 60s).
        reload_interval: Duration,
        /// Its contents when the config was loaded.
        initial: Vec<u8>,
    },
}

/// `tenant.jwt.on_invalid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInvalid {
    /// Answer 401 (the default).
    Reject,
    /// Forward to the origin uncached; the origin decides.
    Pass,
}

/// Where one identity is read from.
#[derive(Debug, Clone)]
pub enum IdentitySource {
    /// A request header, trusted as-is (deployments behind an authenticating gateway).
    Header(HeaderName),
}

/// Which methods a route matches. Only GET and HEAD are ever cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMethod {
    /// `GET` (HEAD requests are served from GET entries).
    Get,
}

/// One piece of a route path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A literal path segment, compared exactly.
    Literal(String),
    /// `{name}`: one non-empty segment captured as a path parameter.
    Param(String),
    /// `{*name}`, last in a pattern only: the rest of the path, one or more
    /// segments, each held to the same rules as any other segment, captured
    /// as one parameter (the decoded segments joined by `/`).
    Rest(String),
}

/// A cached route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Route name, unique; part of every key and used in metrics.
    pub name: String,
    /// Method matched.
    pub method: RouteMethod,
    /// Path pattern, split on `/` (no empty segments).
    pub segments: Vec<Segment>,
    /// Fresh lifetime; with `freshness: origin`, the longest one
    /// (`max_ttl`).
    pub ttl: Duration,
    /// Where freshness comes from.
    pub freshness: Freshness,
    /// Serve stale while one background refresh runs, for this long after expiry.
    pub stale_while_revalidate: Duration,
    /// Serve stale when the origin fails, for this long after expiry.
    pub stale_if_error: Duration,
    /// What goes into the key.
    pub key: KeySpec,
    /// What to do with a query parameter not in `key.query`.
    pub unknown_query: UnknownQuery,
    /// Conditions under which the request bypasses the cache.
    pub bypass_when: Vec<BypassRule>,
    /// Tag templates attached to every stored entry.
    pub tags: Vec<Template>,
    /// Response statuses that are stored (default `[200]`).
    pub statuses: Vec<u16>,
    /// Whether a request `Cache-Control: no-cache` fetches from origin (default true).
    pub honor_client_no_cache: bool,
    /// What to do with the unkeyed headers (`Config::unkeyed_headers`) on this route.
    pub unkeyed_headers: UnkeyedAction,
    /// Request headers the origin may `Vary` on; responses are then keyed on
    /// their values (besides `Accept-Encoding`, always allowed).
    pub vary: Vec<HeaderName>,
    /// A digest of everything that goes into this route's keys ([`Route::key_definition`]),
    /// framed into every key: after a reload, an entry is found only by
    /// requests of a route with the same name and the same key definition.
    pub key_fingerprint: [u8; 8],
}

impl Route {
    /// The longest an entry of this route can be served: its freshness plus
    /// its longest stale window. On origin-mode routes every window is at
    /// most `max_ttl`, and a stale entry with a validator is kept that long
    /// for revalidation.
    pub fn longest_life(&self) -> Duration {
        match self.freshness {
            Freshness::Config => self.ttl + self.stale_while_revalidate.max(self.stale_if_error),
            Freshness::Origin { max_ttl, .. } => max_ttl + max_ttl,
        }
    }

    /// The digest of what goes into this route's keys: its name, method,
    /// path pattern, query allowlist and defaults, per-user rules, unknown
    /// query handling, `vary`, and where the tenant identity comes from.
    pub fn key_definition(&self, tenant: &Tenant) -> [u8; 8] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut put = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        put(self.name.as_bytes());
        put(format!("{:?}", self.method).as_bytes());
        for seg in &self.segments {
            match seg {
                Segment::Literal(l) => {
                    put(b"l");
                    put(l.as_bytes());
                }
                Segment::Param(p) => {
                    put(b"p");
                    put(p.as_bytes());
                }
                Segment::Rest(p) => {
                    put(b"r");
                    put(p.as_bytes());
                }
            }
        }
        put(if self.key.query_all { b"Q" } else { b"q" });
        for q in &self.key.query {
            put(q.as_bytes());
        }
        put(b"d");
        for (k, v) in &self.key.defaults {
            put(k.as_bytes());
            put(v.as_bytes());
        }
        put(if self.key.per_user { b"u" } else { b"-" });
        for rule in &self.key.per_user_when {
            put(rule.param.as_bytes());
            for v in &rule.values {
                put(v.as_bytes());
            }
        }
        put(format!("{:?}", self.unknown_query).as_bytes());
        put(b"v");
        for v in &self.vary {
            put(v.as_str().as_bytes());
        }
        put(format!("{:?}", tenant.workspace).as_bytes());
        put(format!("{:?}", tenant.user).as_bytes());
        put(if tenant.jwt.is_some() { b"jwt" } else { b"hdr" });
        let digest = h.finalize();
        let mut out = [0u8; 8];
        out.copy_from_slice(&digest[..8]);
        out
    }
}

/// One item of `invalidate:`: a write whose 2xx answer purges tags.
#[derive(Debug, Clone)]
pub struct WriteRule {
    /// The `match` as written, e.g. `PATCH /api/contacts/{contact_id}`: the
    /// rule's label in metrics and logs.
    pub label: String,
    /// The unsafe method matched (`POST`, `PUT`, `PATCH` or `DELETE`).
    pub method: http::Method,
    /// Path pattern, as for routes.
    pub segments: Vec<Segment>,
    /// Tag templates purged after a 2xx answer: `{workspace}`, `{user}` and
    /// the path parameters.
    pub tags: Vec<Template>,
}

/// Statuses a response may be stored with under `freshness: origin` by
/// default: the heuristically cacheable ones of RFC 9110 §15.1, without 206
/// (tagcache never stores partial content).
pub const ORIGIN_STATUSES: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// Where a route's freshness comes from (`route.freshness`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Freshness {
    /// The route's `ttl`, whatever the origin says (default).
    #[default]
    Config,
    /// The origin's response, as an RFC 9111 shared cache, within bounds.
    Origin {
        /// The longest freshness and stale window (the route's `ttl` too).
        max_ttl: Duration,
        /// Freshness for responses that carry none, instead of the
        /// `Last-Modified` heuristic.
        default_ttl: Option<Duration>,
    },
}

/// What a cached route does with request headers that could change the
/// origin's response but are not in the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnkeyedAction {
    /// Remove them from requests that use the cache, before the origin sees them (default).
    Strip,
    /// Send a request carrying one past the cache, untouched.
    Bypass,
}

/// What goes into a route's cache key besides route name, workspace and path params.
#[derive(Debug, Clone, Default)]
pub struct KeySpec {
    /// Allowlisted query parameters, sorted and deduplicated.
    pub query: Vec<String>,
    /// `query: all`: every query parameter is in the key, sorted by name
    /// (`query` is then empty).
    pub query_all: bool,
    /// Defaults applied before keying (a param equal to its default is the same key as absent).
    pub defaults: BTreeMap<String, String>,
    /// The user id is added to the key when any of these params has one of the values.
    pub per_user_when: Vec<PerUserRule>,
    /// Always key per user.
    pub per_user: bool,
}

/// Key per user when `param` has one of `values` (after defaults).
#[derive(Debug, Clone)]
pub struct PerUserRule {
    /// Query parameter name.
    pub param: String,
    /// Values that make the response user-specific.
    pub values: Vec<String>,
}

/// What to do with query parameters not in the allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownQuery {
    /// Bypass the cache (the param may change the response). The default.
    Bypass,
    /// Drop the param from the key.
    Ignore,
}

/// A bypass condition on a query parameter (after defaults).
#[derive(Debug, Clone)]
pub struct BypassRule {
    /// Query parameter name.
    pub param: String,
    /// The condition.
    pub when: BypassCondition,
}

/// Conditions a bypass rule can test.
#[derive(Debug, Clone)]
pub enum BypassCondition {
    /// Numeric value greater than this (a non-numeric value also bypasses).
    GreaterThan(f64),
    /// Numeric value less than this (a non-numeric value also bypasses).
    LessThan(f64),
    /// Value equal to one of these.
    Equals(Vec<String>),
    /// The parameter is present at all.
    Present,
}

/// A tag template such as `board:{workspace}:{board_id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The source text, for messages.
    pub source: String,
    /// The parsed pieces.
    pub parts: Vec<TemplatePart>,
}

/// A piece of a tag template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Literal text.
    Literal(String),
    /// `{workspace}`: the request's workspace.
    Workspace,
    /// `{user}`: the request's user.
    User,
    /// `{name}`: a path parameter (routes) or body field (events).
    Var(String),
    /// `{query.name}`: a query parameter after defaults.
    Query(String),
}

/// One item of `purge.legacy_tags`: templates over the legacy body's
/// fields, most specific first. The first whose fields are all in the body
/// is purged; a rule of one template is purged whenever its fields are there.
#[derive(Debug, Clone)]
pub struct LegacyRule {
    /// The templates, in the order they are tried.
    pub alternatives: Vec<Template>,
}

/// Purge behaviour.
#[derive(Debug, Clone)]
pub struct Purge {
    /// Origin response headers read as tags, with their separators.
    pub tag_headers: Vec<TagHeader>,
    /// Legacy webhook body accepted on this admin path (default `/purge/legacy`).
    pub legacy_path: String,
    /// Tags purged for a legacy body: one rule per item of `legacy_tags`.
    pub legacy_tags: Vec<LegacyRule>,
    /// When a purge is answered, with the Redis tier (default `Async`).
    pub consistency: Consistency,
    /// How long a sync purge waits for every instance's ack (default 2s).
    pub sync_timeout: Duration,
}

/// An origin header that carries tags.
#[derive(Debug, Clone)]
pub struct TagHeader {
    /// Header name, e.g. `Surrogate-Key`.
    pub name: HeaderName,
    /// Separator: `' '` for Surrogate-Key, `','` for Cache-Tag.
    pub separator: char,
}

/// Process-level settings.
#[derive(Debug, Clone)]
pub struct Server {
    /// Worker threads for the proxy service (default: number of CPUs).
    pub threads: usize,
    /// Grace period after SIGTERM before connections are closed (default 10s).
    pub grace_period: Duration,
    /// Write buffer of each client connection (default 32 KiB): a cached
    /// answer that fits leaves in one write, header and body together.
    pub write_buffer: usize,
    /// The unix socket listening sockets are handed over on in a graceful
    /// upgrade (default `/tmp/tagcache-upgrade.sock`).
    pub upgrade_sock: String,
}

/// Request coalescing.
#[derive(Debug, Clone)]
pub struct Coalescing {
    /// Whether concurrent misses for one key share one origin fetch (default true).
    pub enabled: bool,
    /// How long a waiter waits for the fill before going to the origin itself (default 10s).
    pub wait_timeout: Duration,
    /// With the Redis tier, also coalesce across instances (default true).
    pub across_instances: bool,
    /// How long a cross-instance lock lasts unless its holder renews it
    /// (default 1s): the longest a lock whose holder is gone holds anyone.
    pub lock_lease: Duration,
}

/// Limits applied to requests.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest request URI accepted (default 8 KiB); longer requests get 414.
    pub max_uri_len: usize,
    /// Most query parameters considered for a key (default 64); more bypasses.
    pub max_query_params: usize,
    /// Largest request head (request line and headers), in bytes (default
    /// 32 KiB); larger requests get 431.
    pub max_header_size: usize,
}

/// The shared Redis tier (`storage.redis`).
#[derive(Debug, Clone)]
pub struct RedisStorage {
    /// One server (`url`) or a cluster's seed nodes (`cluster`).
    pub target: RedisTarget,
    /// Prefix of every key and of the channel, one per deployment (default `tagcache`).
    pub prefix: String,
    /// Timeout of each Redis operation (default 25ms).
    pub timeout: Duration,
    /// Timeout of opening a connection (default 1s).
    pub connect_timeout: Duration,
    /// Bodies larger than this are stored zstd-compressed (default 4 KiB).
    pub compress_above: usize,
    /// Largest body stored in Redis (default: the memory tier's, else 8 MiB).
    pub max_object_size: usize,
    /// Consecutive failures that open the circuit breaker (default 5).
    pub breaker_failures: u32,
    /// How often an open breaker lets one probe through (default 1s).
    pub probe_interval: Duration,
    /// Heartbeat of the purge subscription and of the instance registration
    /// (default 1s). A purge an instance misses stops being served by it
    /// within twice this.
    pub heartbeat: Duration,
}

/// Where Redis is. URLs may hold a password, so they are secrets.
#[derive(Debug, Clone)]
pub enum RedisTarget {
    /// `redis://`, `rediss://` (TLS) or `unix://` (local socket) URL of one server.
    Server(Secret),
    /// Seed nodes of a Redis Cluster, `host:port` or URLs.
    Cluster(Vec<Secret>),
}

/// `purge.consistency`: when a purge is answered, with the Redis tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Once Redis has it; other instances apply it within milliseconds (default).
    Async,
    /// Once every live instance has applied it, or `purge.sync_timeout` passed.
    Sync,
}
