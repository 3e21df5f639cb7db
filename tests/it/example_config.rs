//! The example config (`conf/tagcache.example.yaml`) against the API it
//! documents: the real file, loaded as shipped (only its addresses moved to
//! ephemeral ports), in front of the test origin, route by route.

use std::sync::Arc;
use std::time::Duration;

use crate::util::{free_ports, wait_for_port, Origin, Proxy, TOKEN};

const EXAMPLE: &str = include_str!("../../conf/tagcache.example.yaml");

/// Replaces `from` in the example once, failing if the file changed shape.
fn moved(yaml: String, from: &str, to: &str) -> String {
    assert_eq!(
        yaml.matches(from).count(),
        1,
        "{from} not once in the example"
    );
    yaml.replacen(from, to, 1)
}

fn start() -> Proxy {
    crate::util::init_tracing();
    let origin = Origin::start();
    let [port, admin_port] = free_ports();
    let yaml = moved(
        EXAMPLE.to_string(),
        "listen: \"0.0.0.0:8080\"",
        &format!("listen: \"127.0.0.1:{port}\""),
    );
    let yaml = moved(
        yaml,
        "address: \"127.0.0.1:3000\"",
        &format!("address: \"{}\"", origin.addr),
    );
    let yaml = moved(
        yaml,
        "listen: \"127.0.0.1:9090\"",
        &format!("listen: \"127.0.0.1:{admin_port}\""),
    );
    let env = |name: &str| (name == "TAGCACHE_ADMIN_TOKEN").then(|| TOKEN.to_string());
    let loaded = tagcache::config::load_str(&yaml, "conf/tagcache.example.yaml", &env)
        .unwrap_or_else(|e| panic!("the example config is invalid:\n{e}"));
    let running = tagcache::server::spawn(Arc::new(loaded.config)).expect("spawn proxy");
    wait_for_port(port);
    wait_for_port(admin_port);
    Proxy {
        origin,
        port,
        admin_port,
        running: Some(running),
        child: None,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
    }
}

/// `X-Cache-Status` of a GET as workspace `ws` and user `user`.
async fn status(p: &Proxy, path: &str, ws: &str, user: &str) -> String {
    let r = p.get(path, Some(ws), Some(user)).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    r.cache().to_string()
}

#[tokio::test]
async fn contact_lists_are_shared_by_the_workspace_except_assigned_to_me() {
    let p = start();
    let list = "/api/boards/b1/contacts?filter=open&page=2";
    assert_eq!(status(&p, list, "w1", "u1").await, "MISS");
    assert_eq!(status(&p, list, "w1", "u2").await, "HIT", "shared by users");
    assert_eq!(
        status(&p, list, "w2", "u1").await,
        "MISS",
        "not by workspaces"
    );

    // Defaults written out are the same key as left out.
    let plain = "/api/boards/b1/contacts";
    assert_eq!(status(&p, plain, "w1", "u1").await, "MISS");
    let spelled =
        "/api/boards/b1/contacts?page=1&pageSize=50&filter=all&sortBy=created_at&sortOrder=desc";
    assert_eq!(status(&p, spelled, "w1", "u2").await, "HIT");

    let mine = "/api/boards/b1/contacts?filter=assigned_to_me";
    assert_eq!(status(&p, mine, "w1", "u1").await, "MISS");
    assert_eq!(status(&p, mine, "w1", "u1").await, "HIT");
    assert_eq!(status(&p, mine, "w1", "u2").await, "MISS", "per user");

    // Pages over 100 pass through, every time.
    let big = "/api/boards/b7/contacts?pageSize=500";
    for _ in 0..2 {
        assert_eq!(status(&p, big, "w1", "u1").await, "BYPASS");
    }
    assert_eq!(p.origin.hits("/api/boards/b7/contacts"), 2);
    // An unknown parameter is not keyed loosely: it passes through.
    assert_eq!(
        status(&p, "/api/boards/b1/contacts?debug=1", "w1", "u1").await,
        "BYPASS"
    );
}

