//! The config file as written: serde structs that mirror the YAML exactly.
//!
//! Almost every field is optional here, even required ones: whether a key is
//! required, and every other rule, is checked in [`super::convert`], which
//! reports all problems at once. Each field documents its default (the values
//! are in [`super::defaults`]). The `rename` of each struct is the name used
//! for it in messages ("unknown key \"tll\" in route").

use std::fmt;
use std::marker::PhantomData;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::Deserialize;

use super::schema::{DurationText, ScalarText, Size};

pub(crate) use super::yaml::{OneOrMany, Spanned};

/// The whole file.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "config")]
#[schemars(rename = "Config")]
pub(crate) struct Config {
    /// Address the proxy listens on, `IP:PORT`. Default `"0.0.0.0:8080"`.
    pub(crate) listen: Option<Spanned<String>>,
    /// The origin. Required.
    pub(crate) upstream: Option<Spanned<Upstream>>,
    /// The admin listener (health, stats, metrics, purge, events). Default: on
    /// `127.0.0.1:9090` without a token.
    pub(crate) admin: Option<Spanned<Admin>>,
    /// Cache storage. Default: a 256 MiB memory tier.
    pub(crate) storage: Option<Spanned<Storage>>,
    /// Where the workspace and user identities come from. Default: nowhere (no
    /// `{workspace}` or `{user}` anywhere).
    pub(crate) tenant: Option<Spanned<Tenant>>,
    /// Cached routes, matched in order. Default: none (everything is proxied
    /// untouched).
    #[serde(default)]
    pub(crate) routes: Vec<Spanned<Route>>,
    /// Invalidation events: event name to the tag templates it purges. Default: none.
    #[serde(default)]
    pub(crate) events: Entries<Spanned<String>, Vec<Spanned<String>>>,
    /// Writes that purge tags: when the origin answers one of them 2xx,
    /// its tags are purged before the answer reaches the client. Default:
    /// none (writes still invalidate the URLs they touch, RFC 9111 §4.4).
    #[serde(default)]
    pub(crate) invalidate: Vec<Spanned<Invalidate>>,
    /// Purge behaviour. Default: each key documents its own.
    pub(crate) purge: Option<Spanned<Purge>>,
    /// Process settings. Default: each key documents its own.
    pub(crate) server: Option<Spanned<Server>>,
    /// Request coalescing. Default: enabled, 10s wait.
    pub(crate) coalescing: Option<Spanned<Coalescing>>,
    /// Emit `X-Cache-Key` and the key in `Cache-Status`. Default `false`;
    /// refused on a non-loopback `listen` unless `debug_headers_force`.
    pub(crate) debug_headers: Option<Spanned<bool>>,
    /// Request limits. Default: each key documents its own.
    pub(crate) limits: Option<Spanned<Limits>>,
    /// Allow `debug_headers: true` on a non-loopback `listen`. Default `false`.
    pub(crate) debug_headers_force: Option<bool>,
    /// What cached routes do with the headers of `unkeyed_header_names`,
    /// unless a route says otherwise. Default `strip`.
    pub(crate) unkeyed_headers: Option<UnkeyedAction>,
    /// Request headers that can change the origin's response but are not in
    /// the key. Default: `X-Forwarded-Host`, `X-Forwarded-Proto`,
    /// `X-Forwarded-Scheme`, `X-Original-URL`, `X-Rewrite-URL`,
    /// `X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`,
    /// `Forwarded`, `X-Host`.
    pub(crate) unkeyed_header_names: Option<Spanned<Vec<Spanned<String>>>>,
    /// Logging: the process log's level and the access log. Default: level
    /// `info`, no access log.
    pub(crate) log: Option<Spanned<Log>>,
    /// Where run-time settings are kept without `storage.redis`. Default:
    /// in memory only.
    pub(crate) state: Option<Spanned<State>>,
    /// Metrics settings. Default: see [`Metrics`].
    pub(crate) metrics: Option<Spanned<Metrics>>,
}

