//! Purges across instances: async within milliseconds, sync before the
//! answer, and nothing stale after Redis loses its state.

use std::time::{Duration, Instant};

use super::util::{
    proxy, two_synced, wait_for_version, wait_l2_stored, wait_synced, RedisOpts, RedisServer,
    HEARTBEAT_MS,
};
use crate::util::Origin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_on_one_instance_reaches_the_others_within_the_bound() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis);
    let (a, b) = two_synced(&origin, &opts).await;

    let path = "/api/boards/b1/contacts?page=2";
    a.get(path, Some("w1"), None).await;
    wait_l2_stored(&a, 1).await;
    assert_eq!(b.get(path, Some("w1"), None).await.layer(), "REDIS");
    assert_eq!(b.get(path, Some("w1"), None).await.layer(), "MEMORY");

    let version = origin.bump();
    let r = a.admin_post("/purge", r#"{"tags":["board:w1:b1"]}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let report = r.json();
    assert_eq!(report["shared"]["consistency"], "async");
    assert_eq!(report["shared"]["complete"], true);

    // B applies it as soon as the message arrives: well under the bound.
    wait_for_version(&b, path, version, Duration::from_millis(2 * HEARTBEAT_MS)).await;
    // Both instances agree on the epoch the purge was given.
    assert_eq!(
        redis.cli(&["HGET", "{tc}:epoch", "e"]),
        report["epoch"].to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_purge_answers_once_every_instance_applied_it() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis).extra("purge: { consistency: sync, sync_timeout: 2s }");
    let instances: Vec<_> = (0..3).map(|_| proxy(origin.clone(), &opts)).collect();
    for p in &instances {
        wait_synced(p).await;
    }
    // Wait until every instance has registered its heartbeat.
    let start = Instant::now();
    while redis.cli(&["ZCARD", "{tc}:instances"]) != "3" {
        assert!(start.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (a, others) = instances.split_first().unwrap();
    for round in 0..20 {
        let path = format!("/item/s{round}");
        a.get(&path, Some("w1"), None).await;
        for p in others {
            // Warm every L1, so that a stale read would come from memory.
            p.get(&path, Some("w1"), None).await;
            assert_eq!(p.get(&path, Some("w1"), None).await.layer(), "MEMORY");
        }
        let version = origin.bump();
        let body = format!(r#"{{"tags":["item:w1:s{round}"]}}"#);
        let r = a.admin_post("/purge", &body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let shared = &r.json()["shared"];
        assert_eq!(shared["consistency"], "sync");
        assert_eq!(shared["complete"], true, "{shared}");
        assert_eq!(shared["live"], 3);
        assert_eq!(shared["acked"], 3);
        // Right after the answer: no instance serves the old copy.
        for p in others {
            let r = p.get(&path, Some("w1"), None).await;
            assert_eq!(r.json()["version"], version, "stale read on round {round}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_purge_reports_the_instances_that_did_not_answer() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis).extra("purge: { consistency: sync, sync_timeout: 300ms }");
    let a = proxy(origin.clone(), &opts);
    wait_synced(&a).await;
    // A live instance that never acknowledges (registered, not subscribed).
    redis.cli(&["ZADD", "{tc}:instances", "99999999999999", "ghost"]);
    let start = Instant::now();
    let r = a.admin_post("/purge", r#"{"tags":["t"]}"#).await;
    assert_eq!(r.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(300));
    let shared = &r.json()["shared"];
    assert_eq!(shared["complete"], false, "{shared}");
    assert_eq!(shared["missing"], serde_json::json!(["ghost"]));
    assert_eq!(shared["live"], 2);
    assert_eq!(shared["acked"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_stale_is_served_after_redis_restarts_empty() {
    let mut redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis);
    let (a, b) = two_synced(&origin, &opts).await;
    // Some purges, so the epoch is well above zero.
    for _ in 0..5 {
        a.purge_tags(&["warmup"], false).await;
    }
    let path = "/item/restart";
    a.get(path, Some("w1"), None).await;
    wait_l2_stored(&a, 1).await;
    assert_eq!(b.get(path, Some("w1"), None).await.layer(), "REDIS");
    assert_eq!(b.get(path, Some("w1"), None).await.layer(), "MEMORY");
    // Let the entry age past the resync window, so only resynchronization can save it.
    tokio::time::sleep(Duration::from_millis(3 * HEARTBEAT_MS)).await;

    redis.restart_empty();
    let version = origin.bump();
    // The purge goes through the new, empty Redis.
    let r = a
        .admin_post("/purge", r#"{"tags":["item:w1:restart"]}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // From the moment the purge is answered, neither instance serves the old copy.
    for _ in 0..20 {
        for p in [&a, &b] {
            let r = p.get(path, Some("w1"), None).await;
            assert_eq!(
                r.json()["version"],
                version,
                "stale copy from {}",
                r.layer()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The epoch never went back: the new Redis continues above what instances had seen.
    let epoch: u64 = redis.cli(&["HGET", "{tc}:epoch", "e"]).parse().unwrap();
    assert!(epoch > 5, "epoch {epoch}");
    wait_synced(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_starts_later_replays_earlier_purges() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis);
    let a = proxy(origin.clone(), &opts);
    wait_synced(&a).await;
    a.get("/item/late", Some("w1"), None).await;
    // The purge leaves A's entry in Redis (purges never touch entries), and
    // its message went out before B existed: B can only know it from the log.
    let r = a.admin_post("/purge", r#"{"tags":["item:w1:late"]}"#).await;
    assert_eq!(r.status, 200);
    let b = proxy(origin.clone(), &opts);
    wait_synced(&b).await;
    let version = origin.bump();
    let r = b.get("/item/late", Some("w1"), None).await;
    assert_eq!(r.json()["version"], version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_published_while_subscriptions_are_down_is_replayed() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis);
    let (a, b) = two_synced(&origin, &opts).await;
    let path = "/item/lost";
    a.get(path, Some("w1"), None).await;
    b.get(path, Some("w1"), None).await;
    assert_eq!(b.get(path, Some("w1"), None).await.layer(), "MEMORY");

    // Cut every subscription, and purge before they are back: the message is lost.
    let version = origin.bump();
    redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    let r = a.admin_post("/purge", r#"{"tags":["item:w1:lost"]}"#).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let start = Instant::now();
    loop {
        let r = b.get(path, Some("w1"), None).await;
        if r.json()["version"] == version {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_millis(2 * HEARTBEAT_MS),
            "B served the purged copy for {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_synced(&b).await;
    assert!(super::util::metric(&b, "tagcache_redis_resyncs_total{kind=\"catchup\"}").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_subscription_an_instance_serves_only_entries_younger_than_the_window() {
    let redis = RedisServer::start();
    // A Redis user that may do everything but subscribe: its instance can
    // never hear of purges.
    redis.cli(&[
        "ACL", "SETUSER", "deaf", "on", ">deaf-pw", "~*", "&*", "+@all", "-@pubsub",
    ]);
    let origin = Origin::start();
    let mut opts = RedisOpts::server(&redis);
    opts.heartbeat_ms = 1000;
    let a = proxy(origin.clone(), &opts);
    let mut deaf = opts.clone();
    deaf.target = format!("url: \"redis://deaf:deaf-pw@127.0.0.1:{}\"", redis.port);
    let b = proxy(origin.clone(), &deaf);
    wait_synced(&a).await;
    let h = super::util::health(&b).await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["redis"]["subscribed"], false, "{h}");

    let path = "/item/window";
    a.get(path, Some("w1"), None).await;
    wait_l2_stored(&a, 1).await;
    // Fetched moments ago: within the window (2 x 1s), B may serve it.
    let fresh = b.get(path, Some("w1"), None).await;
    assert_eq!((fresh.cache(), fresh.layer()), ("HIT", "REDIS"));
    // Past the window, B could have missed a purge: it fetches again, though
    // nothing was purged and the entry is fresh for another 300 s.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let refetched = b.get(path, Some("w1"), None).await;
    assert_eq!((refetched.cache(), refetched.layer()), ("MISS", "ORIGIN"));
    assert!(refetched
        .header("cache-status")
        .unwrap()
        .contains("detail=unsynced"));
    let again = b.get(path, Some("w1"), None).await;
    assert_eq!((again.cache(), again.layer()), ("HIT", "MEMORY"));
    // A, subscribed, still serves its copy.
    crate::assert_cache!(a, path, Some("w1"), "HIT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_tagcache_writes_expires_but_the_epoch() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis).extra("purge: { consistency: sync }");
    let (a, b) = two_synced(&origin, &opts).await;
    // Entries, a coalescing lock in flight, a sync purge with its acks, heartbeats.
    a.get("/item/k1", Some("w1"), None).await;
    b.get("/soft/k2", Some("w1"), None).await;
    let slow = {
        let url = a.url("/item/slow");
        let client = a.client.clone();
        tokio::spawn(async move {
            client
                .get(url)
                .header("X-Workspace-ID", "w1")
                .header("x-origin-delay-ms", "500")
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.purge_tags(&["item:w1:k1"], false).await;
    let keys: Vec<String> = redis
        .cli(&["KEYS", "*"])
        .lines()
        .map(str::to_string)
        .collect();
    assert!(keys.iter().any(|k| k.ends_with(":lock")), "{keys:?}");
    for wanted in ["{tc}:epoch", "{tc}:log", "{tc}:instances", "{tc}:acks"] {
        assert!(keys.iter().any(|k| k == wanted), "{wanted} in {keys:?}");
    }
    for key in &keys {
        let ttl: i64 = redis.cli(&["PTTL", key]).parse().unwrap();
        if key == "{tc}:epoch" {
            assert_eq!(ttl, -1, "the epoch counter is the one persistent key");
        } else {
            assert!(ttl > 0, "{key} has no TTL ({ttl})");
        }
    }
    slow.await.unwrap().unwrap();
}
