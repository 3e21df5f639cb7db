//! The default of every setting, in one place.
//!
//! `convert/` takes a value from here when a key is absent, and in place of
//! a value it reported as wrong, so that later checks still run. The doc
//! comments of `raw.rs` state each default in words, and the JSON Schema
//! carries them; `tests::the_schema_states_the_defaults_the_loader_uses`
//! holds those words to the values here.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::model::{AccessFormat, Consistency, OnInvalid, UnkeyedAction, UnknownQuery};

// The listeners.

/// `listen`.
pub(crate) const LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080);
/// `admin.listen`.
pub(crate) const ADMIN_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9090);
/// `admin.metrics_listen` has no default (no metrics listener); this is what
/// a wrong one stands in for, and the port its hints suggest.
pub(crate) const METRICS_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9091);
/// `admin.max_body`.
pub(crate) const ADMIN_MAX_BODY: usize = 1 << 20;
/// `debug_headers`.
pub(crate) const DEBUG_HEADERS: bool = false;
/// `debug_headers_force`.
pub(crate) const DEBUG_HEADERS_FORCE: bool = false;

// `upstream`.

/// `upstream.tls`.
pub(crate) const UPSTREAM_TLS: bool = false;
/// `upstream.connect_timeout`.
pub(crate) const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// `upstream.read_timeout`.
pub(crate) const UPSTREAM_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// `upstream.write_timeout`.
pub(crate) const UPSTREAM_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// `upstream.idle_timeout`.
pub(crate) const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `upstream.retries`, which is also its largest value.
pub(crate) const UPSTREAM_RETRIES: u8 = 1;

// `storage`.

/// `storage.memory.max_size`, and the memory tier of a file without `storage`.
pub(crate) const MEMORY_MAX_SIZE: usize = 256 << 20;
/// `storage.memory.max_object_size` (never above `max_size`), and
/// `storage.redis.max_object_size` without a memory tier.
pub(crate) const MAX_OBJECT_SIZE: usize = 8 << 20;
/// `storage.redis.prefix`.
pub(crate) const REDIS_PREFIX: &str = "tagcache";
/// `storage.redis.timeout`.
pub(crate) const REDIS_TIMEOUT: Duration = Duration::from_millis(25);
/// `storage.redis.connect_timeout`.
pub(crate) const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// `storage.redis.compress_above`.
pub(crate) const REDIS_COMPRESS_ABOVE: usize = 4 << 10;
/// `storage.redis.breaker.failures`.
pub(crate) const REDIS_BREAKER_FAILURES: usize = 5;
/// `storage.redis.breaker.probe_interval`.
pub(crate) const REDIS_BREAKER_PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// `storage.redis.heartbeat`.
pub(crate) const REDIS_HEARTBEAT: Duration = Duration::from_secs(1);

// `tenant`.

/// `tenant.workspace_param`.
pub(crate) const WORKSPACE_PARAM: &str = "workspace_id";
/// `tenant.workspace.header` with `tenant.jwt`.
pub(crate) const JWT_WORKSPACE_HEADER: &str = "x-workspace-id";
/// `tenant.user.header` with `tenant.jwt`.
pub(crate) const JWT_USER_HEADER: &str = "x-user-id";
/// `tenant.jwt.reload_interval`.
pub(crate) const JWT_RELOAD_INTERVAL: Duration = Duration::from_secs(60);
/// `tenant.jwt.leeway`.
pub(crate) const JWT_LEEWAY: Duration = Duration::from_secs(30);
/// `tenant.jwt.on_invalid`.
pub(crate) const JWT_ON_INVALID: OnInvalid = OnInvalid::Reject;

// `routes`.

