//! The commands that talk to a running instance's admin listener: `purge`,
//! `reload` and `health`.

use clap::CommandFactory;
use serde_json::{json, Map, Value};
use tagcache::admin::client::{AdminClient, Answer, ClientError, Timeouts};

use super::{AdminArgs, Cli, Exit, HealthArgs, PurgeArgs};

/// The request `tagcache purge` sends: an admin path and its JSON body.
#[derive(Debug, PartialEq)]
struct PurgeRequest {
    path: &'static str,
    body: Value,
}

/// Why the purge arguments cannot make one request (clap checks the rest).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum PurgeUsage {
    /// `--url` names the identity of its entries with one `--workspace`.
    #[error("--url takes at most one --workspace (the workspace the URLs were stored for)")]
    UrlWorkspaces,
    /// The same `--field` key twice.
    #[error("--field {0} is given twice")]
    DuplicateField(String),
    /// `--field` without `--event`.
    #[error("--field goes with --event")]
    FieldWithoutEvent,
}

/// The admin request for `args`.
fn purge_request(args: &PurgeArgs) -> Result<PurgeRequest, PurgeUsage> {
    if let Some(event) = &args.event {
        let mut body = Map::new();
        body.insert("event".into(), json!(event));
        for (key, value) in &args.fields {
            if body.insert(key.clone(), json!(value)).is_some() {
                return Err(PurgeUsage::DuplicateField(key.clone()));
            }
        }
        if args.soft {
            body.insert("soft".into(), json!(true));
        }
        return Ok(PurgeRequest {
            path: "/events",
            body: Value::Object(body),
        });
    }
    if !args.fields.is_empty() {
        return Err(PurgeUsage::FieldWithoutEvent);
    }
    let mut body = Map::new();
    if args.all {
        body.insert("all".into(), json!(true));
    }
    if !args.tags.is_empty() {
        body.insert("tags".into(), json!(args.tags));
    }
    if args.urls.is_empty() {
        if !args.workspaces.is_empty() {
            body.insert("workspaces".into(), json!(args.workspaces));
        }
    } else {
        if args.workspaces.len() > 1 {
            return Err(PurgeUsage::UrlWorkspaces);
        }
        let workspace = args.workspaces.first();
        let urls: Vec<Value> = args
            .urls
            .iter()
            .map(|url| match (workspace, &args.user) {
                (None, None) => json!(url),
                (w, u) => {
                    let mut item = json!({ "url": url });
                    if let Some(w) = w {
                        item["workspace"] = json!(w);
                    }
                    if let Some(u) = u {
                        item["user"] = json!(u);
                    }
                    item
                }
            })
            .collect();
        body.insert("urls".into(), json!(urls));
    }
    body.insert("soft".into(), json!(args.soft));
    Ok(PurgeRequest {
        path: "/purge",
        body: Value::Object(body),
    })
}

/// `tagcache purge`: one `POST /purge` or `POST /events`.
pub(super) fn purge(args: &PurgeArgs) -> Exit {
    let request = match purge_request(args) {
        Ok(r) => r,
        Err(e) => {
            // clap's own format and exit code (2) for usage errors.
            Cli::command()
                .error(clap::error::ErrorKind::ArgumentConflict, e)
                .exit()
        }
    };
    let sent =
        client(&args.admin).and_then(|c| c.post_json(request.path, &request.body.to_string()));
    report("purge", sent)
}

/// `tagcache reload`: `POST /reload`.
pub(super) fn reload(args: &AdminArgs) -> Exit {
    let sent = client(args).and_then(|c| c.post_json("/reload", ""));
    report("reload", sent)
}

fn client(args: &AdminArgs) -> Result<AdminClient, ClientError> {
    AdminClient::new(
        &args.admin,
        args.token.as_deref(),
        Timeouts {
            connect: args.connect_timeout,
            read: args.timeout,
        },
    )
}

/// Prints the answer (its body on stdout when 2xx, else on stderr with the
/// status) and picks the exit code.
fn report(what: &str, sent: Result<Answer, ClientError>) -> Exit {
    match sent {
        Ok(answer) if answer.is_success() => {
            println!("{}", answer.body.trim_end());
            Exit::Ok
        }
        Ok(answer) => {
            eprintln!(
                "tagcache: {what} refused by the admin listener (HTTP {}): {}",
                answer.status,
                answer.body.trim_end()
            );
            Exit::Refused
        }
        Err(e @ ClientError::BadUrl(_)) => {
            eprintln!("tagcache: {e}");
            Exit::Usage
        }
        Err(e) => {
            eprintln!("tagcache: {e}");
            Exit::Unreachable
        }
    }
}

/// The verdict of `tagcache health`.
#[derive(Debug, PartialEq, Eq)]
enum Health {
    /// `status: ok`.
    Ok,
    /// `status: degraded`, with what the answer says about Redis.
    Degraded(String),
    /// Anything else, with why.
    Unhealthy(String),
}

