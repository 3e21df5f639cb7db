//! Requests the cache layer answers itself, before any lookup: request limits
//! (414, 431) and identity refusals (401, 403). Each answer is a small JSON
//! error that never echoes what the client sent.

use bytes::Bytes;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;

use crate::config::Limits;
use crate::identity::{Forbidden, IdentityError};

/// A request limit that was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Limit {
    /// The request target is longer than `limits.max_uri_len`: 414.
    UriTooLong,
    /// The request line and headers are larger than `limits.max_header_size`: 431.
    HeadersTooLarge,
}

impl Limit {
    /// The `limit` label of `tagcache_limit_hits_total`.
    pub(super) fn label(self) -> &'static str {
        match self {
            Limit::UriTooLong => "uri-too-long",
            Limit::HeadersTooLarge => "headers-too-large",
        }
    }
}

/// Bytes a request head takes on the wire: the request line and each header
/// line with its `: ` and CRLF.
pub(super) fn head_size(req: &RequestHeader) -> usize {
    let line = req.method.as_str().len() + 1 + req.raw_path().len() + " HTTP/1.1\r\n".len();
    req.headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum::<usize>()
        + line
}

/// The first limit `req` exceeds, if any.
pub(super) fn over_limit(req: &RequestHeader, limits: &Limits) -> Option<Limit> {
    if req.raw_path().len() > limits.max_uri_len {
        return Some(Limit::UriTooLong);
    }
    if head_size(req) > limits.max_header_size {
        return Some(Limit::HeadersTooLarge);
    }
    None
}

async fn respond(
    session: &mut Session,
    status: u16,
    error: &str,
    reason: &str,
    extra: Option<(&'static str, &'static str)>,
) -> pingora_error::Result<()> {
    let body = serde_json::json!({ "error": error, "reason": reason }).to_string();
    let mut resp = ResponseHeader::build(status, Some(6))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    resp.insert_header("x-cache-status", "BYPASS")?;
    resp.insert_header("x-cache-layer", crate::storage::Layer::name_of(None))?;
    if let Some((name, value)) = extra {
        resp.insert_header(name, value)?;
    }
    if status == 414 || status == 431 {
        // The rest of an oversized request is not worth reading.
        session.set_keepalive(None);
    }
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await?;
    Ok(())
}

/// Answers 414 or 431.
pub(super) async fn limit(session: &mut Session, limit: Limit) -> pingora_error::Result<()> {
    match limit {
        Limit::UriTooLong => {
            respond(
                session,
                414,
                "uri_too_long",
                "the request URI is too long",
                None,
            )
            .await
        }
        Limit::HeadersTooLarge => {
            respond(
                session,
                431,
                "headers_too_large",
                "the request headers are too large",
                None,
            )
            .await
        }
    }
}

/// Answers 401 with the RFC 6750 challenge.
pub(super) async fn unauthorized(
    session: &mut Session,
    e: IdentityError,
) -> pingora_error::Result<()> {
    let challenge = match e {
        IdentityError::Missing => "Bearer",
        _ => "Bearer error=\"invalid_token\"",
    };
    respond(
        session,
        401,
        "unauthorized",
        &e.to_string(),
        Some(("www-authenticate", challenge)),
    )
    .await
}

/// Answers 403.
pub(super) async fn forbidden(session: &mut Session, f: Forbidden) -> pingora_error::Result<()> {
    respond(session, 403, "forbidden", &f.to_string(), None).await
}
