//! The admin side: nothing it answers lists tenants' keys, secrets never
//! appear in answers or logs, and debug headers are refused where clients
//! could read them.

use std::process::Command;

use crate::util::{captured_logs, Options, Proxy, TOKEN};

use super::*;

#[tokio::test]
async fn stats_metrics_and_purge_answers_never_list_keys_or_other_tenants() {
    let p = hs256_proxy("");
    let other = token("tenant-other-7f3a", "user-other-9c1d");
    for path in [
        "/api/boards/board-secret-1/contacts?search=needle-query",
        "/item/item-secret-2",
    ] {
        assert_eq!(get(&p, path, Some(&other), &[]).await.status, 200);
        assert_eq!(get(&p, path, Some(&other), &[]).await.cache(), "HIT");
    }
    let secrets = [
        "tenant-other-7f3a",
        "user-other-9c1d",
        "board-secret-1",
        "needle-query",
        "item-secret-2",
    ];
    let clean = |what: &str, text: &str| {
        for s in secrets {
            assert!(!text.contains(s), "{what} reveals {s:?}: {text}");
        }
    };
    clean("/stats", &p.admin_get("/stats").await.text);
    clean("/metrics", &p.admin_get("/metrics").await.text);
    // Another tenant's admin-side requests: purge answers carry counts, not keys.
    let answers = [
        p.admin_post("/purge", r#"{"tags":["board:mine:b1"]}"#)
            .await,
        p.admin_post("/purge", r#"{"workspaces":["mine"]}"#).await,
        p.admin_post(
            "/purge",
            r#"{"urls":[{"url":"/item/x","workspace":"mine"}]}"#,
        )
        .await,
        p.admin_post(
            "/events",
            r#"{"event":"contact:moved","workspace_id":"mine","board_id":"b1"}"#,
        )
        .await,
        p.admin_post(
            "/purge/legacy",
            r#"{"workspace_id":"mine","board_id":"b1"}"#,
        )
        .await,
        p.admin_post("/purge", r#"{"urls":["/item/item-secret-2?x=1"]}"#)
            .await,
        p.admin_post("/purge", r#"{"nope":1}"#).await,
    ];
    for a in &answers {
        clean("an admin answer", &a.text.replace("item-secret-2?x=1", ""));
    }
    // Purging by URL needs the workspace: without it, the other tenant's entry stays.
    assert_eq!(
        get(&p, "/item/item-secret-2", Some(&other), &[])
            .await
            .cache(),
        "HIT"
    );
    // No debug headers by default: the key never reaches clients.
    let r = get(&p, "/item/item-secret-2", Some(&other), &[]).await;
    assert!(r.header("x-cache-key").is_none());
    assert!(!r.header("cache-status").unwrap().contains("tenant-other"));
}

#[tokio::test]
async fn secrets_and_tokens_never_appear_in_answers_or_logs() {
    let p = Proxy::start_with(Options {
        upstream: Some("127.0.0.1:1".into()),
        ..hs256_options("")
    });
    let valid = token("w1", "alice");
    let expired = hs256(&serde_json::json!({"exp": now() - 999, "workspace_id": "w1"}));
    let mut answers = Vec::new();
    // Bad, expired, forbidden and valid tokens (the origin is down: 502).
    answers.push(get(&p, "/item/s", Some(&expired), &[]).await);
    answers.push(get(&p, "/item/s", Some(&valid), &[("x-workspace-id", "w2")]).await);
    answers.push(get(&p, "/item/s", Some(&valid), &[]).await);
    answers.push(get(&p, "/item/s", Some(&format!("{valid}x")), &[]).await);
    assert_eq!(
        answers.iter().map(|r| r.status).collect::<Vec<_>>(),
        [401, 403, 502, 401]
    );
    // Wrong and right admin tokens.
    for auth in ["Bearer wrong-token", &format!("Bearer {TOKEN}x"), "Basic x"] {
        let r = p
            .client
            .get(p.admin_url("/stats"))
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        answers.push(Resp::from(r).await);
    }
    answers.push(p.admin_get("/stats").await);
    answers.push(p.admin_get("/metrics").await);
    answers.push(p.admin_post("/purge", "{not json").await);
    for r in &answers {
        for secret in [JWT_SECRET, TOKEN, valid.as_str(), expired.as_str()] {
            assert!(
                !r.text.contains(secret),
                "an answer ({}) shows a secret: {}",
                r.status,
                r.text
            );
            for (name, value) in &r.headers {
                assert!(
                    !value
                        .as_bytes()
                        .windows(secret.len())
                        .any(|w| w == secret.as_bytes()),
                    "{name}"
                );
            }
        }
    }
    // The process logs (tagcache and pingora, debug level and up).
    let logs = captured_logs();
    assert!(!logs.is_empty(), "the log capture is not working");
    for secret in [JWT_SECRET, TOKEN, valid.as_str(), expired.as_str()] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
    // The config's Debug (what a careless `{:?}` would log).
    let cfg = format!("{:?}", p.running.as_ref().unwrap().cache.config());
    assert!(!cfg.contains(JWT_SECRET) && !cfg.contains(TOKEN), "{cfg}");
}

fn check(yaml: &str, env: &[(&str, &str)]) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("tagcache-sec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("c{}.yaml", yaml.len()));
    std::fs::write(&path, yaml).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tagcache"));
    cmd.args(["check", "-c"])
        .arg(&path)
        .env_remove("TAGCACHE_ADMIN_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn debug_headers_on_a_public_listener_are_refused_unless_forced() {
    let base = "upstream: { address: \"127.0.0.1:3000\" }\nlisten: \"0.0.0.0:8080\"\ndebug_headers: true\n";
    let (code, text) = check(base, &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("debug_headers exposes cache keys"), "{text}");
    let (code, text) = check(&format!("{base}debug_headers_force: true\n"), &[]);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn config_errors_never_show_secrets() {
    let yaml = "upstream: { address: \"127.0.0.1:3000\" }
admin: { listen: \"0.0.0.0:9999\", token: \"${ADMIN}\", max_body: lots }
tenant:
  jwt: { algorithms: [HS512], secret: \"${JWT}\" }
  workspace: { claim: workspace_id }
";
    let (code, text) = check(
        yaml,
        &[
            ("ADMIN", "admin-secret-value-1234"),
            ("JWT", "jwt-secret-value-5678"),
        ],
    );
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("HS512 needs at least 64"), "{text}");
    assert!(
        !text.contains("admin-secret-value-1234") && !text.contains("jwt-secret-value-5678"),
        "{text}"
    );
}

/// Purging by URL in JWT mode addresses the entry keyed on the verified
/// workspace, and only that workspace's.
#[tokio::test]
async fn url_purges_reach_the_verified_workspaces_entry_only() {
    let p = hs256_proxy("");
    let (a, b) = (token("wa", "u"), token("wb", "u"));
    for t in [&a, &b] {
        assert_eq!(get(&p, "/item/p1", Some(t), &[]).await.cache(), "MISS");
        assert_eq!(get(&p, "/item/p1", Some(t), &[]).await.cache(), "HIT");
    }
    let r = p
        .admin_post(
            "/purge",
            r#"{"urls":[{"url":"/item/p1","workspace":"wa"}]}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(get(&p, "/item/p1", Some(&a), &[]).await.cache(), "MISS");
    assert_eq!(get(&p, "/item/p1", Some(&b), &[]).await.cache(), "HIT");
}
