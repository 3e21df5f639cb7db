//! A Redis Cluster of three masters: fill, hit and purge across instances,
//! with entries spread over the shards and no cross-slot command.

use std::time::{Duration, Instant};

use super::util::{metric, two_synced, wait_for_version, wait_l2_stored, RedisCluster, RedisOpts};
use crate::util::{cold_herd, Origin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_hit_and_purge_on_a_three_master_cluster() {
    let cluster = RedisCluster::start();
    let origin = Origin::start();
    let opts = RedisOpts::cluster(&cluster);
    let (a, b) = two_synced(&origin, &opts).await;

    for i in 0..30 {
        let path = format!("/api/boards/b{i}/contacts");
        let r = a.get(&path, Some("w1"), None).await;
        assert_eq!(r.cache(), "MISS");
        wait_l2_stored(&a, i + 1).await;
        let r = b.get(&path, Some("w1"), None).await;
        assert_eq!((r.cache(), r.layer()), ("HIT", "REDIS"), "{path}");
    }
    // Entries spread over every shard.
    let per_node = cluster.keys_per_node("tc:{*}");
    assert_eq!(per_node.iter().map(Vec::len).sum::<usize>(), 30);
    assert!(
        per_node.iter().all(|keys| !keys.is_empty()),
        "{:?}",
        per_node.iter().map(Vec::len).collect::<Vec<_>>()
    );

    // A purge of many tags at once: one script on the shard of {tc}.
    let version = origin.bump();
    let tags: Vec<String> = (0..30).map(|i| format!("board:w1:b{i}")).collect();
    let body = serde_json::json!({ "tags": tags }).to_string();
    let r = a.admin_post("/purge", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let start = Instant::now();
    for i in 0..30 {
        let path = format!("/api/boards/b{i}/contacts");
        let left = Duration::from_millis(400).saturating_sub(start.elapsed());
        wait_for_version(&b, &path, version, left).await;
    }
    assert_eq!(metric(&a, "tagcache_redis_errors_total").await, 0.0);
    assert_eq!(metric(&b, "tagcache_redis_errors_total").await, 0.0);
    // The purge keys live together on one shard.
    let purge_keys = cluster.keys_per_node("{tc}:*");
    let holders: Vec<usize> = purge_keys.iter().map(Vec::len).filter(|n| *n > 0).collect();
    assert_eq!(holders.len(), 1, "{purge_keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_instance_coalescing_on_a_cluster() {
    let cluster = RedisCluster::start();
    let origin = Origin::start();
    let opts = RedisOpts::cluster(&cluster);
    let (a, b) = two_synced(&origin, &opts).await;
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    for r in cold_herd(&[a, b], "/item/cherd", 20).await {
        assert_eq!(r.status, 200);
    }
    assert_eq!(origin.hits("/item/cherd"), 1);
}
