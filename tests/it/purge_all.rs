//! Purging everything: `{"all": true}` and `tagcache purge --all` make every
//! stored entry a miss in O(1). Across instances: `redis/purge_all.rs`.

use std::time::Duration;

use crate::util::Proxy;

/// Paths of different routes, workspaces and users, none sharing a tag.
pub const PATHS: [(&str, &str, Option<&str>); 5] = [
    ("/api/boards/b1/contacts?page=2", "w1", None),
    ("/api/boards/b9/contacts", "w2", None),
    (
        "/api/boards/b1/contacts?filter=assigned_to_me",
        "w1",
        Some("u1"),
    ),
    ("/api/cache-settings/workspace/w1/counts", "w1", None),
    ("/item/everything", "w3", None),
];

pub async fn fill_all(p: &Proxy) {
    for (path, ws, user) in PATHS {
        p.get(path, Some(ws), user).await;
        let r = p.get(path, Some(ws), user).await;
        assert_eq!(r.cache(), "HIT", "{path} not cached");
    }
}

pub async fn statuses(p: &Proxy) -> Vec<String> {
    let mut out = Vec::new();
    for (path, ws, user) in PATHS {
        out.push(p.get(path, Some(ws), user).await.cache().to_string());
    }
    out
}

#[tokio::test]
async fn purge_all_makes_every_entry_a_miss_then_entries_hit_again() {
    let p = Proxy::start();
    fill_all(&p).await;
    let records = p.stats().await["tag_records"].as_u64();

    let r = p.admin_post("/purge", r#"{"all": true}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let j = r.json();
    assert_eq!(j["purged"]["kind"], "all");
    assert_eq!(j["purged"]["tags"], 0);
    // O(1): no tag record is written, whatever the number of entries.
    assert_eq!(p.stats().await["tag_records"].as_u64(), records);

    assert_eq!(statuses(&p).await, ["MISS"; PATHS.len()]);
    // Filled again after the purge: cached as before.
    assert_eq!(statuses(&p).await, ["HIT"; PATHS.len()]);
}

#[tokio::test]
async fn purge_all_covers_a_fill_that_raced_it() {
    let p = Proxy::start();
    let path = "/item/racing-all";
    let slow = {
        let client = p.client.clone();
        let url = p.url(path);
        tokio::spawn(async move {
            client
                .get(url)
                .header("X-Workspace-ID", "w1")
                .header("x-origin-delay-ms", "300")
                .send()
                .await
                .expect("request")
                .status()
        })
    };
    // The fill has started (and read its epoch) when the purge lands.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = p.admin_post("/purge", r#"{"all": true}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(slow.await.expect("task"), 200);
    crate::assert_cache!(p, path, Some("w1"), "MISS");
}

#[tokio::test]
async fn soft_purge_all_is_refused_naming_the_field() {
    let p = Proxy::start();
    fill_all(&p).await;
    let r = p
        .admin_post("/purge", r#"{"all": true, "soft": true}"#)
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json()["field"], "soft");
    // Nothing was purged.
    assert_eq!(statuses(&p).await, ["HIT"; PATHS.len()]);
    // `all: false` alone is nothing to purge.
    let r = p.admin_post("/purge", r#"{"all": false}"#).await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[test]
fn the_cli_purges_everything() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let p = Proxy::start();
    runtime.block_on(fill_all(&p));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tagcache"))
        .args(["purge", "--all", "--admin"])
        .arg(format!("http://127.0.0.1:{}", p.admin_port))
        .env("TAGCACHE_ADMIN_TOKEN", crate::util::TOKEN)
        .output()
        .expect("tagcache purge runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["purged"]["kind"], "all");
    assert_eq!(runtime.block_on(statuses(&p)), ["MISS"; PATHS.len()]);

    // --all with tags or soft is a usage error, and nothing is sent.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tagcache"))
        .args(["purge", "--all", "--soft"])
        .output()
        .expect("tagcache purge runs");
    assert_eq!(out.status.code(), Some(2));
}
