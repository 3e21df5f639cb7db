//! The admin listener: health, stats, metrics, purge, events and warming.
//!
//! It runs on its own address (loopback by default), separate from proxied
//! traffic. Everything but `/health` needs `Authorization: Bearer <token>`
//! when a token is configured; event webhooks may additionally require an
//! HMAC signature. Bodies are read with a size limit; every refusal is a JSON
//! error naming the problem. `admin.metrics_listen` adds a listener that
//! serves only `/metrics`, without the token ([`MetricsApp`]).

mod auth;
pub mod client;
mod explain;
mod settings;
mod ui;

internal_mods!(warm, workspaces);

use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use http::{Method, Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::cache::TagCache;
use crate::metrics::CacheStatus;
use crate::purge::events::{self, EventError};
use crate::purge::signature::Verifier;
use crate::purge::{PurgeReport, Purger, UrlTarget};

/// The admin HTTP application.
pub struct AdminApp {
    purger: Purger,
    verifier: Option<Verifier>,
    /// Where `POST /warm` sends its requests: the proxy listener the server
    /// was started on (a new `listen` needs a restart).
    warm_target: std::net::SocketAddr,
}

impl AdminApp {
    /// The admin app for `cache`.
    pub fn new(cache: Arc<TagCache>) -> Self {
        let verifier = cache
            .config()
            .admin
            .webhook_secret
            .clone()
            .map(Verifier::new);
        AdminApp {
            warm_target: warm::target(cache.config().listen),
            purger: Purger::new(cache),
            verifier,
        }
    }

    fn cache(&self) -> &TagCache {
        self.purger.cache()
    }
}

/// A JSON response.
fn json_response(status: StatusCode, body: &Value) -> Response<Vec<u8>> {
    let body = body.to_string().into_bytes();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .header("content-length", body.len())
        .body(body)
        .unwrap_or_default()
}

/// A JSON error `{"error": code, "message": ..., "field": ...}`.
pub(crate) fn error(
    status: StatusCode,
    code: &str,
    message: &str,
    field: Option<&str>,
) -> Response<Vec<u8>> {
    let mut body = json!({ "error": code, "message": message });
    if let Some(f) = field {
        body["field"] = json!(f);
    }
    json_response(status, &body)
}

/// Body of `POST /purge`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    /// Tags to purge, as given.
    #[serde(default)]
    pub tags: Vec<String>,
    /// URLs whose entries to purge.
    #[serde(default)]
    pub urls: Vec<UrlItem>,
    /// Workspaces to purge whole.
    #[serde(default)]
    pub workspaces: Vec<String>,
    /// One more workspace to purge whole.
    #[serde(default)]
    pub workspace: Option<String>,
    /// Mark stale instead of dropping.
    #[serde(default)]
    pub soft: bool,
    /// Purge every entry (refused with `soft`).
    #[serde(default)]
    pub all: bool,
}

/// One item of `urls`: a URL, or a URL with the identity it was stored for.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum UrlItem {
    /// A URL, for the identity in the admin request's headers.
    Plain(String),
    /// A URL with its workspace and user.
    Full {
        /// Path and query.
        url: String,
        /// The workspace the entry was stored for.
        #[serde(default)]
        workspace: Option<String>,
        /// The user the entry was stored for.
        #[serde(default)]
        user: Option<String>,
    },
}

/// Parses a `POST /purge` body. Pure, so it can be fuzzed on its own.
///
/// # Errors
/// The parser's message, and the field it is about when it names one.
pub fn parse_purge_body(body: &[u8]) -> Result<PurgeBody, (String, Option<String>)> {
    parse_json(body)
}

