//! Conversion of the raw file ([`super::raw`]) into the validated model
//! ([`super::model`]), reporting every semantic problem at its position.
//!
//! The conversion never stops early: a value with a problem is reported and
//! replaced by its default, so later checks still run. The resulting `Config`
//! is only handed out when the report has no errors.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use http::HeaderName;

use super::diagnostic::{did_you_mean, nearest, Pos, Report};
use super::model::{
    AccessFormat, AccessLogConfig, Admin, BypassCondition, BypassRule, Coalescing, Config,
    Consistency, IdentitySource, Jwt, JwtKey, KeySpec, LegacyRule, Limits, Log, MemoryStorage,
    MetricsConfig, OnInvalid, PerUserRule, Purge, RedisStorage, RedisTarget, Route, RouteMethod,
    Secret, Segment, Server, Storage, TagHeader, Template, TemplatePart, Tenant, UnkeyedAction,
    UnknownQuery, Upstream,
};
use super::raw::{self, Spanned};
use super::template;
use super::units::{parse_duration, parse_size};

const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080);
const DEFAULT_ADMIN_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9090);
const DEFAULT_METRICS_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9091);
const DEFAULT_MEMORY_SIZE: usize = 256 << 20;
const DEFAULT_MAX_OBJECT_SIZE: usize = 8 << 20;
const DEFAULT_ADMIN_MAX_BODY: usize = 1 << 20;
const DEFAULT_LEGACY_PATH: &str = "/purge/legacy";
const DEFAULT_LEGACY_TAG: &str = "board:{workspace_id}:{board_id}";
/// The fields of a legacy purge body, the only variables of `purge.legacy_tags`.
const LEGACY_FIELDS: [&str; 4] = ["workspace_id", "board_id", "filter", "pattern"];
/// The legacy body fields a `purge.legacy_tags` template uses.
fn legacy_fields(template: &Template) -> std::collections::BTreeSet<&str> {
    template
        .parts
        .iter()
        .filter_map(|p| match p {
            TemplatePart::Var(name) => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

/// Request headers that change many origins' responses without being part of
/// the URL: the default `unkeyed_header_names`.
pub(crate) const DEFAULT_UNKEYED_HEADERS: [&str; 10] = [
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
const DEFAULT_MAX_HEADER_SIZE: usize = 32 << 10;
/// The JWT algorithm names accepted in `tenant.jwt.algorithms`.
const JWT_ALGORITHMS: [&str; 12] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];
/// Longest `tenant.jwt.leeway` accepted.
const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Whether two listeners would bind the same port on a common address.
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Converts `raw` (the whole file, positioned at its root mapping), reporting every problem.
///
/// The returned config is meaningful only if `report` has no errors.
pub(crate) fn convert(raw: Spanned<raw::Config>, report: &mut Report) -> Config {
    let root = raw.pos;
    let raw = raw.value;
    let mut cx = Cx { report };

    let listen = cx.socket_addr(raw.listen.as_ref(), DEFAULT_LISTEN, "listen");
    let upstream = cx.upstream(raw.upstream, root);
    let admin = cx.admin(raw.admin, listen);
    let storage = cx.storage(raw.storage);
    let tenant = cx.tenant(raw.tenant);
    let unkeyed_default = unkeyed_action(raw.unkeyed_headers).unwrap_or_default();
    let unkeyed_headers = cx.unkeyed_header_names(raw.unkeyed_header_names);
    let debug_headers = cx.debug_headers(raw.debug_headers, raw.debug_headers_force, listen);

    let mut seen_names: HashMap<String, Pos> = HashMap::new();
    let routes = raw
        .routes
        .into_iter()
        .enumerate()
        .map(|(index, route)| cx.route(index, route, &tenant, unkeyed_default, &mut seen_names))
        .collect();

    let events = raw
        .events
        .0
        .into_iter()
        .filter_map(|(name, templates)| cx.event(name, templates))
        .collect();

    let purge = cx.purge(raw.purge, storage.redis.is_some());
    let server = cx.server(raw.server);
    let log = cx.log(raw.log);
    let state_path = raw
        .state
        .and_then(|s| s.value.path)
        .map(|p| p.value.trim().to_string())
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from);
    let coalescing = cx.coalescing(raw.coalescing);
    let limits = cx.limits(raw.limits);
    let metrics = cx.metrics(raw.metrics);

    Config {
        listen,
        upstream,
        admin,
        storage,
        tenant,
        routes,
        events,
        purge,
        server,
        log,
        state_path,
        coalescing,
        debug_headers,
        limits,
        unkeyed_headers,
        metrics,
    }
}

/// The conversion context: where problems are reported.
struct Cx<'r> {
    report: &'r mut Report,
}

/// `"a", "b"` for messages.
fn quoted_list<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("{:?}", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Cx<'_> {
    fn error(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        self.report.error(pos, message, hint);
    }

    /// Reports the required keys of the mapping at `pos` that are absent, in one
    /// message. `missing` lists each required key, whether it is present, and an
    /// example for the hint.
    fn missing_keys(&mut self, pos: Pos, what: &str, missing: &[(&str, bool, &str)]) {
        // A key reported as misspelled (`tll` for `ttl`) is not reported again as missing.
        let absent: Vec<(&str, &str)> = missing
            .iter()
            .filter(|(key, present, _)| !present && !self.report.is_misspelled(pos, key))
            .map(|(key, _, example)| (*key, *example))
            .collect();
        if absent.is_empty() {
            return;
        }
        let keys: Vec<&str> = absent.iter().map(|(key, _)| *key).collect();
        let message = if keys.len() == 1 {
            format!("{what} is missing required key {:?}", keys[0])
        } else {
            format!("{what} is missing required keys {}", quoted_list(&keys))
        };
        let examples: Vec<&str> = absent.iter().map(|(_, example)| *example).collect();
        self.error(
            pos,
            message,
            Some(format!("add {}", examples.join(" and "))),
        );
    }

    fn duration(&mut self, field: Option<&Spanned<String>>, default: Duration) -> Duration {
        let Some(field) = field else {
            return default;
        };
        match parse_duration(&field.value) {
            Ok(duration) => duration,
            Err(error) => {
                self.error(field.pos, error.message, error.hint);
                default
            }
        }
    }

    /// A duration that must be longer than zero; `what` names it in the message.
    fn positive_duration(
        &mut self,
        field: Option<&Spanned<String>>,
        default: Duration,
        what: &str,
    ) -> Duration {
        let duration = self.duration(field, default);
        match field {
            Some(field) if duration.is_zero() => {
                self.error(field.pos, format!("{what} must be longer than 0s"), None);
                default
            }
            _ => duration,
        }
    }

    /// A size that must be more than zero bytes.
    fn size(&mut self, field: Option<&Spanned<String>>, default: usize, what: &str) -> usize {
        let Some(field) = field else {
            return default;
        };
        match parse_size(&field.value) {
            Ok(0) => {
                self.error(field.pos, format!("{what} must be more than 0 bytes"), None);
                default
            }
            Ok(size) => size,
            Err(error) => {
                self.error(field.pos, error.message, error.hint);
                default
            }
        }
    }

    /// A count that must be at least 1.
    fn count(&mut self, field: Option<&Spanned<usize>>, default: usize, what: &str) -> usize {
        match field {
            Some(field) if field.value == 0 => {
                self.error(field.pos, format!("{what} must be at least 1"), None);
                default
            }
            Some(field) => field.value,
            None => default,
        }
    }

    fn socket_addr(
        &mut self,
        field: Option<&Spanned<String>>,
        default: SocketAddr,
        what: &str,
    ) -> SocketAddr {
        let Some(field) = field else {
            return default;
        };
        let text = field.value.trim();
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return addr;
        }
        let hint = if text.starts_with("localhost:") {
            "write an IP address: \"127.0.0.1\" instead of \"localhost\"".to_string()
        } else if text.parse::<u16>().is_ok() {
            format!("write an IP address and the port, e.g. \"0.0.0.0:{text}\"")
        } else {
            format!("e.g. \"{default}\"")
        };
        self.error(
            field.pos,
            format!("invalid {what} address {text:?}: expected IP:PORT"),
            Some(hint),
        );
        default
    }

    fn header_name(&mut self, field: &Spanned<String>) -> Option<HeaderName> {
        match HeaderName::from_bytes(field.value.trim().as_bytes()) {
            Ok(name) => Some(name),
            Err(_) => {
                self.error(
                    field.pos,
                    format!("invalid header name {:?}", field.value),
                    Some(
                        "header names use letters, digits and \"-\", e.g. \"X-Workspace-ID\""
                            .to_string(),
                    ),
                );
                None
            }
        }
    }

    fn secret(&mut self, field: Option<Spanned<raw::SecretString>>, what: &str) -> Option<Secret> {
        let field = field?;
        if field.value.0.is_empty() {
            // Never echo the value: there is none here, but keep the habit.
            self.error(
                field.pos,
                format!("{what} is empty"),
                Some(
                    "set it to a long random string, e.g. from `openssl rand -hex 32`".to_string(),
                ),
            );
        }
        Some(Secret::new(field.value.0))
    }

    fn upstream(&mut self, raw: Option<Spanned<raw::Upstream>>, root: Pos) -> Upstream {
        let Some(Spanned { value: raw, pos }) = raw else {
            self.missing_keys(
                root,
                "the config",
                &[(
                    "upstream",
                    false,
                    "upstream: { address: \"127.0.0.1:3000\" }",
                )],
            );
            return Upstream {
                address: String::new(),
                tls: false,
                sni: String::new(),
                connect_timeout: Duration::from_secs(2),
                read_timeout: Duration::from_secs(30),
                write_timeout: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(60),
                retries: 1,
            };
        };
        self.missing_keys(
            pos,
            "upstream",
            &[(
                "address",
                raw.address.is_some(),
                "address: \"127.0.0.1:3000\"",
            )],
        );
        let (address, host) = match &raw.address {
            Some(field) => match split_host_port(&field.value) {
                Ok(host) => (field.value.trim().to_string(), host),
                Err(hint) => {
                    self.error(
                        field.pos,
                        format!(
                            "invalid upstream address {:?}: expected HOST:PORT",
                            field.value
                        ),
                        Some(hint),
                    );
                    (String::new(), String::new())
                }
            },
            None => (String::new(), String::new()),
        };
        let sni = match raw.sni {
            Some(field) if field.value.trim().is_empty() => {
                self.error(
                    field.pos,
                    "upstream.sni is empty",
                    Some("remove it to use the host of address".to_string()),
                );
                host
            }
            Some(field) => field.value.trim().to_string(),
            None => host,
        };
        Upstream {
            address,
            tls: raw.tls.unwrap_or(false),
            sni,
            connect_timeout: self.positive_duration(
                raw.connect_timeout.as_ref(),
                Duration::from_secs(2),
                "connect_timeout",
            ),
            read_timeout: self.positive_duration(
                raw.read_timeout.as_ref(),
                Duration::from_secs(30),
                "read_timeout",
            ),
            write_timeout: self.positive_duration(
                raw.write_timeout.as_ref(),
                Duration::from_secs(30),
                "write_timeout",
            ),
            idle_timeout: self.positive_duration(
                raw.idle_timeout.as_ref(),
                Duration::from_secs(60),
                "idle_timeout",
            ),
            retries: match &raw.retries {
                Some(field) if field.value > 1 => {
                    self.error(
                        field.pos,
                        format!("upstream.retries is {}, at most 1", field.value),
                        Some(
                            "a failed request is retried at most once, on a new connection"
                                .to_string(),
                        ),
                    );
                    1
                }
                Some(field) => field.value as u8,
                None => 1,
            },
        }
    }

    fn admin(&mut self, raw: Option<Spanned<raw::Admin>>, proxy: SocketAddr) -> Admin {
        let raw = raw.map(|r| r.value).unwrap_or_default();
        let listen = self.socket_addr(raw.listen.as_ref(), DEFAULT_ADMIN_LISTEN, "admin listen");
        let metrics_listen = raw.metrics_listen.as_ref().map(|field| {
            let addr =
                self.socket_addr(Some(field), DEFAULT_METRICS_LISTEN, "admin.metrics_listen");
            for (other, name) in [(proxy, "listen"), (listen, "admin.listen")] {
                if same_socket(addr, other) {
                    self.error(
                        field.pos,
                        format!("admin.metrics_listen {addr} is the same address as {name}"),
                        Some(format!(
                            "use another port, e.g. \"{}:{}\"",
                            addr.ip(),
                            DEFAULT_METRICS_LISTEN.port()
                        )),
                    );
                }
            }
            addr
        });
        let token_given = raw.token.is_some();
        let token = self.secret(raw.token, "admin.token");
        let webhook_secret = self.secret(raw.webhook_secret, "admin.webhook_secret");
        if !listen.ip().is_loopback() && !token_given {
            if let Some(field) = &raw.listen {
                self.error(
                    field.pos,
                    "the admin listener is reachable from other hosts; set admin.token",
                    Some(format!(
                        "add token: \"${{TAGCACHE_ADMIN_TOKEN}}\" under admin, or listen on \"127.0.0.1:{}\"",
                        listen.port()
                    )),
                );
            }
        }
        Admin {
            listen,
            token,
            max_body: self.size(
                raw.max_body.as_ref(),
                DEFAULT_ADMIN_MAX_BODY,
                "admin.max_body",
            ),
            webhook_secret,
            metrics_listen,
        }
    }

    fn storage(&mut self, raw: Option<Spanned<raw::Storage>>) -> Storage {
        let Some(Spanned { value: raw, pos }) = raw else {
            return Storage {
                memory: Some(MemoryStorage {
                    max_size: DEFAULT_MEMORY_SIZE,
                    max_object_size: DEFAULT_MAX_OBJECT_SIZE,
                    per_workspace_max: None,
                }),
                redis: None,
            };
        };
        let Some(Spanned {
            value: memory,
            pos: memory_pos,
        }) = raw.memory
        else {
            if raw.redis.is_some() {
                // Redis alone, for small instances.
                let redis = self.redis(raw.redis, None);
                return Storage {
                    memory: None,
                    redis,
                };
            }
            self.error(
                pos,
                "storage has no tier: nothing could be cached",
                Some(
                    "add memory: { max_size: 256MiB }, or remove storage for that default"
                        .to_string(),
                ),
            );
            return Storage {
                memory: None,
                redis: None,
            };
        };
        self.missing_keys(
            memory_pos,
            "storage.memory",
            &[("max_size", memory.max_size.is_some(), "max_size: 256MiB")],
        );
        let max_size = self.size(memory.max_size.as_ref(), DEFAULT_MEMORY_SIZE, "max_size");
        let max_object_size = match &memory.max_object_size {
            Some(field) => {
                let size = self.size(Some(field), DEFAULT_MAX_OBJECT_SIZE, "max_object_size");
                if size > max_size {
                    self.error(
                        field.pos,
                        format!("max_object_size ({size} bytes) is larger than max_size ({max_size} bytes)"),
                        Some("an object never fits; lower max_object_size or raise max_size".to_string()),
                    );
                }
                size
            }
            // The default never exceeds the store itself.
            None => DEFAULT_MAX_OBJECT_SIZE.min(max_size),
        };
        let per_workspace_max = memory.per_workspace_max.as_ref().map(|field| {
            let size = self.size(Some(field), max_size, "per_workspace_max");
            if size > max_size {
                self.error(
                    field.pos,
                    format!("per_workspace_max ({size} bytes) is larger than max_size ({max_size} bytes)"),
                    Some("a quota above the whole store never applies; lower it or remove it".to_string()),
                );
            } else if size < max_object_size {
                self.report.warning(
                    field.pos,
                    format!("per_workspace_max ({size} bytes) is smaller than max_object_size ({max_object_size} bytes)"),
                    Some("the largest responses can then never be stored".to_string()),
                );
            }
            size
        });
        let redis = self.redis(raw.redis, Some(max_object_size));
        Storage {
            memory: Some(MemoryStorage {
                max_size,
                max_object_size,
                per_workspace_max,
            }),
            redis,
        }
    }

    /// `storage.redis`; `memory_max_object` is the memory tier's limit, the default here.
    fn redis(
        &mut self,
        raw: Option<Spanned<raw::Redis>>,
        memory_max_object: Option<usize>,
    ) -> Option<RedisStorage> {
        let Spanned { value: raw, pos } = raw?;
        let url_hint = "e.g. url: \"${REDIS_URL}\" with REDIS_URL=redis://127.0.0.1:6379/0 (rediss:// for TLS, unix:///run/redis.sock for a local socket), or cluster: [\"10.0.0.1:6379\", ...]";
        let target = match (raw.url, raw.cluster) {
            (Some(_), Some(cluster)) => {
                self.error(
                    cluster.pos,
                    "storage.redis has both url and cluster",
                    Some("keep url for one server, or cluster for a Redis Cluster".to_string()),
                );
                None
            }
            (Some(url), None) => {
                // Never echo the URL: it may carry a password.
                if redis::Client::open(url.value.0.as_str()).is_err() {
                    self.error(
                        url.pos,
                        "storage.redis.url is not a Redis URL",
                        Some(url_hint.to_string()),
                    );
                }
                Some(RedisTarget::Server(Secret::new(url.value.0)))
            }
            (None, Some(cluster)) => {
                if cluster.value.is_empty() {
                    self.error(
                        cluster.pos,
                        "storage.redis.cluster lists no node",
                        Some(
                            "list one or more seed nodes, e.g. [\"10.0.0.1:6379\", \"10.0.0.2:6379\"]"
                                .to_string(),
                        ),
                    );
                }
                let mut nodes = Vec::with_capacity(cluster.value.len());
                for node in cluster.value {
                    let text = node.value.0.trim();
                    let ok = if text.contains("://") {
                        redis::Client::open(text).is_ok()
                    } else {
                        split_host_port(text).is_ok()
                    };
                    if !ok {
                        self.error(
                            node.pos,
                            "storage.redis.cluster node is not host:port or a Redis URL",
                            Some(
                                "e.g. \"10.0.0.1:6379\" or \"rediss://10.0.0.1:6380\"".to_string(),
                            ),
                        );
                    }
                    nodes.push(Secret::new(text));
                }
                Some(RedisTarget::Cluster(nodes))
            }
            (None, None) => {
                self.missing_keys(
                    pos,
                    "storage.redis",
                    &[("url", false, "url: \"${REDIS_URL}\"")],
                );
                None
            }
        };
        let prefix = match raw.prefix {
            None => "tagcache".to_string(),
            Some(field) => {
                let p = field.value.trim();
                let valid = !p.is_empty()
                    && p.len() <= 64
                    && p.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')
                    });
                if !valid {
                    self.error(
                        field.pos,
                        format!("invalid storage.redis.prefix {p:?}"),
                        Some(
                            "use 1 to 64 letters, digits, \"_\", \"-\", \".\" or \":\", e.g. \"tagcache-prod\""
                                .to_string(),
                        ),
                    );
                }
                p.to_string()
            }
        };
        let timeout = self.positive_duration(
            raw.timeout.as_ref(),
            Duration::from_millis(25),
            "storage.redis.timeout",
        );
        let connect_timeout = self.positive_duration(
            raw.connect_timeout.as_ref(),
            Duration::from_secs(1),
            "storage.redis.connect_timeout",
        );
        let compress_above = self.size(
            raw.compress_above.as_ref(),
            4 << 10,
            "storage.redis.compress_above",
        );
        let max_object_size = self.size(
            raw.max_object_size.as_ref(),
            memory_max_object.unwrap_or(DEFAULT_MAX_OBJECT_SIZE),
            "storage.redis.max_object_size",
        );
        let breaker = raw.breaker.map(|b| b.value).unwrap_or_default();
        let breaker_failures = self.count(
            breaker.failures.as_ref(),
            5,
            "storage.redis.breaker.failures",
        );
        let probe_interval = self.positive_duration(
            breaker.probe_interval.as_ref(),
            Duration::from_secs(1),
            "storage.redis.breaker.probe_interval",
        );
        let heartbeat = self.positive_duration(
            raw.heartbeat.as_ref(),
            Duration::from_secs(1),
            "storage.redis.heartbeat",
        );
        Some(RedisStorage {
            target: target?,
            prefix,
            timeout,
            connect_timeout,
            compress_above,
            max_object_size,
            breaker_failures: u32::try_from(breaker_failures).unwrap_or(u32::MAX),
            probe_interval,
            heartbeat,
        })
    }

    fn tenant(&mut self, raw: Option<Spanned<raw::Tenant>>) -> Tenant {
        let Some(Spanned {
            value: mut raw,
            pos,
        }) = raw
        else {
            return Tenant::default();
        };
        if let Some(jwt) = raw.jwt.take() {
            return self.jwt_tenant(pos, raw, jwt);
        }
        if let Some(field) = &raw.workspace_param {
            self.error(
                field.pos,
                "tenant.workspace_param needs tenant.jwt",
                Some("it names the path parameter checked against the token; remove it in header mode".to_string()),
            );
        }
        let mut headers = Vec::new();
        let mut identity =
            |cx: &mut Self, field: Option<Spanned<raw::Identity>>, what: &str, example: &str| {
                let Spanned { value, pos } = field?;
                if let Some(claim) = &value.claim {
                    cx.error(
                        claim.pos,
                        format!("{what}.claim needs tenant.jwt"),
                        Some(
                            "add tenant.jwt to verify tokens, or read the identity from a header"
                                .to_string(),
                        ),
                    );
                }
                cx.missing_keys(pos, what, &[("header", value.header.is_some(), example)]);
                let header = value.header?;
                let name = cx.header_name(&header)?;
                headers.push(header.value.trim().to_string());
                Some(IdentitySource::Header(name))
            };
        let workspace = identity(
            self,
            raw.workspace,
            "tenant.workspace",
            "header: X-Workspace-ID",
        );
        let user = identity(self, raw.user, "tenant.user", "header: X-User-ID");
        if !headers.is_empty() {
            self.report.warning(
                pos,
                format!(
                    "tenant identity is trusted from the request header{} {}; this is only safe behind a gateway that sets or overwrites {}",
                    if headers.len() == 1 { "" } else { "s" },
                    headers.join(" and "),
                    if headers.len() == 1 { "it" } else { "them" },
                ),
                Some("make sure clients cannot reach tagcache without going through that gateway".to_string()),
            );
        }
        Tenant {
            workspace,
            user,
            jwt: None,
        }
    }

    /// `tenant` with `jwt`: identities from verified claims; the headers
    /// only name (and must agree with) what the token allows.
    fn jwt_tenant(&mut self, pos: Pos, raw: raw::Tenant, jwt: Spanned<raw::Jwt>) -> Tenant {
        let identity = |cx: &mut Self,
                        field: Option<Spanned<raw::Identity>>,
                        what: &str,
                        claim_example: &str,
                        default_header: &'static str| {
            let Spanned { value, pos } = field?;
            cx.missing_keys(
                pos,
                what,
                &[("claim", value.claim.is_some(), claim_example)],
            );
            let claim = value.claim.and_then(|c| {
                let name = c.value.trim().to_string();
                if name.is_empty() {
                    cx.error(
                        c.pos,
                        format!("{what}.claim is empty"),
                        Some(claim_example.to_string()),
                    );
                    None
                } else {
                    Some(name)
                }
            });
            let header = match &value.header {
                Some(h) => cx.header_name(h),
                None => Some(HeaderName::from_static(default_header)),
            };
            Some((claim, header))
        };
        let workspace = identity(
            self,
            raw.workspace,
            "tenant.workspace",
            "claim: workspace_id",
            "x-workspace-id",
        );
        let user = identity(self, raw.user, "tenant.user", "claim: sub", "x-user-id");
        if workspace.is_none() {
            self.error(
                pos,
                "tenant.jwt needs tenant.workspace to name the workspace claim",
                Some("add workspace: { claim: workspace_id }".to_string()),
            );
        }
        let workspace_param = match raw.workspace_param {
            Some(field) if field.value.trim().is_empty() => {
                self.error(
                    field.pos,
                    "tenant.workspace_param is empty",
                    Some("e.g. workspace_param: workspace_id".to_string()),
                );
                "workspace_id".to_string()
            }
            Some(field) => field.value.trim().to_string(),
            None => "workspace_id".to_string(),
        };
        let (workspace_claim, workspace_header) = workspace.unwrap_or((None, None));
        let (user_claim, user_header) = match user {
            Some((claim, header)) => (claim, header),
            None => (None, None),
        };
        let jwt = self.jwt(
            jwt,
            workspace_claim.unwrap_or_default(),
            user_claim,
            workspace_param,
        );
        Tenant {
            workspace: workspace_header.map(IdentitySource::Header),
            user: user_header.map(IdentitySource::Header),
            jwt,
        }
    }

    fn jwt(
        &mut self,
        raw: Spanned<raw::Jwt>,
        workspace_claim: String,
        user_claim: Option<String>,
        workspace_param: String,
    ) -> Option<Jwt> {
        use jsonwebtoken::{Algorithm, AlgorithmFamily};
        let Spanned { value: raw, pos } = raw;
        self.missing_keys(
            pos,
            "tenant.jwt",
            &[(
                "algorithms",
                raw.algorithms.is_some(),
                "algorithms: [HS256]",
            )],
        );
        let mut algorithms: Vec<Algorithm> = Vec::new();
        let mut ok = true;
        let mut mixed = false;
        if let Some(list) = &raw.algorithms {
            if list.value.0.is_empty() {
                self.error(
                    list.pos,
                    "tenant.jwt.algorithms is empty",
                    Some("e.g. algorithms: [RS256]".to_string()),
                );
                ok = false;
            }
            for name in &list.value.0 {
                let text = name.value.trim();
                match text.parse::<Algorithm>() {
                    Ok(a) if JWT_ALGORITHMS.contains(&text) => {
                        if !algorithms.contains(&a) {
                            algorithms.push(a);
                        }
                    }
                    _ if text.eq_ignore_ascii_case("none") => {
                        self.error(
                            name.pos,
                            "\"none\" is never accepted: unsigned tokens would let anyone claim any workspace",
                            Some("name the algorithm your tokens are signed with, e.g. HS256 or RS256".to_string()),
                        );
                        ok = false;
                    }
                    _ => {
                        let hint = did_you_mean(text, JWT_ALGORITHMS)
                            .map_or(String::new(), |m| format!("{m} "));
                        self.error(
                            name.pos,
                            format!("unknown JWT algorithm {text:?}"),
                            Some(format!(
                                "{hint}algorithms are {}",
                                JWT_ALGORITHMS.join(", ")
                            )),
                        );
                        ok = false;
                    }
                }
            }
            if algorithms
                .iter()
                .any(|a| a.family() != algorithms[0].family())
            {
                self.error(
                    list.pos,
                    "tenant.jwt.algorithms mixes key types",
                    Some("list algorithms of one family (HS*, RS*/PS*, ES* or EdDSA): one key verifies them all, and mixing HMAC with public keys opens algorithm confusion".to_string()),
                );
                ok = false;
                mixed = true;
            }
        } else {
            ok = false;
        }
        // With mixed families, whether the key fits is moot: that is reported already.
        let family = algorithms.first().map(|a| a.family()).filter(|_| !mixed);
        let sources: Vec<&str> = [
            raw.secret.as_ref().map(|_| "secret"),
            raw.public_key_file.as_ref().map(|_| "public_key_file"),
            raw.jwks_file.as_ref().map(|_| "jwks_file"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if sources.len() != 1 {
            self.error(
                pos,
                if sources.is_empty() {
                    "tenant.jwt has no key".to_string()
                } else {
                    format!("tenant.jwt has more than one key ({})", sources.join(", "))
                },
                Some("set exactly one of secret (HS*), public_key_file or jwks_file".to_string()),
            );
            ok = false;
        }
        let base = std::path::Path::new(self.report.file())
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let read =
            |cx: &mut Self, field: &Spanned<String>| -> Option<(std::path::PathBuf, Vec<u8>)> {
                let path = base.join(field.value.trim());
                match std::fs::read(&path) {
                    Ok(bytes) => Some((path, bytes)),
                    Err(e) => {
                        cx.error(
                            field.pos,
                            format!("cannot read {}: {e}", path.display()),
                            Some("paths are relative to the config file".to_string()),
                        );
                        None
                    }
                }
            };
        let reload_interval = self.positive_duration(
            raw.reload_interval.as_ref(),
            Duration::from_secs(60),
            "tenant.jwt.reload_interval",
        );
        if let (Some(field), None) = (&raw.reload_interval, &raw.jwks_file) {
            self.error(field.pos, "reload_interval only applies to jwks_file", None);
        }
        let mut key = None;
        if let Some(secret) = raw.secret {
            let secret_pos = secret.pos;
            let s = self.secret(Some(secret), "tenant.jwt.secret");
            match family {
                Some(AlgorithmFamily::Hmac) | None => {
                    let need = algorithms
                        .iter()
                        .map(|a| match a {
                            Algorithm::HS384 => 48,
                            Algorithm::HS512 => 64,
                            _ => 32,
                        })
                        .max()
                        .unwrap_or(32);
                    if let Some(s) = &s {
                        // Never echo the value; its length is enough to act on.
                        if !s.expose().is_empty() && s.expose().len() < need {
                            self.error(
                                secret_pos,
                                format!("tenant.jwt.secret is {} bytes; {} needs at least {need}", s.expose().len(), algorithms.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join("/")),
                                Some("a shorter HMAC key can be brute-forced offline from any token; use e.g. `openssl rand -hex 32`".to_string()),
                            );
                        }
                    }
                    key = s.map(JwtKey::Secret);
                }
                Some(_) => {
                    self.error(
                        secret_pos,
                        format!("{:?} verifies with a public key, not a secret", algorithms[0]),
                        Some("use public_key_file or jwks_file; a secret only goes with HS256/HS384/HS512".to_string()),
                    );
                    ok = false;
                }
            }
        }
        for (field, is_jwks) in [(&raw.public_key_file, false), (&raw.jwks_file, true)] {
            let Some(field) = field else { continue };
            if family == Some(AlgorithmFamily::Hmac) {
                self.error(
                    field.pos,
                    format!("{:?} verifies with a shared secret, not a public key", algorithms[0]),
                    Some("use secret: \"${JWT_SECRET}\", or list the public-key algorithm your tokens use (e.g. RS256)".to_string()),
                );
                ok = false;
                continue;
            }
            let Some((path, bytes)) = read(self, field) else {
                ok = false;
                continue;
            };
            let candidate = if is_jwks {
                JwtKey::Jwks {
                    path,
                    reload_interval,
                    initial: bytes,
                }
            } else {
                JwtKey::PublicKey { path, pem: bytes }
            };
            if ok {
                let material = match &candidate {
                    JwtKey::Secret(_) => crate::jwt_keys::Material::Secret,
                    JwtKey::PublicKey { pem, .. } => crate::jwt_keys::Material::Pem(pem),
                    JwtKey::Jwks { initial, .. } => crate::jwt_keys::Material::Jwks(initial),
                };
                if let Err(e) = crate::jwt_keys::check(&algorithms, material) {
                    self.error(field.pos, format!("{}: {e}", field.value.trim()), None);
                    ok = false;
                }
            }
            key = Some(candidate);
        }
        let list =
            |cx: &mut Self, field: Option<Spanned<raw::OneOrMany<Spanned<String>>>>, what: &str| {
                let Some(field) = field else {
                    return Vec::new();
                };
                let values: Vec<String> = field.value.0.into_iter().map(|v| v.value).collect();
                if values.is_empty() || values.iter().any(|v| v.trim().is_empty()) {
                    cx.error(
                        field.pos,
                        format!("tenant.jwt.{what} has an empty value"),
                        None,
                    );
                }
                values
            };
        let issuer = list(self, raw.issuer, "issuer");
        let audience = list(self, raw.audience, "audience");
        let leeway = self.duration(raw.leeway.as_ref(), Duration::from_secs(30));
        if let Some(field) = &raw.leeway {
            if leeway > MAX_LEEWAY {
                self.error(
                    field.pos,
                    format!("tenant.jwt.leeway is over {}s", MAX_LEEWAY.as_secs()),
                    Some(
                        "leeway covers clock skew; a long one keeps expired tokens valid"
                            .to_string(),
                    ),
                );
            }
        }
        let on_invalid = match raw.on_invalid {
            Some(raw::OnInvalid::Pass) => OnInvalid::Pass,
            Some(raw::OnInvalid::Reject) | None => OnInvalid::Reject,
        };
        let key = key.filter(|_| ok)?;
        Some(Jwt {
            algorithms,
            key,
            issuer,
            audience,
            leeway,
            on_invalid,
            workspace_claim,
            user_claim,
            workspace_param,
        })
    }

    /// `debug_headers`, refused on a listener other hosts can reach unless forced.
    fn debug_headers(
        &mut self,
        raw: Option<Spanned<bool>>,
        force: Option<bool>,
        listen: SocketAddr,
    ) -> bool {
        let Some(field) = raw else {
            return false;
        };
        if field.value && !listen.ip().is_loopback() && force != Some(true) {
            self.error(
                field.pos,
                format!("debug_headers exposes cache keys (workspaces, users, query) to every client, and listen {listen} is reachable from other hosts"),
                Some("turn it off, listen on loopback, or add debug_headers_force: true if you really mean it".to_string()),
            );
        }
        field.value
    }

    fn unkeyed_header_names(
        &mut self,
        raw: Option<Spanned<Vec<Spanned<String>>>>,
    ) -> Vec<HeaderName> {
        let Some(list) = raw else {
            return DEFAULT_UNKEYED_HEADERS
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect();
        };
        let mut out: Vec<HeaderName> = list
            .value
            .iter()
            .filter_map(|h| self.header_name(h))
            .collect();
        out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        out.dedup();
        out
    }

    fn route(
        &mut self,
        index: usize,
        raw: Spanned<raw::Route>,
        tenant: &Tenant,
        unkeyed_default: UnkeyedAction,
        seen_names: &mut HashMap<String, Pos>,
    ) -> Route {
        let Spanned { value: raw, pos } = raw;
        let label = match &raw.name {
            Some(name) if !name.value.is_empty() => format!("route {:?}", name.value),
            _ => format!("route #{}", index + 1),
        };
        self.missing_keys(
            pos,
            &label,
            &[
                ("name", raw.name.is_some(), "name: contact_list"),
                (
                    "match",
                    raw.match_.is_some(),
                    "match: \"GET /api/boards/{board_id}/contacts\"",
                ),
                ("ttl", raw.ttl.is_some(), "ttl: 180s"),
            ],
        );

        let name = match raw.name {
            Some(field) => self.route_name(field, seen_names),
            None => String::new(),
        };
        let (method, segments) = match &raw.match_ {
            Some(field) => match parse_match(&field.value) {
                Ok(parsed) => parsed,
                Err((message, hint)) => {
                    self.error(field.pos, message, hint);
                    (RouteMethod::Get, Vec::new())
                }
            },
            None => (RouteMethod::Get, Vec::new()),
        };
        let params: Vec<String> = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(p) => Some(p.clone()),
                Segment::Literal(_) => None,
            })
            .collect();

        let ttl = self.positive_duration(raw.ttl.as_ref(), Duration::from_secs(1), "ttl");
        let stale_while_revalidate =
            self.duration(raw.stale_while_revalidate.as_ref(), Duration::ZERO);
        let stale_if_error = self.duration(raw.stale_if_error.as_ref(), Duration::ZERO);

        let key_pos = raw.key.as_ref().map(|k| k.pos);
        let key = raw.key.map(|k| k.value).unwrap_or_default();
        // When key.query was unusable or misspelled, checks against it would only
        // repeat that error.
        let query_usable = match &key.query {
            Some(q) => !self.report.is_poisoned(q.pos),
            None => key_pos.is_none_or(|pos| !self.report.is_misspelled(pos, "query")),
        };
        let mut query: Vec<String> = key
            .query
            .as_ref()
            .map(|q| {
                q.value
                    .iter()
                    .map(|name| name.value.trim().to_string())
                    .collect()
            })
            .unwrap_or_default();
        if let Some(q) = &key.query {
            for name in &q.value {
                if name.value.trim().is_empty() {
                    self.error(
                        name.pos,
                        format!("empty query parameter name in key.query of {label}"),
                        None,
                    );
                }
            }
        }
        query.retain(|q| !q.is_empty());
        query.sort();
        query.dedup();
        let scope = RouteScope {
            label: &label,
            params: &params,
            query: &query,
            query_usable,
            tenant,
        };

        let mut defaults = std::collections::BTreeMap::new();
        for (param, value) in key.defaults.0 {
            if self.check_in_query(&scope, &param, "default") {
                defaults.insert(param.value, value.value);
            }
        }

        let mut per_user_when = Vec::new();
        if let Some(rules) = key.per_user_when {
            if !rules.value.0.is_empty() {
                self.require_user(&scope, rules.pos, "key.per_user_when");
            }
            for (param, values) in rules.value.0 {
                if !self.check_in_query(&scope, &param, "per_user_when parameter") {
                    continue;
                }
                if values.0.is_empty() {
                    self.error(
                        param.pos,
                        format!("per_user_when {:?} lists no values", param.value),
                        Some(format!("e.g. {}: [assigned_to_me]", param.value)),
                    );
                }
                per_user_when.push(PerUserRule {
                    param: param.value,
                    values: values.0.into_iter().map(|v| v.value).collect(),
                });
            }
        }
        let per_user = match key.per_user {
            Some(field) if field.value => {
                self.require_user(&scope, field.pos, "key.per_user");
                true
            }
            _ => false,
        };

        let bypass_when = raw
            .bypass_when
            .into_iter()
            .filter_map(|rule| self.bypass_rule(&scope, rule))
            .collect();
        let tags = raw
            .tags
            .iter()
            .filter_map(|source| self.route_template(&scope, source))
            .collect();
        let statuses = self.statuses(raw.statuses, &label);
        let vary = self.vary(raw.vary, &scope);

        let mut route = Route {
            name,
            method,
            segments,
            ttl,
            stale_while_revalidate,
            stale_if_error,
            key: KeySpec {
                query,
                defaults,
                per_user_when,
                per_user,
            },
            unknown_query: match raw.unknown_query {
                Some(raw::UnknownQuery::Ignore) => UnknownQuery::Ignore,
                Some(raw::UnknownQuery::Bypass) | None => UnknownQuery::Bypass,
            },
            bypass_when,
            tags,
            statuses,
            honor_client_no_cache: raw.honor_client_no_cache.unwrap_or(true),
            unkeyed_headers: unkeyed_action(raw.unkeyed_headers).unwrap_or(unkeyed_default),
            vary,
            key_fingerprint: [0; 8],
        };
        route.key_fingerprint = route.key_definition(tenant);
        route
    }

    /// `route.vary`: header names; identity headers are refused, since the
    /// key already holds the verified (or trusted) identity.
    fn vary(
        &mut self,
        raw: Option<Spanned<Vec<Spanned<String>>>>,
        scope: &RouteScope<'_>,
    ) -> Vec<HeaderName> {
        let Some(list) = raw else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for field in &list.value {
            let Some(name) = self.header_name(field) else {
                continue;
            };
            let identity = |s: &Option<IdentitySource>| matches!(s, Some(IdentitySource::Header(h)) if *h == name);
            if name == http::header::AUTHORIZATION
                || name == http::header::COOKIE
                || identity(&scope.tenant.workspace)
                || identity(&scope.tenant.user)
            {
                self.error(
                    field.pos,
                    format!("{} cannot be in vary of {}", field.value.trim(), scope.label),
                    Some("responses that depend on who asks are keyed per workspace, or per user with key.per_user; a response varying on credentials is never stored".to_string()),
                );
                continue;
            }
            if name != http::header::ACCEPT_ENCODING && !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }

    fn route_name(&mut self, field: Spanned<String>, seen: &mut HashMap<String, Pos>) -> String {
        let name = field.value;
        if name.is_empty() {
            self.error(field.pos, "route name is empty", None);
        } else if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            self.error(
                field.pos,
                format!("route name {name:?} may only contain letters, digits, \"_\" and \"-\""),
                Some(
                    "route names appear in cache keys and metrics, e.g. \"contact_list\""
                        .to_string(),
                ),
            );
        } else if let Some(first) = seen.get(&name) {
            self.error(
                field.pos,
                format!("duplicate route name {name:?}"),
                Some(format!(
                    "the first route named {name:?} is at line {}; route names must be unique",
                    first.line
                )),
            );
        } else {
            seen.insert(name.clone(), field.pos);
        }
        name
    }

    /// Whether `param` is in `key.query`; reports it if not.
    fn check_in_query(
        &mut self,
        scope: &RouteScope<'_>,
        param: &Spanned<String>,
        what: &str,
    ) -> bool {
        if scope.query.contains(&param.value) {
            return true;
        }
        if scope.query_usable {
            self.error(
                param.pos,
                format!(
                    "{what} {:?} is not in key.query of {}",
                    param.value, scope.label
                ),
                Some(scope.query_hint(&param.value)),
            );
        }
        false
    }

    fn require_user(&mut self, scope: &RouteScope<'_>, pos: Pos, what: &str) {
        if scope.tenant.user.is_none() {
            self.error(
                pos,
                format!("{what} needs the user identity, but tenant.user is not set"),
                Some("add tenant: { user: { header: X-User-ID } }".to_string()),
            );
        }
    }

    fn bypass_rule(
        &mut self,
        scope: &RouteScope<'_>,
        rule: Spanned<raw::BypassRule>,
    ) -> Option<BypassRule> {
        let Spanned { value: rule, pos } = rule;
        let mut conditions: Vec<(&str, Pos, BypassCondition)> = Vec::new();
        if let Some(n) = &rule.greater_than {
            conditions.push(("greater_than", n.pos, BypassCondition::GreaterThan(n.value)));
        }
        if let Some(n) = &rule.less_than {
            conditions.push(("less_than", n.pos, BypassCondition::LessThan(n.value)));
        }
        if let Some(Spanned {
            value: values,
            pos: at,
        }) = rule.equals
        {
            let values: Vec<String> = values.0.into_iter().map(|v| v.value).collect();
            if values.is_empty() {
                self.error(
                    at,
                    "equals lists no values",
                    Some("e.g. equals: [archived, closed]".to_string()),
                );
            }
            conditions.push(("equals", at, BypassCondition::Equals(values)));
        }
        if let Some(present) = &rule.present {
            if !present.value {
                self.error(
                    present.pos,
                    "present: false never bypasses",
                    Some("write present: true, or remove the rule".to_string()),
                );
            }
            conditions.push(("present", present.pos, BypassCondition::Present));
        }
        for (name, at, condition) in &conditions {
            if let BypassCondition::GreaterThan(n) | BypassCondition::LessThan(n) = condition {
                if !n.is_finite() {
                    self.error(*at, format!("{name} must be a finite number"), None);
                }
            }
        }

        let Some(query) = rule.query else {
            self.missing_keys(
                pos,
                "bypass_when rule",
                &[("query", false, "query: pageSize")],
            );
            return None;
        };
        let in_query = self.check_in_query(scope, &query, "bypass_when parameter");
        let names: Vec<&str> = conditions.iter().map(|(name, _, _)| *name).collect();
        match conditions.len() {
            0 => {
                self.error(
                    pos,
                    format!("bypass_when rule on {:?} has no condition", query.value),
                    Some("add one of greater_than, less_than, equals or present".to_string()),
                );
                None
            }
            1 if in_query => conditions.pop().map(|(_, _, when)| BypassRule {
                param: query.value,
                when,
            }),
            1 => None,
            _ => {
                self.error(
                    pos,
                    format!(
                        "bypass_when rule on {:?} has more than one condition ({})",
                        query.value,
                        names.join(", ")
                    ),
                    Some(
                        "write one rule per condition; a request bypasses when any rule matches"
                            .to_string(),
                    ),
                );
                None
            }
        }
    }

    fn statuses(&mut self, raw: Option<Spanned<Vec<Spanned<i64>>>>, label: &str) -> Vec<u16> {
        let Some(Spanned { value, pos }) = raw else {
            return vec![200];
        };
        if value.is_empty() {
            self.error(
                pos,
                format!("statuses of {label} is empty: nothing would be stored"),
                Some("remove it for the default [200]".to_string()),
            );
            return vec![200];
        }
        let mut statuses = Vec::new();
        for status in value {
            if let Some(code) = u16::try_from(status.value)
                .ok()
                .filter(|c| (200..=599).contains(c))
            {
                statuses.push(code);
            } else {
                self.error(
                    status.pos,
                    format!(
                        "status {} cannot be stored: statuses are from 200 to 599",
                        status.value
                    ),
                    None,
                );
            }
        }
        statuses.sort_unstable();
        statuses.dedup();
        statuses
    }

    fn template(&mut self, source: &Spanned<String>) -> Option<Template> {
        match template::parse(&source.value) {
            Ok(template) => Some(template),
            Err((message, hint)) => {
                self.error(source.pos, message, hint);
                None
            }
        }
    }

    fn route_template(
        &mut self,
        scope: &RouteScope<'_>,
        source: &Spanned<String>,
    ) -> Option<Template> {
        let template = self.template(source)?;
        for part in &template.parts {
            if let Some((message, hint)) = scope.check_part(part) {
                self.error(source.pos, message, Some(hint));
                return None;
            }
        }
        Some(template)
    }

    /// An event template: variables are fields of the event body. `{workspace}`
    /// and `{user}` are kept as such (the event's workspace and user); only
    /// `{query.*}` has no meaning without a request.
    fn event_template(&mut self, event: &str, source: &Spanned<String>) -> Option<Template> {
        let template = self.template(source)?;
        for part in &template.parts {
            if let TemplatePart::Query(name) = part {
                self.error(
                    source.pos,
                    format!("event {event:?} cannot use \"{{query.{name}}}\": events have no query string"),
                    Some(format!(
                        "event templates use fields of the event body, e.g. \"{{{name}}}\" or \"{{workspace_id}}\""
                    )),
                );
                return None;
            }
        }
        Some(template)
    }

    fn event(
        &mut self,
        name: Spanned<String>,
        templates: Vec<Spanned<String>>,
    ) -> Option<(String, Vec<Template>)> {
        if name.value.trim().is_empty() {
            self.error(
                name.pos,
                "event name is empty",
                Some("e.g. \"contact:moved\"".to_string()),
            );
            return None;
        }
        let templates = templates
            .iter()
            .filter_map(|source| self.event_template(&name.value, source))
            .collect();
        Some((name.value, templates))
    }

    fn purge(&mut self, raw: Option<Spanned<raw::Purge>>, has_redis: bool) -> Purge {
        let raw = raw.map(|r| r.value).unwrap_or_default();
        let consistency = match &raw.consistency {
            None => Consistency::Async,
            Some(field) => {
                if field.value == raw::Consistency::Sync && !has_redis {
                    self.report.warning(
                        field.pos,
                        "purge.consistency: sync has no effect without storage.redis",
                        Some(
                            "one instance applies every purge before answering anyway".to_string(),
                        ),
                    );
                }
                match field.value {
                    raw::Consistency::Async => Consistency::Async,
                    raw::Consistency::Sync => Consistency::Sync,
                }
            }
        };
        let sync_timeout = self.positive_duration(
            raw.sync_timeout.as_ref(),
            Duration::from_secs(2),
            "purge.sync_timeout",
        );
        let tag_headers = match raw.tag_headers {
            None => vec![
                TagHeader {
                    name: HeaderName::from_static("surrogate-key"),
                    separator: ' ',
                },
                TagHeader {
                    name: HeaderName::from_static("cache-tag"),
                    separator: ',',
                },
            ],
            Some(headers) => headers
                .into_iter()
                .filter_map(|h| self.tag_header(h))
                .collect(),
        };
        let legacy_path = match raw.legacy_path {
            Some(field) if !field.value.starts_with('/') => {
                self.error(
                    field.pos,
                    format!("purge.legacy_path {:?} must start with \"/\"", field.value),
                    Some(format!("e.g. {DEFAULT_LEGACY_PATH:?}")),
                );
                DEFAULT_LEGACY_PATH.to_string()
            }
            Some(field) => field.value,
            None => DEFAULT_LEGACY_PATH.to_string(),
        };
        let legacy_tags = match raw.legacy_tags {
            None => template::parse(DEFAULT_LEGACY_TAG)
                .into_iter()
                .map(|t| LegacyRule {
                    alternatives: vec![t],
                })
                .collect(),
            Some(rules) => rules
                .into_iter()
                .filter_map(|r| self.legacy_rule(r))
                .collect(),
        };
        Purge {
            tag_headers,
            legacy_path,
            legacy_tags,
            consistency,
            sync_timeout,
        }
    }

    fn tag_header(&mut self, raw: Spanned<raw::TagHeader>) -> Option<TagHeader> {
        let Spanned { value, pos } = raw;
        self.missing_keys(
            pos,
            "purge.tag_headers item",
            &[("header", value.header.is_some(), "header: Surrogate-Key")],
        );
        let separator = match &value.separator {
            None => ' ',
            Some(field) if field.value == " " => ' ',
            Some(field) if field.value == "," => ',',
            Some(field) => {
                self.error(
                    field.pos,
                    format!("separator must be \" \" or \",\", not {:?}", field.value),
                    Some(
                        "Surrogate-Key separates tags with \" \", Cache-Tag with \",\"".to_string(),
                    ),
                );
                ' '
            }
        };
        let name = self.header_name(value.header.as_ref()?)?;
        Some(TagHeader { name, separator })
    }

    /// One item of `purge.legacy_tags`: a template, or templates most
    /// specific first. A template listed after one whose fields are a subset
    /// of its own could never be chosen, and is refused.
    fn legacy_rule(&mut self, raw: Spanned<raw::OneOrMany<Spanned<String>>>) -> Option<LegacyRule> {
        let Spanned { value, pos } = raw;
        if value.0.is_empty() {
            self.error(
                pos,
                "empty list in purge.legacy_tags",
                Some(
                    "list templates most specific first, e.g. [\"filter:{workspace_id}:{filter}\", \"lists:{workspace_id}\"]"
                        .to_string(),
                ),
            );
            return None;
        }
        let mut alternatives: Vec<Template> = Vec::new();
        let mut ok = true;
        for source in &value.0 {
            let Some(template) = self.legacy_template(source) else {
                ok = false;
                continue;
            };
            let fields = legacy_fields(&template);
            if let Some(wider) = alternatives
                .iter()
                .find(|earlier| legacy_fields(earlier).is_subset(&fields))
            {
                self.error(
                    source.pos,
                    format!(
                        "\"{}\" is never used: \"{}\" before it applies whenever it could",
                        template.source, wider.source
                    ),
                    Some("list the templates of an item most specific first".to_string()),
                );
                ok = false;
                continue;
            }
            alternatives.push(template);
        }
        ok.then_some(LegacyRule { alternatives })
    }

    fn legacy_template(&mut self, source: &Spanned<String>) -> Option<Template> {
        let template = self.event_template("legacy purge", source)?;
        for part in &template.parts {
            // The legacy body has no `workspace` or `user`: only its own fields.
            let name = match part {
                TemplatePart::Var(name) => name.clone(),
                TemplatePart::Workspace => "workspace".to_string(),
                TemplatePart::User => "user".to_string(),
                TemplatePart::Literal(_) | TemplatePart::Query(_) => continue,
            };
            if !LEGACY_FIELDS.contains(&name.as_str()) {
                let hint =
                    did_you_mean(&name, LEGACY_FIELDS).map_or(String::new(), |m| format!("{m} "));
                self.error(
                    source.pos,
                    format!("unknown legacy purge field \"{{{name}}}\" in purge.legacy_tags"),
                    Some(format!(
                        "{hint}the legacy body has {}",
                        LEGACY_FIELDS.map(|f| format!("{{{f}}}")).join(", ")
                    )),
                );
                return None;
            }
        }
        Some(template)
    }

    fn log(&mut self, raw: Option<Spanned<raw::Log>>) -> Log {
        let raw = raw.map(|r| r.value).unwrap_or_default();
        let level = match raw.level {
            Some(field) => {
                if let Err(e) = tracing_subscriber::EnvFilter::try_new(&field.value) {
                    self.error(
                        field.pos,
                        format!("invalid log.level {:?}: {e}", field.value),
                        Some("a level (error, warn, info, debug, trace) or RUST_LOG directives such as \"tagcache=debug,warn\"".to_string()),
                    );
                }
                field.value
            }
            None => "info".to_string(),
        };
        let access = raw.access.map(|a| a.value).and_then(|a| {
            if a.enabled == Some(false) {
                return None;
            }
            let path = a
                .path
                .as_ref()
                .map(|p| p.value.trim())
                .filter(|p| !p.is_empty() && *p != "-")
                .map(std::path::PathBuf::from);
            if let (Some(field), None) = (&a.max_size, &path) {
                self.error(
                    field.pos,
                    "log.access.max_size needs log.access.path",
                    Some("stdout is not rotated; give a file path".to_string()),
                );
            }
            let max_size = a
                .max_size
                .as_ref()
                .map(|f| self.size(Some(f), 0, "log.access.max_size") as u64);
            Some(AccessLogConfig {
                format: match a.format {
                    Some(raw::AccessFormat::Text) => AccessFormat::Text,
                    Some(raw::AccessFormat::Json) | None => AccessFormat::Json,
                },
                path,
                query: a.query.unwrap_or(true),
                max_size,
            })
        });
        Log {
            level,
            hash_identities: raw.hash_identities.unwrap_or(false),
            access,
        }
    }

    fn server(&mut self, raw: Option<Spanned<raw::Server>>) -> Server {
        let raw = raw.map(|r| r.value).unwrap_or_default();
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Server {
            threads: self.count(raw.threads.as_ref(), cpus, "server.threads"),
            grace_period: self.duration(raw.grace_period.as_ref(), Duration::from_secs(10)),
            write_buffer: self.write_buffer(raw.write_buffer.as_ref()),
            upgrade_sock: raw
                .upgrade_sock
                .map(|s| s.value.trim().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/tmp/tagcache-upgrade.sock".to_string()),
        }
    }

    /// `server.write_buffer`: between 1 KiB and 1 MiB (every client connection
    /// holds one).
    fn write_buffer(&mut self, field: Option<&Spanned<String>>) -> usize {
        const DEFAULT: usize = 32 << 10;
        let size = self.size(field, DEFAULT, "server.write_buffer");
        match field {
            Some(field) if !(1 << 10..=1 << 20).contains(&size) => {
                self.error(
                    field.pos,
                    "server.write_buffer must be between 1KiB and 1MiB".to_string(),
                    Some(
                        "every client connection holds one; 32KiB fits most cached answers".into(),
                    ),
                );
                DEFAULT
            }
            _ => size,
        }
    }

    fn coalescing(&mut self, raw: Option<Spanned<raw::Coalescing>>) -> Coalescing {
        let raw = raw.map(|r| r.value).unwrap_or_default();
        Coalescing {
            enabled: raw.enabled.unwrap_or(true),
            across_instances: raw.across_instances.unwrap_or(true),
            wait_timeout: self.positive_duration(
                raw.wait_timeout.as_ref(),
                Duration::from_secs(10),
                "coalescing.wait_timeout",
            ),
            lock_lease: self.positive_duration(
                raw.lock_lease.as_ref(),
                Duration::from_secs(1),
                "coalescing.lock_lease",
            ),
        }
    }

    fn metrics(&mut self, raw: Option<Spanned<raw::Metrics>>) -> MetricsConfig {
        let raw = raw.map(|r| r.value).unwrap_or_default();
        let workspace_labels = match raw.workspace_labels {
            Some(field) if field.value > super::model::MAX_WORKSPACE_LABELS => {
                self.error(
                    field.pos,
                    format!(
                        "metrics.workspace_labels is at most {}",
                        super::model::MAX_WORKSPACE_LABELS
                    ),
                    Some("each workspace adds seven series to every scrape".to_string()),
                );
                0
            }
            Some(field) => field.value,
            None => 0,
        };
        MetricsConfig { workspace_labels }
    }

    fn limits(&mut self, raw: Option<Spanned<raw::Limits>>) -> Limits {
        let raw = raw.map(|r| r.value).unwrap_or_default();
        Limits {
            max_uri_len: self.count(raw.max_uri_len.as_ref(), 8192, "limits.max_uri_len"),
            max_query_params: self.count(
                raw.max_query_params.as_ref(),
                64,
                "limits.max_query_params",
            ),
            max_header_size: self.size(
                raw.max_header_size.as_ref(),
                DEFAULT_MAX_HEADER_SIZE,
                "limits.max_header_size",
            ),
        }
    }
}

