//! The hit fast path: a fresh stored answer written by the proxy itself,
//! before pingora-cache's state machine runs.

use std::time::SystemTime;

use crate::storage::Servable;
use http::{header, HeaderValue};
use pingora_proxy::Session;

use super::active::Active;

use super::*;

impl TagCache {
    /// Answers a request from a fresh stored entry without going through
    /// pingora-cache: one store read (memory, then Redis when there is a
    /// Redis tier), the tag and trust checks [`Self::cache_hit_filter`]
    /// makes, and the header and body written together. A Redis hit is
    /// copied into memory as pingora-cache's path would. Anything else (a
    /// miss, a stale or purged entry, a Vary route, a range or conditional
    /// request, client `no-cache`) returns `false` and takes the full path,
    /// which answers it the same way it always did. After a Redis miss here,
    /// the key carries [`crate::storage::RedisAsked`], so pingora-cache's
    /// first lookup does not ask Redis again.
    /// Call from `ProxyHttp::request_filter`, after [`Self::request_filter`];
    /// the proxy stops when it returns `true`.
    ///
    /// On tagcache's own listener, the front path ([`Self::front_hit`],
    /// [`Self::front_redis_hit`]) answers a plain HTTP/1 request's fresh
    /// memory or Redis hit before the proxy runs, with the same checks; this
    /// one then serves the rest (HTTP/2, pipelined requests, entries the
    /// front found in memory but could not write as bytes) and embedders.
    /// A request the front handed over after asking Redis is not asked
    /// again ([`super::front::FrontAsked`]).
    ///
    /// A hit served here does not reach the proxy's `response_filter`:
    /// embedders that change every response there should not call it.
    ///
    /// # Errors
    /// When the response cannot be written to the client.
    pub async fn serve_fresh_hit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora_error::Result<bool> {
        if ctx.primary.is_none() || (self.fast.is_none() && self.redis.is_none()) {
            return Ok(false);
        }
        let active = self.take_active(ctx);
        let served = self.serve_fresh(&active, session, ctx).await;
        ctx.active = Some(active);
        served
    }

    pub(super) async fn serve_fresh(
        &self,
        active: &Active,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora_error::Result<bool> {
        let (Some(primary), Some(route)) = (&ctx.primary, ctx.route) else {
            return Ok(false);
        };
        let started = std::time::Instant::now();
        let hash = pingora_cache::key::hash_key(primary);
        ctx.hash = Some(hash);
        if let Some(hit) = self.fast.and_then(|memory| memory.servable(&hash)) {
            let stored = hit.servable();
            let req = Some(session.req_header());
            if !self.hit_policy(active, &stored, req, ctx).as_is() {
                return Ok(false);
            }
            self.write_hit(session, ctx, stored, Some(started)).await?;
            return Ok(true);
        }
        match &self.redis {
            // Ask Redis only for what the proxy could then write itself.
            Some(parts) if self.answers_as_stored(active, session.req_header(), route, ctx) => {
                // The front path asked Redis already: what it found, it
                // could not write as it is, so only pingora-cache's lookup
                // may use it; if nothing, that lookup skips Redis too.
                if let Some(found) = super::front::FrontAsked::take(&hash) {
                    ctx.redis_asked = !found;
                    return Ok(false);
                }
                self.serve_fresh_l2_hit(active, session, ctx, parts.store, hash, started)
                    .await
            }
            _ => Ok(false),
        }
    }

    /// Writes a stored answer: what pingora-cache does to a stored header
    /// on a hit (RFC 9111 §4 `Age`, HTTP/1.1, chunked framing when no length
    /// was stored), the cache status headers, then header and body together.
    pub(super) async fn write_hit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        hit: Servable<'_>,
        started: Option<std::time::Instant>,
    ) -> pingora_error::Result<()> {
        // Built as bare parts: pingora's `insert_header` parses each name
        // again, which cost a tenth of a hit's user-space instructions.
        // Headers this cache stores keep no case map; one read from an old
        // Redis value loses its case (names are case-insensitive).
        let status = hit.header.status;
        let mut h = hit.header.headers.clone();
        let age = hit.age(SystemTime::now());
        h.insert(header::AGE, HeaderValue::from(age.as_secs()));
        if !matches!(status.as_u16(), 204 | 304) && !h.contains_key(header::CONTENT_LENGTH) {
            h.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
        }
        headers::decorate_hit(&mut h, status, ctx, hit.fresh_until, hit.layer);
        let reason = hit.header.get_reason_phrase();
        let resp = crate::storage::bare_header(status, http::Version::HTTP_11, h, reason)
            .map_err(|e| e.into_down())?;
        if let Some(started) = started {
            self.metrics
                .lookup_latency
                .observe(started.elapsed().as_secs_f64());
        }
        // Only GET requests are keyed (`classify`), so there is a body to send.
        session
            .write_response_header(Box::new(resp), false)
            .await
            .map_err(|e| e.into_down())?;
        session
            .write_response_body(Some(hit.body), true)
            .await
            .map_err(|e| e.into_down())?;
        Ok(())
    }
}
