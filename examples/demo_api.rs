//! A small demo backend with the shape of the chat/CRM API the example config
//! describes, so the README's quick start works on a fresh machine.
//!
//! ```text
//! cargo run --release --example demo_api                  # listens on 127.0.0.1:3000
//! cargo run --release --example demo_api -- --listen 127.0.0.1:3001
//! ```
//!
//! `./dev.sh run` starts it in the background when nothing answers on the
//! example config's upstream address, and stops it when the proxy exits.
//!
//! Endpoints, with the delays of the real backend (shortened), answering JSON:
//! - `GET /api/boards/{board_id}/contacts?page&pageSize&filter&search&assignedTo&sortBy&sortOrder&columnId`:
//!   a page of contacts, 200 ms. `filter=assigned_to_me` answers the contacts
//!   of the user in `X-User-ID`.
//! - `GET /api/cache-settings/workspace/{workspace_id}/counts?useCache=true|false`:
//!   the workspace's counters and the user's `assignedToMe`, 1.5 s.
//! - `GET /enterprise/{enterprise_id}/contacts/summary` and
//!   `GET /enterprise/{enterprise_id}/departments/{department_id}/contacts/summary`:
//!   summaries, 2 s.
//! - `GET /api/webhook-calls?limit&offset` and `GET /api/intent-analysis`:
//!   the user's call log and analysis, 150 ms and 300 ms.
//! - `GET /api/contacts/{contact_id}`: one contact, 80 ms.
//! - `PATCH /api/contacts/{contact_id}` with `{"name": "..."}`: renames the
//!   contact (kept in memory, per workspace), 50 ms. The example config's
//!   `invalidate:` rule purges its cached copy when this answers 200.
//! - `GET /health`: `{"status":"ok"}` at once.
//!
//! Every `/api/` request needs `X-Workspace-ID` (400 without it), as the real
//! backend needs its token; the per-user endpoints need `X-User-ID` too. The
//! data is made up, but the same request always gets the same answer, plus a
//! `servedAt` time and a per-process `request` number, so a cached answer is
//! easy to tell from a fresh one. Each request is logged on stderr.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
const NAMES: [&str; 12] = [
    "Ana", "Bruno", "Carla", "Diego", "Elena", "Felipe", "Gabi", "Hugo", "Iris", "João", "Karla",
    "Luis",
];
const STATUSES: [&str; 2] = ["open", "closed"];
const PRIORITIES: [&str; 3] = ["high", "medium", "low"];

/// A small deterministic hash, so the same request gets the same data.
fn seed(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn pick<T: Copy>(items: &[T], h: u64) -> T {
    items[(h % items.len() as u64) as usize]
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.to_string(), String::new()),
        })
        .collect()
}

fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn number(q: &HashMap<String, String>, name: &str, default: u64, max: u64) -> u64 {
    q.get(name)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(default)
        .clamp(1, max)
}

/// A contact of `workspace`, number `i` of its list.
fn contact(workspace: &str, board: &str, i: u64, filter: &str, user: Option<&str>) -> Value {
    let h = seed(&[workspace, board, &i.to_string()]);
    let status = match filter {
        "open" | "closed" => filter,
        _ => pick(&STATUSES, h >> 8),
    };
    let assigned = match (filter, user) {
        ("assigned_to_me", Some(u)) => Some(u.to_string()),
        ("unassigned", _) => None,
        _ => (h % 3 != 0).then(|| format!("u{}", h % 5 + 1)),
    };
    json!({
        "id": format!("c-{workspace}-{board}-{i}"),
        "name": format!("{} {}", pick(&NAMES, h), pick(&NAMES, h >> 16)),
        "status": status,
        "priority": pick(&PRIORITIES, h >> 24),
        "assignedTo": assigned,
        "columnId": format!("col{}", h % 4 + 1),
        "lastMessageAt": 1_700_000_000 + (h >> 40) % 10_000_000,
    })
}

/// What the demo keeps between requests.
#[derive(Default)]
struct State {
    /// Requests answered, for the `request` field.
    count: AtomicU64,
    /// Contacts renamed by `PATCH`, by workspace and id.
    names: Mutex<HashMap<(String, String), String>>,
}

