//! Prometheus metrics: every series exported from start-up, status classes
//! per route, origin errors by kind, evictions as a counter, process and build
//! figures, the token-free `admin.metrics_listen`, and the Grafana dashboard
//! and alert rules in `dist/` checked against a live scrape.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::redis::util::{self as redis_util, RedisOpts, RedisServer};
use crate::util::{free_port, Options, Origin, Proxy, TOKEN};

/// Every sample of a scrape, as `name{labels}` (the text before the value).
fn series(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s.to_string()))
        .collect()
}

/// The value of one series (`name{labels}` exactly as exported).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// Scrapes until `series` reaches `at_least` (a request is counted in
/// Pingora's logging hook, just after its answer is written); returns the
/// last scrape. Fails after 5 s.
async fn scrape_until(p: &Proxy, series: &str, at_least: f64) -> String {
    let start = Instant::now();
    loop {
        let text = p.admin_get("/metrics").await.text;
        if value(&text, series).is_some_and(|v| v >= at_least) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{series} never reached {at_least}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts that `after` has no series that `before` lacked.
fn assert_no_new_series(before: &str, after: &str) {
    let before = series(before);
    let new: Vec<String> = series(after).difference(&before).cloned().collect();
    assert!(
        new.is_empty(),
        "series that did not exist at start-up: {new:#?}"
    );
}

#[tokio::test]
async fn every_series_is_exported_from_start_up_and_traffic_adds_none() {
    let p = Proxy::start_with(Options {
        admin_extra: "  webhook_secret: \"${TAGCACHE_TEST_WEBHOOK_SECRET}\"".into(),
        ..Default::default()
    });
    let start = p.admin_get("/metrics").await.text;
    for zero in [
        r#"tagcache_requests_total{cache_status="HIT",route="item"}"#,
        r#"tagcache_responses_total{code="5xx",route="unmatched"}"#,
        r#"tagcache_origin_responses_total{code="2xx",route="contact_list"}"#,
        r#"tagcache_origin_errors_total{kind="timeout",route="item"}"#,
        r#"tagcache_purges_total{kind="event",result="unauthorized"}"#,
        r#"tagcache_limit_hits_total{limit="workspace-quota-refused"}"#,
        r#"tagcache_errors_total{kind="origin"}"#,
        "tagcache_cache_evictions_total",
    ] {
        assert_eq!(
            value(&start, zero),
            Some(0.0),
            "{zero} at start-up:\n{start}"
        );
    }

    // Hits, misses, bypasses, origin 4xx and 5xx, an unmatched path, a 414,
    // purges of every kind, refused ones too.
    p.get("/item/a", Some("w1"), None).await;
    p.get("/item/a", Some("w1"), None).await;
    p.get("/api/boards/b/contacts?pageSize=999", Some("w1"), None)
        .await;
    let r = p
        .get_with("/status/a", Some("w1"), None, &[("x-origin-status", "404")])
        .await;
    assert_eq!(r.status, 404);
    let r = p
        .get_with("/item/e", Some("w1"), None, &[("x-origin-status", "503")])
        .await;
    assert_eq!(r.status, 503);
    p.get("/nowhere", None, None).await;
    let long = format!("/item/{}", "x".repeat(10_000));
    assert_eq!(p.get(&long, Some("w1"), None).await.status, 414);
    p.purge_tags(&["item:w1:a"], false).await;
    p.admin_post("/purge", r#"{"tags": 1}"#).await;
    p.admin_post("/purge", r#"{"workspace": "w1"}"#).await;
    p.admin_post(
        "/events",
        r#"{"event": "contact:created", "workspace_id": "w1"}"#,
    )
    .await;
    p.get("/item/a", Some("w1"), None).await;

    let end = scrape_until(
        &p,
        r#"tagcache_responses_total{code="2xx",route="item"}"#,
        3.0,
    )
    .await;
    assert_no_new_series(&start, &end);
    for (series, n) in [
        (
            r#"tagcache_requests_total{cache_status="HIT",route="item"}"#,
            1.0,
        ),
        (
            r#"tagcache_requests_total{cache_status="MISS",route="item"}"#,
            3.0,
        ),
        (r#"tagcache_responses_total{code="5xx",route="item"}"#, 1.0),
        (
            r#"tagcache_origin_responses_total{code="2xx",route="item"}"#,
            2.0,
        ),
        (
            r#"tagcache_origin_responses_total{code="5xx",route="item"}"#,
            1.0,
        ),
        (
            r#"tagcache_responses_total{code="4xx",route="statuses"}"#,
            1.0,
        ),
        (
            r#"tagcache_origin_responses_total{code="4xx",route="statuses"}"#,
            1.0,
        ),
        (
            r#"tagcache_responses_total{code="2xx",route="contact_list"}"#,
            1.0,
        ),
        (
            r#"tagcache_origin_responses_total{code="2xx",route="unmatched"}"#,
            1.0,
        ),
        // The 414 is answered before any route is matched.
        (
            r#"tagcache_responses_total{code="4xx",route="unmatched"}"#,
            1.0,
        ),
        (r#"tagcache_limit_hits_total{limit="uri-too-long"}"#, 1.0),
        (r#"tagcache_purges_total{kind="tag",result="ok"}"#, 1.0),
        (r#"tagcache_purges_total{kind="tag",result="invalid"}"#, 1.0),
        (
            r#"tagcache_purges_total{kind="workspace",result="ok"}"#,
            1.0,
        ),
        // The webhook secret is set and the event is not signed.
        (
            r#"tagcache_purges_total{kind="event",result="unauthorized"}"#,
            1.0,
        ),
        (r#"tagcache_purged_on_lookup_total{kind="hard"}"#, 1.0),
        (
            r#"tagcache_origin_errors_total{kind="connect",route="item"}"#,
            0.0,
        ),
    ] {
        assert_eq!(value(&end, series), Some(n), "{series}:\n{end}");
    }
}

#[tokio::test]
async fn origin_failures_count_by_kind_and_as_5xx_answers() {
    // Nothing listens on port 1: the connection is refused.
    let refused = Proxy::start_with(Options {
        upstream: Some("127.0.0.1:1".into()),
        ..Default::default()
    });
    assert_eq!(refused.get("/item/c", Some("w1"), None).await.status, 502);
    let m = scrape_until(
        &refused,
        r#"tagcache_origin_errors_total{kind="connect",route="item"}"#,
        1.0,
    )
    .await;
    assert_eq!(
        value(&m, r#"tagcache_responses_total{code="5xx",route="item"}"#),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        value(&m, r#"tagcache_errors_total{kind="origin"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            r#"tagcache_origin_responses_total{code="5xx",route="item"}"#
        ),
        Some(0.0),
        "no answer came from the origin"
    );

    let slow = Proxy::start_with(Options {
        upstream_extra: "  read_timeout: 200ms".into(),
        ..Default::default()
    });
    let r = slow
        .get_with(
            "/item/t",
            Some("w1"),
            None,
            &[("x-origin-delay-ms", "1000")],
        )
        .await;
    assert_eq!(r.status, 504);
    let m = scrape_until(
        &slow,
        r#"tagcache_origin_errors_total{kind="timeout",route="item"}"#,
        1.0,
    )
    .await;
    assert_eq!(
        value(&m, r#"tagcache_responses_total{code="5xx",route="item"}"#),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test]
async fn evictions_are_a_counter_that_follows_the_store() {
    let p = Proxy::start_with(Options {
        max_size: "1MiB".into(),
        ..Default::default()
    });
    for i in 0..120 {
        p.get_with(
            &format!("/item/ev{i}"),
            Some("w1"),
            None,
            &[("x-origin-body-size", "20000")],
        )
        .await;
    }
    let stats = p.stats().await;
    let evicted = stats["evictions"].as_u64().unwrap();
    assert!(evicted > 0, "{stats}");
    let m = p.admin_get("/metrics").await.text;
    assert!(m.contains("# TYPE tagcache_cache_evictions_total counter"));
    let counted = value(&m, "tagcache_cache_evictions_total").unwrap();
    assert!(
        counted >= evicted as f64,
        "{counted} counted, /stats said {evicted} before"
    );
    assert_eq!(value(&m, "tagcache_cache_max_bytes"), Some(1048576.0));
    // A second scrape never counts the same evictions twice.
    let again = p.admin_get("/metrics").await.text;
    let now = p.stats().await["evictions"].as_u64().unwrap();
    assert_eq!(
        value(&again, "tagcache_cache_evictions_total"),
        Some(now as f64)
    );
}

#[tokio::test]
async fn build_and_process_figures_are_exported() {
    let p = Proxy::start();
    let m = p.admin_get("/metrics").await.text;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let info = format!(
        "tagcache_build_info{{profile=\"{profile}\",version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(value(&m, &info), Some(1.0), "{m}");
    for positive in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            value(&m, positive).is_some_and(|v| v > 0.0),
            "{positive}:\n{m}"
        );
    }
    assert!(value(&m, "process_cpu_seconds_total").is_some(), "{m}");
}

#[tokio::test]
async fn metrics_listen_serves_metrics_without_the_token_and_nothing_else() {
    let port = free_port();
    let p = Proxy::start_with(Options {
        admin_extra: format!("  metrics_listen: \"127.0.0.1:{port}\""),
        ..Default::default()
    });
    crate::util::wait_for_port(port);
    p.get("/item/ml", Some("w1"), None).await;
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let start = Instant::now();
    loop {
        let r = p.client.get(url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        let text = r.text().await.unwrap();
        if value(
            &text,
            r#"tagcache_requests_total{cache_status="MISS",route="item"}"#,
        ) == Some(1.0)
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{text}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for path in ["/stats", "/health", "/purge", "/"] {
        let r = p.client.get(url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = p
        .client
        .post(url("/purge"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(r#"{"tags":["item:w1:ml"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "purges only on the admin listener");
    let r = p.client.post(url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    // The admin listener still wants its token for /metrics.
    let r = p.client.get(p.admin_url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[test]
fn metrics_listen_must_be_an_address_of_its_own() {
    let check = |metrics_listen: &str, expected: &[&str]| {
        let yaml = format!(
            "listen: \"0.0.0.0:8080\"\nupstream: {{ address: \"127.0.0.1:3000\" }}\n\
             admin:\n  listen: \"127.0.0.1:9090\"\n  metrics_listen: \"{metrics_listen}\"\n"
        );
        let result = tagcache::config::load_str(&yaml, "m.yaml", &|_| None);
        if expected.is_empty() {
            let loaded = result.unwrap_or_else(|e| panic!("{metrics_listen}: {e}"));
            assert_eq!(
                loaded.config.admin.metrics_listen,
                Some(metrics_listen.parse().unwrap())
            );
            return;
        }
        let text = match result {
            Ok(_) => panic!("{metrics_listen} accepted"),
            Err(e) => e.to_string(),
        };
        for part in expected {
            assert!(
                text.contains(part),
                "{metrics_listen}: {part:?} not in\n{text}"
            );
        }
    };
    check("0.0.0.0:9091", &[]);
    check("127.0.0.1:9191", &[]);
    check(
        "127.0.0.1:8080",
        &["m.yaml:5:", "same address as listen", "use another port"],
    );
    check(
        "0.0.0.0:9090",
        &["m.yaml:5:", "same address as admin.listen"],
    );
    check(
        "9091",
        &["invalid admin.metrics_listen address", "0.0.0.0:9091"],
    );
}

/// Every metric a file uses: words starting with `tagcache_` or `process_`
/// (recording rules, `tagcache:...`, are not metrics), each with the exact
/// label matchers it was written with (`label="value"`). An alternation of
/// plain values (`label=~"a|b"`) gives one use per value.
fn used_series(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(word) {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !word(c)).unwrap_or(tail.len());
        let name = &tail[..end];
        rest = &tail[end..];
        if !(name.starts_with("tagcache_") || name.starts_with("process_")) {
            continue;
        }
        let mut exact = Vec::new();
        let mut alternatives = Vec::new();
        if let Some((body, _)) = rest.strip_prefix('{').and_then(|b| b.split_once('}')) {
            for m in body.split(',') {
                let Some((label, v)) = m.split_once('=') else {
                    continue;
                };
                let label = label.trim();
                if label.ends_with('!') {
                    continue;
                }
                match v.strip_prefix('~') {
                    Some(v) => {
                        let values: Vec<&str> = v.trim().trim_matches('"').split('|').collect();
                        if values.iter().all(|v| plain(v)) {
                            alternatives.push((label, values));
                        }
                    }
                    None => {
                        let v = v.trim().trim_matches('"');
                        if plain(v) {
                            exact.push((label.to_string(), v.to_string()));
                        }
                    }
                }
            }
        }
        if alternatives.is_empty() {
            out.push((name.to_string(), exact));
            continue;
        }
        for (label, values) in alternatives {
            for v in values {
                let mut matchers = exact.clone();
                matchers.push((label.to_string(), v.to_string()));
                out.push((name.to_string(), matchers));
            }
        }
    }
    out
}

/// Every string of a JSON document, one per line.
fn json_strings(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| json_strings(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| json_strings(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn dashboard_and_alerts_use_only_exported_series() {
    let redis = RedisServer::start();
    let opts = RedisOpts {
        prefix: "metrics".into(),
        ..RedisOpts::server(&redis)
    };
    let p = redis_util::proxy(Origin::start(), &opts);
    redis_util::wait_synced(&p).await;
    let start = p.admin_get("/metrics").await.text;

    // Redis traffic (L2 miss, write, hit, a shared purge) adds no series either.
    p.get("/item/r", Some("w1"), None).await;
    p.get("/item/r", Some("w1"), None).await;
    p.purge_tags(&["item:w1:r"], false).await;
    let end = scrape_until(&p, r#"tagcache_purge_fanout_total{result="ok"}"#, 1.0).await;
    assert_no_new_series(&start, &end);
    assert_eq!(
        value(&end, r#"tagcache_l2_lookups_total{result="miss"}"#),
        Some(1.0),
        "{end}"
    );

    let root = env!("CARGO_MANIFEST_DIR");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/dist/grafana/tagcache.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    assert_eq!(
        dashboard["__inputs"][0]["name"], "DS_PROMETHEUS",
        "the dashboard asks for its data source on import"
    );
    let route = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "route")
        .expect("a route variable");
    assert_eq!(
        route["query"]["query"],
        "label_values(tagcache_responses_total, route)"
    );
    let mut dashboard_text = String::new();
    json_strings(&dashboard, &mut dashboard_text);
    let alerts = std::fs::read_to_string(format!("{root}/dist/prometheus/alerts.yml")).unwrap();

    let exported = series(&end);
    for (file, text) in [
        ("dist/grafana/tagcache.json", dashboard_text.as_str()),
        ("dist/prometheus/alerts.yml", alerts.as_str()),
    ] {
        let used = used_series(text);
        assert!(used.len() > 10, "{file}: {used:?}");
        for (name, matchers) in used {
            let found = exported.iter().any(|s| {
                let Some(labels) = s.strip_prefix(name.as_str()) else {
                    return false;
                };
                (labels.is_empty() || labels.starts_with('{'))
                    && matchers
                        .iter()
                        .all(|(l, v)| labels.contains(&format!("{l}=\"{v}\"")))
            });
            assert!(
                found,
                "{file} uses {name} {matchers:?}, which /metrics does not export"
            );
        }
    }
}

#[test]
fn used_series_finds_names_and_plain_matchers() {
    let used = used_series(
        r#"sum(rate(tagcache_requests_total{job=~"$job",cache_status=~"HIT|STALE"}[5m]))
           / tagcache:hit_ratio:rate5m + process_open_fds and tagcache_x{code!="5xx",kind="a"}"#,
    );
    let pairs = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        used,
        vec![
            (
                "tagcache_requests_total".to_string(),
                pairs(&[("cache_status", "HIT")])
            ),
            (
                "tagcache_requests_total".to_string(),
                pairs(&[("cache_status", "STALE")])
            ),
            ("process_open_fds".to_string(), vec![]),
            ("tagcache_x".to_string(), pairs(&[("kind", "a")])),
        ]
    );
}
