//! Writes that pass through invalidate: the target URI and `Location` /
//! `Content-Location` on the same host (RFC 9111 §4.4), and the tags of the
//! `invalidate:` rule a write matches, purged before its answer reaches the
//! client.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::redis::util::{metric, proxy_with, wait_synced, RedisOpts, RedisServer};
use crate::util::{Options, Origin, Proxy, Resp, HEADER_TENANT};

/// Routes and rules of these tests.
const ROUTES: &str = r#"
routes:
  - name: note
    match: "GET /api/notes/{note_id}"
    ttl: 300s
  - name: notes
    match: "GET /api/notes"
    ttl: 300s
    key: { query: [page] }
  - name: contact
    match: "GET /api/contacts/{contact_id}"
    ttl: 300s
    tags: ["contact:{workspace}:{contact_id}"]
  - name: counts
    match: "GET /api/counts"
    ttl: 300s
    tags: ["counts:{workspace}"]
  - name: mine
    match: "GET /api/me/{thing}"
    ttl: 300s
    key: { per_user: true }
invalidate:
  - match: "PATCH /api/contacts/{contact_id}"
    tags: ["contact:{workspace}:{contact_id}", "counts:{workspace}"]
  - match: "POST /api/contacts/{contact_id}/messages"
    tags: ["counts:{workspace}"]
"#;

fn start() -> Proxy {
    Proxy::start_with(Options {
        routes: ROUTES.to_string(),
        ..Options::default()
    })
}

/// Sends `method path` as workspace `ws`, with extra headers.
async fn write(p: &Proxy, method: &str, path: &str, ws: &str, headers: &[(&str, &str)]) -> Resp {
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = p
        .client
        .request(method, p.url(path))
        .header("X-Workspace-ID", ws)
        .body("{}");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    Resp::from(req.send().await.expect("write")).await
}

/// GETs `path` as `ws` twice, so that it is stored, and checks the second is a hit.
async fn warm(p: &Proxy, path: &str, ws: &str) {
    p.get(path, Some(ws), None).await;
    let r = p.get(path, Some(ws), None).await;
    assert_eq!(r.cache(), "HIT", "{path} as {ws} was not stored");
}

async fn cache_of(p: &Proxy, path: &str, ws: &str) -> String {
    p.get(path, Some(ws), None).await.cache().to_string()
}

/// RFC 9111 §4.4: a non-error answer to each unsafe method invalidates the
/// stored responses for its target URI, for the identity the write carries,
/// and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_4_each_unsafe_method_invalidates_its_target_uri() {
    let p = start();
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let target = format!("/api/notes/{method}");
        let other = format!("/api/notes/{method}-other");
        warm(&p, &target, "w1").await;
        warm(&p, &target, "w2").await;
        warm(&p, &other, "w1").await;
        let before = p.origin.hits(&target);
        let r = write(&p, method, &target, "w1", &[]).await;
        assert_eq!(r.status, 200, "{method}");
        assert_eq!(
            p.origin.hits(&target),
            before + 1,
            "{method} reached the origin"
        );
        let after = p.get(&target, Some("w1"), None).await;
        assert_eq!(
            after.cache(),
            "MISS",
            "{method} did not invalidate {target}"
        );
        assert_eq!(p.origin.hits(&target), before + 2);
        // Another workspace's entry and another URI are not the write's.
        assert_eq!(cache_of(&p, &target, "w2").await, "HIT", "{method}");
        assert_eq!(cache_of(&p, &other, "w1").await, "HIT", "{method}");
    }
}

/// RFC 9111 §4.4: the target URI includes its query; the key of that query
/// is invalidated, other pages are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_4_the_target_uri_holds_its_query() {
    let p = start();
    warm(&p, "/api/notes?page=2", "w1").await;
    warm(&p, "/api/notes?page=3", "w1").await;
    let r = write(&p, "POST", "/api/notes?page=2", "w1", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(cache_of(&p, "/api/notes?page=2", "w1").await, "MISS");
    assert_eq!(cache_of(&p, "/api/notes?page=3", "w1").await, "HIT");
}

