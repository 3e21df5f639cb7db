//! The memory tier: a bounded, in-process response store on TinyUFO.
//!
//! [`MemoryStore`] implements pingora-cache's [`Storage`] trait. Entries live in a
//! [`TinyUfo`] (TinyLFU admission, S3-FIFO eviction, from pingora's own crates) keyed by
//! the 128-bit `combined_bin()` of the cache key, so a lookup by [`CacheKey`] and a purge
//! by [`CompactCacheKey`](pingora_cache::key::CompactCacheKey) address the same slot.
//!
//! # Hit path
//!
//! A lookup takes no lock: one TinyUFO read, a freshness check, and a [`CacheMeta`] rebuilt
//! from the stored fields with [`CacheMeta::new`] plus a clone of the response header. Nothing
//! is serialized or deserialized. The body is a single [`Bytes`] shared with every reader, so
//! reading it is a reference-count increment.
//!
//! # Writes and accounting
//!
//! Fills, replacements, purges, expiries and `update_meta` are serialized by one mutex. They
//! are rare next to hits, and the lock is what keeps the `entries` and `bytes` gauges exact:
//! TinyUFO replaces an existing key's value without returning it, so the store reads the old
//! value and applies the put under the same lock.
//!
//! Stored entries are immutable (`Arc<Entry>`); `update_meta` and `expire` put a new entry that
//! shares the old body.
//!
//! # Removal uses tombstones
//!
//! `TinyUfo::remove` (TinyUFO 0.9.1) leaves the key in its FIFO queue; if the key is put again
//! before that stale queue slot is popped, the small-queue weight is subtracted twice and
//! underflows (a panic with overflow checks on, a skewed eviction policy without). Purges
//! followed by refills are tagcache's normal traffic, so this store never calls `remove`: a
//! removed key's slot is overwritten with a tombstone (`None`) charged [`TOMBSTONE_COST`] bytes,
//! which TinyUFO evicts like any other item, or which the next fill of the key replaces.
//!
//! # Admission
//!
//! Puts go through TinyUFO's TinyLFU admission. When the store is full and making room for a
//! new key would evict exactly one entry, the new key is refused if that entry was written
//! more often recently (TinyLFU counts puts, not reads). A refused fill is counted in
//! [`MemoryStats::rejected`] and is just a miss: each later fill of the key raises its count
//! until it is admitted. Refills of a key that is present, or was purged and still holds its
//! tombstone, replace the slot and are never refused.
//!
//! # Expiry
//!
//! An entry is dead once its freshness and both serve-stale windows have run out. A lookup
//! that finds a dead entry removes it and misses; stale entries still inside a window are
//! returned, and pingora decides whether to serve them. Dead entries that are never looked up
//! again stay counted until TinyUFO evicts them.
//!
//! # Per-workspace quota
//!
//! With [`MemoryStore::with_workspace_quota`], the bytes of each workspace's entries (read
//! from their [`EntryInfo`]) are counted, and one workspace can never hold more than the quota:
//! before a fill that would take it over, the store evicts that workspace's own oldest entries,
//! and a single entry larger than the quota is refused. Other workspaces' entries are never
//! touched to make room for it, so one noisy tenant cannot push everyone else out. Entries
//! without a workspace (routes that are not tenant-scoped) have no quota. The bookkeeping
//! happens under the write lock, with the gauges; the hit path does not see it.
//!
//! # Weights
//!
//! TinyUFO weights are `u16`. The store charges weights in units of
//! `ceil((max_object_size + META_ALLOWANCE + ENTRY_OVERHEAD) / 65535)` bytes, rounding each
//! entry up, and gives TinyUFO a limit of `max_size / unit` units. Because every entry's byte
//! count is at most its units times the unit, the `bytes` gauge can never exceed `max_size`;
//! the store also checks that after every put.

mod entry;
mod miss;
mod quota;
mod store;

pub use entry::{MemoryHit, ENTRY_OVERHEAD, HEADER_OVERHEAD, META_ALLOWANCE, TOMBSTONE_COST};
pub use store::{MemoryStats, MemoryStore};

