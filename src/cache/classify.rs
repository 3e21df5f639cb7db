//! Request classification: what a request is (refused, bypassed, or a
//! cacheable request on a route with its key), read once per request.

use std::borrow::Cow;
use std::sync::Arc;

use http::header;
use pingora_http::RequestHeader;
use pingora_proxy::Session;

use super::active::Active;
use super::storability::client_wants_fresh;
use crate::config::{Config, IdentitySource, OnInvalid, Route, UnkeyedAction};
use crate::identity::{self, Outcome};
use crate::key::{self, BypassReason, Identity};
use crate::route::RouteMatch;

use super::*;

/// What the checks before any lookup decide ([`TagCache::admit`]).
pub(super) enum Admission<'r> {
    /// Over a request limit: 414 or 431.
    Limit(refuse::Limit),
    /// No valid token where one is required: 401.
    Unauthorized(identity::IdentityError),
    /// The token does not allow what the request names: 403.
    Forbidden(identity::Forbidden),
    /// The request goes on, with its route if it has one; `auth` is the
    /// JWT check's outcome to count, when there was one.
    Admitted {
        found: Option<RouteMatch<'r>>,
        auth: Option<&'static str>,
    },
}

impl TagCache {
    pub(super) async fn check_request(
        &self,
        active: &Active,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora_error::Result<bool> {
        let admission = self.admit(active, session.req_header(), ctx);
        self.count_admission(&admission);
        match admission {
            Admission::Limit(limit) => refuse::limit(session, limit).await?,
            Admission::Unauthorized(e) => refuse::unauthorized(session, e).await?,
            Admission::Forbidden(f) => refuse::forbidden(session, f).await?,
            Admission::Admitted { found, .. } => {
                self.classify_request(active, session.req_header(), found, ctx);
                self.count_bypass_limit(ctx);
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The checks before any lookup, without their effects: the request
    /// limits (414, 431) and, with `tenant.jwt`, the token and the
    /// workspace it names (401, 403). Sets the request id and, when the
    /// request goes on, the verified identity or why it bypasses. Counted
    /// by [`Self::count_admission`] and answered by the caller: the proxy's
    /// `request_filter` always, the front path only for a hit.
    pub(super) fn admit<'r>(
        &self,
        active: &Active,
        req: &'r RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Admission<'r> {
        ctx.request_id = Some(request_id::of(req));
        if let Some(limit) = refuse::over_limit(req, &active.config.limits) {
            return Admission::Limit(limit);
        }
        // Not UTF-8, or absolute-form: the path we would key is not the
        // target the origin receives, so no route matches.
        let found = if literal_target(req) {
            active.router.find(req.uri.path())
        } else {
            None
        };
        let mut auth = None;
        if let (Some(jwt), Some(found)) = (&active.config.tenant.jwt, &found) {
            if matches!(req.method, http::Method::GET | http::Method::HEAD) {
                let route = &active.config.routes[found.index];
                let path_workspace = param(route, &found.params, &jwt.workspace_param);
                let outcome = match &active.auth {
                    Some(auth) => auth.authenticate(req, path_workspace),
                    None => Outcome::Invalid(identity::IdentityError::UnknownKey),
                };
                match outcome {
                    Outcome::Verified(v) => {
                        auth = Some("ok");
                        ctx.verified = Some(v);
                    }
                    Outcome::Invalid(e) => match jwt.on_invalid {
                        OnInvalid::Reject => return Admission::Unauthorized(e),
                        OnInvalid::Pass => {
                            auth = Some("invalid");
                            ctx.identity_bypass = Some(BypassReason::Unauthenticated);
                        }
                    },
                    Outcome::Forbidden(f) => return Admission::Forbidden(f),
                }
            }
        }
        Admission::Admitted { found, auth }
    }

    /// Counts what [`Self::admit`] decided: the limit hit, or the JWT
    /// check's outcome.
    pub(super) fn count_admission(&self, admission: &Admission<'_>) {
        let auth = match admission {
            Admission::Limit(limit) => {
                self.metrics
                    .limits
                    .with_label_values(&[limit.label()])
                    .inc();
                return;
            }
            Admission::Unauthorized(_) => "invalid",
            Admission::Forbidden(_) => "forbidden",
            Admission::Admitted { auth: None, .. } => return,
            Admission::Admitted {
                auth: Some(label), ..
            } => label,
        };
        self.metrics.auth.with_label_values(&[auth]).inc();
    }

    /// Counts a bypass for a request limit (`tagcache_limit_hits_total`),
    /// once the request is classified.
    pub(super) fn count_bypass_limit(&self, ctx: &RequestCtx) {
        if let Some(
            reason @ (BypassReason::UriTooLong
            | BypassReason::TooManyParams
            | BypassReason::UnkeyedHeader),
        ) = ctx.bypass
        {
            self.metrics
                .limits
                .with_label_values(&[reason.as_str()])
                .inc();
        }
    }

    /// Matches the route and builds the key, or records why the cache is
    /// bypassed. Runs once per request (the front path may have run it
    /// before, on a context it then dropped). Counts nothing: see
    /// [`Self::count_bypass_limit`].
    pub(super) fn classify_request(
        &self,
        active: &Active,
        req: &RequestHeader,
        found: Option<RouteMatch<'_>>,
        ctx: &mut RequestCtx,
    ) {
        ctx.classified = true;
        let Some(found) = found else {
            return;
        };
        ctx.route = Some(found.index);
        let route = &active.config.routes[found.index];
        let settings = self.settings.load();
        match self.classify(
            &active.config,
            Some(&settings),
            req,
            route,
            &found.params,
            ctx,
        ) {
            // Sync purges: serve nothing stored while a complete purge could be newer.
            Ok(_) if self.fanout().is_some_and(|f| !f.confirmed()) => {
                ctx.bypass = Some(BypassReason::Unconfirmed);
            }
            Ok(primary) => ctx.primary = Some(primary),
            Err(reason) => ctx.bypass = Some(reason),
        }
    }

    /// Decides whether the request can use the cache and builds its key.
    pub(super) fn classify(
        &self,
        config: &Config,
        settings: Option<&crate::settings::Settings>,
        req: &RequestHeader,
        route: &Route,
        params: &[Cow<'_, str>],
        ctx: &mut RequestCtx,
    ) -> Result<Vec<u8>, BypassReason> {
        // HEAD is answered from a stored GET on origin-mode routes (RFC 9110
        // §9.3.2); config-mode routes send it past the cache, as always.
        if req.method != http::Method::GET
            && (req.method != http::Method::HEAD
                || route.freshness == crate::config::Freshness::Config)
        {
            return Err(BypassReason::Method);
        }
        let present = Present::of(req, &config.unkeyed_headers);
        // A body can change the origin's answer (Express parses GET bodies)
        // and is not in the key.
        if present.body && storability::has_body(req) {
            return Err(BypassReason::RequestBody);
        }
        // Pingora drops the fields a `Connection` header nominates before the
        // origin sees them: a keyed identity or `Vary` header could vanish
        // between the key and the origin, or an unkeyed one slip past its rule.
        if present.hop_by_hop && storability::nominates_fields(req) {
            return Err(BypassReason::HopByHop);
        }
        // `request_filter` answers 414 first; this keeps embedders that do
        // not call it safe.
        let uri_len = req.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
        if uri_len > config.limits.max_uri_len {
            return Err(BypassReason::UriTooLong);
        }
        if let Some(reason) = ctx.identity_bypass {
            return Err(reason);
        }
        let unkeyed = present.unkeyed;
        if unkeyed && route.unkeyed_headers == UnkeyedAction::Bypass {
            return Err(BypassReason::UnkeyedHeader);
        }
        let tenant = &config.tenant;
        let jwt = tenant.jwt.is_some();
        // With `tenant.jwt`, identities come only from the verified token; a
        // request `request_filter` did not verify has none.
        let verified = ctx.verified.as_ref();
        let workspace = match &tenant.workspace {
            Some(_) if jwt => Some(
                verified
                    .and_then(|v| v.workspace.as_deref())
                    .ok_or(BypassReason::NoWorkspace)?,
            ),
            Some(source) => Some(identity(req, source).ok_or(BypassReason::NoWorkspace)?),
            None => None,
        };
        let values = key::query_values(route, req.uri.query(), config.limits.max_query_params)?;
        if key::bypassed(route, &values) {
            return Err(BypassReason::Rule);
        }
        // Run-time switches and TTLs (URL purges pass no settings: they
        // address the entry whatever the switches say).
        if let Some(settings) = settings {
            match settings.decide(workspace, &route.name) {
                crate::settings::Decision::Disabled => return Err(BypassReason::Disabled),
                crate::settings::Decision::Cache { ttl } => ctx.ttl_override = ttl,
            }
        }
        let user = if key::is_per_user(route, &values) {
            let source = tenant.user.as_ref().ok_or(BypassReason::NoUser)?;
            if jwt {
                Some(
                    verified
                        .and_then(|v| v.user.as_deref())
                        .ok_or(BypassReason::NoUser)?,
                )
            } else {
                Some(identity(req, source).ok_or(BypassReason::NoUser)?)
            }
        } else {
            None
        };
        // RFC 9111 §3.5: a response to a request with Authorization is only
        // shared when the key holds the requester's identity, or when the
        // origin marked it shareable (checked on hit and on store).
        ctx.auth_unscoped = workspace.is_none() && present.authorization;
        ctx.strip_unkeyed = unkeyed && route.unkeyed_headers == UnkeyedAction::Strip;
        if route.honor_client_no_cache && present.freshness && client_wants_fresh(req) {
            ctx.client_no_cache = true;
        }
        let primary = key::primary(route, Identity { workspace, user }, params, &values);
        if config.debug_headers {
            ctx.key_debug = Some(key::describe(&primary));
        }
        ctx.workspace = workspace.map(Arc::from);
        ctx.user = user.map(Arc::from);
        Ok(primary)
    }
}

/// Which of the request fields that [`TagCache::classify`] reads the request
/// has, from one pass over its names. A request carries a handful of
/// fields: comparing names is cheaper than a hash lookup per name asked
/// about (one for each check, and one for each of the ten or so unkeyed
/// names). Each check still reads its fields when they are there.
#[derive(Debug, Default)]
struct Present {
    /// `Transfer-Encoding` or `Content-Length` ([`storability::has_body`]).
    body: bool,
    /// `Connection` or `Upgrade` ([`storability::nominates_fields`]).
    hop_by_hop: bool,
    /// `Cache-Control` or `Pragma` ([`client_wants_fresh`]).
    freshness: bool,
    /// `Authorization`.
    authorization: bool,
    /// One of the config's unkeyed headers.
    unkeyed: bool,
}

impl Present {
    fn of(req: &RequestHeader, unkeyed: &[http::HeaderName]) -> Self {
        let mut present = Present::default();
        for name in req.headers.keys() {
            match *name {
                header::TRANSFER_ENCODING | header::CONTENT_LENGTH => present.body = true,
                header::CONNECTION | header::UPGRADE => present.hop_by_hop = true,
                header::CACHE_CONTROL | header::PRAGMA => present.freshness = true,
                header::AUTHORIZATION => present.authorization = true,
                _ => {}
            }
            present.unkeyed = present.unkeyed || unkeyed.contains(name);
        }
        present
    }
}

/// Whether the request target is exactly the path and query we route and key:
/// not the lossy rendering of non-UTF-8 bytes, not an absolute-form URL.
pub(super) fn literal_target(req: &RequestHeader) -> bool {
    req.raw_path_is_utf8()
        && req.uri.path_and_query().map(|pq| pq.as_str().as_bytes()) == Some(req.raw_path())
}

/// The value of the route's path parameter `name`, if it has one.
pub(super) fn param<'a>(route: &Route, params: &'a [Cow<'_, str>], name: &str) -> Option<&'a str> {
    route
        .segments
        .iter()
        .filter(|s| matches!(s, crate::config::Segment::Param(_)))
        .zip(params)
        .find(|(s, _)| matches!(s, crate::config::Segment::Param(p) if p == name))
        .map(|(_, v)| v.as_ref())
}

/// The workspace a request on a route is counted under in the per-workspace
/// figures: the one its key holds; for a request that bypassed before its key
/// was built, the verified one (`tenant.jwt`) or the header's. Requests that
/// match no route are not counted.
pub(super) fn workspace_of<'a>(
    active: &Active,
    req: &'a RequestHeader,
    ctx: &'a RequestCtx,
) -> Option<&'a str> {
    ctx.route?;
    if let Some(w) = ctx.workspace.as_deref() {
        return Some(w);
    }
    match (&active.config.tenant.jwt, &active.config.tenant.workspace) {
        (Some(_), _) => ctx.verified.as_ref()?.workspace.as_deref(),
        (None, Some(source)) => identity(req, source),
        (None, None) => None,
    }
}

/// Reads one identity from the request; malformed, repeated or oversized
/// values count as absent.
pub(super) fn identity<'r>(req: &'r RequestHeader, source: &IdentitySource) -> Option<&'r str> {
    match source {
        IdentitySource::Header(name) => match identity::header_value(req, name) {
            identity::HeaderValue::One(v) => Some(v),
            identity::HeaderValue::Absent | identity::HeaderValue::Bad => None,
        },
    }
}
