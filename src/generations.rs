//! Tag generations: purge by tag in O(1), whatever the number of entries.
//! A leaf: it knows epochs and tag hashes, nothing of entries or storage.
//!
//! A global epoch counts purges. An entry records the epoch it observed when
//! its origin fetch started (`born`). Purging a tag bumps the epoch and
//! records the new value as the tag's generation. On lookup an entry is
//! purged if any of its tags has a generation newer than its birth: a purge
//! touches one map slot per tag, never the entries.
//!
//! Hard and soft purges keep separate generations, so a soft purge after a
//! hard one can never resurrect an entry the hard purge took out.
//!
//! State is bounded: a tag's record is dropped once every entry born before
//! its last purge must have expired (`retention`, the longest lifetime any
//! route allows); tags never purged cost nothing. The comparison uses only the
//! epoch counter, no clocks, so the same rule holds when generations live in
//! a store shared by several instances.
//!
//! # Shared across instances
//!
//! With the Redis tier, the epoch is a counter in Redis and the local epoch is
//! only a *mirror* of it (see `shared::fanout`). Purges from any instance
//! arrive through [`TagRegistry::apply`] with the generation Redis gave them;
//! the mirror only moves to values Redis has handed out, so it never runs
//! ahead of the true epoch and a `born` read from it errs on the safe side. A
//! [floor](TagRegistry::set_floor) purges every entry born before it, for when
//! the purges of a period cannot be known (Redis lost its state), and for a
//! purge of everything ([`TagRegistry::purge_all`]): one counter, O(1).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::RwLock;

const SHARDS: usize = 16;

/// What a lookup should do with an entry after checking its tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No tag of the entry was purged after it was born.
    Valid,
    /// A tag was soft-purged after its birth: serve only as stale, from this time.
    Stale(SystemTime),
    /// A tag was hard-purged after its birth: treat as a miss.
    Purged,
}

#[derive(Debug, Clone, Copy)]
struct TagState {
    hard: u64,
    soft: u64,
    soft_at: SystemTime,
    touched: Instant,
}

/// The tag generation table.
#[derive(Debug)]
pub struct TagRegistry {
    epoch: AtomicU64,
    /// The highest generation ever recorded: entries born at or after it skip the table.
    newest: AtomicU64,
    /// Entries born before this are purged, whatever their tags.
    floor: AtomicU64,
    shards: [RwLock<HashMap<u64, TagState, ahash::RandomState>>; SHARDS],
    /// How long a record is kept after its last purge, in milliseconds;
    /// only ever extended (a reload may make entries live longer).
    retention_ms: AtomicU64,
}

impl TagRegistry {
    /// A registry whose records are kept for `retention` after their last purge.
    pub fn new(retention: Duration) -> Self {
        Self::starting_at(1, retention)
    }

    /// A registry that mirrors a shared epoch, starting below any generation
    /// Redis can hand out (the first is 1).
    pub fn shared(retention: Duration) -> Self {
        Self::starting_at(0, retention)
    }

    fn starting_at(epoch: u64, retention: Duration) -> Self {
        TagRegistry {
            epoch: AtomicU64::new(epoch),
            newest: AtomicU64::new(0),
            floor: AtomicU64::new(0),
            shards: std::array::from_fn(|_| RwLock::new(HashMap::default())),
            retention_ms: AtomicU64::new(retention.as_millis() as u64),
        }
    }

    /// How long a record is kept after its last purge.
    pub fn retention(&self) -> Duration {
        Duration::from_millis(self.retention_ms.load(Ordering::Relaxed))
    }

    /// Keeps records at least `retention` from now on (never shortens it:
    /// entries stored under the longer lifetime are still about).
    pub fn extend_retention(&self, retention: Duration) {
        self.retention_ms
            .fetch_max(retention.as_millis() as u64, Ordering::Relaxed);
    }