/// RFC 9111 §4.4: `Location` and `Content-Location` are invalidated when
/// they are on the request's host (relative references resolved against the
/// target URI), never when they name another host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_4_location_and_content_location_on_the_same_host() {
    let p = start();
    for id in ["n1", "n2", "n3", "n4", "n5"] {
        warm(&p, &format!("/api/notes/{id}"), "w1").await;
    }
    let same_host = format!("http://127.0.0.1:{}/api/notes/n2", p.port);
    let location = "x-origin-header";
    let r = write(
        &p,
        "POST",
        "/api/notes",
        "w1",
        &[
            ("x-origin-status", "201"),
            (location, "Location: /api/notes/n1"),
            (location, &format!("Content-Location: {same_host}")),
        ],
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(cache_of(&p, "/api/notes/n1", "w1").await, "MISS");
    assert_eq!(cache_of(&p, "/api/notes/n2", "w1").await, "MISS");

    // A relative reference, resolved against /api/notes.
    write(
        &p,
        "POST",
        "/api/notes",
        "w1",
        &[("x-origin-status", "201"), (location, "Location: notes/n3")],
    )
    .await;
    assert_eq!(cache_of(&p, "/api/notes/n3", "w1").await, "MISS");

    // Another host, or the same host on another port: not ours to invalidate.
    let other_port = format!("http://127.0.0.1:{}/api/notes/n5", p.port + 1);
    let r = write(
        &p,
        "POST",
        "/api/notes",
        "w1",
        &[
            ("x-origin-status", "201"),
            (location, "Location: http://other.example/api/notes/n4"),
            (location, &format!("Content-Location: {other_port}")),
        ],
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(cache_of(&p, "/api/notes/n4", "w1").await, "HIT");
    assert_eq!(cache_of(&p, "/api/notes/n5", "w1").await, "HIT");
}

/// RFC 9111 §4.4 only asks a non-error status of the write: a 4xx or 5xx
/// invalidates nothing, neither the target nor the rule's tags, and is
/// counted as a failed write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_4_failed_writes_purge_nothing() {
    let p = start();
    warm(&p, "/api/notes/f1", "w1").await;
    warm(&p, "/api/contacts/7", "w1").await;
    warm(&p, "/api/counts", "w1").await;
    for status in ["400", "404", "409", "500", "503"] {
        let r = write(
            &p,
            "DELETE",
            "/api/notes/f1",
            "w1",
            &[("x-origin-status", status)],
        )
        .await;
        assert_eq!(r.status.to_string(), status);
        let r = write(
            &p,
            "PATCH",
            "/api/contacts/7",
            "w1",
            &[("x-origin-status", status)],
        )
        .await;
        assert_eq!(r.status.to_string(), status);
        assert_eq!(cache_of(&p, "/api/notes/f1", "w1").await, "HIT", "{status}");
        assert_eq!(
            cache_of(&p, "/api/contacts/7", "w1").await,
            "HIT",
            "{status}"
        );
        assert_eq!(cache_of(&p, "/api/counts", "w1").await, "HIT", "{status}");
    }
    let failed = metric(
        &p,
        r#"tagcache_write_invalidations_total{outcome="failed_write",rule="PATCH /api/contacts/{contact_id}"}"#,
    )
    .await;
    assert_eq!(failed, 5.0);
    let failed = metric(
        &p,
        r#"tagcache_write_invalidations_total{outcome="failed_write",rule="-"}"#,
    )
    .await;
    assert_eq!(failed, 5.0);
}

/// `invalidate:` tags are purged on a 2xx only; a 3xx is no error to
/// RFC 9111 §4.4, so it invalidates the target URI, but not the rule's tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_4_a_redirect_invalidates_the_target_but_not_the_rule_tags() {
    let p = start();
    warm(&p, "/api/contacts/8", "w1").await;
    warm(&p, "/api/counts", "w1").await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = client
        .patch(p.url("/api/contacts/8"))
        .header("X-Workspace-ID", "w1")
        .header("x-origin-status", "303")
        .header("x-origin-header", "Location: /elsewhere")
        .send()
        .await
        .expect("write");
    assert_eq!(r.status(), 303);
    assert_eq!(cache_of(&p, "/api/contacts/8", "w1").await, "MISS");
    assert_eq!(cache_of(&p, "/api/counts", "w1").await, "HIT");
}

