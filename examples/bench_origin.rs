//! A fixed, deterministic origin for the load benchmark in `bench/`.
//!
//! ```text
//! cargo run --release --example bench_origin -- --listen 127.0.0.1:18000 --delay-ms 50
//! cargo run --release --example bench_origin -- --listen 127.0.0.1:18000 --static
//! ```
//!
//! Endpoints (origin mode):
//! - `GET /api/boards/{board}/contacts?page&pageSize&filter...`: a JSON page of
//!   contacts (about 40 bytes per contact, so the default `pageSize=50` gives
//!   about 2 KB), with `Surrogate-Key: board-{board}`. The body depends only on
//!   `X-Workspace-ID`, the board and the query, so every cache sees the same bytes.
//! - `GET /api/contacts/{id}`: one contact's details, about 20 KB.
//! - anything else under `/api/`: 404.
//!
//! Every `/api/` request waits `--delay-ms` (default 50) before answering, so a
//! cache miss is expensive, and is counted.
//!
//! Control endpoints (not counted, never delayed):
//! - `GET /__count`: the number of `/api/` requests served since start or reset.
//! - `GET /__bytes`: the body bytes of the `/api/` answers since start or reset
//!   (what the origin sent: the cost a cache's misses put on it).
//! - `POST /__reset`: sets both to 0.
//! - `POST /__delay?ms=N`: changes the delay (used to fill caches quickly).
//!
//! `--static` answers every request at once with a fixed 2000-byte body: the
//! ceiling a bare HTTP responder reaches on the same core.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const FILTERS: [&str; 10] = [
    "all",
    "open",
    "closed",
    "unassigned",
    "assigned_to_me",
    "high_priority",
    "medium_priority",
    "low_priority",
    "favorites",
    "archived",
];

struct Args {
    listen: SocketAddr,
    delay_ms: u64,
    static_mode: bool,
    threads: usize,
}

fn usage() -> ! {
    eprintln!("usage: bench_origin [--listen ADDR] [--delay-ms N] [--static] [--threads N]");
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        listen: "127.0.0.1:18000".parse().expect("valid default address"),
        delay_ms: 50,
        static_mode: false,
        threads: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--listen" => {
                args.listen = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--delay-ms" => {
                args.delay_ms = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--threads" => {
                args.threads = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n: &usize| *n > 0)
                    .unwrap_or_else(|| usage())
            }
            "--static" => args.static_mode = true,
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    args
}

struct State {
    count: AtomicU64,
    bytes: AtomicU64,
    delay_ms: AtomicU64,
    static_body: Bytes,
    static_mode: bool,
}

/// A small deterministic hash (FNV-1a) so bodies depend only on the request.
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

/// One contact rendered as exactly 40 bytes of JSON (plus the separating comma).
fn push_contact(out: &mut String, seed: u64, i: u64) {
    let id = seed.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)) % 100_000_000;
    let status = FILTERS[(id % 10) as usize];
    let mut item = String::with_capacity(48);
    let _ = write!(item, "{{\"id\":\"c{id:08}\",\"s\":\"{status}\"");
    // Pad to a fixed width so the body size depends only on the page size.
    while item.len() < 39 {
        item.push(' ');
    }
    item.push('}');
    out.push_str(&item);
}

fn contact_list(workspace: &str, board: &str, query: &str) -> Bytes {
    let page = query_param(query, "page")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1);
    let page_size = query_param(query, "pageSize")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(50)
        .min(1000);
    let filter = query_param(query, "filter").unwrap_or("all");
    let seed = fnv(&[
        workspace,
        board,
        filter,
        &page.to_string(),
        &page_size.to_string(),
    ]);
    let mut out = String::with_capacity(160 + 41 * page_size as usize);
    let _ = write!(
        out,
        "{{\"workspace\":\"{workspace}\",\"board\":\"{board}\",\"filter\":\"{filter}\",\"page\":{page},\"pageSize\":{page_size},\"total\":{},\"contacts\":[",
        1000 + seed % 100_000
    );
    for i in 0..page_size {
        if i > 0 {
            out.push(',');
        }
        push_contact(&mut out, seed, i);
    }
    out.push_str("]}\n");
    Bytes::from(out)
}

