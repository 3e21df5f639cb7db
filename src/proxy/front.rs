//! The proxy listener's front: answers fresh memory and Redis hits before
//! Pingora's proxy builds its per-request machinery, and hands everything
//! else to the proxy unchanged.
//!
//! ```text
//! connection ──► Front::process_new
//!                  │ not plain HTTP/1 (TLS ALPN h2, h2c, custom) ──► HttpProxy, whole connection
//!                  ▼
//!                one request: Pingora's HTTP/1 session over a Recorder reads the header
//!                  │ TagCache::front_hit: a fresh, clean memory hit that the same checks allow,
//!                  │ or when memory has nothing, TagCache::front_redis_hit: the same for Redis
//!                  │ (one bounded GET; promoted into memory as the proxy would)
//!                  ├──► written as bytes (the entry's header block + the hit's fields + body),
//!                  │    counted and logged as the proxy would; the connection is kept for the next request
//!                  │ anything else (no hit, refusal, parse error, body, pipelined bytes, upgrade)
//!                  └──► a new session for the proxy, with the recorded bytes as its pipelined
//!                       prefix: the proxy parses them with the same parser, as if read from the socket;
//!                       after a Redis lookup, with what Redis answered (FrontAsked), so the proxy
//!                       does not ask again
//! ```
//!
//! One parser: the front never interprets a byte Pingora's session did not
//! parse, and the proxy re-parses exactly the bytes the front read. Hits
//! parse once, everything else twice.

use std::future::{poll_fn, Future};
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;

use async_trait::async_trait;
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream, ServerApp};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::{Stream, ALPN};
use pingora_core::server::ShutdownWatch;
use pingora_error::{Error, ErrorType};
use pingora_http::RequestHeader;
use pingora_proxy::HttpProxy;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use super::recorder::Recorder;
use super::TagCacheProxy;
use crate::cache::{FrontAsked, FrontHit, FrontResponse, FrontStep, RequestCtx, TagCache};
use crate::storage::Layer;

/// How long a connection accepted before a graceful stop may take to send
/// its first request.
const FIRST_REQUEST_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The proxy listener's application: the front path, then Pingora's proxy.
pub struct Front {
    proxy: Arc<HttpProxy<TagCacheProxy>>,
    cache: Arc<TagCache>,
    /// Set when the service stops listening; as the proxy's own flag, it
    /// ends waits for a next request on kept-alive connections.
    shutdown_flag: AtomicBool,
    shutdown: Notify,
    /// Hits the front answered (`tagcache_front_hits_total`): memory, Redis.
    hits: [prometheus::IntCounter; 2],
}

/// A hit ready to write ([`Front::ready`]).
struct Ready {
    response: FrontResponse,
    req: RequestHeader,
    keepalive: bool,
    settings: HttpPersistentSettings,
}

