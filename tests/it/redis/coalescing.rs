//! Cross-instance coalescing: one origin request for a cold key, whichever
//! instances the herd arrives on.

use std::sync::Arc;
use std::time::Duration;

use super::util::{metric, proxy, two_synced, wait_synced, RedisOpts, RedisServer};
use crate::util::{cold_herd, Origin};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cold_herd_over_three_instances_makes_one_origin_request() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis);
    let instances: Vec<_> = (0..3)
        .map(|_| Arc::new(proxy(origin.clone(), &opts)))
        .collect();
    for p in &instances {
        wait_synced(p).await;
    }
    let mut bodies = std::collections::HashSet::new();
    let mut layers = std::collections::HashMap::<String, usize>::new();
    for r in cold_herd(&instances, "/item/herd", 100).await {
        assert_eq!(r.status, 200);
        bodies.insert(r.text.clone());
        *layers.entry(r.layer().to_string()).or_default() += 1;
    }
    assert_eq!(origin.hits("/item/herd"), 1, "layers: {layers:?}");
    assert_eq!(bodies.len(), 1, "every request got the one response");
    let mut leaders = 0.0;
    let mut served = 0.0;
    for p in &instances {
        leaders += metric(p, "tagcache_coalesced_total{result=\"leader\"}").await;
        served += metric(p, "tagcache_coalesced_total{result=\"served\"}").await;
    }
    assert_eq!(leaders, 1.0);
    assert_eq!(served, 2.0, "one waiting request per other instance");
}

/// With Redis alone, requests that wait on the instance's own lock find the
/// entry in Redis: the fast path's Redis miss lets only each request's first
/// lookup skip Redis, not the one after the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_alone_one_instance_herd_makes_one_origin_request_and_one_get_each() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let p = Arc::new(proxy(
        origin.clone(),
        &RedisOpts::server(&redis).redis_only(),
    ));
    wait_synced(&p).await;
    let mut bodies = std::collections::HashSet::new();
    for r in cold_herd(std::slice::from_ref(&p), "/item/soloherd", 30).await {
        assert_eq!(r.status, 200);
        bodies.insert(r.text);
    }
    assert_eq!(origin.hits("/item/soloherd"), 1);
    assert_eq!(bodies.len(), 1);
    // A lone cold request asks Redis once, not once in the fast path and
    // again through pingora-cache.
    let before = metric(&p, "tagcache_l2_lookups_total{result=\"miss\"}").await;
    let cold = p.get("/item/lonely", Some("w1"), None).await;
    assert_eq!(cold.cache(), "MISS");
    let after = metric(&p, "tagcache_l2_lookups_total{result=\"miss\"}").await;
    assert_eq!(after - before, 1.0);
}

/// The lock is a short lease that its holder renews while its fetch runs: a
/// fetch four leases long still makes one origin request, and the lock in
/// Redis never outlives a lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fetch_longer_than_the_lease_keeps_its_lock() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis).extra("coalescing: { lock_lease: 300ms }");
    let (a, b) = two_synced(&origin, &opts).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let path = "/item/longfill";
    let mut tasks = Vec::new();
    for (i, p) in [a, b].into_iter().cycle().take(6).enumerate() {
        tasks.push(tokio::spawn(async move {
            // The first request takes the lock before the others arrive.
            tokio::time::sleep(Duration::from_millis(if i == 0 { 0 } else { 100 })).await;
            p.get_with(path, Some("w1"), None, &[("x-origin-delay-ms", "1200")])
                .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let ttl: i64 = redis
        .cli(&["PTTL", &redis.cli(&["KEYS", "tc:*:lock"])])
        .parse()
        .expect("a lock with a TTL");
    assert!((1..=300).contains(&ttl), "the lock is set for {ttl} ms");
    for t in tasks {
        assert_eq!(t.await.unwrap().status, 200);
    }
    assert_eq!(origin.hits(path), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_fetch_on_their_own_when_the_response_cannot_be_shared() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis);
    let (a, b) = two_synced(&origin, &opts).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut tasks = Vec::new();
    for (i, p) in [a.clone(), b.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let cookie = format!("Set-Cookie: session=user{i}");
            let h = [
                ("x-origin-delay-ms", "300"),
                ("x-origin-header", cookie.as_str()),
            ];
            (i, p.get_with("/item/private", Some("w1"), None, &h).await)
        }));
    }
    for t in tasks {
        let (i, r) = t.await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("set-cookie"),
            Some(format!("session=user{i}").as_str())
        );
    }
    assert_eq!(origin.hits("/item/private"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_redis_each_instance_still_coalesces_its_own_herd() {
    let mut redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis).strict();
    let instances: Vec<_> = (0..2)
        .map(|_| Arc::new(proxy(origin.clone(), &opts)))
        .collect();
    redis.kill();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let p = instances[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            p.get_with(
                "/item/nolock",
                Some("w1"),
                None,
                &[("x-origin-delay-ms", "300")],
            )
            .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().status, 200);
    }
    // At most one origin request per instance.
    assert!(
        origin.hits("/item/nolock") <= 2,
        "{}",
        origin.hits("/item/nolock")
    );
}
