//! Path and query spellings that an origin might read differently from the
//! cache: each must reach the correct entry or bypass, never another entry.

use crate::util::{raw_get, Proxy};

use super::*;

fn status_of(head: &str) -> &str {
    head.lines()
        .find_map(|l| l.strip_prefix("x-cache-status: "))
        .unwrap_or("<none>")
}

#[tokio::test]
async fn path_spellings_bypass_or_reach_the_same_correct_entry() {
    let p = Proxy::start();
    let base = p.get("/api/boards/b1/contacts", Some("w1"), None).await;
    assert_eq!(base.cache(), "MISS");
    let ws = [("X-Workspace-ID", "w1")];
    // Encodings of ordinary letters decode to the same, correct key.
    for same in [
        "/api/%62oards/b1/contacts",
        "/api/boards/%621/contacts",
        "/%61pi/boards/b1/contacts",
    ] {
        let (status, head) = raw_get(p.port, same, &ws);
        assert_eq!((status, status_of(&head)), (200, "hit"), "{same}");
    }
    // Everything ambiguous is passed through uncached, twice (so not stored either).
    for odd in [
        "/api//boards/b1/contacts",
        "/api/boards/b1/./contacts",
        "/api/boards/x/../b1/contacts",
        "/api/boards/x/%2e%2e/b1/contacts",
        "/api/boards/%2E/b1/contacts",
        "/api/boards/b1%2fcontacts",
        "/api/boards/%C0%AE%C0%AE/b1/contacts",
        "/api/boards/b1%C0%AF/contacts",
        "/api/boards/%E0%80%AE/contacts",
        "/api/boards/b1\\..\\b2/contacts",
        "/api/boards/b1%5C..%5Cb2/contacts",
        "/api/boards/b1;x=1/contacts",
        "/api/boards/b1%3Bx=1/contacts",
        "/api/boards/%252e%252e/contacts",
        "/api/boards/b1%00/contacts",
        "/api/boards/b1%0D%0AX-Workspace-ID:%20w2/contacts",
        "/api/boards/b1/contacts/",
    ] {
        for _ in 0..2 {
            let (_, head) = raw_get(p.port, odd, &ws);
            assert_eq!(status_of(&head), "bypass", "{odd}: {head}");
        }
    }
    // Nothing above was stored under another key: the base entry is intact.
    let again = p.get("/api/boards/b1/contacts", Some("w1"), None).await;
    assert_eq!(
        (again.cache(), again.text.as_str()),
        ("HIT", base.text.as_str())
    );
}

#[tokio::test]
async fn another_routes_entry_is_never_reached_by_traversal() {
    let p = Proxy::start();
    // w1's counts, then attempts to reach them from the item route.
    let counts = p
        .get("/api/cache-settings/workspace/w1/counts", Some("w1"), None)
        .await;
    assert_eq!(counts.cache(), "MISS");
    for odd in [
        "/item/..%2fapi%2fcache-settings%2fworkspace%2fw1%2fcounts",
        "/item/%2e%2e/api/cache-settings/workspace/w1/counts",
        "/item/..\\api\\cache-settings\\workspace\\w1\\counts",
    ] {
        let (_, head) = raw_get(p.port, odd, &[("X-Workspace-ID", "w1")]);
        assert_eq!(status_of(&head), "bypass", "{odd}");
    }
}

/// Bytes that are not UTF-8 in the path and the query. Pingora turns them
/// into U+FFFD for the URI it exposes, so two different byte strings would
/// share one key if tagcache keyed that rendering; it bypasses instead.
#[tokio::test]
async fn non_utf8_bytes_in_path_and_query_bypass() {
    let p = Proxy::start();
    let send = |target: &[u8]| {
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(target);
        req.extend_from_slice(
            b" HTTP/1.1\r\nHost: x\r\nX-Workspace-ID: w1\r\nConnection: close\r\n\r\n",
        );
        raw(p.port, &req)
    };
    for target in [
        &b"/item/\xfe"[..],
        b"/item/\xff",
        b"/api/boards/b\xc3\x28/contacts",
        b"/api/boards/b1/contacts?search=\xff",
        b"/api/boards/b1/contacts?search=%ff",
        b"/api/boards/b1/contacts?search=%C0%AE",
        b"/api/boards/b1/contacts?se\xffarch=1",
    ] {
        for _ in 0..2 {
            let (status, text) = send(target);
            let lower = text.to_ascii_lowercase();
            assert!(
                status == 400 || lower.contains("x-cache-status: bypass"),
                "{}: {status} {text}",
                String::from_utf8_lossy(target)
            );
            assert!(!lower.contains("x-cache-status: hit"));
        }
    }
    // A valid entry is unaffected.
    let ok = p.get("/item/ok", Some("w1"), None).await;
    assert_eq!(ok.cache(), "MISS");
    crate::assert_cache!(p, "/item/ok", Some("w1"), "HIT");
}

#[tokio::test]
async fn non_utf8_identity_headers_bypass_in_header_mode() {
    let p = Proxy::start();
    crate::assert_cache!(p, "/item/nu", Some("w1"), "MISS");
    let (_, text) = raw(
        p.port,
        b"GET /item/nu HTTP/1.1\r\nHost: x\r\nX-Workspace-ID: w1\xff\r\nConnection: close\r\n\r\n",
    );
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("x-cache-status: bypass"), "{text}");
    assert!(lower.contains("no-workspace"), "{text}");
}