/// One contact's details: its made-up data, and the name a `PATCH` gave it.
fn contact_details(state: &State, ws: &str, id: &str) -> Value {
    let h = seed(&[ws, id]);
    let renamed = state
        .names
        .lock()
        .ok()
        .and_then(|names| names.get(&(ws.to_string(), id.to_string())).cloned());
    json!({
        "id": id, "workspaceId": ws,
        "name": renamed.unwrap_or_else(|| format!("{} {}", pick(&NAMES, h), pick(&NAMES, h >> 16))),
        "email": format!("contact{}@example.com", h % 10_000),
        "status": pick(&STATUSES, h >> 8),
    })
}

/// `PATCH /api/contacts/{id}`: renames the contact.
fn patch_contact(
    state: &State,
    path: &str,
    workspace: Option<&str>,
    body: &[u8],
) -> (StatusCode, Value, Duration) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ["api", "contacts", id] = segments.as_slice() else {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({ "error": "the demo API only writes PATCH /api/contacts/{id}" }),
            Duration::ZERO,
        );
    };
    let Some(ws) = workspace else {
        return (
            StatusCode::BAD_REQUEST,
            json!({ "error": "missing X-Workspace-ID" }),
            Duration::ZERO,
        );
    };
    let name = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_string))
        .filter(|n| !n.trim().is_empty());
    let Some(name) = name else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "error": "send {\"name\": \"...\"}" }),
            Duration::ZERO,
        );
    };
    if let Ok(mut names) = state.names.lock() {
        names.insert((ws.to_string(), id.to_string()), name);
    }
    (
        StatusCode::OK,
        contact_details(state, ws, id),
        Duration::from_millis(50),
    )
}

