//! `POST /explain`: what this instance holds for a URL and why a hit would
//! or would not serve it (the entry's birth, its tags' generations, the
//! purge floor, the lease).

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{error, json_response, parse_json};
use crate::cache::{TagCache, Unkeyable};
use crate::key::Identity;

/// Body of `POST /explain`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainBody {
    /// Path and query, as a client would request it.
    url: String,
    /// The workspace the entry was stored for (default: the admin request's
    /// workspace header).
    #[serde(default)]
    workspace: Option<String>,
    /// The user the entry was stored for (default: the admin request's user
    /// header).
    #[serde(default)]
    user: Option<String>,
    /// Tag names to recognize among the entry's tag hashes.
    #[serde(default)]
    tags: Vec<String>,
    /// Request fields a `Vary` may select a variant by (`Accept-Encoding`,
    /// the route's `vary` list), as the client would send them.
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Answers `POST /explain` with `body`; `headers` is the identity the admin
/// request's own headers carry, used where the body names none.
pub(super) async fn respond(
    cache: &TagCache,
    headers: (Option<String>, Option<String>),
    body: &[u8],
) -> Response<Vec<u8>> {
    let parsed: ExplainBody = match parse_json(body) {
        Ok(b) => b,
        Err((msg, field)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                &msg,
                field.as_deref(),
            )
        }
    };
    let mut fields = Vec::with_capacity(parsed.headers.len());
    for (name, value) in &parsed.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => fields.push((name, value)),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    &format!("headers: {name:?} is not a valid request field"),
                    Some("headers"),
                )
            }
        }
    }
    let workspace = parsed.workspace.or(headers.0);
    let user = parsed.user.or(headers.1);
    let who = Identity {
        workspace: workspace.as_deref(),
        user: user.as_deref(),
    };
    match cache.explain(&parsed.url, who, &fields, &parsed.tags).await {
        Ok(explained) => json_response(
            StatusCode::OK,
            &serde_json::to_value(&explained).unwrap_or_else(|_| json!({})),
        ),
        Err(e) => {
            let message = match e {
                Unkeyable::Invalid => format!("{} is not a valid path and query", parsed.url),
                other => format!("{} is not cached: {}", parsed.url, other.as_str()),
            };
            error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_url",
                &message,
                Some("url"),
            )
        }
    }
}
