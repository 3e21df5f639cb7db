//! The L2 tier: what is stored, how it is read back, and promotion into L1.

use super::util::{
    metric, proxy, proxy_with, two_synced, wait_for_version, wait_l2_stored, wait_synced,
    RedisOpts, RedisServer,
};
use crate::util::{Options, Origin};

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

    wait_l2_stored(&a, 1).await;
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
    wait_l2_stored(&a, 2).await;
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
    wait_l2_stored(&a, 1).await;
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
    wait_l2_stored(&a, 1).await;
    let keys = redis.cli(&["KEYS", "tc:{*}"]);
    let key = keys.trim().to_string();
    // An older format version, then something that is not ours at all.
    let value = redis.cli(&["GET", &key]);
    assert!(value.starts_with("TCE"), "magic and version: {value:?}");
    // The version byte follows the magic; the value just stored has the current one.
    let version = value.as_bytes()[3];
    let current = format!("TCE{}", char::from(version));
    let newer = format!("TCE{}a newer version", char::from(version + 1));
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
        wait_l2_stored(&b, 1).await;
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
    wait_l2_stored(&a, 1).await;
    for _ in 0..3 {
        let hit = a.get("/item/only", Some("w1"), None).await;
        assert_eq!((hit.cache(), hit.layer()), ("HIT", "REDIS"));
    }
    a.purge_tags(&["item:w1:only"], false).await;
    let after = a.get("/item/only", Some("w1"), None).await;
    assert_eq!(after.cache(), "MISS");
    assert_eq!(origin.hits("/item/only"), 2);
}

/// Fresh Redis hits are answered by the proxy's fast path; what the client
/// gets must be what pingora-cache's path gives: headers, framing, and the
/// requests the fast path leaves to that path (ranges, conditionals).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_hits_from_the_fast_path_answer_like_the_full_path() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis).redis_only();
    let a = proxy(origin.clone(), &opts);
    let etag = [("x-origin-header", "ETag: \"e1\"")];
    let miss = a.get_with("/item/fast", Some("w1"), None, &etag).await;
    assert_eq!(miss.cache(), "MISS");
    wait_l2_stored(&a, 1).await;
    let hit = a.get("/item/fast", Some("w1"), None).await;
    assert_eq!(
        (hit.status, hit.cache(), hit.layer()),
        (200, "HIT", "REDIS")
    );
    assert_eq!(hit.text, miss.text);
    assert_eq!(
        hit.header("content-length").map(String::from),
        Some(miss.text.len().to_string())
    );
    assert_eq!(hit.header("etag"), Some("\"e1\""));
    let age: u64 = hit
        .header("age")
        .expect("age")
        .parse()
        .expect("numeric age");
    assert!(age <= 5, "age {age}");
    let cs = hit.header("cache-status").unwrap();
    assert!(cs.starts_with("tagcache; hit; ttl="), "{cs}");
    assert!(!cs.contains("coalesced"), "{cs}");

    let range = a
        .get_with("/item/fast", Some("w1"), None, &[("range", "bytes=0-3")])
        .await;
    assert_eq!((range.status, range.cache()), (206, "HIT"));
    assert_eq!(range.text, miss.text[..4]);
    let not_modified = a
        .get_with(
            "/item/fast",
            Some("w1"),
            None,
            &[("if-none-match", "\"e1\"")],
        )
        .await;
    assert_eq!(not_modified.status, 304);
    // Another workspace's request never reads this entry.
    let other = a.get("/item/fast", Some("w2"), None).await;
    assert_eq!(other.cache(), "MISS");
    assert_eq!(origin.hits("/item/fast"), 2);
}

/// RFC 9111 §3.5 holds for entries read from Redis as for memory: without a
/// tenant in the key, a stored response goes to a request with
/// `Authorization` only if the origin marked it shareable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorized_request_is_not_served_an_unshareable_redis_entry() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis).redis_only();
    let routes = r#"
routes:
  - name: public_page
    match: "GET /public/{id}"
    ttl: 300s
"#;
    let base = || Options {
        routes: routes.into(),
        tenant: String::new(),
        ..Options::default()
    };
    let a = proxy_with(origin.clone(), &opts, base());
    crate::assert_cache!(a, "/public/1", None, "MISS");
    wait_l2_stored(&a, 1).await;
    let anon = a.get("/public/1", None, None).await;
    assert_eq!((anon.cache(), anon.layer()), ("HIT", "REDIS"));
    let bob = a
        .get_with(
            "/public/1",
            None,
            Some("bob"),
            &[("authorization", "Bearer b")],
        )
        .await;
    assert_eq!(bob.cache(), "MISS");
    assert_eq!(bob.json()["user"], "bob");

    let public = [("x-origin-header", "Cache-Control: public, max-age=60")];
    assert_eq!(
        a.get_with("/public/2", None, None, &public).await.cache(),
        "MISS"
    );
    wait_l2_stored(&a, 2).await;
    // A second instance: its memory is empty, so the hit can only come from Redis.
    let b = proxy_with(origin.clone(), &opts, base());
    let shared = b
        .get_with("/public/2", None, None, &[("authorization", "Bearer c")])
        .await;
    assert_eq!((shared.cache(), shared.layer()), ("HIT", "REDIS"));
}

/// `unix:///path`: the Redis tier over a unix socket, for a Redis on the
/// same host. Entries, pub/sub purges and heartbeats all use it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_tier_works_over_a_unix_socket() {
    let redis = RedisServer::start_unix();
    assert!(redis.url().starts_with("unix:///"), "{}", redis.url());
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis);
    let (a, b) = two_synced(&origin, &opts).await;
    crate::assert_cache!(a, "/item/u", Some("w1"), "MISS");
    wait_l2_stored(&a, 1).await;
    let on_b = b.get("/item/u", Some("w1"), None).await;
    assert_eq!((on_b.cache(), on_b.layer()), ("HIT", "REDIS"));
    let on_b = b.get("/item/u", Some("w1"), None).await;
    assert_eq!(on_b.layer(), "MEMORY");
    let version = origin.bump();
    let r = a.admin_post("/purge", r#"{"tags":["item:w1:u"]}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["shared"]["complete"], true);
    wait_for_version(&b, "/item/u", version, std::time::Duration::from_secs(5)).await;
    assert_eq!(redis.cli(&["PING"]), "PONG");
}
