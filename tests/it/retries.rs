//! Retries to the origin: at most `upstream.retries` (one by default), only
//! for idempotent requests, only after a reused connection failed before any
//! byte of the answer, and the retry on a new connection. Pingora alone
//! retried on each idle pooled connection in turn: an origin that closes
//! every connection after reading the request got one client request 16
//! times.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::util::{Options, Origin, Proxy};

/// An origin that answers on kept-alive connections until it is told to
/// crash; then it reads each request and closes the connection unanswered.
struct Crashing {
    addr: String,
    crash: Arc<AtomicBool>,
    /// Requests read while crashing.
    crashed: Arc<AtomicU64>,
}

impl Crashing {
    fn start() -> Crashing {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let crash = Arc::new(AtomicBool::new(false));
        let crashed = Arc::new(AtomicU64::new(0));
        let (c, n) = (crash.clone(), crashed.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (c, n) = (c.clone(), n.clone());
                std::thread::spawn(move || serve(stream, &c, &n));
            }
        });
        Crashing {
            addr,
            crash,
            crashed,
        }
    }
}

fn serve(mut s: TcpStream, crash: &AtomicBool, crashed: &AtomicU64) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // One request head (the test sends no bodies to this origin).
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        buf.drain(..end);
        if crash.load(Ordering::SeqCst) {
            crashed.fetch_add(1, Ordering::SeqCst);
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
        if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .is_err()
        {
            return;
        }
    }
}

fn proxy_in_front_of(origin: &Crashing, upstream_extra: &str) -> Proxy {
    Proxy::start_on(
        Origin::start(),
        Options {
            upstream: Some(origin.addr.clone()),
            upstream_extra: upstream_extra.to_string(),
            ..Options::default()
        },
    )
}

/// Leaves `n` idle connections in the proxy's pool to the origin.
async fn fill_pool(p: &Proxy, n: usize) {
    let mut tasks = Vec::new();
    for i in 0..n {
        let req = p.client.get(p.url(&format!("/uncached/warm-{i}"))).send();
        tasks.push(req);
    }
    for r in futures::future::join_all(tasks).await {
        assert_eq!(r.unwrap().status(), 200);
    }
}

async fn retries_metric(p: &Proxy) -> u64 {
    let m = p.admin_get("/metrics").await.text;
    m.lines()
        .find_map(|l| l.strip_prefix("tagcache_origin_retries_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("tagcache_origin_retries_total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_origin_gets_one_request_and_one_retry_not_sixteen() {
    let origin = Crashing::start();
    let p = proxy_in_front_of(&origin, "");
    fill_pool(&p, 12).await;
    origin.crash.store(true, Ordering::SeqCst);
    let r = p.client.get(p.url("/uncached/boom")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(origin.crashed.load(Ordering::SeqCst), 2);
    assert_eq!(retries_metric(&p).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_that_is_not_idempotent_is_never_retried() {
    let origin = Crashing::start();
    let p = proxy_in_front_of(&origin, "");
    fill_pool(&p, 8).await;
    origin.crash.store(true, Ordering::SeqCst);
    let r = p
        .client
        .post(p.url("/uncached/write"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(origin.crashed.load(Ordering::SeqCst), 1);
    assert_eq!(retries_metric(&p).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_zero_makes_one_attempt() {
    let origin = Crashing::start();
    let p = proxy_in_front_of(&origin, "  retries: 0");
    fill_pool(&p, 8).await;
    origin.crash.store(true, Ordering::SeqCst);
    let r = p.client.get(p.url("/uncached/once")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(origin.crashed.load(Ordering::SeqCst), 1);
}
