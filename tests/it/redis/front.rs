//! The listener's front path with the Redis tier: a fresh Redis hit is
//! answered before the proxy (one `GET`, promoted into memory), and a Redis
//! that does not answer costs the request one timeout before the proxy
//! takes it, not one on each path.

use std::time::{Duration, Instant};

use super::util::{metric, proxy, wait_l2_stored, wait_synced, RedisOpts, RedisServer};
use crate::util::Origin;

const FRONT_REDIS: &str = "tagcache_front_hits_total{layer=\"REDIS\"}";
const FRONT_MEMORY: &str = "tagcache_front_hits_total{layer=\"MEMORY\"}";
const L2_HITS: &str = "tagcache_l2_lookups_total{result=\"hit\"}";
const GET_ERRORS: &str = "tagcache_redis_errors_total{op=\"get\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_hit_is_answered_by_the_front_and_promoted_into_memory() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis);
    let a = proxy(origin.clone(), &opts);
    let b = proxy(origin.clone(), &opts);
    let filled = a.get("/item/front", Some("w1"), None).await;
    assert_eq!((filled.cache(), filled.layer()), ("MISS", "ORIGIN"));
    wait_l2_stored(&a, 1).await;

    let hit = b.get("/item/front", Some("w1"), None).await;
    assert_eq!(
        (hit.status, hit.cache(), hit.layer()),
        (200, "HIT", "REDIS")
    );
    assert_eq!(hit.text, filled.text);
    assert_eq!(metric(&b, FRONT_REDIS).await, 1.0, "answered by the front");
    assert_eq!(metric(&b, L2_HITS).await, 1.0, "one GET");
    assert!(hit
        .header("cache-status")
        .is_some_and(|v| v.starts_with("tagcache; hit; ttl=")));
    assert!(hit.header("age").is_some());
    assert_eq!(
        hit.header("content-length"),
        Some(hit.text.len().to_string().as_str())
    );
    assert_eq!(hit.header("content-type"), filled.header("content-type"));
    // Counted as the proxy counts a hit.
    assert_eq!(
        metric(
            &b,
            "tagcache_requests_total{cache_status=\"HIT\",route=\"item\"}"
        )
        .await,
        1.0
    );

    // Promoted as the proxy promotes: the next hit is the front's, from memory.
    let again = b.get("/item/front", Some("w1"), None).await;
    assert_eq!((again.cache(), again.layer()), ("HIT", "MEMORY"));
    assert_eq!(metric(&b, FRONT_MEMORY).await, 1.0);
    assert_eq!(metric(&b, L2_HITS).await, 1.0, "no second GET");
    assert_eq!(origin.hits("/item/front"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_memory_tier_off_every_redis_hit_is_the_fronts() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis).redis_only();
    let a = proxy(origin.clone(), &opts);
    let filled = a.get("/item/redis-only", Some("w1"), None).await;
    assert_eq!(filled.cache(), "MISS");
    wait_l2_stored(&a, 1).await;
    for _ in 0..3 {
        let hit = a.get("/item/redis-only", Some("w1"), None).await;
        assert_eq!((hit.cache(), hit.layer()), ("HIT", "REDIS"));
        assert_eq!(hit.text, filled.text);
    }
    assert_eq!(metric(&a, FRONT_REDIS).await, 3.0);
    assert_eq!(metric(&a, L2_HITS).await, 3.0, "one GET per hit");
    assert_eq!(origin.hits("/item/redis-only"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_costs_the_front_one_timeout_then_the_proxy_answers() {
    let mut redis = RedisServer::start();
    let origin = Origin::start();
    // Without cross-instance coalescing, whose lock is a Redis call of its
    // own, and with an answer that is not stored, so no fill writes to
    // Redis: the only Redis wait is the lookup's.
    let mut opts = RedisOpts::server(&redis).extra("coalescing: { across_instances: false }");
    opts.timeout = "400ms".into();
    let timeout = Duration::from_millis(400);
    let b = proxy(origin.clone(), &opts);
    wait_synced(&b).await;
    let errors = metric(&b, GET_ERRORS).await;

    redis.pause();
    let t = Instant::now();
    let no_store = [("x-origin-header", "Cache-Control: no-store")];
    let r = b
        .get_with("/item/frozen", Some("w1"), None, &no_store)
        .await;
    let took = t.elapsed();
    redis.resume();
    assert_eq!((r.status, r.cache(), r.layer()), (200, "MISS", "ORIGIN"));
    // One timeout (the front's GET), not a second one on the proxy's path.
    assert!(took >= timeout, "{took:?}");
    assert!(took < 2 * timeout, "{took:?}");
    assert_eq!(metric(&b, GET_ERRORS).await - errors, 1.0, "one GET");
    assert_eq!(metric(&b, FRONT_REDIS).await, 0.0);
    assert_eq!(origin.hits("/item/frozen"), 1);
}

/// A fill's write to a frozen Redis does not hold the client's response:
/// the miss costs the lookup's timeout, and the write times out on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_does_not_wait_for_a_frozen_redis_to_take_its_write() {
    let mut redis = RedisServer::start();
    let origin = Origin::start();
    let mut opts = RedisOpts::server(&redis).extra("coalescing: { across_instances: false }");
    opts.timeout = "1s".into();
    let timeout = Duration::from_secs(1);
    let b = proxy(origin.clone(), &opts);
    wait_synced(&b).await;

    redis.pause();
    let t = Instant::now();
    let r = b.get("/item/frozen-fill", Some("w1"), None).await;
    let took = t.elapsed();
    assert_eq!((r.status, r.cache()), (200, "MISS"));
    // The lookup's timeout, not a second one for the write.
    assert!(took >= timeout, "{took:?}");
    assert!(took < timeout * 2 - Duration::from_millis(200), "{took:?}");
    // The entry still went to memory: the next request is a hit there.
    let again = b.get("/item/frozen-fill", Some("w1"), None).await;
    assert_eq!((again.cache(), again.layer()), ("HIT", "MEMORY"));
    redis.resume();
    assert_eq!(origin.hits("/item/frozen-fill"), 1);
}
