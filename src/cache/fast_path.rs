//! The hit fast path: a fresh stored answer written by the proxy itself,
//! before pingora-cache's state machine runs.

use std::time::{Duration, SystemTime};

use http::{header, HeaderValue};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;

use super::active::Active;

use super::*;

/// A stored answer the proxy writes itself (see [`TagCache::write_hit`]).
pub(super) struct FreshAnswer<'a> {
    pub(super) header: &'a ResponseHeader,
    pub(super) body: bytes::Bytes,
    pub(super) age: Duration,
    pub(super) fresh_until: SystemTime,
    /// `X-Cache-Layer`.
    pub(super) layer: &'static str,
    /// When the lookup started, for the lookup latency metric.
    pub(super) started: Option<std::time::Instant>,
}

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
    /// On tagcache's own listener, the front path ([`Self::front_hit`])
    /// answers a plain HTTP/1 request's fresh memory hit before the proxy
    /// runs, with the same checks; this one then serves the rest (HTTP/2,
    /// pipelined requests, Redis hits) and embedders.
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
        if !self.answers_as_stored(active, session.req_header(), route, ctx) {
            return Ok(false);
        }
        let started = std::time::Instant::now();
        let hash = pingora_cache::key::hash_key(primary);
        ctx.hash = Some(hash);
        let now = SystemTime::now();
        if let Some(hit) = self.fast.and_then(|memory| memory.fresh(&hash, now)) {
            let age = hit.age(now);
            // Freshness counts from the epoch: the last revalidation, or on
            // origin-mode routes the time the response was zero seconds old.
            let epoch = now.checked_sub(age).unwrap_or(now);
            if !self
                .hit_check(active, hit.info(), epoch, hit.header(), ctx)
                .clean()
            {
                return Ok(false);
            }
            let answer = FreshAnswer {
                header: hit.header(),
                body: hit.body(),
                age,
                fresh_until: hit.fresh_until(),
                layer: "MEMORY",
                started: Some(started),
            };
            self.write_hit(session, ctx, answer).await?;
            return Ok(true);
        }
        match &self.redis {
            Some(parts) => {
                self.serve_fresh_l2_hit(active, session, ctx, parts.store, hash, started)
                    .await
            }
            None => Ok(false),
        }
    }

    /// The request side of "may a stored response be written to this
    /// request as it is": not when the client asked for a fresh copy, when
    /// the route varies, or when the request is ranged or conditional (those
    /// need pingora-cache's handling: 206, 304, variance). Asked by every path
    /// that writes a hit itself: the memory and Redis fast path and a fill
    /// served to a request that waited on another instance.
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

    /// Writes a stored answer: what pingora-cache does to a stored header
    /// on a hit (RFC 9111 §4 `Age`, HTTP/1.1, chunked framing when no length
    /// was stored), the cache status headers, then header and body together
    /// (the header alone for `HEAD`).
    pub(super) async fn write_hit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        hit: FreshAnswer<'_>,
    ) -> pingora_error::Result<()> {
        // Built as bare parts: pingora's `insert_header` parses each name
        // again, which cost a tenth of a hit's user-space instructions.
        // Headers this cache stores keep no case map; one read from an old
        // Redis value loses its case (names are case-insensitive).
        let status = hit.header.status;
        let mut h = hit.header.headers.clone();
        h.insert(header::AGE, HeaderValue::from(hit.age.as_secs()));
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
        if let Some(started) = hit.started {
            self.metrics
                .lookup_latency
                .observe(started.elapsed().as_secs_f64());
        }
        let head_only = session.req_header().method == http::Method::HEAD;
        session
            .write_response_header(Box::new(resp), head_only)
            .await
            .map_err(|e| e.into_down())?;
        if !head_only {
            session
                .write_response_body(Some(hit.body), true)
                .await
                .map_err(|e| e.into_down())?;
        }
        Ok(())
    }
}
