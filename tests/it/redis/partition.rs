//! `purge.consistency: sync` when one instance loses its path to Redis: a
//! purge answered as complete must never be older than what that instance
//! serves. The instance stops serving stored responses once its registration
//! in the live set may have lapsed (its lease), and serves them again only
//! after it has registered again and replayed the purges it missed.

use std::time::{Duration, Instant};

use super::link::Link;
use super::util::{proxy, wait_synced, RedisOpts, RedisServer, HEARTBEAT_MS};
use crate::util::Origin;

/// Instance B reaches Redis through a link the test freezes; A reaches it
/// directly. B keeps reaching the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_sync_purge_is_never_older_than_what_a_cut_off_instance_serves() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis)
        .strict()
        .extra("purge: { consistency: sync, sync_timeout: 3s }");
    let (link, a, b) = b_through_a_link(&redis, &origin, opts).await;
    let start = Instant::now();
    while redis.cli(&["ZCARD", "{tc}:instances"]) != "2" {
        assert!(start.elapsed() < Duration::from_secs(5), "never both live");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    link.freeze();
    // B's heartbeats go unanswered; it can still fetch from the origin, and
    // a response fetched now is well within its old resync window.
    tokio::time::sleep(Duration::from_millis(3 * HEARTBEAT_MS / 2)).await;
    let path = "/item/cut";
    let before = b.get(path, Some("w1"), None).await;
    assert_eq!(before.status, 200);
    let old = before.json()["version"].as_u64().unwrap();

    // A purges: B's registration lapses in Redis, so the purge completes
    // without B's acknowledgement.
    let new = origin.bump();
    assert!(new > old);
    let r = a.admin_post("/purge", r#"{"tags":["item:w1:cut"]}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["shared"]["complete"], true, "{}", r.text);

    // Whatever B answers now must be at least as new as the purge.
    for _ in 0..5 {
        assert_at_least(&b, path, new, "a complete purge").await;
    }
    let bypass = b.get(path, Some("w1"), None).await;
    assert_eq!(bypass.cache(), "BYPASS");
    assert!(
        bypass
            .header("cache-status")
            .is_some_and(|s| s.contains("detail=unconfirmed")),
        "{:?}",
        bypass.header("cache-status")
    );

    // Back on the link: B registers again, replays, and serves hits again.
    link.thaw();
    let start = Instant::now();
    loop {
        let r = b.get(path, Some("w1"), None).await;
        if r.cache() == "HIT" {
            assert!(r.json()["version"].as_u64().unwrap() >= new);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "B never served a hit again: {} {:?}",
            r.cache(),
            r.header("cache-status")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Graceful shutdown leaves the live set first, so sync purges stop waiting
/// for the instance; requests it still answers while it drains must not be
/// served from what it stored, since it no longer follows purges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_left_the_live_set_serves_nothing_stored() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis)
        .strict()
        .extra("purge: { consistency: sync, sync_timeout: 3s }");
    let a = proxy(origin.clone(), &opts);
    let b = proxy(origin.clone(), &opts);
    wait_synced(&a).await;
    wait_synced(&b).await;
    let path = "/item/leaving";
    let old = stored_version(&b, path).await;

    // B starts its graceful shutdown: it leaves the live set.
    b.running.as_ref().expect("in-process").cache.leave().await;
    assert_eq!(redis.cli(&["ZCARD", "{tc}:instances"]), "1");

    let new = origin.bump();
    assert!(new > old);
    let r = a
        .admin_post("/purge", r#"{"tags":["item:w1:leaving"]}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["shared"]["complete"], true, "{}", r.text);

    assert_at_least(&b, path, new, "it left and a purge completed").await;
    assert_eq!(b.get(path, Some("w1"), None).await.cache(), "BYPASS");
}

/// Redis restarted empty loses the live set with everything else. An
/// instance that has not noticed yet (here: its link is frozen, as a busy
/// or cut-off instance would be) still trusts its lease, so a sync purge
/// made on the new state may not complete before that lease has run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_purge_after_redis_lost_its_state_waits_out_the_old_leases() {
    let mut redis = RedisServer::start();
    let origin = Origin::start();
    // A long heartbeat, so that B's lease outlasts the restart by far.
    let mut opts = RedisOpts::server(&redis)
        .strict()
        .extra("purge: { consistency: sync, sync_timeout: 6s }");
    opts.heartbeat_ms = 1_000;
    let (link, a, b) = b_through_a_link(&redis, &origin, opts).await;
    let path = "/item/lost";
    let old = stored_version(&b, path).await;

    // B notices nothing; Redis comes back empty, without B's registration.
    link.freeze();
    // Reads under way when the freeze began end within 20 ms.
    tokio::time::sleep(Duration::from_millis(50)).await;
    redis.restart_empty();
    let new = origin.bump();
    assert!(new > old);
    let start = Instant::now();
    let r = loop {
        let r = a.admin_post("/purge", r#"{"tags":["item:w1:lost"]}"#).await;
        if r.status == 200 || start.elapsed() > Duration::from_secs(8) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["shared"]["complete"], true, "{}", r.text);

    assert_at_least(&b, path, new, "a complete purge on the new Redis state").await;
    link.thaw();
}

/// Instances A and B with `opts` on `redis`, B through a [`Link`] the test
/// can freeze, both synchronized.
async fn b_through_a_link(
    redis: &RedisServer,
    origin: &Origin,
    opts: RedisOpts,
) -> (Link, crate::util::Proxy, crate::util::Proxy) {
    let link = Link::to(redis.url().trim_start_matches("redis://"));
    let mut opts_b = opts.clone();
    opts_b.target = format!("url: \"{}\"", link.url());
    let a = proxy(origin.clone(), &opts);
    let b = proxy(origin.clone(), &opts_b);
    wait_synced(&a).await;
    wait_synced(&b).await;
    (link, a, b)
}

/// Fetches `path` on `p` until it is a hit; returns the version it holds.
async fn stored_version(p: &crate::util::Proxy, path: &str) -> u64 {
    p.get(path, Some("w1"), None).await;
    let hit = p.get(path, Some("w1"), None).await;
    assert_eq!(hit.cache(), "HIT");
    hit.json()["version"].as_u64().unwrap()
}

/// What `p` answers for `path` now is at least as new as `version`.
async fn assert_at_least(p: &crate::util::Proxy, path: &str, version: u64, after: &str) {
    let r = p.get(path, Some("w1"), None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.json()["version"].as_u64().unwrap() >= version,
        "B served version {} ({} {}) after {after}",
        r.json()["version"],
        r.cache(),
        r.header("cache-status").unwrap_or_default()
    );
}

/// `POST /explain` with the Redis tier shows both tiers' copies of an entry,
/// this instance's place in the live set, and a cut-off instance losing its
/// lease: what an operator needs to say why an instance served what it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_both_tiers_and_the_lease() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis).extra("purge: { consistency: sync, sync_timeout: 3s }");
    let (link, a, b) = b_through_a_link(&redis, &origin, opts).await;
    let path = "/item/explained";
    let explain = |p: &crate::util::Proxy| {
        let body =
            serde_json::json!({ "url": path, "workspace": "w1", "tags": ["item:w1:explained"] });
        let p = p.admin_url("/explain");
        async move {
            let r = reqwest::Client::new()
                .post(p)
                .bearer_auth(crate::util::TOKEN)
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    assert_eq!(a.get(path, Some("w1"), None).await.cache(), "MISS");

    let on_a = explain(&a).await;
    assert_eq!(on_a["memory"]["verdict"], "valid", "{on_a}");
    assert_eq!(on_a["redis"]["verdict"], "valid", "{on_a}");
    assert_eq!(on_a["redis"]["born"], on_a["memory"]["born"], "{on_a}");
    assert_eq!(on_a["fanout"]["consistency"], "sync", "{on_a}");
    assert_eq!(on_a["fanout"]["lease"]["confirmed"], true, "{on_a}");
    // B has it in Redis only, with the same key.
    let on_b = explain(&b).await;
    assert!(on_b["memory"].is_null(), "{on_b}");
    assert_eq!(on_b["redis"]["verdict"], "valid", "{on_b}");
    assert_eq!(on_b["key"], on_a["key"]);
    assert_ne!(on_b["fanout"]["instance"], on_a["fanout"]["instance"]);

    // B cut off from Redis: its lease runs out, and it says so.
    link.freeze();
    let start = Instant::now();
    loop {
        let on_b = explain(&b).await;
        if on_b["fanout"]["lease"]["confirmed"] == false {
            assert!(on_b["redis"].is_null(), "Redis out of reach: {on_b}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{on_b}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
