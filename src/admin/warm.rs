//! `POST /warm`: fills the cache by sending each item to the proxy's own
//! listener, as a client would.
//!
//! Each item becomes a real HTTP/1.1 `GET` to the proxy listener on loopback
//! (the `listen` the server was started with; `127.0.0.1` or `::1` when it
//! listens on every address), so it goes through exactly the path of a
//! client request: the same key, tags, storability rules, coalescing and
//! identity checks (in JWT mode the item's own `Authorization` is verified
//! like any request's). A warmed entry is therefore exactly what a client
//! would have stored. The outcome of each item is read back from
//! `X-Cache-Status` and `Cache-Status`.
//!
//! Items are paths only (`/...`), never absolute URLs, so a warm request can
//! reach nothing but the proxy itself. At most [`MAX_ITEMS`] items per call,
//! [`MAX_CONCURRENCY`] at once, each bounded by the upstream's connect and
//! read timeouts plus [`SLACK`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::{Config, IdentitySource};

/// Most items one call may carry.
pub const MAX_ITEMS: usize = 100;
/// Most items in flight at once.
pub const MAX_CONCURRENCY: usize = 16;
/// Items in flight at once when the body does not say.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Added to the upstream's connect and read timeouts to bound one item.
pub const SLACK: Duration = Duration::from_secs(5);
/// Most bytes of a refusal's body read to explain it.
const MAX_REFUSAL_BODY: usize = 4096;

/// Request headers an item may not set: they belong to the connection or
/// to the request's framing, which the warmer owns.
const RESERVED: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "expect",
];

/// The body of `POST /warm`, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBody {
    requests: Vec<RawItem>,
    #[serde(default)]
    concurrency: Option<i64>,
    #[serde(default)]
    refresh: bool,
}

/// One item, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    url: String,
    #[serde(default)]
    workspace: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Why a warm body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WarmError {
    /// Not JSON (400).
    #[error("{0}")]
    Malformed(String),
    /// JSON, but a field is missing, of the wrong type, or out of bounds (422).
    #[error("{message}")]
    Invalid {
        /// The field, as a path: `requests[3].url`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl WarmError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        WarmError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            WarmError::Malformed(_) => None,
            WarmError::Invalid { field, .. } => Some(field),
        }
    }
}

/// A validated warm request.
#[derive(Debug)]
pub struct WarmPlan {
    items: Vec<Item>,
    concurrency: usize,
    refresh: bool,
}

impl WarmPlan {
    /// Items to warm, in order.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }
}

/// One validated item: what is sent to the proxy.
#[derive(Debug)]
struct Item {
    url: String,
    workspace: Option<String>,
    user: Option<String>,
    headers: HeaderMap,
}

/// Parses and validates a `POST /warm` body against the running config.
///
/// # Errors
/// [`WarmError::Malformed`] when the body is not JSON, else
/// [`WarmError::Invalid`] naming the first field at fault.
pub fn parse(body: &[u8], config: &Config) -> Result<WarmPlan, WarmError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let raw: RawBody = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            return WarmError::Malformed(inner.to_string());
        }
        let msg = inner.to_string();
        let path = e.path().to_string();
        WarmError::invalid(field_of(&path, &msg), msg)
    })?;
    // An empty list is nothing to do (the dashboard asks it to learn
    // whether this instance warms at all): answered with no results.
    if raw.requests.len() > MAX_ITEMS {
        return Err(WarmError::invalid(
            "requests",
            format!(
                "at most {MAX_ITEMS} requests per call, got {}",
                raw.requests.len()
            ),
        ));
    }
    let concurrency = match raw.concurrency {
        None => DEFAULT_CONCURRENCY,
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_CONCURRENCY).contains(n))
            .ok_or_else(|| {
                WarmError::invalid(
                    "concurrency",
                    format!("concurrency must be between 1 and {MAX_CONCURRENCY}, got {n}"),
                )
            })?,
    };
    let items = raw
        .requests
        .into_iter()
        .enumerate()
        .map(|(i, item)| validate_item(i, item, config))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(WarmPlan {
        items,
        concurrency,
        refresh: raw.refresh,
    })
}

