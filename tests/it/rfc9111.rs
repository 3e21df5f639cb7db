//! `freshness: origin`: tagcache as an RFC 9111 shared cache, one rule per
//! test, each naming the section it checks. The origin sets its response
//! headers from the request's `x-origin-*` headers (see `util::Origin`).

use std::time::{Duration, SystemTime};

use crate::util::{Options, Proxy, Resp};

const ROUTES: &str = r#"
routes:
  - name: origin
    match: "GET /o/{id}"
    freshness: origin
    max_ttl: 1h
  - name: origin_capped
    match: "GET /capped/{id}"
    freshness: origin
    max_ttl: 5s
  - name: origin_default
    match: "GET /dflt/{id}"
    freshness: origin
    default_ttl: 60s
  - name: origin_route_stale
    match: "GET /ostale/{id}"
    freshness: origin
    stale_if_error: 60s
  - name: origin_vary
    match: "GET /vary/{id}"
    freshness: origin
    vary: [Accept-Language]
  - name: origin_user
    match: "GET /mine/{id}"
    freshness: origin
    key: { per_user: true }
  - name: config_mode
    match: "GET /c/{id}"
    ttl: 60s
"#;

fn start() -> Proxy {
    Proxy::start_with(Options {
        routes: ROUTES.into(),
        ..Options::default()
    })
}

/// An `x-origin-header` directive: the origin answers with `name: value`.
fn hdr(name: &str, value: &str) -> (&'static str, String) {
    ("x-origin-header", format!("{name}: {value}"))
}

/// An HTTP-date `secs` seconds from now (negative: in the past).
fn http_date(secs: i64) -> String {
    let now = SystemTime::now();
    let t = if secs >= 0 {
        now + Duration::from_secs(secs as u64)
    } else {
        now - Duration::from_secs(secs.unsigned_abs())
    };
    httpdate::fmt_http_date(t)
}

