//! A team's own Pingora proxy gaining tagcache: the cache layer is called
//! from the proxy's hooks; everything else (routing, auth, headers) stays the
//! team's own.
//!
//! Run: `TAGCACHE_ADMIN_TOKEN=dev cargo run --example embed -- conf/tagcache.example.yaml`

use std::sync::Arc;

use async_trait::async_trait;
use pingora_cache::key::CacheHashKey;
use pingora_cache::{CacheKey, CacheMeta, ForcedFreshness, HitHandler, RespCacheable};
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{ProxyHttp, Session};
use tagcache::cache::{RequestCtx, TagCache};

/// The team's proxy: its own state plus tagcache's per-request context.
struct MyProxy {
    cache: Arc<TagCache>,
    origin: String,
}

#[derive(Default)]
struct MyCtx {
    cache: RequestCtx,
    // ... the team's own per-request fields
}

#[async_trait]
impl ProxyHttp for MyProxy {
    type CTX = MyCtx;
    fn new_ctx(&self) -> MyCtx {
        MyCtx {
            // Counts the request in flight, for a prompt graceful stop.
            cache: self.cache.new_ctx(),
        }
    }

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut MyCtx) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.origin.as_str(),
            false,
            String::new(),
        )))
    }

    // tagcache's hooks: one line each. `serve_fresh_hit` answers fresh memory
    // hits right away; drop it if this proxy's response_filter must see them.
    async fn request_filter(&self, s: &mut Session, c: &mut MyCtx) -> Result<bool> {
        Ok(self.cache.request_filter(s, &mut c.cache).await?
            || self.cache.serve_fresh_hit(s, &mut c.cache).await?)
    }
    fn request_cache_filter(&self, s: &mut Session, c: &mut MyCtx) -> Result<()> {
        self.cache.request_cache_filter(s, &mut c.cache);
        Ok(())
    }
    fn cache_key_callback(&self, _s: &Session, c: &mut MyCtx) -> Result<CacheKey> {
        self.cache.cache_key_callback(&mut c.cache)
    }
    async fn cache_hit_filter(
        &self,
        _s: &mut Session,
        meta: &CacheMeta,
        _h: &mut HitHandler,
        fresh: bool,
        c: &mut MyCtx,
    ) -> Result<Option<ForcedFreshness>> {
        Ok(self.cache.cache_hit_filter(meta, fresh, &mut c.cache))
    }
    fn response_cache_filter(
        &self,
        s: &Session,
        resp: &ResponseHeader,
        c: &mut MyCtx,
    ) -> Result<RespCacheable> {
        let hash = s.cache.cache_key().primary_bin();
        Ok(self
            .cache
            .response_cache_filter(s.req_header(), resp, hash, &mut c.cache))
    }
    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        c: &mut MyCtx,
        req: &RequestHeader,
    ) -> Option<[u8; 16]> {
        self.cache.cache_vary_filter(meta, req, &c.cache)
    }
    async fn proxy_upstream_filter(&self, s: &mut Session, c: &mut MyCtx) -> Result<bool> {
        self.cache.proxy_upstream_filter(s, &mut c.cache).await
    }
    async fn upstream_request_filter(
        &self,
        _s: &mut Session,
        r: &mut RequestHeader,
        c: &mut MyCtx,
    ) -> Result<()> {
        self.cache.upstream_request_filter(r, &mut c.cache);
        Ok(())
    }
    async fn upstream_response_filter(
        &self,
        s: &mut Session,
        resp: &mut ResponseHeader,
        c: &mut MyCtx,
    ) -> Result<()> {
        self.cache.upstream_response_filter(resp, &mut c.cache);
        // Writes that pass through invalidate what they change (RFC 9111
        // §4.4 and `invalidate:`), before their answer goes to the client.
        let purger = tagcache::purge::Purger::new(self.cache.clone());
        tagcache::purge::writes::after_write(&purger, s.req_header(), resp, &c.cache).await;
        Ok(())
    }
    async fn response_filter(
        &self,
        s: &mut Session,
        resp: &mut ResponseHeader,
        c: &mut MyCtx,
    ) -> Result<()> {
        self.cache.response_filter(s, resp, &mut c.cache);
        resp.insert_header("x-served-by", "my-proxy")?;
        Ok(())
    }
    fn should_serve_stale(&self, _s: &mut Session, c: &mut MyCtx, e: Option<&Error>) -> bool {
        self.cache.should_serve_stale(&c.cache, e)
    }
    async fn logging(&self, s: &mut Session, e: Option<&Error>, c: &mut MyCtx) {
        self.cache.logging(s, &c.cache, e);
    }
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "conf/tagcache.example.yaml".into());
    let loaded = match tagcache::config::load_file(std::path::Path::new(&path)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let config = Arc::new(loaded.config);
    let cache = Arc::new(TagCache::new(config.clone()));

    let mut server = Server::new(None).expect("pingora server");
    server.bootstrap();
    let mut proxy = pingora_proxy::http_proxy_service(
        &server.configuration,
        MyProxy {
            cache: cache.clone(),
            origin: config.upstream.address.clone(),
        },
    );
    proxy.add_tcp(&config.listen.to_string());
    server.add_service(proxy);
    // The admin API (purge, stats, metrics) is an ordinary Pingora service too.
    let mut admin = pingora_core::services::listening::Service::new(
        "admin".into(),
        pingora_core::apps::http_app::HttpServer::new_app(tagcache::admin::AdminApp::new(cache)),
    );
    admin.add_tcp(&config.admin.listen.to_string());
    server.add_service(admin);
    server.run_forever();
}