/// `ttl` is required; this is what a wrong one stands in for.
pub(crate) const ROUTE_TTL: Duration = Duration::from_secs(1);
/// `max_ttl` of a `freshness: origin` route.
pub(crate) const ROUTE_MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// `default_ttl` has no default (the `Last-Modified` heuristic); this is what
/// a wrong one stands in for.
pub(crate) const ROUTE_DEFAULT_TTL: Duration = Duration::from_secs(1);
/// A route's `stale_while_revalidate`.
pub(crate) const ROUTE_STALE_WHILE_REVALIDATE: Duration = Duration::ZERO;
/// A route's `stale_if_error`.
pub(crate) const ROUTE_STALE_IF_ERROR: Duration = Duration::ZERO;
/// A route's `statuses` (with `freshness: config`).
pub(crate) const ROUTE_STATUSES: [u16; 1] = [200];
/// A route's `statuses` with `freshness: origin`: RFC 9110's heuristically
/// cacheable statuses ([`super::model::ORIGIN_STATUSES`]).
pub(crate) const ORIGIN_ROUTE_STATUSES: [u16; 11] = super::model::ORIGIN_STATUSES;
/// A route's `unknown_query`.
pub(crate) const UNKNOWN_QUERY: UnknownQuery = UnknownQuery::Bypass;
/// A route's `honor_client_no_cache`.
pub(crate) const HONOR_CLIENT_NO_CACHE: bool = true;
/// `key.per_user`.
pub(crate) const PER_USER: bool = false;
/// The top-level `unkeyed_headers`, which a route's own overrides.
pub(crate) const UNKEYED_ACTION: UnkeyedAction = UnkeyedAction::Strip;
/// `unkeyed_header_names`: request headers that change many origins'
/// responses without being part of the URL.
pub(crate) const UNKEYED_HEADER_NAMES: [&str; 10] = [
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-scheme",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "forwarded",
    "x-host",
];

// `purge`.

/// `purge.tag_headers`: each header and the separator of its tags.
pub(crate) const TAG_HEADERS: [(&str, char); 2] = [("surrogate-key", ' '), ("cache-tag", ',')];
/// A `purge.tag_headers` item's `separator`.
pub(crate) const TAG_SEPARATOR: char = ' ';
/// `purge.legacy_path`.
pub(crate) const LEGACY_PATH: &str = "/purge/legacy";
/// `purge.legacy_tags`: one item, this template.
pub(crate) const LEGACY_TAG: &str = "board:{workspace_id}:{board_id}";
/// `purge.consistency`.
pub(crate) const PURGE_CONSISTENCY: Consistency = Consistency::Async;
/// `purge.sync_timeout`.
pub(crate) const PURGE_SYNC_TIMEOUT: Duration = Duration::from_secs(2);

// `log`.

/// `log.level`.
pub(crate) const LOG_LEVEL: &str = "info";
/// `log.hash_identities`.
pub(crate) const LOG_HASH_IDENTITIES: bool = false;
/// `log.access.enabled`, once the block is there.
pub(crate) const ACCESS_LOG_ENABLED: bool = true;
/// `log.access.format`.
pub(crate) const ACCESS_LOG_FORMAT: AccessFormat = AccessFormat::Json;
/// `log.access.query`.
pub(crate) const ACCESS_LOG_QUERY: bool = true;

// `server`.

/// `server.threads`: one worker per CPU.
pub(crate) fn server_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
/// `server.grace_period`.
pub(crate) const GRACE_PERIOD: Duration = Duration::from_secs(10);
/// `server.write_buffer`.
pub(crate) const WRITE_BUFFER: usize = 32 << 10;
/// `server.upgrade_sock`.
pub(crate) const UPGRADE_SOCK: &str = "/tmp/tagcache-upgrade.sock";

// `coalescing`.

/// `coalescing.enabled`.
pub(crate) const COALESCING_ENABLED: bool = true;
/// `coalescing.across_instances`.
pub(crate) const COALESCING_ACROSS_INSTANCES: bool = true;
/// `coalescing.wait_timeout`.
pub(crate) const COALESCING_WAIT_TIMEOUT: Duration = Duration::from_secs(10);
/// `coalescing.lock_lease`.
pub(crate) const COALESCING_LOCK_LEASE: Duration = Duration::from_secs(1);

// `limits` and `metrics`.

/// `limits.max_uri_len`.
pub(crate) const MAX_URI_LEN: usize = 8192;
/// `limits.max_query_params`.
pub(crate) const MAX_QUERY_PARAMS: usize = 64;
/// `limits.max_header_size`.
pub(crate) const MAX_HEADER_SIZE: usize = 32 << 10;
/// `metrics.workspace_labels`: none.
pub(crate) const WORKSPACE_LABELS: usize = 0;

