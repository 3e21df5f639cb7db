//! A fixed-rate, open-loop HTTP/1.1 load generator for the latency workload in `bench/`.
//!
//! ```text
//! cargo run --release --example bench_load -- --port 18080 \
//!     --path '/api/boards/b1/contacts?page=1&pageSize=50&filter=all' \
//!     --header 'X-Workspace-ID: w1' --rate 30000 --duration 10 --connections 50
//! ```
//!
//! Each of the `--connections` keep-alive connections sends its requests on a
//! fixed schedule: request k of connection c is due at
//! `start + c / rate + k * connections / rate`, so together they send `--rate`
//! requests per second whatever the server does. A request is written when it
//! is due, or as soon as its connection is free if the previous answer came
//! late; its latency is measured from the time it was due, not from the time
//! it was written. That is what removes coordinated omission: a server that
//! stalls for 100 ms is charged for every request that should have gone out
//! meanwhile, as with wrk2's corrected latencies.
//!
//! Timers are exact to the microsecond: a connection sleeps until about a
//! millisecond before its next request is due, then yields in a loop (tokio's
//! timer alone is one millisecond coarse). The generator runs on one thread
//! and keeps that thread busy; give it a core of its own.
//!
//! The first `--warmup` seconds (default 1) are sent but not recorded. The
//! result is one line, `RATEJSON {...}`, latencies in microseconds:
//! requests, target and achieved rate (the requests due in the measured
//! window over the time until the last of them was answered: below the
//! target when answers fell behind), p50/p90/p99/p99.9/max of the latency,
//! the same percentiles of the send lag (how late requests left: from the
//! time they were due until they were written), non-2xx answers, errors.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Args {
    addr: SocketAddr,
    path: String,
    headers: Vec<String>,
    rate: f64,
    duration: f64,
    warmup: f64,
    connections: usize,
    timeout: Duration,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench_load --rate N [--port P | --addr HOST:PORT] [--path P] [--header 'Name: value']... \
         [--duration S] [--warmup S] [--connections N] [--timeout-ms N]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 18080)),
        path: "/".to_string(),
        headers: Vec::new(),
        rate: 0.0,
        duration: 10.0,
        warmup: 1.0,
        connections: 50,
        timeout: Duration::from_secs(5),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--port" => {
                let port: u16 = value().parse().unwrap_or_else(|_| usage());
                args.addr.set_port(port);
            }
            "--addr" => args.addr = value().parse().unwrap_or_else(|_| usage()),
            "--path" => args.path = value(),
            "--header" => args.headers.push(value()),
            "--rate" => args.rate = value().parse().unwrap_or_else(|_| usage()),
            "--duration" => args.duration = value().parse().unwrap_or_else(|_| usage()),
            "--warmup" => args.warmup = value().parse().unwrap_or_else(|_| usage()),
            "--connections" => args.connections = value().parse().unwrap_or_else(|_| usage()),
            "--timeout-ms" => {
                args.timeout = Duration::from_millis(value().parse().unwrap_or_else(|_| usage()))
            }
            _ => usage(),
        }
    }
    let sane = args.rate > 0.0
        && args.duration > 0.0
        && args.warmup >= 0.0
        && args.connections > 0
        && args.path.starts_with('/');
    if !sane {
        usage();
    }
    args
}

/// What one connection recorded.
#[derive(Default)]
struct Tally {
    latencies_ns: Vec<u64>,
    send_lags_ns: Vec<u64>,
    non2xx: u64,
    errors: u64,
    reconnects: u64,
    body_bytes: u64,
    /// When the last recorded answer arrived.
    last_done: Option<Instant>,
}

/// Finds the end of the header block (`\r\n\r\n`) in `buf`.
fn header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// How the body of an answer is delimited.
enum Framing {
    Length(usize),
    Chunked,
}

/// The status and body framing of a response header block.
fn parse_head(head: &[u8]) -> io::Result<(u16, Framing)> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let text = std::str::from_utf8(head).map_err(|_| bad("header is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let mut framing = Framing::Length(0);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            framing = Framing::Length(value.parse().map_err(|_| bad("bad content-length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.eq_ignore_ascii_case("chunked")
        {
            framing = Framing::Chunked;
        }
    }
    Ok((status, framing))
}

/// Reads more bytes into `buf` (into its spare capacity: nothing is zeroed
/// or copied); end of stream is an error.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.reserve(16384);
    if stream.read_buf(buf).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Reads one whole response; returns its status and body length. `buf` keeps
/// whatever follows it (nothing, without pipelining).
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<(u16, usize)> {
    let end = loop {
        if let Some(end) = header_end(buf) {
            break end;
        }
        fill(stream, buf).await?;
    };
    let (status, framing) = parse_head(&buf[..end])?;
    buf.drain(..end);
    match framing {
        Framing::Length(n) => {
            while buf.len() < n {
                fill(stream, buf).await?;
            }
            buf.drain(..n);
            Ok((status, n))
        }
        Framing::Chunked => {
            let mut total = 0;
            loop {
                let line_end = loop {
                    if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    fill(stream, buf).await?;
                };
                let size_text = std::str::from_utf8(&buf[..line_end]).unwrap_or("");
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| {
                            io::Error::new(io::ErrorKind::InvalidData, "bad chunk size")
                        })?;
                // The chunk, its CRLF; the last chunk is followed by a CRLF (no trailers sent here).
                let need = line_end + 2 + size + 2;
                while buf.len() < need {
                    fill(stream, buf).await?;
                }
                buf.drain(..need);
                total += size;
                if size == 0 {
                    return Ok((status, total));
                }
            }
        }
    }
}

