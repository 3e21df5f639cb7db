//! Storage policy: which origin responses a shared cache may keep, which
//! stored responses a request may be handed, and what of a response is
//! never stored.
//!
//! Every decision reads `Cache-Control` from every field line
//! ([`Directives`]), never one parsed copy.

use http::{header, HeaderMap, HeaderName};
use pingora_http::{RequestHeader, ResponseHeader};

use super::directives::Directives;
use crate::config::Route;

/// Why an origin response was not stored. Shown as
/// `Cache-Status: ...; detail=uncacheable-{label}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// The status is not in the route's `statuses`.
    Status,
    /// The response sets a cookie.
    SetCookie,
    /// `Cache-Control: private`, in any form, on any line.
    Private,
    /// `Cache-Control: no-store` on any line.
    NoStore,
    /// `Cache-Control: no-cache` without a field list.
    NoCache,
    /// A `Cache-Control` line that is not a directive list.
    CacheControlInvalid,
    /// `Vary` on a header outside the route's key, or unreadable.
    Vary,
    /// `Vary: *`.
    VaryStar,
    /// Larger than the store's `max_object_size`.
    TooLarge,
    /// The request carried `Authorization`, the key holds no identity, and
    /// the origin did not mark the response shareable (RFC 9111 §3.5).
    Authorization,
    /// `freshness: origin`: the response carries no freshness information
    /// and no heuristic applies (RFC 9111 §4.2.2).
    NoFreshness,
    /// `freshness: origin`: the response is already stale (older than its
    /// lifetime, or with invalid freshness) and has no validator to
    /// revalidate it with.
    StaleOnArrival,
}

impl NotStored {
    /// The label in `Cache-Status` details and in pingora's no-cache reason.
    pub fn as_str(self) -> &'static str {
        match self {
            NotStored::Status => "status",
            NotStored::SetCookie => "set-cookie",
            NotStored::Private => "private",
            NotStored::NoStore => "no-store",
            NotStored::NoCache => "no-cache",
            NotStored::CacheControlInvalid => "cache-control-invalid",
            NotStored::Vary => "vary",
            NotStored::VaryStar => "vary-star",
            NotStored::TooLarge => "too-large",
            NotStored::Authorization => "authorization",
            NotStored::NoFreshness => "no-freshness",
            NotStored::StaleOnArrival => "stale-on-arrival",
        }
    }
}

/// Whether an origin response may be stored for `route`.
///
/// # Errors
/// Why not, when it may not.
pub(crate) fn storable(
    route: &Route,
    resp: &ResponseHeader,
    max_object: usize,
) -> Result<(), NotStored> {
    storable_if(route, resp, max_object, true)
}

/// [`storable`] without the `Cache-Control` checks, which a
/// `freshness: origin` route makes in `freshness_policy` from the field
/// that applies (a targeted one may stand in for `Cache-Control`).
///
/// # Errors
/// Why not, when it may not.
pub(crate) fn storable_by_origin(
    route: &Route,
    resp: &ResponseHeader,
    max_object: usize,
) -> Result<(), NotStored> {
    storable_if(route, resp, max_object, false)
}

fn storable_if(
    route: &Route,
    resp: &ResponseHeader,
    max_object: usize,
    directives: bool,
) -> Result<(), NotStored> {
    if !route.statuses.contains(&resp.status.as_u16()) {
        return Err(NotStored::Status);
    }
    if resp.headers.contains_key(header::SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    if directives {
        let cc = Directives::of(&resp.headers);
        if cc.malformed {
            return Err(NotStored::CacheControlInvalid);
        }
        if cc.private {
            return Err(NotStored::Private);
        }
        if cc.no_store {
            return Err(NotStored::NoStore);
        }
        if cc.no_cache {
            return Err(NotStored::NoCache);
        }
    }
    for vary in resp.headers.get_all(header::VARY) {
        let Ok(v) = vary.to_str() else {
            return Err(NotStored::Vary);
        };
        for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return Err(NotStored::VaryStar);
            }
            let allowed = name.eq_ignore_ascii_case("accept-encoding")
                || route
                    .vary
                    .iter()
                    .any(|v| v.as_str().eq_ignore_ascii_case(name));
            if !allowed {
                return Err(NotStored::Vary);
            }
        }
    }
    let len = resp
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if len.is_some_and(|l| l > max_object) {
        return Err(NotStored::TooLarge);
    }
    Ok(())
}