/// `bytes` as the config writes a size, in the largest binary unit that
/// divides it (`256MiB`), for hints that name a default.
pub(crate) fn size_text(bytes: usize) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use serde_json::Value;

    use super::*;
    use crate::config::units::{parse_duration, parse_size};

    /// The backticked values of the schema's description of `field` (in
    /// `$defs/def`, or at the top level when `def` is empty), after its
    /// word "Default".
    fn stated(schema: &Value, def: &str, field: &str) -> Vec<String> {
        let object = if def.is_empty() {
            schema
        } else {
            &schema["$defs"][def]
        };
        let description = object["properties"][field]["description"]
            .as_str()
            .unwrap_or_else(|| panic!("{def}.{field} has no description"));
        let at = description
            .find("Default")
            .or_else(|| description.find("default"))
            .unwrap_or_else(|| panic!("{def}.{field} states no default: {description:?}"));
        description[at..]
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    /// A stated text value, quoted or not.
    fn text(value: &str) -> String {
        serde_json::from_str(value).unwrap_or_else(|_| value.to_string())
    }

    /// A default as the schema states it.
    #[derive(Debug, PartialEq)]
    enum Is {
        Duration(Duration),
        Size(usize),
        Flag(bool),
        Count(usize),
        Text(String),
    }

    /// How the file spells a variant: the model's names, lowercased.
    fn word(value: impl Debug) -> String {
        format!("{value:?}").to_lowercase()
    }

    #[test]
    fn the_schema_states_the_defaults_the_loader_uses() {
        let schema: Value = serde_json::from_str(&crate::config::json_schema()).unwrap();
        let first = |def: &str, field: &str| stated(&schema, def, field)[0].clone();

        let cases = [
            (
                "Upstream.connect_timeout",
                Is::Duration(UPSTREAM_CONNECT_TIMEOUT),
            ),
            ("Upstream.read_timeout", Is::Duration(UPSTREAM_READ_TIMEOUT)),
            (
                "Upstream.write_timeout",
                Is::Duration(UPSTREAM_WRITE_TIMEOUT),
            ),
            ("Upstream.idle_timeout", Is::Duration(UPSTREAM_IDLE_TIMEOUT)),
            ("Upstream.tls", Is::Flag(UPSTREAM_TLS)),
            ("Upstream.retries", Is::Count(usize::from(UPSTREAM_RETRIES))),
            ("Admin.max_body", Is::Size(ADMIN_MAX_BODY)),
            ("debug_headers", Is::Flag(DEBUG_HEADERS)),
            ("debug_headers_force", Is::Flag(DEBUG_HEADERS_FORCE)),
            ("unkeyed_headers", Is::Text(word(UNKEYED_ACTION))),
            ("Memory.max_object_size", Is::Size(MAX_OBJECT_SIZE)),
            ("Redis.prefix", Is::Text(REDIS_PREFIX.into())),
            ("Redis.timeout", Is::Duration(REDIS_TIMEOUT)),
            ("Redis.connect_timeout", Is::Duration(REDIS_CONNECT_TIMEOUT)),
            ("Redis.compress_above", Is::Size(REDIS_COMPRESS_ABOVE)),
            ("Redis.heartbeat", Is::Duration(REDIS_HEARTBEAT)),
            ("RedisBreaker.failures", Is::Count(REDIS_BREAKER_FAILURES)),
            (
                "RedisBreaker.probe_interval",
                Is::Duration(REDIS_BREAKER_PROBE_INTERVAL),
            ),
            ("Tenant.workspace_param", Is::Text(WORKSPACE_PARAM.into())),
            ("Jwt.reload_interval", Is::Duration(JWT_RELOAD_INTERVAL)),
            ("Jwt.leeway", Is::Duration(JWT_LEEWAY)),
            ("Jwt.on_invalid", Is::Text(word(JWT_ON_INVALID))),
            ("Route.max_ttl", Is::Duration(ROUTE_MAX_TTL)),
            (
                "Route.stale_while_revalidate",
                Is::Duration(ROUTE_STALE_WHILE_REVALIDATE),
            ),
            ("Route.stale_if_error", Is::Duration(ROUTE_STALE_IF_ERROR)),
            ("Route.unknown_query", Is::Text(word(UNKNOWN_QUERY))),
            (
                "Route.honor_client_no_cache",
                Is::Flag(HONOR_CLIENT_NO_CACHE),
            ),
            ("Key.per_user", Is::Flag(PER_USER)),
            ("TagHeader.separator", Is::Text(TAG_SEPARATOR.into())),
            ("Purge.legacy_path", Is::Text(LEGACY_PATH.into())),
            ("Purge.consistency", Is::Text(word(PURGE_CONSISTENCY))),
            ("Purge.sync_timeout", Is::Duration(PURGE_SYNC_TIMEOUT)),
            ("Log.level", Is::Text(LOG_LEVEL.into())),
            ("Log.hash_identities", Is::Flag(LOG_HASH_IDENTITIES)),
            ("AccessLog.enabled", Is::Flag(ACCESS_LOG_ENABLED)),
            ("AccessLog.format", Is::Text(word(ACCESS_LOG_FORMAT))),
            ("AccessLog.query", Is::Flag(ACCESS_LOG_QUERY)),
            ("Server.grace_period", Is::Duration(GRACE_PERIOD)),
            ("Server.write_buffer", Is::Size(WRITE_BUFFER)),
            ("Server.upgrade_sock", Is::Text(UPGRADE_SOCK.into())),
            ("Coalescing.enabled", Is::Flag(COALESCING_ENABLED)),
            (
                "Coalescing.across_instances",
                Is::Flag(COALESCING_ACROSS_INSTANCES),
            ),
            (
                "Coalescing.wait_timeout",
                Is::Duration(COALESCING_WAIT_TIMEOUT),
            ),
            ("Coalescing.lock_lease", Is::Duration(COALESCING_LOCK_LEASE)),
            ("Limits.max_uri_len", Is::Count(MAX_URI_LEN)),
            ("Limits.max_query_params", Is::Count(MAX_QUERY_PARAMS)),
            ("Limits.max_header_size", Is::Size(MAX_HEADER_SIZE)),
            ("Metrics.workspace_labels", Is::Count(WORKSPACE_LABELS)),
        ];
        for (path, want) in cases {
            let (def, field) = path.split_once('.').unwrap_or(("", path));
            let stated = first(def, field);
            let got = match want {
                Is::Duration(_) => Is::Duration(parse_duration(&stated).unwrap()),
                Is::Size(_) => Is::Size(parse_size(&stated).unwrap()),
                Is::Flag(_) => Is::Flag(stated.parse().unwrap()),
                Is::Count(_) => Is::Count(stated.parse().unwrap()),
                Is::Text(_) => Is::Text(text(&stated)),
            };
            assert_eq!(got, want, "{path}");
        }

        let address = |def: &str, field: &str| text(&first(def, field)).parse::<SocketAddr>();
        assert_eq!(address("", "listen"), Ok(LISTEN));
        assert_eq!(address("Admin", "listen"), Ok(ADMIN_LISTEN));

        // Defaults stated inside a sentence or as a list.
        let memory = first("Storage", "memory");
        let memory = memory.trim_start_matches("memory: { max_size: ");
        assert_eq!(
            parse_size(memory.trim_end_matches(" }")).unwrap(),
            MEMORY_MAX_SIZE
        );
        let redis_object = stated(&schema, "Redis", "max_object_size");
        assert_eq!(
            parse_size(redis_object.last().unwrap()).unwrap(),
            MAX_OBJECT_SIZE
        );
        let headers = stated(&schema, "Identity", "header");
        assert_eq!(headers[1].to_lowercase(), JWT_WORKSPACE_HEADER);
        assert_eq!(headers[2].to_lowercase(), JWT_USER_HEADER);
        let statuses: Vec<u16> = serde_json::from_str(&first("Route", "statuses")).unwrap();
        assert_eq!(statuses, ROUTE_STATUSES);
        let names: Vec<String> = stated(&schema, "", "unkeyed_header_names")
            .iter()
            .map(|name| name.to_lowercase())
            .collect();
        assert_eq!(names, UNKEYED_HEADER_NAMES);
        let tag_headers: Vec<(String, String)> = stated(&schema, "Purge", "tag_headers")
            .chunks(2)
            .map(|pair| (pair[0].to_lowercase(), text(&pair[1])))
            .collect();
        let expected: Vec<(String, String)> = TAG_HEADERS
            .iter()
            .map(|(name, separator)| (name.to_string(), separator.to_string()))
            .collect();
        assert_eq!(tag_headers, expected);
        let legacy: Vec<String> = serde_json::from_str(&first("Purge", "legacy_tags")).unwrap();
        assert_eq!(legacy, [LEGACY_TAG]);
    }

    #[test]
    fn sizes_in_hints_read_back_as_the_same_size() {
        for bytes in [
            ADMIN_MAX_BODY,
            MEMORY_MAX_SIZE,
            MAX_OBJECT_SIZE,
            REDIS_COMPRESS_ABOVE,
            WRITE_BUFFER,
            MAX_HEADER_SIZE,
            1536,
            1000,
        ] {
            assert_eq!(parse_size(&size_text(bytes)).unwrap(), bytes, "{bytes}");
        }
        assert_eq!(size_text(MEMORY_MAX_SIZE), "256MiB");
        assert_eq!(size_text(1536), "1536");
    }
}