/// `metrics:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "metrics")]
#[schemars(rename = "Metrics")]
pub(crate) struct Metrics {
    /// Export per-workspace series (`tagcache_workspace_requests_total`,
    /// `tagcache_workspace_stores_total`) for this many of the busiest
    /// workspaces, at most 1000. Default `0`: none (label cardinality).
    pub(crate) workspace_labels: Option<Spanned<usize>>,
}

/// `state:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "state")]
#[schemars(rename = "State")]
pub(crate) struct State {
    /// A JSON file holding the run-time settings, replaced atomically on
    /// every change. Default: none (settings are lost on restart).
    pub(crate) path: Option<Spanned<String>>,
}

/// `log:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "log")]
#[schemars(rename = "Log")]
pub(crate) struct Log {
    /// Level of the process log, as `RUST_LOG` writes it (`info`,
    /// `tagcache=debug,warn`). Default `info`; `RUST_LOG` wins when set.
    pub(crate) level: Option<Spanned<String>>,
    /// Show workspace and user ids in the access log as a hash. Default `false`.
    pub(crate) hash_identities: Option<bool>,
    /// One line per request. Default: off.
    pub(crate) access: Option<Spanned<AccessLog>>,
}

/// `log.access:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "access")]
#[schemars(rename = "AccessLog")]
pub(crate) struct AccessLog {
    /// Whether the access log is written. Default `true` once the block is there.
    pub(crate) enabled: Option<bool>,
    /// `json` or `text`. Default `json`.
    pub(crate) format: Option<AccessFormat>,
    /// A file to append to; `-` or absent: stdout.
    pub(crate) path: Option<Spanned<String>>,
    /// Keep the query string in the logged path. Default `true`.
    pub(crate) query: Option<bool>,
    /// Rotate the file to `PATH.1` when it grows past this size. Default: never.
    #[schemars(with = "Option<Size>")]
    pub(crate) max_size: Option<Spanned<String>>,
}

/// `log.access.format:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AccessFormat {
    /// One JSON object per line.
    Json,
    /// Space-separated fields, for people.
    Text,
}

/// `unkeyed_headers:` (top level and per route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum UnkeyedAction {
    /// Remove the headers before the origin.
    Strip,
    /// Do not use the cache for a request that sends one.
    Bypass,
}

/// `upstream:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "upstream")]
#[schemars(rename = "Upstream")]
pub(crate) struct Upstream {
    /// `host:port` of the origin. Required.
    pub(crate) address: Option<Spanned<String>>,
    /// Use TLS to the origin. Default `false`.
    pub(crate) tls: Option<bool>,
    /// SNI / Host for TLS. Default: the host part of `address`.
    pub(crate) sni: Option<Spanned<String>>,
    /// TCP connect timeout, a duration. Default `2s`.
    #[schemars(with = "Option<DurationText>")]
    pub(crate) connect_timeout: Option<Spanned<String>>,
    /// Wait for the response header and each body read. Default `30s`.
    #[schemars(with = "Option<DurationText>")]
    pub(crate) read_timeout: Option<Spanned<String>>,
    /// Each write to the origin. Default `30s`.
    #[schemars(with = "Option<DurationText>")]
    pub(crate) write_timeout: Option<Spanned<String>>,
    /// How long idle keep-alive connections are kept. Default `60s`.
    #[schemars(with = "Option<DurationText>")]
    pub(crate) idle_timeout: Option<Spanned<String>>,
    /// Retries of an idempotent request whose reused connection failed
    /// before any byte of the answer: `0` or `1`. Default `1`.
    pub(crate) retries: Option<Spanned<usize>>,
}

