//! Cache keys: from a matched route and a request to the bytes pingora-cache hashes.
//!
//! A key is made of length-framed parts — a format version, the route name,
//! the workspace, the user (only where the route keys per user), the path
//! parameters, then the allowlisted query parameters (or, with `query: all`,
//! every parameter) sorted by name with defaults applied — so that no two
//! different requests can produce the same bytes by concatenation. Anything
//! that could change the origin's response but cannot be put in the key (an
//! unknown or repeated query parameter, a value that does not decode) makes
//! the request bypass the cache instead.

use std::borrow::Cow;

use percent_encoding::percent_decode;

use crate::route::split_ascii;

use crate::config::{BypassCondition, Route, UnknownQuery};

/// Version of the key layout; bump when the framing changes so old entries
/// simply stop matching.
/// v2 added the route's key fingerprint.
const KEY_VERSION_STR: &str = "tagcache-key-v2";
const KEY_VERSION: &[u8] = KEY_VERSION_STR.as_bytes();

/// Why a request on a cached route is not served from or stored in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BypassReason {
    /// A query parameter not in the route's allowlist (and `unknown_query: bypass`).
    UnknownQuery,
    /// The same allowlisted query parameter given twice.
    RepeatedQuery,
    /// A query name or value that is not valid UTF-8 once decoded.
    BadEncoding,
    /// More query parameters than `limits.max_query_params`.
    TooManyParams,
    /// A `bypass_when` rule matched.
    Rule,
    /// The route is tenant-scoped and the request carries no workspace.
    NoWorkspace,
    /// The key must carry the user and the request carries none.
    NoUser,
    /// The request method is not cacheable (only GET is).
    Method,
    /// The request URI is longer than `limits.max_uri_len`.
    UriTooLong,
    /// The client asked for a fresh response (`Cache-Control: no-cache`).
    ClientNoCache,
    /// No valid token, and `tenant.jwt.on_invalid: pass`: the origin decides.
    Unauthenticated,
    /// The request sends a header that could change the response without
    /// being in the key, on a route with `unkeyed_headers: bypass`.
    UnkeyedHeader,
    /// A GET or HEAD that carries a body (`Content-Length` above zero or
    /// `Transfer-Encoding`): the body may change the answer and is not keyed.
    RequestBody,
    /// A `Connection` header nominating a field (which Pingora removes before
    /// the origin), or an `Upgrade`: what the origin sees is not what was keyed.
    HopByHop,
    /// Caching is switched off for this workspace or route at run time
    /// (the admin API's settings).
    Disabled,
    /// `purge.consistency: sync`, and this instance is not certainly in the
    /// live set that sync purges wait for (Redis out of reach, or it has not
    /// replayed the purges it missed yet): a stored response could be older
    /// than a purge answered as complete.
    Unconfirmed,
}

impl BypassReason {
    /// Short label, used in `Cache-Status` details and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            BypassReason::UnknownQuery => "unknown-query",
            BypassReason::RepeatedQuery => "repeated-query",
            BypassReason::BadEncoding => "bad-encoding",
            BypassReason::TooManyParams => "too-many-params",
            BypassReason::Rule => "rule",
            BypassReason::NoWorkspace => "no-workspace",
            BypassReason::NoUser => "no-user",
            BypassReason::Method => "method",
            BypassReason::UriTooLong => "uri-too-long",
            BypassReason::ClientNoCache => "client-no-cache",
            BypassReason::Unauthenticated => "unauthenticated",
            BypassReason::UnkeyedHeader => "unkeyed-header",
            BypassReason::RequestBody => "request-body",
            BypassReason::HopByHop => "connection",
            BypassReason::Disabled => "disabled",
            BypassReason::Unconfirmed => "unconfirmed",
        }
    }
}

/// The query parameters a key holds, after decoding, dropping empty values
/// and applying defaults: for an allowlist, the value of each allowlisted
/// parameter in allowlist (sorted) order; with `query: all`, every
/// parameter, sorted by name.
#[derive(Debug, Clone, Default)]
pub struct QueryValues<'a> {
    /// By allowlist index (allowlist routes).
    listed: Vec<Option<Cow<'a, str>>>,
    /// Name and value of every parameter, sorted by name (`query: all`).
    all: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// Parses `query` against `route`'s allowlist, or takes every parameter when
