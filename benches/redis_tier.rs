//! Redis tier figures: L2 hit latency and throughput next to the memory tier,
//! and purge fan-out latency to three instances.
//!
//! A driver rather than a criterion bench, because what matters here is tail
//! latency across a real network hop. It starts its own `redis-server` on a
//! free loopback port (no persistence, in a temp dir) and stops it at the end.
//!
//! Run with `cargo bench --bench redis_tier` (needs `redis-server`).
//! `ITERATIONS` (default 20000) and `SECONDS` (default 3) adjust the runs.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use pingora_cache::storage::Storage;
use pingora_cache::trace::Span;
use pingora_cache::{CacheKey, CacheMeta};
use pingora_http::ResponseHeader;
use tagcache::config::{Consistency, RedisStorage, RedisTarget, Secret};
use tagcache::generations::TagRegistry;
use tagcache::shared::fanout::Fanout;
use tagcache::shared::Shared;
use tagcache::storage::{EntryInfo, MemoryStore, RedisStore};

const KEYS: usize = 1000;

struct Redis {
    child: Child,
    dir: std::path::PathBuf,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let dir = std::env::temp_dir().join(format!("tagcache-bench-redis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, dir, port }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn settings(port: u16, prefix: &str) -> RedisStorage {
    RedisStorage {
        target: RedisTarget::Server(Secret::new(format!("redis://127.0.0.1:{port}"))),
        prefix: prefix.to_string(),
        // Generous: a benchmark should measure latency, not time out.
        timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_secs(1),
        compress_above: 4096,
        max_object_size: 8 << 20,
        breaker_failures: 1000,
        probe_interval: Duration::from_secs(1),
        heartbeat: Duration::from_secs(1),
    }
}

fn meta() -> CacheMeta {
    let mut header = ResponseHeader::build(200, Some(4)).expect("header");
    header
        .append_header("content-type", "application/json")
        .expect("header");
    header
        .append_header("etag", "W/\"5f2a-1c0b7e9d\"")
        .expect("header");
    let now = SystemTime::now();
    let mut meta = CacheMeta::new(now + Duration::from_secs(3600), now, 60, 60, header);
    Arc::new(EntryInfo {
        route: 0,
        workspace: Some("w1".into()),
        tags: vec![0x9e37_79b9, 0x85eb_ca6b, 0xc2b2_ae35].into_boxed_slice(),
        born: 0,
    })
    .attach(&mut meta);
    meta
}

/// A JSON-ish body of `len` bytes (compressible like a contact list).
fn body(len: usize) -> Bytes {
    let row = b"{\"id\":\"c-000123\",\"name\":\"Ada Lovelace\",\"column\":\"open\"},";
    Bytes::from(row.iter().copied().cycle().take(len).collect::<Vec<u8>>())
}

fn key(i: usize) -> CacheKey {
    CacheKey::new(format!("/api/boards/b{}/contacts?page={i}", i % 97), "w1")
}

async fn fill(store: &'static (dyn Storage + Sync), body: &Bytes) {
    let span = Span::inactive().handle();
    let meta = meta();
    for i in 0..KEYS {
        let mut miss = store
            .get_miss_handler(&key(i), &meta, &span)
            .await
            .expect("miss handler");
        miss.write_body(body.clone(), true).await.expect("write");
        miss.finish().await.expect("finish");
    }
}

async fn hit(store: &'static (dyn Storage + Sync), i: usize) -> usize {
    let span = Span::inactive().handle();
    let (_, mut hit) = store
        .lookup(&key(i % KEYS), &span)
        .await
        .expect("lookup")
        .expect("a hit");
    let mut n = 0;
    while let Some(b) = hit.read_body().await.expect("read") {
        n += b.len();
    }
    n
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{what:<44} n={:<6} p50 {:>7.1} µs  p99 {:>7.1} µs  p99.9 {:>7.1} µs  max {:>8.1} µs",
        samples.len(),
        us(percentile(&samples, 0.50)),
        us(percentile(&samples, 0.99)),
        us(percentile(&samples, 0.999)),
        us(*samples.last().expect("samples")),
    );
}

async fn latency(store: &'static (dyn Storage + Sync), iterations: usize) -> Vec<Duration> {
    for i in 0..1000 {
        hit(store, i).await;
    }
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let t = Instant::now();
        std::hint::black_box(hit(store, i * 7).await);
        samples.push(t.elapsed());
    }
    samples
}

