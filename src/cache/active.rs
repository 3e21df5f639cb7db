//! What a config makes of the cache layer: the config itself, its route
//! table (and the `invalidate:` rules' table), its JWT verifier, each
//! route's implicit tag and counters. A reload builds a new one and swaps it
//! in whole; a request takes one at its start and keeps it to its end, so it
//! never sees half of two configs.

use std::sync::Arc;

use crate::access_log::AccessLog;
use crate::config::Config;
use crate::identity::Authenticator;
use crate::metrics::{Metrics, RouteCounters};
use crate::route::Router;
use crate::tags;

/// An [`Active`] borrowed from a request, or loaded for one that has none.
pub(crate) enum ActiveRef<'a> {
    Borrowed(&'a Active),
    Loaded(arc_swap::Guard<Arc<Active>>),
}

impl std::ops::Deref for ActiveRef<'_> {
    type Target = Active;
    fn deref(&self) -> &Active {
        match self {
            ActiveRef::Borrowed(a) => a,
            ActiveRef::Loaded(g) => g,
        }
    }
}

/// The config a request runs under, with what is derived from it.
pub(crate) struct Active {
    pub(crate) config: Arc<Config>,
    pub(crate) router: Router,
    /// The `invalidate:` rules' patterns, by rule index.
    pub(crate) writes: Router,
    /// Hash of each route's implicit tag, by route index.
    pub(crate) route_tags: Vec<u64>,
    /// The JWT verifier, with `tenant.jwt`. `None` in JWT mode only if its
    /// key could not be built, and then every tenant request is refused.
    pub(crate) auth: Option<Authenticator>,
    /// Counters by route index, the unmatched bucket last.
    counters: Vec<RouteCounters>,
    /// The access log, when `log.access` is on.
    pub(crate) access: Option<AccessLog>,
}

impl std::fmt::Debug for Active {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Active")
            .field("routes", &self.config.routes.len())
            .finish_non_exhaustive()
    }
}

impl Active {
    /// Builds what `config` makes, with counters from `metrics`.
    pub(crate) fn new(config: Arc<Config>, metrics: &Metrics) -> Self {
        let route_tags = config
            .routes
            .iter()
            .map(|r| tags::hash(&tags::route_tag(&r.name)))
            .collect();
        let auth = match Authenticator::new(&config.tenant) {
            Some(Ok(auth)) => Some(auth),
            Some(Err(e)) => {
                // Fail closed: without a verifier no tenant request gets through.
                tracing::error!(error = %e, "cannot build the JWT verifier; tenant requests will be refused");
                None
            }
            None => None,
        };
        let counters = config
            .routes
            .iter()
            .map(|r| metrics.route_counters(&r.name))
            .chain(std::iter::once(
                metrics.route_counters(crate::metrics::UNMATCHED),
            ))
            .collect();
        for rule in &config.invalidate {
            metrics.preset_write_rule(&rule.label);
        }
        let access = config.log.access.as_ref().and_then(|a| {
            AccessLog::open(a, config.log.hash_identities)
                .map_err(|e| tracing::error!(error = %e, "cannot open the access log"))
                .ok()
        });
        Active {
            access,
            router: Router::new(&config.routes),
            writes: Router::from_patterns(config.invalidate.iter().map(|r| r.segments.as_slice())),
            route_tags,
            auth,
            counters,
            config,
        }
    }

    /// Counters of route `index`; `None` (or an index out of range) is the
    /// unmatched bucket.
    #[inline]
    pub(crate) fn counters(&self, index: Option<usize>) -> &RouteCounters {
        let last = self.counters.len() - 1;
        &self.counters[index.map_or(last, |i| i.min(last))]
    }

    /// Every route's counters, the unmatched bucket last.
    pub(crate) fn all_counters(&self) -> &[RouteCounters] {
        &self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unmatched_bucket_takes_out_of_range_indexes() {
        let yaml = "upstream: { address: \"127.0.0.1:1\" }\nroutes:\n  - { name: a, match: \"GET /a/{id}\", ttl: 60s }\n  - { name: b, match: \"GET /b/{id}\", ttl: 60s }\n";
        let config = crate::config::load_str(yaml, "t.yaml", &|_| None).expect("config");
        let metrics = Metrics::new(&["a".into(), "b".into()]);
        let active = Active::new(Arc::new(config.config), &metrics);
        assert_eq!(active.counters(None).name, "unmatched");
        assert_eq!(active.counters(Some(7)).name, "unmatched");
        assert_eq!(active.counters(Some(1)).name, "b");
    }
}
