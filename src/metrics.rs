//! Prometheus metrics and the counters behind `/stats`.
//!
//! Per-route, per-status counters are resolved once at start-up so that the
//! request path only increments atomics (no label hashing per request).

use std::sync::Arc;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// What happened to a request, as reported in `X-Cache-Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheStatus {
    /// Served from cache, fresh.
    Hit,
    /// Not in cache; fetched from origin.
    Miss,
    /// The cache was not used for this request.
    Bypass,
    /// Served from cache past its freshness (stale-while-revalidate, stale-if-error, soft purge).
    Stale,
    /// Found but expired; a new copy was fetched from origin.
    Expired,
    /// Found expired and revalidated with the origin (304).
    Revalidated,
}

impl CacheStatus {
    /// Every status, in label order.
    pub const ALL: [CacheStatus; 6] = [
        CacheStatus::Hit,
        CacheStatus::Miss,
        CacheStatus::Bypass,
        CacheStatus::Stale,
        CacheStatus::Expired,
        CacheStatus::Revalidated,
    ];

    /// The `X-Cache-Status` value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Bypass => "BYPASS",
            CacheStatus::Stale => "STALE",
            CacheStatus::Expired => "EXPIRED",
            CacheStatus::Revalidated => "REVALIDATED",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The route label of requests that match no route.
pub const UNMATCHED: &str = "unmatched";

/// Pre-resolved counters of one route.
#[derive(Debug, Clone)]
pub struct RouteCounters {
    /// Route name (or `unmatched`).
    pub name: String,
    by_status: [IntCounter; 6],
    /// Responses stored.
    pub stores: IntCounter,
    /// Origin latency of this route.
    pub origin_latency: Histogram,
}

impl RouteCounters {
    /// Count one response of this status.
    #[inline]
    pub fn count(&self, status: CacheStatus) {
        self.by_status[status.index()].inc();
    }

    /// Responses so far with this status.
    pub fn get(&self, status: CacheStatus) -> u64 {
        self.by_status[status.index()].get()
    }
}

/// All of tagcache's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    stores: IntCounterVec,
    origin: HistogramVec,
    /// Time spent looking up the cache.
    pub lookup_latency: Histogram,
    /// Errors by kind (`origin`, `storage`, `internal`).
    pub errors: IntCounterVec,
    /// Purge requests by kind (`tag`, `url`, `workspace`, `event`, `legacy`) and result.
    pub purges: IntCounterVec,
    /// Tags purged.
    pub tags_purged: IntCounter,
    /// Time to apply a purge.
    pub purge_latency: Histogram,
    /// Entries found purged on lookup, by kind (`hard`, `soft`).
    pub purged_on_lookup: IntCounterVec,
    /// Requests refused or bypassed by a limit, by limit.
    pub limits: IntCounterVec,
    /// JWT checks on cached routes, by result (`ok`, `invalid`, `forbidden`).
    pub auth: IntCounterVec,
    /// Entries in the memory store.
    pub entries: IntGauge,
    /// Bytes in the memory store.
    pub bytes: IntGauge,
    /// Evictions from the memory store (mirrors the store's own counter).
    pub evictions: IntGauge,
    /// Tag generation records held.
    pub tag_records: IntGauge,
    /// Origin requests retried on a new connection after a reused one failed.
    pub origin_retries: IntCounter,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Metrics {
    /// Creates the metrics for the given route names. The metric names are
    /// constants, so registration cannot fail.
    pub fn new(route_names: &[String]) -> Arc<Self> {
        let registry = Registry::new();
        let requests = counter_vec(
            &registry,
            "tagcache_requests_total",
            "Responses by route and cache status",
            &["route", "status"],
        );
        let stores = counter_vec(
            &registry,
            "tagcache_stores_total",
            "Responses stored, by route",
            &["route"],
        );
        let origin = HistogramVec::new(
            HistogramOpts::new(
                "tagcache_origin_duration_seconds",
                "Origin response header latency, by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(origin.clone()))
            .expect("unique metric");
        let lookup_latency = Histogram::with_opts(
            HistogramOpts::new("tagcache_lookup_duration_seconds", "Cache lookup latency")
                .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        registry
            .register(Box::new(lookup_latency.clone()))
            .expect("unique metric");
        let purge_latency = Histogram::with_opts(
            HistogramOpts::new("tagcache_purge_duration_seconds", "Time to apply a purge")
                .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        registry
            .register(Box::new(purge_latency.clone()))
            .expect("unique metric");
        let metrics = Arc::new(Metrics {
            requests,
            stores,
            origin,
            origin_retries: counter(
                &registry,
                "tagcache_origin_retries_total",
                "Origin requests retried on a new connection after a reused one failed",
            ),
            lookup_latency,
            errors: counter_vec(
                &registry,
                "tagcache_errors_total",
                "Errors by kind",
                &["kind"],
            ),
            purges: counter_vec(
                &registry,
                "tagcache_purges_total",
                "Purge requests by kind and result",
                &["kind", "result"],
            ),
            tags_purged: counter(&registry, "tagcache_tags_purged_total", "Tags purged"),
            purge_latency,
            purged_on_lookup: counter_vec(
                &registry,
                "tagcache_purged_on_lookup_total",
                "Entries found purged (hard) or soft-purged on lookup",
                &["kind"],
            ),
            limits: counter_vec(
                &registry,
                "tagcache_limit_hits_total",
                "Requests refused or bypassed by a limit",
                &["limit"],
            ),
            auth: counter_vec(
                &registry,
                "tagcache_auth_total",
                "JWT checks on cached routes, by result",
                &["result"],
            ),
            entries: gauge(
                &registry,
                "tagcache_cache_entries",
                "Entries in the memory store",
            ),
            bytes: gauge(
                &registry,
                "tagcache_cache_bytes",
                "Bytes held by the memory store",
            ),
            evictions: gauge(
                &registry,
                "tagcache_cache_evictions",
                "Entries evicted from the memory store since start",
            ),
            tag_records: gauge(
                &registry,
                "tagcache_tag_records",
                "Tag generation records held by the purge registry",
            ),
            registry,
        });
        // Every series present from the start, at zero.
        for name in route_names
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(UNMATCHED))
        {
            metrics.route_counters(name);
        }
        metrics
    }

    /// The counters of the route called `name` (the same series whichever
    /// config, before or after a reload, asks for them).
    pub fn route_counters(&self, name: &str) -> RouteCounters {
        RouteCounters {
            name: name.to_string(),
            by_status: CacheStatus::ALL
                .map(|s| self.requests.with_label_values(&[name, s.as_str()])),
            stores: self.stores.with_label_values(&[name]),
            origin_latency: self.origin.with_label_values(&[name]),
        }
    }

    /// Adds metrics defined elsewhere (the Redis tier's) to the registry.
    /// Registering the same metric twice is ignored.
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) {
        let _ = self.registry.register(collector);
    }

    /// Renders the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let families = self.registry.gather();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&families, &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
