//! `POST /warm`: items go through the proxy's own listener, so a warmed entry
//! is exactly what a client with the same identity would have stored, and
//! nothing another identity can read; JWT items are verified; `refresh`
//! re-fetches; bodies are bounded and validated field by field.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::security::{hs256_proxy, token};
use crate::util::{Options, Proxy};

const LIST: &str = "/api/boards/b1/contacts?page=1";

/// POSTs `body` to `/warm`; the answer must be 200. Returns its JSON.
async fn warm(p: &Proxy, body: Value) -> Value {
    let r = p.admin_post("/warm", &body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

fn outcome(answer: &Value, i: usize) -> (&str, &str, Option<u64>) {
    let r = &answer["results"][i];
    (
        r["outcome"].as_str().unwrap_or("<none>"),
        r["detail"].as_str().unwrap_or(""),
        r["status"].as_u64(),
    )
}

#[tokio::test]
async fn a_warmed_entry_is_a_hit_for_its_identity_and_never_for_another_workspace() {
    let p = Proxy::start();
    let mine = "/api/boards/b1/contacts?filter=assigned_to_me";
    let answer = warm(
        &p,
        json!({"requests": [
            {"url": LIST, "workspace": "w1", "user": "u1"},
            {"url": mine, "workspace": "w1", "user": "u1"},
            {"url": "/api/cache-settings/workspace/w1/counts", "workspace": "w1"},
        ]}),
    )
    .await;
    for i in 0..3 {
        let (o, d, s) = outcome(&answer, i);
        assert_eq!((o, s), ("stored", Some(200)), "{i}: {d} {answer}");
    }
    assert_eq!(answer["stored"], 3, "{answer}");
    assert_eq!(answer["results"][0]["url"], LIST);
    assert_eq!(answer["results"][0]["workspace"], "w1");
    assert!(answer["results"][0]["ms"].as_f64().is_some());

    // Same identity: the warmed entry, not a new fetch.
    assert_eq!(p.origin.hits("/api/boards/b1/contacts"), 2);
    let hit = p.get(LIST, Some("w1"), Some("u1")).await;
    assert_eq!(hit.cache(), "HIT", "{}", hit.text);
    assert_eq!(hit.json()["workspace"], "w1");
    // The list is shared by the workspace's users; the per-user one is not.
    assert_eq!(p.get(LIST, Some("w1"), Some("u2")).await.cache(), "HIT");
    assert_eq!(p.get(mine, Some("w1"), Some("u1")).await.cache(), "HIT");
    let other_user = p.get(mine, Some("w1"), Some("u2")).await;
    assert_eq!(other_user.cache(), "MISS");
    assert_eq!(other_user.json()["user"], "u2");
    // Another workspace never gets it.
    let other = p.get(LIST, Some("w2"), Some("u1")).await;
    assert_eq!(other.cache(), "MISS");
    assert_eq!(other.json()["workspace"], "w2");
    assert_eq!(p.origin.hits("/api/boards/b1/contacts"), 4);

    // Warming again finds them fresh and fetches nothing.
    let again = warm(
        &p,
        json!({"requests": [{"url": LIST, "workspace": "w1", "user": "u1"}]}),
    )
    .await;
    let (o, d, _) = outcome(&again, 0);
    assert_eq!(o, "fresh", "{again}");
    assert!(d.starts_with("ttl="), "{d}");
    assert_eq!(again["fresh"], 1);
    assert_eq!(p.origin.hits("/api/boards/b1/contacts"), 4);
}

#[tokio::test]
async fn outcomes_say_why_nothing_was_stored() {
    let p = Proxy::start();
    let answer = warm(
        &p,
        json!({"requests": [
            {"url": "/not/cached", "workspace": "w1"},
            {"url": "/api/boards/b1/contacts?pageSize=500", "workspace": "w1"},
            {"url": "/item/err", "workspace": "w1", "headers": {"x-origin-status": "500"}},
            {"url": "/item/no-workspace"},
        ]}),
    )
    .await;
    assert_eq!(outcome(&answer, 0), ("bypassed", "no-route", Some(200)));
    assert_eq!(outcome(&answer, 1), ("bypassed", "rule", Some(200)));
    assert_eq!(
        outcome(&answer, 2),
        ("not_stored", "uncacheable-status", Some(500))
    );
    assert_eq!(outcome(&answer, 3), ("bypassed", "no-workspace", Some(200)));
    assert_eq!(answer["bypassed"], 3, "{answer}");
    assert_eq!(answer["not_stored"], 1, "{answer}");
    assert_eq!(answer["stored"], 0, "{answer}");
}

#[tokio::test]
async fn jwt_items_are_verified_like_any_request() {
    let p = hs256_proxy("");
    let good = token("w1", "alice");
    let other = token("w2", "mallory");
    let answer = warm(
        &p,
        json!({"requests": [
            {"url": LIST, "workspace": "w1", "headers": {"authorization": format!("Bearer {good}")}},
            {"url": "/api/boards/b2/contacts", "headers": {"authorization": "Bearer not-a-token"}},
            // The workspace field fills the header the token must agree with.
            {"url": "/api/boards/b3/contacts", "workspace": "w1",
             "headers": {"authorization": format!("Bearer {other}")}},
        ]}),
    )
    .await;
    let (o, _, s) = outcome(&answer, 0);
    assert_eq!((o, s), ("stored", Some(200)), "{answer}");
    let (o, d, s) = outcome(&answer, 1);
    assert_eq!((o, s), ("bypassed", Some(401)), "{answer}");
    assert!(d.starts_with("refused (401)"), "{d}");
    let (o, d, s) = outcome(&answer, 2);
    assert_eq!((o, s), ("bypassed", Some(403)), "{answer}");
    assert!(d.starts_with("refused (403)"), "{d}");
    // Refused items never reach the origin, so nothing is stored for them.
    assert_eq!(p.origin.hits("/api/boards/b2/contacts"), 0);
    assert_eq!(p.origin.hits("/api/boards/b3/contacts"), 0);

    // The warmed entry is the token holder's...
    let hit = crate::security::get(&p, LIST, Some(&good), &[]).await;
    assert_eq!((hit.cache(), hit.n()), ("HIT", 1), "{}", hit.text);
    // ...and never another workspace's.
    let miss = crate::security::get(&p, LIST, Some(&other), &[]).await;
    assert_eq!(miss.cache(), "MISS");
    assert_eq!(miss.json()["workspace"], "w2");

    // An item without its own token is refused before anything is sent.
    let r = p
        .admin_post(
            "/warm",
            &json!({"requests": [{"url": LIST, "workspace": "w1"}]}).to_string(),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json()["field"], "requests[0].headers.authorization");
}

#[tokio::test]
async fn refresh_refetches_fresh_entries() {
    let p = Proxy::start();
    let item = json!({"url": LIST, "workspace": "w1"});
    warm(&p, json!({"requests": [item]})).await;
    let v1 = p.get(LIST, Some("w1"), None).await.json()["version"].clone();
    p.origin.bump();
    let plain = warm(&p, json!({"requests": [item]})).await;
    assert_eq!(outcome(&plain, 0).0, "fresh", "{plain}");
    assert_eq!(p.get(LIST, Some("w1"), None).await.json()["version"], v1);

    let refreshed = warm(&p, json!({"requests": [item], "refresh": true})).await;
    let (o, d, _) = outcome(&refreshed, 0);
    assert_eq!((o, d), ("stored", "fwd=request"), "{refreshed}");
    let after = p.get(LIST, Some("w1"), None).await;
    assert_eq!(after.cache(), "HIT");
    assert_ne!(after.json()["version"], v1, "{}", after.text);
    assert_eq!(p.origin.hits("/api/boards/b1/contacts"), 2);
}

#[tokio::test]
async fn refresh_on_a_route_that_ignores_client_no_cache_reports_the_entry_fresh() {
    let p = Proxy::start_with(Options {
        routes: "
routes:
  - name: firm
    match: \"GET /firm/{id}\"
    ttl: 300s
    honor_client_no_cache: false
"
        .into(),
        ..Options::default()
    });
    let item = json!({"url": "/firm/1", "workspace": "w1"});
    warm(&p, json!({"requests": [item]})).await;
    let answer = warm(&p, json!({"requests": [item], "refresh": true})).await;
    let (o, d, _) = outcome(&answer, 0);
    assert_eq!(o, "fresh", "{answer}");
    assert!(d.contains("honor_client_no_cache: false"), "{d}");
    assert_eq!(p.origin.hits("/firm/1"), 1);
}

#[tokio::test]
async fn bodies_are_bounded_and_validated() {
    let p = Proxy::start();
    let item = json!({"url": LIST, "workspace": "w1"});
    let cases = [
        (json!({"requests": vec![item.clone(); 101]}), "requests"),
        (json!({"requests": [item], "concurrency": 0}), "concurrency"),
        (
            json!({"requests": [item], "concurrency": 17}),
            "concurrency",
        ),
        (
            json!({"requests": [item, item, item, {"url": "http://169.254.169.254/latest"}]}),
            "requests[3].url",
        ),
        (
            json!({"requests": [item, {"url": "/x", "headers": {"Host": "internal"}}]}),
            "requests[1].headers.host",
        ),
        (
            json!({"requests": [{"url": "/x", "method": "POST"}]}),
            "requests[0].method",
        ),
    ];
    for (body, field) in cases {
        let r = p.admin_post("/warm", &body.to_string()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert_eq!(r.json()["field"], field, "{body}: {}", r.text);
    }
    assert_eq!(p.admin_post("/warm", "{not json").await.status, 400);
    assert_eq!(p.admin_get("/warm").await.status, 405);
    let anonymous = p
        .client
        .post(p.admin_url("/warm"))
        .body(json!({"requests": [item]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(p.origin.total(), 0, "nothing was sent for a refused body");
}

#[tokio::test]
async fn concurrency_bounds_the_items_in_flight() {
    let p = Proxy::start();
    let items: Vec<Value> = (0..6)
        .map(|i| {
            json!({"url": format!("/item/slow{i}"), "workspace": "w1",
                   "headers": {"x-origin-delay-ms": "500"}})
        })
        .collect();
    let started = Instant::now();
    let answer = warm(&p, json!({"requests": items, "concurrency": 3})).await;
    let took = started.elapsed();
    assert_eq!(answer["stored"], 6, "{answer}");
    // Two rounds of three: never all at once, never one by one.
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    assert!(took < Duration::from_millis(3000), "{took:?}");
    // Results keep the order of the items.
    for i in 0..6 {
        assert_eq!(answer["results"][i]["url"], format!("/item/slow{i}"));
    }
}