#[tokio::test]
async fn counts_are_per_user_and_use_cache_false_always_reaches_the_backend() {
    let p = start();
    let counts = "/api/cache-settings/workspace/w1/counts";
    let cached = format!("{counts}?useCache=true");
    assert_eq!(status(&p, &cached, "w1", "u1").await, "MISS");
    assert_eq!(status(&p, &cached, "w1", "u1").await, "HIT");
    // assignedToMe differs per user: another user's counts are their own.
    let r = p.get(&cached, Some("w1"), Some("u2")).await;
    assert_eq!(r.cache(), "MISS");
    assert_eq!(r.json()["user"], "u2");
    assert_eq!(p.origin.hits(counts), 2);

    let fresh = format!("{counts}?useCache=false");
    for n in 1..=3 {
        assert_eq!(status(&p, &fresh, "w1", "u1").await, "BYPASS");
        assert_eq!(
            p.origin.hits(counts),
            2 + n,
            "useCache=false reached the origin"
        );
    }
    // Bypassing stored nothing: the cached counts are still served.
    assert_eq!(status(&p, &cached, "w1", "u1").await, "HIT");
}

#[tokio::test]
async fn summaries_details_and_per_user_call_data_are_cached_as_documented() {
    let p = start();
    for path in [
        "/enterprise/e1/contacts/summary",
        "/enterprise/e1/departments/d1/contacts/summary",
        "/api/contacts/c1",
    ] {
        assert_eq!(status(&p, path, "w1", "u1").await, "MISS", "{path}");
        assert_eq!(status(&p, path, "w1", "u2").await, "HIT", "{path}");
    }
    for path in [
        "/api/webhook-calls?limit=20&offset=0",
        "/api/intent-analysis",
    ] {
        assert_eq!(status(&p, path, "w1", "u1").await, "MISS", "{path}");
        assert_eq!(status(&p, path, "w1", "u1").await, "HIT", "{path}");
        assert_eq!(
            status(&p, path, "w1", "u2").await,
            "MISS",
            "{path} is per user"
        );
    }
    // Call pages over 100 pass through.
    assert_eq!(
        status(&p, "/api/webhook-calls?limit=500", "w1", "u1").await,
        "BYPASS"
    );
    // A path no route matches is proxied and never cached.
    for _ in 0..2 {
        assert_eq!(status(&p, "/api/messages", "w1", "u1").await, "BYPASS");
    }
    assert_eq!(p.origin.hits("/api/messages"), 2);
}

#[tokio::test]
async fn contact_avatars_follow_the_backends_cache_control() {
    let p = start();
    let avatar = "/api/contacts/c1/avatar";
    let fresh = [
        ("x-origin-header", "Cache-Control: max-age=600"),
        ("x-origin-etag", "\"a1\""),
    ];
    let a = p.get_with(avatar, Some("w1"), Some("u1"), &fresh).await;
    let b = p.get_with(avatar, Some("w1"), Some("u2"), &fresh).await;
    assert_eq!((a.cache(), b.cache()), ("MISS", "HIT"));
    // What the backend marks no-store, or says nothing about, is not kept.
    for cc in ["Cache-Control: no-store", "X-Nothing: 1"] {
        let path = "/api/contacts/c2/avatar";
        for _ in 0..2 {
            let r = p
                .get_with(path, Some("w1"), Some("u1"), &[("x-origin-header", cc)])
                .await;
            assert_eq!(r.cache(), "MISS", "{cc}");
        }
    }
    assert_eq!(p.origin.hits("/api/contacts/c2/avatar"), 4);
}

