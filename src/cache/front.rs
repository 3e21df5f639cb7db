//! The cache layer's side of the proxy listener's front path
//! ([`crate::proxy::front`]): which requests it may answer, the answer as
//! bytes, and the request's count and log line. Every rule is the one the
//! proxy's hooks apply, through the same functions: the front answers only
//! what [`TagCache::serve_fresh_hit`] would answer from memory or Redis, and
//! the same way.
//!
//! A request the front hands to the proxy after asking Redis carries what
//! Redis answered ([`FrontAsked`], a task-local value around the proxy's
//! handling of that one request), so the proxy's fast path does not ask
//! again: a miss costs one `GET`, and a Redis stall one timeout, as on the
//! proxy's own path.

use std::cell::Cell;
use std::future::Future;
use std::time::{Instant, SystemTime};

use pingora_cache::key::HashBinary;
use pingora_error::Error;
use pingora_http::RequestHeader;

use super::{Admission, RequestCtx, TagCache};
use crate::storage::envelope::Decoded;
use crate::storage::wire::{self, WireHead};
use crate::storage::{Layer, MemoryHit, Servable};

/// A fresh hit the front may write.
pub struct FrontHit {
    found: Found,
    now: SystemTime,
    /// When the lookup started, for the lookup latency metric.
    started: Instant,
}

/// Where a front hit's entry came from, with its header block.
enum Found {
    /// A memory entry, which keeps its block.
    Memory(MemoryHit),
    /// A Redis entry, with the block built from its header.
    Redis(Box<(Decoded, WireHead)>),
}

impl Found {
    fn servable(&self) -> Servable<'_> {
        match self {
            Found::Memory(hit) => hit.servable(),
            Found::Redis(found) => found.0.servable(),
        }
    }

    fn wire(&self) -> Option<&WireHead> {
        match self {
            Found::Memory(hit) => hit.wire(),
            Found::Redis(found) => Some(&found.1),
        }
    }
}

/// What the front path's memory step decided ([`TagCache::front_hit`]).
pub enum FrontStep {
    /// A fresh memory hit to write.
    Hit(FrontHit),
    /// Memory has nothing for a request the front could answer from Redis:
    /// ask it with [`TagCache::front_redis_hit`].
    Redis(RedisLookup),
    /// Left to the proxy, which decides it from the start.
    Pass,
}

/// A Redis lookup the front path may make, decided by its memory step.
pub struct RedisLookup {
    hash: HashBinary,
    auth: Option<&'static str>,
    started: Instant,
}

/// What Redis answered the front path for a request it then handed to the
/// proxy: the proxy's fast path does not ask Redis again for this key, and
/// when Redis had nothing to read (absent, unreadable, failing or slow),
/// pingora-cache's first lookup does not either ([`crate::storage::RedisAsked`]).
#[derive(Debug, Clone, Copy)]
pub struct FrontAsked {
    hash: HashBinary,
    /// Redis held a readable entry (that the front could not write as it is).
    found: bool,
}

tokio::task_local! {
    /// What the front path learned from Redis, around the proxy's handling
    /// of the request it handed over; taken once.
    static ASKED: Cell<Option<FrontAsked>>;
}

impl FrontAsked {
    /// Runs `proxy` (the proxy's handling of the request the front asked
    /// Redis for) with this answer where the fast path finds it.
    pub async fn hand_over<F: Future>(self, proxy: F) -> F::Output {
        ASKED.scope(Cell::new(Some(self)), proxy).await
    }

    /// What the front path learned from Redis about `hash`, if this request
    /// came from it after a Redis lookup. `Some(found)`: do not ask Redis
    /// again. One answer per request.
    pub(super) fn take(hash: &HashBinary) -> Option<bool> {
        let asked = ASKED.try_with(Cell::take).ok().flatten()?;
        (asked.hash == *hash).then_some(asked.found)
    }
}

/// A hit's answer, as it goes on the wire.
pub struct FrontResponse {
    /// Header, body and framing, written in this order.
    pub wire: wire::Assembled,
    status: u16,
    /// Body bytes in it (not counting chunk framing), for the access log.
    body_bytes: usize,
    layer: Layer,
}