    /// The current epoch: record it as `born` before an origin fetch starts.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Purges `tags` (hashes). Returns the new epoch. Every entry born before
    /// this call returns is affected.
    pub fn purge(&self, tags: &[u64], soft: bool) -> u64 {
        let generation = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.record(tags, generation, soft);
        generation
    }

    /// Applies a purge made elsewhere (or through Redis) with the generation
    /// the shared epoch gave it: records it for `tags` unless a newer one is
    /// there, and moves the epoch mirror up to it. Applying the same purge
    /// twice changes nothing.
    pub fn apply(&self, tags: &[u64], generation: u64, soft: bool) {
        self.record(tags, generation, soft);
        self.epoch.fetch_max(generation, Ordering::SeqCst);
    }

    /// Purges `tags` locally while the shared epoch cannot be reached: records
    /// the generation after the mirror without moving the mirror, so that it
    /// never runs ahead of the shared epoch. Entries with these tags stop
    /// being served, including ones filled until the purge reaches Redis (the
    /// shared generation it gets then is at least this one).
    pub fn purge_pending(&self, tags: &[u64], soft: bool) -> u64 {
        let generation = self.epoch.load(Ordering::SeqCst) + 1;
        self.record(tags, generation, soft);
        generation
    }

    /// Purges every entry, whatever its tags: takes the next generation and
    /// raises the floor to it. Returns the new epoch. Entries born from it on
    /// (fetched after this call returns) are not affected.
    pub fn purge_all(&self) -> u64 {
        let generation = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.floor.fetch_max(generation, Ordering::SeqCst);
        generation
    }

    /// Purges every entry while the shared epoch cannot be reached: raises the
    /// floor past the mirror without moving the mirror, as
    /// [`Self::purge_pending`] does for tags. Nothing born before the purge
    /// reaches Redis is served, since Redis may hand out any generation up to
    /// then to other purgers.
    pub fn purge_all_pending(&self) -> u64 {
        let generation = self.epoch.load(Ordering::SeqCst) + 1;
        self.floor.fetch_max(generation, Ordering::SeqCst);
        generation
    }

    /// Moves the epoch mirror up to `epoch` (every purge up to it has been applied).
    pub fn advance(&self, epoch: u64) {
        self.epoch.fetch_max(epoch, Ordering::SeqCst);
    }

    /// Treats every entry born before `floor` as purged, and moves the epoch
    /// mirror up to it so that new entries are not.
    pub fn set_floor(&self, floor: u64) {
        self.floor.fetch_max(floor, Ordering::SeqCst);
        self.epoch.fetch_max(floor, Ordering::SeqCst);
    }

    /// The floor: entries born before it are purged.
    pub fn floor(&self) -> u64 {
        self.floor.load(Ordering::SeqCst)
    }

    fn record(&self, tags: &[u64], generation: u64, soft: bool) {
        let now = Instant::now();
        let wall = SystemTime::now();
        for &tag in tags {
            let mut shard = self.shards[shard_of(tag)].write();
            let st = shard.entry(tag).or_insert(TagState {
                hard: 0,
                soft: 0,
                soft_at: wall,
                touched: now,
            });
            if soft {
                if generation > st.soft {
                    st.soft = generation;
                    st.soft_at = wall;
                }
            } else {
                st.hard = st.hard.max(generation);
            }
            st.touched = now;
        }
        self.newest.fetch_max(generation, Ordering::SeqCst);
    }

    /// Checks an entry born at epoch `born` with the tag hashes `tags`.
    #[inline]
    pub fn check(&self, born: u64, tags: &[u64]) -> Verdict {
        if born < self.floor.load(Ordering::SeqCst) {
            return Verdict::Purged;
        }
        if born >= self.newest.load(Ordering::SeqCst) {
            return Verdict::Valid;
        }
        self.check_slow(born, tags)
    }

