//! Cache poisoning: a request that changes the origin's response through
//! something outside the key must not leave that response for others.
//! The test origin echoes `X-Forwarded-Host` into its body, as a careless
//! origin building absolute links would.

use crate::util::{Options, Proxy};

use super::*;

const EVIL: &str = "evil.example";

/// Every default unkeyed header, with a value an attacker would send.
const UNKEYED: [(&str, &str); 10] = [
    ("x-forwarded-host", EVIL),
    ("x-forwarded-proto", "gopher"),
    ("x-forwarded-scheme", "nothttps"),
    ("x-original-url", "/admin"),
    ("x-rewrite-url", "/admin"),
    ("x-http-method-override", "DELETE"),
    ("x-http-method", "DELETE"),
    ("x-method-override", "DELETE"),
    ("forwarded", "host=evil.example;proto=http"),
    ("x-host", EVIL),
];

#[tokio::test]
async fn unkeyed_headers_are_stripped_before_the_origin_on_cached_routes() {
    let p = Proxy::start();
    let path = "/item/poison-strip";
    let attack = p.get_with(path, Some("w1"), None, &UNKEYED).await;
    assert_eq!(attack.cache(), "MISS");
    // The next client gets the stored response: it must be clean.
    let victim = p.get(path, Some("w1"), None).await;
    assert_eq!(victim.cache(), "HIT");
    assert!(!victim.text.contains(EVIL), "poisoned: {}", victim.text);
    assert!(victim.json()["forwarded_host"].is_null());
    assert!(!attack.text.contains(EVIL), "{}", attack.text);
    let seen = p.origin.last_headers(path);
    for (name, _) in UNKEYED {
        assert!(
            seen.iter().all(|(k, _)| k != name),
            "{name} reached the origin: {seen:?}"
        );
    }
}

#[tokio::test]
async fn unkeyed_headers_are_forwarded_untouched_where_nothing_is_cached() {
    let p = Proxy::start();
    // No route: tagcache is transparent.
    let r = p
        .get_with(
            "/not-cached/x",
            Some("w1"),
            None,
            &[("x-forwarded-host", EVIL)],
        )
        .await;
    assert_eq!(r.json()["forwarded_host"], EVIL);
    // A bypassed request on a cached route (pageSize over 100) is not stored either.
    let r = p
        .get_with(
            "/api/boards/b1/contacts?pageSize=500",
            Some("w1"),
            None,
            &[("x-forwarded-host", EVIL)],
        )
        .await;
    assert_eq!(
        (r.cache(), r.json()["forwarded_host"].as_str()),
        ("BYPASS", Some(EVIL))
    );
}

const BYPASS_ROUTES: &str = r#"
unkeyed_headers: bypass
routes:
  - name: page
    match: "GET /page/{id}"
    ttl: 300s
  - name: strict_strip
    match: "GET /stripped/{id}"
    ttl: 300s
    unkeyed_headers: strip
  - name: localized
    match: "GET /localized/{id}"
    ttl: 300s
    vary: [Accept-Language]
"#;

