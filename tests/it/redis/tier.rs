//! The L2 tier: what is stored, how it is read back, and promotion into L1.

use super::util::{metric, proxy, wait_synced, RedisOpts, RedisServer};
use crate::util::Origin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_filled_on_one_instance_is_a_redis_hit_on_another_then_memory() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis);
    let a = proxy(origin.clone(), &opts);
    let b = proxy(origin.clone(), &opts);

    let first = a.get("/item/1", Some("w1"), None).await;
    assert_eq!(
        (first.status, first.cache(), first.layer()),
        (200, "MISS", "ORIGIN")
    );
    let on_a = a.get("/item/1", Some("w1"), None).await;
    assert_eq!((on_a.cache(), on_a.layer()), ("HIT", "MEMORY"));

    // B has never seen the key: its L1 misses, L2 has A's fill.
    let on_b = b.get("/item/1", Some("w1"), None).await;
    assert_eq!(
        (on_b.status, on_b.cache(), on_b.layer()),
        (200, "HIT", "REDIS")
    );
    assert_eq!(on_b.text, first.text, "the same body");
    assert!(on_b.header("age").is_some());
    assert!(on_b
        .header("cache-status")
        .unwrap()
        .starts_with("tagcache; hit; ttl="));
    // Promoted: the next hit on B is from its memory.
    let again = b.get("/item/1", Some("w1"), None).await;
    assert_eq!((again.cache(), again.layer()), ("HIT", "MEMORY"));
    assert_eq!(origin.hits("/item/1"), 1);
    assert_eq!(
        metric(&b, "tagcache_l2_lookups_total{result=\"hit\"}").await,
        1.0
    );

    // The key is the deployment prefix and the hash; its TTL is the route's ttl (300s).
    let keys = redis.cli(&["KEYS", "tc:{*}"]);
    assert_eq!(keys.lines().count(), 1, "{keys}");
    let pttl: i64 = redis.cli(&["PTTL", keys.trim()]).parse().unwrap();
    assert!((290_000..=300_000).contains(&pttl), "pttl {pttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keeps_an_entry_through_its_stale_windows_and_serves_them() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis);
    let a = proxy(origin.clone(), &opts);
    // Route `swr_soft`: ttl 300s, swr 60s, sie 60s. Route `sie`: ttl 1s, sie 60s.
    a.get("/soft/1", Some("w1"), None).await;
    a.get("/sie/1", Some("w1"), None).await;
    let ttl = |pattern: &str| -> Vec<i64> {
        redis
            .cli(&["KEYS", pattern])
            .lines()
            .map(|k| redis.cli(&["PTTL", k]).parse().unwrap())
            .collect()
    };
    let mut all = ttl("tc:{*}");
    all.sort();
    assert_eq!(all.len(), 2);
    assert!(
        (55_000..=61_000).contains(&all[0]),
        "1s + 60s stale-if-error: {all:?}"
    );
    assert!((355_000..=360_000).contains(&all[1]), "300s + 60s: {all:?}");

    // Past its freshness, B still gets A's copy as stale when the origin fails.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let b = proxy(origin.clone(), &opts);
    // Until it has replayed the purge log, B would not trust an entry this old.
    wait_synced(&b).await;
    origin.set_down(true);
    let stale = b.get("/sie/1", Some("w1"), None).await;
    origin.set_down(false);
    assert_eq!(
        (stale.status, stale.cache(), stale.layer()),
        (200, "STALE", "REDIS")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_are_compressed_and_come_back_whole() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis);
    let a = proxy(origin.clone(), &opts);
    let b = proxy(origin.clone(), &opts);
    let size = 200_000usize;
    let h = [("x-origin-body-size", "200000")];
    let filled = a.get_with("/item/big", Some("w1"), None, &h).await;
    assert_eq!(filled.text.len(), size);
    let keys = redis.cli(&["KEYS", "tc:{*}"]);
    let stored: usize = redis.cli(&["STRLEN", keys.trim()]).parse().unwrap();
    assert!(stored < size / 20, "{size} bytes of 'a' stored as {stored}");
    let hit = b.get_with("/item/big", Some("w1"), None, &h).await;
    assert_eq!((hit.cache(), hit.layer()), ("HIT", "REDIS"));
    assert_eq!(hit.text, filled.text);
    assert_eq!(hit.header("content-length"), Some("200000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_or_old_values_under_our_keys_are_misses() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis);
    let a = proxy(origin.clone(), &opts);
    a.get("/item/x", Some("w1"), None).await;
    let keys = redis.cli(&["KEYS", "tc:{*}"]);
    let key = keys.trim().to_string();
    // An older format version, then something that is not ours at all.
    let value = redis.cli(&["GET", &key]);
    assert!(value.starts_with("TCE"), "magic and version: {value:?}");
    let current = format!("TCE{}", char::from(tagcache::storage::envelope::VERSION));
    let newer = format!(
        "TCE{}a newer version",
        char::from(tagcache::storage::envelope::VERSION + 1)
    );
    for garbage in [newer.as_str(), "{\"json\": true}"] {
        redis.cli(&["SET", &key, garbage, "PX", "60000"]);
        let b = proxy(origin.clone(), &opts);
        let r = b.get("/item/x", Some("w1"), None).await;
        assert_eq!(
            (r.status, r.cache(), r.layer()),
            (200, "MISS", "ORIGIN"),
            "{garbage}"
        );
        assert!(metric(&b, "tagcache_l2_lookups_total{result=\"rejected\"}").await >= 1.0);
        // The miss refilled it in the current format.
        assert!(redis.cli(&["GET", &key]).starts_with(&current));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_alone_serves_every_hit_from_redis() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis).redis_only();
    let a = proxy(origin.clone(), &opts);
    wait_synced(&a).await;
    let miss = a.get("/item/only", Some("w1"), None).await;
    assert_eq!(miss.cache(), "MISS");
    for _ in 0..3 {
        let hit = a.get("/item/only", Some("w1"), None).await;
        assert_eq!((hit.cache(), hit.layer()), ("HIT", "REDIS"));
    }
    a.purge_tags(&["item:w1:only"], false).await;
    let after = a.get("/item/only", Some("w1"), None).await;
    assert_eq!(after.cache(), "MISS");
    assert_eq!(origin.hits("/item/only"), 2);
}