async fn get(p: &Proxy, path: &str, headers: &[(&'static str, String)]) -> Resp {
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    p.get_with(path, Some("w1"), None, &h).await
}

/// The `ttl` a hit reports in `Cache-Status`: seconds of freshness left.
fn ttl(r: &Resp) -> i64 {
    let cs = r.header("cache-status").unwrap_or_default();
    cs.split(';')
        .find_map(|p| p.trim().strip_prefix("ttl="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no ttl in {cs:?}"))
}

fn age(r: &Resp) -> u64 {
    r.header("age").expect("age").parse().expect("age number")
}

/// Stores `path` (a miss that is stored), then returns a hit on it.
async fn stored_hit(p: &Proxy, path: &str, headers: &[(&'static str, String)]) -> Resp {
    let a = get(p, path, headers).await;
    assert_eq!(a.cache(), "MISS", "{:?}", a.header("cache-status"));
    assert!(
        a.header("cache-status").unwrap().contains("stored"),
        "{:?}",
        a.header("cache-status")
    );
    let b = get(p, path, headers).await;
    assert_eq!(b.cache(), "HIT");
    b
}

/// A miss that is not stored, with the reason `Cache-Status` gives.
async fn not_stored(p: &Proxy, path: &str, headers: &[(&'static str, String)], why: &str) {
    for _ in 0..2 {
        let r = get(p, path, headers).await;
        assert_eq!(r.cache(), "MISS");
        let cs = r.header("cache-status").unwrap();
        assert!(cs.contains(&format!("uncacheable-{why}")), "{cs}");
    }
}

/// RFC 9111 §4.2.1: `max-age` gives the freshness lifetime.
#[tokio::test]
async fn rfc9111_4_2_1_max_age_is_the_freshness_lifetime() {
    let p = start();
    let h = [hdr("Cache-Control", "max-age=30")];
    let hit = stored_hit(&p, "/o/max-age", &h).await;
    assert!((28..=30).contains(&ttl(&hit)), "{}", ttl(&hit));
    // Short lifetimes end; without a validator nothing is kept to
    // revalidate, so the next request is a plain miss.
    let h = [hdr("Cache-Control", "max-age=1")];
    stored_hit(&p, "/o/max-age-1", &h).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = get(&p, "/o/max-age-1", &h).await;
    assert_eq!((r.cache(), r.n()), ("MISS", 2));
}

/// RFC 9111 §4.2.1: `s-maxage` takes precedence over `max-age` in a shared cache.
#[tokio::test]
async fn rfc9111_4_2_1_s_maxage_wins_over_max_age() {
    let p = start();
    let h = [hdr("Cache-Control", "max-age=600, s-maxage=20")];
    let hit = stored_hit(&p, "/o/s-maxage", &h).await;
    assert!((18..=20).contains(&ttl(&hit)), "{}", ttl(&hit));
}

/// RFC 9111 §4.2.1: without `max-age`, `Expires` minus `Date`; and the
/// time since `Date` is the response's apparent age (§4.2.3).
#[tokio::test]
async fn rfc9111_4_2_1_expires_minus_date() {
    let p = start();
    let h = [hdr("Date", &http_date(-10)), hdr("Expires", &http_date(90))];
    let hit = stored_hit(&p, "/o/expires", &h).await;
    assert!((87..=90).contains(&ttl(&hit)), "{}", ttl(&hit));
    assert!((10..=12).contains(&age(&hit)), "{}", age(&hit));
}

/// RFC 9111 §4.2.1: `max-age` takes precedence over `Expires`.
#[tokio::test]
async fn rfc9111_4_2_1_max_age_wins_over_expires() {
    let p = start();
    let h = [
        hdr("Expires", &http_date(3000)),
        hdr("Cache-Control", "max-age=20"),
    ];
    let hit = stored_hit(&p, "/o/both", &h).await;
    assert!((18..=20).contains(&ttl(&hit)), "{}", ttl(&hit));
}

/// RFC 9111 §4.2.1: a duplicated or invalid freshness directive makes the
/// response stale: with a validator it is stored and revalidated before any
/// use, without one it is not stored.
#[tokio::test]
async fn rfc9111_4_2_1_duplicate_or_invalid_freshness_is_stale() {
    let p = start();
    let dup = [
        hdr("Cache-Control", "max-age=60"),
        hdr("Cache-Control", "max-age=60"),
        ("x-origin-etag", "\"d1\"".to_string()),
    ];
    let a = get(&p, "/o/dup", &dup).await;
    assert_eq!(a.cache(), "MISS");
    let b = get(&p, "/o/dup", &dup).await;
    assert_eq!(b.cache(), "REVALIDATED");
    not_stored(
        &p,
        "/o/invalid",
        &[hdr("Cache-Control", "max-age=soon")],
        "stale-on-arrival",
    )
    .await;
    not_stored(
        &p,
        "/o/bad-expires",
        &[hdr("Expires", "0")],
        "stale-on-arrival",
    )
    .await;
}

/// RFC 9111 §4.2.3: a hit's `Age` is the origin's `Age` plus the time the
/// response has spent in the cache, and freshness counts it.
#[tokio::test]
async fn rfc9111_4_2_3_age_counts_upstream_age_and_resident_time() {
    let p = start();
    let h = [hdr("Cache-Control", "max-age=100"), hdr("Age", "30")];
    let hit = stored_hit(&p, "/o/age", &h).await;
    assert!((30..=31).contains(&age(&hit)), "{}", age(&hit));
    assert!((68..=70).contains(&ttl(&hit)), "{}", ttl(&hit));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = get(&p, "/o/age", &h).await;
    assert_eq!(later.cache(), "HIT");
    assert!((31..=32).contains(&age(&later)), "{}", age(&later));
    // Older than its lifetime already: stale on arrival, not stored
    // without a validator.
    let old = [hdr("Cache-Control", "max-age=100"), hdr("Age", "200")];
    not_stored(&p, "/o/age-old", &old, "stale-on-arrival").await;
}

/// RFC 9111 §4.2.2: no explicit freshness, `Last-Modified` present: 10% of
/// the time since it; without `Last-Modified`, not stored.
#[tokio::test]
async fn rfc9111_4_2_2_heuristic_freshness_from_last_modified() {
    let p = start();
    let h = [
        hdr("Date", &http_date(0)),
        hdr("Last-Modified", &http_date(-1000)),
    ];
    let hit = stored_hit(&p, "/o/heuristic", &h).await;
    assert!((97..=100).contains(&ttl(&hit)), "{}", ttl(&hit));
    not_stored(&p, "/o/no-freshness", &[], "no-freshness").await;
    // Not heuristically cacheable (RFC 9110 §15.1): a 500 is not stored.
    let e = [
        ("x-origin-status", "500".to_string()),
        hdr("Last-Modified", &http_date(-1000)),
    ];
    not_stored(&p, "/o/heuristic-500", &e, "status").await;
}

/// RFC 9111 §4.2.2: `default_ttl` is the operator's heuristic, for
/// responses the origin gives no freshness.
#[tokio::test]
async fn rfc9111_4_2_2_default_ttl_where_the_origin_says_nothing() {
    let p = start();
    let hit = stored_hit(&p, "/dflt/1", &[]).await;
    assert!((58..=60).contains(&ttl(&hit)), "{}", ttl(&hit));
    let hit = stored_hit(&p, "/dflt/2", &[hdr("Cache-Control", "max-age=20")]).await;
    assert!((18..=20).contains(&ttl(&hit)), "{}", ttl(&hit));
}

/// `max_ttl` caps whatever the origin says.
#[tokio::test]
async fn rfc9111_4_2_1_max_ttl_caps_origin_freshness() {
    let p = start();
    let hit = stored_hit(&p, "/capped/1", &[hdr("Cache-Control", "s-maxage=3600")]).await;
    assert!((3..=5).contains(&ttl(&hit)), "{}", ttl(&hit));
}

/// RFC 9111 §3 and RFC 9110 §15.1: statuses cacheable by default are stored
/// when fresh, others are not.
#[tokio::test]
async fn rfc9111_3_default_cacheable_statuses() {
    let p = start();
    for status in ["404", "410", "301"] {
        let path = format!("/o/status-{status}");
        let h = [
            ("x-origin-status", status.to_string()),
            hdr("Cache-Control", "max-age=60"),
        ];
        let hit = stored_hit(&p, &path, &h).await;
        assert_eq!(hit.status.to_string(), status);
    }
    let h = [
        ("x-origin-status", "302".to_string()),
        hdr("Cache-Control", "max-age=60"),
    ];
    not_stored(&p, "/o/status-302", &h, "status").await;
}

/// RFC 9111 §5.2.2.5: `no-store` is never stored.
#[tokio::test]
async fn rfc9111_5_2_2_5_no_store() {
    let p = start();
    let h = [hdr("Cache-Control", "max-age=60, no-store")];
    not_stored(&p, "/o/no-store", &h, "no-store").await;
}

/// RFC 9111 §5.2.2.7: `private`, bare or with a field list, on any line,
/// is never stored by a shared cache.
#[tokio::test]
async fn rfc9111_5_2_2_7_private_in_every_form() {
    let p = start();
    for (i, cc) in [
        &["private, max-age=60"][..],
        &["max-age=60, private=\"X-User\""],
        &["max-age=60", "Private"],
    ]
    .iter()
    .enumerate()
    {
        let h: Vec<_> = cc.iter().map(|v| hdr("Cache-Control", v)).collect();
        not_stored(&p, &format!("/o/private-{i}"), &h, "private").await;
    }
}

/// RFC 9111 §5.2.2.4: `no-cache` is stored, and revalidated before every use.
#[tokio::test]
async fn rfc9111_5_2_2_4_no_cache_is_revalidated_every_time() {
    let p = start();
    let h = [
        hdr("Cache-Control", "no-cache, max-age=600"),
        ("x-origin-etag", "\"nc\"".to_string()),
    ];
    let a = get(&p, "/o/no-cache", &h).await;
    assert_eq!(a.cache(), "MISS");
    for _ in 0..2 {
        let r = get(&p, "/o/no-cache", &h).await;
        assert_eq!((r.status, r.cache()), (200, "REVALIDATED"));
        assert_eq!(r.n(), 1, "the stored body");
    }
    assert_eq!(p.origin.hits("/o/no-cache"), 3);
    // Without a validator it could only be refetched: not stored.
    let h = [hdr("Cache-Control", "no-cache")];
    not_stored(&p, "/o/no-cache-plain", &h, "no-cache").await;
}

/// Serves `path` once with `cc`, waits until it is stale, and asks again
/// while the origin answers 503.
async fn stale_then_error(p: &Proxy, path: &str, cc: &str) -> Resp {
    let h = [hdr("Cache-Control", cc)];
    get(p, path, &h).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut h = h.to_vec();
    h.push(("x-origin-status", "503".to_string()));
    get(p, path, &h).await
}

/// RFC 5861 §4: `stale-if-error` from the origin serves a stale response
/// when the origin fails.
#[tokio::test]
async fn rfc5861_4_stale_if_error_from_the_origin() {
    let p = start();
    let r = stale_then_error(&p, "/o/sie", "max-age=1, stale-if-error=60").await;
    assert_eq!((r.status, r.cache(), r.n()), (200, "STALE", 1));
}

/// RFC 9111 §5.2.2.2 and §5.2.2.8: `must-revalidate` and
/// `proxy-revalidate` forbid serving stale, even where `stale-if-error`
/// (the origin's or the route's) would allow it.
#[tokio::test]
async fn rfc9111_5_2_2_2_must_revalidate_is_never_served_stale() {
    let p = start();
    for (path, cc) in [
        ("/o/must", "max-age=1, stale-if-error=60, must-revalidate"),
        ("/o/proxy", "max-age=1, stale-if-error=60, proxy-revalidate"),
        ("/ostale/must", "max-age=1, must-revalidate"),
    ] {
        let r = stale_then_error(&p, path, cc).await;
        assert_eq!(r.status, 503, "{cc}");
    }
    // The route's own window applies when the origin allows it.
    let r = stale_then_error(&p, "/ostale/ok", "max-age=1").await;
    assert_eq!((r.status, r.cache()), (200, "STALE"));
}

/// RFC 9111 §5.2.2.10: `s-maxage` implies `proxy-revalidate`.
#[tokio::test]
async fn rfc9111_5_2_2_10_s_maxage_implies_proxy_revalidate() {
    let p = start();
    let r = stale_then_error(&p, "/o/smax-stale", "s-maxage=1, stale-if-error=60").await;
    assert_eq!(r.status, 503);
}

/// RFC 5861 §3: `stale-while-revalidate` from the origin serves stale while
/// one background revalidation runs.
#[tokio::test]
async fn rfc5861_3_stale_while_revalidate_from_the_origin() {
    let p = start();
    let h = [hdr("Cache-Control", "max-age=1, stale-while-revalidate=60")];
    get(&p, "/o/swr", &h).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let s = get(&p, "/o/swr", &h).await;
    assert_eq!((s.cache(), s.n()), ("STALE", 1));
    let mut refreshed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if p.origin.hits("/o/swr") == 2 {
            refreshed = true;
            break;
        }
    }
    assert!(refreshed, "background refresh never reached the origin");
}

/// RFC 9213 §2.1: `CDN-Cache-Control` wins over `Cache-Control`, and a
/// targeted `Tagcache-Cache-Control` wins over both; an invalid targeted
/// field is ignored.
#[tokio::test]
async fn rfc9213_targeted_fields_take_precedence() {
    let p = start();
    let h = [
        hdr("Cache-Control", "no-store"),
        hdr("CDN-Cache-Control", "max-age=40"),
    ];
    let hit = stored_hit(&p, "/o/cdn", &h).await;
    assert!((38..=40).contains(&ttl(&hit)), "{}", ttl(&hit));
    let h = [
        hdr("Cache-Control", "max-age=5"),
        hdr("CDN-Cache-Control", "max-age=40"),
        hdr("Tagcache-Cache-Control", "max-age=20"),
    ];
    let hit = stored_hit(&p, "/o/targeted", &h).await;
    assert!((18..=20).contains(&ttl(&hit)), "{}", ttl(&hit));
    let h = [
        hdr("Cache-Control", "max-age=20"),
        hdr("Tagcache-Cache-Control", "Max-Age=600"),
    ];
    let hit = stored_hit(&p, "/o/targeted-invalid", &h).await;
    assert!((18..=20).contains(&ttl(&hit)), "{}", ttl(&hit));
    let h = [
        hdr("Cache-Control", "max-age=20"),
        hdr("CDN-Cache-Control", "no-store"),
    ];
    not_stored(&p, "/o/cdn-no-store", &h, "no-store").await;
}

/// RFC 9111 §4.3.1, §4.3.3: a stale entry with an `ETag` is revalidated
/// with `If-None-Match`; the 304 refreshes it and the stored body is served.
#[tokio::test]
async fn rfc9111_4_3_3_revalidation_with_etag() {
    let p = start();
    let h = [
        hdr("Cache-Control", "max-age=1"),
        ("x-origin-etag", "\"e1\"".to_string()),
    ];
    get(&p, "/o/reval-etag", &h).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = get(&p, "/o/reval-etag", &h).await;
    assert_eq!((r.status, r.cache(), r.n()), (200, "REVALIDATED", 1));
    let sent = p.origin.last_headers("/o/reval-etag");
    assert!(
        sent.iter()
            .any(|(k, v)| k == "if-none-match" && v == "\"e1\""),
        "{sent:?}"
    );
    // Fresh again after the 304.
    let again = get(&p, "/o/reval-etag", &h).await;
    assert_eq!((again.cache(), again.n()), ("HIT", 1));
}

/// RFC 9111 §4.3.1: with only `Last-Modified`, revalidation uses
/// `If-Modified-Since`.
#[tokio::test]
async fn rfc9111_4_3_1_revalidation_with_last_modified() {
    let p = start();
    let lm = http_date(-3600);
    let h = [
        hdr("Cache-Control", "max-age=1"),
        ("x-origin-last-modified", lm.clone()),
    ];
    get(&p, "/o/reval-lm", &h).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = get(&p, "/o/reval-lm", &h).await;
    assert_eq!((r.status, r.cache(), r.n()), (200, "REVALIDATED", 1));
    let sent = p.origin.last_headers("/o/reval-lm");
    assert!(
        sent.iter()
            .any(|(k, v)| k == "if-modified-since" && *v == lm),
        "{sent:?}"
    );
}

/// RFC 9111 §4.3.4: a 304 updates the stored header fields (here a new
/// field and a new lifetime), and later hits carry them.
#[tokio::test]
async fn rfc9111_4_3_4_304_updates_the_stored_headers() {
    let p = start();
    let etag = ("x-origin-etag", "\"u1\"".to_string());
    let first = [
        hdr("Cache-Control", "max-age=1"),
        hdr("X-Stamp", "one"),
        etag.clone(),
    ];
    get(&p, "/o/update", &first).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let second = [
        hdr("Cache-Control", "max-age=50"),
        hdr("X-Stamp", "two"),
        etag,
    ];
    let r = get(&p, "/o/update", &second).await;
    assert_eq!(r.cache(), "REVALIDATED");
    assert_eq!(r.header("x-stamp"), Some("two"));
    let hit = get(&p, "/o/update", &[]).await;
    assert_eq!((hit.cache(), hit.n()), ("HIT", 1));
    assert_eq!(hit.header("x-stamp"), Some("two"));
    assert!((48..=50).contains(&ttl(&hit)), "{}", ttl(&hit));
}

/// RFC 9111 §4.3.3: a full response to a revalidation replaces the entry.
#[tokio::test]
async fn rfc9111_4_3_3_a_200_replaces_the_entry() {
    let p = start();
    let v1 = [
        hdr("Cache-Control", "max-age=1"),
        ("x-origin-etag", "\"r1\"".to_string()),
    ];
    get(&p, "/o/replace", &v1).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let v2 = [
        hdr("Cache-Control", "max-age=60"),
        ("x-origin-etag", "\"r2\"".to_string()),
    ];
    let r = get(&p, "/o/replace", &v2).await;
    assert_eq!((r.status, r.cache(), r.n()), (200, "EXPIRED", 2));
    let hit = get(&p, "/o/replace", &[]).await;
    assert_eq!((hit.cache(), hit.n()), ("HIT", 2));
    assert_eq!(hit.header("etag"), Some("\"r2\""));
}

/// RFC 9111 §4.3.2: a client's conditional request is answered 304 from a
/// fresh entry whose validator matches; RFC 9110 §14.2: a `Range` request
/// gets 206 from a stored full response.
#[tokio::test]
async fn rfc9111_4_3_2_conditional_and_range_requests_from_a_fresh_entry() {
    let p = start();
    let lm = http_date(-3600);
    let h = [
        hdr("Cache-Control", "max-age=60"),
        ("x-origin-etag", "\"c1\"".to_string()),
        ("x-origin-last-modified", lm.clone()),
        ("x-origin-body-size", "100".to_string()),
    ];
    stored_hit(&p, "/o/cond", &h).await;
    let inm = get(&p, "/o/cond", &[("if-none-match", "\"c1\"".into())]).await;
    assert_eq!((inm.status, inm.cache()), (304, "HIT"));
    let ims = get(&p, "/o/cond", &[("if-modified-since", lm)]).await;
    assert_eq!((ims.status, ims.cache()), (304, "HIT"));
    let other = get(&p, "/o/cond", &[("if-none-match", "\"c0\"".into())]).await;
    assert_eq!((other.status, other.text.len()), (200, 100));
    let range = get(&p, "/o/cond", &[("range", "bytes=0-9".into())]).await;
    assert_eq!((range.status, range.cache()), (206, "HIT"));
    assert_eq!(range.header("content-range"), Some("bytes 0-9/100"));
    assert_eq!(range.text.len(), 10);
    assert_eq!(p.origin.hits("/o/cond"), 1);
}

/// RFC 9110 §9.3.2 and RFC 9111 §4: `HEAD` is answered from a stored `GET`
/// response, and a `HEAD` miss fills the entry a `GET` then hits.
#[tokio::test]
async fn rfc9111_4_head_is_answered_from_a_stored_get() {
    let p = start();
    let h = [hdr("Cache-Control", "max-age=60"), hdr("X-Stamp", "get")];
    stored_hit(&p, "/o/head", &h).await;
    let head = p
        .client
        .head(p.url("/o/head"))
        .header("X-Workspace-ID", "w1")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["x-cache-status"], "HIT");
    assert_eq!(head.headers()["x-stamp"], "get");
    assert!(head.bytes().await.unwrap().is_empty());
    assert_eq!(p.origin.hits("/o/head"), 1);

    let miss = p
        .client
        .head(p.url("/o/head-first"))
        .header("X-Workspace-ID", "w1")
        .header("x-origin-header", "Cache-Control: max-age=60")
        .send()
        .await
        .unwrap();
    assert_eq!(miss.headers()["x-cache-status"], "MISS");
    let sent = p.origin.last_headers("/o/head-first");
    assert!(!sent.is_empty());
    let g = get(&p, "/o/head-first", &[]).await;
    assert_eq!(g.cache(), "HIT");
    assert_eq!(g.json()["method"], "GET");
}

/// RFC 9111 §4.1: a response that `Vary`s on a header of the route's
/// allowlist is only used for requests with the same value.
#[tokio::test]
async fn rfc9111_4_1_vary_selects_the_stored_response() {
    let p = start();
    let cc = hdr("Cache-Control", "max-age=60");
    let vary = hdr("Vary", "Accept-Language");
    let en = [cc.clone(), vary.clone(), ("accept-language", "en".into())];
    let fr = [cc, vary, ("accept-language", "fr".into())];
    assert_eq!(get(&p, "/vary/1", &en).await.cache(), "MISS");
    assert_eq!(get(&p, "/vary/1", &fr).await.cache(), "MISS");
    let e = get(&p, "/vary/1", &en).await;
    let f = get(&p, "/vary/1", &fr).await;
    assert_eq!((e.cache(), e.n()), ("HIT", 1));
    assert_eq!((f.cache(), f.n()), ("HIT", 2));
    // Outside the allowlist: not stored.
    let other = [hdr("Cache-Control", "max-age=60"), hdr("Vary", "X-Other")];
    not_stored(&p, "/o/vary-other", &other, "vary").await;
}

/// RFC 9111 §5.2.2.9 with tenants: `public` does not make a workspace's
/// response shareable with another workspace, nor a user's with another
/// user, where the route keys by them.
#[tokio::test]
async fn rfc9111_5_2_2_9_public_never_crosses_tenants() {
    let p = start();
    let h = [("x-origin-header", "Cache-Control: public, max-age=60")];
    let a = p.get_with("/o/tenant", Some("w1"), None, &h).await;
    assert_eq!(a.cache(), "MISS");
    let b = p.get_with("/o/tenant", Some("w2"), None, &h).await;
    assert_eq!(
        (b.cache(), b.json()["workspace"].as_str()),
        ("MISS", Some("w2"))
    );
    let c = p.get_with("/o/tenant", Some("w1"), None, &h).await;
    assert_eq!(
        (c.cache(), c.json()["workspace"].as_str()),
        ("HIT", Some("w1"))
    );

    let u1 = p.get_with("/mine/1", Some("w1"), Some("u1"), &h).await;
    let u2 = p.get_with("/mine/1", Some("w1"), Some("u2"), &h).await;
    assert_eq!((u1.cache(), u2.cache()), ("MISS", "MISS"));
    assert_eq!(u2.json()["user"], "u2");
    // Without a workspace the request bypasses, public or not.
    let none = p.get_with("/o/tenant", None, None, &h).await;
    assert_eq!(none.cache(), "BYPASS");
}

/// `freshness: config` (the default) still ignores the origin's freshness.
#[tokio::test]
async fn config_mode_ignores_origin_freshness() {
    let p = start();
    let h = [hdr("Cache-Control", "max-age=1")];
    let hit = stored_hit(&p, "/c/1", &h).await;
    assert!((58..=60).contains(&ttl(&hit)), "{}", ttl(&hit));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(get(&p, "/c/1", &h).await.cache(), "HIT");
    // HEAD still passes by in config mode.
    let head = p
        .client
        .head(p.url("/c/1"))
        .header("X-Workspace-ID", "w1")
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["x-cache-status"], "BYPASS");
}