#[tokio::test]
async fn with_unkeyed_headers_bypass_the_attackers_response_is_never_stored() {
    let p = Proxy::start_with(Options {
        routes: BYPASS_ROUTES.into(),
        ..Options::default()
    });
    let attack = p
        .get_with("/page/1", Some("w1"), None, &[("x-forwarded-host", EVIL)])
        .await;
    assert_eq!(attack.cache(), "BYPASS");
    assert!(attack
        .header("cache-status")
        .unwrap()
        .contains("unkeyed-header"));
    // The origin decided, for the attacker alone.
    assert_eq!(attack.json()["forwarded_host"], EVIL);
    let victim = p.get("/page/1", Some("w1"), None).await;
    assert_eq!(victim.cache(), "MISS");
    let victim = p.get("/page/1", Some("w1"), None).await;
    assert_eq!(victim.cache(), "HIT");
    assert!(!victim.text.contains(EVIL));
    // The route overriding the default strips instead.
    let r = p
        .get_with(
            "/stripped/1",
            Some("w1"),
            None,
            &[("x-forwarded-host", EVIL)],
        )
        .await;
    assert_eq!(r.cache(), "MISS");
    assert!(!r.text.contains(EVIL));
    let m = p.admin_get("/metrics").await.text;
    assert!(
        m.contains(r#"tagcache_limit_hits_total{limit="unkeyed-header"} 1"#),
        "{m}"
    );
}

#[tokio::test]
async fn vary_on_a_header_outside_the_key_is_not_stored_unless_the_route_keys_it() {
    let p = Proxy::start_with(Options {
        routes: BYPASS_ROUTES.into(),
        ..Options::default()
    });
    let vary = ("x-origin-header", "Vary: Accept-Language");
    // /page does not allow it: never stored, so French never reaches English readers.
    let fr = p
        .get_with(
            "/page/v",
            Some("w1"),
            None,
            &[vary, ("accept-language", "fr")],
        )
        .await;
    assert!(fr
        .header("cache-status")
        .unwrap()
        .contains("uncacheable-vary"));
    let en = p
        .get_with("/page/v", Some("w1"), None, &[("accept-language", "en")])
        .await;
    assert_eq!(en.cache(), "MISS");
    // /localized keys on it: one entry per language.
    let fr = p
        .get_with(
            "/localized/v",
            Some("w1"),
            None,
            &[vary, ("accept-language", "fr")],
        )
        .await;
    let en = p
        .get_with(
            "/localized/v",
            Some("w1"),
            None,
            &[vary, ("accept-language", "en")],
        )
        .await;
    assert_eq!((fr.cache(), en.cache()), ("MISS", "MISS"));
    let fr2 = p
        .get_with(
            "/localized/v",
            Some("w1"),
            None,
            &[("accept-language", "fr")],
        )
        .await;
    let en2 = p
        .get_with(
            "/localized/v",
            Some("w1"),
            None,
            &[("accept-language", "en")],
        )
        .await;
    assert_eq!((fr2.cache(), en2.cache()), ("HIT", "HIT"));
    assert_eq!(fr2.text, fr.text);
    assert_eq!(en2.text, en.text);
    let none = p.get_with("/localized/v", Some("w1"), None, &[]).await;
    assert_eq!(
        none.cache(),
        "MISS",
        "no Accept-Language is its own variant"
    );
    // Vary: * and Vary on anything else are still never stored.
    let star = p
        .get_with(
            "/localized/s",
            Some("w1"),
            None,
            &[("x-origin-header", "Vary: *")],
        )
        .await;
    assert!(star
        .header("cache-status")
        .unwrap()
        .contains("uncacheable-vary-star"));
    let other = p
        .get_with(
            "/localized/o",
            Some("w1"),
            None,
            &[("x-origin-header", "Vary: Accept-Language, Cookie")],
        )
        .await;
    assert!(other
        .header("cache-status")
        .unwrap()
        .contains("uncacheable-vary"));
}

const UNSCOPED: &str = r#"
routes:
  - name: public_page
    match: "GET /public/{id}"
    ttl: 300s
"#;

/// RFC 9111 §3.5 (nginx #824): without a tenant in the key, a request with
/// Authorization neither gets a shared entry nor leaves one, unless the
/// origin marked the response shareable.
#[tokio::test]
async fn authorization_on_a_route_without_identity_in_the_key() {
    let p = Proxy::start_with(Options {
        routes: UNSCOPED.into(),
        tenant: String::new(),
        ..Options::default()
    });
    let secret = p
        .get_with(
            "/public/1",
            None,
            Some("alice"),
            &[("authorization", "Bearer alice-token")],
        )
        .await;
    assert_eq!(secret.cache(), "MISS");
    assert!(secret
        .header("cache-status")
        .unwrap()
        .contains("uncacheable-authorization"));
    let anon = p.get("/public/1", None, None).await;
    assert_eq!(anon.cache(), "MISS", "alice's response was not stored");
    assert!(!anon.text.contains("alice"));
    let anon2 = p.get("/public/1", None, None).await;
    assert_eq!(anon2.cache(), "HIT");
    // A stored anonymous response is not handed to an authorized request either.
    let bob = p
        .get_with(
            "/public/1",
            None,
            Some("bob"),
            &[("authorization", "Bearer bob-token")],
        )
        .await;
    assert_eq!(bob.cache(), "MISS");
    assert_eq!(bob.json()["user"], "bob");
    // Marked public by the origin: shared.
    for (i, cc) in [
        "public, max-age=60",
        "s-maxage=60",
        "max-age=60, must-revalidate",
    ]
    .iter()
    .enumerate()
    {
        let path = format!("/public/shared{i}");
        let h = format!("Cache-Control: {cc}");
        let a = p
            .get_with(
                &path,
                None,
                None,
                &[("authorization", "Bearer a"), ("x-origin-header", &h)],
            )
            .await;
        assert!(a.header("cache-status").unwrap().contains("stored"), "{cc}");
        let b = p
            .get_with(&path, None, None, &[("authorization", "Bearer b")])
            .await;
        assert_eq!(b.cache(), "HIT", "{cc}");
    }
}

#[tokio::test]
async fn an_absolute_form_target_cannot_reach_a_cached_entry() {
    let p = Proxy::start();
    let victim = p.get("/item/abs", Some("w1"), None).await;
    assert_eq!(victim.cache(), "MISS");
    let req = format!(
        "GET http://{EVIL}/item/abs HTTP/1.1\r\nHost: {EVIL}\r\nX-Workspace-ID: w1\r\nX-Forwarded-Host: {EVIL}\r\nConnection: close\r\n\r\n"
    );
    let (_, text) = raw(p.port, req.as_bytes());
    assert!(
        text.to_ascii_lowercase().contains("x-cache-status: bypass"),
        "{text}"
    );
    let again = p.get("/item/abs", Some("w1"), None).await;
    assert_eq!(
        (again.cache(), again.text.as_str()),
        ("HIT", victim.text.as_str())
    );
}