impl Front {
    /// The front of `proxy`, answering hits from `cache` (the one `proxy`'s
    /// `TagCacheProxy` uses).
    pub fn new(proxy: HttpProxy<TagCacheProxy>, cache: Arc<TagCache>) -> Self {
        let hits = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "tagcache_front_hits_total",
                "Hits answered before the proxy, by layer (MEMORY, REDIS)",
            ),
            &["layer"],
        )
        .expect("valid metric");
        cache.metrics().register(Box::new(hits.clone()));
        let hits = [Layer::Memory, Layer::Redis].map(|l| hits.with_label_values(&[l.as_str()]));
        Front {
            proxy: Arc::new(proxy),
            cache,
            shutdown_flag: AtomicBool::new(false),
            shutdown: Notify::new(),
            hits,
        }
    }

    /// Resolves once the service stopped listening.
    async fn await_shutdown(&self) {
        let notified = self.shutdown.notified();
        tokio::pin!(notified);
        poll_fn(|cx| {
            if notified.as_mut().poll(cx).is_ready() || self.shutdown_flag.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }

    /// Resolves when a connection waiting for a request is to be dropped:
    /// once the service stopped, and for a new connection's first request
    /// [`FIRST_REQUEST_GRACE`] later.
    async fn stop_waiting(&self, fresh: bool) {
        self.await_shutdown().await;
        if fresh {
            tokio::time::sleep(FIRST_REQUEST_GRACE).await;
        }
    }

    /// One request on a plain HTTP/1 connection: read by the front, then
    /// answered here or handed to the proxy.
    async fn one_request(
        self: &Arc<Self>,
        mut recorder: Box<Recorder>,
        settings: Option<HttpPersistentSettings>,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        recorder.record();
        let fresh = settings.is_none();
        let mut session = ServerSession::new_http1(recorder);
        match settings {
            Some(settings) => settings.apply_to_session(&mut session),
            None => {
                // As Pingora's HTTP server starts a connection.
                session.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
                session.set_keepalive_reuses_remaining(
                    self.proxy
                        .server_options()
                        .and_then(|o| o.keepalive_request_limit),
                );
            }
        }
        if session.pipelining_enabled() {
            // Bytes of a pipelined request may wait in the session, which
            // the recorder never saw: the proxy reads this one itself.
            return self.proxy.process_new_http(session, shutdown).await;
        }
        // What the proxy's session starts with when it gets the request.
        let keepalive = session.get_keepalive();
        let reuses = session.get_keepalive_reuses_remaining();
        // A new connection was accepted before the service stopped: its
        // first request is answered, and a graceful stop waits for it (up
        // to FIRST_REQUEST_GRACE after the stop), as nginx closes only idle
        // kept-alive connections. The guard lives until the request is
        // answered, here or by the proxy.
        let _expecting = fresh.then(|| self.cache.expecting());
        let read = tokio::select! {
            biased;
            read = session.read_request() => read,
            // As the proxy: a connection waiting for its next request is
            // dropped when the service stops.
            () = self.stop_waiting(fresh) => return None,
        };
        let mut asked = None;
        match read {
            Ok(true) => {
                // The context lives in this frame, and a hit is written here
                // rather than in an async method of its own: that method's
                // future would copy the 680-byte session into itself (466
                // instructions more a hit, `bench/instructions.sh`).
                let mut ctx = self.cache.new_ctx();
                match self.decide(&mut session, &mut ctx, shutdown).await {
                    Ok(hit) => {
                        let ready = self.ready(&mut session, hit, &mut ctx);
                        let ServerSession::H1(h1) = session else {
                            return None;
                        };
                        let mut stream: Stream = h1.into_inner();
                        let wire = &ready.response.wire;
                        let written = write(&mut stream, [&wire.head, &wire.body, wire.tail])
                            .await
                            .map_err(|e| {
                                Error::because(ErrorType::WriteError, "writing a hit", e)
                                    .into_down()
                            });
                        self.cache.front_logged(
                            &ready.req,
                            &mut ctx,
                            &ready.response,
                            written.as_ref().err().map(|e| &**e),
                        );
                        drop(ctx);
                        return after_hit(stream, written.is_ok(), ready.keepalive, ready.settings).await;
                    }
                    Err(redis) => asked = redis,
                }
            }
            // The client closed, or the keep-alive wait ended: the proxy
            // would end the connection too.
            Ok(false) => return None,
            // Bytes that do not parse: the proxy answers them (400) from
            // the same bytes.
            Err(e) if e.etype() == &ErrorType::InvalidHTTPHeader => {}
            Err(e) => {
                // A read that failed or timed out: the proxy logs it and
                // closes without answering.
                tracing::error!("Fail to proxy: {e}, downstream session type: HTTP/1.1");
                session.shutdown().await;
                return None;
            }
        }
        self.hand_over(session, keepalive, reuses, asked, shutdown)
            .await
    }

    /// Gives the request the front read to the proxy: a new session over the
    /// same connection, with the bytes read so far as its pipelined prefix
    /// and the keep-alive state the front's session started with; and
    /// `asked`, what Redis answered the front, if it asked.
    async fn hand_over(
        self: &Arc<Self>,
        session: ServerSession,
        keepalive: Option<u64>,
        reuses: Option<u32>,
        asked: Option<FrontAsked>,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let ServerSession::H1(h1) = session else {
            return None;
        };
        let mut recorder = Recorder::of(h1.into_inner())?;
        let read = recorder.take();
        let mut session = ServerSession::new_http1(recorder);
        session.set_keepalive(keepalive);
        session.set_keepalive_reuses_remaining(reuses);
        if !read.is_empty() {
            session.set_pipelined_prefix(read);
        }
        let proxy = self.proxy.process_new_http(session, shutdown);
        match asked {
            Some(asked) => asked.hand_over(proxy).await,
            None => proxy.await,
        }
    }

    /// Whether the front answers the request the session read: a fresh
    /// memory or Redis hit that every check allows ([`TagCache::front_hit`],
    /// [`TagCache::front_redis_hit`]). `Err` leaves it to the proxy, with
    /// what Redis answered if it was asked.
    async fn decide(
        &self,
        session: &mut ServerSession,
        ctx: &mut RequestCtx,
        shutdown: &ShutdownWatch,
    ) -> Result<FrontHit, Option<FrontAsked>> {
        if !self.may_answer(session) {
            return Err(None);
        }
        let hit = match self.cache.front_hit(session.req_header(), ctx) {
            FrontStep::Hit(hit) => hit,
            // Boxed: a memory hit's future stays as small as it was.
            FrontStep::Redis(lookup) => {
                Box::pin(
                    self.cache
                        .front_redis_hit(lookup, session.req_header(), ctx),
                )
                .await
                .map_err(Some)?
            }
            FrontStep::Pass => return Err(None),
        };
        if *shutdown.borrow() {
            // As the proxy: a stopping service keeps no connection.
            session.set_keepalive(None);
        }
        Ok(hit)
    }

    /// A decided hit made ready to write: its bytes assembled and counted,
    /// and the request header taken out of the session for the log line
    /// (the session, about to be dropped, keeps a placeholder). The write
    /// itself stays in [`Self::one_request`]'s frame, so that neither the
    /// session nor the context is moved into another future.
    fn ready(
        &self,
        session: &mut ServerSession,
        hit: FrontHit,
        ctx: &mut RequestCtx,
    ) -> Ready {
        let keepalive = session.as_http1().is_some_and(|h1| h1.will_keepalive());
        let settings = HttpPersistentSettings::for_session(session);
        let response = self.cache.front_response(&hit, ctx, keepalive);
        drop(hit);
        self.hits[usize::from(response.layer() == Layer::Redis)].inc();
        let req = std::mem::replace(session.req_header_mut(), placeholder());
        Ready {
            response,
            req,
            keepalive,
            settings,
        }
    }

    /// Whether the front may look the request up at all: a `GET` that is
    /// not an upgrade, whose bytes read are exactly its header (no body,
    /// nothing pipelined behind it, no request line Pingora had to escape).
    fn may_answer(&self, session: &ServerSession) -> bool {
        let Some(h1) = session.as_http1() else {
            return false;
        };
        let req = h1.req_header();
        if req.method != http::Method::GET || h1.is_upgrade_req() {
            return false;
        }
        let recorded = h1
            .stream()
            .as_any()
            .downcast_ref::<Recorder>()
            .map(Recorder::recorded);
        recorded == Some(h1.get_headers_raw_bytes().len())
    }
}

/// The connection after a hit: kept for the next request when the write
/// went through and the session would have kept it, ended otherwise.
async fn after_hit(
    mut stream: Stream,
    written: bool,
    keepalive: bool,
    settings: HttpPersistentSettings,
) -> Option<ReusedHttpStream> {
    match (written, keepalive) {
        (true, true) => Some(ReusedHttpStream::new(stream, Some(settings))),
        (true, false) => {
            // As Pingora ends a connection it does not keep.
            let _ = stream.shutdown().await;
            None
        }
        (false, _) => None,
    }
}

/// What a written hit's session keeps of its request header: an empty
/// one, made from parts that allocate nothing (a clone of a built header
/// costs far more: Pingora rebuilds its parts).
fn placeholder() -> RequestHeader {
    RequestHeader::from(http::Request::new(()).into_parts().0)
}

/// Writes a whole answer, in as few vectored writes as the connection
/// takes (its write buffer holds a typical answer whole), and flushes it.
async fn write(stream: &mut Stream, parts: [&[u8]; 3]) -> std::io::Result<()> {
    let mut slices = parts.map(IoSlice::new);
    let mut rest = &mut slices[..];
    IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        let n = stream.write_vectored(rest).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    stream.flush().await
}

#[async_trait]
impl ServerApp for Front {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let options = self.proxy.server_options();
        let plain_h1 = matches!(stream.selected_alpn_proto(), None | Some(ALPN::H1))
            && !options.is_some_and(|o| o.h2c || o.force_custom);
        if !plain_h1 {
            // HTTP/2 and custom protocols: the proxy's own server, whole.
            return ServerApp::process_new(&self.proxy, stream, shutdown).await;
        }
        let mut recorder = Recorder::of(stream)?;
        let mut settings = None;
        loop {
            let reused = self.one_request(recorder, settings, shutdown).await?;
            let (stream, next) = reused.consume();
            recorder = Recorder::of(stream)?;
            settings = next;
        }
    }

    async fn cleanup(&self) {
        self.shutdown_flag.store(true, Ordering::Release);
        self.shutdown.notify_waiters();
        ServerApp::cleanup(&*self.proxy).await;
    }
}
