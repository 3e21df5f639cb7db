//! `GET /stats/workspaces`: per-workspace hits, misses, bypasses, stores and
//! bytes held, the busiest workspaces kept in bounded memory however many
//! send requests, and the opt-in Prometheus series.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Options, Proxy};

const LIST: &str = "/api/boards/b1/contacts";

/// `/stats/workspaces?{query}` once `workspace` has counted `requests`
/// (requests are counted just after their answer is written). Fails after 5 s.
async fn figures_after(p: &Proxy, query: &str, workspace: &str, requests: u64) -> Value {
    let start = Instant::now();
    loop {
        let r = p.admin_get(&format!("/stats/workspaces?{query}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        let counted = v["workspaces"]
            .as_array()
            .and_then(|l| l.iter().find(|w| w["workspace"] == workspace))
            .and_then(|w| w["requests"].as_u64())
            .unwrap_or(0);
        if counted >= requests {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{workspace} never reached {requests} requests: {v}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn find<'a>(v: &'a Value, workspace: &str) -> &'a Value {
    v["workspaces"]
        .as_array()
        .and_then(|l| l.iter().find(|w| w["workspace"] == workspace))
        .unwrap_or_else(|| panic!("{workspace} not listed: {v}"))
}

#[tokio::test]
async fn figures_count_each_workspace_and_what_it_holds() {
    let p = Proxy::start_with(Options {
        memory_extra: "    per_workspace_max: 10MiB".into(),
        ..Options::default()
    });
    crate::assert_cache!(p, LIST, Some("w1"), "MISS");
    crate::assert_cache!(p, LIST, Some("w1"), "HIT");
    crate::assert_cache!(p, LIST, Some("w1"), "HIT");
    crate::assert_cache!(p, LIST, Some("w2"), "MISS");
    let bypass = format!("{LIST}?pageSize=500");
    crate::assert_cache!(p, &bypass, Some("w2"), "BYPASS");
    // Requests that match no route are not a workspace's cache traffic.
    p.get("/not/cached", Some("w3"), None).await;

    figures_after(&p, "top=20", "w2", 2).await;
    let v = figures_after(&p, "top=20", "w1", 3).await;
    let w1 = find(&v, "w1");
    assert_eq!(
        (&w1["hits"], &w1["misses"], &w1["bypasses"], &w1["stores"]),
        (
            &Value::from(2),
            &Value::from(1),
            &Value::from(0),
            &Value::from(1)
        ),
        "{v}"
    );
    let rate = w1["hit_rate"].as_f64().unwrap();
    assert!((rate - 2.0 / 3.0).abs() < 1e-9, "{rate}");
    assert_eq!(w1["entries"], 1, "{v}");
    assert!(w1["bytes"].as_u64().unwrap() > 0, "{v}");
    let w2 = find(&v, "w2");
    assert_eq!(
        (&w2["hits"], &w2["misses"], &w2["bypasses"], &w2["stores"]),
        (
            &Value::from(0),
            &Value::from(1),
            &Value::from(1),
            &Value::from(1)
        ),
        "{v}"
    );
    // Busiest first; the unrouted workspace is not there.
    assert_eq!(v["workspaces"][0]["workspace"], "w1");
    assert_eq!(v["tracked"], 2, "{v}");
    let top1 = p.admin_get("/stats/workspaces?top=1").await.json();
    assert_eq!(top1["workspaces"].as_array().map(Vec::len), Some(1));

    for bad in ["top=0", "top=abc", "top=100000"] {
        let r = p.admin_get(&format!("/stats/workspaces?{bad}")).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
        assert_eq!(r.json()["field"], "top");
    }
}

#[tokio::test]
async fn bytes_and_entries_are_null_without_per_workspace_accounting() {
    let p = Proxy::start();
    p.get(LIST, Some("w1"), None).await;
    let v = figures_after(&p, "", "w1", 1).await;
    let w1 = find(&v, "w1");
    assert!(w1["bytes"].is_null() && w1["entries"].is_null(), "{v}");
    assert_eq!(w1["stores"], 1);
}

#[tokio::test]
async fn the_busiest_workspaces_stay_listed_among_thousands_and_memory_stays_bounded() {
    let p = std::sync::Arc::new(Proxy::start());
    // 1,200 workspaces seen once (more than the sketch holds), and five
    // seen 30 times each, interleaved.
    let light: Vec<String> = (0..1200).map(|i| format!("light-{i}")).collect();
    let heavy: Vec<String> = (0..5).map(|i| format!("heavy-{i}")).collect();
    let mut order: Vec<String> = Vec::new();
    for (i, w) in light.iter().enumerate() {
        order.push(w.clone());
        if i % 40 == 0 {
            order.extend(heavy.iter().cloned());
        }
    }
    let sent = order.len();
    let chunks: Vec<Vec<String>> = order.chunks(sent.div_ceil(8)).map(<[_]>::to_vec).collect();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let p = p.clone();
            tokio::spawn(async move {
                for w in chunk {
                    let r = p.get(LIST, Some(&w), None).await;
                    assert_eq!(r.status, 200);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(sent, 1200 + 5 * 30);
    // Every request counted, then the five busiest are the heavy ones.
    let start = Instant::now();
    let v = loop {
        let v = p.admin_get("/stats/workspaces?top=5").await.json();
        let counted: u64 = heavy
            .iter()
            .map(|h| {
                v["workspaces"]
                    .as_array()
                    .and_then(|l| l.iter().find(|w| w["workspace"] == h.as_str()))
                    .and_then(|w| w["requests"].as_u64())
                    .unwrap_or(0)
            })
            .sum();
        if counted >= 150 || start.elapsed() > Duration::from_secs(5) {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut top: Vec<&str> = v["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["workspace"].as_str())
        .collect();
    top.sort_unstable();
    assert_eq!(
        top,
        heavy.iter().map(String::as_str).collect::<Vec<_>>(),
        "{v}"
    );
    for h in &heavy {
        let w = find(&v, h);
        // Each heavy workspace's 30 requests, counted exactly: a fill (two
        // when its first requests raced), then hits.
        let (misses, hits) = (w["misses"].as_u64().unwrap(), w["hits"].as_u64().unwrap());
        assert_eq!(misses + hits, 30, "{v}");
        assert!(misses >= 1 && hits >= 20, "{v}");
    }
    let tracked = v["tracked"].as_u64().unwrap();
    let capacity = v["capacity"].as_u64().unwrap();
    assert!(tracked <= capacity && capacity <= 1024, "{v}");
    let all = p.admin_get("/stats/workspaces?top=1024").await.json();
    assert!(all["workspaces"].as_array().unwrap().len() as u64 <= capacity);
}

#[tokio::test]
async fn prometheus_series_per_workspace_only_when_switched_on() {
    let off = Proxy::start();
    off.get(LIST, Some("w1"), None).await;
    figures_after(&off, "", "w1", 1).await;
    let text = off.admin_get("/metrics").await.text;
    assert!(!text.contains("tagcache_workspace_"), "{text}");

    let on = Proxy::start_with(Options {
        extra: "metrics:\n  workspace_labels: 2".into(),
        ..Options::default()
    });
    for (w, n) in [("w1", 3), ("w2", 2), ("w3", 1)] {
        for _ in 0..n {
            on.get(LIST, Some(w), None).await;
        }
    }
    figures_after(&on, "", "w3", 1).await;
    figures_after(&on, "", "w1", 3).await;
    let text = on.admin_get("/metrics").await.text;
    for line in [
        "tagcache_workspace_requests_total{cache_status=\"HIT\",workspace=\"w1\"} 2",
        "tagcache_workspace_requests_total{cache_status=\"MISS\",workspace=\"w1\"} 1",
        "tagcache_workspace_requests_total{cache_status=\"HIT\",workspace=\"w2\"} 1",
        "tagcache_workspace_stores_total{workspace=\"w2\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    assert!(!text.contains("workspace=\"w3\""), "{text}");
}