async fn throughput(store: &'static (dyn Storage + Sync), tasks: usize, seconds: u64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (stop, done) = (stop.clone(), done.clone());
            tokio::spawn(async move {
                let mut i = t * 131;
                while !stop.load(Ordering::Relaxed) {
                    std::hint::black_box(hit(store, i).await);
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                    // A memory hit never suspends: let the timer run.
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.await.expect("task");
    }
    done.load(Ordering::Relaxed) as f64 / seconds as f64
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let iterations = env("ITERATIONS", 20_000) as usize;
    let seconds = env("SECONDS", 3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let redis = Redis::start();
    println!(
        "redis-server {} on 127.0.0.1:{}; {} keys per body size",
        version(),
        redis.port,
        KEYS
    );

    rt.block_on(async {
        for (label, len) in [
            ("2 KiB body (raw)", 2 * 1024),
            ("20 KiB body (zstd)", 20 * 1024),
        ] {
            let shared =
                Shared::new(&settings(redis.port, &format!("bench{len}"))).expect("shared");
            let l2: &'static RedisStore =
                Box::leak(Box::new(RedisStore::new(shared.clone(), 8 << 20, 4096)));
            let memory: &'static MemoryStore =
                Box::leak(Box::new(MemoryStore::new(1 << 30, 8 << 20)));
            let b = body(len);
            fill(l2, &b).await;
            fill(memory, &b).await;
            report(
                &format!("L2 hit, {label}, 1 client"),
                latency(l2, iterations).await,
            );
            report(
                &format!("memory hit, {label}, 1 client"),
                latency(memory, iterations).await,
            );
            for tasks in [1, 16, 64] {
                let l2_ops = throughput(l2, tasks, seconds).await;
                let mem_ops = throughput(memory, tasks, seconds).await;
                println!(
                    "{:<44} L2 {:>9.0} hits/s   memory {:>10.0} hits/s   ratio {:.4}",
                    format!("throughput, {label}, {tasks} tasks"),
                    l2_ops,
                    mem_ops,
                    l2_ops / mem_ops
                );
            }
        }

        // Purge fan-out to three instances: the purger plus two others, each
        // with its own connection, subscription and registry, as three
        // processes would have.
        for consistency in [Consistency::Async, Consistency::Sync] {
            let prefix = format!("fan{consistency:?}");
            let instances: Vec<(Arc<Fanout>, Arc<TagRegistry>)> = (0..3)
                .map(|_| {
                    let shared = Shared::new(&settings(redis.port, &prefix)).expect("shared");
                    let registry = Arc::new(TagRegistry::shared(Duration::from_secs(600)));
                    let fanout = Fanout::new(
                        shared,
                        registry.clone(),
                        consistency,
                        Duration::from_secs(2),
                    );
                    fanout.start();
                    (fanout, registry)
                })
                .collect();
            // Subscribed, heartbeats registered.
            let start = Instant::now();
            while instances.iter().any(|(f, _)| f.suspect_window().is_some()) {
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "instances never synced"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_millis(1200)).await;
            let (purger, _) = &instances[0];
            let mut answered = Vec::new();
            let mut everywhere = Vec::new();
            for i in 0..(iterations / 20).max(200) as u64 {
                let tags = [i, i ^ 0xdead_beef, i.rotate_left(17)];
                let t = Instant::now();
                let (generation, report) = purger.purge(&tags, false).await.expect("purge shared");
                answered.push(t.elapsed());
                assert!(report.complete);
                while instances.iter().any(|(_, r)| r.epoch() < generation) {
                    tokio::task::yield_now().await;
                }
                everywhere.push(t.elapsed());
            }
            report(
                &format!("purge answered ({consistency:?}), 3 instances"),
                answered,
            );
            report(
                &format!("purge applied on all 3 ({consistency:?})"),
                everywhere,
            );
            for (f, _) in &instances {
                f.halt();
            }
        }
    });
    drop(redis);
}

fn version() -> String {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.split_whitespace()
                .find(|w| w.starts_with("v="))
                .map(|v| v[2..].to_string())
        })
        .unwrap_or_default()
}