/// The field a serde error is about: its path, with the key of a missing or
/// unknown field appended.
fn field_of(path: &str, msg: &str) -> String {
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| msg.strip_prefix(p))
        .and_then(|rest| rest.split('`').next());
    match (named, path) {
        (Some(name), "." | "") => name.to_string(),
        // An unknown field's path already ends with it; a missing one's does not.
        (Some(name), path) if !path.ends_with(&format!(".{name}")) && path != name => {
            format!("{path}.{name}")
        }
        (_, path) => path.to_string(),
    }
}

/// The header an identity is read from, when it is a header.
fn identity_header(source: Option<&IdentitySource>) -> Option<&HeaderName> {
    match source? {
        IdentitySource::Header(h) => Some(h),
    }
}

fn validate_item(i: usize, item: RawItem, config: &Config) -> Result<Item, WarmError> {
    let at = |field: &str| format!("requests[{i}].{field}");
    let url = item.url;
    if !url.starts_with('/') {
        return Err(WarmError::invalid(
            at("url"),
            "a path starting with \"/\" (the proxy's own routes), not an absolute URL",
        ));
    }
    if url.contains('#') || url.parse::<http::uri::PathAndQuery>().is_err() {
        return Err(WarmError::invalid(at("url"), "not a valid request path"));
    }
    if url.len() > config.limits.max_uri_len {
        return Err(WarmError::invalid(
            at("url"),
            format!(
                "longer than limits.max_uri_len ({})",
                config.limits.max_uri_len
            ),
        ));
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &item.headers {
        let field = at(&format!("headers.{}", name.to_ascii_lowercase()));
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| WarmError::invalid(&field, "not a valid header name"))?;
        if RESERVED.contains(&name.as_str()) {
            return Err(WarmError::invalid(
                &field,
                "set by the warmer, not by an item",
            ));
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| WarmError::invalid(&field, "not a valid header value"))?;
        headers.insert(name, value);
    }
    let tenant = &config.tenant;
    for (field, value, source) in [
        ("workspace", &item.workspace, tenant.workspace.as_ref()),
        ("user", &item.user, tenant.user.as_ref()),
    ] {
        let Some(value) = value else { continue };
        let Some(name) = identity_header(source) else {
            return Err(WarmError::invalid(
                at(field),
                format!("the config reads no {field} (tenant.{field} is not set)"),
            ));
        };
        let ok = crate::identity::valid_id(value);
        let header_value = HeaderValue::from_str(value)
            .ok()
            .filter(|_| ok)
            .ok_or_else(|| {
                WarmError::invalid(
                    at(field),
                    format!(
                        "1 to {} visible ASCII characters",
                        crate::identity::MAX_IDENTITY_LEN
                    ),
                )
            })?;
        if headers.get(name).is_some_and(|v| v != header_value) {
            return Err(WarmError::invalid(
                at(&format!("headers.{name}")),
                format!("disagrees with requests[{i}].{field}"),
            ));
        }
        headers.insert(name.clone(), header_value);
    }
    if tenant.jwt.is_some() && !headers.contains_key(header::AUTHORIZATION) {
        return Err(WarmError::invalid(
            at("headers.authorization"),
            "tenant.jwt verifies every request: each item carries its own \"Authorization: Bearer ...\"",
        ));
    }
    Ok(Item {
        url,
        workspace: item.workspace,
        user: item.user,
        headers,
    })
}

/// What happened to one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Fetched from the origin and stored (or revalidated).
    Stored,
    /// A fresh entry was there already; nothing was fetched.
    Fresh,
    /// The proxy did not use the cache for it (no route, a bypass rule, a
    /// refused identity...), as it would not for a client.
    Bypassed,
    /// Looked up but not stored (an uncacheable answer, an origin error, a
    /// stale entry served while it revalidates).
    NotStored,
    /// No answer: the proxy could not be reached, or the item timed out.
    Error,
}