/// `invalidate:`: after a 2xx, the rule's tags (rendered with the write's
/// workspace and path parameters) are purged before the answer reaches the
/// client: a request sent as soon as the answer arrives is a miss with the
/// new data. Other workspaces keep theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_tags_are_purged_before_the_writes_answer() {
    let p = start();
    warm(&p, "/api/contacts/42", "w1").await;
    warm(&p, "/api/contacts/43", "w1").await;
    warm(&p, "/api/counts", "w1").await;
    warm(&p, "/api/counts", "w2").await;
    let version = p.origin.bump();
    let r = write(&p, "PATCH", "/api/contacts/42", "w1", &[]).await;
    assert_eq!(r.status, 200);
    let counts = p.get("/api/counts", Some("w1"), None).await;
    assert_eq!(counts.cache(), "MISS");
    assert_eq!(counts.json()["version"], version);
    let contact = p.get("/api/contacts/42", Some("w1"), None).await;
    assert_eq!(contact.cache(), "MISS");
    assert_eq!(cache_of(&p, "/api/contacts/43", "w1").await, "HIT");
    assert_eq!(cache_of(&p, "/api/counts", "w2").await, "HIT");

    // A rule whose target is no cached route still purges its tags.
    warm(&p, "/api/counts", "w1").await;
    let r = write(&p, "POST", "/api/contacts/42/messages", "w1", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(cache_of(&p, "/api/counts", "w1").await, "MISS");
    // The rule is for POST: a PUT to that path purges nothing.
    warm(&p, "/api/counts", "w1").await;
    write(&p, "PUT", "/api/contacts/42/messages", "w1", &[]).await;
    assert_eq!(cache_of(&p, "/api/counts", "w1").await, "HIT");

    let ok = metric(
        &p,
        r#"tagcache_write_invalidations_total{outcome="ok",rule="PATCH /api/contacts/{contact_id}"}"#,
    )
    .await;
    assert_eq!(ok, 1.0);
    let purges = metric(&p, r#"tagcache_purges_total{kind="write",result="ok"}"#).await;
    assert!(purges >= 2.0, "{purges}");
}

/// Writes address the per-user entries of their own user only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_4_per_user_entries_of_the_writer_only() {
    let p = start();
    for user in ["u1", "u2"] {
        p.get("/api/me/prefs", Some("w1"), Some(user)).await;
        let r = p.get("/api/me/prefs", Some("w1"), Some(user)).await;
        assert_eq!(r.cache(), "HIT");
    }
    write(&p, "PUT", "/api/me/prefs", "w1", &[("X-User-ID", "u1")]).await;
    let u1 = p.get("/api/me/prefs", Some("w1"), Some("u1")).await;
    let u2 = p.get("/api/me/prefs", Some("w1"), Some("u2")).await;
    assert_eq!((u1.cache(), u2.cache()), ("MISS", "HIT"));
}

fn redis_routes() -> Options {
    Options {
        routes: ROUTES.to_string(),
        tenant: HEADER_TENANT.to_string(),
        ..Options::default()
    }
}

/// `invalidate:` across instances: with a shared Redis and `sync`
/// consistency, a write through one instance has purged the other's copies
/// (memory and Redis) before its answer reaches the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_tags_reach_every_instance_through_redis() {
    let redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis).extra("purge: { consistency: sync }");
    let a = proxy_with(origin.clone(), &opts, redis_routes());
    let b = proxy_with(origin.clone(), &opts, redis_routes());
    wait_synced(&a).await;
    wait_synced(&b).await;
    warm(&a, "/api/counts", "w1").await;
    warm(&b, "/api/counts", "w1").await;
    warm(&b, "/api/notes/r1", "w1").await;
    let version = origin.bump();
    let r = write(&a, "PATCH", "/api/contacts/1", "w1", &[]).await;
    assert_eq!(r.status, 200);
    let counts = b.get("/api/counts", Some("w1"), None).await;
    assert_eq!(counts.json()["version"], version, "b served the old counts");
    assert_eq!(counts.cache(), "MISS");
    // RFC 9111 §4.4 goes the same way.
    write(&a, "DELETE", "/api/notes/r1", "w1", &[]).await;
    let note = b.get("/api/notes/r1", Some("w1"), None).await;
    assert_eq!(note.json()["version"], version);
    let ok = metric(
        &a,
        r#"tagcache_write_invalidations_total{outcome="ok",rule="PATCH /api/contacts/{contact_id}"}"#,
    )
    .await;
    assert_eq!(ok, 1.0);
}