/// the route keys `query: all`.
///
/// # Errors
/// Returns the [`BypassReason`] when the query cannot be keyed safely.
pub fn query_values<'a>(
    route: &'a Route,
    query: Option<&'a str>,
    max_params: usize,
) -> Result<QueryValues<'a>, BypassReason> {
    if route.key.query_all {
        return all_values(route, query, max_params);
    }
    let allow = &route.key.query;
    let mut values: Vec<Option<Cow<'a, str>>> = vec![None; allow.len()];
    let mut seen = 0usize;
    for pair in split_ascii(query.unwrap_or(""), b'&') {
        if pair.is_empty() {
            continue;
        }
        seen += 1;
        if seen > max_params {
            return Err(BypassReason::TooManyParams);
        }
        let (name, value) = split_pair(pair);
        let name = decode(name)?;
        match allow.binary_search_by(|a| a.as_str().cmp(&name)) {
            Ok(i) => {
                if values[i].is_some() {
                    return Err(BypassReason::RepeatedQuery);
                }
                let value = decode(value)?;
                // Empty values are dropped, as if absent; the default may apply.
                values[i] = Some(value);
            }
            Err(_) => {
                if route.unknown_query == UnknownQuery::Bypass {
                    return Err(BypassReason::UnknownQuery);
                }
            }
        }
    }
    for (i, name) in allow.iter().enumerate() {
        if values[i].as_deref().is_some_and(str::is_empty) {
            values[i] = None;
        }
        if values[i].is_none() {
            if let Some(default) = route.key.defaults.get(name) {
                values[i] = Some(Cow::Borrowed(default.as_str()));
            }
        }
    }
    Ok(QueryValues {
        listed: values,
        all: Vec::new(),
    })
}

/// `query: all`: every parameter, by the same rules as an allowlist (decoded,
/// empty values dropped, defaults applied, a repeated name refused), sorted
/// by name.
fn all_values<'a>(
    route: &'a Route,
    query: Option<&'a str>,
    max_params: usize,
) -> Result<QueryValues<'a>, BypassReason> {
    let mut all: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::new();
    let mut seen = 0usize;
    for pair in split_ascii(query.unwrap_or(""), b'&') {
        if pair.is_empty() {
            continue;
        }
        seen += 1;
        if seen > max_params {
            return Err(BypassReason::TooManyParams);
        }
        let (name, value) = split_pair(pair);
        all.push((decode(name)?, decode(value)?));
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    if all.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(BypassReason::RepeatedQuery);
    }
    all.retain(|(_, v)| !v.is_empty());
    for (name, default) in &route.key.defaults {
        if let Err(at) = all.binary_search_by(|(n, _)| n.as_ref().cmp(name.as_str())) {
            all.insert(
                at,
                (
                    Cow::Borrowed(name.as_str()),
                    Cow::Borrowed(default.as_str()),
                ),
            );
        }
    }
    Ok(QueryValues {
        listed: Vec::new(),
        all,
    })
}

/// A query parameter's name and value, split at its first `=` (as
/// `split_once('=')`; no `=` is an empty value), by a scan of its bytes.
fn split_pair(pair: &str) -> (&str, &str) {
    match pair.bytes().position(|b| b == b'=') {
        // `=` is ASCII: both ends of it are character boundaries.
        Some(i) => (
            pair.get(..i).unwrap_or(pair),
            pair.get(i + 1..).unwrap_or(""),
        ),
        None => (pair, ""),
    }
}

/// Percent-decodes a query component, `+` meaning space (form encoding, as
/// Express's query parser reads it).
fn decode(raw: &str) -> Result<Cow<'_, str>, BypassReason> {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(Cow::Borrowed(raw));
    }
    let plus_fixed: Cow<'_, [u8]> = if raw.contains('+') {
        Cow::Owned(raw.replace('+', " ").into_bytes())
    } else {
        Cow::Borrowed(raw.as_bytes())
    };
    let decoded: Vec<u8> = percent_decode(&plus_fixed).collect();
    String::from_utf8(decoded)
        .map(Cow::Owned)
        .map_err(|_| BypassReason::BadEncoding)
}

