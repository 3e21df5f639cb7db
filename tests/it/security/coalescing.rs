//! Responses that must never be shared, requested by a herd of 50 clients at
//! once on one cold key: each client must get its own, even though they wait
//! on one coalescing lock (souin #662 and #805 shared exactly these).

use std::sync::Arc;

use super::*;

/// 50 concurrent requests for `path`, client `i` sending `X-User-ID: u{i}`,
/// a bearer token for `u{i}`, and the origin directive `header(i)`. Returns
/// each client's response.
async fn herd(
    p: &Arc<Proxy>,
    path: &'static str,
    header: fn(usize) -> String,
) -> Vec<(usize, Resp)> {
    let mut tasks = Vec::new();
    for i in 0..50 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let t = token("w1", &format!("u{i}"));
            let user = format!("u{i}");
            let directive = header(i);
            let r = get(
                &p,
                path,
                Some(&t),
                &[
                    ("x-user-id", &user),
                    ("x-origin-delay-ms", "200"),
                    ("x-origin-header", &directive),
                ],
            )
            .await;
            (i, r)
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn each_got_its_own(results: &[(usize, Resp)]) {
    for (i, r) in results {
        assert_eq!(r.status, 200);
        assert_eq!(
            r.json()["user"],
            format!("u{i}"),
            "client {i} got another client's response"
        );
    }
    for (i, r) in results {
        let cs = r
            .header("cache-status")
            .unwrap_or_else(|| panic!("client {i}: {:?}", r.headers));
        assert!(!cs.contains("stored"), "client {i}: {cs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn set_cookie_responses_under_coalescing_are_never_shared() {
    let p = Arc::new(hs256_proxy(""));
    let results = herd(&p, "/item/herd-cookie", |i| {
        format!("Set-Cookie: session=s{i}")
    })
    .await;
    each_got_its_own(&results);
    for (i, r) in &results {
        assert_eq!(
            r.header("set-cookie"),
            Some(format!("session=s{i}").as_str())
        );
    }
    assert_eq!(p.origin.hits("/item/herd-cookie"), 50);
    // And nothing was stored for a later client.
    let later = get(&p, "/item/herd-cookie", Some(&token("w1", "late")), &[]).await;
    assert_eq!(later.cache(), "MISS");
    assert!(later.header("set-cookie").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn private_responses_under_coalescing_are_never_shared() {
    let p = Arc::new(hs256_proxy(""));
    let results = herd(&p, "/item/herd-private", |_| {
        "Cache-Control: private, max-age=300".into()
    })
    .await;
    each_got_its_own(&results);
    assert_eq!(p.origin.hits("/item/herd-private"), 50);
    let results = herd(&p, "/item/herd-nostore", |_| {
        "Cache-Control: no-store".into()
    })
    .await;
    each_got_its_own(&results);
    let results = herd(&p, "/item/herd-vary", |_| "Vary: Authorization".into()).await;
    each_got_its_own(&results);
}
