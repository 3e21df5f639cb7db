//! The per-workspace quota: what each workspace holds, and the room a fill makes
//! by evicting that workspace's own oldest entries.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;

use super::entry::*;
use super::store::*;

/// The per-workspace quota and what each workspace holds.
pub(super) struct Quota {
    pub(super) max: usize,
    pub(super) usage: Mutex<HashMap<Arc<str>, Usage>>,
}

/// What one workspace holds.
#[derive(Default)]
pub(super) struct Usage {
    pub(super) bytes: usize,
    pub(super) entries: usize,
    /// Keys in the order they were filled, oldest first. It may hold keys that are gone or
    /// were refilled since (checked when popped), and is compacted when it grows past
    /// twice the live entries.
    pub(super) order: VecDeque<u128>,
}

/// The workspace an entry is charged to.
pub(super) fn workspace_of(entry: &Entry) -> Option<&Arc<str>> {
    entry.meta.info.as_ref()?.workspace.as_ref()
}

impl MemoryStore {
    /// Limits the bytes each workspace's entries may hold to `max` (see the module docs);
    /// `None` sets no quota.
    pub fn with_workspace_quota(mut self, max: Option<usize>) -> Self {
        self.quota = max.map(|max| Quota {
            max,
            usage: Mutex::new(HashMap::new()),
        });
        self
    }

    /// Bytes the entries of `workspace` hold now (0 without a quota, which is what enables
    /// the per-workspace accounting).
    pub fn workspace_bytes(&self, workspace: &str) -> usize {
        self.quota
            .as_ref()
            .map_or(0, |q| q.usage.lock().get(workspace).map_or(0, |u| u.bytes))
    }

    /// Bytes and entries the entries of `workspace` hold now, when the store
    /// keeps per-workspace accounting (with a quota); `None` without one.
    pub fn workspace_usage(&self, workspace: &str) -> Option<(usize, usize)> {
        let quota = self.quota.as_ref()?;
        let usage = quota.usage.lock();
        Some(
            usage
                .get(workspace)
                .map_or((0, 0), |u| (u.bytes, u.entries)),
        )
    }

    /// Charges (`add`) or refunds a counted entry to its workspace. Called wherever the gauges
    /// change, under the write lock.
    pub(super) fn charge(&self, key: u128, entry: &Entry, add: bool) {
        let (Some(quota), Some(ws)) = (&self.quota, workspace_of(entry)) else {
            return;
        };
        let mut usage = quota.usage.lock();
        if add {
            let u = usage.entry(ws.clone()).or_default();
            u.bytes += entry.weight;
            u.entries += 1;
            u.order.push_back(key);
            if u.order.len() > 2 * u.entries + 16 {
                // Drop keys that no longer hold an entry of this workspace, and repeats.
                let mut seen = std::collections::HashSet::with_capacity(u.entries);
                let order = std::mem::take(&mut u.order);
                u.order = order
                    .into_iter()
                    .rev()
                    .filter(|k| *k == key || self.live_in(*k, ws))
                    .filter(|k| seen.insert(*k))
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
            }
        } else if let Some(u) = usage.get_mut(ws) {
            u.bytes = u.bytes.saturating_sub(entry.weight);
            u.entries = u.entries.saturating_sub(1);
            if u.entries == 0 {
                usage.remove(ws);
            }
        }
    }

    /// Whether `key` holds a live entry of workspace `ws`.
    pub(super) fn live_in(&self, key: u128, ws: &Arc<str>) -> bool {
        self.get(key)
            .is_some_and(|e| workspace_of(&e).is_some_and(|w| w == ws))
    }

    /// Makes room for `entry` within its workspace's quota by evicting that workspace's own
    /// oldest entries; returns false if the entry alone exceeds the quota. `previous` is what
    /// the entry's key holds now: replacing it frees its bytes. Called under the write lock.
    pub(super) fn make_room(
        &self,
        key: u128,
        entry: &Entry,
        previous: Option<&Slot>,
        gauges: &mut Gauges,
    ) -> bool {
        let (Some(quota), Some(ws)) = (&self.quota, workspace_of(entry)) else {
            return true;
        };
        if entry.weight > quota.max {
            self.quota_refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let freed = match previous {
            Some(Some(old)) if workspace_of(old).is_some_and(|w| w == ws) => old.weight,
            _ => 0,
        };
        loop {
            let victim = {
                let mut usage = quota.usage.lock();
                let Some(u) = usage.get_mut(ws) else {
                    return true;
                };
                if u.bytes.saturating_sub(freed) + entry.weight <= quota.max {
                    return true;
                }
                match u.order.pop_front() {
                    Some(k) => k,
                    // Nothing left to evict; the accounting says over quota, so refuse.
                    None => {
                        self.quota_refused.fetch_add(1, Ordering::Relaxed);
                        return false;
                    }
                }
            };
            if victim == key {
                continue; // being replaced: its bytes are already counted as freed
            }
            let Some(old) = self.get(victim) else {
                continue;
            };
            if workspace_of(&old).is_none_or(|w| w != ws) {
                continue;
            }
            self.put_locked(victim, None, self.tombstone_units, Some(Some(old)), gauges);
            self.quota_evictions.fetch_add(1, Ordering::Relaxed);
        }
    }
}
