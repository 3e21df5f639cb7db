//! Verified identity: the workspace and user a request acts as, read from a
//! JWT that tagcache verifies itself instead of from headers a client could
//! forge.
//!
//! With `tenant.jwt` configured, [`Authenticator::authenticate`] runs before
//! any cache lookup (from `TagCache::request_filter`). It verifies the
//! `Authorization: Bearer` token (signature, algorithm, `exp`/`nbf` with
//! leeway, `iss`, `aud`), reads the workspaces the token allows and its user,
//! and checks what the request itself names: a workspace header
//! (`X-Workspace-ID`), a workspace path parameter (`/workspace/{workspace_id}`)
//! and a user header (`X-User-ID`) must agree with the token, or the request
//! is refused. The workspace and user that go into cache keys are then the
//! verified ones, never the headers.
//!
//! `jwt.rs` verifies tokens and extracts claims; `jwks.rs` holds a JWKS file's
//! keys and reloads them when the file changes.

mod jwks;
mod jwt;
#[cfg(test)]
mod key_tests;

use std::sync::Arc;

use http::HeaderName;
use pingora_http::RequestHeader;

pub use jwt::{JwtVerifier, KeyError};

use crate::config::Tenant;

/// Longest workspace or user id accepted, from a header or a claim.
pub const MAX_IDENTITY_LEN: usize = 256;

/// Longest bearer token looked at; longer ones are malformed without being decoded.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Most workspaces one token may list.
pub const MAX_WORKSPACES: usize = 1024;

/// What a verified token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Workspaces the bearer may act in; never empty.
    pub workspaces: Vec<String>,
    /// The bearer's user id, when `tenant.user.claim` is configured and the token carries it.
    pub user: Option<String>,
}

/// The identity a request acts as, once verified.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verified {
    /// The workspace the request acts in. `None` when the token allows several
    /// and the request names none of them: such a request cannot be keyed.
    pub workspace: Option<Arc<str>>,
    /// The user, when the token carries one.
    pub user: Option<Arc<str>>,
}

/// Why a request has no valid token. Answered with 401, or passed to the
/// origin uncached (`on_invalid: pass`). The messages are safe to return to
/// the client: they never contain the token or any key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// No `Authorization` header.
    #[error("missing bearer token")]
    Missing,
    /// `Authorization` is not one `Bearer <token>` value.
    #[error("authorization must be one Bearer token")]
    NotBearer,
    /// The token is not a well-formed JWT (including `alg: none`).
    #[error("malformed token")]
    Malformed,
    /// The token's algorithm is not one of `tenant.jwt.algorithms`, or does
    /// not fit the configured key (algorithm confusion).
    #[error("token algorithm not allowed")]
    Algorithm,
    /// No configured key matches the token's `kid`.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("invalid signature")]
    Signature,
    /// `exp` is past, beyond the leeway.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is missing or not the configured issuer.
    #[error("wrong token issuer")]
    Issuer,
    /// `aud` is missing or not the configured audience.
    #[error("wrong token audience")]
    Audience,
    /// The token has no usable workspace claim.
    #[error("token has no workspace claim")]
    NoWorkspace,
}

/// Why a request with a valid token is refused with 403: it names a workspace
/// or user its token does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Forbidden {
    /// The workspace named by the header or the path is not one the token allows.
    #[error("the token does not allow the workspace this request names")]
    Workspace,
    /// The header and the path name different workspaces, or a header is repeated or unreadable.
    #[error("the request names its workspace ambiguously")]
    Ambiguous,
    /// The user header is not the token's user.
    #[error("the user header does not match the token")]
    User,
}

/// The result of [`Authenticator::authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A valid token, consistent with the request.
    Verified(Verified),
    /// No valid token.
    Invalid(IdentityError),
    /// A valid token, but the request names a workspace or user it does not allow.
    Forbidden(Forbidden),
}

/// Verifies requests for `tenant.jwt`.
pub struct Authenticator {
    verifier: JwtVerifier,
    workspace_header: Option<HeaderName>,
    user_header: Option<HeaderName>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// The authenticator of a tenant config; `None` when `tenant.jwt` is not set.
    ///
    /// # Errors
    /// When the configured key cannot be used (already checked when the config
    /// was loaded, so only if a JWKS file became unreadable since).
    pub fn new(tenant: &Tenant) -> Option<Result<Self, KeyError>> {
        let jwt = tenant.jwt.as_ref()?;
        let header = |s: &Option<crate::config::IdentitySource>| {
            s.as_ref()
                .map(|crate::config::IdentitySource::Header(h)| h.clone())
        };
        Some(JwtVerifier::new(jwt).map(|verifier| Authenticator {
            verifier,
            workspace_header: header(&tenant.workspace),
            user_header: header(&tenant.user),
        }))
    }

