//! The hit policy: may this stored response be served to this request as it
//! is? One answer for every path that writes a hit: the memory and Redis
//! fast path, a fill served to a request that waited on another instance,
//! and pingora-cache's hit filter.

use std::time::SystemTime;

use http::header;
use pingora_http::RequestHeader;

use super::active::Active;
use super::storability::shareable;
use super::{RequestCtx, TagCache};
use crate::generations::Verdict;
use crate::storage::Servable;

/// What the policy found about a stored response and a request.
pub(super) struct HitCheck {
    /// Whether a tag of the entry was purged after its birth.
    pub(super) tags: Verdict,
    /// The instance may have missed purges and the entry is too old to trust.
    pub(super) unsynced: bool,
    /// The request may not be served a stored answer (client `no-cache`, or
    /// `Authorization` on a response not marked shareable).
    pub(super) refused: bool,
    /// The route's TTL, shortened by a reload since the entry was stored,
    /// ended at this time.
    pub(super) capped_at: Option<SystemTime>,
    /// Only pingora-cache's full path can answer: the entry is stale or
    /// varied, the route varies, or the request is ranged or conditional
    /// (206, 304, variance). Never set when pingora-cache serves the hit.
    pub(super) full_path_only: bool,
}

impl HitCheck {
    /// The proxy may write the entry itself, as it is.
    pub(super) fn as_is(&self) -> bool {
        self.tags == Verdict::Valid
            && !self.unsynced
            && !self.refused
            && self.capped_at.is_none()
            && !self.full_path_only
    }
}

impl TagCache {
    /// The hit policy for `stored` and this request. `req` is the request
    /// when the proxy writes the hit itself; `None` when pingora-cache serves
    /// it, which handles freshness, variance, ranges and conditionals on its
    /// own. No side effects, so the fast path can ask and leave the answer
    /// to the full path.
    pub(super) fn hit_policy(
        &self,
        active: &Active,
        stored: &Servable<'_>,
        req: Option<&RequestHeader>,
        ctx: &RequestCtx,
    ) -> HitCheck {
        let now = SystemTime::now();
        let full_path_only = req.is_some_and(|req| {
            !stored.is_fresh(now)
                || stored.variance.is_some()
                || !ctx
                    .route
                    .is_some_and(|route| self.answers_as_stored(active, req, route, ctx))
        });
        // The route's TTL now, which a reload may have made shorter than
        // the one the entry was stored with.
        let capped_at = ctx
            .route
            .and_then(|i| active.config.routes.get(i))
            // From the epoch: the last revalidation, or on origin-mode
            // routes the moment the response was zero seconds old.
            .map(|r| stored.epoch + ctx.ttl_override.unwrap_or(r.ttl))
            .filter(|end| *end <= now);
        HitCheck {
            capped_at,
            tags: stored.info.map_or(Verdict::Valid, |info| {
                self.registry.check(info.born, &info.tags)
            }),
            unsynced: self.unsynced(stored.epoch),
            // Client no-cache, and RFC 9111 §3.5 for `Authorization`.
            refused: ctx.client_no_cache
                || (ctx.auth_unscoped && !shareable(&stored.header.headers)),
            full_path_only,
        }
    }

    /// The request side of the policy: not when the client asked for a
    /// fresh copy, when the route varies, or when the request is ranged or
    /// conditional (those need pingora-cache's handling: 206, 304,
    /// variance). Also asked before a store read or a wait that could only
    /// end in a hit written by the proxy.
    pub(super) fn answers_as_stored(
        &self,
        active: &Active,
        req: &RequestHeader,
        route: usize,
        ctx: &RequestCtx,
    ) -> bool {
        !ctx.client_no_cache
            && active.config.routes[route].vary.is_empty()
            && !req.headers.keys().any(|h| {
                h == header::RANGE
                    || h == header::IF_NONE_MATCH
                    || h == header::IF_MODIFIED_SINCE
                    || h == header::IF_MATCH
                    || h == header::IF_UNMODIFIED_SINCE
                    || h == header::IF_RANGE
            })
    }
}
