//! `/settings`: the run-time switches and TTLs, per workspace and per route
//! (the users' "Cache Settings" panel), read and changed over the admin API.
//!
//! ```text
//! GET    /settings                          every setting, and where they are kept
//! GET    /settings/workspaces/{workspace}   one workspace's ({} when none)
//! PUT    /settings/workspaces/{workspace}   replace them: {"enabled": false, "routes": {"list": {"ttl": "60s"}}}
//! DELETE /settings/workspaces/{workspace}   back to the config's behaviour
//! GET|PUT|DELETE /settings/routes/{route}   the same for a route, every workspace: {"enabled": false, "ttl": "30s"}
//! ```
//!
//! Bodies are checked field by field (422 naming the field); a route must
//! exist in the running config. A change is kept (Redis or the state file)
//! before it is answered; Redis trouble is a 503 and nothing changes.

use http::{Method, Response, StatusCode};
use serde_json::json;

use super::{error, json_response};
use crate::cache::{Change, TagCache};
use crate::settings::{self, RouteSetting, SettingsError, WorkspaceSetting};

/// Answers a `/settings` request (`path` starts with `/settings`).
pub(crate) async fn handle(
    cache: &TagCache,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Response<Vec<u8>> {
    let rest = path.trim_start_matches("/settings");
    let (kind, name) = match rest.trim_start_matches('/').split_once('/') {
        Some((kind, name)) => (kind, Some(decode(name))),
        None if rest.is_empty() || rest == "/" => ("", None),
        None => (rest.trim_start_matches('/'), None),
    };
    let routes: Vec<String> = cache
        .config()
        .routes
        .iter()
        .map(|r| r.name.clone())
        .collect();
    let named = name.is_some();
    match (method.as_str(), kind, name) {
        ("GET", "", None) => {
            let s = cache.settings();
            json_response(
                StatusCode::OK,
                &json!({
                    "workspaces": s.workspaces,
                    "routes": s.routes,
                    "kept_in": cache.settings_kept_in(),
                }),
            )
        }
        ("GET", "workspaces", Some(w)) => {
            let s = cache.settings();
            json_response(StatusCode::OK, &json!(s.workspaces.get(&w).cloned().unwrap_or_default()))
        }
        ("GET", "routes", Some(r)) => {
            let s = cache.settings();
            json_response(StatusCode::OK, &json!(s.routes.get(&r).cloned().unwrap_or_default()))
        }
        ("PUT", "workspaces", Some(w)) => {
            let parsed = settings::parse::<WorkspaceSetting>(body).and_then(|v| {
                settings::check_names(Some(&w), v.routes.keys(), "routes.", &routes)?;
                Ok(v)
            });
            match parsed {
                Ok(v) => write(cache, Change::Workspace(w, Some(v))).await,
                Err(e) => refused(&e),
            }
        }
        ("PUT", "routes", Some(r)) => {
            let parsed = settings::parse::<RouteSetting>(body).and_then(|v| {
                settings::check_names(None, std::iter::once(&r), "route ", &routes)
                    .map_err(|e| SettingsError { field: "route".into(), ..e })?;
                Ok(v)
            });
            match parsed {
                Ok(v) => write(cache, Change::Route(r, Some(v))).await,
                Err(e) => refused(&e),
            }
        }
        ("DELETE", "workspaces", Some(w)) => write(cache, Change::Workspace(w, None)).await,
        ("DELETE", "routes", Some(r)) => write(cache, Change::Route(r, None)).await,
        (_, "", _) | (_, "workspaces" | "routes", _) if kind.is_empty() || named => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "GET, PUT or DELETE on /settings/workspaces/{workspace} and /settings/routes/{route}; GET on /settings",
            None,
        ),
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such settings path", None),
    }
}

async fn write(cache: &TagCache, change: Change) -> Response<Vec<u8>> {
    let what = change.describe();
    match cache.change_settings(change).await {
        Ok(()) => {
            tracing::info!(target: "tagcache::settings", change = %what, "settings changed");
            let s = cache.settings();
            json_response(
                StatusCode::OK,
                &json!({ "ok": true, "workspaces": s.workspaces, "routes": s.routes }),
            )
        }
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "settings_not_saved",
            &e.to_string(),
            None,
        ),
    }
}

fn refused(e: &SettingsError) -> Response<Vec<u8>> {
    error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_settings",
        &e.message,
        Some(&e.field),
    )
}

/// A path segment, percent-decoded (workspace ids may hold `%`-escaped bytes).
fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}
