//! The Redis engine every instance shares: one connection (a server or a
//! cluster), per-operation timeouts, the circuit breaker, and the metrics and
//! health that go with them.
//!
//! Only this module speaks the Redis protocol. `storage::RedisStore` keeps
//! entries through it, [`fanout`] spreads purges and keeps the local
//! `TagRegistry` in step with the shared epoch, and [`lock`] coalesces cold
//! keys across instances.
//!
//! Every operation goes through [`Shared::call`], which fails fast while the
//! breaker is open and gives up after `storage.redis.timeout`: callers treat a
//! failure as a miss (lookups), as not stored (fills), or fall back to their
//! local behaviour (locks), so a sick Redis never becomes a client error.
//!
//! Redis I/O runs on a small runtime of its own, so that the connection's
//! driver and the pub/sub listener keep running whatever Pingora's service
//! runtimes are doing, and stop with the `Shared` that owns them.

pub mod breaker;
pub mod fanout;
mod keys;
pub mod lock;
pub(crate) mod scripts;
mod settings;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::ThreadId;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, RedisFuture, RedisResult, Value};

pub use breaker::{Breaker, BreakerState};
pub use keys::Keys;

use crate::config::{RedisStorage, RedisTarget};

/// Why a Redis operation did not happen, or failed.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// The circuit breaker is open: Redis was not called.
    #[error("redis circuit breaker is open")]
    Open,
    /// Redis did not answer in time.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis or the connection reported an error.
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis answered something tagcache did not expect.
    #[error("unexpected reply from redis: {0}")]
    Reply(&'static str),
    /// The Redis client could not be set up (bad URL, TLS setup).
    #[error("redis setup failed: {0}")]
    Setup(String),
}