/// `admin:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "admin")]
#[schemars(rename = "Admin")]
pub(crate) struct Admin {
    /// Address of the admin listener. Default `"127.0.0.1:9090"`.
    pub(crate) listen: Option<Spanned<String>>,
    /// Bearer token for everything but `/health`, usually `"${TAGCACHE_ADMIN_TOKEN}"`.
    /// Default: none, which is only allowed on a loopback `listen`.
    pub(crate) token: Option<Spanned<SecretString>>,
    /// Largest admin request body, a size. Default `1MiB`.
    #[schemars(with = "Option<Size>")]
    pub(crate) max_body: Option<Spanned<String>>,
    /// Secret for HMAC-signed webhooks (`X-Tagcache-Signature`). Default: none.
    pub(crate) webhook_secret: Option<Spanned<SecretString>>,
    /// Address of a second listener that serves only `GET /metrics`, without
    /// the token, for Prometheus. Default: none (metrics only on the admin
    /// listener, behind the token).
    pub(crate) metrics_listen: Option<Spanned<String>>,
}

/// `storage:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "storage")]
#[schemars(rename = "Storage")]
pub(crate) struct Storage {
    /// The in-process memory tier. At least one tier is required when `storage`
    /// is written; without `storage` the default is `memory: { max_size: 256MiB }`.
    pub(crate) memory: Option<Spanned<Memory>>,
    /// The shared Redis tier. Default: none.
    pub(crate) redis: Option<Spanned<Redis>>,
}

/// `storage.redis:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "storage.redis")]
#[schemars(rename = "Redis")]
pub(crate) struct Redis {
    /// `redis://[user:password@]host:port[/db]`, `rediss://` for TLS or
    /// `unix:///path` for a local socket, usually `"${REDIS_URL}"`. Exactly one of `url` and `cluster` is required.
    pub(crate) url: Option<Spanned<SecretString>>,
    /// Redis Cluster seed nodes, `host:port` or URLs.
    pub(crate) cluster: Option<Spanned<Vec<Spanned<SecretString>>>>,
    /// Prefix of every key and of the channel. Default `"tagcache"`.
    pub(crate) prefix: Option<Spanned<String>>,
    /// Timeout of each operation, a duration. Default `25ms`.
    #[schemars(with = "Option<DurationText>")]
    pub(crate) timeout: Option<Spanned<String>>,
    /// Timeout of opening a connection. Default `1s`.
    #[schemars(with = "Option<DurationText>")]
    pub(crate) connect_timeout: Option<Spanned<String>>,
    /// Bodies larger than this are compressed, a size. Default `4KiB`.
    #[schemars(with = "Option<Size>")]
    pub(crate) compress_above: Option<Spanned<String>>,
    /// Largest body stored. Default: `storage.memory.max_object_size`, else `8MiB`.
    #[schemars(with = "Option<Size>")]
    pub(crate) max_object_size: Option<Spanned<String>>,
    /// The circuit breaker. Default: opens after 5 failures, probes every 1s.
    pub(crate) breaker: Option<Spanned<RedisBreaker>>,
    /// Heartbeat of the purge subscription and instance registration. Default `1s`.
    #[schemars(with = "Option<DurationText>")]
    pub(crate) heartbeat: Option<Spanned<String>>,
}

/// `storage.redis.breaker:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "storage.redis.breaker")]
#[schemars(rename = "RedisBreaker")]
pub(crate) struct RedisBreaker {
    /// Consecutive failures that open it, at least 1. Default `5`.
    pub(crate) failures: Option<Spanned<usize>>,
    /// How often an open breaker lets one call through to probe. Default `1s`.
    #[schemars(with = "Option<DurationText>")]
    pub(crate) probe_interval: Option<Spanned<String>>,
}

/// `storage.memory:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "storage.memory")]
#[schemars(rename = "Memory")]
pub(crate) struct Memory {
    /// Total bytes the tier may hold, a size. Required.
    #[schemars(with = "Option<Size>")]
    pub(crate) max_size: Option<Spanned<String>>,
    /// Largest single response body stored, a size. Default `8MiB`.
    #[schemars(with = "Option<Size>")]
    pub(crate) max_object_size: Option<Spanned<String>>,
    /// Most bytes one workspace may hold, a size. Default: no quota.
    #[schemars(with = "Option<Size>")]
    pub(crate) per_workspace_max: Option<Spanned<String>>,
}

