//! Per-request state of the cache layer, carried through Pingora's hooks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::identity::Verified;
use crate::key::BypassReason;
use crate::metrics::CacheStatus;

/// What tagcache knows about one request. Embedders keep one in their own
/// `ProxyHttp::CTX` and pass it to every [`super::TagCache`] hook.
#[derive(Debug, Default)]
pub struct RequestCtx {
    /// Index of the matched route, if any.
    pub(crate) route: Option<usize>,
    /// Why the cache is not used for this request, if it is not.
    pub(crate) bypass: Option<BypassReason>,
    /// Whether the cache was enabled for this request.
    pub(crate) enabled: bool,
    /// The request's workspace, on tenant-scoped routes.
    pub(crate) workspace: Option<Arc<str>>,
    /// The request's user, where the key carries it.
    pub(crate) user: Option<Arc<str>>,
    /// Whether the request was classified (route, key or bypass reason).
    pub(crate) classified: bool,
    /// Framed primary key, built in `request_filter`, consumed by `cache_key_callback`.
    pub(crate) primary: Option<Vec<u8>>,
    /// The primary key's hash, when the fast path computed it.
    pub(crate) hash: Option<pingora_cache::key::HashBinary>,
    /// Readable key, only with `debug_headers`.
    pub(crate) key_debug: Option<String>,
    /// Purge epoch observed before the origin fetch.
    pub(crate) born: u64,
    /// The client asked for a fresh copy.
    pub(crate) client_no_cache: bool,
    /// Tags the origin sent (already namespaced).
    pub(crate) origin_tags: Vec<String>,
    /// Whether the origin response was admitted for storage.
    pub(crate) stored: bool,
    /// Why the origin response was not stored.
    pub(crate) not_stored: Option<super::NotStored>,
    /// The entry found was purged (hard) or soft-purged.
    pub(crate) purged: Option<&'static str>,
    /// When the origin request was sent.
    pub(crate) upstream_start: Option<Instant>,
    /// Status reported to the client.
    pub(crate) status: Option<CacheStatus>,
    /// The origin could not be reached or did not answer in time: the
    /// response is the proxy's own error.
    pub(crate) origin_failed: bool,
    /// The origin answered 304 to a revalidation.
    pub(crate) revalidated: bool,
    /// On a `freshness: origin` route, the origin's 304, whose fields update
    /// the stored response (RFC 9111 §4.3.4).
    pub(crate) not_modified: Option<Box<pingora_http::ResponseHeader>>,
    /// On a `freshness: origin` route, how long the entry found may be
    /// served stale, from its stored header.
    pub(crate) stale_limits: Option<super::origin_mode::StaleLimits>,
    /// The identity verified from the request's JWT (`tenant.jwt`), set by
    /// `request_filter` before any lookup.
    pub(crate) verified: Option<Verified>,
    /// Why the identity check sends the request past the cache
    /// (`on_invalid: pass`), if it does.
    pub(crate) identity_bypass: Option<BypassReason>,
    /// The request carries `Authorization` on a route whose key holds no
    /// identity: only responses the origin marked shareable (RFC 9111 §3.5)
    /// may be served to it or stored from it.
    pub(crate) auth_unscoped: bool,
    /// Strip the unkeyed headers before the origin.
    pub(crate) strip_unkeyed: bool,
    /// The cross-instance coalescing lock this request holds (Redis tier).
    pub(crate) shared_lock: Option<crate::shared::lock::Lease>,
    /// Served from another instance's fill by cross-instance coalescing.
    pub(crate) coalesced: bool,
    /// The fast path asked Redis for the key and found nothing to use: the
    /// cache key carries a [`crate::storage::RedisAsked`] marker.
    pub(crate) redis_asked: bool,
    /// Connections tried to the origin for this request.
    pub(crate) attempts: u8,
    /// The origin's response header arrived.
    pub(crate) upstream_responded: bool,
    /// The request id: the client's `X-Request-ID` when valid, else generated.
    pub(crate) request_id: Option<http::HeaderValue>,
    /// When the request started (its context was made).
    pub(crate) started: Option<Instant>,
    /// How long the origin took to send its response header.
    pub(crate) origin_time: Option<std::time::Duration>,
    /// `X-Cache-Layer`, once the response header was decorated.
    pub(crate) layer: Option<&'static str>,
    /// The TTL the run-time settings give this request's route, if any.
    pub(crate) ttl_override: Option<std::time::Duration>,
    /// The config this request runs under, taken when it started.
    pub(crate) active: Option<Arc<super::active::Active>>,
    /// Counts this request as in flight until it is dropped.
    pub(crate) _in_flight: Option<InFlight>,
}

/// One request in flight: counted from its creation until it is dropped,
/// so that a graceful stop can end as soon as none is left.
#[derive(Debug)]
pub(crate) struct InFlight(&'static AtomicUsize);

impl InFlight {
    pub(crate) fn enter(counter: &'static AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

impl RequestCtx {
    /// A fresh context.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cache status decided for this request, once the response header was sent.
    pub fn status(&self) -> Option<CacheStatus> {
        self.status
    }
}
