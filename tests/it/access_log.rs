//! The access log: one line per request with what an operator needs to
//! follow it (request id, route, workspace, cache status, layer, status,
//! bytes, times), JSON or text, to a file that can be rotated; and the
//! request id sent to the origin and returned.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::util::{Options, Proxy};

fn log_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tagcache-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

fn proxy(log: &str) -> Proxy {
    Proxy::start_with(Options {
        extra: log.to_string(),
        ..Options::default()
    })
}

/// The file's lines once it has at least `n` (the writer flushes within 200 ms).
fn lines(path: &Path, n: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{} lines: {text}",
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn json_lines_carry_what_an_operator_follows_a_request_by() {
    let path = log_path("json.log");
    let p = proxy(&format!(
        "log:\n  access:\n    path: \"{}\"\n",
        path.display()
    ));
    let miss = p
        .get_with(
            "/lenient/log1?page=2",
            Some("w1"),
            None,
            &[("x-request-id", "req-abc.1")],
        )
        .await;
    assert_eq!(miss.header("x-request-id"), Some("req-abc.1"));
    let seen = p.origin.last_headers("/lenient/log1");
    assert!(
        seen.iter()
            .any(|(k, v)| k == "x-request-id" && v == "req-abc.1"),
        "{seen:?}"
    );
    let hit = p.get("/lenient/log1?page=2", Some("w1"), None).await;
    let generated = hit
        .header("x-request-id")
        .expect("an id is generated")
        .to_string();
    assert_ne!(generated, "req-abc.1");
    p.get("/uncached/thing", Some("w1"), None).await;

    let lines = lines(&path, 3);
    let v: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let miss = v
        .iter()
        .find(|l| l["request_id"] == "req-abc.1")
        .expect("miss line");
    assert_eq!(miss["method"], "GET");
    assert_eq!(miss["path"], "/lenient/log1?page=2");
    assert_eq!(miss["route"], "ignore_unknown");
    assert_eq!(miss["workspace"], "w1");
    assert_eq!(miss["cache_status"], "MISS");
    assert_eq!(miss["layer"], "ORIGIN");
    assert_eq!(miss["status"], 200);
    assert!(miss["bytes"].as_u64().unwrap() > 10);
    assert!(miss["origin_ms"].as_f64().is_some());
    assert!(miss["duration_ms"].as_f64().unwrap() >= miss["origin_ms"].as_f64().unwrap());
    assert!(miss["time"].as_str().unwrap().ends_with('Z'));
    let hit = v
        .iter()
        .find(|l| l["request_id"] == generated.as_str())
        .expect("hit line");
    assert_eq!(hit["cache_status"], "HIT");
    assert_eq!(hit["layer"], "MEMORY");
    assert!(hit["origin_ms"].is_null());
    let other = v
        .iter()
        .find(|l| l["path"] == "/uncached/thing")
        .expect("bypass line");
    assert_eq!(other["cache_status"], "BYPASS");
    assert!(other["route"].is_null());
}

#[tokio::test]
async fn text_lines_can_hash_identities_and_drop_the_query() {
    let path = log_path("text.log");
    let p = proxy(&format!(
        "log:\n  hash_identities: true\n  access:\n    format: text\n    query: false\n    path: \"{}\"\n",
        path.display()
    ));
    p.get(
        "/api/boards/b1/contacts?filter=assigned_to_me&search=secret",
        Some("w1"),
        Some("u7"),
    )
    .await;
    let line = lines(&path, 1).remove(0);
    assert!(
        line.contains(" GET /api/boards/b1/contacts 200 MISS ORIGIN route=contact_list "),
        "{line}"
    );
    assert!(!line.contains("secret"), "{line}");
    assert!(!line.contains("w1") && !line.contains("u7"), "{line}");
    assert!(
        line.contains(&format!("workspace={}", hashed("w1"))),
        "{line}"
    );
    assert!(line.contains(&format!("user={}", hashed("u7"))), "{line}");
}

/// An id as `hash_identities` logs it: the first 16 hex digits of its SHA-256.
fn hashed(id: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(id.as_bytes())[..8])
}

#[tokio::test]
async fn the_file_is_reopened_after_logrotate_moves_it_and_rotated_by_size() {
    let path = log_path("rotate.log");
    let p = proxy(&format!(
        "log:\n  access:\n    path: \"{}\"\n",
        path.display()
    ));
    p.get("/item/rot1", Some("w1"), None).await;
    lines(&path, 1);
    let moved = path.with_extension("moved");
    std::fs::rename(&path, &moved).unwrap();
    p.running.as_ref().unwrap().cache.reopen_logs();
    // The reopen happens in the writer; give it its wake-up.
    std::thread::sleep(Duration::from_millis(100));
    p.get("/item/rot2", Some("w1"), None).await;
    let fresh = lines(&path, 1);
    assert!(fresh[0].contains("/item/rot2"), "{fresh:?}");
    assert_eq!(lines(&moved, 1).len(), 1);

    let sized = log_path("sized.log");
    let q = proxy(&format!(
        "log:\n  access:\n    path: \"{}\"\n    max_size: 1KiB\n",
        sized.display()
    ));
    for i in 0..12 {
        q.get(&format!("/item/size{i}"), Some("w1"), None).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut first = sized.clone().into_os_string();
    first.push(".1");
    let start = Instant::now();
    while !Path::new(&first).exists() {
        assert!(start.elapsed() < Duration::from_secs(5), "never rotated");
        std::thread::sleep(Duration::from_millis(20));
    }
    let kept = std::fs::metadata(&first).unwrap().len();
    assert!(kept >= 1024, "{kept}");
}

#[tokio::test]
async fn a_log_level_that_does_not_parse_is_a_config_error() {
    let r = tagcache::config::load_str(
        "upstream: { address: \"127.0.0.1:1\" }\nlog:\n  level: \"info,[[\"\n  access: { format: xml }\n",
        "t.yaml",
        &|_| None,
    );
    let e = r.expect_err("refused").to_string();
    assert!(e.contains("t.yaml:3:"), "{e}");
    assert!(e.contains("t.yaml:4:"), "{e}");
}

#[tokio::test]
async fn every_purge_and_event_leaves_a_purge_log_line() {
    let p = Proxy::start();
    let r = p
        .admin_post(
            "/purge",
            r#"{"tags": ["board:wlog:purge-line"], "workspaces": ["wlog2"]}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    let r = p
        .admin_post(
            "/events",
            r#"{"event": "contact:moved", "workspace_id": "wlog3", "board_id": "b9"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let logs = crate::util::captured_logs();
    let line = logs
        .lines()
        .find(|l| l.contains("board:wlog:purge-line"))
        .expect("a purge line");
    for part in [
        "tagcache::purge",
        "who=\"admin-token\"",
        "kind=\"mixed\"",
        "wlog2",
        "named=2",
        "result=\"ok\"",
    ] {
        assert!(line.contains(part), "{part} in {line}");
    }
    let event = logs
        .lines()
        .find(|l| l.contains("board:wlog3:b9"))
        .expect("an event line");
    assert!(
        event.contains("kind=\"event\"") && event.contains("counts:wlog3"),
        "{event}"
    );
    assert!(
        !logs.contains(crate::util::TOKEN),
        "the token is never logged"
    );
}