/// A connection to a single server or to a cluster; cheap to clone.
#[derive(Clone)]
pub enum Conn {
    /// One server, reconnected by redis-rs' `ConnectionManager`.
    Single(ConnectionManager),
    /// A Redis Cluster, routed by redis-rs.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The Redis metrics, registered into tagcache's registry by `TagCache`.
#[derive(Debug, Clone)]
pub struct SharedMetrics {
    /// Failed Redis operations, by operation (`get`, `set`, `purge`, ...).
    pub errors: IntCounterVec,
    /// Operations not attempted because the breaker was open, by operation.
    pub skipped: IntCounterVec,
    /// Breaker state: 0 closed, 1 half-open, 2 open.
    pub breaker: IntGauge,
    /// L2 lookups by result: `hit`, `miss`, `rejected` (unreadable value), `error`.
    pub l2: IntCounterVec,
    /// L2 writes by result: `stored`, `error`, `too_large`, `expired`.
    pub writes: IntCounterVec,
    /// 1 while the purge subscription is up and synchronized.
    pub subscribed: IntGauge,
    /// Resynchronizations of the purge registry by kind: `catchup` (replayed
    /// the log), `floor` (Redis lost its state: everything older is purged).
    pub resyncs: IntCounterVec,
    /// Purges sent to the other instances, by result: `ok`, `partial` (sync
    /// purge timed out waiting for acks), `failed` (not shared).
    pub fanout: IntCounterVec,
    /// Time to apply a purge everywhere: Redis round trip, plus the acks in sync mode.
    pub fanout_latency: Histogram,
    /// Cross-instance coalescing outcomes: `leader`, `served` (the entry
    /// another instance fetched), `origin` (stopped waiting: the holder's
    /// answer cannot be served here, or the wait ran out), `fallback` (Redis
    /// trouble: per-instance coalescing only).
    pub coalesced: IntCounterVec,
}

/// A one-label counter vector with a series at zero for each of `values`.
fn counter_vec(name: &str, help: &str, label: &str, values: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
    crate::metrics::preset(&c, values);
    c
}

/// Every `op` label of the Redis error and skip counters.
const OPS: &[&str] = &[
    "get",
    "set",
    "del",
    "lock",
    "poll",
    "unlock",
    "purge",
    "sync_check",
    "ack",
    "sync",
    "replay",
    "heartbeat",
    "leave",
    "ping",
];

impl SharedMetrics {
    fn new() -> Self {
        SharedMetrics {
            errors: counter_vec(
                "tagcache_redis_errors_total",
                "Failed Redis operations, by operation",
                "op",
                OPS,
            ),
            skipped: counter_vec(
                "tagcache_redis_skipped_total",
                "Redis operations skipped while the circuit breaker was open, by operation",
                "op",
                OPS,
            ),
            breaker: IntGauge::new(
                "tagcache_redis_breaker_state",
                "Redis circuit breaker: 0 closed, 1 half-open, 2 open",
            )
            .expect("valid metric"),
            l2: counter_vec(
                "tagcache_l2_lookups_total",
                "Redis tier lookups, by result",
                "result",
                &["hit", "miss", "rejected", "error"],
            ),
            writes: counter_vec(
                "tagcache_l2_writes_total",
                "Redis tier writes, by result",
                "result",
                &["stored", "error", "too_large", "expired"],
            ),
            subscribed: IntGauge::new(
                "tagcache_redis_subscribed",
                "1 while the purge subscription is up and synchronized",
            )
            .expect("valid metric"),
            resyncs: counter_vec(
                "tagcache_redis_resyncs_total",
                "Purge registry resynchronizations, by kind",
                "kind",
                &["catchup", "floor"],
            ),
            fanout: counter_vec(
                "tagcache_purge_fanout_total",
                "Purges shared with the other instances, by result",
                "result",
                &["ok", "partial", "failed"],
            ),
            fanout_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "tagcache_purge_fanout_duration_seconds",
                    "Time to apply a purge on every instance (Redis, and acks in sync mode)",
                )
                .buckets(vec![
                    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                    1.0, 2.5, 5.0,
                ]),
            )
            .expect("valid metric"),
            coalesced: counter_vec(
                "tagcache_coalesced_total",
                "Cross-instance coalescing outcomes",
                "result",
                &["leader", "served", "origin", "fallback"],
            ),
        }
    }

    /// Every collector, for registration.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.errors.clone()),
            Box::new(self.skipped.clone()),
            Box::new(self.breaker.clone()),
            Box::new(self.l2.clone()),
            Box::new(self.writes.clone()),
            Box::new(self.subscribed.clone()),
            Box::new(self.resyncs.clone()),
            Box::new(self.fanout.clone()),
            Box::new(self.fanout_latency.clone()),
            Box::new(self.coalesced.clone()),
        ]
    }
}

/// What `/health` says about Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// The breaker state.
    pub breaker: BreakerState,
    /// Whether the purge subscription is up and synchronized.
    pub subscribed: bool,
}

impl Health {
    /// Whether Redis is fully usable.
    pub fn ok(&self) -> bool {
        self.breaker == BreakerState::Closed && self.subscribed
    }
}

/// A runtime that shuts down without blocking when dropped, even from async code.
struct IoRuntime(Option<tokio::runtime::Runtime>);

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The shared Redis handle of one instance.
pub struct Shared {
    conn: Conn,
    /// Clients the purge subscriber connects with, tried in order (a cluster's nodes).
    subscribe_to: Vec<redis::Client>,
    /// Owns the I/O runtime: Redis tasks stop when the handle drops.
    _runtime: IoRuntime,
    handle: tokio::runtime::Handle,
    breaker: Breaker,
    keys: Keys,
    settings: RedisStorage,
    metrics: SharedMetrics,
    instance: Arc<str>,
    subscribed: AtomicBool,
    /// Connections made on the proxy's own worker threads, one per thread.
    local: RwLock<Vec<(ThreadId, Conn)>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("prefix", &self.keys.prefix())
            .field("instance", &self.instance)
            .field("breaker", &self.breaker.state())
            .finish_non_exhaustive()
    }
}

/// A hard-to-guess, unique-enough token: process id, time and std's random hasher keys.
pub(crate) fn token() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    let a = h.finish();
    h.write_u32(std::process::id());
    format!("{a:016x}{:016x}", h.finish())
}

