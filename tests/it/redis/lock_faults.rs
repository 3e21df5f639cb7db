//! Cross-instance coalescing under faults: waiters on another instance's
//! lock leave as soon as its holder has answered, whatever the answer, or is
//! gone; none of them sits until `coalescing.wait_timeout` (10 s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::util::{two_synced, RedisOpts, RedisServer};
use crate::util::{Origin, Proxy, Resp};

/// The longest a waiter may take; generous, so that a busy machine does not
/// fail it, and far below the 10 s wait timeout the defects ran into.
const BOUND: Duration = Duration::from_secs(2);

/// Two synchronized instances whose purges are applied by both before the
/// admin API answers.
async fn two_with_sync_purges(redis: &RedisServer, origin: &Origin) -> (Arc<Proxy>, Arc<Proxy>) {
    let opts = RedisOpts::server(redis).extra("purge: { consistency: sync, sync_timeout: 2s }");
    let (a, b) = two_synced(origin, &opts).await;
    let start = Instant::now();
    while redis.cli(&["ZCARD", "{tc}:instances"]) != "2" {
        assert!(start.elapsed() < Duration::from_secs(5), "no heartbeats");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (Arc::new(a), Arc::new(b))
}

/// Sends `n` plain requests for `path` to `p` at once; returns each answer
/// with its latency.
fn waiters(p: &Arc<Proxy>, path: &str, n: usize) -> Vec<tokio::task::JoinHandle<(Resp, Duration)>> {
    (0..n)
        .map(|_| {
            let p = p.clone();
            let path = path.to_string();
            tokio::spawn(async move {
                let start = Instant::now();
                let r = p.get(&path, Some("w1"), None).await;
                (r, start.elapsed())
            })
        })
        .collect()
}

/// Awaits the waiters and asserts that each was answered 200 within [`BOUND`].
async fn assert_released(tasks: Vec<tokio::task::JoinHandle<(Resp, Duration)>>) {
    for t in tasks {
        let (r, took) = t.await.expect("waiter");
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(took < BOUND, "a waiter took {took:?}");
    }
}

/// Issue 12 point 5 (a): the entry was purged but is still in Redis, and the
/// holder's new answer is not storable. The purged entry must not keep the
/// waiters polling: the holder's "not stored" releases them at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_leave_when_a_purged_entry_is_refetched_as_not_storable() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let (a, b) = two_with_sync_purges(&redis, &origin).await;
    let path = "/item/lockfault-a";
    crate::assert_cache!(a, path, Some("w1"), "MISS");
    a.purge_tags(&["item:w1:lockfault-a"], false).await;

    let holder = {
        let a = a.clone();
        tokio::spawn(async move {
            let h = [
                ("x-origin-delay-ms", "500"),
                ("x-origin-header", "Cache-Control: no-store"),
            ];
            a.get_with(path, Some("w1"), None, &h).await
        })
    };
    // The holder has taken the lock by now: these wait on it.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let tasks = waiters(&b, path, 3);
    assert_released(tasks).await;
    let held = holder.await.expect("holder");
    assert_eq!(held.status, 200);
    assert_eq!(held.cache(), "MISS");
    // The first fill, the holder's, and one fetch of the waiters' instance.
    assert_eq!(origin.hits(path), 3);
}

/// Issue 12 point 5 (b): a purge lands during the holder's fill, so the
/// entry it stores is purged already. The waiters must not take it for
/// the old entry and keep polling: they fetch on their own at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_leave_when_the_holders_fill_is_purged_during_the_fill() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let (a, b) = two_with_sync_purges(&redis, &origin).await;
    let path = "/item/lockfault-b";
    let holder = {
        let a = a.clone();
        tokio::spawn(async move {
            a.get_with(path, Some("w1"), None, &[("x-origin-delay-ms", "800")])
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let tasks = waiters(&b, path, 3);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let version = origin.bump();
    a.purge_tags(&["item:w1:lockfault-b"], false).await;
    for t in tasks {
        let (r, took) = t.await.expect("waiter");
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(took < BOUND, "a waiter took {took:?}");
        // Not the holder's copy, which the purge covers.
        assert_eq!(r.json()["version"], version);
    }
    assert_eq!(holder.await.expect("holder").status, 200);
}

/// Issue 12 point 5 (c): a lock that nobody holds, as Redis leaves it when
/// it applies a lock call after the caller timed out (Redis was frozen). It
/// must expire within about a lease, not hold every request for the key
/// until the wait timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_orphan_lock_holds_requests_for_about_a_lease_only() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let (a, b) = two_synced(&origin, &RedisOpts::server(&redis)).await;
    let a = Arc::new(a);
    let path = "/item/lockfault-c";
    // A real lock for the key, to learn its name and how long it is set for.
    let holder = {
        let a = a.clone();
        tokio::spawn(async move {
            let h = [
                ("x-origin-delay-ms", "500"),
                ("x-origin-header", "Cache-Control: no-store"),
            ];
            a.get_with(path, Some("w1"), None, &h).await
        })
    };
    let start = Instant::now();
    let lock = loop {
        let keys = redis.cli(&["KEYS", "tc:*:lock"]);
        if !keys.is_empty() {
            break keys;
        }
        assert!(start.elapsed() < Duration::from_secs(2), "no lock taken");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let ttl = redis.cli(&["PTTL", &lock]);
    assert!(ttl.parse::<u64>().is_ok(), "{ttl}");
    assert_eq!(holder.await.expect("holder").status, 200);
    // The same lock again, applied late: a token nobody holds, its usual TTL.
    assert_eq!(redis.cli(&["SET", &lock, "orphan", "PX", &ttl]), "OK");

    let start = Instant::now();
    let r = b.get(path, Some("w1"), None).await;
    let took = start.elapsed();
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        took < BOUND,
        "the request took {took:?} (lock set for {ttl} ms)"
    );
}

/// A holder whose client leaves before the origin answers still releases
/// its waiters as soon as its request ends, not when its lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiters_leave_when_the_holders_client_goes_away() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let (a, b) = two_synced(&origin, &RedisOpts::server(&redis)).await;
    let path = "/item/lockfault-gone";
    let holder = tokio::spawn(async move {
        let h = [("x-origin-delay-ms", "800")];
        let gone = tokio::time::timeout(
            Duration::from_millis(100),
            a.get_with(path, Some("w1"), None, &h),
        )
        .await;
        assert!(gone.is_err(), "the holder's client left first");
        a
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    // Well under the lease: a lock left to expire would take a second.
    for t in waiters(&Arc::new(b), path, 3) {
        let (r, took) = t.await.expect("waiter");
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(took < Duration::from_millis(600), "a waiter took {took:?}");
    }
    drop(holder.await.expect("holder"));
}
