//! Per-workspace traffic figures in bounded memory: a sharded Space-Saving sketch.
//!
//! Every request on a route that names a workspace is counted here, from
//! `TagCache::logging`. The sketch keeps at most [`SLOTS`] workspaces
//! whatever the number seen: 16 shards (chosen by a hash of the workspace)
//! of 64 slots each. A workspace already tracked costs one hash of its name,
//! one uncontended shard lock and a few plain increments; a new workspace in
//! a full shard takes the slot of that shard's least counted one
//! (Space-Saving: the newcomer inherits that count as its possible
//! overcount, `error`), so a workspace that sends more than about one
//! request in [`SLOTS`] is never dropped. Per-status counts of a slot start
//! at zero when a workspace takes it, so they are exact since then; only the
//! ranking count carries the inherited error.
//!
//! Shards rather than one lock: proxy worker threads count requests of
//! different workspaces at once, and one mutex would be a point every
//! request passes. Shards rather than per-thread buffers: a reader (the
//! admin API, a scrape) sees every request counted so far, with no flush.
//!
//! [`WorkspaceCollector`] exports the top `metrics.workspace_labels`
//! workspaces to Prometheus at scrape time; it exports nothing when that is
//! 0 (the default), so the label's cardinality is opt-in and bounded.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, LabelPair, Metric, MetricFamily, MetricType};

use crate::metrics::CacheStatus;

/// Shards of the sketch.
const SHARDS: usize = 16;
/// Slots per shard.
const SHARD_SLOTS: usize = 64;
/// Workspaces tracked at most.
pub const SLOTS: usize = SHARDS * SHARD_SLOTS;

/// The figures of one tracked workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceFigures {
    /// The workspace id.
    pub workspace: Arc<str>,
    /// The ranking count: requests since it was tracked, plus `error`.
    pub count: u64,
    /// How much of `count` it may have inherited from the workspace whose
    /// slot it took (0 when it has been tracked from its first request).
    pub error: u64,
    /// Requests by cache status since it was tracked, in [`CacheStatus::ALL`] order.
    pub by_status: [u64; 6],
    /// Responses stored for it since it was tracked.
    pub stores: u64,
}

impl WorkspaceFigures {
    /// Requests of this status.
    pub fn get(&self, status: CacheStatus) -> u64 {
        self.by_status[status as usize]
    }

    /// Requests counted since it was tracked (without the inherited error).
    pub fn requests(&self) -> u64 {
        self.by_status.iter().sum()
    }

    /// Answers served from the cache over lookups, as `/stats` computes it:
    /// (hit + stale + revalidated) / (those + miss + expired); 0 without lookups.
    pub fn hit_rate(&self) -> f64 {
        let served = self.get(CacheStatus::Hit)
            + self.get(CacheStatus::Stale)
            + self.get(CacheStatus::Revalidated);
        let lookups = served + self.get(CacheStatus::Miss) + self.get(CacheStatus::Expired);
        if lookups == 0 {
            0.0
        } else {
            served as f64 / lookups as f64
        }
    }
}

/// One slot of a shard.
struct Slot {
    key: u64,
    name: Arc<str>,
    count: u64,
    error: u64,
    by_status: [u64; 6],
    stores: u64,
}

/// A hasher that passes a `u64` key through: the keys are already hashes.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in, to be safe.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Default)]
struct Shard {
    index: HashMap<u64, usize, BuildHasherDefault<Identity>>,
    slots: Vec<Slot>,
}

impl Shard {
    fn record(&mut self, key: u64, name: &str, status: CacheStatus, stored: bool) {
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => self.take_slot(key, name),
        };
        let slot = &mut self.slots[i];
        slot.count += 1;
        slot.by_status[status as usize] += 1;
        slot.stores += u64::from(stored);
    }

    /// A slot for a workspace not tracked yet: a free one, or the least
    /// counted one's (Space-Saving), whose count it inherits as its error.
    fn take_slot(&mut self, key: u64, name: &str) -> usize {
        if self.slots.len() < SHARD_SLOTS {
            self.slots.push(Slot {
                key,
                name: Arc::from(name),
                count: 0,
                error: 0,
                by_status: [0; 6],
                stores: 0,
            });
            self.index.insert(key, self.slots.len() - 1);
            return self.slots.len() - 1;
        }
        let (i, min) = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.count))
            .min_by_key(|(_, c)| *c)
            .unwrap_or((0, 0));
        let old = std::mem::replace(
            &mut self.slots[i],
            Slot {
                key,
                name: Arc::from(name),
                count: min,
                error: min,
                by_status: [0; 6],
                stores: 0,
            },
        );
        self.index.remove(&old.key);
        self.index.insert(key, i);
        i
    }
}