    fn check_slow(&self, born: u64, tags: &[u64]) -> Verdict {
        let mut stale: Option<SystemTime> = None;
        for &tag in tags {
            let shard = self.shards[shard_of(tag)].read();
            if let Some(st) = shard.get(&tag) {
                if st.hard > born {
                    return Verdict::Purged;
                }
                if st.soft > born {
                    stale = Some(stale.map_or(st.soft_at, |s| s.min(st.soft_at)));
                }
            }
        }
        stale.map_or(Verdict::Valid, Verdict::Stale)
    }

    /// The generations recorded for one tag: `(hard, soft)`, `None` when the
    /// tag has no record (never purged, or its record was swept). For
    /// explaining a verdict, not for the hit path.
    pub fn tag_generations(&self, tag: u64) -> Option<(u64, u64)> {
        let shard = self.shards[shard_of(tag)].read();
        shard.get(&tag).map(|st| (st.hard, st.soft))
    }

    /// Drops records older than the retention. Returns how many remain.
    pub fn sweep(&self) -> usize {
        let retention = self.retention();
        let now = Instant::now();
        let mut left = 0;
        for shard in &self.shards {
            let mut shard = shard.write();
            shard.retain(|_, st| now.duration_since(st.touched) < retention);
            left += shard.len();
        }
        left
    }

