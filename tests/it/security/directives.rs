//! `Cache-Control` spelled to slip past a parser that keeps one copy of
//! each directive: `private` next to `private="..."`, on one line or two, in
//! any case; and the fields `private="..."` / `no-cache="..."` name, which a
//! shared cache may not hand out (RFC 9111 §5.2.2.4, §5.2.2.7).

use std::sync::Arc;

use crate::util::{Proxy, Resp};

/// `n` concurrent clients of workspace w1, user `u{i}`, on one cold key; the
/// origin answers each with `headers` after 200 ms.
async fn herd(
    p: &Arc<Proxy>,
    path: &'static str,
    n: usize,
    headers: &'static [&'static str],
) -> Vec<Resp> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let user = format!("u{i}");
            let token = format!("X-User-Token: token-of-u{i}");
            let mut hs: Vec<(&str, &str)> = vec![
                ("x-user-id", &user),
                ("x-origin-delay-ms", "200"),
                ("x-origin-header", &token),
            ];
            for h in headers {
                hs.push(("x-origin-header", h));
            }
            p.get_with(path, Some("w1"), None, &hs).await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn nobody_got_anothers_token(results: &[Resp]) {
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.status, 200);
        let token = r.header("x-user-token");
        assert!(
            token.is_none() || token == Some(format!("token-of-u{i}").as_str()),
            "client {i} got {token:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn private_on_a_second_cache_control_line_is_never_shared() {
    let p = Arc::new(Proxy::start());
    let results = herd(
        &p,
        "/item/cc-two-lines",
        20,
        &[
            "Cache-Control: private",
            "Cache-Control: private=\"X-User-Token\"",
        ],
    )
    .await;
    nobody_got_anothers_token(&results);
    assert_eq!(p.origin.hits("/item/cc-two-lines"), 20);
    let later = p.get("/item/cc-two-lines", Some("w1"), None).await;
    assert_eq!(later.cache(), "MISS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn private_with_and_without_a_field_list_on_one_line_is_never_shared() {
    let p = Arc::new(Proxy::start());
    for (path, cc) in [
        (
            "/item/cc-one-line",
            "Cache-Control: private, private=\"X-User-Token\"",
        ),
        (
            "/item/cc-upper",
            "Cache-Control: max-age=600, PRIVATE=\"X-User-Token\"",
        ),
        (
            "/item/cc-nostore",
            "Cache-Control: public, max-age=60, No-Store",
        ),
    ] {
        let cc: &'static str = Box::leak(cc.to_string().into_boxed_str());
        let headers: &'static [&'static str] = Box::leak(vec![cc].into_boxed_slice());
        let results = herd(&p, path, 10, headers).await;
        nobody_got_anothers_token(&results);
        assert_eq!(p.origin.hits(path), 10, "{cc}");
    }
}

#[tokio::test]
async fn a_response_with_private_fields_is_not_stored() {
    let p = Proxy::start();
    let path = "/item/cc-private-field";
    let first = p
        .get_with(
            path,
            Some("w1"),
            Some("u1"),
            &[
                (
                    "x-origin-header",
                    "Cache-Control: max-age=600, private=\"X-User-Token\"",
                ),
                ("x-origin-header", "X-User-Token: secret-of-u1"),
            ],
        )
        .await;
    let cs = first.header("cache-status").unwrap_or_default().to_string();
    assert!(cs.contains("uncacheable-private"), "{cs}");
    let other = p.get(path, Some("w1"), Some("u2")).await;
    assert_eq!(other.cache(), "MISS");
    assert!(other.header("x-user-token").is_none());
}

#[tokio::test]
async fn fields_named_by_no_cache_are_stripped_from_the_stored_copy() {
    let p = Proxy::start();
    let path = "/item/cc-no-cache-field";
    let first = p
        .get_with(
            path,
            Some("w1"),
            Some("u1"),
            &[
                (
                    "x-origin-header",
                    "Cache-Control: max-age=600, no-cache=\"X-User-Token\"",
                ),
                ("x-origin-header", "X-User-Token: secret-of-u1"),
                ("x-origin-header", "X-Shared: fine"),
            ],
        )
        .await;
    assert_eq!(first.cache(), "MISS");
    // The client that asked gets its own token.
    assert_eq!(first.header("x-user-token"), Some("secret-of-u1"));
    let hit = p.get(path, Some("w1"), Some("u2")).await;
    assert_eq!(hit.cache(), "HIT");
    assert_eq!(hit.header("x-shared"), Some("fine"));
    assert!(hit.header("x-user-token").is_none(), "{:?}", hit.headers);
}

#[tokio::test]
async fn a_cache_control_line_that_does_not_parse_is_not_stored() {
    let p = Proxy::start();
    let path = "/item/cc-broken";
    let first = p
        .get_with(
            path,
            Some("w1"),
            None,
            &[("x-origin-header", "Cache-Control: max-age=60, private\"")],
        )
        .await;
    let cs = first.header("cache-status").unwrap_or_default().to_string();
    assert!(cs.contains("uncacheable-cache-control-invalid"), "{cs}");
    crate::assert_cache!(p, path, Some("w1"), "MISS");
}