fn unkeyed_action(raw: Option<raw::UnkeyedAction>) -> Option<UnkeyedAction> {
    raw.map(|a| match a {
        raw::UnkeyedAction::Strip => UnkeyedAction::Strip,
        raw::UnkeyedAction::Bypass => UnkeyedAction::Bypass,
    })
}

/// What a route's templates and key rules may refer to.
struct RouteScope<'a> {
    label: &'a str,
    params: &'a [String],
    /// `key.query`, sorted.
    query: &'a [String],
    /// False when `key.query` itself was reported as unusable.
    query_usable: bool,
    tenant: &'a Tenant,
}

impl RouteScope<'_> {
    /// `did you mean "pageSize"? key.query of route "x" is [page, pageSize]`.
    fn query_hint(&self, param: &str) -> String {
        let allowlist = format!("key.query is [{}]", self.query.join(", "));
        match did_you_mean(param, self.query.iter().map(String::as_str)) {
            Some(mean) => format!("{mean} {allowlist}"),
            None => format!("add {param:?} to key.query; {allowlist}"),
        }
    }

    /// The variables this route's templates may use, as written.
    fn available(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.tenant.workspace.is_some() {
            names.push("workspace".to_string());
        }
        if self.tenant.user.is_some() {
            names.push("user".to_string());
        }
        names.extend(self.params.iter().cloned());
        names.extend(self.query.iter().map(|q| format!("query.{q}")));
        names
    }

    /// The problem with a template part in this route, as (message, hint).
    fn check_part(&self, part: &TemplatePart) -> Option<(String, String)> {
        let written = template::written(part)?;
        match part {
            TemplatePart::Literal(_) => None,
            TemplatePart::Workspace if self.tenant.workspace.is_none() => Some((
                format!("{written:?} in {} needs the workspace identity, but tenant.workspace is not set", self.label),
                "add tenant: { workspace: { header: X-Workspace-ID } }".to_string(),
            )),
            TemplatePart::User if self.tenant.user.is_none() => Some((
                format!("{written:?} in {} needs the user identity, but tenant.user is not set", self.label),
                "add tenant: { user: { header: X-User-ID } }".to_string(),
            )),
            TemplatePart::Workspace | TemplatePart::User => None,
            TemplatePart::Var(name) if self.params.contains(name) => None,
            TemplatePart::Var(name) if self.query.contains(name) => Some((
                format!("unknown template variable {written:?} in {}", self.label),
                format!("{name:?} is a query parameter: write \"{{query.{name}}}\""),
            )),
            TemplatePart::Var(name) => Some((
                format!("unknown template variable {written:?} in {}", self.label),
                self.variable_hint(name),
            )),
            TemplatePart::Query(name) if self.query.contains(name) || !self.query_usable => None,
            TemplatePart::Query(name) => Some((
                format!("{written:?} in {} names a parameter that is not in key.query", self.label),
                match nearest(name, self.query.iter().map(String::as_str)) {
                    Some(near) => format!("did you mean \"{{query.{near}}}\"? key.query is [{}]", self.query.join(", ")),
                    None => format!("add {name:?} to key.query; it is [{}]", self.query.join(", ")),
                },
            )),
        }
    }

    fn variable_hint(&self, name: &str) -> String {
        let available = self.available();
        let list = if available.is_empty() {
            "this route has no variables".to_string()
        } else {
            format!(
                "this route can use {}",
                available
                    .iter()
                    .map(|a| format!("{{{a}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        match nearest(name, available.iter().map(String::as_str)) {
            Some(near) => format!("did you mean \"{{{near}}}\"? {list}"),
            None => list,
        }
    }
}

/// Checks `host:port`; returns the host (without IPv6 brackets) or a hint.
fn split_host_port(address: &str) -> Result<String, String> {
    let address = address.trim();
    let example = "e.g. \"127.0.0.1:3000\" or \"backend.internal:443\"";
    if let Some((scheme, _)) = address.split_once("://") {
        return Err(format!(
            "write the address without {scheme:?}://, {example}; set tls: true for HTTPS"
        ));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("add the port, {example}"));
    };
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!(
            "the port must be a number from 1 to 65535, {example}"
        ));
    }
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) if v6.parse::<std::net::Ipv6Addr>().is_ok() => v6,
        Some(_) => return Err(format!("invalid IPv6 address, {example}")),
        None if host.contains(':') => {
            return Err("write an IPv6 address in brackets, e.g. \"[::1]:3000\"".to_string())
        }
        None => host,
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(format!("the host is missing or invalid, {example}"));
    }
    Ok(host.to_string())
}

