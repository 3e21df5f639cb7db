//! Purging everything across instances: the floor reaches every instance
//! through Redis, before the answer in sync mode.

use std::time::Duration;

use super::util::{two_synced, RedisOpts, RedisServer, HEARTBEAT_MS};
use crate::purge_all::{fill_all, statuses, PATHS};
use crate::util::Origin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_all_reaches_every_instance_before_the_answer_in_sync_mode() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis).extra("purge: { consistency: sync, sync_timeout: 2s }");
    let (a, b) = two_synced(&origin, &opts).await;
    let start = std::time::Instant::now();
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
    let deadline = std::time::Instant::now() + Duration::from_millis(2 * HEARTBEAT_MS);
    for (path, ws, user) in PATHS {
        loop {
            let r = a.get(path, Some(ws), user).await;
            if r.json()["version"] == version {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{path} still served from before the purge"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