#[cfg(test)]
mod quota_tests;

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;

    use pingora_cache::key::CacheHashKey;
    use pingora_cache::storage::{
        HitHandler, MissFinishType, PurgeOutcome, PurgeTarget, PurgeType, Storage,
    };
    use pingora_cache::trace::SpanHandle;
    use pingora_cache::{CacheEntryKey, CacheKey, CacheMeta};

    use pingora_http::ResponseHeader;

    use super::entry::*;
    use crate::storage::EntryInfo;

    use pingora_cache::key::CompactCacheKey;
    use pingora_cache::trace::Span;

    const MIB: usize = 1024 * 1024;

    fn store(max_size: usize, max_object_size: usize) -> &'static MemoryStore {
        Box::leak(Box::new(MemoryStore::new(max_size, max_object_size)))
    }

    fn span() -> SpanHandle {
        Span::inactive().handle()
    }

    fn header() -> ResponseHeader {
        let mut header = ResponseHeader::build(200, None).unwrap();
        header
            .append_header("Content-Type", "application/json")
            .unwrap();
        header.append_header("X-Origin", "backend-1").unwrap();
        header
    }

    fn meta_with(fresh_for: i64, swr: u32, sie: u32) -> CacheMeta {
        let now = SystemTime::now();
        let fresh_until = if fresh_for >= 0 {
            now + Duration::from_secs(fresh_for.unsigned_abs())
        } else {
            now - Duration::from_secs(fresh_for.unsigned_abs())
        };
        CacheMeta::new(
            fresh_until,
            now - Duration::from_secs(1),
            swr,
            sie,
            header(),
        )
    }

    fn info() -> Arc<EntryInfo> {
        Arc::new(EntryInfo {
            route: 3,
            workspace: Some("w1".into()),
            tags: vec![11, 22, 33].into_boxed_slice(),
            born: 7,
        })
    }

    async fn fill(store: &'static MemoryStore, key: &CacheKey, meta: &CacheMeta, body: &[u8]) {
        let mut miss = store.get_miss_handler(key, meta, &span()).await.unwrap();
        // Two chunks, to exercise assembly.
        let (a, b) = body.split_at(body.len() / 2);
        miss.write_body(Bytes::copy_from_slice(a), false)
            .await
            .unwrap();
        miss.write_body(Bytes::copy_from_slice(b), true)
            .await
            .unwrap();
        miss.finish().await.unwrap();
    }

    async fn read_all(hit: &mut HitHandler) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(chunk) = hit.read_body().await.unwrap() {
            out.extend_from_slice(&chunk);
        }
        out
    }

    #[tokio::test]
    async fn put_then_lookup_returns_header_body_and_entry_info() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/api/boards/b1/contacts", "w1");
        let mut meta = meta_with(180, 10, 20);
        info().attach(&mut meta);
        let body = b"{\"contacts\":[1,2,3]}".repeat(10);
        fill(store, &key, &meta, &body).await;

        let (found, mut hit) = store.lookup(&key, &span()).await.unwrap().unwrap();
        assert_eq!(found.response_header().status, 200);
        assert_eq!(found.headers(), meta.headers());
        assert_eq!(found.fresh_until(), meta.fresh_until());
        assert_eq!(found.created(), meta.created());
        assert_eq!(found.stale_while_revalidate_sec(), 10);
        assert_eq!(found.stale_if_error_sec(), 20);
        assert_eq!(EntryInfo::of(&found), Some(&info()));
        assert_eq!(read_all(&mut hit).await, body);
        assert!(hit.read_body().await.unwrap().is_none());

        let stats = store.stats();
        assert_eq!(stats.entries, 1);
        assert_eq!(stats.bytes, hit.get_eviction_weight());
        assert!(stats.bytes > body.len() + ENTRY_OVERHEAD);
    }

    #[tokio::test]
    async fn a_missing_key_is_a_miss() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/nothing", "");
        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_large_body_is_served_in_slices() {
        let store = store(4 * MIB, MIB);
        let key = CacheKey::new("/large", "");
        let body: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        fill(store, &key, &meta_with(60, 0, 0), &body).await;
        let (_, mut hit) = store.lookup(&key, &span()).await.unwrap().unwrap();
        let first = hit.read_body().await.unwrap().unwrap();
        assert_eq!(first.len(), crate::storage::hit::READ_CHUNK);
        let mut all = first.to_vec();
        all.extend(read_all(&mut hit).await);
        assert_eq!(all, body);
    }

    #[tokio::test]
    async fn an_entry_past_its_stale_windows_is_removed_and_counted() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/dead", "");
        // Fresh until 100 s ago, serve-stale windows of 10 s and 30 s: dead 70 s ago.
        fill(store, &key, &meta_with(-100, 10, 30), b"old").await;
        assert_eq!(store.stats().entries, 1);

        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
        let stats = store.stats();
        assert_eq!(stats.expired, 1);
        assert_eq!(stats.entries, 0);
        assert_eq!(stats.bytes, 0);
        // Gone for good, not counted twice.
        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
        assert_eq!(store.stats().expired, 1);
    }

    #[tokio::test]
    async fn a_stale_entry_within_its_swr_window_is_returned() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/stale", "");
        fill(store, &key, &meta_with(-5, 60, 0), b"stale body").await;

        let (meta, mut hit) = store.lookup(&key, &span()).await.unwrap().unwrap();
        let now = SystemTime::now();
        assert!(!meta.is_fresh(now));
        assert!(meta.serve_stale_while_revalidate(now));
        assert_eq!(read_all(&mut hit).await, b"stale body");
        assert_eq!(store.stats().expired, 0);
    }

    #[tokio::test]
    async fn the_longer_stale_window_decides_when_an_entry_dies() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/sie", "");
        // SWR has run out, stale-if-error has not: pingora may still need it.
        fill(store, &key, &meta_with(-30, 10, 300), b"fallback").await;
        let (meta, _) = store.lookup(&key, &span()).await.unwrap().unwrap();
        assert!(!meta.serve_stale_while_revalidate(SystemTime::now()));
        assert!(meta.serve_stale_if_error(SystemTime::now()));
    }

    #[tokio::test]
    async fn eviction_keeps_bytes_within_max_size_and_counts_evictions() {
        let max_size = 256 * 1024;
        let store = store(max_size, 16 * 1024);
        let body = vec![b'x'; 2000];
        let meta = meta_with(60, 0, 0);
        let mut charged = 0;
        let mut n = 0;
        while charged < 10 * max_size {
            let key = CacheKey::new(format!("/item/{n}"), "");
            fill(store, &key, &meta, &body).await;
            n += 1;
            charged += body.len() + ENTRY_OVERHEAD;
            assert!(store.stats().bytes <= max_size, "after {n} fills");
        }
        let stats = store.stats();
        assert!(stats.evictions > 0);
        assert!(stats.bytes <= max_size);
        // Every fill is stored, evicted later, or refused; nothing leaks from the gauges.
        assert_eq!(
            stats.entries as u64 + stats.evictions + stats.rejected,
            n as u64
        );
        // The gauges agree with what lookups find.
        let mut live = 0;
        let mut live_bytes = 0;
        for i in 0..n {
            let key = CacheKey::new(format!("/item/{i}"), "");
            if let Some((_, hit)) = store.lookup(&key, &span()).await.unwrap() {
                live += 1;
                live_bytes += hit.get_eviction_weight();
            }
        }
        assert_eq!(live, stats.entries);
        assert_eq!(live_bytes, stats.bytes);
        // The store keeps most of its room in use.
        assert!(stats.bytes > max_size / 2, "{stats:?}");
    }

    #[tokio::test]
    async fn purge_and_refill_cycles_keep_gauges_exact() {
        // Regression test for TinyUFO 0.9.1's remove-then-put weight underflow: a key purged,
        // refilled and read twice, then pushed out by pressure, made `TinyUfo::remove` leave a
        // duplicate queue slot whose weight was subtracted twice (a panic under overflow
        // checks). Purges followed by refills must neither panic nor skew the gauges.
        let max_size = 64 * 1024;
        let store = store(max_size, 8 * 1024);
        let meta = meta_with(60, 0, 0);
        let purge = |key: CacheKey| async move {
            store
                .purge(
                    PurgeTarget::Active(&key.to_compact()),
                    PurgeType::Invalidation,
                    &span(),
                )
                .await
                .unwrap()
        };
        for round in 0..20 {
            let hot = CacheKey::new(format!("/hot/{round}"), "");
            // Once the store is full, TinyLFU may refuse a new key's first fills.
            let mut fills = 0;
            while store.lookup(&hot, &span()).await.unwrap().is_none() {
                assert!(fills < 50, "a repeatedly filled key is admitted");
                fill(store, &hot, &meta, &[b'h'; 4000]).await;
                fills += 1;
            }
            assert_eq!(purge(hot.clone()).await, PurgeOutcome::Purged(None));
            // The tombstone holds the slot, so the refill replaces it and is always admitted.
            fill(store, &hot, &meta, &[b'h'; 4000]).await;
            for _ in 0..2 {
                assert!(store.lookup(&hot, &span()).await.unwrap().is_some());
            }
            for i in 0..40 {
                let key = CacheKey::new(format!("/cold/{round}/{i}"), "");
                fill(store, &key, &meta, &vec![b'c'; 500 + 37 * i]).await;
                if i % 3 == 0 {
                    purge(key.clone()).await;
                    fill(store, &key, &meta, &[b'c'; 700]).await;
                }
                assert!(store.stats().bytes <= max_size);
            }
        }
        let mut live = 0;
        let mut live_bytes = 0;
        for round in 0..20 {
            let keys = std::iter::once(format!("/hot/{round}"))
                .chain((0..40).map(|i| format!("/cold/{round}/{i}")));
            for key in keys {
                if let Some((_, hit)) = store
                    .lookup(&CacheKey::new(key, ""), &span())
                    .await
                    .unwrap()
                {
                    live += 1;
                    live_bytes += hit.get_eviction_weight();
                }
            }
        }
        let stats = store.stats();
        assert_eq!(live, stats.entries);
        assert_eq!(live_bytes, stats.bytes);
    }

    #[test]
    fn concurrent_fills_purges_and_hits_keep_gauges_exact() {
        use futures::FutureExt;

        let max_size = 128 * 1024;
        let store = store(max_size, 8 * 1024);
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                std::thread::spawn(move || {
                    let meta = meta_with(60, 60, 0);
                    let mut x = 0x9e37_79b9_7f4a_7c15 ^ t;
                    for _ in 0..3000 {
                        // xorshift: deterministic per thread, no extra dependency
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let key = CacheKey::new(format!("/c/{}", x % 150), "");
                        let op = async {
                            match (x >> 32) % 8 {
                                0..=2 => {
                                    fill(store, &key, &meta, &vec![1u8; (x % 3000) as usize]).await
                                }
                                3 => {
                                    store
                                        .purge(
                                            PurgeTarget::Active(&key.to_compact()),
                                            PurgeType::Invalidation,
                                            &span(),
                                        )
                                        .await
                                        .unwrap();
                                }
                                4 => {
                                    store
                                        .expire(PurgeTarget::Active(&key.to_compact()), &span())
                                        .await
                                        .unwrap();
                                }
                                _ => {
                                    if let Some((_, mut hit)) =
                                        store.lookup(&key, &span()).await.unwrap()
                                    {
                                        read_all(&mut hit).await;
                                    }
                                }
                            }
                        };
                        op.now_or_never().expect("the memory store never suspends");
                        assert!(store.stats().bytes <= max_size);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let (mut live, mut live_bytes) = (0, 0);
        for i in 0..150 {
            let key = CacheKey::new(format!("/c/{i}"), "");
            let found = store.lookup(&key, &span()).now_or_never().unwrap().unwrap();
            if let Some((_, hit)) = found {
                live += 1;
                live_bytes += hit.get_eviction_weight();
            }
        }
        let stats = store.stats();
        assert_eq!(
            (live, live_bytes),
            (stats.entries, stats.bytes),
            "{stats:?}"
        );
    }

    #[tokio::test]
    async fn a_body_over_max_object_size_is_not_stored() {
        let store = store(MIB, 1000);
        let key = CacheKey::new("/big", "");
        let mut miss = store
            .get_miss_handler(&key, &meta_with(60, 0, 0), &span())
            .await
            .unwrap();
        for _ in 0..3 {
            // Writes keep succeeding so the client response keeps streaming.
            miss.write_body(Bytes::from(vec![0u8; 400]), false)
                .await
                .unwrap();
        }
        assert!(matches!(
            miss.finish().await.unwrap(),
            MissFinishType::Created(0)
        ));
        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
        let stats = store.stats();
        assert_eq!(stats.too_large, 1);
        assert_eq!(stats.entries, 0);
        assert_eq!(stats.bytes, 0);
    }

    #[tokio::test]
    async fn a_content_length_over_max_object_size_is_not_buffered() {
        let store = store(MIB, 1000);
        let key = CacheKey::new("/big-declared", "");
        let mut meta = meta_with(60, 0, 0);
        meta.response_header_mut()
            .insert_header("Content-Length", "5000")
            .unwrap();
        let mut miss = store.get_miss_handler(&key, &meta, &span()).await.unwrap();
        miss.write_body(Bytes::from_static(b"abc"), true)
            .await
            .unwrap();
        miss.finish().await.unwrap();
        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
        assert_eq!(store.stats().too_large, 1);
    }

    #[tokio::test]
    async fn a_dropped_miss_handler_stores_nothing() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/aborted", "");
        let mut miss = store
            .get_miss_handler(&key, &meta_with(60, 0, 0), &span())
            .await
            .unwrap();
        miss.write_body(Bytes::from_static(b"partial"), false)
            .await
            .unwrap();
        drop(miss);
        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
        assert_eq!(store.stats().entries, 0);
    }

    #[tokio::test]
    async fn a_refill_replaces_the_entry_and_its_bytes() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/replace", "");
        fill(store, &key, &meta_with(60, 0, 0), &[1u8; 3000]).await;
        fill(store, &key, &meta_with(60, 0, 0), &[2u8; 100]).await;
        let (_, mut hit) = store.lookup(&key, &span()).await.unwrap().unwrap();
        assert_eq!(read_all(&mut hit).await, vec![2u8; 100]);
        let stats = store.stats();
        assert_eq!(stats.entries, 1);
        assert_eq!(stats.bytes, hit.get_eviction_weight());
        assert!(stats.bytes < 3000);
    }

    #[tokio::test]
    async fn purge_removes_the_entry() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/purge-me", "w1");
        fill(store, &key, &meta_with(60, 0, 0), b"body").await;
        let compact = key.to_compact();

        let outcome = store
            .purge(
                PurgeTarget::Active(&compact),
                PurgeType::Invalidation,
                &span(),
            )
            .await
            .unwrap();
        assert_eq!(outcome, PurgeOutcome::Purged(None));
        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
        assert_eq!(store.stats().entries, 0);
        assert_eq!(store.stats().bytes, 0);

        let again = store
            .purge(
                PurgeTarget::Active(&compact),
                PurgeType::Invalidation,
                &span(),
            )
            .await
            .unwrap();
        assert_eq!(again, PurgeOutcome::NotFound);

        // A refill after a purge is stored again.
        fill(store, &key, &meta_with(60, 0, 0), b"new body").await;
        let (_, mut hit) = store.lookup(&key, &span()).await.unwrap().unwrap();
        assert_eq!(read_all(&mut hit).await, b"new body");
    }

    #[tokio::test]
    async fn purge_by_exact_target() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/exact", "");
        fill(store, &key, &meta_with(60, 0, 0), b"body").await;

        let identified =
            CacheEntryKey::identified(key.to_compact(), pingora_cache::CacheEntryId::new(9));
        let outcome = store
            .purge(
                PurgeTarget::Exact(&identified),
                PurgeType::Eviction,
                &span(),
            )
            .await
            .unwrap();
        assert_eq!(outcome, PurgeOutcome::NotFound, "we never assign entry IDs");

        let key_only = CacheEntryKey::key_only(key.to_compact());
        let outcome = store
            .purge(PurgeTarget::Exact(&key_only), PurgeType::Eviction, &span())
            .await
            .unwrap();
        assert_eq!(outcome, PurgeOutcome::Purged(None));
        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
    }

    #[test]
    fn compact_and_full_keys_address_the_same_slot() {
        fn check(key: &CacheKey) {
            let compact = key.to_compact();
            assert_eq!(store_key(key), store_key(&compact));
            assert_eq!(store_key(key), u128::from_be_bytes(key.combined_bin()));
            // A compact key rebuilt from its parts, as a purge registry would store it.
            let rebuilt = CompactCacheKey {
                primary: compact.primary,
                variance: compact.variance.clone(),
                user_tag: "anything".into(),
            };
            assert_eq!(store_key(key), store_key(&rebuilt));
        }
        check(&CacheKey::new("/plain", ""));
        let mut varied = CacheKey::new("/varied", "tag");
        varied.set_variance_key([7u8; 16]);
        check(&varied);
        let mut overridden = CacheKey::new("/ignored", "");
        overridden.set_primary_bin_override([1u8; 16]);
        check(&overridden);
        assert_ne!(
            store_key(&CacheKey::new("/varied", "tag")),
            store_key(&varied)
        );
    }

    #[tokio::test]
    async fn purge_by_compact_key_reaches_a_varied_entry() {
        let store = store(MIB, 64 * 1024);
        let mut key = CacheKey::new("/vary", "");
        key.set_variance_key([3u8; 16]);
        let mut meta = meta_with(60, 0, 0);
        meta.set_variance([3u8; 16]);
        fill(store, &key, &meta, b"variant").await;

        let (found, _) = store.lookup(&key, &span()).await.unwrap().unwrap();
        assert_eq!(found.variance(), Some([3u8; 16]));

        let outcome = store
            .purge(
                PurgeTarget::Active(&key.to_compact()),
                PurgeType::Invalidation,
                &span(),
            )
            .await
            .unwrap();
        assert_eq!(outcome, PurgeOutcome::Purged(None));
        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn expire_marks_stale_and_keeps_the_body() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/expire", "");
        let mut meta = meta_with(300, 30, 0);
        info().attach(&mut meta);
        fill(store, &key, &meta, b"keep me").await;
        let bytes_before = store.stats().bytes;

        let outcome = store
            .expire(PurgeTarget::Active(&key.to_compact()), &span())
            .await
            .unwrap();
        assert_eq!(outcome, PurgeOutcome::Expired);

        let (found, mut hit) = store.lookup(&key, &span()).await.unwrap().unwrap();
        let later = SystemTime::now() + Duration::from_secs(1);
        assert!(!found.is_fresh(later));
        assert!(found.serve_stale_while_revalidate(later));
        assert_eq!(EntryInfo::of(&found), Some(&info()));
        assert_eq!(read_all(&mut hit).await, b"keep me");
        assert_eq!(store.stats().bytes, bytes_before);
        assert_eq!(store.stats().entries, 1);

        let absent = CacheKey::new("/never", "").to_compact();
        let outcome = store
            .expire(PurgeTarget::Active(&absent), &span())
            .await
            .unwrap();
        assert_eq!(outcome, PurgeOutcome::NotFound);
    }

    #[tokio::test]
    async fn update_meta_replaces_freshness_and_header() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/revalidate", "");
        let mut meta = meta_with(-10, 60, 0);
        info().attach(&mut meta);
        fill(store, &key, &meta, b"same body").await;

        let mut header = header();
        header.append_header("ETag", "\"v2\"").unwrap();
        let now = SystemTime::now();
        let fresh_until = now + Duration::from_secs(120);
        let mut revalidated = CacheMeta::new(fresh_until, now, 5, 6, header);
        // As pingora's revalidate_cache_meta does: keep the original creation time.
        revalidated.set_epoch_override(now);
        assert!(store
            .update_meta(&key, &revalidated, &span())
            .await
            .unwrap());

        let (found, mut hit) = store.lookup(&key, &span()).await.unwrap().unwrap();
        assert_eq!(found.fresh_until(), fresh_until);
        assert!(found.is_fresh(SystemTime::now()));
        assert_eq!(found.stale_while_revalidate_sec(), 5);
        assert_eq!(found.stale_if_error_sec(), 6);
        assert_eq!(found.epoch(), now);
        assert_eq!(found.headers().get("etag").unwrap(), "\"v2\"");
        assert_eq!(
            EntryInfo::of(&found),
            Some(&info()),
            "kept from the stored entry"
        );
        assert_eq!(read_all(&mut hit).await, b"same body");
        assert_eq!(store.stats().bytes, hit.get_eviction_weight());

        let absent = CacheKey::new("/absent", "");
        assert!(!store
            .update_meta(&absent, &revalidated, &span())
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn seek_serves_ranges_and_rejects_out_of_range() {
        let store = store(MIB, 64 * 1024);
        let key = CacheKey::new("/range", "");
        fill(store, &key, &meta_with(60, 0, 0), b"test1test2").await;
        let (_, mut hit) = store.lookup(&key, &span()).await.unwrap().unwrap();
        assert!(hit.can_seek());

        let err = hit.seek(10, None).unwrap_err();
        assert_eq!(err.etype(), &pingora_error::ErrorType::InternalError);
        assert!(hit.seek(6, Some(5)).is_err());

        hit.seek(5, None).unwrap();
        assert_eq!(read_all(&mut hit).await, b"test2");
        hit.seek(4, Some(5)).unwrap();
        assert_eq!(read_all(&mut hit).await, b"1");
        // An end past the body is clamped.
        hit.seek(8, Some(100)).unwrap();
        assert_eq!(read_all(&mut hit).await, b"t2");
    }

    #[tokio::test]
    async fn a_purge_uncounts_only_its_own_entry() {
        let store = store(MIB, 64 * 1024);
        let a = CacheKey::new("/a", "");
        let b = CacheKey::new("/b", "");
        fill(store, &a, &meta_with(60, 0, 0), b"a").await;
        fill(store, &b, &meta_with(60, 0, 0), b"b").await;
        let purge = |key: &CacheKey| {
            let key = CacheEntryKey::key_only(key.to_compact());
            async move {
                store
                    .purge(PurgeTarget::Exact(&key), PurgeType::Invalidation, &span())
                    .await
                    .unwrap()
            }
        };
        assert_eq!(purge(&a).await, PurgeOutcome::Purged(None));
        assert_eq!(purge(&a).await, PurgeOutcome::NotFound);
        let (_, hit_b) = store.lookup(&b, &span()).await.unwrap().unwrap();
        assert_eq!(store.stats().entries, 1);
        assert_eq!(store.stats().bytes, hit_b.get_eviction_weight());

        // Refilling the purged key counts it once more, next to the other.
        fill(store, &a, &meta_with(60, 0, 0), b"a2").await;
        let (_, hit_a) = store.lookup(&a, &span()).await.unwrap().unwrap();
        assert_eq!(store.stats().entries, 2);
        assert_eq!(
            store.stats().bytes,
            hit_a.get_eviction_weight() + hit_b.get_eviction_weight()
        );
    }

    #[tokio::test]
    async fn an_entry_larger_than_the_store_is_refused() {
        let store = store(4 * 1024, 64 * 1024);
        let key = CacheKey::new("/huge", "");
        fill(store, &key, &meta_with(60, 0, 0), &[0u8; 10_000]).await;
        assert!(store.lookup(&key, &span()).await.unwrap().is_none());
        assert_eq!(store.stats().too_large, 1);
        assert_eq!(store.stats().bytes, 0);
    }
}