/// The per-workspace sketch. Share it in an `Arc`.
pub struct WorkspaceStats {
    shards: [Mutex<Shard>; SHARDS],
    hasher: ahash::RandomState,
    /// Workspaces exported to Prometheus (`metrics.workspace_labels`); 0: none.
    labels: AtomicUsize,
}

impl std::fmt::Debug for WorkspaceStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspaceStats")
            .field("tracked", &self.tracked())
            .finish_non_exhaustive()
    }
}

impl Default for WorkspaceStats {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkspaceStats {
    /// An empty sketch that exports nothing to Prometheus.
    pub fn new() -> Self {
        WorkspaceStats {
            shards: std::array::from_fn(|_| Mutex::new(Shard::default())),
            // Fixed seeds: the shard of a workspace does not depend on the run.
            hasher: ahash::RandomState::with_seeds(0x7461_6763, 0x6163_6865, 0x776f_726b, 0x7370),
            labels: AtomicUsize::new(0),
        }
    }

    /// Counts one request of `workspace` answered with `status`, and whether
    /// its response was stored.
    #[inline]
    pub fn record(&self, workspace: &str, status: CacheStatus, stored: bool) {
        let key = self.hasher.hash_one(workspace);
        // The high bits pick the shard; the map uses the whole hash.
        let shard = (key >> 60) as usize % SHARDS;
        self.shards[shard]
            .lock()
            .record(key, workspace, status, stored);
    }

    /// Workspaces tracked now (at most [`SLOTS`]).
    pub fn tracked(&self) -> usize {
        self.shards.iter().map(|s| s.lock().slots.len()).sum()
    }

    /// The `n` workspaces with the highest counts, highest first (ties by name).
    pub fn top(&self, n: usize) -> Vec<WorkspaceFigures> {
        let mut all: Vec<WorkspaceFigures> = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock();
            all.extend(shard.slots.iter().map(|s| WorkspaceFigures {
                workspace: s.name.clone(),
                count: s.count,
                error: s.error,
                by_status: s.by_status,
                stores: s.stores,
            }));
        }
        all.sort_unstable_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.workspace.cmp(&b.workspace))
        });
        all.truncate(n);
        all
    }

    /// Sets how many workspaces [`WorkspaceCollector`] exports (0: none).
    pub fn set_labels(&self, n: usize) {
        self.labels.store(n, Ordering::Relaxed);
    }

    /// How many workspaces [`WorkspaceCollector`] exports.
    pub fn labels(&self) -> usize {
        self.labels.load(Ordering::Relaxed)
    }
}

/// Exports `tagcache_workspace_requests_total{workspace,cache_status}` and
/// `tagcache_workspace_stores_total{workspace}` for the top
/// [`WorkspaceStats::labels`] workspaces, computed at each scrape.
pub struct WorkspaceCollector {
    stats: Arc<WorkspaceStats>,
    descs: Vec<Desc>,
}

const REQUESTS: &str = "tagcache_workspace_requests_total";
const REQUESTS_HELP: &str =
    "Responses by workspace and cache status, for the busiest workspaces (metrics.workspace_labels)";
const STORES: &str = "tagcache_workspace_stores_total";
const STORES_HELP: &str =
    "Responses stored, by workspace, for the busiest workspaces (metrics.workspace_labels)";

impl WorkspaceCollector {
    /// The collector of `stats`.
    pub fn new(stats: Arc<WorkspaceStats>) -> Self {
        let descs = [
            (REQUESTS, REQUESTS_HELP, vec!["workspace", "cache_status"]),
            (STORES, STORES_HELP, vec!["workspace"]),
        ]
        .into_iter()
        .filter_map(|(name, help, labels)| {
            Desc::new(
                name.to_string(),
                help.to_string(),
                labels.into_iter().map(String::from).collect(),
                HashMap::new(),
            )
            .ok()
        })
        .collect();
        WorkspaceCollector { stats, descs }
    }
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut l = LabelPair::default();
    l.set_name(name.to_string());
    l.set_value(value.to_string());
    l
}

fn counter(labels: Vec<LabelPair>, value: u64) -> Metric {
    let mut c = Counter::default();
    c.set_value(value as f64);
    let mut m = Metric::default();
    m.set_label(labels);
    m.set_counter(c);
    m
}

fn family(name: &str, help: &str, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(MetricType::COUNTER);
    f.set_metric(metrics);
    f
}

