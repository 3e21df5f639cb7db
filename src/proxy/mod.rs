//! tagcache's own Pingora proxy: forwards everything to the origin and calls
//! the cache layer from each hook.
//!
//! On tagcache's listener, [`front::Front`] runs first: it answers fresh
//! memory hits of plain HTTP/1 requests itself and hands every other request
//! to this proxy, which then runs the phases below from the start.
//!
//! ```text
//! Pingora phase               tagcache
//! ─────────────────────────── ─────────────────────────────────────────────
//! request_filter              TagCache::request_filter: limits (414, 431), JWT (401, 403),
//!                             route, identity, key, bypass;
//!                             then TagCache::serve_fresh_hit: a fresh memory hit is answered here
//! request_cache_filter        TagCache::request_cache_filter: enable the cache
//! cache_key_callback          TagCache::cache_key_callback
//!   ── lookup in storage, coalescing lock ──
//! cache_hit_filter            TagCache::cache_hit_filter: purge generations, client no-cache
//! proxy_upstream_filter       TagCache::proxy_upstream_filter: cross-instance lock (Redis); may serve another instance's fill
//! upstream_peer               the configured origin, with its timeouts
//! upstream_request_filter     TagCache::upstream_request_filter: strip unkeyed headers, timing
//! upstream_response_filter    TagCache::upstream_response_filter: origin tags, strip them;
//!                             a write's answer: purge::writes::after_write (RFC 9111 §4.4, invalidate:)
//! response_cache_filter       TagCache::response_cache_filter: storable? tags, freshness
//! cache_vary_filter           TagCache::cache_vary_filter (Vary: Accept-Encoding)
//! response_filter             TagCache::response_filter: X-Cache-*, Cache-Status
//! should_serve_stale          TagCache::should_serve_stale: SWR, stale-if-error
//! fail_to_proxy               502/504 JSON error with a short reason
//! logging                     TagCache::logging: metrics
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_cache::key::CacheHashKey;
use pingora_cache::{CacheMeta, ForcedFreshness, HitHandler, RespCacheable};
use pingora_core::modules::http::HttpModules;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::cache::{RequestCtx, TagCache};
use crate::purge::Purger;

pub mod front;
mod recorder;

/// The proxy service logic.
pub struct TagCacheProxy {
    cache: Arc<TagCache>,
}

impl TagCacheProxy {
    /// A proxy forwarding to the upstream of the config each request runs
    /// under, through `cache`.
    pub fn new(cache: Arc<TagCache>) -> Self {
        TagCacheProxy { cache }
    }
}