/// `tenant:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "tenant")]
#[schemars(rename = "Tenant")]
pub(crate) struct Tenant {
    /// Where the workspace (tenant) identity comes from. Default: nowhere.
    pub(crate) workspace: Option<Spanned<Identity>>,
    /// Where the user identity comes from. Default: nowhere.
    pub(crate) user: Option<Spanned<Identity>>,
    /// Verify `Authorization: Bearer` JWTs and take the identities from their
    /// claims. Default: none (identities are trusted from headers).
    pub(crate) jwt: Option<Spanned<Jwt>>,
    /// With `jwt`: the path parameter that names a workspace, which must be one
    /// the token allows. Default `workspace_id`.
    pub(crate) workspace_param: Option<Spanned<String>>,
}

/// `tenant.workspace:` or `tenant.user:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "tenant identity")]
#[schemars(rename = "Identity")]
pub(crate) struct Identity {
    /// The request header carrying the identity. Required without `tenant.jwt`;
    /// with it, the header that may name the workspace (or user), which must
    /// agree with the token. Default with `jwt`: `X-Workspace-ID` / `X-User-ID`.
    pub(crate) header: Option<Spanned<String>>,
    /// With `tenant.jwt`: the claim holding the identity. Required then.
    pub(crate) claim: Option<Spanned<String>>,
}

/// `tenant.jwt:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "tenant.jwt")]
#[schemars(rename = "Jwt")]
pub(crate) struct Jwt {
    /// Accepted algorithms, one family: `HS256`/`HS384`/`HS512`,
    /// `RS*`/`PS*`, `ES256`/`ES384` or `EdDSA`. Required.
    pub(crate) algorithms: Option<Spanned<OneOrMany<Spanned<String>>>>,
    /// HMAC secret for `HS*`, usually `"${JWT_SECRET}"`.
    pub(crate) secret: Option<Spanned<SecretString>>,
    /// PEM public key file (relative to the config file) for the other algorithms.
    pub(crate) public_key_file: Option<Spanned<String>>,
    /// JWKS file (relative to the config file), re-read when it changes.
    pub(crate) jwks_file: Option<Spanned<String>>,
    /// How often `jwks_file` is checked for changes, a duration. Default `60s`.
    #[schemars(with = "Option<DurationText>")]
    pub(crate) reload_interval: Option<Spanned<String>>,
    /// Accepted `iss` values (one or a list). Default: not checked.
    pub(crate) issuer: Option<Spanned<OneOrMany<Spanned<String>>>>,
    /// Accepted `aud` values (one or a list). Default: not checked.
    pub(crate) audience: Option<Spanned<OneOrMany<Spanned<String>>>>,
    /// Clock skew allowed on `exp` and `nbf`, a duration up to 5m. Default `30s`.
    #[schemars(with = "Option<DurationText>")]
    pub(crate) leeway: Option<Spanned<String>>,
    /// `reject` (401) or `pass` (forward uncached) a request without a valid
    /// token on a cached route. Default `reject`.
    pub(crate) on_invalid: Option<OnInvalid>,
}

/// `tenant.jwt.on_invalid:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OnInvalid {
    /// Answer 401.
    Reject,
    /// Forward to the origin, uncached.
    Pass,
}

