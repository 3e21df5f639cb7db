//! The tags of a new entry: the route's templates filled from the request,
//! and the origin's tag header, hashed.

use std::borrow::Cow;

use pingora_cache::key::HashBinary;
use pingora_http::RequestHeader;

use super::active::Active;
use crate::config::Route;
use crate::key;
use crate::tags;

use super::*;

/// Every tag of a new entry, hashed.
pub(super) fn entry_tags(
    active: &Active,
    req: &RequestHeader,
    route: &Route,
    index: usize,
    primary_hash: HashBinary,
    ctx: &RequestCtx,
) -> Vec<u64> {
    let mut out = Vec::with_capacity(route.tags.len() + ctx.origin_tags.len() + 3);
    out.push(active.route_tags[index]);
    out.push(tags::hash(&tags::key_tag(&primary_hash)));
    if let Some(w) = ctx.workspace.as_deref() {
        out.push(tags::hash(&tags::workspace_tag(w)));
    }
    if !route.tags.is_empty() {
        // Only misses get here: re-deriving params and query is cheaper
        // than carrying owned copies through every request.
        let params = active
            .router
            .find(req.uri.path())
            .map(|m| m.params)
            .unwrap_or_default();
        let values = key::query_values(route, req.uri.query(), usize::MAX).unwrap_or_default();
        let vars = RouteVars {
            route,
            params: &params,
            values: &values,
            ctx,
        };
        for t in &route.tags {
            if let Ok(tag) = tags::render(t, &vars) {
                out.push(tags::hash(&tag));
            }
        }
    }
    out.extend(ctx.origin_tags.iter().map(|t| tags::hash(t)));
    out.sort_unstable();
    out.dedup();
    out
}

pub(super) struct RouteVars<'a> {
    pub(super) route: &'a Route,
    pub(super) params: &'a [Cow<'a, str>],
    pub(super) values: &'a key::QueryValues<'a>,
    pub(super) ctx: &'a RequestCtx,
}

impl tags::Vars for RouteVars<'_> {
    fn workspace(&self) -> Option<&str> {
        self.ctx.workspace.as_deref()
    }
    fn user(&self) -> Option<&str> {
        self.ctx.user.as_deref()
    }
    fn var(&self, name: &str) -> Option<&str> {
        let mut i = 0;
        for seg in &self.route.segments {
            if let crate::config::Segment::Param(p) = seg {
                if p == name {
                    return self.params.get(i).map(|c| c.as_ref());
                }
                i += 1;
            }
        }
        None
    }
    fn query(&self, name: &str) -> Option<&str> {
        key::value_of(self.route, self.values, name)
    }
}