impl FrontResponse {
    /// The tier the hit came from.
    pub fn layer(&self) -> Layer {
        self.layer
    }
}

impl TagCache {
    /// The front path's lookup: the request's checks (limits, identity,
    /// JWT, route, key, run-time settings) and a fresh memory entry that
    /// the hit policy lets the proxy write as it is ([`Self::hit_policy`]),
    /// with its header serialized at store time. When memory has nothing
    /// and there is a Redis tier, a [`FrontStep::Redis`] for
    /// [`Self::front_redis_hit`].
    /// [`FrontStep::Pass`] leaves the request to the proxy, which decides
    /// it from the start: nothing here was counted or written.
    pub fn front_hit(&self, req: &RequestHeader, ctx: &mut RequestCtx) -> FrontStep {
        if self.fast.is_none() && self.redis.is_none() {
            return FrontStep::Pass;
        }
        let active = self.take_active(ctx);
        let step = self
            .front_lookup(&active, req, ctx)
            .unwrap_or(FrontStep::Pass);
        ctx.active = Some(active);
        step
    }

    fn front_lookup(
        &self,
        active: &super::Active,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Option<FrontStep> {
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
        let Some(hit) = self.fast.and_then(|memory| memory.servable(&hash)) else {
            // As the proxy's fast path: Redis only when memory had nothing.
            return self
                .redis
                .is_some()
                .then_some(FrontStep::Redis(RedisLookup {
                    hash,
                    auth,
                    started,
                }));
        };
        hit.wire()?;
        if !self
            .hit_policy(active, &hit.servable(), Some(req), ctx)
            .as_is()
        {
            return None;
        }
        // Decided: from here on the request is counted as the proxy counts it.
        self.count_admission(&Admission::Admitted { found: None, auth });
        Some(FrontStep::Hit(FrontHit {
            found: Found::Memory(hit),
            now,
            started,
        }))
    }

    /// The front path's Redis step, after [`Self::front_hit`] found nothing
    /// in memory: the proxy's fast path's one `GET` ([`RedisStore::fetch`]:
    /// its timeout and circuit breaker, so a slow Redis is a miss), the same
    /// hit policy, and a servable entry copied into memory as the proxy
    /// copies it. `Err` hands the request to the proxy with what Redis
    /// answered ([`FrontAsked::hand_over`]); nothing was counted or written.
    ///
    /// [`RedisStore::fetch`]: crate::storage::RedisStore::fetch
    pub async fn front_redis_hit(
        &self,
        lookup: RedisLookup,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<FrontHit, FrontAsked> {
        let active = self.take_active(ctx);
        let hit = self.front_redis(&active, lookup, req, ctx).await;
        ctx.active = Some(active);
        hit
    }

    async fn front_redis(
        &self,
        active: &super::Active,
        lookup: RedisLookup,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<FrontHit, FrontAsked> {
        let RedisLookup {
            hash,
            auth,
            started,
        } = lookup;
        let mut asked = FrontAsked { hash, found: false };
        let Some(store) = self.redis_store() else {
            return Err(asked);
        };
        let Some(found) = store.fetch(&hash).await else {
            return Err(asked);
        };
        asked.found = true;
        if !self
            .hit_policy(active, &found.servable(), Some(req), ctx)
            .as_is()
        {
            return Err(asked);
        }
        let Some(head) = WireHead::of(found.meta.response_header()) else {
            return Err(asked);
        };
        self.promote_under_request_key(ctx, hash, &found).await;
        self.count_admission(&Admission::Admitted { found: None, auth });
        Ok(FrontHit {
            found: Found::Redis(Box::new((found, head))),
            now: SystemTime::now(),
            started,
        })
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
        let stored = hit.found.servable();
        let status = stored.header.status;
        let body = stored.body.clone();
        let date = pingora_core::protocols::http::date::get_cached_date();
        let fresh_until = stored.fresh_until;
        let layer = stored.layer;
        let body_bytes = body.len();
        let wire = match hit.found.wire() {
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
            layer,
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
