//! Run-time settings: caching switched off per workspace or route, TTLs set
//! at run time, bad bodies refused naming the field, kept across a restart
//! in the state file, and shared through Redis by every instance.

use std::time::{Duration, Instant};

use crate::redis::util::{two_synced, RedisOpts, RedisServer};
use crate::util::{Options, Origin, Proxy, Resp, TOKEN};

async fn send(p: &Proxy, method: reqwest::Method, path: &str, body: &str) -> Resp {
    let r = p
        .client
        .request(method, p.admin_url(path))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(body.to_string())
        .send()
        .await
        .expect("admin request");
    Resp::from(r).await
}

async fn put(p: &Proxy, path: &str, body: &str) -> Resp {
    send(p, reqwest::Method::PUT, path, body).await
}

#[tokio::test]
async fn a_workspace_switched_off_bypasses_and_stores_nothing_until_switched_back() {
    let p = Proxy::start();
    p.get("/item/s1", Some("w1"), None).await;
    p.get("/item/s1", Some("w2"), None).await;
    let r = put(&p, "/settings/workspaces/w1", r#"{"enabled": false}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    for _ in 0..2 {
        let r = p.get("/item/s1", Some("w1"), None).await;
        assert_eq!(r.cache(), "BYPASS");
        assert!(r
            .header("cache-status")
            .unwrap()
            .contains("detail=disabled"));
    }
    // Another workspace is untouched.
    crate::assert_cache!(p, "/item/s1", Some("w2"), "HIT");
    // Readable for the backend's panel.
    let r = p.admin_get("/settings/workspaces/w1").await;
    assert_eq!(r.json(), serde_json::json!({"enabled": false}));
    assert_eq!(
        p.admin_get("/settings").await.json()["workspaces"]["w1"]["enabled"],
        false
    );
    // Back on: the entry stored before is served again; nothing was stored meanwhile.
    let before = p.origin.hits("/item/s1");
    let r = send(&p, reqwest::Method::DELETE, "/settings/workspaces/w1", "").await;
    assert_eq!(r.status, 200);
    crate::assert_cache!(p, "/item/s1", Some("w1"), "HIT");
    assert_eq!(p.origin.hits("/item/s1"), before);
}

#[tokio::test]
async fn a_route_switched_off_for_one_workspace_only() {
    let p = Proxy::start();
    let r = put(
        &p,
        "/settings/workspaces/w1",
        r#"{"routes": {"contact_counts": {"enabled": false}}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let counts = "/api/cache-settings/workspace/w1/counts";
    crate::assert_cache!(p, counts, Some("w1"), "BYPASS");
    crate::assert_cache!(p, "/item/s2", Some("w1"), "MISS");
    crate::assert_cache!(p, "/item/s2", Some("w1"), "HIT");
    // Globally off, per workspace back on: the most specific wins.
    put(&p, "/settings/routes/item", r#"{"enabled": false}"#).await;
    put(
        &p,
        "/settings/workspaces/w3",
        r#"{"routes": {"item": {"enabled": true}}}"#,
    )
    .await;
    crate::assert_cache!(p, "/item/s2", Some("w1"), "BYPASS");
    crate::assert_cache!(p, "/item/s2", Some("w3"), "MISS");
}

#[tokio::test]
async fn a_ttl_set_at_run_time_applies_to_fills_and_caps_existing_entries() {
    let p = Proxy::start();
    p.get("/item/t1", Some("w1"), None).await;
    crate::assert_cache!(p, "/item/t1", Some("w1"), "HIT");
    let r = put(&p, "/settings/routes/item", r#"{"ttl": "1s"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Stored with 300 s, fresh only for the new 1 s.
    assert_ne!(p.get("/item/t1", Some("w1"), None).await.cache(), "HIT");
    // A new fill gets 1 s.
    let r = p.get("/item/t2", Some("w1"), None).await;
    assert_eq!(r.cache(), "MISS");
    let hit = p.get("/item/t2", Some("w1"), None).await;
    let ttl: i64 = hit
        .header("cache-status")
        .unwrap()
        .split("ttl=")
        .nth(1)
        .and_then(|t| t.split(';').next())
        .and_then(|t| t.trim().parse().ok())
        .expect("ttl");
    assert!(ttl <= 1, "ttl={ttl}");
}

#[tokio::test]
async fn bad_settings_bodies_get_422_naming_the_field() {
    let p = Proxy::start();
    for (path, body, field) in [
        (
            "/settings/workspaces/w1",
            r#"{"routes": {"nope": {"enabled": false}}}"#,
            "routes.nope",
        ),
        (
            "/settings/workspaces/w1",
            r#"{"routes": {"item": {"ttl": "soon"}}}"#,
            "routes.item.ttl",
        ),
        (
            "/settings/workspaces/w1",
            r#"{"enabled": "off"}"#,
            "enabled",
        ),
        (
            "/settings/workspaces/w1",
            r#"{"enabeld": false}"#,
            "enabeld",
        ),
        ("/settings/routes/nope", r#"{"enabled": false}"#, "route"),
        ("/settings/routes/item", r#"{"ttl": 5}"#, "ttl"),
        ("/settings/routes/item", "{", "body"),
    ] {
        let r = put(&p, path, body).await;
        assert_eq!(r.status, 422, "{path} {body}: {}", r.text);
        assert_eq!(r.json()["field"], field, "{path} {body}: {}", r.text);
    }
    // Nothing changed.
    assert_eq!(
        p.admin_get("/settings").await.json()["workspaces"],
        serde_json::json!({})
    );
    // And no token, no settings.
    let r = p
        .client
        .put(p.admin_url("/settings/workspaces/w1"))
        .body(r#"{"enabled": false}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn settings_outlive_a_restart_in_the_state_file() {
    let dir = std::env::temp_dir().join(format!("tagcache-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let _ = std::fs::remove_file(&state);
    let opts = || Options {
        extra: format!("state:\n  path: \"{}\"\n", state.display()),
        ..Options::default()
    };
    let origin = Origin::start();
    {
        let p = Proxy::start_on(origin.clone(), opts());
        let r = put(&p, "/settings/workspaces/w9", r#"{"enabled": false}"#).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(p.admin_get("/settings").await.json()["kept_in"], "file");
    }
    let p = Proxy::start_on(origin, opts());
    crate::assert_cache!(p, "/item/r1", Some("w9"), "BYPASS");
    crate::assert_cache!(p, "/item/r1", Some("w8"), "MISS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_switch_made_on_one_instance_reaches_the_other_through_redis() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let (a, b) = two_synced(&origin, &RedisOpts::server(&redis)).await;
    b.get("/item/x1", Some("w1"), None).await;
    crate::assert_cache!(b, "/item/x1", Some("w1"), "HIT");
    let r = put(&a, "/settings/workspaces/w1", r#"{"enabled": false}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(a.admin_get("/settings").await.json()["kept_in"], "redis");
    crate::assert_cache!(a, "/item/x1", Some("w1"), "BYPASS");
    let start = Instant::now();
    while b.get("/item/x1", Some("w1"), None).await.cache() != "BYPASS" {
        // Every heartbeat (200 ms in tests) each instance checks the version.
        assert!(start.elapsed() < Duration::from_secs(2), "never reached B");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A third instance starting now reads the settings before its first request.
    let c = crate::redis::util::proxy(origin.clone(), &RedisOpts::server(&redis));
    crate::assert_cache!(c, "/item/x1", Some("w1"), "BYPASS");
}
