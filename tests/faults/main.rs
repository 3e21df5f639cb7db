//! A fault run that looks like production: two instances on one real Redis,
//! concurrent keep-alive clients over a few thousand keys of several
//! workspaces and users, a writer that changes the origin's data and purges
//! what it changed, and, on a schedule, Redis frozen (SIGSTOP/SIGCONT),
//! Redis killed and restarted empty, the origin down, and one instance
//! restarted. Instance A runs in this process; instance B is the `tagcache`
//! binary in a process of its own, stopped with SIGTERM and started again.
//!
//! It asserts what users are promised: no body for another workspace or
//! user, no read older than the last acknowledged purge, no client error
//! outside the fault windows that excuse it, no request slower than
//! [`BOUND`] outside those windows, and a memory store that stays within its
//! bound. It prints a summary.
//!
//! `TAGCACHE_FAULT_SECS` sets the length (default 45 s, what CI runs);
//! `bench/soak.sh` runs it for as long as asked, alone, and then also
//! asserts that resident memory stayed flat.

// The harness is shared with the integration tests; this run uses part of it.
#[path = "../it/util.rs"]
mod util;

#[path = "../it/redis/util.rs"]
mod redis_util;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redis_util::{proxy_with, wait_synced, RedisOpts, RedisServer};
use util::{Options, Origin, Proxy};

/// The slowest answer allowed outside fault windows.
const BOUND: Duration = Duration::from_secs(3);
/// Concurrent clients.
const CLIENTS: usize = 16;
/// Workspaces, items per workspace, boards per workspace, users.
const WORKSPACES: usize = 4;
const ITEMS: usize = 600;
const BOARDS: usize = 20;
const USERS: usize = 8;
/// How long after a fault ends its effects are still excused.
const SETTLE: Duration = Duration::from_secs(3);
/// One cycle of faults; a long run repeats it.
const CYCLE: Duration = Duration::from_secs(40);

/// What a fault window excuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Redis frozen: nothing is excused but errors of the restarting
    /// instance; requests must stay fast (a slow Redis is a miss).
    RedisPaused,
    /// Redis killed and restarted empty.
    RedisRestarted,
    /// The origin refuses connections: errors on keys not cached are excused.
    OriginDown,
    /// Instance B is stopped and started again: its requests are excused.
    InstanceRestart,
}

struct Windows(Mutex<Vec<(Fault, Instant, Option<Instant>)>>);

impl Windows {
    fn open(&self, f: Fault) {
        self.0.lock().unwrap().push((f, Instant::now(), None));
    }
    fn close(&self, f: Fault) {
        for w in self.0.lock().unwrap().iter_mut().rev() {
            if w.0 == f && w.2.is_none() {
                w.2 = Some(Instant::now());
                return;
            }
        }
    }
    /// The faults whose window (plus [`SETTLE`]) overlaps `[from, to]`.
    fn during(&self, from: Instant, to: Instant) -> Vec<Fault> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, start, end)| *start <= to && end.is_none_or(|e| e + SETTLE >= from))
            .map(|w| w.0)
            .collect()
    }
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    hits: AtomicU64,
    excused_errors: Mutex<HashMap<String, u64>>,
    errors: Mutex<Vec<String>>,
    slow_excused: AtomicU64,
    slowest_outside: Mutex<Duration>,
    purges_acked: AtomicU64,
    purges_refused: AtomicU64,
}

impl Tally {
    fn excuse(&self, kind: String) {
        *self.excused_errors.lock().unwrap().entry(kind).or_default() += 1;
    }
    fn fail(&self, what: String) {
        let mut e = self.errors.lock().unwrap();
        if e.len() < 50 {
            e.push(what);
        }
    }
}

/// Per tag: its last acknowledged purge.
type Floors = Mutex<HashMap<String, Floor>>;

/// An acknowledged purge: when, the data version it purged up to, and what
/// the purging instance answered (for the report of a read older than it).
#[derive(Debug, Clone)]
struct Floor {
    acked: Instant,
    version: u64,
    via: &'static str,
    answer: String,
}

struct Run {
    origin: Origin,
    opts: RedisOpts,
    a: Arc<Proxy>,
    b: RwLock<Option<Arc<Proxy>>>,
    windows: Windows,
    tally: Tally,
    floors: Floors,
    stop: AtomicBool,
    client: reqwest::Client,
    /// When the load started.
    started: Instant,
}

fn options() -> Options {
    Options {
        extra: "purge:\n  consistency: sync\n  sync_timeout: 2s".into(),
        ..Options::default()
    }
}