/// Parses a JSON body into `T`, or says what is wrong and at which field.
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, (String, Option<String>)> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.inner().to_string();
        // An unknown or missing key is reported at its parent; name the key itself.
        let field = field_of_serde_error(&msg)
            .filter(|_| msg.starts_with("unknown field") || msg.starts_with("missing field"))
            .or_else(|| (path != "." && path != "?").then(|| path.clone()));
        (msg, field)
    })
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        if method == Method::GET && path == "/health" {
            return json_response(StatusCode::OK, &self.health());
        }
        // The dashboard's files hold no data: served without the token.
        if let Some(page) = (method == Method::GET).then(|| ui::asset(&path)).flatten() {
            return page;
        }
        let admin = &self.cache().config().admin;
        if let Err(why) = auth::check_bearer(session.req_header(), admin.token.as_ref()) {
            return error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                why,
                Some("authorization"),
            );
        }
        match (method.as_str(), path.as_str()) {
            ("GET", "/stats") => json_response(StatusCode::OK, &self.stats()),
            ("GET", "/metrics") => metrics_response(self.cache()),
            ("POST", "/purge") => {
                match read_body(session, admin.max_body, self.cache().metrics()).await {
                    Ok(body) => self.purge(session, &body).await,
                    Err(resp) => resp,
                }
            }
            ("POST", "/events") => {
                match read_body(session, admin.max_body, self.cache().metrics()).await {
                    Ok(body) => self.events(session, &body, false).await,
                    Err(resp) => resp,
                }
            }
            ("POST", p) if p == self.cache().config().purge.legacy_path => {
                match read_body(session, admin.max_body, self.cache().metrics()).await {
                    Ok(body) => self.events(session, &body, true).await,
                    Err(resp) => resp,
                }
            }
            ("POST", "/reload") => self.reload(),
            (_, p) if p == "/settings" || p.starts_with("/settings/") => {
                let body = if method == Method::PUT {
                    match read_body(session, admin.max_body, self.cache().metrics()).await {
                        Ok(body) => body,
                        Err(resp) => return resp,
                    }
                } else {
                    Vec::new()
                };
                settings::handle(self.cache(), &method, &path, &body).await
            }
            ("POST", "/warm") => {
                match read_body(session, admin.max_body, self.cache().metrics()).await {
                    Ok(body) => self.warm(&body).await,
                    Err(resp) => resp,
                }
            }
            ("GET", "/stats/workspaces") => self.workspace_stats(session),
            ("POST", "/explain") => {
                match read_body(session, admin.max_body, self.cache().metrics()).await {
                    Ok(body) => {
                        explain::respond(self.cache(), self.header_identity(session), &body).await
                    }
                    Err(resp) => resp,
                }
            }
            ("PURGE", _) => self.purge_method(session).await,
            (
                _,
                "/health" | "/stats" | "/metrics" | "/purge" | "/events" | "/reload" | "/warm"
                | "/stats/workspaces" | "/explain",
            ) => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint",
                None,
            ),
            _ => error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such admin endpoint",
                None,
            ),
        }
    }
}

/// `GET /metrics`: the Prometheus text format, gauges brought up to date first.
fn metrics_response(cache: &TagCache) -> Response<Vec<u8>> {
    cache.refresh_gauges();
    let body = cache.metrics().render().into_bytes();
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
        .header("cache-control", "no-store")
        .header("content-length", body.len())
        .body(body)
        .unwrap_or_default()
}

/// The listener of `admin.metrics_listen`: `GET /metrics` without the admin
/// token, for Prometheus, and nothing else. Metrics hold counts and route
/// names, never keys, tags or identities, so they may be read without it.
pub struct MetricsApp {
    cache: Arc<TagCache>,
}

impl MetricsApp {
    /// The metrics app for `cache`.
    pub fn new(cache: Arc<TagCache>) -> Self {
        MetricsApp { cache }
    }
}

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        match (req.method.as_str(), req.uri.path()) {
            ("GET", "/metrics") => metrics_response(&self.cache),
            (_, "/metrics") => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint",
                None,
            ),
            _ => error(
                StatusCode::NOT_FOUND,
                "not_found",
                "this listener serves only /metrics",
                None,
            ),
        }
    }
}

