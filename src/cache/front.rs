//! The cache layer's side of the proxy listener's front path
//! ([`crate::proxy::front`]): which requests it may answer, the answer as
//! bytes, and the request's count and log line. Every rule is the one the
//! proxy's hooks apply, through the same functions: the front answers only
//! what [`TagCache::serve_fresh_hit`] would answer from memory, and the same
//! way.

use std::time::{Instant, SystemTime};

use pingora_error::Error;
use pingora_http::RequestHeader;

use super::{Admission, RequestCtx, TagCache};
use crate::storage::{wire, MemoryHit};

/// A fresh memory hit the front may write.
pub struct FrontHit {
    hit: MemoryHit,
    now: SystemTime,
    /// When the lookup started, for the lookup latency metric.
    started: Instant,
}

/// A hit's answer, as it goes on the wire.
pub struct FrontResponse {
    /// Header, body and framing, written in this order.
    pub wire: wire::Assembled,
    status: u16,
    /// Body bytes in it (not counting chunk framing), for the access log.
    body_bytes: usize,
}

impl TagCache {
    /// The front path's lookup: the request's checks (limits, identity,
    /// JWT, route, key, run-time settings) and a fresh memory entry that
    /// the hit policy lets the proxy write as it is ([`Self::hit_policy`]),
    /// with its header serialized at store time.
    /// `None` leaves the request to the proxy, which decides it from the
    /// start: nothing here was counted or written.
    pub fn front_hit(&self, req: &RequestHeader, ctx: &mut RequestCtx) -> Option<FrontHit> {
        let memory = self.fast?;
        let active = self.take_active(ctx);
        let hit = self.front_lookup(&active, memory, req, ctx);
        ctx.active = Some(active);
        hit
    }

    fn front_lookup(
        &self,
        active: &super::Active,
        memory: &crate::storage::MemoryStore,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Option<FrontHit> {
        let Admission::Admitted { found, auth } = self.admit(active, req, ctx) else {
            return None;
        };
        self.classify_request(active, req, found, ctx);
        let (Some(primary), Some(route)) = (&ctx.primary, ctx.route) else {
            return None;
        };
        // Asked before the store read, as the proxy's fast path does.
        if !self.answers_as_stored(active, req, route, ctx) {
            return None;
        }
        let started = Instant::now();
        let hash = pingora_cache::key::hash_key(primary);
        let now = SystemTime::now();
        let hit = memory.servable(&hash)?;
        hit.wire()?;
        if !self
            .hit_policy(active, &hit.servable(), Some(req), ctx)
            .as_is()
        {
            return None;
        }
        // Decided: from here on the request is counted as the proxy counts it.
        self.count_admission(&Admission::Admitted { found: None, auth });
        Some(FrontHit { hit, now, started })
    }

    /// The answer to a hit [`Self::front_hit`] found: the entry's header
    /// block, `Age`, the cache status fields ([`super::headers::decorate_hit`],
    /// which also records the status in `ctx`), `Date` and `Connection` as
    /// Pingora writes them, then the body.
    pub fn front_response(
        &self,
        hit: &FrontHit,
        ctx: &mut RequestCtx,
        keepalive: bool,
    ) -> FrontResponse {
        let stored = hit.hit.servable();
        let status = stored.header.status;
        let body = stored.body.clone();
        let date = pingora_core::protocols::http::date::get_cached_date();
        let fresh_until = stored.fresh_until;
        let layer = stored.layer;
        let body_bytes = body.len();
        let wire = match hit.hit.wire() {
            Some(head) => wire::assemble(
                head,
                stored.age(hit.now).as_secs(),
                |out| super::headers::decorate_hit(out, status, ctx, fresh_until, layer),
                &date,
                keepalive,
                body,
            ),
            // `front_hit` hands out only entries with a block.
            None => wire::Assembled {
                head: Vec::new(),
                body: bytes::Bytes::new(),
                tail: b"",
            },
        };
        self.metrics
            .lookup_latency
            .observe(hit.started.elapsed().as_secs_f64());
        FrontResponse {
            wire,
            status: status.as_u16(),
            body_bytes,
        }
    }

    /// Counts the request and writes its access log line, as the proxy's
    /// `logging` hook does: `error` is the failed write, if it failed.
    pub fn front_logged(
        &self,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
        response: &FrontResponse,
        error: Option<&Error>,
    ) {
        let written = error.is_none();
        self.log_exchange(
            req,
            ctx,
            &super::Exchange {
                status: written.then_some(response.status),
                body_bytes: if written { response.body_bytes } else { 0 },
                lookup: None,
            },
            error,
        );
    }
}
