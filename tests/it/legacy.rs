//! The backend's older purge body with its optional fields: the fewer
//! fields, the wider the purge (`purge.legacy_tags` rules, most specific
//! template first), and config errors for rules that cannot work.

use crate::util::{Options, Proxy, BASE_ROUTES};

const LEGACY: &str = r#"
purge:
  legacy_tags:
    - - "board-filter:{workspace_id}:{board_id}:{filter}"
      - "filter:{workspace_id}:{filter}"
      - "board:{workspace_id}:{board_id}"
      - "lists:{workspace_id}"
"#;

fn start() -> Proxy {
    // The list route of the base config, with the tags the rule above names.
    let routes = BASE_ROUTES.replace(
        "      - \"filter:{workspace}:{query.filter}\"\n",
        "      - \"filter:{workspace}:{query.filter}\"\n      - \"board-filter:{workspace}:{board_id}:{query.filter}\"\n      - \"lists:{workspace}\"\n",
    );
    assert_ne!(routes, BASE_ROUTES, "the list route's tags moved");
    Proxy::start_with(Options {
        routes,
        extra: LEGACY.to_string(),
        ..Options::default()
    })
}

/// Lists of workspace w1 (two boards, two filters), one of w2, and counts.
const LISTS: [(&str, &str); 6] = [
    ("/api/boards/b1/contacts", "w1"),
    ("/api/boards/b1/contacts?filter=open", "w1"),
    ("/api/boards/b2/contacts", "w1"),
    ("/api/boards/b2/contacts?filter=open", "w1"),
    ("/api/boards/b1/contacts", "w2"),
    ("/api/cache-settings/workspace/w1/counts", "w1"),
];

async fn fill(p: &Proxy) {
    for (path, ws) in LISTS {
        p.get(path, Some(ws), None).await;
        assert_eq!(p.get(path, Some(ws), None).await.cache(), "HIT", "{path}");
    }
}

/// Which of [`LISTS`] a legacy body purges.
async fn purged_by(body: &str) -> Vec<&'static str> {
    let p = start();
    fill(&p).await;
    let r = p.admin_post("/purge/legacy", body).await;
    assert_eq!(r.status, 200, "{body}: {}", r.text);
    let mut out = Vec::new();
    for (path, ws) in LISTS {
        if p.get(path, Some(ws), None).await.cache() == "MISS" {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn workspace_alone_purges_every_list_of_the_workspace() {
    assert_eq!(
        purged_by(r#"{"workspace_id": "w1"}"#).await,
        [
            "/api/boards/b1/contacts",
            "/api/boards/b1/contacts?filter=open",
            "/api/boards/b2/contacts",
            "/api/boards/b2/contacts?filter=open",
        ]
    );
}

#[tokio::test]
async fn a_board_purges_that_boards_lists() {
    assert_eq!(
        purged_by(r#"{"workspace_id": "w1", "board_id": "b1"}"#).await,
        [
            "/api/boards/b1/contacts",
            "/api/boards/b1/contacts?filter=open"
        ]
    );
}

#[tokio::test]
async fn a_filter_purges_that_filters_lists() {
    assert_eq!(
        purged_by(r#"{"workspace_id": "w1", "filter": "open"}"#).await,
        [
            "/api/boards/b1/contacts?filter=open",
            "/api/boards/b2/contacts?filter=open"
        ]
    );
    assert_eq!(
        purged_by(r#"{"workspace_id": "w1", "board_id": "b2", "filter": "open"}"#).await,
        ["/api/boards/b2/contacts?filter=open"]
    );
}

#[tokio::test]
async fn the_answer_names_the_tags_and_a_missing_workspace_is_refused() {
    let p = start();
    let r = p
        .admin_post("/purge/legacy", r#"{"workspace_id": "w1"}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["tags"], serde_json::json!(["lists:w1"]));
    let r = p
        .admin_post("/purge/legacy", r#"{"board_id": "b1", "filter": "open"}"#)
        .await;
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (422, Some("workspace_id"))
    );
}

#[tokio::test]
async fn the_default_rule_still_needs_a_board() {
    // Without `legacy_tags`, the default stays one template, as before.
    let p = Proxy::start();
    let r = p
        .admin_post("/purge/legacy", r#"{"workspace_id": "w1"}"#)
        .await;
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (422, Some("board_id"))
    );
}

fn config_errors(purge: &str) -> String {
    let yaml = format!("upstream: {{ address: \"127.0.0.1:3000\" }}\npurge:\n{purge}");
    match tagcache::config::load_str(&yaml, "legacy.yaml", &|_| None) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_rules_are_config_errors_with_their_position() {
    let e = config_errors(
        "  legacy_tags:\n    - [\"lists:{workspace_id}\", \"board:{workspace_id}:{board_id}\"]\n",
    );
    assert!(
        e.contains("legacy.yaml:4:32: error: \"board:{workspace_id}:{board_id}\" is never used: \"lists:{workspace_id}\" before it applies whenever it could"),
        "{e}"
    );
    let e = config_errors("  legacy_tags:\n    - []\n");
    assert!(
        e.contains("legacy.yaml:4:7: error: empty list in purge.legacy_tags"),
        "{e}"
    );
    let e = config_errors("  legacy_tags:\n    - [\"b:{workspace_id}:{board}\"]\n");
    assert!(
        e.contains("legacy.yaml:4:8: error: unknown legacy purge field \"{board}\""),
        "{e}"
    );
}
