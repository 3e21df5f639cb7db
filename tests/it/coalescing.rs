//! Request coalescing: one origin fetch for a herd; unstorable answers are not shared.

use crate::util::{cold_herd, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn herd_of_cold_requests_makes_one_origin_request() {
    let p = std::sync::Arc::new(Proxy::start());
    let mut bodies = std::collections::HashSet::new();
    for r in cold_herd(std::slice::from_ref(&p), "/item/herd", 200).await {
        assert_eq!(r.status, 200);
        bodies.insert(r.text);
    }
    assert_eq!(p.origin.hits("/item/herd"), 1);
    assert_eq!(bodies.len(), 1, "every waiter got the one stored response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unstorable_responses_are_not_shared_with_waiters() {
    let p = std::sync::Arc::new(Proxy::start());
    let mut tasks = Vec::new();
    for i in 0..20 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let cookie = format!("Set-Cookie: session=user{i}");
            let r = p
                .get_with(
                    "/item/private-herd",
                    Some("w1"),
                    None,
                    &[("x-origin-delay-ms", "200"), ("x-origin-header", &cookie)],
                )
                .await;
            (i, r)
        }));
    }
    for t in tasks {
        let (i, r) = t.await.unwrap();
        assert_eq!(r.status, 200);
        // Each client sees only its own cookie: nothing was shared.
        assert_eq!(
            r.header("set-cookie"),
            Some(format!("session=user{i}").as_str())
        );
    }
    assert_eq!(p.origin.hits("/item/private-herd"), 20);
}
