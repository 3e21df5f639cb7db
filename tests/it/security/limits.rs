//! Oversized inputs: each limit answers with its status and counts in
//! `tagcache_limit_hits_total{limit}`.

use crate::util::{raw_get, Options, Proxy};

use super::*;

async fn limit_count(p: &Proxy, limit: &str) -> u64 {
    let m = p.admin_get("/metrics").await.text;
    let prefix = format!("tagcache_limit_hits_total{{limit=\"{limit}\"}} ");
    m.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn a_uri_over_the_limit_gets_414_on_any_path() {
    let p = Proxy::start();
    let long = "a".repeat(9000);
    for path in [
        format!("/item/{long}"),
        format!("/not-cached?q={long}"),
        format!("/api/boards/b1/contacts?search={long}"),
    ] {
        let r = p.get(&path, Some("w1"), None).await;
        assert_eq!(r.status, 414, "{}", &path[..30]);
        assert_eq!(r.json()["error"], "uri_too_long");
    }
    assert_eq!(p.origin.total(), 0, "nothing reached the origin");
    assert_eq!(limit_count(&p, "uri-too-long").await, 3);
    // Just under the limit is served.
    let ok = format!("/not-cached?q={}", "a".repeat(8000));
    assert_eq!(p.get(&ok, Some("w1"), None).await.status, 200);
}

#[tokio::test]
async fn headers_over_the_limit_get_431() {
    let p = Proxy::start();
    let big = "b".repeat(40 << 10);
    let r = p
        .get_with("/item/h", Some("w1"), None, &[("x-padding", &big)])
        .await;
    assert_eq!(r.status, 431);
    assert_eq!(r.json()["error"], "headers_too_large");
    // Many small headers add up the same way.
    let many: Vec<(String, String)> = (0..400)
        .map(|i| (format!("x-h{i}"), "v".repeat(100)))
        .collect();
    let mut req = p
        .client
        .get(p.url("/item/h"))
        .header("x-workspace-id", "w1");
    for (k, v) in &many {
        req = req.header(k, v);
    }
    let r = req.send().await.unwrap();
    assert!(r.status() == 431 || r.status() == 400, "{}", r.status());
    assert_eq!(p.origin.total(), 0);
    assert!(limit_count(&p, "headers-too-large").await >= 1);
    // A custom, lower limit.
    let p = Proxy::start_with(Options {
        extra: "limits: { max_header_size: 2KiB }".into(),
        ..Options::default()
    });
    let r = p
        .get_with(
            "/item/h",
            Some("w1"),
            None,
            &[("x-padding", &"c".repeat(3000))],
        )
        .await;
    assert_eq!(r.status, 431);
    assert_eq!(p.get("/item/h", Some("w1"), None).await.status, 200);
}

#[tokio::test]
async fn too_many_query_parameters_bypass_the_cache() {
    let p = Proxy::start_with(Options {
        extra: "limits: { max_query_params: 5 }".into(),
        ..Options::default()
    });
    let q: Vec<String> = (0..6).map(|i| format!("u{i}=1")).collect();
    let path = format!("/lenient/q?{}", q.join("&"));
    for _ in 0..2 {
        let r = p.get(&path, Some("w1"), None).await;
        assert_eq!((r.status, r.cache()), (200, "BYPASS"));
        assert!(r
            .header("cache-status")
            .unwrap()
            .contains("too-many-params"));
    }
    assert_eq!(limit_count(&p, "too-many-params").await, 2);
    let few = format!("/lenient/q?{}", q[..5].join("&"));
    crate::assert_cache!(p, &few, Some("w1"), "MISS");
}

#[tokio::test]
async fn a_body_over_max_object_size_streams_through_uncached() {
    let p = Proxy::start_with(Options {
        memory_extra: "    max_object_size: 10KiB".into(),
        ..Options::default()
    });
    for chunked in [false, true] {
        let path = format!("/item/big-{chunked}");
        let mut h = vec![("x-origin-body-size", "20000")];
        if chunked {
            h.push(("x-origin-chunked", "1"));
        }
        for _ in 0..2 {
            let r = p.get_with(&path, Some("w1"), None, &h).await;
            assert_eq!((r.status, r.text.len()), (200, 20000));
            assert_ne!(r.cache(), "HIT");
        }
        assert_eq!(p.origin.hits(&path), 2);
    }
    assert_eq!(limit_count(&p, "object-too-large").await, 4);
}

#[tokio::test]
async fn an_admin_body_over_max_body_gets_413() {
    let p = Proxy::start_with(Options {
        admin_extra: "  max_body: 1KiB".into(),
        ..Options::default()
    });
    let tags: Vec<String> = (0..200).map(|i| format!("tag-number-{i}")).collect();
    let body = serde_json::json!({ "tags": tags }).to_string();
    assert!(body.len() > 1024);
    for path in ["/purge", "/events", "/purge/legacy"] {
        let r = p.admin_post(path, &body).await;
        assert_eq!(r.status, 413, "{path}");
        assert_eq!(r.json()["error"], "body_too_large");
    }
    // Chunked, without a Content-Length to refuse up front.
    let mut req = format!(
        "POST /purge HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        crate::util::TOKEN
    );
    for _ in 0..20 {
        req.push_str(&format!("64\r\n{}\r\n", " ".repeat(100)));
    }
    req.push_str("0\r\n\r\n");
    let (status, text) = raw(p.admin_port, req.as_bytes());
    assert_eq!(status, 413, "{text}");
    assert_eq!(limit_count(&p, "admin-body").await, 4);
}

/// One workspace filling the cache evicts only its own entries. The store
/// (1 MiB) is smaller than what the noisy workspace asks for (1.2 MB), so
/// without the quota its fills would push the quiet workspace out.
#[tokio::test]
async fn a_noisy_workspace_cannot_evict_the_others() {
    let p = Proxy::start_with(Options {
        max_size: "1MiB".into(),
        memory_extra: "    per_workspace_max: 256KiB".into(),
        ..Options::default()
    });
    for i in 0..3 {
        let r = p
            .get_with(
                &format!("/item/quiet{i}"),
                Some("quiet"),
                None,
                &[("x-origin-body-size", "20000")],
            )
            .await;
        assert_eq!(r.cache(), "MISS");
    }
    for i in 0..60 {
        p.get_with(
            &format!("/item/noisy{i}"),
            Some("noisy"),
            None,
            &[("x-origin-body-size", "20000")],
        )
        .await;
    }
    for i in 0..3 {
        let r = p
            .get_with(
                &format!("/item/quiet{i}"),
                Some("quiet"),
                None,
                &[("x-origin-body-size", "20000")],
            )
            .await;
        assert_eq!(
            r.cache(),
            "HIT",
            "quiet{i} was evicted by the noisy workspace"
        );
    }
    let r = p.get("/item/noisy59", Some("noisy"), None).await;
    assert_eq!(r.cache(), "HIT");
    let r = p.get("/item/noisy0", Some("noisy"), None).await;
    assert_eq!(
        r.cache(),
        "MISS",
        "the noisy workspace lost its own oldest entry"
    );
    let cache = p.running.as_ref().unwrap().cache.clone();
    let mem = cache.memory().unwrap();
    assert!(mem.workspace_bytes("noisy") <= 256 << 10);
    assert!(limit_count(&p, "workspace-quota-eviction").await >= 40);
    let stats = p.stats().await;
    assert!(stats["quota_evictions"].as_u64().unwrap() >= 40, "{stats}");
}

#[tokio::test]
async fn raw_oversized_request_line_is_refused_before_routing() {
    let p = Proxy::start();
    let target = format!("/api/boards/b1/contacts?search={}", "%41".repeat(4000));
    let (status, head) = raw_get(p.port, &target, &[("X-Workspace-ID", "w1")]);
    assert_eq!(status, 414, "{head}");
}