/// A slow Redis is a miss, never a wait: with Redis stalled, a write's answer
/// comes within about the Redis timeout, its purge applied here (and queued
/// for the others), and counted as `not_shared`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_never_holds_a_write() {
    let mut redis = RedisServer::start();
    let origin = Origin::start();
    let opts = RedisOpts::server(&redis).strict();
    let p = proxy_with(origin, &opts, redis_routes());
    wait_synced(&p).await;
    warm(&p, "/api/counts", "w1").await;
    redis.pause();
    let start = Instant::now();
    let r = write(&p, "PATCH", "/api/contacts/5", "w1", &[]).await;
    let took = start.elapsed();
    redis.resume();
    assert_eq!(r.status, 200);
    assert!(took < Duration::from_secs(2), "the write waited {took:?}");
    let counts = p.get("/api/counts", Some("w1"), None).await;
    assert_ne!(counts.cache(), "HIT", "the purge was not applied here");
    let not_shared = metric(
        &p,
        r#"tagcache_write_invalidations_total{outcome="not_shared",rule="PATCH /api/contacts/{contact_id}"}"#,
    )
    .await;
    assert_eq!(not_shared, 1.0);
}

/// `invalidate:` is checked like routes: every problem, at its line and
/// column, with a hint.
#[test]
fn invalidate_config_errors_have_positions() {
    let yaml = r#"upstream: { address: "127.0.0.1:3000" }
tenant:
  workspace: { header: X-Workspace-ID }
invalidate:
  - match: "PATCH /api/contacts/{contact_id}"
    tags: ["contact:{workspace}:{contact_id}"]
  - match: "PATCH /api/contacts/{id}"
    tags: ["x:{id}"]
  - match: "GET /api/contacts/{id}"
    tags: ["x:{id}"]
  - match: "patch /api/x"
    tags: ["x"]
  - match: "POST /api/boards/{board_id}"
    tags: ["board:{workspace}:{board}", "u:{user}", "q:{query.page}"]
  - match: "DELETE /api/y"
  - tags: ["x"]
"#;
    let err = tagcache::config::load_str(yaml, "w.yaml", &|_| None)
        .expect_err("invalid invalidate rules");
    let lines: Vec<String> = err
        .diagnostics
        .iter()
        .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
        .collect();
    let expect = [
        "7:12: duplicate invalidate rule \"PATCH /api/contacts/{id}\"",
        "9:12: GET does not write",
        "11:12: method \"patch\" must be written \"PATCH\"",
        "14:12: unknown template variable \"{board}\"",
        "14:41: \"{user}\" in invalidate rule",
        "14:53: \"{query.page}\" in invalidate rule",
        "15:5: invalidate rule \"DELETE /api/y\" is missing required key \"tags\"",
        "16:5: invalidate rule #7 is missing required key \"match\"",
    ];
    for want in expect {
        assert!(
            lines.iter().any(|l| l.starts_with(want)),
            "no {want:?} in:\n{}",
            lines.join("\n")
        );
    }
    assert_eq!(lines.len(), expect.len(), "{}", lines.join("\n"));
    assert!(
        lines.iter().all(|l| !l.starts_with("5:")),
        "the first rule is valid"
    );
}

/// With `tenant.jwt`, a write acts as its verified token: it invalidates its
/// own workspace's entries, and a token that does not verify, or a
/// workspace header the token does not allow, invalidates nobody's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_4_with_jwt_a_write_invalidates_as_its_verified_token() {
    use crate::security::{hs256_options, token};
    let p = Proxy::start_with(Options {
        routes: ROUTES.to_string(),
        ..hs256_options("")
    });
    let get = |ws: &'static str| {
        let p = &p;
        async move {
            let r = p
                .client
                .get(p.url("/api/notes/j1"))
                .header("authorization", format!("Bearer {}", token(ws, "alice")))
                .send()
                .await
                .expect("get");
            Resp::from(r).await.cache().to_string()
        }
    };
    let send = |bearer: String, headers: &'static [(&'static str, &'static str)]| {
        let p = &p;
        async move {
            let mut req = p
                .client
                .delete(p.url("/api/notes/j1"))
                .header("authorization", format!("Bearer {bearer}"));
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            assert_eq!(req.send().await.expect("write").status(), 200);
        }
    };
    for ws in ["victim", "mallory"] {
        get(ws).await;
        assert_eq!(get(ws).await, "HIT");
    }
    // Another workspace's token naming the victim: refused, nothing purged.
    send(token("mallory", "m"), &[("x-workspace-id", "victim")]).await;
    send("not-a-token".to_string(), &[("x-workspace-id", "victim")]).await;
    assert_eq!(get("victim").await, "HIT");
    assert_eq!(get("mallory").await, "HIT");
    // The victim's own write.
    send(token("victim", "alice"), &[]).await;
    assert_eq!(get("victim").await, "MISS");
    assert_eq!(get("mallory").await, "HIT");
}