    /// Number of tag records held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    /// Whether no tag record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[inline]
fn shard_of(tag: u64) -> usize {
    (tag >> 58) as usize % SHARDS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry born now: its epoch and tag hashes.
    struct Entry {
        born: u64,
        tags: Vec<u64>,
    }

    fn entry(reg: &TagRegistry, tags: &[u64]) -> Entry {
        Entry {
            born: reg.epoch(),
            tags: tags.to_vec(),
        }
    }

    #[test]
    fn hard_purge_hits_only_older_entries_with_the_tag() {
        let reg = TagRegistry::new(Duration::from_secs(60));
        let a = entry(&reg, &[1, 2]);
        let b = entry(&reg, &[3]);
        reg.purge(&[2], false);
        let c = entry(&reg, &[2]);
        assert_eq!(reg.check(a.born, &a.tags), Verdict::Purged);
        assert_eq!(reg.check(b.born, &b.tags), Verdict::Valid);
        assert_eq!(reg.check(c.born, &c.tags), Verdict::Valid);
    }

    #[test]
    fn soft_purge_marks_stale_and_never_undoes_a_hard_purge() {
        let reg = TagRegistry::new(Duration::from_secs(60));
        let a = entry(&reg, &[1]);
        reg.purge(&[1], true);
        assert!(matches!(reg.check(a.born, &a.tags), Verdict::Stale(_)));
        reg.purge(&[1], false);
        reg.purge(&[1], true);
        assert_eq!(reg.check(a.born, &a.tags), Verdict::Purged);
    }

    #[test]
    fn fill_started_before_purge_is_purged() {
        let reg = TagRegistry::new(Duration::from_secs(60));
        // The fill observes the epoch, then the purge lands, then the entry is stored.
        let filling = entry(&reg, &[7]);
        reg.purge(&[7], false);
        assert_eq!(reg.check(filling.born, &filling.tags), Verdict::Purged);
    }

    #[test]
    fn remote_purges_apply_in_any_order_and_only_once() {
        let reg = TagRegistry::shared(Duration::from_secs(60));
        assert_eq!(reg.epoch(), 0);
        let old = entry(&reg, &[1, 2]);
        // Generation 6 (tag 2) arrives before generation 5 (tag 1).
        reg.apply(&[2], 6, true);
        assert!(matches!(reg.check(old.born, &old.tags), Verdict::Stale(_)));
        assert_eq!(reg.epoch(), 6);
        let later = entry(&reg, &[1]);
        reg.apply(&[1], 5, false);
        assert_eq!(reg.check(old.born, &old.tags), Verdict::Purged);
        assert_eq!(
            reg.check(later.born, &later.tags),
            Verdict::Valid,
            "fetched after generation 6 was seen"
        );
        // An older generation for a tag never lowers it.
        reg.apply(&[1], 3, false);
        let newest = entry(&reg, &[1]);
        reg.apply(&[1], 5, false);
        assert_eq!(reg.check(newest.born, &newest.tags), Verdict::Valid);
    }

    #[test]
    fn pending_purges_do_not_move_the_mirror() {
        let reg = TagRegistry::shared(Duration::from_secs(60));
        reg.apply(&[9], 4, false);
        let before = entry(&reg, &[1]);
        assert_eq!(reg.purge_pending(&[1], false), 5);
        assert_eq!(reg.epoch(), 4, "the mirror never runs ahead of Redis");
        let during = entry(&reg, &[1]);
        assert_eq!(reg.check(before.born, &before.tags), Verdict::Purged);
        assert_eq!(
            reg.check(during.born, &during.tags),
            Verdict::Purged,
            "not served until Redis has the purge"
        );
        // Redis gives the purge generation 7 once reachable again.
        reg.apply(&[1], 7, false);
        let after = entry(&reg, &[1]);
        assert_eq!(reg.check(after.born, &after.tags), Verdict::Valid);
    }

    #[test]
    fn a_floor_purges_everything_born_before_it() {
        let reg = TagRegistry::shared(Duration::from_secs(60));
        reg.apply(&[1], 3, false);
        let a = entry(&reg, &[42]);
        reg.set_floor(10);
        assert_eq!(reg.epoch(), 10);
        let b = entry(&reg, &[42]);
        assert_eq!(reg.check(a.born, &a.tags), Verdict::Purged);
        assert_eq!(reg.check(b.born, &b.tags), Verdict::Valid);
        reg.set_floor(2);
        assert_eq!(reg.floor(), 10, "a floor never goes down");
    }

    #[test]
    fn purge_all_purges_every_older_entry_and_no_newer_one() {
        let reg = TagRegistry::new(Duration::from_secs(60));
        let tagged = entry(&reg, &[1, 2]);
        let untagged = entry(&reg, &[]);
        let g = reg.purge_all();
        assert_eq!(reg.epoch(), g);
        assert_eq!(reg.floor(), g);
        let after = entry(&reg, &[1]);
        assert_eq!(reg.check(tagged.born, &tagged.tags), Verdict::Purged);
        assert_eq!(reg.check(untagged.born, &untagged.tags), Verdict::Purged);
        assert_eq!(reg.check(after.born, &after.tags), Verdict::Valid);
        // A tag purge afterwards still works on top of the floor.
        reg.purge(&[1], false);
        assert_eq!(reg.check(after.born, &after.tags), Verdict::Purged);
        assert_eq!(reg.len(), 1, "purging everything records no tag");
    }

    #[test]
    fn a_pending_purge_all_covers_fills_until_redis_has_it() {
        let reg = TagRegistry::shared(Duration::from_secs(60));
        reg.apply(&[9], 4, false);
        let before = entry(&reg, &[]);
        assert_eq!(reg.purge_all_pending(), 5);
        assert_eq!(reg.epoch(), 4, "the mirror never runs ahead of Redis");
        let during = entry(&reg, &[]);
        assert_eq!(reg.check(before.born, &before.tags), Verdict::Purged);
        assert_eq!(reg.check(during.born, &during.tags), Verdict::Purged);
        // Redis gives it a floor once reachable again.
        reg.set_floor(7);
        let e = entry(&reg, &[]);
        assert_eq!(reg.check(e.born, &e.tags), Verdict::Valid);
    }

    #[test]
    fn sweep_bounds_state() {
        let reg = TagRegistry::new(Duration::ZERO);
        reg.purge(&(0..1000).collect::<Vec<_>>(), false);
        assert_eq!(reg.len(), 1000);
        assert_eq!(reg.sweep(), 0);
        assert!(reg.is_empty());
    }
}