    /// Verifies the request's bearer token and checks the workspace it names
    /// (in its workspace header, or as `path_workspace`, the decoded path
    /// parameter) and the user header against the token.
    pub fn authenticate(&self, req: &RequestHeader, path_workspace: Option<&str>) -> Outcome {
        let token = match bearer(req) {
            Ok(t) => t,
            Err(e) => return Outcome::Invalid(e),
        };
        let claims = match self.verifier.verify(token) {
            Ok(c) => c,
            Err(e) => return Outcome::Invalid(e),
        };
        decide(
            &claims,
            self.workspace_header.as_ref().map(|h| header_value(req, h)),
            path_workspace,
            self.user_header.as_ref().map(|h| header_value(req, h)),
        )
    }
}

/// One identity header of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValue<'a> {
    /// Not sent.
    Absent,
    /// Sent once, readable.
    One(&'a str),
    /// Sent twice, or not a printable ASCII id of a sane length.
    Bad,
}

/// Reads an identity header: absent, one readable value, or bad.
pub fn header_value<'r>(req: &'r RequestHeader, name: &HeaderName) -> HeaderValue<'r> {
    let mut values = req.headers.get_all(name).iter();
    let Some(v) = values.next() else {
        return HeaderValue::Absent;
    };
    if values.next().is_some() {
        return HeaderValue::Bad;
    }
    match v.to_str().map(str::trim) {
        Ok(v) if valid_id(v) => HeaderValue::One(v),
        _ => HeaderValue::Bad,
    }
}

/// Whether `v` can be a workspace or user id: printable ASCII, no spaces, bounded.
pub fn valid_id(v: &str) -> bool {
    !v.is_empty() && v.len() <= MAX_IDENTITY_LEN && v.bytes().all(|b| b.is_ascii_graphic())
}

/// The token of the request's single `Authorization: Bearer` header.
///
/// # Errors
/// [`IdentityError::Missing`] without the header, [`IdentityError::NotBearer`]
/// for another scheme or a repeated header, [`IdentityError::Malformed`] for
/// a token that cannot be a JWT.
pub fn bearer(req: &RequestHeader) -> Result<&str, IdentityError> {
    let mut values = req.headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next().ok_or(IdentityError::Missing)?;
    if values.next().is_some() {
        return Err(IdentityError::NotBearer);
    }
    let value = value.to_str().map_err(|_| IdentityError::NotBearer)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(IdentityError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(IdentityError::NotBearer);
    }
    let token = token.trim_start();
    let jwt_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'=');
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || !token.bytes().all(jwt_char) {
        return Err(IdentityError::Malformed);
    }
    Ok(token)
}

