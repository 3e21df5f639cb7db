//! Purging everything across instances: the floor reaches every instance
//! through Redis, before the answer in sync mode.

use std::time::{Duration, Instant};

use super::util::{two_synced, wait_synced, RedisOpts, RedisServer, HEARTBEAT_MS};
use crate::purge_all::{fill_all, statuses, PATHS};
use crate::util::Origin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_all_reaches_every_instance_before_the_answer_in_sync_mode() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis).extra("purge: { consistency: sync, sync_timeout: 2s }");
    let (a, b) = two_synced(&origin, &opts).await;
    let start = Instant::now();
    while redis.cli(&["ZCARD", "{tc}:instances"]) != "2" {
        assert!(start.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fill_all(&a).await;
    // B has every entry in memory (copied from Redis, then served from memory).
    for (path, ws, user) in PATHS {
        b.get(path, Some(ws), user).await;
        assert_eq!(b.get(path, Some(ws), user).await.layer(), "MEMORY");
    }

    let version = origin.bump();
    let r = a.admin_post("/purge", r#"{"all": true}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let j = r.json();
    assert_eq!(j["shared"]["complete"], true, "{j}");
    assert_eq!(j["shared"]["acked"], 2, "{j}");
    // The floor is in Redis for instances that synchronize later.
    assert_eq!(
        redis.cli(&["HGET", "{tc}:epoch", "f"]),
        j["epoch"].to_string()
    );

    // Right after the answer, no instance serves an earlier entry, from
    // memory or from Redis.
    assert_eq!(statuses(&b).await, ["MISS"; PATHS.len()]);
    for (path, ws, user) in PATHS {
        let r = a.get(path, Some(ws), user).await;
        assert_eq!(
            r.json()["version"],
            version,
            "{path} served from before the purge"
        );
    }
    // Filled again after the purge: cached again.
    assert_eq!(statuses(&b).await, ["HIT"; PATHS.len()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_purge_all_reaches_the_other_instance_within_the_bound() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis);
    let (a, b) = two_synced(&origin, &opts).await;
    fill_all(&a).await;
    for (path, ws, user) in PATHS {
        b.get(path, Some(ws), user).await;
        assert_eq!(b.get(path, Some(ws), user).await.cache(), "HIT");
    }
    let version = origin.bump();
    let r = b.admin_post("/purge", r#"{"all": true}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["shared"]["complete"], true);
    // B purged before answering; A gets the floor within the bound.
    assert_eq!(statuses(&b).await, ["MISS"; PATHS.len()]);
    let deadline = Instant::now() + Duration::from_millis(2 * HEARTBEAT_MS);
    for (path, ws, user) in PATHS {
        loop {
            let r = a.get(path, Some(ws), user).await;
            if r.json()["version"] == version {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{path} still served from before the purge"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_all_made_while_redis_is_frozen_is_sent_when_it_answers() {
    let mut redis = RedisServer::start();
    let origin = Origin::start();
    // Per-instance coalescing only: lock commands that timed out while Redis
    // was frozen run when it thaws, and would hold B's keys for a while.
    let opts = RedisOpts::server(&redis).extra("coalescing: { across_instances: false }");
    let (a, b) = two_synced(&origin, &opts).await;
    fill_all(&a).await;
    for (path, ws, user) in PATHS {
        b.get(path, Some(ws), user).await;
        assert_eq!(b.get(path, Some(ws), user).await.cache(), "HIT");
    }

    redis.pause();
    let version = origin.bump();
    let r = a.admin_post("/purge", r#"{"all": true}"#).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.json()["error"], "purge_not_shared");
    // Applied here at once; nothing fetched before Redis has it is served.
    assert_eq!(statuses(&a).await, ["MISS"; PATHS.len()]);
    assert_eq!(statuses(&a).await, ["MISS"; PATHS.len()]);

    redis.resume();
    // Sent with a heartbeat once Redis answers: the floor is in Redis.
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis.cli(&["HGET", "{tc}:epoch", "f"]).is_empty() {
        assert!(Instant::now() < deadline, "the purge was never sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // B, synchronized again (so it trusts its memory again), drops the
    // copies it held from before the purge.
    wait_synced(&b).await;
    for (path, ws, user) in PATHS {
        let r = b.get(path, Some(ws), user).await;
        assert_eq!(
            r.json()["version"],
            version,
            "{path} served from before the purge"
        );
    }
    // And A caches again.
    while statuses(&a).await != ["HIT"; PATHS.len()] {
        assert!(Instant::now() < deadline, "A never cached again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