/// Whether the origin marked a response as shareable even when the request
/// carried `Authorization` (RFC 9111 §3.5).
pub(crate) fn shareable(headers: &HeaderMap) -> bool {
    let cc = Directives::of(headers);
    !cc.malformed && (cc.public || cc.must_revalidate || cc.s_maxage)
}

/// Whether the client asked for a fresh copy (`no-cache`, `max-age=0` or
/// `Pragma: no-cache`).
pub(crate) fn client_wants_fresh(req: &RequestHeader) -> bool {
    let cc = Directives::of(&req.headers);
    cc.no_cache
        || cc.max_age_zero
        || req
            .headers
            .get(header::PRAGMA)
            .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"no-cache"))
}

/// Headers a stored copy never keeps: hop-by-hop fields (RFC 9110 §7.6.1),
/// and the fields a `no-cache="..."` names (RFC 9111 §5.2.2.4: a shared
/// cache may not send them without revalidation, so it does not keep them).
/// Framing fields are never in the list; the store sets its own.
pub(crate) fn unstored_fields(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut out: Vec<HeaderName> = vec![
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::UPGRADE,
    ];
    let mut add = |name: &str| {
        if let Ok(n) = HeaderName::from_bytes(name.trim().as_bytes()) {
            if !is_framing(&n) && !out.contains(&n) {
                out.push(n);
            }
        }
    };
    for n in connection_nominations(headers) {
        add(n.as_str());
    }
    for f in Directives::of(headers).no_cache_fields {
        add(&f);
    }
    out
}

/// The fields a message's `Connection` header nominates (RFC 9110 §7.6.1),
/// without the connection options `close` and `keep-alive` and without
/// framing fields.
pub(crate) fn connection_nominations(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut out = Vec::new();
    for v in headers.get_all(header::CONNECTION) {
        for t in v.as_bytes().split(|b| *b == b',') {
            if let Ok(n) = HeaderName::from_bytes(trim(t)) {
                if !is_framing(&n) && !out.contains(&n) {
                    out.push(n);
                }
            }
        }
    }
    out
}

/// Fields that frame or type the message: never dropped from a response,
/// whatever its `Connection` or `no-cache` lists say.
fn is_framing(name: &HeaderName) -> bool {
    matches!(
        *name,
        header::CONTENT_LENGTH | header::TRANSFER_ENCODING | header::CONTENT_TYPE
    ) || name.as_str() == "close"
        || name.as_str() == "keep-alive"
}

/// Whether a request's own headers would let it change the origin's answer
/// in a way its key cannot see: a `Connection` header that nominates any
/// field (Pingora drops nominated fields before the origin sees them, so a
/// keyed identity or `Vary` header could vanish), or an `Upgrade`.
pub(crate) fn nominates_fields(req: &RequestHeader) -> bool {
    if req.headers.contains_key(header::UPGRADE) {
        return true;
    }
    req.headers.get_all(header::CONNECTION).iter().any(|v| {
        v.as_bytes().split(|b| *b == b',').any(|t| {
            let t = trim(t);
            !t.is_empty()
                && !t.eq_ignore_ascii_case(b"keep-alive")
                && !t.eq_ignore_ascii_case(b"close")
        })
    })
}