/// One item's line in the answer.
#[derive(Debug, Clone, Serialize)]
pub struct ItemResult {
    /// The item's path and query.
    pub url: String,
    /// The item's workspace, as given.
    pub workspace: Option<String>,
    /// The item's user, as given.
    pub user: Option<String>,
    /// What happened.
    pub outcome: Outcome,
    /// Why, in the terms of `Cache-Status`.
    pub detail: String,
    /// The answer's HTTP status, when there was one.
    pub status: Option<u16>,
    /// Time taken, in milliseconds.
    pub ms: f64,
}

/// The `Cache-Status` parameters of tagcache's entry (`hit`, `fwd=miss`,
/// `stored`, `detail=...`), in order.
fn cache_status_params(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .find(|entry| entry.split(';').next().map(str::trim) == Some("tagcache"))
        .map(|entry| entry.split(';').skip(1).map(str::trim).collect())
        .unwrap_or_default()
}

/// The outcome of an answer, from its status and cache headers, and whether
/// a refresh was asked for.
///
/// A refusal (401, 403, 414, 431) carries `X-Cache-Status: BYPASS` and no
/// `Cache-Status`: it is `bypassed`, its detail `refused` and the reason.
pub fn classify(
    status: u16,
    x_cache_status: Option<&str>,
    cache_status: Option<&str>,
    refresh: bool,
    refusal: Option<&str>,
) -> (Outcome, String) {
    let params = cache_status.map(cache_status_params).unwrap_or_default();
    let has = |p: &str| params.contains(&p);
    let detail_param = params
        .iter()
        .filter_map(|p| p.strip_prefix("detail="))
        .collect::<Vec<_>>()
        .join(", ");
    match x_cache_status {
        Some("HIT") => {
            let ttl = params
                .iter()
                .find(|p| p.starts_with("ttl="))
                .copied()
                .unwrap_or("hit");
            let detail = if refresh {
                format!("{ttl}; refresh not applied: the route ignores client no-cache (honor_client_no_cache: false)")
            } else {
                ttl.to_string()
            };
            (Outcome::Fresh, detail)
        }
        Some("MISS" | "EXPIRED") if has("stored") => {
            let fwd = params
                .iter()
                .find(|p| p.starts_with("fwd="))
                .copied()
                .unwrap_or("fwd=miss");
            (Outcome::Stored, fwd.to_string())
        }
        Some("REVALIDATED") => (Outcome::Stored, "revalidated".to_string()),
        Some("MISS" | "EXPIRED") => {
            let detail = if detail_param.is_empty() {
                "not-stored".to_string()
            } else {
                detail_param
            };
            (Outcome::NotStored, detail)
        }
        Some("STALE") => (
            Outcome::NotStored,
            format!(
                "stale entry served ({}); it is revalidated in the background",
                if detail_param.is_empty() {
                    "stale"
                } else {
                    &detail_param
                }
            ),
        ),
        Some("BYPASS") if cache_status.is_none() => {
            let why = refusal.unwrap_or("refused by the proxy");
            (Outcome::Bypassed, format!("refused ({status}): {why}"))
        }
        Some("BYPASS") => {
            let detail = if detail_param.is_empty() {
                "bypass".to_string()
            } else {
                detail_param
            };
            (Outcome::Bypassed, detail)
        }
        Some(other) => (Outcome::Error, format!("unknown X-Cache-Status {other:?}")),
        None => (
            Outcome::Error,
            "the answer carries no X-Cache-Status".to_string(),
        ),
    }
}

/// The address to send warm requests to: the proxy's `listen`, on loopback
/// when it listens on every address.
pub fn target(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    }
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