/// Parses `"GET /path/{param}"` into the method and the path segments.
fn parse_match(text: &str) -> Result<(RouteMethod, Vec<Segment>), (String, Option<String>)> {
    let example = "e.g. \"GET /api/boards/{board_id}/contacts\"";
    let words: Vec<&str> = text.split_whitespace().collect();
    let (method, path) = match words.as_slice() {
        [method, path] => (*method, *path),
        [path] if path.starts_with('/') => {
            return Err((
                format!("match {text:?} has no method"),
                Some(format!("write \"GET {path}\"")),
            ))
        }
        _ => {
            return Err((
                format!("invalid match {text:?}: expected \"GET /path\""),
                Some(example.to_string()),
            ))
        }
    };
    if method != "GET" {
        let (message, hint) = if method.eq_ignore_ascii_case("GET") {
            (
                format!("method {method:?} must be written \"GET\""),
                format!("write \"GET {path}\""),
            )
        } else if method.eq_ignore_ascii_case("HEAD") {
            (
                "only GET routes are cached, not \"HEAD\"".to_string(),
                format!("HEAD requests are served from GET entries: write \"GET {path}\""),
            )
        } else {
            (
                format!("only GET routes are cached, not {method:?}"),
                "requests that match no route are proxied untouched; remove this route".to_string(),
            )
        };
        return Err((message, Some(hint)));
    }
    if !path.starts_with('/') {
        return Err((
            format!("path {path:?} must start with \"/\""),
            Some(format!("write \"/{path}\"")),
        ));
    }
    if path.contains('?') || path.contains('#') {
        return Err((
            format!("path {path:?} must not contain a query string"),
            Some("list the query parameters that matter in key.query".to_string()),
        ));
    }
    let mut segments = Vec::new();
    if path == "/" {
        return Ok((RouteMethod::Get, segments));
    }
    for segment in path[1..].split('/') {
        if segment.is_empty() {
            return Err((
                format!("empty segment in path {path:?}"),
                Some("remove the doubled or trailing \"/\"".to_string()),
            ));
        }
        if !segment.contains(['{', '}']) {
            segments.push(Segment::Literal(segment.to_string()));
            continue;
        }
        let name = segment
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        let Some(name) = name else {
            return Err((
                format!("invalid path segment {segment:?} in {path:?}"),
                Some("a parameter is a whole segment named with letters, digits and \"_\", e.g. \"{board_id}\"".to_string()),
            ));
        };
        if name == "workspace" || name == "user" || name == "query" {
            return Err((
                format!("path parameter \"{{{name}}}\" would hide the built-in template variable"),
                Some(format!("rename it, e.g. \"{{{name}_id}}\"")),
            ));
        }
        if segments.contains(&Segment::Param(name.to_string())) {
            return Err((
                format!("path parameter \"{{{name}}}\" is used twice in {path:?}"),
                Some("give each parameter its own name".to_string()),
            ));
        }
        segments.push(Segment::Param(name.to_string()));
    }
    Ok((RouteMethod::Get, segments))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Segment {
        Segment::Literal(s.to_string())
    }

    fn param(s: &str) -> Segment {
        Segment::Param(s.to_string())
    }

    /// `expected` is the segments, or a fragment of the error message.
    fn check_match(text: &str, expected: Result<Vec<Segment>, &str>) {
        match (parse_match(text), expected) {
            (Ok((RouteMethod::Get, got)), Ok(want)) => assert_eq!(got, want, "{text:?}"),
            (Err((message, _)), Err(want)) => {
                assert!(
                    message.contains(want),
                    "{text:?}: {message:?} lacks {want:?}"
                );
            }
            (got, want) => panic!("{text:?}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn matches() {
        check_match(
            "GET /api/boards/{board_id}/contacts",
            Ok(vec![
                lit("api"),
                lit("boards"),
                param("board_id"),
                lit("contacts"),
            ]),
        );
        check_match("GET /", Ok(vec![]));
        check_match("  GET   /a  ", Ok(vec![lit("a")]));
        check_match(
            "POST /api/contacts",
            Err("only GET routes are cached, not \"POST\""),
        );
        check_match("HEAD /api/contacts", Err("not \"HEAD\""));
        check_match("get /api", Err("must be written \"GET\""));
        check_match("/api/contacts", Err("has no method"));
        check_match("GET", Err("expected \"GET /path\""));
        check_match("GET /a /b", Err("expected \"GET /path\""));
        check_match("GET api/contacts", Err("must start with \"/\""));
        check_match("GET /api//contacts", Err("empty segment"));
        check_match("GET /api/contacts/", Err("empty segment"));
        check_match("GET /api?x=1", Err("query string"));
        check_match("GET /api/{id", Err("invalid path segment \"{id\""));
        check_match("GET /api/x{id}", Err("invalid path segment"));
        check_match("GET /api/{}", Err("invalid path segment"));
        check_match("GET /api/{a-b}", Err("invalid path segment"));
        check_match("GET /a/{id}/b/{id}", Err("\"{id}\" is used twice"));
        check_match("GET /w/{workspace}", Err("would hide the built-in"));
    }

    #[test]
    fn host_ports() {
        let cases: [(&str, Result<&str, &str>); 9] = [
            ("127.0.0.1:3000", Ok("127.0.0.1")),
            ("backend.internal:443", Ok("backend.internal")),
            ("[::1]:3000", Ok("::1")),
            ("127.0.0.1", Err("add the port")),
            ("http://127.0.0.1:3000", Err("without \"http\"://")),
            ("::1:3000", Err("in brackets")),
            ("host:0", Err("port must be")),
            ("host:http", Err("port must be")),
            (":3000", Err("host is missing")),
        ];
        for (input, expected) in cases {
            match (split_host_port(input), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{input}"),
                (Err(got), Err(want)) => {
                    assert!(got.contains(want), "{input}: {got:?} lacks {want:?}")
                }
                (got, want) => panic!("{input}: got {got:?}, expected {want:?}"),
            }
        }
    }
}
