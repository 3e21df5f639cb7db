//! Standard Webhooks signatures on `/events`: a valid event purges; a wrong
//! signature, an old timestamp and a replayed `webhook-id` are refused with
//! 401 naming the header; the Node client's signatures verify.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use tagcache::purge::signature::sign_standard;

use crate::util::{Options, Proxy, Resp, TOKEN};

/// A secret in the specification's `whsec_<base64>` format.
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn proxy(secret: &str) -> Proxy {
    Proxy::start_with(Options {
        admin_extra: "  webhook_secret: \"${STANDARD_WEBHOOK_SECRET}\"".into(),
        env: vec![("STANDARD_WEBHOOK_SECRET".into(), secret.into())],
        ..Options::default()
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn post(p: &Proxy, body: &str, headers: &[(&str, String)]) -> Resp {
    let mut req = p
        .client
        .post(p.admin_url("/events"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(body.to_string());
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    Resp::from(req.send().await.unwrap()).await
}

fn signed(secret: &str, id: &str, t: u64, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", t.to_string()),
        (
            "webhook-signature",
            sign_standard(secret, id, t, body.as_bytes()).unwrap(),
        ),
    ]
}

async fn fill(p: &Proxy, path: &str) {
    assert_eq!(p.get(path, Some("w1"), None).await.status, 200);
    crate::assert_cache!(p, path, Some("w1"), "HIT");
}

fn assert_refused(r: &Resp, header: &str, why: &str) {
    assert_eq!(r.status, 401, "{why}: {}", r.text);
    let json = r.json();
    assert_eq!(json["field"], header, "{why}: {}", r.text);
    assert!(
        json["message"].as_str().unwrap().contains(why),
        "{why}: {}",
        r.text
    );
}

#[tokio::test]
async fn standard_webhooks_purge_once_and_refuse_bad_old_and_replayed() {
    for secret in [WHSEC, "a-plain-secret"] {
        let p = proxy(secret);
        let path = "/api/boards/b1/contacts";
        fill(&p, path).await;
        let body = r#"{"event": "contact:moved", "workspace_id": "w1", "board_id": "b1"}"#;
        let t = now();

        // Signed with another secret, or over another body: refused, nothing purged.
        let wrong = signed("whsec_b3RoZXI=", "msg_wrong", t, body);
        assert_refused(
            &post(&p, body, &wrong).await,
            "webhook-signature",
            "does not match",
        );
        let other_body = signed(secret, "msg_other", t, "{}");
        assert_refused(
            &post(&p, body, &other_body).await,
            "webhook-signature",
            "does not match",
        );
        // Outside the replay window.
        let old = signed(secret, "msg_old", t - 600, body);
        assert_refused(&post(&p, body, &old).await, "webhook-timestamp", "window");
        // A Standard Webhooks request missing one of its headers.
        let partial = &signed(secret, "msg_partial", t, body)[..2];
        assert_refused(
            &post(&p, body, partial).await,
            "webhook-signature",
            "missing",
        );
        assert_eq!(
            p.get(path, Some("w1"), None).await.cache(),
            "HIT",
            "a refusal purged"
        );

        // The good one purges, once.
        let good = signed(secret, "msg_good", t, body);
        let r = post(&p, body, &good).await;
        assert_eq!(r.status, 200, "{secret}: {}", r.text);
        crate::assert_cache!(p, path, Some("w1"), "MISS");
        assert_refused(&post(&p, body, &good).await, "webhook-id", "replay");
        // The same id signed again (a new signature, a new time) is still a replay.
        let again = signed(secret, "msg_good", t + 1, body);
        assert_refused(&post(&p, body, &again).await, "webhook-id", "replay");
    }
}

/// The Node client (examples/express) with `signatureScheme:
/// 'standard-webhooks'` sends an event the server verifies and applies.
/// Needs `node` (CI installs it); without it there is nothing to run.
#[tokio::test]
async fn the_node_client_signs_events_the_server_verifies() {
    if Command::new("node").arg("--version").output().is_err() {
        eprintln!("node is not installed: the Node client's signatures are not checked here");
        return;
    }
    for secret in [WHSEC, "a-plain-secret"] {
        let p = proxy(secret);
        let path = "/api/boards/b7/contacts";
        fill(&p, path).await;
        let client = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/express/tagcache-client.js"
        );
        let script = r#"
const { createTagcacheClient } = require(process.env.CLIENT);
createTagcacheClient({
  adminUrl: process.env.ADMIN_URL,
  token: process.env.TOKEN,
  webhookSecret: process.env.SECRET,
  signatureScheme: 'standard-webhooks',
  retries: 0,
})
  .sendEvent({ event: 'contact:moved', workspace_id: 'w1', board_id: 'b7' })
  .then((r) => console.log(JSON.stringify(r)))
  .catch((e) => { console.error(String(e)); process.exit(1); });
"#;
        let out = tokio::task::spawn_blocking({
            let admin = p.admin_url("");
            let secret = secret.to_string();
            move || {
                Command::new("node")
                    .args(["-e", script])
                    .env("CLIENT", client)
                    .env("ADMIN_URL", admin)
                    .env("TOKEN", TOKEN)
                    .env("SECRET", secret)
                    .output()
                    .expect("run node")
            }
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{secret}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("board:w1:b7"));
        crate::assert_cache!(p, path, Some("w1"), "MISS");
    }
}
