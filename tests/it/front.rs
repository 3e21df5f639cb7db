//! The proxy listener's front path: fresh memory hits answered before the
//! proxy, everything else handed to it over the same connection. Raw
//! HTTP/1 over one socket, so that keep-alive, hand-over and framing are
//! what is tested.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::util::Proxy;

const PATH: &str = "/api/boards/front/contacts";

/// One response read off a kept-alive connection: status, lower-cased
/// head, body (de-chunked).
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n == name).then(|| v.trim())
        })
    }
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nX-Workspace-ID: w1\r\n{extra}\r\n")
}

/// Reads one response: its head, then a body framed by `Content-Length` or
/// chunks.
fn read_answer(s: &mut TcpStream) -> Answer {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read head");
        assert_eq!(
            n,
            1,
            "connection closed in the head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap().to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut answer = Answer {
        status,
        head,
        body: Vec::new(),
    };
    if let Some(len) = answer.header("content-length") {
        let mut body = vec![0u8; len.parse().unwrap()];
        s.read_exact(&mut body).unwrap();
        answer.body = body;
    } else if answer.header("transfer-encoding") == Some("chunked") {
        loop {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                s.read_exact(&mut byte).unwrap();
                line.push(byte[0]);
            }
            let size =
                usize::from_str_radix(std::str::from_utf8(&line).unwrap().trim(), 16).unwrap();
            let mut chunk = vec![0u8; size + 2];
            s.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            answer.body.extend_from_slice(&chunk[..size]);
        }
    }
    answer
}

fn ask(s: &mut TcpStream, request: &str) -> Answer {
    s.write_all(request.as_bytes()).unwrap();
    read_answer(s)
}

/// Whether the server closed the connection (reads end).
fn closed(s: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(s.read_to_end(&mut rest), Ok(0))
}

#[tokio::test(flavor = "multi_thread")]
async fn one_connection_takes_misses_and_hits_in_turn() {
    let p = Proxy::start();
    let port = p.port;
    let answers = tokio::task::spawn_blocking(move || {
        let mut s = ProxyPort(port).connect();
        let a = ask(&mut s, &get(PATH, ""));
        let b = ask(&mut s, &get(PATH, "X-Request-ID: front-1\r\n"));
        let c = ask(&mut s, &get(&format!("{PATH}?page=2"), ""));
        let d = ask(&mut s, &get(PATH, ""));
        let e = ask(&mut s, &get(&format!("{PATH}?page=2"), ""));
        vec![a, b, c, d, e]
    })
    .await
    .unwrap();
    let statuses: Vec<_> = answers
        .iter()
        .map(|a| {
            (
                a.status,
                a.header("x-cache-status").unwrap_or("-").to_string(),
            )
        })
        .collect();
    let expect = ["miss", "hit", "miss", "hit", "hit"];
    for (i, (status, cache)) in statuses.iter().enumerate() {
        assert_eq!((*status, cache.as_str()), (200, expect[i]), "answer {i}");
    }
    assert_eq!(p.origin.hits(PATH), 2, "one fill per key");
    let (miss, hit) = (&answers[0], &answers[1]);
    assert_eq!(hit.body, miss.body);
    assert_eq!(hit.header("x-request-id"), Some("front-1"));
    assert_eq!(hit.header("x-cache-layer"), Some("memory"));
    assert!(
        hit.header("cache-status")
            .is_some_and(|v| v.starts_with("tagcache; hit; ttl=")),
        "{}",
        hit.head
    );
    assert!(hit.header("age").is_some_and(|v| v.parse::<u64>().is_ok()));
    assert!(hit.header("date").is_some());
    assert_eq!(hit.header("connection"), Some("keep-alive"));
    assert_eq!(
        hit.header("content-length"),
        Some(hit.body.len().to_string().as_str())
    );
    // The stored fields the miss carried, the hit carries too.
    assert_eq!(hit.header("content-type"), miss.header("content-type"));
    assert_eq!(hit.head.matches("\r\nage:").count(), 1, "{}", hit.head);
}

/// The port of a running proxy, for blocking helpers.
struct ProxyPort(u16);

impl ProxyPort {
    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.0)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hit_answers_connection_close_and_http_1_0_by_closing() {
    let p = Proxy::start();
    let path = "/api/boards/front-close/contacts";
    assert_eq!(p.get(path, Some("w1"), None).await.cache(), "MISS");
    let port = p.port;
    tokio::task::spawn_blocking(move || {
        let p = ProxyPort(port);
        let mut s = p.connect();
        let a = ask(&mut s, &get(path, "Connection: close\r\n"));
        assert_eq!((a.status, a.header("x-cache-status")), (200, Some("hit")));
        assert_eq!(a.header("connection"), Some("close"));
        assert!(closed(&mut s));

        let mut s = p.connect();
        let old = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\nX-Workspace-ID: w1\r\n\r\n");
        let a = ask(&mut s, &old);
        assert_eq!((a.status, a.header("x-cache-status")), (200, Some("hit")));
        assert_eq!(a.header("connection"), Some("close"));
        assert!(closed(&mut s));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_stored_without_length_goes_as_one_chunk() {
    let p = Proxy::start();
    let path = "/api/boards/front-chunked/contacts";
    let origin = [("x-origin-chunked", "1"), ("x-origin-body-size", "3000")];
    let a = p.get_with(path, Some("w1"), None, &origin).await;
    assert_eq!(a.cache(), "MISS");
    let port = p.port;
    let b = tokio::task::spawn_blocking(move || {
        let mut s = ProxyPort(port).connect();
        let b = ask(&mut s, &get(path, ""));
        // The connection is still usable after the chunked answer.
        let c = ask(&mut s, &get(path, ""));
        assert_eq!(c.body, b.body);
        b
    })
    .await
    .unwrap();
    assert_eq!(b.header("x-cache-status"), Some("hit"));
    assert_eq!(b.header("transfer-encoding"), Some("chunked"));
    assert_eq!(b.body, a.text.as_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn what_the_front_does_not_answer_reaches_the_proxy_unchanged() {
    let p = Proxy::start();
    let path = "/api/boards/front-handover/contacts";
    assert_eq!(p.get(path, Some("w1"), None).await.cache(), "MISS");
    let port = p.port;
    tokio::task::spawn_blocking(move || {
        let p = ProxyPort(port);
        // Bytes that do not parse: the proxy's 400.
        let mut s = p.connect();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
            .unwrap();
        let a = read_answer(&mut s);
        assert_eq!(a.status, 400);

        // A body on a GET: not a hit, bypassed as before.
        let mut s = p.connect();
        let a = ask(
            &mut s,
            &get(path, "Content-Length: 2\r\n").replacen("\r\n\r\n", "\r\n\r\nhi", 1),
        );
        assert_eq!(a.status, 200);
        assert_eq!(a.header("x-cache-status"), Some("bypass"));
        // The connection goes on after the proxy answered it.
        let b = ask(&mut s, &get(path, ""));
        assert_eq!(b.header("x-cache-status"), Some("hit"));

        // A conditional request takes the full path (304 from the store).
        let mut s = p.connect();
        let a = ask(&mut s, &get(path, "If-None-Match: \"nope\"\r\n"));
        assert_eq!(a.status, 200);

        // Pipelined requests: the first is answered as it was before.
        let mut s = p.connect();
        let two = format!("{}{}", get(path, ""), get(path, ""));
        s.write_all(two.as_bytes()).unwrap();
        let a = read_answer(&mut s);
        assert_eq!((a.status, a.header("x-cache-status")), (200, Some("hit")));
    })
    .await
    .unwrap();
}