/// Sets up a lazy connection to the configured target, on the current
/// runtime.
fn open(settings: &RedisStorage) -> Result<Conn, SharedError> {
    Ok(match &settings.target {
        RedisTarget::Server(url) => {
            let client = redis::Client::open(url.expose())?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(settings.connect_timeout))
                .set_response_timeout(Some(settings.connect_timeout.max(settings.timeout)))
                .set_number_of_retries(1)
                .set_max_delay(settings.probe_interval);
            Conn::Single(ConnectionManager::new_lazy_with_config(client, config)?)
        }
        RedisTarget::Cluster(nodes) => {
            let client = redis::cluster::ClusterClientBuilder::new(node_urls(nodes))
                .connection_timeout(settings.connect_timeout)
                .response_timeout(settings.connect_timeout.max(settings.timeout))
                .retries(1)
                .build()?;
            let config = redis::cluster::ClusterConfig::new()
                .set_connection_timeout(settings.connect_timeout)
                .set_response_timeout(settings.connect_timeout.max(settings.timeout));
            Conn::Cluster(client.get_pending_async_connection_with_config(config))
        }
    })
}

/// The clients the purge subscriber connects with: the server, or every
/// cluster node (a published purge reaches only the node it was sent to).
fn subscriber_clients(settings: &RedisStorage) -> Result<Vec<redis::Client>, SharedError> {
    let urls = match &settings.target {
        RedisTarget::Server(url) => vec![url.expose().to_string()],
        RedisTarget::Cluster(nodes) => node_urls(nodes),
    };
    Ok(urls
        .iter()
        .map(|u| redis::Client::open(u.as_str()))
        .collect::<RedisResult<Vec<_>>>()?)
}

/// A connection URL for a cluster node given as `host:port` or as a URL.
fn node_url(node: &str) -> String {
    if node.contains("://") {
        node.to_string()
    } else {
        format!("redis://{node}")
    }
}

/// The URLs of a cluster's seed nodes.
fn node_urls(nodes: &[crate::config::Secret]) -> Vec<String> {
    nodes.iter().map(|n| node_url(n.expose())).collect()
}

impl Shared {
    /// Sets up the connection to Redis without waiting for it: tagcache starts
    /// and serves even while Redis is down, and connects when it comes up.
    ///
    /// # Errors
    /// When a URL cannot be used (config validation catches these first), or
    /// the I/O runtime cannot start.
    pub fn new(settings: &RedisStorage) -> Result<Arc<Self>, SharedError> {
        // rediss:// needs a process-wide rustls provider; another part of the
        // process may have installed one already, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tagcache-redis")
            .enable_all()
            .build()
            .map_err(|e| SharedError::Setup(e.to_string()))?;
        let handle = runtime.handle().clone();
        let _enter = handle.enter();
        let conn = open(settings)?;
        let subscribe_to = subscriber_clients(settings)?;
        let metrics = SharedMetrics::new();
        let shared = Arc::new(Shared {
            conn,
            subscribe_to,
            _runtime: IoRuntime(Some(runtime)),
            handle,
            breaker: Breaker::new(settings.breaker_failures, settings.probe_interval),
            keys: Keys::new(&settings.prefix),
            settings: settings.clone(),
            metrics,
            instance: Arc::from(token()),
            subscribed: AtomicBool::new(false),
            local: RwLock::new(Vec::new()),
        });
        // Connect from this runtime, so the connection's driver task lives here.
        let warm = shared.clone();
        shared.handle.spawn(async move {
            let _ = warm
                .call("ping", |mut c| async move {
                    redis::cmd("PING").query_async::<()>(&mut c).await
                })
                .await;
        });
        Ok(shared)
    }

