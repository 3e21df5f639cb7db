//! Prometheus metrics and the counters behind `/stats`.
//!
//! Per-route counters (cache status, response status class, origin status
//! class, origin errors) are resolved once at start-up so that the request
//! path only increments atomics (no label hashing per request). Every series
//! whose label values are known in advance exists from start-up at zero, so
//! that `rate()` and `increase()` see the first event and alerts on absent
//! series are never needed.

use std::sync::Arc;

use pingora_error::ErrorType;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
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

/// Why a request to the origin failed without a response, the `kind` label
/// of `tagcache_origin_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OriginError {
    /// No connection: refused, no route, TLS handshake, socket errors.
    Connect,
    /// A connect, read or write timeout.
    Timeout,
    /// The connection broke or was closed mid-exchange.
    Closed,
    /// The origin answered something that is not valid HTTP.
    Invalid,
    /// Anything else.
    Other,
}

impl OriginError {
    /// Every kind, in label order.
    pub const ALL: [OriginError; 5] = [
        OriginError::Connect,
        OriginError::Timeout,
        OriginError::Closed,
        OriginError::Invalid,
        OriginError::Other,
    ];

    /// The kind of an upstream error of this type.
    pub fn of(etype: &ErrorType) -> Self {
        match etype {
            ErrorType::ConnectTimedout
            | ErrorType::TLSHandshakeTimedout
            | ErrorType::ReadTimedout
            | ErrorType::WriteTimedout => OriginError::Timeout,
            ErrorType::ConnectRefused
            | ErrorType::ConnectNoRoute
            | ErrorType::TLSWantX509Lookup
            | ErrorType::TLSHandshakeFailure
            | ErrorType::InvalidCert
            | ErrorType::HandshakeError
            | ErrorType::ConnectError
            | ErrorType::BindError
            | ErrorType::SocketError
            | ErrorType::ConnectProxyFailure => OriginError::Connect,
            ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => {
                OriginError::Closed
            }
            ErrorType::InvalidHTTPHeader
            | ErrorType::H1Error
            | ErrorType::H2Error
            | ErrorType::H2Downgrade
            | ErrorType::InvalidH2 => OriginError::Invalid,
            _ => OriginError::Other,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            OriginError::Connect => "connect",
            OriginError::Timeout => "timeout",
            OriginError::Closed => "closed",
            OriginError::Invalid => "invalid",
            OriginError::Other => "other",
        }
    }
}

/// The `code` label values: one class per hundred.
pub const CODE_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The index in [`CODE_CLASSES`] of an HTTP status code; `None` outside 100..=599.
#[inline]
fn class(code: u16) -> Option<usize> {
    match code {
        100..=599 => Some(usize::from(code / 100 - 1)),
        _ => None,
    }
}

/// Every `kind` of `tagcache_errors_total`.
pub const ERROR_KINDS: &[&str] = &["origin", "client", "internal"];
/// Every `kind` of `tagcache_purges_total`.
pub const PURGE_KINDS: &[&str] = &[
    "tag",
    "url",
    "workspace",
    "mixed",
    "event",
    "legacy",
    "write",
];
/// Every `result` of `tagcache_purges_total`.
pub const PURGE_RESULTS: &[&str] = &["ok", "not_shared", "invalid", "unauthorized"];
/// Every `kind` of `tagcache_purged_on_lookup_total`.
pub const PURGED_ON_LOOKUP_KINDS: &[&str] = &["hard", "soft"];
/// Every `limit` of `tagcache_limit_hits_total`.
pub const LIMITS: &[&str] = &[
    "uri-too-long",
    "headers-too-large",
    "too-many-params",
    "unkeyed-header",
    "object-too-large",
    "workspace-quota-eviction",
    "workspace-quota-refused",
    "admin-body",
];
/// Every `outcome` of `tagcache_write_invalidations_total`: purged (`ok`),
/// applied here only while Redis is down (`not_shared`), or nothing purged
/// because the origin answered an error (`failed_write`).
pub const WRITE_OUTCOMES: &[&str] = &["ok", "not_shared", "failed_write"];
/// The `rule` of `tagcache_write_invalidations_total` for writes that match
/// no `invalidate:` rule (RFC 9111 §4.4 invalidation only).
pub const NO_WRITE_RULE: &str = "-";
/// Every `result` of `tagcache_auth_total`.
pub const AUTH_RESULTS: &[&str] = &["ok", "invalid", "forbidden"];

/// Creates the series of `vec` for each of `values` (a one-label vector),
/// so that they are exported at zero before their first event.
pub fn preset(vec: &IntCounterVec, values: &[&str]) {
    for v in values {
        let _ = vec.with_label_values(&[v]);
    }
}

/// The route label of requests that match no route.
pub const UNMATCHED: &str = crate::config::UNMATCHED_ROUTE;

/// Pre-resolved counters of one route.
#[derive(Debug, Clone)]
pub struct RouteCounters {
    /// Route name (or `unmatched`).
    pub name: String,
    by_status: [IntCounter; 6],
    by_class: [IntCounter; 5],
    origin_by_class: [IntCounter; 5],
    origin_errors: [IntCounter; 5],
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