fn contact_details(workspace: &str, id: &str) -> Bytes {
    let seed = fnv(&[workspace, id]);
    let mut out = String::with_capacity(20_600);
    let _ = write!(
        out,
        "{{\"id\":\"{id}\",\"workspace\":\"{workspace}\",\"messages\":["
    );
    let mut i = 0u64;
    while out.len() < 20_000 {
        if i > 0 {
            out.push(',');
        }
        let n = seed.wrapping_add(i.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let _ = write!(
            out,
            "{{\"n\":{i},\"at\":{},\"text\":\"message {:016x} lorem ipsum dolor sit amet\"}}",
            1_700_000_000 + n % 10_000_000,
            n
        );
        i += 1;
    }
    out.push_str("]}\n");
    Bytes::from(out)
}

fn respond(status: StatusCode, body: Bytes, ctype: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if state.static_mode {
        return Ok(respond(
            StatusCode::OK,
            state.static_body.clone(),
            "application/json",
        ));
    }
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    match (req.method(), path) {
        (&Method::GET, "/__count") => {
            let n = state.count.load(Ordering::SeqCst);
            return Ok(respond(
                StatusCode::OK,
                Bytes::from(format!("{n}\n")),
                "text/plain",
            ));
        }
        (&Method::GET, "/__bytes") => {
            let n = state.bytes.load(Ordering::SeqCst);
            return Ok(respond(
                StatusCode::OK,
                Bytes::from(format!("{n}\n")),
                "text/plain",
            ));
        }
        (&Method::POST, "/__reset") => {
            state.count.store(0, Ordering::SeqCst);
            state.bytes.store(0, Ordering::SeqCst);
            return Ok(respond(
                StatusCode::OK,
                Bytes::from_static(b"0\n"),
                "text/plain",
            ));
        }
        (&Method::POST, "/__delay") => {
            return Ok(
                match query_param(query, "ms").and_then(|v| v.parse::<u64>().ok()) {
                    Some(ms) => {
                        state.delay_ms.store(ms, Ordering::SeqCst);
                        respond(StatusCode::OK, Bytes::from(format!("{ms}\n")), "text/plain")
                    }
                    None => respond(
                        StatusCode::BAD_REQUEST,
                        Bytes::from_static(b"need ?ms=N\n"),
                        "text/plain",
                    ),
                },
            );
        }
        _ => {}
    }
    if !path.starts_with("/api/") {
        return Ok(respond(
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"not found\n"),
            "text/plain",
        ));
    }
    state.count.fetch_add(1, Ordering::SeqCst);
    let delay = state.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let workspace = req
        .headers()
        .get("x-workspace-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let resp = match (req.method(), segs.as_slice()) {
        (&Method::GET, ["api", "boards", board, "contacts"]) => {
            let mut r = respond(
                StatusCode::OK,
                contact_list(workspace, board, query),
                "application/json",
            );
            if let Ok(v) = HeaderValue::from_str(&format!("board-{board}")) {
                r.headers_mut().insert("surrogate-key", v);
            }
            r
        }
        (&Method::GET, ["api", "contacts", id]) => respond(
            StatusCode::OK,
            contact_details(workspace, id),
            "application/json",
        ),
        _ => respond(
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"not found\n"),
            "text/plain",
        ),
    };
    state.bytes.fetch_add(
        resp.body().size_hint().exact().unwrap_or(0),
        Ordering::SeqCst,
    );
    Ok(resp)
}

fn main() {
    let args = parse_args();
    let state = Arc::new(State {
        count: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        delay_ms: AtomicU64::new(args.delay_ms),
        static_body: Bytes::from({
            let mut s = String::from("{\"static\":true,\"pad\":\"");
            while s.len() < 1998 {
                s.push('x');
            }
            s.push_str("\"}");
            s
        }),
        static_mode: args.static_mode,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = match TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("bench_origin: cannot listen on {}: {e}", args.listen);
                std::process::exit(1);
            }
        };
        eprintln!(
            "bench_origin: listening on {} ({})",
            args.listen,
            if args.static_mode {
                "static".to_string()
            } else {
                format!("delay {} ms", args.delay_ms)
            }
        );
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    eprintln!("bench_origin: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let state = state.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(state.clone(), req));
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}