/// Whether a request carries a body: `Transfer-Encoding`, or a
/// `Content-Length` other than zero (an unreadable one counts).
pub(crate) fn has_body(req: &RequestHeader) -> bool {
    if req.headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    req.headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .any(|v| trim(v.as_bytes()).iter().any(|b| *b != b'0'))
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let end = s
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_whitespace())
        .count();
    if start + end >= s.len() {
        &[]
    } else {
        &s[start..s.len() - end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Route {
        let yaml = "upstream: { address: \"127.0.0.1:1\" }\nroutes:\n  - { name: r, match: \"GET /r/{id}\", ttl: 60s }\n";
        let loaded = crate::config::load_str(yaml, "t.yaml", &|_| None).expect("config");
        loaded.config.routes[0].clone()
    }

    fn resp(headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/r/1", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn check(headers: &[(&str, &str)], expected: Result<(), NotStored>) {
        assert_eq!(
            storable(&route(), &resp(headers), 1 << 20),
            expected,
            "{headers:?}"
        );
    }

    #[test]
    fn storability_reads_every_cache_control_line() {
        check(&[], Ok(()));
        check(&[("cache-control", "max-age=60, public")], Ok(()));
        check(&[("cache-control", "private")], Err(NotStored::Private));
        check(
            &[
                ("cache-control", "private"),
                ("cache-control", "private=\"X-User-Token\""),
            ],
            Err(NotStored::Private),
        );
        check(
            &[("cache-control", "private, private=\"X-User-Token\"")],
            Err(NotStored::Private),
        );
        check(
            &[("cache-control", "max-age=600, private=\"X-User-Token\"")],
            Err(NotStored::Private),
        );
        check(
            &[("cache-control", "public"), ("cache-control", "NO-STORE")],
            Err(NotStored::NoStore),
        );
        check(&[("cache-control", "No-Cache")], Err(NotStored::NoCache));
        check(
            &[("cache-control", "max-age=600, no-cache=\"X-User-Token\"")],
            Ok(()),
        );
        check(
            &[("cache-control", "max-age=\"60")],
            Err(NotStored::CacheControlInvalid),
        );
        check(&[("set-cookie", "a=b")], Err(NotStored::SetCookie));
        check(&[("vary", "*")], Err(NotStored::VaryStar));
        check(&[("vary", "X-User-ID")], Err(NotStored::Vary));
        check(&[("vary", "Accept-Encoding")], Ok(()));
        check(&[("content-length", "2000000")], Err(NotStored::TooLarge));
    }

    #[test]
    fn unstored_fields_cover_connection_and_no_cache_lists() {
        let h = resp(&[
            ("connection", "X-Hop, keep-alive"),
            ("cache-control", "max-age=60, no-cache=\"X-User-Token\""),
            ("connection", "content-length"),
        ]);
        let names = unstored_fields(&h.headers);
        for n in ["x-hop", "x-user-token", "connection", "keep-alive"] {
            assert!(names.iter().any(|h| h == n), "{n} in {names:?}");
        }
        assert!(!names.contains(&header::CONTENT_LENGTH));
    }

    #[test]
    fn connection_nominations_and_upgrades_are_found() {
        assert!(!nominates_fields(&req(&[])));
        assert!(!nominates_fields(&req(&[("connection", "keep-alive")])));
        assert!(!nominates_fields(&req(&[("connection", " Close ")])));
        assert!(nominates_fields(&req(&[("connection", "X-Workspace-ID")])));
        assert!(nominates_fields(&req(&[(
            "connection",
            "keep-alive, x-user-id"
        )])));
        assert!(nominates_fields(&req(&[
            ("connection", "keep-alive"),
            ("connection", "authorization")
        ])));
        assert!(nominates_fields(&req(&[("upgrade", "websocket")])));
    }

    #[test]
    fn request_bodies_are_found() {
        assert!(!has_body(&req(&[])));
        assert!(!has_body(&req(&[("content-length", "0")])));
        assert!(!has_body(&req(&[("content-length", " 00 ")])));
        assert!(has_body(&req(&[("content-length", "33")])));
        assert!(has_body(&req(&[("transfer-encoding", "chunked")])));
        assert!(has_body(&req(&[("content-length", "x")])));
    }

    #[test]
    fn shareable_needs_an_explicit_directive() {
        assert!(!shareable(
            &resp(&[("cache-control", "max-age=60")]).headers
        ));
        assert!(shareable(&resp(&[("cache-control", "Public")]).headers));
        assert!(shareable(&resp(&[("cache-control", "s-maxage=5")]).headers));
        assert!(!shareable(
            &resp(&[("cache-control", "public, max-age=\"5")]).headers
        ));
    }

    #[test]
    fn client_no_cache_in_any_spelling() {
        assert!(client_wants_fresh(&req(&[("cache-control", "No-Cache")])));
        assert!(client_wants_fresh(&req(&[
            ("cache-control", "max-stale=5"),
            ("cache-control", "max-age=0")
        ])));
        assert!(client_wants_fresh(&req(&[("pragma", "no-cache")])));
        assert!(!client_wants_fresh(&req(&[("cache-control", "max-age=5")])));
    }
}