    /// Counts one response sent to the client with this HTTP status code
    /// (`tagcache_responses_total`). Codes outside 100..=599 are not counted.
    #[inline]
    pub fn count_response(&self, code: u16) {
        if let Some(c) = class(code).and_then(|i| self.by_class.get(i)) {
            c.inc();
        }
    }

    /// Counts one response received from the origin with this HTTP status
    /// code (`tagcache_origin_responses_total`).
    #[inline]
    pub fn count_origin_response(&self, code: u16) {
        if let Some(c) = class(code).and_then(|i| self.origin_by_class.get(i)) {
            c.inc();
        }
    }

    /// Counts one origin request that failed without a response
    /// (`tagcache_origin_errors_total`).
    #[inline]
    pub fn count_origin_error(&self, kind: OriginError) {
        self.origin_errors[kind as usize].inc();
    }
}

/// All of tagcache's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    responses: IntCounterVec,
    origin_responses: IntCounterVec,
    origin_errors: IntCounterVec,
    stores: IntCounterVec,
    origin: HistogramVec,
    /// Origin requests retried on a new connection after a reused one failed.
    pub origin_retries: IntCounter,
    /// Time spent looking up the cache.
    pub lookup_latency: Histogram,
    /// Errors by kind (`origin`, `client`, `internal`).
    pub errors: IntCounterVec,
    /// Purge requests by kind (`tag`, `url`, `workspace`, `mixed`, `event`,
    /// `legacy`, `write`) and result (`ok`, `not_shared`, `invalid`,
    /// `unauthorized`).
    pub purges: IntCounterVec,
    /// Writes that passed through and invalidated (or, failing, did not), by
    /// `invalidate:` rule (`-` for none) and outcome ([`WRITE_OUTCOMES`]).
    pub write_invalidations: IntCounterVec,
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
    /// The memory store's bound in bytes (`storage.memory.max_size`).
    pub max_bytes: IntGauge,
    /// Evictions from the memory store's global bound; carried from the
    /// store's own counter before each scrape.
    pub evictions: IntCounter,
    /// Tag generation records held.
    pub tag_records: IntGauge,
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

/// A one-label counter vector with its series preset at zero.
fn counter_vec_of(
    registry: &Registry,
    name: &str,
    help: &str,
    label: &str,
    values: &[&str],
) -> IntCounterVec {
    let c = counter_vec(registry, name, help, &[label]);
    preset(&c, values);
    c
}

fn histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()))
        .expect("valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("unique metric");
    h
}

const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
];

/// `tagcache_build_info`: always 1, its labels say what runs.
fn build_info(registry: &Registry) {
    let info = IntGaugeVec::new(
        Opts::new(
            "tagcache_build_info",
            "Always 1; the labels name the version and build profile",
        ),
        &["version", "profile"],
    )
    .expect("valid metric");
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    info.with_label_values(&[env!("CARGO_PKG_VERSION"), profile])
        .set(1);
    registry.register(Box::new(info)).expect("unique metric");
}

/// Process metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_open_fds`, `process_max_fds`, `process_start_time_seconds`,
/// `process_threads`, virtual memory), read from `/proc` at each scrape.
#[cfg(target_os = "linux")]
fn process(registry: &Registry) {
    let _ = registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ));
}

#[cfg(not(target_os = "linux"))]
fn process(_registry: &Registry) {}