/// Instance B is the `tagcache` binary in its own process: restarting it is
/// stopping a process (SIGTERM) and starting another, as in production, and
/// this process's memory is instance A's (with the clients and the origin).
fn options_b() -> Options {
    Options {
        process: true,
        ..options()
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A small deterministic generator (no dependency for a test's dice).
struct Dice(u64);

impl Dice {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A request a client makes: its path, workspace, user (on per-user keys)
/// and the key the writer purges it by.
fn pick(d: &mut Dice) -> (String, String, Option<String>, String) {
    let ws = format!("w{}", d.next(WORKSPACES));
    if d.next(3) == 0 {
        let board = d.next(BOARDS);
        let user = format!("u{}", d.next(USERS));
        (
            format!("/api/boards/b{board}/contacts?filter=assigned_to_me"),
            ws.clone(),
            Some(user),
            format!("board:{ws}:b{board}"),
        )
    } else {
        let item = d.next(ITEMS);
        (
            format!("/item/f{item}"),
            ws.clone(),
            None,
            format!("item:{ws}:f{item}"),
        )
    }
}

async fn client_loop(run: Arc<Run>, seed: u64) {
    let mut d = Dice(seed | 1);
    while !run.stop.load(Ordering::Relaxed) {
        let (path, ws, user, tag) = pick(&mut d);
        let on_b = d.next(2) == 1;
        let target = if on_b {
            run.b.read().unwrap().clone()
        } else {
            Some(run.a.clone())
        };
        let Some(p) = target else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let start = Instant::now();
        let mut req = run.client.get(p.url(&path)).header("x-workspace-id", &ws);
        if let Some(u) = &user {
            req = req.header("x-user-id", u);
        }
        let result = req.send().await;
        // Where the time of a slow answer went, for its report.
        let headers_after = start.elapsed();
        let mut answered = String::from("no answer");
        let body = match result {
            Ok(r) => {
                let status = r.status().as_u16();
                let header = |name: &str| {
                    r.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                let cache = header("x-cache-status");
                // What a broken promise report needs to point at its cause.
                let detail = format!(
                    "{cache}, layer {}, age {}, {}",
                    header("x-cache-layer"),
                    header("age"),
                    header("cache-status")
                );
                answered = format!(
                    "status {status}, {detail}, request id {}, headers after {headers_after:?}",
                    header("x-request-id")
                );
                r.text().await.map(|t| (status, (cache, detail), t))
            }
            Err(e) => Err(e),
        };
        drop(p);
        let took = start.elapsed();
        let end = Instant::now();
        run.tally.requests.fetch_add(1, Ordering::Relaxed);
        let faults = run.windows.during(start, end);
        let excused_error = faults.contains(&Fault::OriginDown)
            || (on_b && faults.contains(&Fault::InstanceRestart));
        match body {
            Ok((200, (cache, detail), text)) => {
                if cache == "HIT" {
                    run.tally.hits.fetch_add(1, Ordering::Relaxed);
                }
                let v: serde_json::Value = match serde_json::from_str(&text) {
                    Ok(v) => v,
                    Err(_) => {
                        run.tally.fail(format!("{path}: not JSON: {text}"));
                        continue;
                    }
                };
                if v["workspace"] != ws.as_str() {
                    run.tally
                        .fail(format!("{path} for {ws} got workspace {}", v["workspace"]));
                }
                if let Some(u) = &user {
                    if v["user"] != u.as_str() {
                        run.tally
                            .fail(format!("{path} for {ws}/{u} got user {}", v["user"]));
                    }
                }
                let version = v["version"].as_u64().unwrap_or(0);
                let floor = run.floors.lock().unwrap().get(&tag).cloned();
                if let Some(floor) = floor {
                    if floor.acked < start && version < floor.version {
                        // What both instances hold for the key now, while it
                        // is still there: the entry's birth, its tags'
                        // generations, the floor and each lease.
                        let explained = explain_both(&run, &path, &ws, user.as_deref(), &tag).await;
                        run.tally.fail(format!(
                            "{path} ({ws}) on {}: version {version} read {} ms after the purge to {} was acknowledged, {:.1} s into the run ({detail}); the purge went through {} and answered {}; {explained}",
                            if on_b { "B" } else { "A" },
                            (start - floor.acked).as_millis(),
                            floor.version,
                            (start - run.started).as_secs_f64(),
                            floor.via,
                            floor.answer,
                        ));
                    }
                }
            }
            Ok((status, (cache, _), _)) => {
                if excused_error {
                    run.tally.excuse(format!("status {status}"));
                } else {
                    run.tally.fail(format!(
                        "{path} ({ws}) on {}: status {status} {cache} outside fault windows",
                        if on_b { "B" } else { "A" }
                    ));
                }
            }
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "client"
                };
                if excused_error {
                    run.tally.excuse(kind.to_string());
                } else {
                    run.tally.fail(format!(
                        "{path} ({ws}): {kind} error outside fault windows: {e}"
                    ));
                }
            }
        }
        let excused_slow = faults
            .iter()
            .any(|f| matches!(f, Fault::OriginDown | Fault::InstanceRestart));
        if excused_slow {
            if took > BOUND {
                run.tally.slow_excused.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            let mut slowest = run.tally.slowest_outside.lock().unwrap();
            *slowest = (*slowest).max(took);
            if took > BOUND {
                run.tally.fail(format!(
                    "{path} ({ws}) on {} took {took:?} (faults: {faults:?}; {answered})",
                    if on_b { "B" } else { "A" }
                ));
            }
        }
    }
}

/// Changes a key's data at the origin and purges it, through either
/// instance; a purge answered 200 and complete is acknowledged.
async fn writer_loop(run: Arc<Run>) {
    let mut d = Dice(0x5eed_f00d);
    while !run.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let (_, _, _, tag) = pick(&mut d);
        let version = run.origin.bump();
        let (via, p) = if d.next(2) == 0 {
            ("A", Some(run.a.clone()))
        } else {
            ("B", run.b.read().unwrap().clone())
        };
        let Some(p) = p else { continue };
        let r = run
            .client
            .post(p.admin_url("/purge"))
            .bearer_auth(util::TOKEN)
            .body(serde_json::json!({ "tags": [tag] }).to_string())
            .send()
            .await;
        let answer = match r {
            Ok(r) if r.status() == 200 => r
                .json::<serde_json::Value>()
                .await
                .ok()
                .filter(|v| v["shared"]["complete"] == true),
            _ => None,
        };
        if let Some(answer) = answer {
            // The promise checked here is sync mode's: make sure it is the one in force.
            if answer["shared"]["consistency"] != "sync" {
                run.tally
                    .fail(format!("a purge was not answered in sync mode: {answer}"));
            }
            run.tally.purges_acked.fetch_add(1, Ordering::Relaxed);
            run.floors.lock().unwrap().insert(
                tag,
                Floor {
                    acked: Instant::now(),
                    version,
                    via,
                    answer: answer.to_string(),
                },
            );
        } else {
            run.tally.purges_refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Both instances' `POST /explain` of a key, for a broken promise's report.
async fn explain_both(run: &Run, path: &str, ws: &str, user: Option<&str>, tag: &str) -> String {
    let b = run.b.read().unwrap().clone();
    let mut out = Vec::new();
    for (name, p) in [("A", Some(run.a.clone())), ("B", b)] {
        let Some(p) = p else {
            out.push(format!("{name}: not running"));
            continue;
        };
        let body = serde_json::json!({ "url": path, "workspace": ws, "user": user, "tags": [tag] });
        let answer = run
            .client
            .post(p.admin_url("/explain"))
            .bearer_auth(util::TOKEN)
            .body(body.to_string())
            .send()
            .await;
        let text = match answer {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => format!("no answer: {e}"),
        };
        out.push(format!("{name} explains: {text}"));
    }
    out.join("; ")
}

async fn restart_b(run: &Run) {
    let old = run.b.write().unwrap().take();
    if let Some(old) = old {
        // Wait until no client holds it, then stop it.
        let mut old = old;
        loop {
            match Arc::try_unwrap(old) {
                Ok(p) => {
                    tokio::task::spawn_blocking(move || drop(p)).await.unwrap();
                    break;
                }
                Err(back) => {
                    old = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    let (origin, opts) = (run.origin.clone(), run.opts.clone());
    let fresh = tokio::task::spawn_blocking(move || proxy_with(origin, &opts, options_b()))
        .await
        .unwrap();
    wait_synced(&fresh).await;
    *run.b.write().unwrap() = Some(Arc::new(fresh));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_under_faults_keep_every_promise() {
    // No log capture (the other tests keep every line in memory for their
    // assertions): a long run would measure the capture, not the cache.
    {
        use tracing_subscriber::util::SubscriberInitExt;
        let _ = tracing_subscriber::registry().try_init();
    }
    let secs: u64 = std::env::var("TAGCACHE_FAULT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(45);
    let total = Duration::from_secs(secs);
    let mut redis = RedisServer::start();
    let origin = Origin::start();
    // Redis as in production: the default timeout and circuit breaker (the
    // other tests' 500 ms timeout would make every frozen-Redis call a
    // half-second wait).
    let mut opts = RedisOpts::server(&redis);
    opts.timeout = "25ms".into();
    opts.breaker_failures = 5;
    let a = proxy_with(origin.clone(), &opts, options());
    let b = proxy_with(origin.clone(), &opts, options_b());
    wait_synced(&a).await;
    wait_synced(&b).await;
    let run = Arc::new(Run {
        origin,
        opts,
        a: Arc::new(a),
        b: RwLock::new(Some(Arc::new(b))),
        windows: Windows(Mutex::new(Vec::new())),
        tally: Tally::default(),
        floors: Mutex::new(HashMap::new()),
        stop: AtomicBool::new(false),
        started: Instant::now(),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(8))
            .build()
            .unwrap(),
    });
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        tasks.push(tokio::spawn(client_loop(
            run.clone(),
            0x9e37_79b9 * (i as u64 + 1),
        )));
    }
    tasks.push(tokio::spawn(writer_loop(run.clone())));

    let started = Instant::now();
    let mut rss_start = 0;
    let at = |offset: Duration, cycle: u32| started + CYCLE * cycle + offset;
    let mut cycle = 0;
    'cycles: loop {
        for (offset, step) in [
            (Duration::from_secs(5), 0),
            (Duration::from_secs(12), 1),
            (Duration::from_secs(20), 2),
            (Duration::from_secs(28), 3),
        ] {
            let when = at(offset, cycle);
            if when + Duration::from_secs(8) > started + total {
                break 'cycles;
            }
            tokio::time::sleep_until(when.into()).await;
            if rss_start == 0 {
                rss_start = rss_kib();
            }
            match step {
                0 => {
                    run.windows.open(Fault::RedisPaused);
                    redis.pause();
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    redis.resume();
                    run.windows.close(Fault::RedisPaused);
                }
                1 => {
                    run.windows.open(Fault::RedisRestarted);
                    let r = tokio::task::spawn_blocking(move || {
                        redis.restart_empty();
                        redis
                    });
                    redis = r.await.unwrap();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    run.windows.close(Fault::RedisRestarted);
                }
                2 => {
                    run.windows.open(Fault::OriginDown);
                    run.origin.set_down(true);
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    run.origin.set_down(false);
                    run.windows.close(Fault::OriginDown);
                }
                _ => {
                    run.windows.open(Fault::InstanceRestart);
                    restart_b(&run).await;
                    run.windows.close(Fault::InstanceRestart);
                }
            }
        }
        cycle += 1;
    }
    tokio::time::sleep_until((started + total).into()).await;
    run.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let rss_end = rss_kib();

    let t = &run.tally;
    let requests = t.requests.load(Ordering::Relaxed);
    let memory = run.a.stats().await;
    println!(
        "fault run: {secs} s, {requests} requests ({:.0}/s), {} hits, purges acknowledged {} / refused {}",
        requests as f64 / secs as f64,
        t.hits.load(Ordering::Relaxed),
        t.purges_acked.load(Ordering::Relaxed),
        t.purges_refused.load(Ordering::Relaxed),
    );
    println!(
        "errors inside fault windows (excused): {:?}; slow inside windows: {}; slowest outside: {:?}",
        t.excused_errors.lock().unwrap(),
        t.slow_excused.load(Ordering::Relaxed),
        t.slowest_outside.lock().unwrap(),
    );
    let rss_b = run
        .b
        .read()
        .unwrap()
        .as_ref()
        .and_then(|b| b.process_rss_kib())
        .unwrap_or(0);
    println!(
        "RSS: {} MiB at the first fault, {} MiB at the end (instance A, clients, origin); instance B's last process {} MiB; instance A holds {} entries, {} bytes",
        rss_start / 1024,
        rss_end / 1024,
        rss_b / 1024,
        memory["entries"],
        memory["bytes"]
    );
    let errors = t.errors.lock().unwrap();
    assert!(errors.is_empty(), "broken promises:\n{}", errors.join("\n"));
    assert!(
        requests > 1000,
        "too little load to mean anything: {requests}"
    );
    assert!(
        t.hits.load(Ordering::Relaxed) > requests / 4,
        "the cache barely served"
    );
    assert!(t.purges_acked.load(Ordering::Relaxed) > 10);
    // The store is bounded (64 MiB in the test config).
    assert!(memory["bytes"].as_u64().unwrap_or(0) <= 64 << 20);
    if secs >= 300 {
        // Alone and long enough to mean something: memory stays flat.
        assert!(
            rss_end < rss_start + rss_start / 2 + 64 * 1024,
            "RSS grew from {rss_start} KiB to {rss_end} KiB"
        );
    }
}
