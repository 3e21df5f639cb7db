//! Transparency: what is not cached passes through unchanged; errors are clear.

use crate::util::{Options, Proxy};

#[tokio::test]
async fn miss_then_hit_with_identical_body() {
    let p = Proxy::start();
    let a = p
        .get("/api/boards/b1/contacts?page=1", Some("w1"), None)
        .await;
    assert_eq!((a.status, a.cache(), a.layer()), (200, "MISS", "ORIGIN"));
    assert!(a.header("cache-status").unwrap().contains("fwd=miss"));
    assert!(a.header("cache-status").unwrap().contains("stored"));
    let b = p
        .get("/api/boards/b1/contacts?page=1", Some("w1"), None)
        .await;
    assert_eq!((b.status, b.cache(), b.layer()), (200, "HIT", "MEMORY"));
    assert_eq!(a.text, b.text);
    assert_eq!(p.origin.hits("/api/boards/b1/contacts"), 1);
    let cs = b.header("cache-status").unwrap();
    assert!(cs.starts_with("tagcache; hit; ttl="), "{cs}");
    assert!(b.header("age").is_some());
    // The key is not exposed without debug headers.
    assert!(b.header("x-cache-key").is_none());
    assert!(!cs.contains("key="));
}

#[tokio::test]
async fn hits_keep_the_origins_reason_phrase() {
    let p = Proxy::start();
    let path = "/api/boards/b1/contacts?page=7";
    let ask = [("X-Workspace-ID", "w1"), ("x-origin-reason", "Fine Thanks")];
    let (status, miss) = crate::util::raw_get(p.port, path, &ask);
    assert_eq!(status, 200);
    assert!(miss.starts_with("http/1.1 200 fine thanks\r\n"), "{miss}");
    // The fast path builds the hit's header anew: the stored reason stays,
    // and the status headers are there once each.
    let (status, hit) = crate::util::raw_get(p.port, path, &ask);
    assert_eq!(status, 200);
    assert!(hit.starts_with("http/1.1 200 fine thanks\r\n"), "{hit}");
    assert_eq!(hit.matches("x-cache-status: hit").count(), 1, "{hit}");
    assert_eq!(
        hit.matches("\r\ncache-status: tagcache; hit").count(),
        1,
        "{hit}"
    );
    assert_eq!(hit.matches("\r\nage: ").count(), 1, "{hit}");
    assert_eq!(p.origin.hits("/api/boards/b1/contacts"), 1);
}

#[tokio::test]
async fn unmatched_routes_pass_through_uncached() {
    let p = Proxy::start();
    for _ in 0..2 {
        let r = p.get("/api/other?x=1", Some("w1"), None).await;
        assert_eq!((r.status, r.cache()), (200, "BYPASS"));
        assert!(r
            .header("cache-status")
            .unwrap()
            .contains("detail=no-route"));
    }
    assert_eq!(p.origin.hits("/api/other"), 2);
}

#[tokio::test]
async fn request_is_forwarded_unchanged() {
    let p = Proxy::start();
    let r = p
        .client
        .post(p.url("/api/boards/b9/contacts?page=1&x=%20y"))
        .header("X-Workspace-ID", "w1")
        .header("X-Custom", "kept")
        .body("payload-bytes")
        .send()
        .await
        .unwrap();
    let r = crate::util::Resp::from(r).await;
    assert_eq!(r.cache(), "BYPASS");
    let j = r.json();
    assert_eq!(j["method"], "POST");
    assert_eq!(j["query"], "page=1&x=%20y");
    assert_eq!(j["body"], "payload-bytes");
    let seen = p.origin.last_headers("/api/boards/b9/contacts");
    assert!(seen.iter().any(|(k, v)| k == "x-custom" && v == "kept"));
}

#[tokio::test]
async fn post_is_never_cached() {
    let p = Proxy::start();
    for _ in 0..3 {
        let r = p
            .client
            .post(p.url("/api/boards/b1/contacts"))
            .header("X-Workspace-ID", "w1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-cache-status"], "BYPASS");
    }
    assert_eq!(p.origin.hits("/api/boards/b1/contacts"), 3);
}

#[tokio::test]
async fn origin_status_and_headers_are_relayed() {
    let p = Proxy::start();
    let r = p
        .get_with(
            "/api/x",
            None,
            None,
            &[
                ("x-origin-status", "418"),
                ("x-origin-header", "X-From-Origin: yes"),
            ],
        )
        .await;
    assert_eq!(r.status, 418);
    assert_eq!(r.header("x-from-origin"), Some("yes"));
}