/// One item of `routes:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "route")]
#[schemars(rename = "Route")]
pub(crate) struct Route {
    /// Unique route name. Required.
    pub(crate) name: Option<Spanned<String>>,
    /// `"GET /path/{param}"`, or `"GET /static/{*rest}"` for a whole subtree
    /// (`{*name}` last, one or more segments). Required; only GET is accepted.
    #[serde(rename = "match")]
    pub(crate) match_: Option<Spanned<String>>,
    /// Fresh lifetime, a duration greater than 0. Required with `freshness:
    /// config`; not used with `freshness: origin` (see `max_ttl`, `default_ttl`).
    #[schemars(with = "Option<DurationText>")]
    pub(crate) ttl: Option<Spanned<String>>,
    /// Where freshness comes from: `config` (the route's `ttl`, whatever the
    /// origin says) or `origin` (the origin's `Cache-Control`, `Expires` and
    /// `Age`, as an RFC 9111 shared cache). Default `config`.
    pub(crate) freshness: Option<Freshness>,
    /// With `freshness: origin`: the longest any response stays fresh, and
    /// the longest stale window, whatever the origin says. Default `1d`.
    #[schemars(with = "Option<DurationText>")]
    pub(crate) max_ttl: Option<Spanned<String>>,
    /// With `freshness: origin`: how long a response the origin gives no
    /// freshness (no `s-maxage`, `max-age` or `Expires`) stays fresh, when
    /// its status is heuristically cacheable; instead of 10% of the time
    /// since its `Last-Modified`. Default: none.
    #[schemars(with = "Option<DurationText>")]
    pub(crate) default_ttl: Option<Spanned<String>>,
    /// Serve stale while refreshing, for this long after expiry. Default `0s`.
    #[schemars(with = "Option<DurationText>")]
    pub(crate) stale_while_revalidate: Option<Spanned<String>>,
    /// Serve stale when the origin fails, for this long after expiry. Default `0s`.
    #[schemars(with = "Option<DurationText>")]
    pub(crate) stale_if_error: Option<Spanned<String>>,
    /// What goes into the key. Default: no query parameters, not per user.
    pub(crate) key: Option<Spanned<Key>>,
    /// `bypass` or `ignore` a query parameter not in `key.query`. Default `bypass`.
    pub(crate) unknown_query: Option<UnknownQuery>,
    /// Conditions that send the request past the cache. Default: none.
    #[serde(default)]
    pub(crate) bypass_when: Vec<Spanned<BypassRule>>,
    /// Tag templates of every stored entry. Default: none.
    #[serde(default)]
    pub(crate) tags: Vec<Spanned<String>>,
    /// Response statuses that are stored, each 200..=599. Default `[200]`.
    pub(crate) statuses: Option<Spanned<Vec<Spanned<i64>>>>,
    /// Whether a request `Cache-Control: no-cache` goes to the origin. Default `true`.
    pub(crate) honor_client_no_cache: Option<bool>,
    /// `strip` or `bypass` the unkeyed headers. Default: the top-level `unkeyed_headers`.
    pub(crate) unkeyed_headers: Option<UnkeyedAction>,
    /// Request headers the origin may `Vary` on, keyed by their values. Default:
    /// none (only `Accept-Encoding`); a response varying on another header is not stored.
    pub(crate) vary: Option<Spanned<Vec<Spanned<String>>>>,
}

/// One item of `invalidate:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "invalidate rule")]
#[schemars(rename = "Invalidate")]
pub(crate) struct Invalidate {
    /// `"PATCH /api/contacts/{contact_id}"`: `POST`, `PUT`, `PATCH` or
    /// `DELETE` and a path pattern written as a route's. Required, unique.
    #[serde(rename = "match")]
    pub(crate) match_: Option<Spanned<String>>,
    /// Tag templates purged when the origin answers 2xx, over `{workspace}`,
    /// `{user}` and the path parameters. Required, at least one.
    #[serde(default)]
    pub(crate) tags: Vec<Spanned<String>>,
}

/// `route.key:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "route key")]
#[schemars(rename = "Key")]
pub(crate) struct Key {
    /// Allowlisted query parameters, or `all`: every parameter, sorted by
    /// name. Default: none.
    pub(crate) query: Option<Spanned<QueryKeys>>,
    /// Query parameter defaults (a number is taken as its text). Default: none.
    #[serde(default)]
    #[schemars(with = "Entries<String, ScalarText>")]
    pub(crate) defaults: Entries<Spanned<String>, Spanned<String>>,
    /// Key per user when a parameter has one of these values. Default: none.
    pub(crate) per_user_when: Option<Spanned<PerUserWhen>>,
    /// Always key per user. Default `false`.
    pub(crate) per_user: Option<Spanned<bool>>,
}