    /// Runs one Redis operation with the configured timeout, through the breaker.
    ///
    /// # Errors
    /// [`SharedError::Open`] without calling Redis while the breaker is open;
    /// otherwise the timeout or Redis' error, each counted under `op`.
    pub async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, SharedError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.call_within(op, self.settings.timeout, f).await
    }

    /// Like [`Self::call`] with another timeout, for operations that move more
    /// than one key's worth of data (replaying the purge log).
    ///
    /// # Errors
    /// As [`Self::call`].
    pub async fn call_within<T, F, Fut>(
        &self,
        op: &'static str,
        timeout: Duration,
        f: F,
    ) -> Result<T, SharedError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.run(op, timeout, self.conn.clone(), f).await
    }

    /// Like [`Self::call`], over a connection made on the calling worker
    /// thread's runtime: for the operations of the request path (entry reads
    /// and writes, coalescing locks). The connection's driver then runs on
    /// the same thread as the request, so a lookup does not wake the Redis
    /// runtime's thread and wait for it to wake the request back, and the
    /// commands of concurrent requests go out together in one write.
    ///
    /// # Errors
    /// As [`Self::call`].
    pub async fn call_local<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, SharedError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let conn = self.local_conn();
        self.run(op, self.settings.timeout, conn, f).await
    }

    /// This worker thread's connection, set up on first use. On the Redis
    /// runtime itself, outside any runtime, or if it cannot be set up: the
    /// shared connection.
    fn local_conn(&self) -> Conn {
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.id() != self.handle.id() => {}
            _ => return self.conn.clone(),
        }
        let me = std::thread::current().id();
        if let Some((_, c)) = self
            .local
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(t, _)| *t == me)
        {
            return c.clone();
        }
        let Ok(conn) = open(&self.settings) else {
            return self.conn.clone();
        };
        let mut local = self.local.write().unwrap_or_else(PoisonError::into_inner);
        local.push((me, conn.clone()));
        conn
    }

    async fn run<T, F, Fut>(
        &self,
        op: &'static str,
        timeout: Duration,
        conn: Conn,
        f: F,
    ) -> Result<T, SharedError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if !self.breaker.allow() {
            self.metrics.skipped.with_label_values(&[op]).inc();
            return Err(SharedError::Open);
        }
        self.sync_breaker_gauge();
        let result = match tokio::time::timeout(timeout, f(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(SharedError::Redis(e)),
            Err(_) => Err(SharedError::Timeout(timeout)),
        };
        match &result {
            Ok(_) => {
                if self.breaker.success() {
                    tracing::info!("redis is reachable again: circuit breaker closed");
                    self.sync_breaker_gauge();
                }
            }
            Err(e) => {
                self.metrics.errors.with_label_values(&[op]).inc();
                if self.breaker.failure() {
                    tracing::warn!("redis {op} failed ({e}): circuit breaker open");
                    self.sync_breaker_gauge();
                } else {
                    tracing::debug!("redis {op} failed: {e}");
                }
            }
        }
        result
    }

    fn sync_breaker_gauge(&self) {
        self.metrics.breaker.set(self.breaker.state().gauge());
    }

    /// The key names of this deployment.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The Redis settings.
    pub fn settings(&self) -> &RedisStorage {
        &self.settings
    }

    /// The metrics.
    pub fn metrics(&self) -> &SharedMetrics {
        &self.metrics
    }

    /// This instance's id in the heartbeat set and in acks: random per process.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Health for `/health`.
    pub fn health(&self) -> Health {
        self.sync_breaker_gauge();
        Health {
            breaker: self.breaker.state(),
            subscribed: self.subscribed.load(Ordering::Acquire),
        }
    }

    pub(crate) fn set_subscribed(&self, up: bool) {
        self.subscribed.store(up, Ordering::Release);
        self.metrics.subscribed.set(i64::from(up));
    }

    /// Runs `fut` on the Redis runtime.
    pub(crate) fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(fut)
    }

    /// Clients for the purge subscription, in the order to try them.
    pub(crate) fn subscribe_to(&self) -> &[redis::Client] {
        &self.subscribe_to
    }
}

/// A reply as an integer.
pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

/// A reply as text.
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}
