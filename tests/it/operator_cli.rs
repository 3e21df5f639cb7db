//! The operator commands against a real instance: `tagcache purge` (every
//! kind of purge, refusals, unreachable and silent admin listeners, exit
//! codes) and `tagcache health`.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{free_port, Proxy, TOKEN};

/// Runs `tagcache ARGS` with the admin token in the environment:
/// (exit code, stdout, stderr).
fn tagcache(args: &[&str], token: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tagcache"))
        .args(args)
        .env("TAGCACHE_ADMIN_TOKEN", token)
        .env_remove("TAGCACHE_ADMIN_URL")
        .output()
        .expect("run tagcache");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `tagcache purge ARGS --admin <p's admin URL>`.
fn purge(p: &Proxy, args: &[&str]) -> (i32, String, String) {
    let admin = p.admin_url("");
    tagcache(&[&["purge"], args, &["--admin", &admin]].concat(), TOKEN)
}

async fn fill(p: &Proxy, path: &str, ws: &str, user: Option<&str>) {
    assert_eq!(p.get(path, Some(ws), user).await.status, 200);
    assert_eq!(p.get(path, Some(ws), user).await.cache(), "HIT", "{path}");
}

async fn status(p: &Proxy, path: &str, ws: &str, user: Option<&str>) -> String {
    p.get(path, Some(ws), user).await.cache().to_string()
}

#[tokio::test]
async fn purge_by_tag_url_and_workspace() {
    let p = Proxy::start();
    fill(&p, "/item/t1", "w1", None).await;
    fill(&p, "/item/t2", "w1", None).await;
    let (code, out, err) = purge(&p, &["--tag", "item:w1:t1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"purged\""), "{out}");
    assert_eq!(status(&p, "/item/t1", "w1", None).await, "MISS");
    assert_eq!(status(&p, "/item/t2", "w1", None).await, "HIT");

    // A URL, for the workspace and user it was stored for.
    let per_user = "/api/boards/b9/contacts?filter=assigned_to_me";
    fill(&p, per_user, "w1", Some("u1")).await;
    fill(&p, per_user, "w1", Some("u2")).await;
    let (code, _, err) = purge(
        &p,
        &["--url", per_user, "--workspace", "w1", "--user", "u1"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(status(&p, per_user, "w1", Some("u1")).await, "MISS");
    assert_eq!(status(&p, per_user, "w1", Some("u2")).await, "HIT");

    // A whole workspace, soft: stale, and nothing of the other workspace.
    fill(&p, "/item/w", "w3", None).await;
    fill(&p, "/item/w", "w4", None).await;
    let (code, out, err) = purge(&p, &["--workspace", "w3"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"workspace\""), "{out}");
    assert_eq!(status(&p, "/item/w", "w3", None).await, "MISS");
    assert_eq!(status(&p, "/item/w", "w4", None).await, "HIT");
}

#[tokio::test]
async fn purge_by_event_with_fields() {
    let p = Proxy::start();
    fill(&p, "/api/boards/b1/contacts", "w1", None).await;
    fill(&p, "/api/boards/b2/contacts", "w1", None).await;
    let (code, out, err) = purge(
        &p,
        &[
            "--event",
            "contact:moved",
            "--field",
            "workspace_id=w1",
            "--field",
            "board_id=b1",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("board:w1:b1"), "{out}");
    assert_eq!(
        status(&p, "/api/boards/b1/contacts", "w1", None).await,
        "MISS"
    );
    assert_eq!(
        status(&p, "/api/boards/b2/contacts", "w1", None).await,
        "HIT"
    );

    // A field the event needs is missing: the server refuses, exit 1 with
    // its answer.
    let (code, _, err) = purge(
        &p,
        &["--event", "contact:moved", "--field", "workspace_id=w1"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("HTTP 422") && err.contains("board_id"),
        "{err}"
    );
}

#[tokio::test]
async fn purge_all_purges_or_reports_the_refusal() {
    let p = Proxy::start();
    fill(&p, "/item/a1", "w1", None).await;
    fill(&p, "/item/a2", "w2", None).await;
    let (code, _, err) = purge(&p, &["--all"]);
    match code {
        // A server that purges everything.
        0 => {
            assert_eq!(status(&p, "/item/a1", "w1", None).await, "MISS");
            assert_eq!(status(&p, "/item/a2", "w2", None).await, "MISS");
        }
        // A server without `{"all": true}` refuses the body, and nothing
        // is purged.
        1 => {
            assert!(
                err.contains("HTTP 400") || err.contains("HTTP 422"),
                "{err}"
            );
            assert_eq!(status(&p, "/item/a1", "w1", None).await, "HIT");
        }
        other => panic!("exit {other}: {err}"),
    }
}

#[tokio::test]
async fn exit_codes_tell_refused_usage_and_unreachable_apart() {
    let p = Proxy::start();
    let admin = p.admin_url("");
    // 1: refused (bad token), with the status and body.
    let (code, _, err) = tagcache(&["purge", "--tag", "x", "--admin", &admin], "wrong");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("HTTP 401") && err.contains("unauthorized"),
        "{err}"
    );
    // 2: usage errors, found by the command line or by the command.
    for args in [
        &["purge", "--admin", admin.as_str()][..],
        &["purge", "--all", "--tag", "x", "--admin", &admin],
        &["purge", "--tag", "x", "--admin", "ftp://127.0.0.1:1"],
        &["purge", "--tag", "x", "--admin", &format!("{admin}/purge")],
        &[
            "purge",
            "--url",
            "/a",
            "--workspace",
            "w1",
            "--workspace",
            "w2",
            "--admin",
            &admin,
        ],
        &[
            "purge",
            "--tag",
            "x",
            "--timeout",
            "soon",
            "--admin",
            &admin,
        ],
    ] {
        let (code, _, err) = tagcache(args, TOKEN);
        assert_eq!(code, 2, "{args:?}: {err}");
    }
    // 3: nothing listens there.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (code, _, err) = tagcache(&["purge", "--tag", "x", "--admin", &dead], TOKEN);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot reach the admin listener"), "{err}");
    // 3: https:// to a plain-HTTP listener: the TLS handshake fails.
    let https = format!("https://127.0.0.1:{}", p.admin_port);
    let (code, _, err) = tagcache(&["purge", "--tag", "x", "--admin", &https], TOKEN);
    assert_eq!(code, 3, "{err}");
}

#[test]
fn a_silent_admin_listener_times_out() {
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = format!("http://{}", silent.local_addr().unwrap());
    let start = Instant::now();
    let (code, _, err) = tagcache(
        &[
            "purge",
            "--tag",
            "x",
            "--timeout",
            "300ms",
            "--admin",
            &admin,
        ],
        TOKEN,
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("timeout"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    drop(silent);
}

#[tokio::test]
async fn health_asks_the_admin_listener() {
    let p = Proxy::start();
    let (code, out, err) = tagcache(&["health", "--admin", &p.admin_url("")], "");
    assert_eq!((code, out.trim()), (0, "ok"), "{err}");

    // Nothing listens: 1, one line saying why.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (code, out, _) = tagcache(&["health", "--admin", &dead], "");
    assert_eq!(code, 1);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("unhealthy: cannot reach"), "{out}");

    // Something that answers, but not a tagcache health answer (the test
    // origin's JSON echo): 1.
    let other = format!("http://{}", p.origin.addr);
    let (code, out, _) = tagcache(&["health", "--admin", &other], "");
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("unhealthy: "), "{out}");
}