/// `key.query:`: a list of parameter names, or a word (only `all` is valid,
/// which `convert` checks so that a typo is reported with its position).
#[derive(Debug)]
pub(crate) enum QueryKeys {
    /// `[page, pageSize]`.
    Names(Vec<Spanned<String>>),
    /// `all` (or a mistake).
    Word(String),
}

impl Default for QueryKeys {
    fn default() -> Self {
        QueryKeys::Names(Vec::new())
    }
}

impl<'de> Deserialize<'de> for QueryKeys {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct QueryKeysVisitor;

        impl<'de> Visitor<'de> for QueryKeysVisitor {
            type Value = QueryKeys;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of query parameter names, or all")
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<QueryKeys, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element()? {
                    names.push(name);
                }
                Ok(QueryKeys::Names(names))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<QueryKeys, E> {
                Ok(QueryKeys::Word(v.to_string()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<QueryKeys, E> {
                Ok(QueryKeys::Word(v))
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<QueryKeys, E> {
                Ok(QueryKeys::Word(v.to_string()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<QueryKeys, E> {
                Ok(QueryKeys::Word(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<QueryKeys, E> {
                Ok(QueryKeys::Word(v.to_string()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<QueryKeys, E> {
                Ok(QueryKeys::Word(v.to_string()))
            }

            fn visit_unit<E: de::Error>(self) -> Result<QueryKeys, E> {
                Ok(QueryKeys::Word(String::new()))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<QueryKeys, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(QueryKeys::Word(String::new()))
            }
        }

        deserializer.deserialize_any(QueryKeysVisitor)
    }
}

/// What the schema says `key.query` is.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum QueryKeysSchema {
    /// Allowlisted parameter names.
    Names(Vec<String>),
    /// Every parameter.
    All(AllWord),
}

/// The word `all`.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum AllWord {
    /// Every query parameter is in the key, sorted by name.
    All,
}

impl JsonSchema for QueryKeys {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "QueryKeys".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        QueryKeysSchema::json_schema(generator)
    }
}

/// `key.per_user_when:`: query parameter to the values (one or a list) that make
/// the response user-specific.
pub(crate) type PerUserWhen = Entries<Spanned<String>, OneOrMany<Spanned<String>>>;

/// `route.freshness:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Freshness {
    /// The route's `ttl`.
    Config,
    /// The origin's response headers (RFC 9111).
    Origin,
}

/// `route.unknown_query:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum UnknownQuery {
    /// Bypass the cache.
    Bypass,
    /// Leave the parameter out of the key.
    Ignore,
}

/// One item of `route.bypass_when:`; exactly one condition besides `query`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "bypass_when rule")]
#[schemars(rename = "BypassRule")]
pub(crate) struct BypassRule {
    /// The query parameter tested. Required.
    pub(crate) query: Option<Spanned<String>>,
    /// Bypass when the value is a number greater than this (or not a number).
    pub(crate) greater_than: Option<Spanned<f64>>,
    /// Bypass when the value is a number less than this (or not a number).
    pub(crate) less_than: Option<Spanned<f64>>,
    /// Bypass when the value is this one, or one of these.
    #[schemars(with = "Option<OneOrMany<ScalarText>>")]
    pub(crate) equals: Option<Spanned<OneOrMany<Spanned<String>>>>,
    /// `true`: bypass when the parameter is present at all.
    pub(crate) present: Option<Spanned<bool>>,
}

/// `purge:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "purge")]
#[schemars(rename = "Purge")]
pub(crate) struct Purge {
    /// Origin response headers that carry tags. Default: `Surrogate-Key` separated
    /// by `" "` and `Cache-Tag` separated by `","`.
    pub(crate) tag_headers: Option<Vec<Spanned<TagHeader>>>,
    /// Admin path of the legacy purge webhook. Default `"/purge/legacy"`.
    pub(crate) legacy_path: Option<Spanned<String>>,
    /// Tags purged for a legacy body, templates over its fields `workspace_id`,
    /// `board_id`, `filter` and `pattern`. Each item is a template, purged
    /// when the body has its fields, or a list of templates tried most
    /// specific first, of which the first whose fields are all in the body is
    /// purged. Default `["board:{workspace_id}:{board_id}"]`.
    pub(crate) legacy_tags: Option<Vec<Spanned<OneOrMany<Spanned<String>>>>>,
    /// `async` (answer once Redis has the purge) or `sync` (once every live
    /// instance applied it). Only with `storage.redis`. Default `async`.
    pub(crate) consistency: Option<Spanned<Consistency>>,
    /// How long a sync purge waits for the instances' acks. Default `2s`.
    #[schemars(with = "Option<DurationText>")]
    pub(crate) sync_timeout: Option<Spanned<String>>,
}

/// `purge.consistency:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Consistency {
    /// Answer once Redis has the purge.
    Async,
    /// Answer once every live instance applied it.
    Sync,
}

/// One item of `purge.tag_headers:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "purge.tag_headers item")]
#[schemars(rename = "TagHeader")]
pub(crate) struct TagHeader {
    /// Header name. Required.
    pub(crate) header: Option<Spanned<String>>,
    /// `" "` or `","`. Default `" "`.
    pub(crate) separator: Option<Spanned<String>>,
}

/// `server:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "server")]
#[schemars(rename = "Server")]
pub(crate) struct Server {
    /// Worker threads, at least 1. Default: the number of CPUs.
    pub(crate) threads: Option<Spanned<usize>>,
    /// Grace period after SIGTERM, a duration. Default `10s`.
    #[schemars(with = "Option<DurationText>")]
    pub(crate) grace_period: Option<Spanned<String>>,
    /// Per-connection write buffer, a size. Default `32KiB`.
    #[schemars(with = "Option<Size>")]
    pub(crate) write_buffer: Option<Spanned<String>>,
    /// The unix socket a new process (`tagcache run --upgrade`) takes the
    /// listening sockets over. Default `/tmp/tagcache-upgrade.sock`.
    pub(crate) upgrade_sock: Option<Spanned<String>>,
}

/// `coalescing:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "coalescing")]
#[schemars(rename = "Coalescing")]
pub(crate) struct Coalescing {
    /// Whether concurrent misses share one origin fetch. Default `true`.
    pub(crate) enabled: Option<bool>,
    /// How long a waiter waits for the fill, a duration greater than 0. Default `10s`.
    #[schemars(with = "Option<DurationText>")]
    pub(crate) wait_timeout: Option<Spanned<String>>,
    /// With `storage.redis`, also coalesce across instances. Default `true`.
    pub(crate) across_instances: Option<bool>,
    /// How long a cross-instance lock lasts unless its holder renews it (every
    /// third of it, while its fetch runs), a duration greater than 0. Default `1s`.
    #[schemars(with = "Option<DurationText>")]
    pub(crate) lock_lease: Option<Spanned<String>>,
}

/// `limits:`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "limits")]
#[schemars(rename = "Limits")]
pub(crate) struct Limits {
    /// Longest request URI, at least 1; longer requests get 414. Default `8192`.
    pub(crate) max_uri_len: Option<Spanned<usize>>,
    /// Most query parameters considered for a key, at least 1. Default `64`.
    pub(crate) max_query_params: Option<Spanned<usize>>,
    /// Largest request line plus headers, a size; larger requests get 431. Default `32KiB`.
    #[schemars(with = "Option<Size>")]
    pub(crate) max_header_size: Option<Spanned<String>>,
}

/// A string that must not be shown: its `Debug` prints `***`.
#[derive(Clone, Default, Deserialize, JsonSchema)]
#[serde(transparent)]
pub(crate) struct SecretString(pub(crate) String);

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The entries of a YAML mapping in file order, keys included (with their
/// positions when `K` is [`Spanned`]).
#[derive(Debug)]
pub(crate) struct Entries<K, V>(pub(crate) Vec<(K, V)>);

impl<K, V> Default for Entries<K, V> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for Entries<K, V> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<K, V>(PhantomData<(K, V)>);

        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<K, V> {
            type Value = Entries<K, V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<K, V>, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }

        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}