async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Waits until `due`: sleeps while it is more than ~1.5 ms away, then yields.
async fn wait_until(due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        let left = due - now;
        if left > Duration::from_micros(1500) {
            tokio::time::sleep(left - Duration::from_millis(1)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
}

/// Where and what a connection sends.
struct Target {
    addr: SocketAddr,
    request: Vec<u8>,
    timeout: Duration,
}

/// One connection's schedule: a request due at `first`, then every
/// `interval` until `end`; answers to requests due from `record_from` on
/// are recorded.
struct Schedule {
    first: Instant,
    interval: Duration,
    record_from: Instant,
    end: Instant,
}

/// Sends one connection's requests on its schedule.
async fn connection(
    mut stream: Option<TcpStream>,
    target: std::sync::Arc<Target>,
    plan: Schedule,
) -> Tally {
    let Schedule {
        first,
        interval,
        record_from,
        end,
    } = plan;
    let (addr, request, timeout) = (target.addr, &target.request, target.timeout);
    let mut tally = Tally::default();
    let mut buf = Vec::with_capacity(65536);
    let mut k: u32 = 0;
    loop {
        let due = first + interval * k;
        if due >= end {
            return tally;
        }
        k += 1;
        wait_until(due).await;
        if stream.is_none() {
            match connect(addr).await {
                Ok(s) => stream = Some(s),
                Err(_) => {
                    tally.errors += 1;
                    continue;
                }
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        let sent_at = Instant::now();
        let outcome = tokio::time::timeout(timeout, async {
            s.write_all(request).await?;
            read_response(s, &mut buf).await
        })
        .await;
        let done = Instant::now();
        match outcome {
            Ok(Ok((status, body))) => {
                if due >= record_from {
                    tally.latencies_ns.push((done - due).as_nanos() as u64);
                    tally.send_lags_ns.push((sent_at - due).as_nanos() as u64);
                    tally.body_bytes += body as u64;
                    tally.last_done = Some(done);
                    if !(200..300).contains(&status) {
                        tally.non2xx += 1;
                    }
                }
            }
            _ => {
                tally.errors += 1;
                tally.reconnects += 1;
                stream = None;
                buf.clear();
            }
        }
    }
}

/// The value at percentile `p` (0-100) of sorted `v`, in microseconds.
fn percentile_us(v: &[u64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1] as f64 / 1000.0
}

fn main() {
    let args = parse_args();
    let mut request = format!("GET {} HTTP/1.1\r\nHost: {}\r\n", args.path, args.addr);
    for h in &args.headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let target = std::sync::Arc::new(Target {
        addr: args.addr,
        request: request.into_bytes(),
        timeout: args.timeout,
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("bench_load: runtime: {e}");
            std::process::exit(1);
        });
    let conns = args.connections;
    let interval = Duration::from_secs_f64(conns as f64 / args.rate);
    let step = Duration::from_secs_f64(1.0 / args.rate);
    let (record_from, tallies) = rt.block_on(async {
        // Connections open before the clock starts.
        let mut streams = Vec::with_capacity(conns);
        for _ in 0..conns {
            streams.push(connect(args.addr).await.ok());
        }
        let start = Instant::now() + Duration::from_millis(20);
        let record_from = start + Duration::from_secs_f64(args.warmup);
        let end = record_from + Duration::from_secs_f64(args.duration);
        let mut handles = Vec::with_capacity(conns);
        for (c, stream) in streams.into_iter().enumerate() {
            let first = start + step * c as u32;
            let plan = Schedule {
                first,
                interval,
                record_from,
                end,
            };
            handles.push(tokio::spawn(connection(stream, target.clone(), plan)));
        }
        let mut out = Vec::with_capacity(conns);
        for h in handles {
            if let Ok(t) = h.await {
                out.push(t);
            }
        }
        (record_from, out)
    });
    let mut lat = Vec::new();
    let mut lag = Vec::new();
    let (mut non2xx, mut errors, mut reconnects, mut bytes) = (0, 0, 0, 0);
    let mut last_done = record_from;
    for t in tallies {
        last_done = last_done.max(t.last_done.unwrap_or(record_from));
        lat.extend(t.latencies_ns);
        lag.extend(t.send_lags_ns);
        non2xx += t.non2xx;
        errors += t.errors;
        reconnects += t.reconnects;
        bytes += t.body_bytes;
    }
    lat.sort_unstable();
    lag.sort_unstable();
    let n = lat.len();
    // Answered per second: the requests due in the measured window over the
    // time from its start to the last answer. Below the target rate when the
    // answers fell behind the schedule.
    let answered_for = (last_done - record_from).as_secs_f64().max(args.duration);
    println!(
        "RATEJSON {{\"requests\":{n},\"target_rps\":{:.1},\"rps\":{:.1},\"duration_s\":{:.3},\
         \"connections\":{conns},\"non2xx\":{non2xx},\"errors\":{errors},\"reconnects\":{reconnects},\
         \"body_bytes\":{bytes},\"p50\":{:.1},\"p90\":{:.1},\"p99\":{:.1},\"p999\":{:.1},\"max\":{:.1},\
         \"lag_p50\":{:.1},\"lag_p99\":{:.1},\"lag_p999\":{:.1}}}",
        args.rate,
        n as f64 / answered_for,
        args.duration,
        percentile_us(&lat, 50.0),
        percentile_us(&lat, 90.0),
        percentile_us(&lat, 99.0),
        percentile_us(&lat, 99.9),
        percentile_us(&lat, 100.0),
        percentile_us(&lag, 50.0),
        percentile_us(&lag, 99.0),
        percentile_us(&lag, 99.9),
    );
}
