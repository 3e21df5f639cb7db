//! Per-user responses: `filter=assigned_to_me` is keyed per user, so another
//! user of the same workspace never gets it.

use super::*;

const MINE: &str = "/api/boards/b7/contacts?filter=assigned_to_me";

#[tokio::test]
async fn another_user_never_gets_my_assigned_to_me_list_jwt() {
    let p = hs256_proxy("");
    let alice = token("w1", "alice");
    let a = get(&p, MINE, Some(&alice), &[("x-user-id", "alice")]).await;
    assert_eq!(a.cache(), "MISS");
    assert_eq!(get(&p, MINE, Some(&alice), &[]).await.cache(), "HIT");
    // Bob, same workspace, same URL, with and without spelling variations.
    let bob = token("w1", "bob");
    for path in [
        MINE,
        "/api/boards/b7/contacts?filter=assigned_to_me&page=1",
        "/api/boards/b7/contacts?page=&filter=assigned%5Fto%5Fme",
    ] {
        let r = get(&p, path, Some(&bob), &[("x-user-id", "bob")]).await;
        assert_ne!(r.json()["user"], "alice", "{path}");
        assert_ne!(r.text, a.text, "{path}");
    }
    // Bob claiming to be Alice in the header is refused.
    assert_eq!(
        get(&p, MINE, Some(&bob), &[("x-user-id", "alice")])
            .await
            .status,
        403
    );
    // A token without a user cannot have a per-user entry at all.
    let anonymous = hs256(&serde_json::json!({"exp": now() + 60, "workspace_id": "w1"}));
    let r = get(&p, MINE, Some(&anonymous), &[]).await;
    assert_eq!(r.cache(), "BYPASS");
    assert!(r.header("cache-status").unwrap().contains("no-user"));
    // The shared lists are shared: Bob hits Alice's open list.
    let open = "/api/boards/b7/contacts?filter=open";
    assert_eq!(get(&p, open, Some(&alice), &[]).await.cache(), "MISS");
    assert_eq!(get(&p, open, Some(&bob), &[]).await.cache(), "HIT");
}

#[tokio::test]
async fn another_user_never_gets_my_assigned_to_me_list_headers() {
    let p = Proxy::start();
    let a = p.get(MINE, Some("w1"), Some("alice")).await;
    assert_eq!(a.cache(), "MISS");
    let b = p.get(MINE, Some("w1"), Some("bob")).await;
    assert_eq!(b.cache(), "MISS");
    assert_eq!(b.json()["user"], "bob");
    // Two user headers: refused to guess, never Alice's entry.
    let r = p
        .client
        .get(p.url(MINE))
        .header("x-workspace-id", "w1")
        .header("x-user-id", "bob")
        .header("x-user-id", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-cache-status"], "BYPASS");
}