impl Collector for WorkspaceCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let n = self.stats.labels();
        if n == 0 {
            return Vec::new();
        }
        let top = self.stats.top(n);
        if top.is_empty() {
            return Vec::new();
        }
        let mut requests = Vec::with_capacity(top.len() * CacheStatus::ALL.len());
        let mut stores = Vec::with_capacity(top.len());
        for w in &top {
            for s in CacheStatus::ALL {
                requests.push(counter(
                    vec![
                        label("cache_status", s.as_str()),
                        label("workspace", &w.workspace),
                    ],
                    w.get(s),
                ));
            }
            stores.push(counter(vec![label("workspace", &w.workspace)], w.stores));
        }
        vec![
            family(REQUESTS, REQUESTS_HELP, requests),
            family(STORES, STORES_HELP, stores),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_status_and_ranks_by_traffic() {
        let s = WorkspaceStats::new();
        for _ in 0..3 {
            s.record("a", CacheStatus::Hit, false);
        }
        s.record("a", CacheStatus::Miss, true);
        s.record("b", CacheStatus::Bypass, false);
        let top = s.top(10);
        assert_eq!(top.len(), 2);
        assert_eq!(&*top[0].workspace, "a");
        assert_eq!(top[0].count, 4);
        assert_eq!(top[0].get(CacheStatus::Hit), 3);
        assert_eq!(top[0].get(CacheStatus::Miss), 1);
        assert_eq!(top[0].stores, 1);
        assert_eq!(top[0].hit_rate(), 0.75);
        assert_eq!(&*top[1].workspace, "b");
        assert_eq!(top[1].hit_rate(), 0.0);
        assert_eq!(s.top(1).len(), 1);
    }

    #[test]
    fn heavy_hitters_survive_a_flood_of_distinct_workspaces() {
        let s = WorkspaceStats::new();
        // 20 heavy workspaces with 200 requests each, interleaved with
        // 100,000 workspaces seen once.
        for round in 0..200u32 {
            for h in 0..20 {
                s.record(&format!("heavy-{h}"), CacheStatus::Hit, false);
            }
            for i in 0..500u32 {
                s.record(&format!("light-{round}-{i}"), CacheStatus::Miss, false);
            }
        }
        assert!(s.tracked() <= SLOTS, "{}", s.tracked());
        let top = s.top(20);
        let mut names: Vec<&str> = top.iter().map(|w| &*w.workspace).collect();
        names.sort_unstable();
        let mut expected: Vec<String> = (0..20).map(|h| format!("heavy-{h}")).collect();
        expected.sort_unstable();
        assert_eq!(names, expected);
        for w in &top {
            // Counted exactly since tracked, never more than it sent.
            assert!(w.get(CacheStatus::Hit) <= 200, "{w:?}");
            assert!(w.count >= 200, "{w:?}");
            assert!(w.count - w.error <= 200, "{w:?}");
        }
    }

    #[test]
    fn the_collector_exports_nothing_until_switched_on_then_the_top_n() {
        let stats = Arc::new(WorkspaceStats::new());
        for (w, n) in [("w1", 5), ("w2", 3), ("w3", 1)] {
            for _ in 0..n {
                stats.record(w, CacheStatus::Hit, false);
            }
        }
        let c = WorkspaceCollector::new(stats.clone());
        assert_eq!(c.desc().len(), 2);
        assert!(c.collect().is_empty());
        stats.set_labels(2);
        let families = c.collect();
        assert_eq!(families.len(), 2);
        assert_eq!(families[0].get_metric().len(), 2 * CacheStatus::ALL.len());
        let workspaces: Vec<&str> = families[1]
            .get_metric()
            .iter()
            .map(|m| m.get_label()[0].value())
            .collect();
        assert_eq!(workspaces, ["w1", "w2"]);
    }
}

#[cfg(test)]
mod config_tests {
    fn load(extra: &str) -> Result<crate::config::Config, String> {
        let yaml = format!("upstream: {{ address: \"127.0.0.1:3000\" }}\n{extra}\n");
        crate::config::load_str(&yaml, "t.yaml", &|_| None)
            .map(|l| l.config)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn workspace_labels_is_off_by_default_and_bounded() {
        assert_eq!(load("").unwrap().metrics.workspace_labels, 0);
        let on = load("metrics:\n  workspace_labels: 20").unwrap();
        assert_eq!(on.metrics.workspace_labels, 20);
        let e = load("metrics:\n  workspace_labels: 1001").unwrap_err();
        assert!(e.contains("at most 1000"), "{e}");
        let e = load("metrics:\n  workspace_label: 2").unwrap_err();
        assert!(e.contains("workspace_labels"), "{e}");
    }
}