/// Value of an allowlisted parameter by name.
pub fn value_of<'v>(route: &Route, values: &'v QueryValues<'_>, name: &str) -> Option<&'v str> {
    if route.key.query_all {
        let i = values
            .all
            .binary_search_by(|(n, _)| n.as_ref().cmp(name))
            .ok()?;
        return values.all.get(i).map(|(_, v)| v.as_ref());
    }
    let i = route
        .key
        .query
        .binary_search_by(|a| a.as_str().cmp(name))
        .ok()?;
    values.listed.get(i)?.as_deref()
}

/// Whether a `bypass_when` rule of the route matches.
pub fn bypassed(route: &Route, values: &QueryValues<'_>) -> bool {
    route.bypass_when.iter().any(|rule| {
        let v = value_of(route, values, &rule.param);
        match (&rule.when, v) {
            (BypassCondition::Present, v) => v.is_some(),
            (_, None) => false,
            (BypassCondition::GreaterThan(n), Some(v)) => v
                .trim()
                .parse::<f64>()
                .map_or(true, |x| x > *n || x.is_nan()),
            (BypassCondition::LessThan(n), Some(v)) => v
                .trim()
                .parse::<f64>()
                .map_or(true, |x| x < *n || x.is_nan()),
            (BypassCondition::Equals(list), Some(v)) => list.iter().any(|e| e == v),
        }
    })
}

/// Whether the route's key carries the user for these query values.
pub fn is_per_user(route: &Route, values: &QueryValues<'_>) -> bool {
    route.key.per_user
        || route.key.per_user_when.iter().any(|rule| {
            value_of(route, values, &rule.param).is_some_and(|v| rule.values.iter().any(|x| x == v))
        })
}

/// The identity parts of a key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity<'a> {
    /// The workspace, for tenant-scoped routes.
    pub workspace: Option<&'a str>,
    /// The user, when the key is per user.
    pub user: Option<&'a str>,
}

