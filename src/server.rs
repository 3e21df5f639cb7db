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
use crate::proxy::front::Front;
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
                    self.0.mark_stopped();
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

/// Why the server could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A listening address is taken or not ours to bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The access log file cannot be opened for appending.
    #[error("{0}")]
    AccessLog(String),
    /// Pingora could not be initialised.
    #[error("{0}")]
    Pingora(#[from] Box<pingora_error::Error>),
}

/// Binds each listening address once and lets it go, so that a taken port
/// ends the process at once with its address named. Pingora's listener
/// threads would retry for half a minute and then panic, leaving a process
/// that is alive but serves nothing, which no supervisor restarts.
///
/// # Errors
/// The first address that cannot be bound.
pub fn check_bind(config: &Config) -> Result<(), BuildError> {
    for addr in [config.listen, config.admin.listen] {
        std::net::TcpListener::bind(addr).map_err(|source| BuildError::Bind { addr, source })?;
    }
    crate::access_log::check(config).map_err(BuildError::AccessLog)
}

/// How the process gets its listening sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Start {
    /// It binds them.
    #[default]
    Fresh,
    /// It takes them over from the running process (`tagcache run
    /// --upgrade`): that one, sent SIGQUIT, hands them over on
    /// `server.upgrade_sock` and drains; no connection is refused meanwhile.
    Upgrade,
}

/// Builds the Pingora server for `config`.
///
/// # Errors
/// When a listening address cannot be bound, or Pingora cannot be initialised.
pub fn build(config: Arc<Config>) -> Result<Built, BuildError> {
    build_with(config, Start::Fresh)
}

/// Builds the Pingora server for `config`, binding its sockets or, in an
/// upgrade, waiting in [`Server::bootstrap`] for the running process to hand
/// them over.
///
/// # Errors
/// When a listening address cannot be bound (fresh start), or Pingora cannot
/// be initialised (in an upgrade: no process handed its sockets over).
pub fn build_with(config: Arc<Config>, start: Start) -> Result<Built, BuildError> {
    if start == Start::Fresh {
        check_bind(&config)?;
    } else {
        crate::access_log::check(&config).map_err(BuildError::AccessLog)?;
    }
    let conf = ServerConf {
        threads: config.server.threads.max(1),
        grace_period_seconds: Some(config.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.server.grace_period.as_secs().max(1)),
        // The upstream keep-alive pool is shared across threads.
        upstream_keepalive_pool_size: 256,
        // Tries per request: the first and at most one more; the config
        // each request runs under (`upstream.retries`, which a reload may
        // change) decides in `TagCacheProxy::error_while_proxy`.
        max_retries: 2,
        upgrade_sock: config.server.upgrade_sock.clone(),
        ..ServerConf::default()
    };
    let opt = pingora_core::server::configuration::Opt {
        upgrade: start == Start::Upgrade,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();
    let cache = Arc::new(TagCache::new(config.clone()));

    // Fresh memory hits are answered in front of Pingora's proxy, which
    // takes every other request (see `proxy::front`).
    let proxy_app =
        pingora_proxy::http_proxy(&server.configuration, TagCacheProxy::new(cache.clone()));
    let mut proxy = Service::new(
        "tagcache proxy".to_string(),
        Front::new(proxy_app, cache.clone()),
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
    server.add_service(background_service("signals", Signals(cache.clone())));
    Ok(Built { server, cache })
}

/// Takes SIGHUP away from its default action (ending the process), before
/// anything is served: `systemctl reload` and `kill -HUP` are what operators
/// of nginx and Varnish reach for, and must never stop the server. tokio
/// keeps the handler for the life of the process once installed.
fn ignore_hangup() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        if let Err(e) = signal(SignalKind::hangup()) {
            tracing::warn!(error = %e, "cannot take SIGHUP; it will stop the server");
        }
    });
}

/// Answers SIGHUP with a reload of the config file (applied whole, or
/// refused whole with every problem logged; the server keeps running either
/// way) and SIGUSR1 by reopening the access log (logrotate's `postrotate`).
struct Signals(Arc<TagCache>);

#[async_trait]
impl BackgroundService for Signals {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut hup), Ok(mut usr1)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::user_defined1()),
        ) else {
            return;
        };
        loop {
            tokio::select! {
                Some(()) = hup.recv() => {
                    let cache = self.0.clone();
                    match tokio::task::spawn_blocking(move || cache.reload_file()).await {
                        Ok(Ok(report)) => tracing::info!(?report, "SIGHUP: configuration reloaded"),
                        Ok(Err(e)) => tracing::error!("SIGHUP: configuration reload refused, the running config stays:\n{e}"),
                        Err(e) => tracing::error!(error = %e, "SIGHUP: reload task failed"),
                    }
                }
                Some(()) = usr1.recv() => {
                    self.0.reopen_logs();
                    tracing::info!("SIGUSR1: access log reopened");
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Runs the server until SIGTERM (graceful) or SIGINT (fast). Never returns.
///
/// A graceful stop ends as soon as no request is in flight (and the
/// background work has left Redis), instead of sleeping through Pingora's
/// whole grace period: an idle server stops at once, a busy one when its
/// last request is answered, and never later than the grace period.
pub fn run_forever(built: Built) -> ! {
    ignore_hangup();
    let mut phases = built.server.watch_execution_phase();
    let cache = built.cache.clone();
    let _ = std::thread::Builder::new()
        .name("tagcache-drain".into())
        .spawn(move || {
            use pingora_core::server::ExecutionPhase;
            loop {
                match phases.blocking_recv() {
                    Ok(ExecutionPhase::ShutdownGracePeriod) => break,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
            // The background work gets a moment to leave Redis.
            let started = std::time::Instant::now();
            while cache.in_flight() > 0
                || (!cache.stopped() && started.elapsed() < Duration::from_secs(2))
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            tracing::info!("graceful stop: no request in flight, exiting");
            std::process::exit(0);
        });
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
pub fn spawn(config: Arc<Config>) -> Result<Running, BuildError> {
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
            BuildError::Pingora(pingora_error::Error::because(
                pingora_error::ErrorType::InternalError,
                "spawn server thread",
                e,
            ))
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