#[tokio::test]
async fn events_and_legacy_bodies_purge_what_the_table_says() {
    let p = start();
    let list = "/api/boards/b1/contacts";
    let other_board = "/api/boards/b2/contacts";
    let open = "/api/boards/b2/contacts?filter=open";
    let mine = "/api/boards/b1/contacts?filter=assigned_to_me";
    let counts = "/api/cache-settings/workspace/w1/counts?useCache=true";
    let calls = "/api/webhook-calls?limit=20";
    let fill = || async {
        for path in [list, other_board, open, mine, counts, calls] {
            status(&p, path, "w1", "u1").await;
            assert_eq!(status(&p, path, "w1", "u1").await, "HIT", "{path}");
        }
        // Another user's calls, which no purge below but call:created of u2 touches.
        status(&p, calls, "w1", "u2").await;
    };
    let missed = || async {
        let mut out = Vec::new();
        for path in [list, other_board, open, mine, counts, calls] {
            if status(&p, path, "w1", "u1").await == "MISS" {
                out.push(path);
            }
        }
        out
    };
    let post = |path: &'static str, body: &'static str| {
        let p = &p;
        async move {
            let r = p.admin_post(path, body).await;
            assert_eq!(r.status, 200, "{body}: {}", r.text);
        }
    };

    fill().await;
    post("/events", r#"{"event": "contact:moved", "workspace_id": "w1", "board_id": "b1", "from_column_id": "c1", "to_column_id": "c2"}"#).await;
    assert_eq!(missed().await, [list, mine, counts]);

    fill().await;
    post(
        "/events",
        r#"{"event": "contact:assigned", "workspace_id": "w1"}"#,
    )
    .await;
    assert_eq!(missed().await, [mine, counts]);

    fill().await;
    post(
        "/events",
        r#"{"event": "call:created", "workspace_id": "w1", "user_id": "u1"}"#,
    )
    .await;
    assert_eq!(missed().await, [calls]);
    assert_eq!(
        status(&p, calls, "w1", "u2").await,
        "HIT",
        "another user's calls"
    );

    // The backend's older body: the fewer fields, the wider the purge.
    fill().await;
    post(
        "/purge/legacy",
        r#"{"workspace_id": "w1", "board_id": "b2", "filter": "open"}"#,
    )
    .await;
    assert_eq!(missed().await, [open]);
    fill().await;
    post(
        "/purge/legacy",
        r#"{"workspace_id": "w1", "board_id": "b1"}"#,
    )
    .await;
    assert_eq!(missed().await, [list, mine]);
    fill().await;
    post("/purge/legacy", r#"{"workspace_id": "w1"}"#).await;
    assert_eq!(missed().await, [list, other_board, open, mine]);
}

/// The example's `invalidate:` entry: a contact edited through tagcache
/// purges that contact and the workspace's counts before the answer, and
/// nothing of another workspace.
#[tokio::test]
async fn an_edited_contact_purges_its_details_and_the_counts() {
    let p = start();
    let counts = "/api/cache-settings/workspace/w1/counts?useCache=true";
    for (path, ws) in [
        ("/api/contacts/c7", "w1"),
        ("/api/contacts/c8", "w1"),
        (counts, "w1"),
        ("/api/contacts/c7", "w2"),
    ] {
        status(&p, path, ws, "u1").await;
        assert_eq!(status(&p, path, ws, "u1").await, "HIT", "{path} as {ws}");
    }
    let r = p
        .client
        .patch(p.url("/api/contacts/c7"))
        .header("X-Workspace-ID", "w1")
        .header("X-User-ID", "u1")
        .body(r#"{"name":"Ana Lima"}"#)
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 200);
    assert_eq!(status(&p, "/api/contacts/c7", "w1", "u1").await, "MISS");
    assert_eq!(status(&p, counts, "w1", "u1").await, "MISS");
    assert_eq!(status(&p, "/api/contacts/c8", "w1", "u1").await, "HIT");
    assert_eq!(status(&p, "/api/contacts/c7", "w2", "u1").await, "HIT");
}
