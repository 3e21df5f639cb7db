//! Assembles the Pingora server from a validated config: the proxy service,
//! the admin service, the metrics service (`admin.metrics_listen`) and the
//! background tasks; runs it in the foreground or on a thread (for tests and
//! embedders that need to stop it).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::http_app::HttpServer;
use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora_core::services::background::{background_service, BackgroundService};
use pingora_core::services::listening::Service;

use crate::admin::{AdminApp, MetricsApp};
use crate::cache::TagCache;
use crate::config::Config;
use crate::proxy::TagCacheProxy;

/// Sweeps expired tag generation records once a minute; on shutdown, leaves the
/// Redis tier's live instance set.
struct Sweeper(Arc<TagCache>);

#[async_trait]
impl BackgroundService for Sweeper {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let left = self.0.registry().sweep();
                    self.0.metrics().tag_records.set(left as i64);
                }
                _ = shutdown.changed() => {
                    // Leave the live instance set (Redis tier), so sync
                    // purges stop waiting for this instance.
                    self.0.leave().await;
                    return;
                }
            }
        }
    }
}

/// A server ready to run, and the cache it serves.
pub struct Built {
    /// The Pingora server with tagcache's services added.
    pub server: Server,
    /// The cache layer, shared by the proxy and admin services.
    pub cache: Arc<TagCache>,
}

/// Builds the Pingora server for `config`.
///
/// # Errors
/// When Pingora cannot be initialised.
pub fn build(config: Arc<Config>) -> pingora_error::Result<Built> {
    let conf = ServerConf {
        threads: config.server.threads.max(1),
        grace_period_seconds: Some(config.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.server.grace_period.as_secs().max(1)),
        // The upstream keep-alive pool is shared across threads.
        upstream_keepalive_pool_size: 256,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let cache = Arc::new(TagCache::new(config.clone()));

    let mut proxy = pingora_proxy::http_proxy_service_with_name(
        &server.configuration,
        TagCacheProxy::new(cache.clone()),
        "tagcache proxy",
    );
    // A write buffer large enough for a typical cached answer lets a hit leave
    // in one write (header and body together); Pingora's default (1460 bytes)
    // sends the header and the body as two segments.
    proxy.add_listener(
        ListenerConfig::tcp(config.listen.to_string())
            .l4_buffer(L4BufferSettings::default().write(config.server.write_buffer)),
    );

    let mut admin = Service::new(
        "tagcache admin".to_string(),
        HttpServer::new_app(AdminApp::new(cache.clone())),
    );
    admin.add_tcp(&config.admin.listen.to_string());
    admin.threads = Some(1);

    server.add_service(proxy);
    server.add_service(admin);
    if let Some(addr) = config.admin.metrics_listen {
        let mut metrics = Service::new(
            "tagcache metrics".to_string(),
            HttpServer::new_app(MetricsApp::new(cache.clone())),
        );
        metrics.add_tcp(&addr.to_string());
        metrics.threads = Some(1);
        server.add_service(metrics);
    }
    server.add_service(background_service("tag sweeper", Sweeper(cache.clone())));
    Ok(Built { server, cache })
}

/// Runs the server until SIGTERM (graceful) or SIGINT (fast). Never returns.
pub fn run_forever(built: Built) -> ! {
    built.server.run_forever()
}

/// A server running on its own thread.
pub struct Running {
    /// The cache layer it serves.
    pub cache: Arc<TagCache>,
    stop: Option<tokio::sync::oneshot::Sender<ShutdownSignal>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct ChannelSignal(tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<ShutdownSignal>>>);

#[async_trait]
impl ShutdownSignalWatch for ChannelSignal {
    async fn recv(&self) -> ShutdownSignal {
        let rx = self.0.lock().await.take();
        match rx {
            Some(rx) => rx.await.unwrap_or(ShutdownSignal::FastShutdown),
            None => std::future::pending().await,
        }
    }
}

/// Starts the server on a background thread.
///
/// # Errors
/// When Pingora cannot be initialised.
pub fn spawn(config: Arc<Config>) -> pingora_error::Result<Running> {
    let Built { server, cache } = build(config)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let signal = ChannelSignal(tokio::sync::Mutex::new(Some(rx)));
    let thread = std::thread::Builder::new()
        .name("tagcache-server".into())
        .spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(signal),
            })
        })
        .map_err(|e| {
            pingora_error::Error::because(
                pingora_error::ErrorType::InternalError,
                "spawn server thread",
                e,
            )
        })?;
    Ok(Running {
        cache,
        stop: Some(tx),
        thread: Some(thread),
    })
}

impl Running {
    /// Stops the server and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.cache.halt();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(ShutdownSignal::FastShutdown);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
    }
}