/// Reads the request body up to `limit` bytes; a larger one is refused with
/// 413 and counted in `tagcache_limit_hits_total{limit="admin-body"}`.
async fn read_body(
    session: &mut ServerSession,
    limit: usize,
    metrics: &crate::metrics::Metrics,
) -> Result<Vec<u8>, Response<Vec<u8>>> {
    let too_large = || {
        metrics.limits.with_label_values(&["admin-body"]).inc();
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            &format!("request body exceeds {limit} bytes"),
            None,
        )
    };
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        drain_body(session).await;
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > limit {
                    drain_body(session).await;
                    return Err(too_large());
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    "could not read the request body",
                    None,
                ))
            }
        }
    }
    Ok(buf.to_vec())
}

/// Reads and discards the rest of a refused body (up to 64 MiB, for up to
/// 5 s), so that the client, still sending, gets the 413 instead of a reset
/// connection.
async fn drain_body(session: &mut ServerSession) {
    const MAX: usize = 64 << 20;
    let drain = async {
        let mut seen = 0usize;
        while let Ok(Some(chunk)) = session.read_request_body().await {
            seen += chunk.len();
            if seen > MAX {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
}

fn report_json(report: &PurgeReport) -> Value {
    let mut out = json!({
        "purged": { "kind": report.kind, "tags": report.tags },
        "soft": report.soft,
        "epoch": report.epoch,
        "took_us": report.took_us,
    });
    if let Some(shared) = &report.shared {
        out["shared"] = json!(shared);
    }
    if let Some(reason) = &report.not_shared {
        // Applied here, not on the other instances: the caller should retry.
        out["error"] = json!("purge_not_shared");
        out["message"] = json!(format!(
            "applied on this instance only, other instances did not get it ({reason}); retry"
        ));
    }
    out
}

/// 503 when a purge could not reach the other instances (Redis down), so
/// that callers retry; 200 otherwise.
fn purge_status(report: &PurgeReport) -> StatusCode {
    if report.not_shared.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

impl AdminApp {
    /// `{"status":"ok"}`, or `degraded` with the Redis state while Redis is
    /// unusable: still 200, since requests are still served (from memory and
    /// the origin).
    /// With `purge.consistency: sync`, `confirmed: false` (also degraded)
    /// says the instance bypasses the cache until it is back in the live set.
    fn health(&self) -> Value {
        let confirmed = self.cache().fanout().is_none_or(|f| f.confirmed());
        match self.cache().redis_health() {
            Some(h) => json!({
                "status": if h.ok() && confirmed { "ok" } else { "degraded" },
                "redis": {
                    "breaker": h.breaker.as_str(),
                    "subscribed": h.subscribed,
                    "confirmed": confirmed,
                },
            }),
            None => json!({ "status": "ok" }),
        }
    }

    /// `POST /reload`: re-reads the config file; 200 with what changed, or
    /// 422 with every problem (the running config stays).
    fn reload(&self) -> Response<Vec<u8>> {
        match self.cache().reload_file() {
            Ok(report) => {
                tracing::info!(?report, "configuration reloaded");
                json_response(
                    StatusCode::OK,
                    &json!({ "reloaded": true, "changes": report }),
                )
            }
            Err(crate::cache::ReloadError::Invalid(e)) => {
                tracing::error!("configuration reload refused, the running config stays:\n{e}");
                let problems: Vec<String> = e.diagnostics.iter().map(|d| d.to_string()).collect();
                json_response(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &json!({
                        "reloaded": false,
                        "error": "invalid_config",
                        "message": "the config file does not validate; the running config stays",
                        "problems": problems,
                    }),
                )
            }
            Err(e @ crate::cache::ReloadError::Unusable(_)) => {
                tracing::error!("configuration reload refused, the running config stays: {e}");
                error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unusable_config",
                    &e.to_string(),
                    Some("log.access.path"),
                )
            }
            Err(e) => error(StatusCode::CONFLICT, "no_config_file", &e.to_string(), None),
        }
    }

    /// `POST /warm` ([`warm`]): 200 with each item's outcome, 400 or 422
    /// for a body that does not validate.
    async fn warm(&self, body: &[u8]) -> Response<Vec<u8>> {
        let config = self.cache().config();
        let plan = match warm::parse(body, &config) {
            Ok(plan) => plan,
            Err(e @ warm::WarmError::Malformed(_)) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    &e.to_string(),
                    None,
                )
            }
            Err(e) => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    &e.to_string(),
                    e.field(),
                )
            }
        };
        let timeout = config.upstream.connect_timeout + config.upstream.read_timeout + warm::SLACK;
        let items = plan.len();
        let answer = warm::run(plan, self.warm_target, timeout).await;
        tracing::info!(
            target: "tagcache::warm",
            items,
            stored = answer["stored"].as_u64(),
            fresh = answer["fresh"].as_u64(),
            bypassed = answer["bypassed"].as_u64(),
            not_stored = answer["not_stored"].as_u64(),
            errors = answer["errors"].as_u64(),
            "warm"
        );
        json_response(StatusCode::OK, &answer)
    }

    /// `GET /stats/workspaces?top=N` ([`workspaces`]).
    fn workspace_stats(&self, session: &ServerSession) -> Response<Vec<u8>> {
        match workspaces::parse_top(session.req_header().uri.query()) {
            Ok(top) => json_response(StatusCode::OK, &workspaces::figures(self.cache(), top)),
            Err(e) => {
                let field = match &e {
                    workspaces::TopError::Unknown(name) => name.as_str(),
                    workspaces::TopError::BadTop { .. } => "top",
                };
                error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    &e.to_string(),
                    Some(field),
                )
            }
        }
    }

    fn stats(&self) -> Value {
        let cache = self.cache();
        let m = cache.metrics();
        let counters = cache.route_counters();
        let mut totals = [0u64; 6];
        let mut routes = serde_json::Map::new();
        for r in &counters {
            let mut route = serde_json::Map::new();
            for (i, s) in CacheStatus::ALL.iter().enumerate() {
                let n = r.get(*s);
                totals[i] += n;
                route.insert(s.as_str().to_ascii_lowercase(), json!(n));
            }
            route.insert("stores".into(), json!(r.stores.get()));
            routes.insert(r.name.clone(), Value::Object(route));
        }
        let [hits, misses, bypasses, stale, expired, revalidated] = totals;
        let served = hits + stale + revalidated;
        let lookups = served + misses + expired;
        let hit_rate = if lookups == 0 {
            0.0
        } else {
            served as f64 / lookups as f64
        };
        let stores: u64 = counters.iter().map(|r| r.stores.get()).sum();
        let purges: u64 = ["tag", "url", "workspace", "event", "legacy", "mixed", "all"]
            .iter()
            .map(|k| m.purges.with_label_values(&[k, "ok"]).get())
            .sum();
        let errors: u64 = ["origin", "client", "internal"]
            .iter()
            .map(|k| m.errors.with_label_values(&[k]).get())
            .sum();
        let mem = cache.memory().map(|s| s.stats());
        json!({
            "hits": hits,
            "misses": misses,
            "bypasses": bypasses,
            "stale": stale,
            "expired": expired,
            "revalidated": revalidated,
            "stores": stores,
            "evictions": mem.as_ref().map_or(0, |s| s.evictions),
            "purges": purges,
            "errors": errors,
            "hit_rate": hit_rate,
            "entries": mem.as_ref().map_or(0, |s| s.entries),
            "bytes": mem.as_ref().map_or(0, |s| s.bytes),
            "too_large": mem.as_ref().map_or(0, |s| s.too_large),
            "quota_evictions": mem.as_ref().map_or(0, |s| s.quota_evictions),
            "quota_refused": mem.as_ref().map_or(0, |s| s.quota_refused),
            "tag_records": cache.registry().len(),
            "routes": routes,
        })
    }

    /// Identity headers of the admin request, used for URL purges.
    fn header_identity(&self, session: &ServerSession) -> (Option<String>, Option<String>) {
        let tenant = &self.cache().config().tenant;
        // Read as the proxy reads them: one printable value, or none.
        let read = |src: &Option<crate::config::IdentitySource>| {
            let crate::config::IdentitySource::Header(h) = src.as_ref()?;
            match crate::identity::header_value(session.req_header(), h) {
                crate::identity::HeaderValue::One(v) => Some(v.to_string()),
                _ => None,
            }
        };
        (read(&tenant.workspace), read(&tenant.user))
    }

    async fn purge(&self, session: &ServerSession, body: &[u8]) -> Response<Vec<u8>> {
        let m = self.cache().metrics();
        let parsed = match parse_purge_body(body) {
            Ok(b) => b,
            Err((msg, field)) => {
                m.purges.with_label_values(&["tag", "invalid"]).inc();
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    &msg,
                    field.as_deref(),
                );
            }
        };
        if parsed.all {
            if parsed.soft {
                m.purges.with_label_values(&["all", "invalid"]).inc();
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    "\"soft\" cannot be combined with \"all\": purging everything drops every entry",
                    Some("soft"),
                );
            }
            // Everything covers whatever else the body names.
            let report = self.purger.purge_all().await;
            return json_response(purge_status(&report), &report_json(&report));
        }
        let mut hashes: Vec<u64> = parsed.tags.iter().map(|t| crate::tags::hash(t)).collect();
        let mut kinds = Vec::new();
        if !parsed.tags.is_empty() {
            kinds.push("tag");
        }
        let workspaces = parsed.workspaces.iter().chain(parsed.workspace.iter());
        for w in workspaces {
            kinds.push("workspace");
            hashes.push(crate::tags::hash(&Purger::workspace_tag(w)));
        }
        let (hw, hu) = self.header_identity(session);
        for item in &parsed.urls {
            kinds.push("url");
            let target = match item {
                UrlItem::Plain(url) => UrlTarget {
                    url: url.clone(),
                    workspace: hw.clone(),
                    user: hu.clone(),
                },
                UrlItem::Full {
                    url,
                    workspace,
                    user,
                } => UrlTarget {
                    url: url.clone(),
                    workspace: workspace.clone().or_else(|| hw.clone()),
                    user: user.clone().or_else(|| hu.clone()),
                },
            };
            match self.purger.url_tag(&target) {
                Ok(h) => hashes.push(h),
                Err(e) => {
                    m.purges.with_label_values(&["url", "invalid"]).inc();
                    return error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid_url",
                        &e.to_string(),
                        Some("urls"),
                    );
                }
            }
        }
        if hashes.is_empty() {
            m.purges.with_label_values(&["tag", "invalid"]).inc();
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "nothing to purge: give \"tags\", \"urls\", \"workspaces\" or \"all\"",
                Some("tags"),
            );
        }
        kinds.sort_unstable();
        kinds.dedup();
        let kind = if kinds.len() == 1 { kinds[0] } else { "mixed" };
        let report = self.purger.purge_hashes(kind, &hashes, parsed.soft).await;
        let what: Vec<&str> = parsed
            .tags
            .iter()
            .map(String::as_str)
            .chain(
                parsed
                    .workspaces
                    .iter()
                    .chain(parsed.workspace.iter())
                    .map(String::as_str),
            )
            .chain(parsed.urls.iter().map(|u| match u {
                UrlItem::Plain(url) | UrlItem::Full { url, .. } => url.as_str(),
            }))
            .collect();
        log_purge(Who::AdminToken, &what, &report);
        json_response(purge_status(&report), &report_json(&report))
    }

    async fn purge_method(&self, session: &ServerSession) -> Response<Vec<u8>> {
        let url = session
            .req_header()
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        let (workspace, user) = self.header_identity(session);
        let soft = session
            .req_header()
            .headers
            .get("x-purge-soft")
            .is_some_and(|v| v.as_bytes() == b"1" || v.as_bytes().eq_ignore_ascii_case(b"true"));
        match self.purger.url_tag(&UrlTarget {
            url,
            workspace,
            user,
        }) {
            Ok(h) => {
                let report = self.purger.purge_hashes("url", &[h], soft).await;
                let url = session.req_header().uri.to_string();
                log_purge(Who::AdminToken, &[url.as_str()], &report);
                json_response(purge_status(&report), &report_json(&report))
            }
            Err(e) => {
                self.cache()
                    .metrics()
                    .purges
                    .with_label_values(&["url", "invalid"])
                    .inc();
                error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_url",
                    &e.to_string(),
                    Some("url"),
                )
            }
        }
    }

    async fn events(
        &self,
        session: &ServerSession,
        body: &[u8],
        legacy: bool,
    ) -> Response<Vec<u8>> {
        let kind = if legacy { "legacy" } else { "event" };
        let m = self.cache().metrics();
        if let Some(v) = &self.verifier {
            // X-Tagcache-Signature, or the Standard Webhooks headers.
            if let Err(e) = v.verify_headers(&session.req_header().headers, body) {
                m.purges.with_label_values(&[kind, "unauthorized"]).inc();
                return error(
                    StatusCode::UNAUTHORIZED,
                    "bad_signature",
                    &e.to_string(),
                    Some(e.header()),
                );
            }
        }
        let config = self.cache().config();
        let resolved = if legacy {
            events::resolve_legacy(&config, body)
        } else {
            events::resolve_events(&config, body)
        };
        match resolved {
            Ok(tags) => {
                let soft = !legacy
                    && serde_json::from_slice::<Value>(body)
                        .ok()
                        .and_then(|v| v.get("soft").and_then(Value::as_bool))
                        .unwrap_or(false);
                let report = self.purger.purge_tags(kind, &tags, soft).await;
                let who = if self.verifier.is_some() {
                    Who::Signature
                } else {
                    Who::AdminToken
                };
                let what: Vec<&str> = tags.iter().map(String::as_str).collect();
                log_purge(who, &what, &report);
                let mut out = report_json(&report);
                out["tags"] = json!(tags);
                json_response(purge_status(&report), &out)
            }
            Err(e) => {
                m.purges.with_label_values(&[kind, "invalid"]).inc();
                let (status, code) = match &e {
                    EventError::Malformed(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
                    EventError::UnknownEvent { .. } => {
                        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_event")
                    }
                    _ => (StatusCode::UNPROCESSABLE_ENTITY, "missing_field"),
                };
                error(status, code, &e.to_string(), e.field())
            }
        }
    }
}

