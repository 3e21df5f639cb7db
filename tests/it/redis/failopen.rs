//! Fail-open: with Redis killed or frozen mid-load, clients see no error,
//! `/health` says degraded, the breaker opens, and everything recovers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::util::{metric, proxy, wait_health, wait_synced, RedisOpts, RedisServer};
use crate::util::{Origin, Proxy};

/// Requests `p` from 8 tasks until `stop`, half on 10 hot keys (memory hits),
/// half on keys never seen (a Redis lookup and fill each); counts answers and failures.
fn load(
    p: Arc<Proxy>,
    stop: Arc<AtomicBool>,
) -> (
    Arc<AtomicU64>,
    Arc<AtomicU64>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let tasks = (0..8)
        .map(|t| {
            let (p, stop, ok, failed) = (p.clone(), stop.clone(), ok.clone(), failed.clone());
            tokio::spawn(async move {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    i += 8;
                    let path = if i % 2 == 0 {
                        format!("/item/hot{}", i % 10)
                    } else {
                        format!("/item/cold{i}")
                    };
                    let r = p
                        .client
                        .get(p.url(&path))
                        .header("X-Workspace-ID", "w1")
                        .timeout(Duration::from_secs(20))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                let what = match other {
                                    Ok(r) => format!("status {}", r.status()),
                                    Err(e) => format!("{e:?}"),
                                };
                                eprintln!("first client error on {path}: {what}");
                            }
                        }
                    }
                }
            })
        })
        .collect();
    (ok, failed, tasks)
}

async fn breaker_state(p: &Proxy) -> f64 {
    metric(p, "tagcache_redis_breaker_state ").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_mid_load_costs_no_client_error_and_recovers() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    let origin = Origin::start();
    let p = Arc::new(proxy(origin.clone(), &RedisOpts::server(&redis).strict()));
    wait_synced(&p).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, tasks) = load(p.clone(), stop.clone());

    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    let h = wait_health(&p, "degraded", Duration::from_secs(3)).await;
    assert_eq!(h["redis"]["subscribed"], false, "{h}");
    // Misses keep trying Redis until the breaker opens, then skip it.
    let start = Instant::now();
    while breaker_state(&p).await != 2.0 {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "breaker never opened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let served_while_down = ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        ok.load(Ordering::Relaxed) > served_while_down,
        "still serving"
    );

    // Back on the same port, empty: the breaker's probe closes it, the subscription resyncs.
    let mut again = RedisServer::start_on(port);
    wait_health(&p, "ok", Duration::from_secs(5)).await;
    assert_eq!(breaker_state(&p).await, 0.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "client errors");
    assert!(ok.load(Ordering::Relaxed) > 100);
    assert!(metric(&p, "tagcache_redis_errors_total{op=\"get\"}").await >= 1.0);
    // Fills reach the new Redis again.
    let r = p.get("/item/after-recovery", Some("w1"), None).await;
    assert_eq!(r.status, 200);
    let start = Instant::now();
    while again.cli(&["KEYS", "tc:{*}"]).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "nothing stored after recovery"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    again.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_frozen_mid_load_costs_no_client_error_and_recovers() {
    let mut redis = RedisServer::start();
    let origin = Origin::start();
    let p = Arc::new(proxy(origin.clone(), &RedisOpts::server(&redis).strict()));
    wait_synced(&p).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, tasks) = load(p.clone(), stop.clone());

    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.pause();
    // Connections stay open but nothing answers: timeouts, then the breaker.
    let start = Instant::now();
    while breaker_state(&p).await != 2.0 {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "breaker never opened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let h = wait_health(&p, "degraded", Duration::from_secs(3)).await;
    assert_eq!(h["redis"]["breaker"], "open", "{h}");
    // While frozen, requests are answered promptly from memory and the origin;
    // their lookups skip Redis (at most one in a probe interval is the probe).
    for i in 0..5 {
        let t = Instant::now();
        let r = p
            .get(&format!("/item/while-frozen{i}"), Some("w1"), None)
            .await;
        assert_eq!(r.status, 200);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    redis.resume();
    wait_health(&p, "ok", Duration::from_secs(5)).await;
    assert_eq!(breaker_state(&p).await, 0.0);
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "client errors");
    assert!(metric(&p, "tagcache_redis_errors_total{op=\"get\"}").await >= 1.0);
    assert!(metric(&p, "tagcache_redis_skipped_total{op=\"get\"}").await >= 1.0);
    assert!(ok.load(Ordering::Relaxed) > 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_while_redis_is_down_is_refused_then_sent_when_it_is_back() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis).strict();
    let a = proxy(origin.clone(), &opts);
    wait_synced(&a).await;
    a.get("/item/down", Some("w1"), None).await;
    redis.kill();
    let r = a.admin_post("/purge", r#"{"tags":["item:w1:down"]}"#).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.json()["error"], "purge_not_shared");
    // It applies here all the same.
    crate::assert_cache!(a, "/item/down", Some("w1"), "MISS");
    assert_eq!(
        a.get("/item/down", Some("w1"), None).await.cache(),
        "MISS",
        "not cached until Redis has it"
    );

    let _again = RedisServer::start_on(port);
    wait_health(&a, "ok", Duration::from_secs(5)).await;
    // The outbox reached the new Redis: its log holds the purge.
    let start = Instant::now();
    while _again.cli(&["XLEN", "{tc}:log"]) == "0" {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "outbox never sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.get("/item/down", Some("w1"), None).await;
    crate::assert_cache!(a, "/item/down", Some("w1"), "HIT");
}