/// Chooses the request's workspace and checks its user header, given what
/// its token grants. Pure, so every rule is tested directly.
///
/// `workspace_header` and `user_header` are `None` when no such header is
/// configured; `path_workspace` is the route's workspace path parameter.
pub fn decide(
    claims: &Claims,
    workspace_header: Option<HeaderValue<'_>>,
    path_workspace: Option<&str>,
    user_header: Option<HeaderValue<'_>>,
) -> Outcome {
    let header = match workspace_header.unwrap_or(HeaderValue::Absent) {
        HeaderValue::Absent => None,
        HeaderValue::One(v) => Some(v),
        HeaderValue::Bad => return Outcome::Forbidden(Forbidden::Ambiguous),
    };
    let named = match (header, path_workspace) {
        (Some(h), Some(p)) if h != p => return Outcome::Forbidden(Forbidden::Ambiguous),
        (Some(h), _) => Some(h),
        (None, p) => p,
    };
    let workspace = match named {
        Some(w) if claims.workspaces.iter().any(|a| a == w) => Some(w),
        Some(_) => return Outcome::Forbidden(Forbidden::Workspace),
        None if claims.workspaces.len() == 1 => Some(claims.workspaces[0].as_str()),
        None => None,
    };
    match (
        user_header.unwrap_or(HeaderValue::Absent),
        claims.user.as_deref(),
    ) {
        (HeaderValue::Absent, _) => {}
        (HeaderValue::One(u), Some(c)) if u == c => {}
        _ => return Outcome::Forbidden(Forbidden::User),
    }
    Outcome::Verified(Verified {
        workspace: workspace.map(Arc::from),
        user: claims.user.as_deref().map(Arc::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(ws: &[&str], user: Option<&str>) -> Claims {
        Claims {
            workspaces: ws.iter().map(|s| s.to_string()).collect(),
            user: user.map(str::to_string),
        }
    }

    fn ok(ws: Option<&str>, user: Option<&str>) -> Outcome {
        Outcome::Verified(Verified {
            workspace: ws.map(Arc::from),
            user: user.map(Arc::from),
        })
    }

    /// `(claims, header, path, user header)` to the expected outcome.
    fn check(
        c: &Claims,
        header: HeaderValue<'_>,
        path: Option<&str>,
        user: HeaderValue<'_>,
        expected: Outcome,
    ) {
        let got = decide(c, Some(header), path, Some(user));
        assert_eq!(got, expected, "{header:?} {path:?} {user:?}");
    }

    #[test]
    fn single_workspace_tokens() {
        use HeaderValue::*;
        let c = claims(&["w1"], Some("u1"));
        check(&c, Absent, None, Absent, ok(Some("w1"), Some("u1")));
        check(&c, One("w1"), None, Absent, ok(Some("w1"), Some("u1")));
        check(
            &c,
            One("w1"),
            Some("w1"),
            One("u1"),
            ok(Some("w1"), Some("u1")),
        );
        check(
            &c,
            One("w2"),
            None,
            Absent,
            Outcome::Forbidden(Forbidden::Workspace),
        );
        check(
            &c,
            Absent,
            Some("w2"),
            Absent,
            Outcome::Forbidden(Forbidden::Workspace),
        );
        check(
            &c,
            One("w1"),
            Some("w2"),
            Absent,
            Outcome::Forbidden(Forbidden::Ambiguous),
        );
        check(
            &c,
            Bad,
            None,
            Absent,
            Outcome::Forbidden(Forbidden::Ambiguous),
        );
        check(
            &c,
            Absent,
            None,
            One("u2"),
            Outcome::Forbidden(Forbidden::User),
        );
        check(&c, Absent, None, Bad, Outcome::Forbidden(Forbidden::User));
    }

    #[test]
    fn multi_workspace_tokens_need_the_request_to_choose() {
        use HeaderValue::*;
        let c = claims(&["w1", "w2"], None);
        check(&c, Absent, None, Absent, ok(None, None));
        check(&c, One("w2"), None, Absent, ok(Some("w2"), None));
        check(&c, Absent, Some("w1"), Absent, ok(Some("w1"), None));
        check(
            &c,
            One("w3"),
            None,
            Absent,
            Outcome::Forbidden(Forbidden::Workspace),
        );
        // A user header cannot be checked against a token without a user.
        check(
            &c,
            Absent,
            None,
            One("u1"),
            Outcome::Forbidden(Forbidden::User),
        );
    }

    #[test]
    fn headers_are_read_strictly() {
        let name = HeaderName::from_static("x-workspace-id");
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        assert_eq!(header_value(&req, &name), HeaderValue::Absent);
        req.insert_header("x-workspace-id", " w1 ").unwrap();
        assert_eq!(header_value(&req, &name), HeaderValue::One("w1"));
        req.append_header("x-workspace-id", "w2").unwrap();
        assert_eq!(header_value(&req, &name), HeaderValue::Bad);
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("x-workspace-id", "a b").unwrap();
        assert_eq!(header_value(&req, &name), HeaderValue::Bad);
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header(
            "x-workspace-id",
            http::HeaderValue::from_bytes(b"w\xff").unwrap(),
        )
        .unwrap();
        assert_eq!(header_value(&req, &name), HeaderValue::Bad);
    }

    #[test]
    fn bearer_parsing() {
        let req = |values: &[&str]| {
            let mut r = RequestHeader::build("GET", b"/", None).unwrap();
            for v in values {
                r.append_header("authorization", *v).unwrap();
            }
            r
        };
        assert_eq!(bearer(&req(&[])), Err(IdentityError::Missing));
        assert_eq!(bearer(&req(&["Bearer a.b.c"])), Ok("a.b.c"));
        assert_eq!(bearer(&req(&["bearer   a.b.c "])), Ok("a.b.c"));
        assert_eq!(
            bearer(&req(&["Basic dXNlcjpwYXNz"])),
            Err(IdentityError::NotBearer)
        );
        assert_eq!(bearer(&req(&["Bearer"])), Err(IdentityError::NotBearer));
        assert_eq!(
            bearer(&req(&["Bearer a.b.c", "Bearer d.e.f"])),
            Err(IdentityError::NotBearer)
        );
        assert_eq!(bearer(&req(&["Bearer a b"])), Err(IdentityError::Malformed));
        assert_eq!(
            bearer(&req(&["Bearer a.b\"c"])),
            Err(IdentityError::Malformed)
        );
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(
            bearer(&req(&[long.as_str()])),
            Err(IdentityError::Malformed)
        );
    }
}