/// What one request gets: a status, a body and how long the backend "works".
fn answer(
    state: &State,
    req: &Request<Incoming>,
    workspace: Option<&str>,
    user: Option<&str>,
) -> (StatusCode, Value, Duration) {
    let path = req.uri().path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let q = query(req);
    let need_user = || {
        (
            StatusCode::BAD_REQUEST,
            json!({ "error": "missing X-User-ID" }),
            Duration::ZERO,
        )
    };
    if path == "/health" {
        return (StatusCode::OK, json!({ "status": "ok" }), Duration::ZERO);
    }
    if req.method() != Method::GET {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            json!({ "error": "the demo API only reads, and renames contacts with PATCH" }),
            Duration::ZERO,
        );
    }
    let ws = match (segments.first(), workspace) {
        (Some(&"api"), None) => {
            return (
                StatusCode::BAD_REQUEST,
                json!({ "error": "missing X-Workspace-ID" }),
                Duration::ZERO,
            )
        }
        (_, w) => w.unwrap_or(""),
    };
    match segments.as_slice() {
        ["api", "boards", board, "contacts"] => {
            let page = number(&q, "page", 1, 10_000);
            let page_size = number(&q, "pageSize", 50, 1_000);
            let filter = q.get("filter").map_or("all", String::as_str);
            if filter == "assigned_to_me" && user.is_none() {
                return need_user();
            }
            let total = 40 + seed(&[ws, board, filter]) % 200;
            let first = (page - 1) * page_size;
            let contacts: Vec<Value> = (first..total.min(first + page_size))
                .map(|i| contact(ws, board, i, filter, user))
                .collect();
            let body = json!({
                "boardId": board, "workspaceId": ws, "filter": filter,
                "page": page, "pageSize": page_size, "total": total,
                "sortBy": q.get("sortBy").map_or("created_at", String::as_str),
                "sortOrder": q.get("sortOrder").map_or("desc", String::as_str),
                "contacts": contacts,
            });
            (StatusCode::OK, body, Duration::from_millis(200))
        }
        ["api", "cache-settings", "workspace", path_ws, "counts"] => {
            let Some(user) = user else { return need_user() };
            let h = seed(&[path_ws]);
            let (open, closed) = (100 + h % 900, 50 + (h >> 10) % 500);
            let body = json!({
                "workspaceId": path_ws,
                "total": open + closed,
                "open": open,
                "closed": closed,
                "unassigned": (h >> 20) % 100,
                "highPriority": (h >> 30) % 50,
                "mediumPriority": (h >> 36) % 80,
                "lowPriority": (h >> 42) % 120,
                "assignedToMe": seed(&[path_ws, user]) % 40,
            });
            (StatusCode::OK, body, Duration::from_millis(1500))
        }
        ["enterprise", enterprise, "contacts", "summary"] => {
            let h = seed(&[enterprise]);
            let body = json!({
                "enterpriseId": enterprise,
                "contacts": 10_000 + h % 190_000,
                "employees": 20 + (h >> 20) % 200,
                "departments": 3 + (h >> 30) % 9,
            });
            (StatusCode::OK, body, Duration::from_millis(2000))
        }
        ["enterprise", enterprise, "departments", department, "contacts", "summary"] => {
            let h = seed(&[enterprise, department]);
            let body = json!({
                "enterpriseId": enterprise,
                "departmentId": department,
                "contacts": 1_000 + h % 19_000,
                "employees": 2 + (h >> 20) % 30,
            });
            (StatusCode::OK, body, Duration::from_millis(2000))
        }
        ["api", "webhook-calls"] => {
            let Some(user) = user else { return need_user() };
            let limit = number(&q, "limit", 20, 1_000);
            let offset = q
                .get("offset")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            let calls: Vec<Value> = (offset..offset + limit.min(25))
                .map(|i| {
                    let h = seed(&[ws, user, &i.to_string()]);
                    json!({ "id": format!("call-{user}-{i}"), "durationSec": 30 + h % 900,
                            "status": pick(&["completed", "missed", "voicemail"], h) })
                })
                .collect();
            let body = json!({ "userId": user, "limit": limit, "offset": offset, "calls": calls });
            (StatusCode::OK, body, Duration::from_millis(150))
        }
        ["api", "intent-analysis"] => {
            let Some(user) = user else { return need_user() };
            let h = seed(&[ws, user]);
            let body = json!({
                "userId": user,
                "intents": { "purchase": h % 40, "support": (h >> 8) % 40, "cancel": (h >> 16) % 10 },
            });
            (StatusCode::OK, body, Duration::from_millis(300))
        }
        ["api", "contacts", id] => (
            StatusCode::OK,
            contact_details(state, ws, id),
            Duration::from_millis(80),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            json!({ "error": "not found" }),
            Duration::ZERO,
        ),
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let start = Instant::now();
    let workspace = header(&req, "x-workspace-id");
    let user = header(&req, "x-user-id");
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let (status, mut body, delay) = if method == Method::PATCH {
        let path = uri.path().to_string();
        let bytes = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        patch_contact(&state, &path, workspace.as_deref(), &bytes)
    } else {
        answer(&state, &req, workspace.as_deref(), user.as_deref())
    };
    tokio::time::sleep(delay).await;
    let n = state.count.fetch_add(1, Ordering::Relaxed) + 1;
    if status.is_success() && uri.path() != "/health" {
        body["request"] = json!(n);
        body["servedAt"] = json!(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64));
    }
    eprintln!(
        "demo_api: {} {} workspace={} user={} -> {} in {} ms",
        method,
        uri,
        workspace.as_deref().unwrap_or("-"),
        user.as_deref().unwrap_or("-"),
        status.as_u16(),
        start.elapsed().as_millis()
    );
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}

fn listen_addr() -> Result<SocketAddr, String> {
    let mut args = std::env::args().skip(1);
    // DEMO_LISTEN, then --listen, then the default (compose sets DEMO_LISTEN).
    let mut listen = std::env::var("DEMO_LISTEN").unwrap_or_else(|_| DEFAULT_LISTEN.to_string());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            "-h" | "--help" => {
                return Err(format!(
                "usage: demo_api [--listen ADDR]   (default $DEMO_LISTEN, else {DEFAULT_LISTEN})"
            ))
            }
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    listen
        .parse()
        .map_err(|e| format!("bad --listen {listen:?}: {e}"))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let addr = match listen_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("demo_api: cannot listen on {addr}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    eprintln!("demo_api: listening on http://{addr}");
    let state = Arc::new(State::default());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(state.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
