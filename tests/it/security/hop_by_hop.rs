//! Hop-by-hop tricks: a `Connection` header that nominates a keyed field
//! (Pingora drops nominated fields before the origin sees them), a GET that
//! carries a body, and an origin's own `Connection` nominations. Each would
//! let the origin answer something other than what the key says, or keep a
//! field of one exchange in what everyone is served.

use std::io::{Read, Write};
use std::time::Duration;

use crate::util::{raw_get, Proxy};

/// Sends `head` (a request head without the blank line) and `body` as they
/// are; returns the response, head and body, as text.
fn raw(port: u16, head: &str, body: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("{head}\r\n\r\n{body}").as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn cache_status(head: &str) -> &str {
    head.lines()
        .find_map(|l| l.strip_prefix("cache-status: "))
        .unwrap_or("")
}

#[tokio::test]
async fn connection_cannot_strip_the_workspace_a_key_was_built_from() {
    let p = Proxy::start();
    let path = "/item/conn-ws";
    for nomination in [
        "X-Workspace-ID",
        "keep-alive, x-workspace-id",
        "X-WORKSPACE-ID",
    ] {
        let (status, head) = raw_get(
            p.port,
            path,
            &[("X-Workspace-ID", "w1"), ("Connection", nomination)],
        );
        assert_eq!(status, 200);
        assert!(
            cache_status(&head).contains("fwd=bypass; detail=connection"),
            "{nomination}: {head}"
        );
    }
    // Nothing answered for "no workspace" was stored under w1's key.
    let r = p.get(path, Some("w1"), None).await;
    assert_eq!(r.cache(), "MISS");
    assert_eq!(r.json()["workspace"], "w1");
    assert_eq!(
        p.get(path, Some("w1"), None).await.json()["workspace"],
        "w1"
    );
}

#[tokio::test]
async fn connection_cannot_strip_the_user_of_a_per_user_key() {
    let p = Proxy::start();
    let path = "/api/boards/b1/contacts?filter=assigned_to_me";
    let (_, head) = raw_get(
        p.port,
        path,
        &[
            ("X-Workspace-ID", "w1"),
            ("X-User-ID", "u1"),
            ("Connection", "keep-alive, x-user-id"),
        ],
    );
    assert!(cache_status(&head).contains("detail=connection"), "{head}");
    let r = p.get(path, Some("w1"), Some("u1")).await;
    assert_eq!(r.cache(), "MISS");
    assert_eq!(r.json()["user"], "u1");
}

#[tokio::test]
async fn connection_is_no_way_around_the_unkeyed_header_rules() {
    let p = Proxy::start();
    let path = "/item/conn-unkeyed";
    let (_, head) = raw_get(
        p.port,
        path,
        &[
            ("X-Workspace-ID", "w1"),
            ("X-Forwarded-Host", "evil.example"),
            ("Connection", "x-forwarded-host"),
        ],
    );
    assert!(cache_status(&head).contains("detail=connection"), "{head}");
    // An Upgrade is not a cacheable exchange either.
    let (_, head) = raw_get(
        p.port,
        path,
        &[("X-Workspace-ID", "w1"), ("Upgrade", "websocket")],
    );
    assert!(cache_status(&head).contains("fwd=bypass"), "{head}");
    let r = p.get(path, Some("w1"), None).await;
    assert_eq!(r.cache(), "MISS");
    assert!(r.json()["forwarded_host"].is_null());
}

#[tokio::test]
async fn plain_connection_options_still_use_the_cache() {
    let p = Proxy::start();
    let path = "/item/conn-plain";
    let (_, first) = raw_get(p.port, path, &[("X-Workspace-ID", "w1")]);
    assert!(cache_status(&first).contains("stored"), "{first}");
    let (_, second) = raw_get(
        p.port,
        path,
        &[("X-Workspace-ID", "w1"), ("Connection", "Keep-Alive")],
    );
    assert!(second.contains("x-cache-status: hit"), "{second}");
}

#[tokio::test]
async fn a_get_with_a_body_bypasses_the_cache() {
    let p = Proxy::start();
    let path = "/item/get-body";
    let body = r#"{"filter":"someone-elses-data"}"#;
    let resp = raw(
        p.port,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Workspace-ID: w1\r\nContent-Type: application/json\r\nContent-Length: {}",
            body.len()
        ),
        body,
    );
    let head = resp.to_ascii_lowercase();
    assert!(
        cache_status(&head).contains("fwd=bypass; detail=request-body"),
        "{resp}"
    );
    // The origin read the body: the answer depended on it.
    assert!(resp.contains("someone-elses-data"), "{resp}");
    let chunked = raw(
        p.port,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Workspace-ID: w1\r\nTransfer-Encoding: chunked"),
        "5\r\nhello\r\n0\r\n\r\n",
    );
    assert!(
        cache_status(&chunked.to_ascii_lowercase()).contains("detail=request-body"),
        "{chunked}"
    );
    // Colleagues get an answer made without anyone's body.
    let r = p.get(path, Some("w1"), None).await;
    assert_eq!(r.cache(), "MISS");
    assert_eq!(r.json()["body"], "");
    crate::assert_cache!(p, path, Some("w1"), "HIT");
    // An empty body is no body.
    let (_, head) = raw_get(
        p.port,
        path,
        &[("X-Workspace-ID", "w1"), ("Content-Length", "0")],
    );
    assert!(head.contains("x-cache-status: hit"), "{head}");
}

#[tokio::test]
async fn fields_the_origin_nominates_in_connection_are_not_stored() {
    let p = Proxy::start();
    let path = "/item/resp-connection";
    let first = p
        .get_with(
            path,
            Some("w1"),
            None,
            &[
                ("x-origin-header", "Connection: X-Hop-Secret"),
                ("x-origin-header", "X-Hop-Secret: for-this-hop-only"),
                ("x-origin-header", "X-Kept: yes"),
            ],
        )
        .await;
    assert_eq!(first.cache(), "MISS");
    assert!(
        first.header("x-hop-secret").is_none(),
        "{:?}",
        first.headers
    );
    let hit = p.get(path, Some("w1"), None).await;
    assert_eq!(hit.cache(), "HIT");
    assert_eq!(hit.header("x-kept"), Some("yes"));
    assert!(hit.header("x-hop-secret").is_none(), "{:?}", hit.headers);
}
