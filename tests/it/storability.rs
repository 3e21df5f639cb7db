//! What is never stored: Set-Cookie, private, no-store, Vary: *, other statuses.

use crate::util::Proxy;

async fn never_stored(p: &Proxy, path: &str, header: &str) {
    for _ in 0..3 {
        let r = p
            .get_with(path, Some("w1"), None, &[("x-origin-header", header)])
            .await;
        assert_eq!(r.cache(), "MISS", "{header}");
        assert!(
            !r.header("cache-status").unwrap().contains("stored"),
            "{header}"
        );
    }
    assert_eq!(p.origin.hits(path), 3, "{header}");
}

#[tokio::test]
async fn set_cookie_private_no_store_and_vary_star_are_never_stored() {
    let p = Proxy::start();
    never_stored(&p, "/item/cookie", "Set-Cookie: session=abc").await;
    never_stored(&p, "/item/private", "Cache-Control: private, max-age=60").await;
    never_stored(&p, "/item/nostore", "Cache-Control: no-store").await;
    never_stored(&p, "/item/varystar", "Vary: *").await;
    never_stored(&p, "/item/varyauth", "Vary: Authorization").await;
}

#[tokio::test]
async fn set_cookie_is_relayed_to_its_own_client() {
    let p = Proxy::start();
    let r = p
        .get_with(
            "/item/cookie2",
            Some("w1"),
            None,
            &[("x-origin-header", "Set-Cookie: s=1")],
        )
        .await;
    assert_eq!(r.header("set-cookie"), Some("s=1"));
    // A later client without the directive gets its own origin response, no cookie.
    let r2 = p.get("/item/cookie2", Some("w1"), None).await;
    assert_eq!(r2.cache(), "MISS");
    assert!(r2.header("set-cookie").is_none());
}

#[tokio::test]
async fn only_configured_statuses_are_stored() {
    let p = Proxy::start();
    for _ in 0..2 {
        let r = p
            .get_with("/item/err", Some("w1"), None, &[("x-origin-status", "500")])
            .await;
        assert_eq!((r.status, r.cache()), (500, "MISS"));
    }
    assert_eq!(p.origin.hits("/item/err"), 2);
    let a = p
        .get_with(
            "/status/nf",
            Some("w1"),
            None,
            &[("x-origin-status", "404")],
        )
        .await;
    let b = p.get("/status/nf", Some("w1"), None).await;
    assert_eq!((a.status, b.status, b.cache()), (404, 404, "HIT"));
}

#[tokio::test]
async fn vary_accept_encoding_keeps_variants_apart() {
    let p = Proxy::start();
    let h = ("x-origin-header", "Vary: Accept-Encoding");
    let a = p
        .get_with(
            "/item/v",
            Some("w1"),
            None,
            &[h, ("accept-encoding", "gzip")],
        )
        .await;
    let b = p
        .get_with(
            "/item/v",
            Some("w1"),
            None,
            &[h, ("accept-encoding", "identity")],
        )
        .await;
    assert_eq!((a.cache(), b.cache()), ("MISS", "MISS"));
    let a2 = p
        .get_with("/item/v", Some("w1"), None, &[("accept-encoding", "gzip")])
        .await;
    assert_eq!(a2.cache(), "HIT");
}

#[tokio::test]
async fn origin_tag_headers_are_stripped() {
    let p = Proxy::start();
    let h = [
        ("x-origin-header", "Surrogate-Key: a b"),
        ("x-origin-header", "Cache-Tag: c,d"),
    ];
    let r = p.get_with("/item/tagged", Some("w1"), None, &h).await;
    assert!(r.header("surrogate-key").is_none());
    assert!(r.header("cache-tag").is_none());
    let r = p.get("/item/tagged", Some("w1"), None).await;
    assert_eq!(r.cache(), "HIT");
    assert!(r.header("surrogate-key").is_none());
}
