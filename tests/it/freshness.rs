//! Freshness: expiry, stale-while-revalidate, stale-if-error.

use std::time::Duration;

use crate::util::Proxy;

#[tokio::test]
async fn entries_expire_at_their_ttl() {
    let p = Proxy::start();
    let a = p.get("/short/1", Some("w1"), None).await;
    assert_eq!((a.cache(), a.n()), ("MISS", 1));
    crate::assert_cache!(p, "/short/1", Some("w1"), "HIT");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let c = p.get("/short/1", Some("w1"), None).await;
    assert_ne!(c.cache(), "HIT");
    assert_eq!(c.n(), 2);
}

#[tokio::test]
async fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    let p = Proxy::start();
    assert_eq!(p.get("/swr/1", Some("w1"), None).await.n(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = p.get("/swr/1", Some("w1"), None).await;
    assert_eq!((s.cache(), s.layer(), s.n()), ("STALE", "MEMORY", 1));
    // The background refresh lands; then the new copy is served fresh.
    let mut refreshed = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r = p.get("/swr/1", Some("w1"), None).await;
        if r.n() == 2 {
            refreshed = Some(r);
            break;
        }
    }
    let r = refreshed.expect("background refresh never landed");
    assert_eq!(r.cache(), "HIT");
    assert_eq!(p.origin.hits("/swr/1"), 2, "exactly one background refresh");
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_origin_fails() {
    let p = Proxy::start();
    assert_eq!(p.get("/sie/1", Some("w1"), None).await.n(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = p
        .get_with("/sie/1", Some("w1"), None, &[("x-origin-status", "503")])
        .await;
    assert_eq!((r.status, r.cache()), (200, "STALE"));
    assert_eq!(r.n(), 1);
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_origin_is_down() {
    let p = Proxy::start();
    assert_eq!(p.get("/sie/down", Some("w1"), None).await.n(), 1);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    p.origin.set_down(true);
    let r = p.get("/sie/down", Some("w1"), None).await;
    assert_eq!((r.status, r.cache()), (200, "STALE"));
    assert_eq!(r.n(), 1);
    // Something never cached is a clean 502 meanwhile.
    assert_eq!(p.get("/sie/never", Some("w1"), None).await.status, 502);
    p.origin.set_down(false);
}

#[tokio::test]
async fn no_stale_without_a_window() {
    let p = Proxy::start();
    p.get("/short/2", Some("w1"), None).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = p
        .get_with("/short/2", Some("w1"), None, &[("x-origin-status", "503")])
        .await;
    assert_eq!(r.status, 503);
}

/// Regression: a config-mode entry revalidated by a 304 was fresh for one
/// more TTL in its meta, but the TTL cap still counted from its first
/// store, so every later request revalidated it again instead of hitting.
#[tokio::test]
async fn a_revalidated_entry_is_fresh_again() {
    let p = Proxy::start();
    let etag = [("x-origin-etag", "\"s1\"")];
    assert_eq!(
        p.get_with("/sie/reval", Some("w1"), None, &etag)
            .await
            .cache(),
        "MISS"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = p.get_with("/sie/reval", Some("w1"), None, &etag).await;
    assert_eq!((r.cache(), r.n()), ("REVALIDATED", 1));
    let again = p.get_with("/sie/reval", Some("w1"), None, &etag).await;
    assert_eq!((again.cache(), again.n()), ("HIT", 1));
    assert_eq!(p.origin.hits("/sie/reval"), 2);
}
