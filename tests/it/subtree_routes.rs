//! Whole-site routes: a `match` ending in `{*rest}` covers a subtree, and
//! `key.query: all` keys every query parameter, sorted.

use crate::util::{raw_get, Options, Proxy};

const ROUTES: &str = r#"
debug_headers: true
routes:
  - name: assets
    match: "GET /static/{*rest}"
    ttl: 300s
    key: { query: [v] }
    tags: ["assets"]
  - name: site
    match: "GET /site/{site_id}/{*path}"
    ttl: 300s
    key: { query: all, defaults: { lang: en } }
    tags: ["site:{site_id}", "lang:{query.lang}"]
"#;

fn start() -> Proxy {
    Proxy::start_with(Options {
        routes: ROUTES.to_string(),
        tenant: String::new(),
        ..Options::default()
    })
}

async fn status(p: &Proxy, path: &str) -> String {
    p.get(path, None, None).await.cache().to_string()
}

/// Every path under the prefix is cached under its own key, which holds the
/// whole path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subtree_route_caches_every_path_under_it() {
    let p = start();
    for path in [
        "/static/app.js",
        "/static/v1/app.js",
        "/static/v1/css/site.css",
    ] {
        assert_eq!(status(&p, path).await, "MISS", "{path}");
        let hit = p.get(path, None, None).await;
        assert_eq!(hit.cache(), "HIT", "{path}");
        assert_eq!(hit.json()["path"], path);
        let key = hit.header("x-cache-key").unwrap_or_default().to_string();
        let rest = path.trim_start_matches("/static/");
        assert!(key.contains(&format!("|{rest}")), "{key} lacks {rest}");
    }
    assert_eq!(p.origin.hits("/static/v1/app.js"), 1);
    // Percent-encoding of plain characters is the same resource.
    assert_eq!(status(&p, "/static/v%31/app.js").await, "HIT");
    // The prefix alone is not under it, and the allowlist still holds.
    assert_eq!(status(&p, "/static").await, "BYPASS");
    assert_eq!(status(&p, "/static/app.js?v=2").await, "MISS");
    assert_eq!(status(&p, "/static/app.js?v=2").await, "HIT");
    assert_eq!(status(&p, "/static/app.js?utm=1").await, "BYPASS");
    // Tags of the route apply to the whole subtree.
    p.purge_tags(&["assets"], false).await;
    assert_eq!(status(&p, "/static/v1/css/site.css").await, "MISS");
}

/// route.rs's safety rules hold for every segment of the rest: an ambiguous
/// spelling matches nothing, so it is proxied untouched and never cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_paths_under_a_subtree_match_nothing() {
    let p = start();
    for path in [
        "/static/v1/%2e%2e/secret",
        "/static/v1//app.js",
        "/static/a%2Fb.js",
        "/static/a%5Cb.js",
        "/static/a;x=1/b.js",
        "/static/v1/%C0%AE%C0%AE/a.js",
        "/static/a%252e.js",
        "/static/v1/",
        "/static/v1/./app.js",
        "/static/v1/../app.js",
    ] {
        // Sent as written: an HTTP client would normalize some of them.
        for _ in 0..2 {
            let (_, head) = raw_get(p.port, path, &[]);
            assert!(
                head.contains("x-cache-status: bypass"),
                "{path} was looked up:\n{head}"
            );
        }
    }
    // The same paths spelled plainly are cached.
    let (_, head) = raw_get(p.port, "/static/v1/app.js", &[]);
    assert!(head.contains("x-cache-status: miss"), "{head}");
}

/// `query: all`: every parameter is in the key, sorted by name, so the order
/// they are sent in does not matter and any other value is another entry;
/// defaults and templates over any parameter work; a repeated parameter
/// cannot be keyed safely and bypasses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_all_keys_every_parameter_sorted() {
    let p = start();
    assert_eq!(status(&p, "/site/s1/docs/a.html?b=2&a=1").await, "MISS");
    assert_eq!(status(&p, "/site/s1/docs/a.html?a=1&b=2").await, "HIT");
    assert_eq!(
        status(&p, "/site/s1/docs/a.html?a=1&b=2&lang=en").await,
        "HIT"
    );
    assert_eq!(status(&p, "/site/s1/docs/a.html?a=1&b=3").await, "MISS");
    assert_eq!(status(&p, "/site/s1/docs/a.html?a=1").await, "MISS");
    assert_eq!(status(&p, "/site/s2/docs/a.html?a=1").await, "MISS");
    assert_eq!(status(&p, "/site/s1/docs/a.html?a=1&a=2").await, "BYPASS");
    let key = p
        .get("/site/s1/docs/a.html?b=2&a=1", None, None)
        .await
        .header("x-cache-key")
        .unwrap_or_default()
        .to_string();
    assert!(
        key.ends_with("|s1|docs/a.html|a|1|b|2|lang|en"),
        "{key}: not the whole path and every parameter, sorted"
    );
    // `{query.lang}` and the path parameter render for any parameter.
    p.purge_tags(&["lang:en"], false).await;
    assert_eq!(status(&p, "/site/s1/docs/a.html?a=1&b=2").await, "MISS");
    assert_eq!(status(&p, "/site/s2/docs/a.html?a=1&lang=fr").await, "MISS");
    p.purge_tags(&["site:s2"], false).await;
    assert_eq!(status(&p, "/site/s1/docs/a.html?a=1&b=2").await, "HIT");
    assert_eq!(status(&p, "/site/s2/docs/a.html?a=1&lang=fr").await, "MISS");
}

/// RFC 9111 §4.4 on a subtree: a write to a path under it invalidates that
/// path's entry only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_4_a_write_under_a_subtree_invalidates_its_path() {
    let p = start();
    for path in ["/static/v1/a.js", "/static/v1/b.js"] {
        p.get(path, None, None).await;
        assert_eq!(status(&p, path).await, "HIT");
    }
    let r = p
        .client
        .put(p.url("/static/v1/a.js"))
        .body("new")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 200);
    assert_eq!(status(&p, "/static/v1/a.js").await, "MISS");
    assert_eq!(status(&p, "/static/v1/b.js").await, "HIT");
}

/// Config: `{*rest}` only last, `query:` a list or `all`.
#[test]
fn subtree_config_errors_have_positions() {
    let yaml = r#"upstream: { address: "127.0.0.1:3000" }
routes:
  - name: a
    match: "GET /static/{*rest}/x"
    ttl: 60s
  - name: b
    match: "GET /b/{*rest}"
    ttl: 60s
    key: { query: everything }
  - name: c
    match: "GET /c/{*rest}"
    ttl: 60s
    tags: ["c:{rest}"]
"#;
    let err = tagcache::config::load_str(yaml, "s.yaml", &|_| None).expect_err("invalid");
    let lines: Vec<String> = err
        .diagnostics
        .iter()
        .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
        .collect();
    let expect = [
        "4:12: \"{*...}\" must be the last segment",
        "9:19: key.query of route \"b\" is \"everything\"",
        "13:12: unknown template variable \"{rest}\"",
    ];
    for want in expect {
        assert!(
            lines.iter().any(|l| l.starts_with(want)),
            "no {want:?} in:\n{}",
            lines.join("\n")
        );
    }
    assert_eq!(lines.len(), expect.len(), "{}", lines.join("\n"));
}
