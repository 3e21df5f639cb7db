//! The admin listener: health, stats, metrics, authentication.

use crate::util::{Proxy, TOKEN};

#[tokio::test]
async fn health_is_open_and_the_rest_needs_the_token() {
    let p = Proxy::start();
    let h = p.client.get(p.admin_url("/health")).send().await.unwrap();
    assert_eq!(h.status(), 200);
    for path in ["/stats", "/metrics"] {
        let r = p.client.get(p.admin_url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let r = p
            .client
            .get(p.admin_url(path))
            .header("authorization", "Bearer wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let r = p
            .client
            .get(p.admin_url(path))
            .header("authorization", format!("Bearer {TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let r = p
        .client
        .post(p.admin_url("/purge"))
        .body(r#"{"tags":["x"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(j["error"], "unauthorized");
}

#[tokio::test]
async fn stats_move_as_requests_flow() {
    let p = Proxy::start();
    let before = p.stats().await;
    assert_eq!(before["hits"], 0);
    p.get("/item/s1", Some("w1"), None).await; // miss + store
    p.get("/item/s1", Some("w1"), None).await; // hit
    p.get("/item/s1", Some("w1"), None).await; // hit
    p.get("/api/boards/b/contacts?pageSize=999", Some("w1"), None)
        .await; // bypass
    let s = p.stats_after(4).await;
    assert_eq!(s["hits"], 2);
    assert_eq!(s["misses"], 1);
    assert_eq!(s["stores"], 1);
    assert_eq!(s["bypasses"], 1);
    assert_eq!(s["entries"], 1);
    assert!(s["bytes"].as_u64().unwrap() > 0);
    assert!((s["hit_rate"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(s["routes"]["item"]["hit"], 2);
    assert_eq!(s["routes"]["contact_list"]["bypass"], 1);
    p.purge_tags(&["x"], false).await;
    assert_eq!(p.stats().await["purges"], 1);
}

#[tokio::test]
async fn metrics_expose_requests_latency_and_store_figures() {
    let p = Proxy::start();
    p.get("/item/m1", Some("w1"), None).await;
    p.get("/item/m1", Some("w1"), None).await;
    p.stats_after(2).await;
    let m = p.admin_get("/metrics").await.text;
    assert!(
        m.contains(r#"tagcache_requests_total{cache_status="HIT",route="item"} 1"#),
        "{m}"
    );
    assert!(m.contains(r#"tagcache_requests_total{cache_status="MISS",route="item"} 1"#));
    assert!(m.contains("tagcache_origin_duration_seconds_count{route=\"item\"} 1"));
    assert!(m.contains("tagcache_lookup_duration_seconds"));
    assert!(m.contains("tagcache_cache_entries 1"));
    assert!(m.contains("tagcache_cache_bytes "));
}

#[tokio::test]
async fn eviction_keeps_bytes_under_max_size() {
    let p = Proxy::start_with(crate::util::Options {
        max_size: "1MiB".into(),
        ..Default::default()
    });
    for i in 0..200 {
        p.get_with(
            &format!("/item/ev{i}"),
            Some("w1"),
            None,
            &[("x-origin-body-size", "20000")],
        )
        .await;
    }
    let s = p.stats().await;
    let bytes = s["bytes"].as_u64().unwrap();
    assert!(bytes <= 1 << 20, "bytes {bytes} over max_size");
    assert!(s["entries"].as_u64().unwrap() < 200);
    assert!(s["evictions"].as_u64().unwrap() > 0 || s["entries"].as_u64().unwrap() < 60);
}

#[tokio::test]
async fn explain_shows_an_entrys_birth_its_tags_and_the_verdict_a_purge_gives() {
    let p = Proxy::start();
    let path = "/api/boards/b7/contacts?page=1";
    let explain = || async {
        let body = serde_json::json!({
            "url": path,
            "workspace": "w1",
            "tags": ["board:w1:b7", "workspace:w1"],
        });
        p.admin_post("/explain", &body.to_string()).await
    };

    // Nothing stored yet: no entry, but the key and the epoch.
    let before = explain().await;
    assert_eq!(before.status, 200, "{}", before.text);
    let before = before.json();
    assert!(before["memory"].is_null(), "{before}");
    assert_eq!(before["key"].as_str().map(str::len), Some(32), "{before}");

    assert_eq!(p.get(path, Some("w1"), None).await.cache(), "MISS");
    let stored = explain().await.json();
    let entry = &stored["memory"];
    assert_eq!(entry["verdict"], "valid", "{stored}");
    assert_eq!(entry["fresh"], true, "{stored}");
    assert_eq!(entry["trusted"], true, "{stored}");
    assert_eq!(entry["route"], "contact_list", "{stored}");
    assert_eq!(entry["workspace"], "w1", "{stored}");
    let born = entry["born"].as_u64().expect("born");
    let board = entry["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "board:w1:b7")
        .unwrap_or_else(|| panic!("the named tag is among the entry's: {stored}"))
        .clone();
    assert_eq!(board["hard"], 0, "{stored}");
    // The same key for the same request, whoever asks.
    assert_eq!(stored["key"], before["key"]);

    p.purge_tags(&["board:w1:b7"], false).await;
    let purged = explain().await.json();
    let entry = &purged["memory"];
    assert_eq!(entry["verdict"], "purged", "{purged}");
    let board = entry["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "board:w1:b7")
        .unwrap()
        .clone();
    assert!(board["hard"].as_u64().unwrap() > born, "{purged}");
    assert!(purged["epoch"].as_u64().unwrap() > born, "{purged}");
    // What the proxy does agrees with the explanation.
    assert_eq!(p.get(path, Some("w1"), None).await.cache(), "MISS");

    // Another workspace's key is another key.
    let other = p
        .admin_post(
            "/explain",
            &serde_json::json!({ "url": path, "workspace": "w2" }).to_string(),
        )
        .await
        .json();
    assert_ne!(other["key"], purged["key"]);
    assert!(other["memory"].is_null(), "{other}");
}

/// On a response that varies, `/explain` shows the variant the request's
/// fields select: pingora-cache keeps the first variant stored under the
/// primary key and the others under their variance.
#[tokio::test]
async fn explain_shows_the_variant_a_requests_fields_select() {
    let p = Proxy::start();
    let path = "/item/explain-vary";
    let vary = ("x-origin-header", "Vary: Accept-Encoding");
    for encoding in ["gzip", "identity"] {
        let r = p
            .get_with(
                path,
                Some("w1"),
                None,
                &[vary, ("accept-encoding", encoding)],
            )
            .await;
        assert_eq!(r.cache(), "MISS", "{encoding}");
    }
    let explain = |headers: serde_json::Value| {
        let p = &p;
        async move {
            let body = serde_json::json!({ "url": path, "workspace": "w1", "headers": headers });
            let r = p.admin_post("/explain", &body.to_string()).await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.json()
        }
    };
    let gzip = explain(serde_json::json!({ "accept-encoding": "gzip" })).await;
    let identity = explain(serde_json::json!({ "Accept-Encoding": "identity" })).await;
    let neither = explain(serde_json::json!({})).await;
    for e in [&gzip, &identity] {
        assert_eq!(e["memory"]["verdict"], "valid", "{e}");
        assert_eq!(e["variance"].as_str().map(str::len), Some(32), "{e}");
    }
    assert_ne!(gzip["variance"], identity["variance"]);
    // The first variant is under the primary key, the second under its own.
    assert_ne!(gzip["key"], identity["key"]);
    // No variant was stored for a request without the field.
    assert!(neither["memory"].is_null(), "{neither}");
    assert!(neither["variance"].is_string(), "{neither}");

    // What the proxy does agrees with each explanation.
    for encoding in ["identity", "gzip"] {
        let r = p
            .get_with(path, Some("w1"), None, &[("accept-encoding", encoding)])
            .await;
        assert_eq!(r.cache(), "HIT", "{encoding}");
    }
    assert_eq!(p.get(path, Some("w1"), None).await.cache(), "MISS");
}

#[tokio::test]
async fn explain_refuses_a_bad_body_or_an_uncached_url_naming_the_field() {
    let p = Proxy::start();
    for (body, status, field) in [
        ("{", 400, serde_json::Value::Null),
        (r#"{"workspace":"w1"}"#, 400, "url".into()),
        (
            r#"{"url":"/api/boards/b1/contacts","colour":1}"#,
            400,
            "colour".into(),
        ),
        (
            r#"{"url":"/not/a/route","workspace":"w1"}"#,
            422,
            "url".into(),
        ),
        (
            r#"{"url":"/item/1","workspace":"w1","headers":{"bad name":"x"}}"#,
            400,
            "headers".into(),
        ),
        (
            r#"{"url":"/item/1","workspace":"w1","headers":{"accept":"a\nb"}}"#,
            400,
            "headers".into(),
        ),
    ] {
        let r = p.admin_post("/explain", body).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert_eq!(r.json()["field"], field, "{body}: {}", r.text);
    }
    let r = p
        .client
        .post(p.admin_url("/explain"))
        .body(r#"{"url":"/api/boards/b1/contacts"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