#[tokio::test]
async fn chunked_and_large_bodies_stream_through() {
    let p = Proxy::start();
    let r = p
        .get_with(
            "/item/big",
            Some("w1"),
            None,
            &[("x-origin-body-size", "3000000"), ("x-origin-chunked", "1")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text.len(), 3_000_000);
    assert_eq!(r.cache(), "MISS");
    let r2 = p.get("/item/big", Some("w1"), None).await;
    assert_eq!(r2.cache(), "HIT");
    assert_eq!(r2.text.len(), 3_000_000);
}

#[tokio::test]
async fn objects_over_max_object_size_stream_uncached() {
    let p = Proxy::start_with(Options {
        max_size: "64MiB\n    max_object_size: 100KiB".into(),
        ..Options::default()
    });
    for chunked in [false, true] {
        let path = format!("/item/huge-{chunked}");
        let mut h = vec![("x-origin-body-size", "500000")];
        if chunked {
            h.push(("x-origin-chunked", "1"));
        }
        for _ in 0..2 {
            let r = p.get_with(&path, Some("w1"), None, &h).await;
            assert_eq!(
                (r.status, r.text.len()),
                (200, 500_000),
                "chunked={chunked}"
            );
            assert_ne!(r.cache(), "HIT");
        }
        assert_eq!(p.origin.hits(&path), 2);
    }
}

#[tokio::test]
async fn dead_origin_is_a_502_with_a_reason() {
    let dead = format!("127.0.0.1:{}", crate::util::free_port());
    let p = Proxy::start_with(Options {
        upstream: Some(dead),
        ..Options::default()
    });
    let started = std::time::Instant::now();
    let r = p.get("/api/boards/b1/contacts", Some("w1"), None).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let j = r.json();
    assert_eq!(j["error"], "bad_gateway");
    assert!(j["reason"].as_str().unwrap().contains("origin"));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // The cache was looked up: a miss the origin could not answer.
    assert_eq!((r.cache(), r.layer()), ("MISS", "ORIGIN"));
    let cs = r.header("cache-status").unwrap();
    assert!(cs.contains("fwd=miss; detail=origin-error"), "{cs}");
    assert!(!cs.contains("fwd-status"), "{cs}");
    let r = p.get("/unrouted", None, None).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.cache(), "BYPASS");
    assert!(r
        .header("cache-status")
        .unwrap()
        .contains("fwd=bypass; detail=no-route"));
}

#[tokio::test]
async fn slow_origin_is_a_504() {
    let p = Proxy::start_with(Options {
        upstream_extra: "  read_timeout: 300ms".into(),
        ..Options::default()
    });
    let r = p
        .get_with(
            "/item/slow",
            Some("w1"),
            None,
            &[("x-origin-delay-ms", "2000")],
        )
        .await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"], "gateway_timeout");
}

#[tokio::test]
async fn head_requests_are_proxied_not_cached() {
    let p = Proxy::start();
    let r = p
        .client
        .head(p.url("/item/h1"))
        .header("X-Workspace-ID", "w1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-cache-status"], "BYPASS");
    // A HEAD never fills the cache with an empty body.
    let g = p.get("/item/h1", Some("w1"), None).await;
    assert_eq!(g.cache(), "MISS");
    assert!(g.text.contains("\"path\""));
}

#[tokio::test]
async fn debug_headers_expose_the_key() {
    let p = Proxy::start_with(Options {
        extra: "debug_headers: true".into(),
        ..Options::default()
    });
    let r = p
        .get(
            "/api/boards/b1/contacts?pageSize=50&page=1",
            Some("w1"),
            None,
        )
        .await;
    let key = r.header("x-cache-key").unwrap();
    assert!(
        key.contains("contact_list") && key.contains("w1") && key.contains("b1"),
        "{key}"
    );
    assert!(r.header("cache-status").unwrap().contains("key="));
}

#[tokio::test]
async fn hits_answer_ranges_and_conditionals() {
    // Plain hits take the fast path; range and conditional requests on the
    // same entry go through pingora-cache: both must answer correctly.
    let p = Proxy::start();
    let path = "/api/boards/b1/contacts?page=7";
    let etag = [
        ("x-origin-header", "ETag: \"v1\""),
        ("x-origin-body-size", "100"),
    ];
    let a = p.get_with(path, Some("w1"), None, &etag).await;
    assert_eq!((a.status, a.cache()), (200, "MISS"));
    assert_eq!(a.text.len(), 100);

    let hit = p.get(path, Some("w1"), None).await;
    assert_eq!(
        (hit.status, hit.cache(), hit.layer()),
        (200, "HIT", "MEMORY")
    );
    assert_eq!(hit.text, a.text);
    assert_eq!(hit.header("content-length"), Some("100"));
    assert_eq!(hit.header("etag"), Some("\"v1\""));

    let range = p
        .get_with(path, Some("w1"), None, &[("range", "bytes=10-19")])
        .await;
    assert_eq!((range.status, range.cache()), (206, "HIT"));
    assert_eq!(range.text, a.text[10..20]);
    assert_eq!(range.header("content-range"), Some("bytes 10-19/100"));

    let not_modified = p
        .get_with(path, Some("w1"), None, &[("if-none-match", "\"v1\"")])
        .await;
    assert_eq!((not_modified.status, not_modified.cache()), (304, "HIT"));
    assert!(not_modified.text.is_empty());

    let changed = p
        .get_with(path, Some("w1"), None, &[("if-none-match", "\"v0\"")])
        .await;
    assert_eq!((changed.status, changed.cache()), (200, "HIT"));
    assert_eq!(changed.text, a.text);
    assert_eq!(p.origin.hits("/api/boards/b1/contacts"), 1);

    // Age counts from the store, on every kind of hit.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let later = p.get(path, Some("w1"), None).await;
    let age: u64 = later.header("age").unwrap().parse().unwrap();
    assert!(age >= 1, "age {age}");
}

#[tokio::test]
async fn hits_of_a_body_stored_without_length_are_chunked() {
    let p = Proxy::start();
    let path = "/api/boards/b1/contacts?page=8";
    let origin = [("x-origin-chunked", "1"), ("x-origin-body-size", "5000")];
    let a = p.get_with(path, Some("w1"), None, &origin).await;
    assert_eq!((a.status, a.cache()), (200, "MISS"));
    let b = p.get(path, Some("w1"), None).await;
    assert_eq!((b.status, b.cache()), (200, "HIT"));
    assert_eq!(b.header("transfer-encoding"), Some("chunked"));
    assert!(b.header("content-length").is_none());
    assert_eq!(b.text, a.text);
    assert_eq!(b.text.len(), 5000);
}
