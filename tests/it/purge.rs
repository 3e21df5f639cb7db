//! Purge: by tag, URL and workspace; soft purge; events; signatures; races.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::util::{Options, Proxy, Resp, TOKEN, WEBHOOK_SECRET};

async fn fill(p: &Proxy, path: &str, ws: &str) {
    let r = p.get(path, Some(ws), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        p.get(path, Some(ws), None).await.cache(),
        "HIT",
        "{path} not cached"
    );
}

#[tokio::test]
async fn tag_purge_drops_exactly_the_tagged_entries() {
    let p = Proxy::start();
    fill(&p, "/api/boards/b1/contacts?page=1", "w1").await;
    fill(&p, "/api/boards/b1/contacts?page=2", "w1").await;
    fill(&p, "/api/boards/b2/contacts?page=1", "w1").await;
    fill(&p, "/api/boards/b1/contacts?page=1", "w2").await;
    let r = p.admin_post("/purge", r#"{"tags": ["board:w1:b1"]}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let j = r.json();
    assert_eq!(j["purged"]["tags"], 1);
    assert!(j["took_us"].as_u64().is_some());
    crate::assert_cache!(p, "/api/boards/b1/contacts?page=1", Some("w1"), "MISS");
    crate::assert_cache!(p, "/api/boards/b1/contacts?page=2", Some("w1"), "MISS");
    crate::assert_cache!(p, "/api/boards/b2/contacts?page=1", Some("w1"), "HIT");
    crate::assert_cache!(p, "/api/boards/b1/contacts?page=1", Some("w2"), "HIT");
    // Filled again after the purge, the entry is served again.
    crate::assert_cache!(p, "/api/boards/b1/contacts?page=1", Some("w1"), "HIT");
}

#[tokio::test]
async fn query_tags_use_values_after_defaults() {
    let p = Proxy::start();
    fill(&p, "/api/boards/f/contacts", "w1").await;
    fill(&p, "/api/boards/f/contacts?filter=open", "w1").await;
    p.purge_tags(&["filter:w1:all"], false).await;
    crate::assert_cache!(p, "/api/boards/f/contacts", Some("w1"), "MISS");
    crate::assert_cache!(p, "/api/boards/f/contacts?filter=open", Some("w1"), "HIT");
}

#[tokio::test]
async fn purge_by_url_and_by_workspace() {
    let p = Proxy::start();
    fill(&p, "/api/boards/u/contacts?page=1", "w1").await;
    fill(&p, "/api/boards/u/contacts?page=2", "w1").await;
    fill(&p, "/item/1", "w1").await;
    fill(&p, "/item/1", "w2").await;
    let body =
        r#"{"urls": [{"url": "/api/boards/u/contacts?pageSize=50&page=1", "workspace": "w1"}]}"#;
    assert_eq!(p.admin_post("/purge", body).await.status, 200);
    crate::assert_cache!(p, "/api/boards/u/contacts?page=1", Some("w1"), "MISS");
    crate::assert_cache!(p, "/api/boards/u/contacts?page=2", Some("w1"), "HIT");

    // PURGE <url> with the identity headers, as Varnish and nginx users expect.
    let req = p
        .client
        .request(
            reqwest::Method::from_bytes(b"PURGE").unwrap(),
            p.admin_url("/api/boards/u/contacts?page=2"),
        )
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("X-Workspace-ID", "w1");
    assert_eq!(req.send().await.unwrap().status(), 200);
    crate::assert_cache!(p, "/api/boards/u/contacts?page=2", Some("w1"), "MISS");

    assert_eq!(
        p.admin_post("/purge", r#"{"workspaces": ["w1"]}"#)
            .await
            .status,
        200
    );
    crate::assert_cache!(p, "/item/1", Some("w1"), "MISS");
    crate::assert_cache!(p, "/item/1", Some("w2"), "HIT");
}

#[tokio::test]
async fn bad_purge_bodies_are_refused_and_name_the_field() {
    let p = Proxy::start();
    let r = p.admin_post("/purge", r#"{"tags": "not-a-list"}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "tags");
    let r = p.admin_post("/purge", r#"{"tgas": ["x"]}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["field"], "tgas");
    let r = p.admin_post("/purge", "{not json").await;
    assert_eq!(r.status, 400);
    let r = p.admin_post("/purge", "{}").await;
    assert_eq!(r.status, 400);
    let r = p
        .admin_post("/purge", r#"{"urls": ["/not/a/route"]}"#)
        .await;
    assert_eq!(r.status, 422);
    let big = format!(r#"{{"tags": ["{}"]}}"#, "x".repeat(2 << 20));
    let r = p.admin_post("/purge", &big).await;
    assert_eq!(r.status, 413);
    assert_eq!(p.stats().await["purges"], 0, "nothing was applied");
}

#[tokio::test]
async fn soft_purge_serves_stale_then_refreshes() {
    let p = Proxy::start();
    fill(&p, "/soft/1", "w1").await;
    p.purge_tags(&["soft:1"], true).await;
    let s = p.get("/soft/1", Some("w1"), None).await;
    assert_eq!((s.cache(), s.n()), ("STALE", 1));
    let mut refreshed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r = p.get("/soft/1", Some("w1"), None).await;
        if r.n() == 2 {
            assert_eq!(r.cache(), "HIT");
            refreshed = true;
            break;
        }
    }
    assert!(refreshed, "no background refresh after soft purge");
    assert_eq!(p.origin.hits("/soft/1"), 2);
}

#[tokio::test]
async fn soft_purged_copy_still_serves_when_the_origin_fails() {
    let p = Proxy::start();
    fill(&p, "/soft/2", "w1").await;
    p.purge_tags(&["soft:2"], true).await;
    p.origin.set_down(true);
    let r = p.get("/soft/2", Some("w1"), None).await;
    p.origin.set_down(false);
    assert_eq!((r.status, r.cache()), (200, "STALE"));
}

#[tokio::test]
async fn soft_purge_without_swr_behaves_as_a_miss() {
    let p = Proxy::start();
    fill(&p, "/item/soft", "w1").await;
    p.purge_tags(&["item:w1:soft"], true).await;
    let r = p.get("/item/soft", Some("w1"), None).await;
    assert_eq!(r.n(), 2);
    assert_ne!(r.cache(), "HIT");
    assert_ne!(r.cache(), "STALE");
}

#[tokio::test]
async fn a_purge_during_a_fill_wins() {
    let p = Arc::new(Proxy::start());
    let p2 = p.clone();
    let slow = tokio::spawn(async move {
        p2.get_with(
            "/item/race",
            Some("w1"),
            None,
            &[("x-origin-delay-ms", "600")],
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    p.purge_tags(&["item:w1:race"], false).await;
    let first = slow.await.unwrap();
    assert_eq!(first.n(), 1);
    // The copy fetched before the purge is never served from cache.
    let r = p.get("/item/race", Some("w1"), None).await;
    assert_eq!(r.n(), 2, "served a copy fetched before the purge");
    assert_eq!(r.cache(), "MISS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_your_purge_under_concurrency() {
    let p = Arc::new(Proxy::start());
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..8 {
        let (p, acked, stop) = (p.clone(), acked.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut checked = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let floor = acked.load(Ordering::SeqCst);
                let r = p.get("/api/boards/ryp/contacts", Some("w1"), None).await;
                let v = r.json()["version"].as_u64().unwrap();
                assert!(
                    v >= floor,
                    "served version {v} after purge of version {floor} was acknowledged"
                );
                checked += 1;
            }
            checked
        }));
    }
    for _ in 0..40 {
        let v = p.origin.bump();
        p.purge_tags(&["board:w1:ryp"], false).await;
        acked.store(v, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for r in readers {
        total += r.await.unwrap();
    }
    assert!(total > 100, "readers made only {total} requests");
    // The cache did its job in between purges.
    assert!(p.origin.hits("/api/boards/ryp/contacts") < total);
}

#[tokio::test]
async fn events_map_to_tags_and_apply_all_or_nothing() {
    let p = Proxy::start();
    fill(&p, "/api/boards/b1/contacts", "w1").await;
    fill(&p, "/api/cache-settings/workspace/w1/counts", "w1").await;
    // One good and one bad event: nothing is applied.
    let r = p
        .admin_post("/events", r#"[{"event": "contact:moved", "workspace_id": "w1", "board_id": "b1"}, {"event": "contact:moved", "workspace_id": "w1"}]"#)
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["field"], "board_id");
    crate::assert_cache!(p, "/api/boards/b1/contacts", Some("w1"), "HIT");
    let r = p
        .admin_post(
            "/events",
            r#"{"event": "contact:teleported", "workspace_id": "w1"}"#,
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"], "unknown_event");
    let r = p.admin_post("/events", r#"{"workspace_id": "w1"}"#).await;
    assert_eq!((r.status, r.json()["field"].as_str()), (422, Some("event")));

    let r = p.admin_post("/events", r#"{"event": "contact:moved", "workspace_id": "w1", "board_id": "b1", "from_column_id": "c1", "to_column_id": "c2"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    crate::assert_cache!(p, "/api/boards/b1/contacts", Some("w1"), "MISS");
    crate::assert_cache!(
        p,
        "/api/cache-settings/workspace/w1/counts",
        Some("w1"),
        "MISS"
    );
}

#[tokio::test]
async fn legacy_body_is_accepted() {
    let p = Proxy::start();
    fill(&p, "/api/boards/b1/contacts", "w1").await;
    let r = p
        .admin_post(
            "/purge/legacy",
            r#"{"workspace_id": "w1", "board_id": "b1", "filter": "open"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    crate::assert_cache!(p, "/api/boards/b1/contacts", Some("w1"), "MISS");
    let r = p.admin_post("/purge/legacy", r#"{"board_id": "b1"}"#).await;
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (422, Some("workspace_id"))
    );
}

#[tokio::test]
async fn origin_tags_are_namespaced_by_workspace() {
    let p = Proxy::start();
    let h = [
        ("x-origin-header", "Surrogate-Key: shared other"),
        ("x-origin-header", "Cache-Tag: ct1"),
    ];
    for ws in ["w1", "w2"] {
        p.get_with("/item/ot", Some(ws), None, &h).await;
        crate::assert_cache!(p, "/item/ot", Some(ws), "HIT");
    }
    // The bare tag reaches nobody: origin tags only exist inside their workspace.
    p.purge_tags(&["shared"], false).await;
    crate::assert_cache!(p, "/item/ot", Some("w1"), "HIT");
    p.purge_tags(&["w1:shared"], false).await;
    crate::assert_cache!(p, "/item/ot", Some("w1"), "MISS");
    crate::assert_cache!(p, "/item/ot", Some("w2"), "HIT");
    p.purge_tags(&["w2:ct1"], false).await;
    crate::assert_cache!(p, "/item/ot", Some("w2"), "MISS");
}

async fn signed_post(p: &Proxy, body: &str, sig: Option<String>, token: &str) -> Resp {
    let mut req = p
        .client
        .post(p.admin_url("/events"))
        .header("authorization", format!("Bearer {token}"))
        .body(body.to_string());
    if let Some(s) = sig {
        req = req.header("x-tagcache-signature", s);
    }
    Resp::from(req.send().await.unwrap()).await
}

#[tokio::test]
async fn signed_webhooks_refuse_bad_old_replayed_and_unauthenticated() {
    let p = Proxy::start_with(Options {
        admin_extra: "  webhook_secret: \"${TAGCACHE_TEST_WEBHOOK_SECRET}\"".into(),
        ..Options::default()
    });
    fill(&p, "/api/boards/b1/contacts", "w1").await;
    let body = r#"{"event": "contact:moved", "workspace_id": "w1", "board_id": "b1"}"#;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sign = |t: u64, b: &str| tagcache::purge::signature::sign(WEBHOOK_SECRET, t, b.as_bytes());

    let cases = [
        (None, TOKEN, "missing"),
        (Some(sign(now, "{}")), TOKEN, "does not match"),
        (
            Some(tagcache::purge::signature::sign(
                "wrong-secret",
                now,
                body.as_bytes(),
            )),
            TOKEN,
            "does not match",
        ),
        (Some(sign(now - 600, body)), TOKEN, "window"),
        (Some("t=abc".to_string()), TOKEN, "malformed"),
        (Some(sign(now, body)), "wrong-token", "invalid admin token"),
    ];
    for (sig, token, why) in cases {
        let r = signed_post(&p, body, sig, token).await;
        assert_eq!(r.status, 401, "{why}: {}", r.text);
        assert!(
            r.json()["message"].as_str().unwrap().contains(why),
            "{why}: {}",
            r.text
        );
    }
    assert_eq!(
        p.get("/api/boards/b1/contacts", Some("w1"), None)
            .await
            .cache(),
        "HIT",
        "a refused purge acted"
    );

    let good = sign(now, body);
    assert_eq!(
        signed_post(&p, body, Some(good.clone()), TOKEN)
            .await
            .status,
        200
    );
    crate::assert_cache!(p, "/api/boards/b1/contacts", Some("w1"), "MISS");
    let replay = signed_post(&p, body, Some(good), TOKEN).await;
    assert_eq!(replay.status, 401);
    assert!(replay.text.contains("replay"));
}

#[tokio::test]
async fn purge_cli_purges_through_the_admin_api() {
    let p = Proxy::start();
    fill(&p, "/item/cli", "w1").await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tagcache"))
        .args(["purge", "--tag", "item:w1:cli", "--admin", &p.admin_url("")])
        .env("TAGCACHE_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    crate::assert_cache!(p, "/item/cli", Some("w1"), "MISS");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tagcache"))
        .args(["purge", "--tag", "x", "--admin", &p.admin_url("")])
        .env("TAGCACHE_ADMIN_TOKEN", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_tag_over_a_hundred_thousand_entries() {
    const N: usize = 100_000;
    let p = Arc::new(Proxy::start_with(Options {
        max_size: "512MiB".into(),
        ..Options::default()
    }));
    let run = |check: bool| {
        let p = p.clone();
        async move {
            let next = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            for _ in 0..64 {
                let (p, next) = (p.clone(), next.clone());
                tasks.push(tokio::spawn(async move {
                    let mut statuses = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst) as usize;
                        if i >= N {
                            break statuses;
                        }
                        let r = p
                            .client
                            .get(p.url(&format!("/api/boards/huge/contacts?page={i}")))
                            .header("X-Workspace-ID", "w1")
                            .send()
                            .await
                            .unwrap();
                        if check {
                            statuses
                                .push(r.headers()["x-cache-status"].to_str().unwrap().to_string());
                        }
                    }
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            all
        }
    };
    run(false).await;
    let s = p.stats().await;
    assert_eq!(
        s["entries"].as_u64().unwrap(),
        N as u64,
        "all entries stored"
    );
    let r = p
        .admin_post("/purge", r#"{"tags": ["board:w1:huge"]}"#)
        .await;
    assert_eq!(r.status, 200);
    let statuses = run(true).await;
    assert_eq!(statuses.len(), N);
    assert!(
        statuses.iter().all(|s| s == "MISS"),
        "some entry survived the purge"
    );
}