/// Who asked for a purge, as the purge log names them (never the secret).
#[derive(Debug, Clone, Copy)]
enum Who {
    /// A request with the admin bearer token.
    AdminToken,
    /// A webhook whose HMAC signature was verified.
    Signature,
}

/// One purge log line per purge or event: who, what (at most 20 of the tags,
/// URLs or workspaces named), how many tags, and the result.
fn log_purge(who: Who, what: &[&str], report: &PurgeReport) {
    let shown: Vec<&str> = what.iter().take(20).copied().collect();
    let result = if report.not_shared.is_some() {
        "applied-here-only"
    } else {
        "ok"
    };
    tracing::info!(
        target: "tagcache::purge",
        who = match who {
            Who::AdminToken => "admin-token",
            Who::Signature => "webhook-signature",
        },
        kind = report.kind,
        what = ?shown,
        named = what.len(),
        tags = report.tags,
        soft = report.soft,
        epoch = report.epoch,
        result,
        "purge"
    );
}

/// Pulls the field name out of a serde error message (`unknown field `x``,
/// `missing field `x``, `invalid type ... at line` for a known field).
fn field_of_serde_error(msg: &str) -> Option<String> {
    let start = msg.find('`')? + 1;
    let end = msg[start..].find('`')? + start;
    Some(msg[start..end].to_string())
}