#[async_trait]
impl ProxyHttp for TagCacheProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        self.cache.new_ctx()
    }

    /// No downstream modules. Pingora's default is a response compression
    /// module at level 0, which does nothing here but costs an allocation
    /// and three filter calls per request.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        let config = self.cache.request_config(ctx);
        let u = &config.upstream;
        let mut peer = HttpPeer::new(u.address.as_str(), u.tls, u.sni.clone());
        ctx.attempts = ctx.attempts.saturating_add(1);
        if ctx.attempts > 1 {
            // A retry goes on a new connection: a group key of its own keeps
            // the pool from handing out another idle one, which may have
            // gone stale the same way.
            peer.group_key = RETRY_GROUP.fetch_add(1, Ordering::Relaxed);
            self.cache.metrics().origin_retries.inc();
        }
        peer.options.connection_timeout = Some(u.connect_timeout);
        peer.options.total_connection_timeout = Some(u.connect_timeout);
        peer.options.read_timeout = Some(u.read_timeout);
        peer.options.write_timeout = Some(u.write_timeout);
        peer.options.idle_timeout = Some(u.idle_timeout);
        Ok(Box::new(peer))
    }

    /// Retries at most `upstream.retries` times, only an idempotent request,
    /// only after a reused connection failed before any byte of the answer;
    /// the retry goes on a new connection ([`Self::upstream_peer`]). Pingora
    /// would otherwise retry on each idle pooled connection in turn, so that
    /// an origin closing connections after reading the request received one
    /// client request up to 16 times.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Self::CTX,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        e.retry.decide_reuse(client_reused);
        let allowed = client_reused
            && !ctx.upstream_responded
            && ctx.attempts <= self.cache.request_config(ctx).upstream.retries
            && session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated();
        if !allowed {
            e.set_retry(false);
        }
        e
    }

    /// A connection that could not be made is not retried: with one origin
    /// there is nowhere else to go, and nginx makes one attempt too.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        _ctx: &mut Self::CTX,
        mut e: Box<Error>,
    ) -> Box<Error> {
        e.set_retry(false);
        e
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        if self.cache.request_filter(session, ctx).await? {
            return Ok(true);
        }
        self.cache.serve_fresh_hit(session, ctx).await
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<()> {
        self.cache.request_cache_filter(session, ctx);
        Ok(())
    }

    fn cache_key_callback(
        &self,
        _session: &Session,
        ctx: &mut Self::CTX,
    ) -> Result<pingora_cache::CacheKey> {
        self.cache.cache_key_callback(ctx)
    }

    async fn cache_hit_filter(
        &self,
        _session: &mut Session,
        meta: &CacheMeta,
        _hit_handler: &mut HitHandler,
        is_fresh: bool,
        ctx: &mut Self::CTX,
    ) -> Result<Option<ForcedFreshness>> {
        Ok(self.cache.cache_hit_filter(meta, is_fresh, ctx))
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<RespCacheable> {
        let hash = session.cache.cache_key().primary_bin();
        Ok(self
            .cache
            .response_cache_filter(session.req_header(), resp, hash, ctx))
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        ctx: &mut Self::CTX,
        req: &RequestHeader,
    ) -> Option<pingora_cache::key::HashBinary> {
        self.cache.cache_vary_filter(meta, req, ctx)
    }

    async fn proxy_upstream_filter(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<bool> {
        self.cache.proxy_upstream_filter(session, ctx).await
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        self.cache.upstream_request_filter(upstream_request, ctx);
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        self.cache.upstream_response_filter(upstream_response, ctx);
        let req = session.req_header();
        if !req.method.is_safe() {
            // Before the answer's header goes downstream: the writer's next
            // read finds the purge applied.
            let purger = Purger::new(self.cache.clone());
            crate::purge::writes::after_write(&purger, req, upstream_response, ctx).await;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        self.cache.response_filter(session, upstream_response, ctx);
        Ok(())
    }

    fn should_serve_stale(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
        error: Option<&Error>,
    ) -> bool {
        self.cache.should_serve_stale(ctx, error)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Self::CTX,
    ) -> FailToProxy {
        let code = error_status(e);
        if code > 0 {
            let _ = write_json_error(session, code, e, |s, resp| {
                self.cache.error_response_filter(s, resp, ctx);
            })
            .await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Self::CTX) {
        self.cache.logging(session, ctx, e);
    }
}

/// Group keys for retry connections, one each (see `upstream_peer`).
static RETRY_GROUP: AtomicU64 = AtomicU64::new(1);

/// The status to answer an error with; 0 when the client is already gone.
pub fn error_status(e: &Error) -> u16 {
    use pingora_error::ErrorSource;
    match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
            if e.esource() == &ErrorSource::Upstream =>
        {
            504
        }
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    }
}

/// A short, safe reason for an error: its type, never internal detail.
fn reason(e: &Error) -> &'static str {
    match e.etype() {
        ErrorType::ConnectTimedout => "timed out connecting to the origin",
        ErrorType::ConnectRefused => "the origin refused the connection",
        ErrorType::ConnectNoRoute => "no route to the origin",
        ErrorType::ConnectError | ErrorType::BindError | ErrorType::SocketError => {
            "could not connect to the origin"
        }
        ErrorType::ReadTimedout => "timed out waiting for the origin",
        ErrorType::WriteTimedout => "timed out sending to the origin",
        ErrorType::ConnectionClosed => "the origin closed the connection",
        ErrorType::ReadError => "the origin connection failed",
        ErrorType::InvalidHTTPHeader | ErrorType::H1Error | ErrorType::H2Error => {
            "the origin sent an invalid response"
        }
        _ => "the request could not be proxied",
    }
}

async fn write_json_error(
    session: &mut Session,
    code: u16,
    e: &Error,
    decorate: impl FnOnce(&Session, &mut ResponseHeader),
) -> Result<()> {
    let error = match code {
        502 => "bad_gateway",
        504 => "gateway_timeout",
        400 => "bad_request",
        _ => "proxy_error",
    };
    let body = serde_json::json!({ "error": error, "reason": reason(e) }).to_string();
    let mut resp = ResponseHeader::build(code, Some(4))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    decorate(session, &mut resp);
    session.set_keepalive(None);
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await?;
    Ok(())
}