/// Reads a `/health` answer.
fn judge(answer: &Answer) -> Health {
    if answer.status != 200 {
        return Health::Unhealthy(format!(
            "HTTP {}: {}",
            answer.status,
            one_line(&answer.body)
        ));
    }
    let Ok(v) = serde_json::from_str::<Value>(&answer.body) else {
        return Health::Unhealthy(format!("not a health answer: {}", one_line(&answer.body)));
    };
    match v.get("status").and_then(Value::as_str) {
        Some("ok") => Health::Ok,
        Some("degraded") => Health::Degraded(match v.get("redis") {
            Some(redis) => format!("redis {redis}"),
            None => one_line(&answer.body),
        }),
        Some(other) => Health::Unhealthy(format!("status {other:?}")),
        None => Health::Unhealthy(format!("no status in {}", one_line(&answer.body))),
    }
}

/// `s` on one line, at most 200 characters.
fn one_line(s: &str) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &flat[..cut]),
        None => flat,
    }
}

/// `tagcache health`: `GET /health`, one line, 0 when healthy, else 1.
pub(super) fn health(args: &HealthArgs) -> Exit {
    let timeouts = Timeouts {
        connect: args.connect_timeout,
        read: args.timeout,
    };
    let verdict = match AdminClient::new(&args.admin, None, timeouts).and_then(|c| c.get("/health"))
    {
        Ok(answer) => judge(&answer),
        Err(e) => Health::Unhealthy(e.to_string()),
    };
    match verdict {
        Health::Ok => {
            println!("ok");
            Exit::Ok
        }
        Health::Degraded(why) => {
            println!("degraded: {why}");
            Exit::Ok
        }
        Health::Unhealthy(why) => {
            println!("unhealthy: {why}");
            Exit::Refused
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn request(args: &[&str]) -> Result<PurgeRequest, PurgeUsage> {
        let cli = Cli::try_parse_from([&["tagcache", "purge"], args].concat()).expect("parses");
        match cli.command {
            super::super::Command::Purge(p) => purge_request(&p),
            _ => unreachable!("a purge command"),
        }
    }

    fn check(args: &[&str], path: &'static str, body: Value) {
        assert_eq!(request(args), Ok(PurgeRequest { path, body }), "{args:?}");
    }

    #[test]
    fn purge_bodies() {
        check(
            &["--tag", "a", "--tag", "b", "--soft"],
            "/purge",
            json!({"tags": ["a", "b"], "soft": true}),
        );
        check(
            &["--workspace", "w1", "--workspace", "w2"],
            "/purge",
            json!({"workspaces": ["w1", "w2"], "soft": false}),
        );
        check(
            &["--url", "/a?x=1", "--url", "/b"],
            "/purge",
            json!({"urls": ["/a?x=1", "/b"], "soft": false}),
        );
        check(
            &[
                "--url",
                "/a",
                "--workspace",
                "w1",
                "--user",
                "u1",
                "--tag",
                "t",
            ],
            "/purge",
            json!({"tags": ["t"], "urls": [{"url": "/a", "workspace": "w1", "user": "u1"}], "soft": false}),
        );
        check(&["--all"], "/purge", json!({"all": true, "soft": false}));
        check(
            &[
                "--event",
                "contact:moved",
                "--field",
                "workspace_id=w1",
                "--field",
                "board_id=b1",
            ],
            "/events",
            json!({"event": "contact:moved", "workspace_id": "w1", "board_id": "b1"}),
        );
        check(
            &["--event", "contact:moved", "--soft"],
            "/events",
            json!({"event": "contact:moved", "soft": true}),
        );
    }

    #[test]
    fn purge_usage_errors() {
        assert_eq!(
            request(&["--url", "/a", "--workspace", "w1", "--workspace", "w2"]),
            Err(PurgeUsage::UrlWorkspaces)
        );
        assert_eq!(
            request(&["--event", "e", "--field", "a=1", "--field", "a=2"]),
            Err(PurgeUsage::DuplicateField("a".into()))
        );
        assert_eq!(
            request(&["--field", "a=1", "--tag", "t"]),
            Err(PurgeUsage::FieldWithoutEvent)
        );
        for args in [
            &[][..],
            &["--soft"],
            &["--all", "--tag", "a"],
            &["--all", "--soft"],
            &["--event", "e", "--tag", "a"],
            &["--user", "u1", "--tag", "t"],
        ] {
            assert!(
                Cli::try_parse_from([&["tagcache", "purge"], args].concat()).is_err(),
                "{args:?}"
            );
        }
    }

    #[test]
    fn health_verdicts() {
        let answer = |status, body: &str| Answer {
            status,
            body: body.to_string(),
        };
        assert_eq!(judge(&answer(200, r#"{"status":"ok"}"#)), Health::Ok);
        assert_eq!(
            judge(&answer(
                200,
                r#"{"status":"degraded","redis":{"breaker":"open"}}"#
            )),
            Health::Degraded(r#"redis {"breaker":"open"}"#.into())
        );
        for (status, body) in [
            (503, r#"{"status":"ok"}"#),
            (200, "<html>"),
            (200, r#"{"status":"down"}"#),
            (200, "{}"),
        ] {
            assert!(
                matches!(judge(&answer(status, body)), Health::Unhealthy(_)),
                "{status} {body}"
            );
        }
    }
}
