//! Cache keys: normalization, tenants, users, bypass rules.

use crate::util::Proxy;

#[tokio::test]
async fn equivalent_queries_share_one_entry() {
    let p = Proxy::start();
    let path = "/api/boards/norm/contacts";
    let first = p
        .get(&format!("{path}?pageSize=50&page=1"), Some("w1"), None)
        .await;
    assert_eq!(first.cache(), "MISS");
    for q in [
        "?page=1",
        "",
        "?page=1&pageSize=50",
        "?filter=all&sortOrder=desc",
        "?search=&page=",
        "?%70age=1",
    ] {
        let r = p.get(&format!("{path}{q}"), Some("w1"), None).await;
        assert_eq!(r.cache(), "HIT", "query {q:?}");
        assert_eq!(r.text, first.text);
    }
    assert_eq!(p.origin.hits(path), 1);
    let other = p.get(&format!("{path}?page=2"), Some("w1"), None).await;
    assert_eq!(other.cache(), "MISS");
}

#[tokio::test]
async fn two_workspaces_never_share_an_entry() {
    let p = Proxy::start();
    let path = "/api/boards/shared/contacts?page=1";
    let a = p.get(path, Some("w1"), None).await;
    let b = p.get(path, Some("w2"), None).await;
    assert_eq!((a.cache(), b.cache()), ("MISS", "MISS"));
    assert_eq!(a.json()["workspace"], "w1");
    assert_eq!(b.json()["workspace"], "w2");
    let a2 = p.get(path, Some("w1"), None).await;
    let b2 = p.get(path, Some("w2"), None).await;
    assert_eq!((a2.cache(), b2.cache()), ("HIT", "HIT"));
    assert_eq!(a2.json()["workspace"], "w1");
    assert_eq!(b2.json()["workspace"], "w2");
}

#[tokio::test]
async fn no_workspace_passes_through_uncached() {
    let p = Proxy::start();
    for _ in 0..2 {
        let r = p.get("/api/boards/nows/contacts", None, None).await;
        assert_eq!(r.cache(), "BYPASS");
        assert!(r.header("cache-status").unwrap().contains("no-workspace"));
    }
    // Two values for the workspace header are refused too.
    let r = p
        .client
        .get(p.url("/api/boards/nows/contacts"))
        .header("X-Workspace-ID", "w1")
        .header("X-Workspace-ID", "w2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-cache-status"], "BYPASS");
    assert_eq!(p.origin.hits("/api/boards/nows/contacts"), 3);
}

#[tokio::test]
async fn assigned_to_me_is_keyed_per_user_and_the_rest_is_shared() {
    let p = Proxy::start();
    let mine = "/api/boards/pu/contacts?filter=assigned_to_me";
    let a = p.get(mine, Some("w1"), Some("alice")).await;
    let b = p.get(mine, Some("w1"), Some("bob")).await;
    assert_eq!((a.cache(), b.cache()), ("MISS", "MISS"));
    assert_eq!(b.json()["user"], "bob");
    let a2 = p.get(mine, Some("w1"), Some("alice")).await;
    assert_eq!(a2.cache(), "HIT");
    assert_eq!(a2.json()["user"], "alice");
    // Without a user, a per-user request cannot be keyed: bypass.
    let anon = p.get(mine, Some("w1"), None).await;
    assert_eq!(anon.cache(), "BYPASS");

    let open = "/api/boards/pu/contacts?filter=open";
    let c = p.get(open, Some("w1"), Some("alice")).await;
    let d = p.get(open, Some("w1"), Some("bob")).await;
    assert_eq!((c.cache(), d.cache()), ("MISS", "HIT"));
}

#[tokio::test]
async fn large_pages_bypass() {
    let p = Proxy::start();
    for _ in 0..2 {
        let r = p
            .get("/api/boards/big/contacts?pageSize=500", Some("w1"), None)
            .await;
        assert_eq!(r.cache(), "BYPASS");
        assert!(r.header("cache-status").unwrap().contains("fwd=bypass"));
    }
    assert_eq!(p.origin.hits("/api/boards/big/contacts"), 2);
    let r = p
        .get("/api/boards/big/contacts?pageSize=100", Some("w1"), None)
        .await;
    assert_eq!(r.cache(), "MISS");
}

#[tokio::test]
async fn unknown_query_params_bypass_unless_ignored() {
    let p = Proxy::start();
    for _ in 0..2 {
        let r = p
            .get("/api/boards/uq/contacts?page=1&debug=1", Some("w1"), None)
            .await;
        assert_eq!(r.cache(), "BYPASS");
        assert!(r.header("cache-status").unwrap().contains("unknown-query"));
    }
    let a = p.get("/lenient/1?page=2&utm=x", Some("w1"), None).await;
    let b = p.get("/lenient/1?utm=y&page=2", Some("w1"), None).await;
    assert_eq!((a.cache(), b.cache()), ("MISS", "HIT"));
}

#[tokio::test]
async fn odd_path_spellings_never_reach_another_entry() {
    let p = Proxy::start();
    let base = p.get("/api/boards/b1/contacts", Some("w1"), None).await;
    assert_eq!(base.cache(), "MISS");
    // Percent-encoded letters decode to the same, correct key.
    let enc = p.get("/api/%62oards/b1/contacts", Some("w1"), None).await;
    assert_eq!(enc.cache(), "HIT");
    // Ambiguous spellings are not cached at all.
    for path in [
        "/api//boards/b1/contacts",
        "/api/boards/b1/./contacts",
        "/api/boards/x/../b1/contacts",
        "/api/boards/b1%2Fx/contacts",
        "/api/boards/%2e%2e/contacts",
    ] {
        let (status, head) = crate::util::raw_get(p.port, path, &[("X-Workspace-ID", "w1")]);
        assert_eq!(status, 200, "{path}");
        assert!(head.contains("x-cache-status: bypass"), "{path}: {head}");
    }
}

#[tokio::test]
async fn client_no_cache_refreshes_from_origin() {
    let p = Proxy::start();
    let path = "/item/nc";
    assert_eq!(p.get(path, Some("w1"), None).await.n(), 1);
    let r = p
        .get_with(path, Some("w1"), None, &[("cache-control", "no-cache")])
        .await;
    assert_eq!(r.n(), 2);
    assert_eq!(r.cache(), "MISS");
    // The refreshed copy is stored and served.
    let r = p.get(path, Some("w1"), None).await;
    assert_eq!((r.cache(), r.n()), ("HIT", 2));
}