/// Runs `plan` against the proxy at `target`, each item within `timeout`,
/// and returns the answer's JSON: every item's result in order, and the
/// count of each outcome.
pub async fn run(plan: WarmPlan, target: SocketAddr, timeout: Duration) -> Value {
    // One client per call: its pooled connections live on the runtime that
    // runs the call, and close with it.
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(plan.concurrency)
        .build_http();
    let refresh = plan.refresh;
    let concurrency = plan.concurrency;
    let results: Vec<ItemResult> = futures_util::stream::iter(plan.items)
        .map(|item| {
            let client = &client;
            async move { warm_one(client, target, item, refresh, timeout).await }
        })
        .buffered(concurrency)
        .collect()
        .await;
    let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
    json!({
        "stored": count(Outcome::Stored),
        "fresh": count(Outcome::Fresh),
        "bypassed": count(Outcome::Bypassed),
        "not_stored": count(Outcome::NotStored),
        "errors": count(Outcome::Error),
        "results": results,
    })
}

async fn warm_one(
    client: &HttpClient,
    target: SocketAddr,
    item: Item,
    refresh: bool,
    timeout: Duration,
) -> ItemResult {
    let started = Instant::now();
    let answer = tokio::time::timeout(timeout, send(client, target, &item, refresh)).await;
    let ms = (started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0;
    let (outcome, detail, status) = match answer {
        Ok(Ok(a)) => {
            let (outcome, detail) = classify(
                a.status,
                a.x_cache_status.as_deref(),
                a.cache_status.as_deref(),
                refresh,
                a.refusal.as_deref(),
            );
            (outcome, detail, Some(a.status))
        }
        Ok(Err(e)) => (Outcome::Error, e, None),
        Err(_) => (
            Outcome::Error,
            format!("no answer within {} ms", timeout.as_millis()),
            None,
        ),
    };
    ItemResult {
        url: item.url,
        workspace: item.workspace,
        user: item.user,
        outcome,
        detail,
        status,
        ms,
    }
}

/// What the warmer reads of an answer.
struct Answer {
    status: u16,
    x_cache_status: Option<String>,
    cache_status: Option<String>,
    /// The reason of a refusal the proxy answered itself.
    refusal: Option<String>,
}

async fn send(
    client: &HttpClient,
    target: SocketAddr,
    item: &Item,
    refresh: bool,
) -> Result<Answer, String> {
    let uri = format!("http://{target}{}", item.url);
    let mut req = Request::get(uri)
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("bad request: {e}"))?;
    *req.headers_mut() = item.headers.clone();
    if refresh {
        req.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    if !req.headers().contains_key(header::USER_AGENT) {
        req.headers_mut().insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("tagcache-warm/", env!("CARGO_PKG_VERSION"))),
        );
    }
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("proxy unreachable: {e}"))?;
    let text = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let status = resp.status().as_u16();
    let x_cache_status = text("x-cache-status");
    let cache_status = text("cache-status");
    let refused = x_cache_status.as_deref() == Some("BYPASS") && cache_status.is_none();
    // The whole body is read (and dropped), so that the proxy finishes the
    // response and stores it, as it would for a client that reads it.
    let mut body = resp.into_body();
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("answer cut short: {e}"))?;
        if let (true, Some(data)) = (refused, frame.data_ref()) {
            let room = MAX_REFUSAL_BODY.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    let refusal = refused.then(|| {
        serde_json::from_slice::<Value>(&kept)
            .ok()
            .and_then(|v| {
                let error = v.get("error")?.as_str()?.to_string();
                Some(match v.get("reason").and_then(Value::as_str) {
                    Some(reason) => format!("{error}: {reason}"),
                    None => error,
                })
            })
            .unwrap_or_else(|| "refused by the proxy".to_string())
    });
    Ok(Answer {
        status,
        x_cache_status,
        cache_status,
        refusal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(tenant: &str) -> Config {
        let yaml = format!(
            "upstream: {{ address: \"127.0.0.1:3000\" }}\n{tenant}\nroutes:\n  - name: r\n    match: \"GET /r/{{id}}\"\n    ttl: 60s\n"
        );
        crate::config::load_str(&yaml, "t.yaml", &|_| {
            Some("secret-secret-secret-secret-secret-00".into())
        })
        .unwrap_or_else(|e| panic!("{e}"))
        .config
    }

    const HEADERS: &str =
        "tenant:\n  workspace: { header: X-Workspace-ID }\n  user: { header: X-User-ID }";

    fn check(body: &str, expected: Result<(), (&str, u16)>) {
        let c = config(HEADERS);
        let got = parse(body.as_bytes(), &c).map(|_| ()).map_err(|e| match e {
            WarmError::Malformed(_) => (String::new(), 400),
            WarmError::Invalid { field, .. } => (field, 422),
        });
        let expected = expected.map_err(|(f, s)| (f.to_string(), s));
        assert_eq!(got, expected, "{body}");
    }

    #[test]
    fn bodies_are_validated_field_by_field() {
        let ok = r#"{"url": "/r/1", "workspace": "w1"}"#;
        check(&format!(r#"{{"requests": [{ok}]}}"#), Ok(()));
        check(
            &format!(r#"{{"requests": [{ok}], "concurrency": 16, "refresh": true}}"#),
            Ok(()),
        );
        check("{", Err(("", 400)));
        check(r#"{"requests": []}"#, Ok(()));
        check(r#"{}"#, Err(("requests", 422)));
        check(
            &format!(r#"{{"requests": [{ok}], "concurrency": 0}}"#),
            Err(("concurrency", 422)),
        );
        check(
            &format!(r#"{{"requests": [{ok}], "concurrency": 17}}"#),
            Err(("concurrency", 422)),
        );
        check(
            &format!(r#"{{"requests": [{ok}], "concurrency": "4"}}"#),
            Err(("concurrency", 422)),
        );
        let many = vec![ok; MAX_ITEMS + 1].join(",");
        check(
            &format!(r#"{{"requests": [{many}]}}"#),
            Err(("requests", 422)),
        );
        let bad_at_3 = |item: &str| format!(r#"{{"requests": [{ok}, {ok}, {ok}, {item}]}}"#);
        for (item, field) in [
            (r#"{"url": "http://evil.example/x"}"#, "requests[3].url"),
            (r#"{"url": "evil.example/x"}"#, "requests[3].url"),
            (r#"{"url": "/a b"}"#, "requests[3].url"),
            (r#"{"url": "/a#frag"}"#, "requests[3].url"),
            (r#"{"workspace": "w1"}"#, "requests[3].url"),
            (r#"{"url": 7}"#, "requests[3].url"),
            (r#"{"url": "/r/1", "method": "POST"}"#, "requests[3].method"),
            (
                r#"{"url": "/r/1", "workspace": ""}"#,
                "requests[3].workspace",
            ),
            (r#"{"url": "/r/1", "user": "a b"}"#, "requests[3].user"),
            (
                r#"{"url": "/r/1", "headers": {"Host": "evil.example"}}"#,
                "requests[3].headers.host",
            ),
            (
                r#"{"url": "/r/1", "headers": {"transfer-encoding": "chunked"}}"#,
                "requests[3].headers.transfer-encoding",
            ),
            (
                r#"{"url": "/r/1", "headers": {"bad name": "x"}}"#,
                "requests[3].headers.bad name",
            ),
            (
                r#"{"url": "/r/1", "headers": {"x-a": "line\nbreak"}}"#,
                "requests[3].headers.x-a",
            ),
            (
                r#"{"url": "/r/1", "workspace": "w1", "headers": {"X-Workspace-ID": "w2"}}"#,
                "requests[3].headers.x-workspace-id",
            ),
        ] {
            check(&bad_at_3(item), Err((field, 422)));
        }
        // The same identity in both places is fine.
        check(
            &bad_at_3(r#"{"url": "/r/1", "workspace": "w1", "headers": {"x-workspace-id": "w1"}}"#),
            Ok(()),
        );
    }

    #[test]
    fn identities_need_a_header_source_and_jwt_items_need_a_token() {
        let none = config("");
        let e = parse(
            br#"{"requests": [{"url": "/r/1", "workspace": "w1"}]}"#,
            &none,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("requests[0].workspace"));
        let jwt = config(
            "tenant:\n  jwt:\n    algorithms: [HS256]\n    secret: \"${S}\"\n  workspace: { claim: workspace_id }\n  user: { claim: sub }",
        );
        let e = parse(
            br#"{"requests": [{"url": "/r/1", "workspace": "w1"}]}"#,
            &jwt,
        )
        .unwrap_err();
        assert_eq!(e.field(), Some("requests[0].headers.authorization"));
        let plan = parse(
            br#"{"requests": [{"url": "/r/1", "workspace": "w1", "headers": {"Authorization": "Bearer x"}}]}"#,
            &jwt,
        )
        .unwrap();
        // The workspace fills the header the token must agree with.
        assert_eq!(plan.items[0].headers.get("x-workspace-id").unwrap(), "w1");
    }

    #[test]
    fn answers_map_to_outcomes() {
        let check = |x: Option<&str>, cs: Option<&str>, refresh: bool, want: (Outcome, &str)| {
            let (o, d) = classify(200, x, cs, refresh, None);
            assert_eq!(o, want.0, "{x:?} {cs:?}");
            assert!(d.contains(want.1), "{d:?} lacks {:?}", want.1);
        };
        check(
            Some("HIT"),
            Some("tagcache; hit; ttl=117"),
            false,
            (Outcome::Fresh, "ttl=117"),
        );
        check(
            Some("HIT"),
            Some("tagcache; hit; ttl=117"),
            true,
            (Outcome::Fresh, "honor_client_no_cache"),
        );
        check(
            Some("MISS"),
            Some("tagcache; fwd=miss; fwd-status=200; stored"),
            false,
            (Outcome::Stored, "fwd=miss"),
        );
        check(
            Some("MISS"),
            Some("tagcache; fwd=request; fwd-status=200; stored"),
            true,
            (Outcome::Stored, "fwd=request"),
        );
        check(
            Some("MISS"),
            Some("tagcache; fwd=miss; fwd-status=500; detail=uncacheable-status"),
            false,
            (Outcome::NotStored, "uncacheable-status"),
        );
        check(
            Some("BYPASS"),
            Some("tagcache; fwd=bypass; detail=no-route"),
            false,
            (Outcome::Bypassed, "no-route"),
        );
        check(
            Some("STALE"),
            Some("tagcache; hit; ttl=-3; detail=stale"),
            false,
            (Outcome::NotStored, "stale"),
        );
        check(
            Some("REVALIDATED"),
            Some("tagcache; fwd=stale; fwd-status=304"),
            false,
            (Outcome::Stored, "revalidated"),
        );
        check(None, None, false, (Outcome::Error, "X-Cache-Status"));
        let (o, d) = classify(
            401,
            Some("BYPASS"),
            None,
            false,
            Some("unauthorized: bad token"),
        );
        assert_eq!(o, Outcome::Bypassed);
        assert!(d.starts_with("refused (401)"), "{d}");
    }

    #[tokio::test]
    async fn an_unreachable_proxy_is_an_error_per_item() {
        let c = config(HEADERS);
        let plan = parse(
            br#"{"requests": [{"url": "/r/1", "workspace": "w1"}, {"url": "/r/2"}]}"#,
            &c,
        )
        .unwrap();
        // A port bound then released: nothing listens there.
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap();
        let answer = run(plan, free, Duration::from_secs(5)).await;
        assert_eq!(answer["errors"], 2, "{answer}");
        assert_eq!(answer["results"][0]["outcome"], "error");
        assert!(answer["results"][0]["status"].is_null());
        let detail = answer["results"][1]["detail"].as_str().unwrap();
        assert!(detail.starts_with("proxy unreachable"), "{detail}");
    }

    #[test]
    fn a_wildcard_listen_is_warmed_on_loopback() {
        let t = |s: &str| target(s.parse().unwrap()).to_string();
        assert_eq!(t("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(t("[::]:8080"), "[::1]:8080");
        assert_eq!(t("10.0.0.5:8080"), "10.0.0.5:8080");
    }
}