/// Builds the framed primary key bytes.
pub fn primary(
    route: &Route,
    identity: Identity<'_>,
    params: &[Cow<'_, str>],
    values: &QueryValues<'_>,
) -> Vec<u8> {
    let mut len = KEY_VERSION.len() + route.name.len() + 64;
    len += identity.workspace.map_or(0, str::len) + identity.user.map_or(0, str::len);
    len += params.iter().map(|p| p.len() + 4).sum::<usize>();
    len += values
        .listed
        .iter()
        .zip(&route.key.query)
        .map(|(v, n)| v.as_ref().map_or(0, |v| v.len() + n.len() + 8))
        .sum::<usize>();
    len += values
        .all
        .iter()
        .map(|(n, v)| n.len() + v.len() + 8)
        .sum::<usize>();
    let mut out = Vec::with_capacity(len);
    frame(&mut out, KEY_VERSION);
    frame(&mut out, route.name.as_bytes());
    frame(&mut out, &route.key_fingerprint);
    // Absent and present-but-empty identities must differ: tag the presence.
    match identity.workspace {
        Some(w) => {
            frame(&mut out, b"w");
            frame(&mut out, w.as_bytes());
        }
        None => frame(&mut out, b"-"),
    }
    match identity.user {
        Some(u) => {
            frame(&mut out, b"u");
            frame(&mut out, u.as_bytes());
        }
        None => frame(&mut out, b"-"),
    }
    for p in params {
        frame(&mut out, p.as_bytes());
    }
    for (v, name) in values.listed.iter().zip(&route.key.query) {
        if let Some(v) = v {
            frame(&mut out, name.as_bytes());
            frame(&mut out, v.as_bytes());
        }
    }
    // `query: all` (the allowlist is empty then): the same framing, so a key
    // holds name and value of each parameter, sorted by name.
    for (name, v) in &values.all {
        frame(&mut out, name.as_bytes());
        frame(&mut out, v.as_bytes());
    }
    out
}

fn frame(out: &mut Vec<u8>, part: &[u8]) {
    // Parts are bounded by the URI length limit, far below u32::MAX.
    out.extend_from_slice(&(part.len() as u32).to_le_bytes());
    out.extend_from_slice(part);
}

/// Renders framed key bytes readably (for `debug_headers`), e.g.
/// `contact_list|w|w1|-|b1|filter=all|page=1`.
pub fn describe(primary: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut rest = primary;
    while rest.len() >= 4 {
        let n = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        let Some(part) = rest.get(..n) else { break };
        // The third part is the route's key fingerprint: binary, shown in hex.
        if parts.len() == 2 && parts[0] == KEY_VERSION_STR {
            parts.push(hex::encode(part));
        } else {
            parts.push(String::from_utf8_lossy(part).into_owned());
        }
        rest = &rest[n..];
    }
    if parts.first().map(String::as_str) == Some(KEY_VERSION_STR) {
        parts.remove(0);
    }
    parts.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BypassRule, KeySpec, PerUserRule, RouteMethod};
    use std::time::Duration;

    #[test]
    fn split_pair_splits_as_split_once_does() {
        for pair in ["a=b", "a", "=b", "a=", "a=b=c", "é=ü", ""] {
            assert_eq!(
                split_pair(pair),
                pair.split_once('=').unwrap_or((pair, "")),
                "{pair:?}"
            );
        }
    }

    fn route(unknown: UnknownQuery) -> Route {
        let mut query: Vec<String> = [
            "page",
            "pageSize",
            "filter",
            "search",
            "assignedTo",
            "sortBy",
            "sortOrder",
            "columnId",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        query.sort();
        Route {
            name: "contact_list".into(),
            method: RouteMethod::Get,
            segments: vec![],
            ttl: Duration::from_secs(180),
            freshness: Default::default(),
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            key: KeySpec {
                query,
                defaults: [
                    ("page", "1"),
                    ("pageSize", "50"),
                    ("filter", "all"),
                    ("sortBy", "created_at"),
                    ("sortOrder", "desc"),
                ]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
                per_user_when: vec![PerUserRule {
                    param: "filter".into(),
                    values: vec!["assigned_to_me".into()],
                }],
                per_user: false,
                query_all: false,
            },
            unknown_query: unknown,
            bypass_when: vec![BypassRule {
                param: "pageSize".into(),
                when: BypassCondition::GreaterThan(100.0),
            }],
            tags: vec![],
            statuses: vec![200],
            honor_client_no_cache: true,
            unkeyed_headers: crate::config::UnkeyedAction::Strip,
            vary: vec![],
            key_fingerprint: [0; 8],
        }
    }

    /// Key bytes for a query, or the bypass reason.
    fn key(route: &Route, query: &str, ws: &str, user: &str) -> Result<String, BypassReason> {
        let values = query_values(route, Some(query), 64)?;
        if bypassed(route, &values) {
            return Err(BypassReason::Rule);
        }
        let user = is_per_user(route, &values).then_some(user);
        let id = Identity {
            workspace: Some(ws),
            user,
        };
        // The test route's key fingerprint is all zeros: left out of the
        // expected strings below.
        Ok(
            describe(&primary(route, id, &[Cow::Borrowed("b1")], &values)).replacen(
                "|0000000000000000",
                "",
                1,
            ),
        )
    }

    fn check(query: &str, expected: Result<&str, BypassReason>) {
        let r = route(UnknownQuery::Bypass);
        assert_eq!(
            key(&r, query, "w1", "u1").as_deref().map_err(|e| *e),
            expected,
            "query {query:?}"
        );
    }

    const BASE: &str =
        "contact_list|w|w1|-|b1|filter|all|page|1|pageSize|50|sortBy|created_at|sortOrder|desc";

    #[test]
    fn normalization() {
        check("", Ok(BASE));
        check("page=1", Ok(BASE));
        check("pageSize=50&page=1", Ok(BASE));
        check("page=1&pageSize=50", Ok(BASE));
        check("page=&search=", Ok(BASE));
        check("&&page=1&", Ok(BASE));
        check("%70age=1", Ok(BASE));
        check("search=a%20b", Ok("contact_list|w|w1|-|b1|filter|all|page|1|pageSize|50|search|a b|sortBy|created_at|sortOrder|desc"));
        check("search=a+b", Ok("contact_list|w|w1|-|b1|filter|all|page|1|pageSize|50|search|a b|sortBy|created_at|sortOrder|desc"));
        check("page=2", Ok("contact_list|w|w1|-|b1|filter|all|page|2|pageSize|50|sortBy|created_at|sortOrder|desc"));
    }

    #[test]
    fn bypasses() {
        check("pageSize=500", Err(BypassReason::Rule));
        check("pageSize=101", Err(BypassReason::Rule));
        check("pageSize=abc", Err(BypassReason::Rule));
        check("pageSize=100", Ok("contact_list|w|w1|-|b1|filter|all|page|1|pageSize|100|sortBy|created_at|sortOrder|desc"));
        check("utm=1", Err(BypassReason::UnknownQuery));
        check("page=1&page=2", Err(BypassReason::RepeatedQuery));
        check("search=%FF", Err(BypassReason::BadEncoding));
    }

    #[test]
    fn unknown_query_ignored_when_configured() {
        let r = route(UnknownQuery::Ignore);
        assert_eq!(key(&r, "utm=1&page=1", "w1", "u1").as_deref(), Ok(BASE));
    }

    #[test]
    fn per_user_only_for_assigned_to_me() {
        let r = route(UnknownQuery::Bypass);
        let a = key(&r, "filter=assigned_to_me", "w1", "u1").unwrap();
        let b = key(&r, "filter=assigned_to_me", "w1", "u2").unwrap();
        assert_ne!(a, b);
        assert!(a.contains("|u|u1|"));
        let c = key(&r, "filter=open", "w1", "u1").unwrap();
        let d = key(&r, "filter=open", "w1", "u2").unwrap();
        assert_eq!(c, d);
    }

    #[test]
    fn workspaces_differ() {
        let r = route(UnknownQuery::Bypass);
        assert_ne!(
            key(&r, "", "w1", "u").unwrap(),
            key(&r, "", "w2", "u").unwrap()
        );
    }

    #[test]
    fn framing_prevents_concatenation_collisions() {
        let r = route(UnknownQuery::Bypass);
        let v = query_values(&r, None, 64).unwrap();
        let a = primary(
            &r,
            Identity {
                workspace: Some("ab"),
                user: None,
            },
            &[Cow::Borrowed("c")],
            &v,
        );
        let b = primary(
            &r,
            Identity {
                workspace: Some("a"),
                user: None,
            },
            &[Cow::Borrowed("bc")],
            &v,
        );
        assert_ne!(a, b);
        let c = primary(
            &r,
            Identity {
                workspace: None,
                user: None,
            },
            &[],
            &v,
        );
        let d = primary(
            &r,
            Identity {
                workspace: Some(""),
                user: None,
            },
            &[],
            &v,
        );
        assert_ne!(c, d);
    }

    #[test]
    fn too_many_params() {
        let r = route(UnknownQuery::Ignore);
        let q = (0..10)
            .map(|i| format!("x{i}=1"))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(
            query_values(&r, Some(&q), 5).err(),
            Some(BypassReason::TooManyParams)
        );
    }

    /// `query: all`: every parameter in the key, sorted by name, by the
    /// allowlist's rules (decoding, empty values, defaults, repeats).
    #[test]
    fn query_all() {
        let mut r = route(UnknownQuery::Bypass);
        r.key.query = Vec::new();
        r.key.query_all = true;
        r.key.defaults = [("lang".to_string(), "en".to_string())].into();
        r.key.per_user_when.clear();
        r.bypass_when.clear();
        let k = |q: &str| key(&r, q, "w1", "u1");
        assert_eq!(
            k("v=2&a=1").as_deref(),
            Ok("contact_list|w|w1|-|b1|a|1|lang|en|v|2")
        );
        assert_eq!(k("a=1&v=2"), k("v=2&a=1"));
        assert_eq!(k("a=%31&v=2&empty="), k("v=2&a=1"));
        assert_eq!(k("lang=en"), k(""));
        assert_ne!(k("lang=fr"), k(""));
        assert_eq!(k("a=1&a=2"), Err(BypassReason::RepeatedQuery));
        assert_eq!(k("a=%FF"), Err(BypassReason::BadEncoding));
        let v = query_values(&r, Some("z=9&b=x"), 64).unwrap();
        assert_eq!(value_of(&r, &v, "b"), Some("x"));
        assert_eq!(value_of(&r, &v, "lang"), Some("en"));
        assert_eq!(value_of(&r, &v, "nope"), None);
        let many = (0..10)
            .map(|i| format!("x{i}=1"))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(
            query_values(&r, Some(&many), 5).err(),
            Some(BypassReason::TooManyParams)
        );
    }
}