impl Metrics {
    /// Creates the metrics for the given route names. The metric names are
    /// constants, so registration cannot fail.
    pub fn new(route_names: &[String]) -> Arc<Self> {
        let registry = Registry::new();
        let requests = counter_vec(
            &registry,
            "tagcache_requests_total",
            "Responses by route and cache status (X-Cache-Status)",
            &["route", "cache_status"],
        );
        let responses = counter_vec(
            &registry,
            "tagcache_responses_total",
            "Responses sent to clients, by route and HTTP status class",
            &["route", "code"],
        );
        let origin_responses = counter_vec(
            &registry,
            "tagcache_origin_responses_total",
            "Responses received from the origin, by route and HTTP status class",
            &["route", "code"],
        );
        let origin_errors = counter_vec(
            &registry,
            "tagcache_origin_errors_total",
            "Origin requests that failed without a response, by route and kind",
            &["route", "kind"],
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
        let purges = counter_vec(
            &registry,
            "tagcache_purges_total",
            "Purge requests by kind and result",
            &["kind", "result"],
        );
        for kind in PURGE_KINDS {
            for result in PURGE_RESULTS {
                let _ = purges.with_label_values(&[kind, result]);
            }
        }
        let write_invalidations = counter_vec(
            &registry,
            "tagcache_write_invalidations_total",
            "Writes passed through that invalidated stored responses, by invalidate rule and outcome",
            &["rule", "outcome"],
        );
        for outcome in WRITE_OUTCOMES {
            let _ = write_invalidations.with_label_values(&[NO_WRITE_RULE, outcome]);
        }
        build_info(&registry);
        process(&registry);
        let metrics = Arc::new(Metrics {
            requests,
            responses,
            origin_responses,
            origin_errors,
            stores,
            origin,
            origin_retries: counter(
                &registry,
                "tagcache_origin_retries_total",
                "Origin requests retried on a new connection after a reused one failed",
            ),
            lookup_latency: histogram(
                &registry,
                "tagcache_lookup_duration_seconds",
                "Cache lookup latency",
            ),
            errors: counter_vec_of(
                &registry,
                "tagcache_errors_total",
                "Errors by kind",
                "kind",
                ERROR_KINDS,
            ),
            purges,
            write_invalidations,
            tags_purged: counter(&registry, "tagcache_tags_purged_total", "Tags purged"),
            purge_latency: histogram(
                &registry,
                "tagcache_purge_duration_seconds",
                "Time to apply a purge",
            ),
            purged_on_lookup: counter_vec_of(
                &registry,
                "tagcache_purged_on_lookup_total",
                "Entries found purged (hard) or soft-purged on lookup",
                "kind",
                PURGED_ON_LOOKUP_KINDS,
            ),
            limits: counter_vec_of(
                &registry,
                "tagcache_limit_hits_total",
                "Requests refused or bypassed by a limit",
                "limit",
                LIMITS,
            ),
            auth: counter_vec_of(
                &registry,
                "tagcache_auth_total",
                "JWT checks on cached routes, by result",
                "result",
                AUTH_RESULTS,
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
            max_bytes: gauge(
                &registry,
                "tagcache_cache_max_bytes",
                "The memory store's bound in bytes (storage.memory.max_size)",
            ),
            evictions: counter(
                &registry,
                "tagcache_cache_evictions_total",
                "Entries evicted from the memory store by its global bound",
            ),
            tag_records: gauge(
                &registry,
                "tagcache_tag_records",
                "Tag generation records held by the purge registry",
            ),
            registry,
        });
        // Every route's series present from the start, at zero.
        for name in route_names
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(UNMATCHED))
        {
            metrics.route_counters(name);
        }
        metrics
    }

    /// Creates the `tagcache_write_invalidations_total` series of the
    /// `invalidate:` rule `label` at zero, so they are exported before its
    /// first write.
    pub fn preset_write_rule(&self, label: &str) {
        for outcome in WRITE_OUTCOMES {
            let _ = self
                .write_invalidations
                .with_label_values(&[label, outcome]);
        }
    }

    /// The counters of the route called `name`: the same series whichever
    /// config, before or after a reload, asks for them.
    pub fn route_counters(&self, name: &str) -> RouteCounters {
        RouteCounters {
            name: name.to_string(),
            by_status: CacheStatus::ALL
                .map(|s| self.requests.with_label_values(&[name, s.as_str()])),
            by_class: CODE_CLASSES.map(|c| self.responses.with_label_values(&[name, c])),
            origin_by_class: CODE_CLASSES
                .map(|c| self.origin_responses.with_label_values(&[name, c])),
            origin_errors: OriginError::ALL
                .map(|k| self.origin_errors.with_label_values(&[name, k.as_str()])),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_fall_into_their_class_and_others_are_not_counted() {
        let m = Metrics::new(&["r".to_string()]);
        let r = m.route_counters("r");
        for code in [100, 200, 204, 299, 301, 304, 404, 499, 500, 503, 599] {
            r.count_response(code);
            r.count_origin_response(code);
        }
        for code in [0, 99, 600, 999, u16::MAX] {
            r.count_response(code);
            r.count_origin_response(code);
        }
        let text = m.render();
        for (class, n) in [("1xx", 1), ("2xx", 3), ("3xx", 2), ("4xx", 2), ("5xx", 3)] {
            for family in [
                "tagcache_responses_total",
                "tagcache_origin_responses_total",
            ] {
                let line = format!("{family}{{code=\"{class}\",route=\"r\"}} {n}\n");
                assert!(text.contains(&line), "{line} missing:\n{text}");
            }
        }
    }

    #[test]
    fn upstream_error_types_map_to_their_kind() {
        let check = |etype: ErrorType, kind: &str| {
            assert_eq!(OriginError::of(&etype).as_str(), kind, "{etype:?}");
        };
        check(ErrorType::ConnectTimedout, "timeout");
        check(ErrorType::ReadTimedout, "timeout");
        check(ErrorType::ConnectRefused, "connect");
        check(ErrorType::TLSHandshakeFailure, "connect");
        check(ErrorType::ConnectionClosed, "closed");
        check(ErrorType::InvalidHTTPHeader, "invalid");
        check(ErrorType::InternalError, "other");
    }

    #[test]
    fn route_counters_by_name_are_the_same_series() {
        let m = Metrics::new(&["a".to_string()]);
        m.route_counters("a").count(CacheStatus::Hit);
        assert_eq!(m.route_counters("a").get(CacheStatus::Hit), 1);
        assert_eq!(m.route_counters(UNMATCHED).get(CacheStatus::Hit), 0);
    }
}
