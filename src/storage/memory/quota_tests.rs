//! The per-workspace quota: a workspace over it evicts its own entries, never another's.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use pingora_cache::storage::{PurgeOutcome, PurgeTarget, PurgeType, Storage};
use pingora_cache::trace::{Span, SpanHandle};
use pingora_cache::{CacheEntryKey, CacheKey, CacheMeta};
use pingora_http::ResponseHeader;

use super::{MemoryStore, ENTRY_OVERHEAD};
use crate::storage::EntryInfo;

const BODY: usize = 10_000;

fn store(max_size: usize, quota: usize) -> &'static MemoryStore {
    Box::leak(Box::new(
        MemoryStore::new(max_size, 64 << 10).with_workspace_quota(Some(quota)),
    ))
}

fn span() -> SpanHandle {
    Span::inactive().handle()
}

fn key(ws: &str, i: usize) -> CacheKey {
    CacheKey::new(format!("{ws}/{i}"), ws)
}

fn meta(ws: Option<&str>) -> CacheMeta {
    let now = SystemTime::now();
    let mut meta = CacheMeta::new(
        now + Duration::from_secs(300),
        now,
        0,
        0,
        ResponseHeader::build(200, None).unwrap(),
    );
    Arc::new(EntryInfo {
        route: 0,
        workspace: ws.map(Arc::from),
        tags: vec![1].into_boxed_slice(),
        born: 0,
    })
    .attach(&mut meta);
    meta
}

async fn fill(store: &'static MemoryStore, ws: Option<&str>, i: usize, len: usize) {
    let k = key(ws.unwrap_or("-"), i);
    let mut miss = store
        .get_miss_handler(&k, &meta(ws), &span())
        .await
        .unwrap();
    miss.write_body(Bytes::from(vec![b'x'; len]), true)
        .await
        .unwrap();
    miss.finish().await.unwrap();
}

async fn present(store: &'static MemoryStore, ws: &str, i: usize) -> bool {
    store.lookup(&key(ws, i), &span()).await.unwrap().is_some()
}

/// Purges one entry through pingora's `Storage::purge`; whether there was one.
async fn purge(store: &'static MemoryStore, ws: &str, i: usize) -> bool {
    let key = CacheEntryKey::key_only(key(ws, i).to_compact());
    let outcome = store
        .purge(PurgeTarget::Exact(&key), PurgeType::Invalidation, &span())
        .await
        .unwrap();
    outcome == PurgeOutcome::Purged(None)
}

/// Room for about four entries of `BODY` bytes.
fn quota() -> usize {
    4 * (BODY + ENTRY_OVERHEAD + 1024)
}

#[tokio::test]
async fn a_noisy_workspace_evicts_only_its_own_oldest_entries() {
    let s = store(64 << 20, quota());
    for i in 0..3 {
        fill(s, Some("quiet"), i, BODY).await;
    }
    let quiet_before = s.workspace_bytes("quiet");
    for i in 0..50 {
        fill(s, Some("noisy"), i, BODY).await;
        assert!(s.workspace_bytes("noisy") <= quota(), "after {i}");
    }
    for i in 0..3 {
        assert!(present(s, "quiet", i).await, "quiet entry {i} was evicted");
    }
    // The newest noisy entries stay, the oldest went.
    assert!(present(s, "noisy", 49).await);
    assert!(!present(s, "noisy", 0).await);
    let stats = s.stats();
    assert!(stats.quota_evictions >= 45, "{stats:?}");
    assert_eq!(stats.quota_refused, 0);
    assert_eq!(stats.evictions, 0, "the store itself was never full");
    assert_eq!(
        s.workspace_bytes("quiet"),
        quiet_before,
        "the noisy workspace's fills took nothing from the quiet one"
    );
    assert!(s.workspace_bytes("quiet") > 3 * BODY);
    // Gauges and per-workspace bytes agree.
    assert_eq!(
        stats.bytes,
        s.workspace_bytes("quiet") + s.workspace_bytes("noisy")
    );
}

#[tokio::test]
async fn an_entry_over_the_quota_is_refused() {
    let s = store(64 << 20, quota());
    fill(s, Some("w"), 0, BODY).await;
    fill(s, Some("w"), 1, quota()).await;
    assert!(!present(s, "w", 1).await);
    assert!(present(s, "w", 0).await, "refusing does not evict");
    assert_eq!(s.stats().quota_refused, 1);
}

#[tokio::test]
async fn refills_and_removals_keep_the_accounting_exact() {
    let s = store(64 << 20, quota());
    for _ in 0..20 {
        fill(s, Some("w"), 7, BODY).await;
    }
    // Refilling one key never pushes out the workspace's other entries.
    fill(s, Some("w"), 8, BODY).await;
    for _ in 0..20 {
        fill(s, Some("w"), 7, BODY).await;
    }
    assert!(present(s, "w", 8).await);
    assert_eq!(s.stats().quota_evictions, 0);
    let one = s.workspace_bytes("w") / 2;
    assert!(purge(s, "w", 7).await);
    assert_eq!(s.workspace_bytes("w"), one);
    assert!(!purge(s, "w", 7).await);
    assert_eq!(s.workspace_bytes("w"), one);
    assert!(purge(s, "w", 8).await);
    assert_eq!(s.workspace_bytes("w"), 0);
    assert_eq!(s.workspace_usage("w"), Some((0, 0)));
    assert_eq!(s.stats().bytes, 0);
}

#[tokio::test]
async fn entries_without_a_workspace_have_no_quota() {
    let s = store(64 << 20, quota());
    for i in 0..20 {
        fill(s, None, i, BODY).await;
    }
    for i in 0..20 {
        assert!(present(s, "-", i).await);
    }
    assert_eq!(s.stats().quota_evictions, 0);
}

#[tokio::test]
async fn many_workspaces_under_pressure_stay_within_their_quotas() {
    // A small store: global eviction and quota eviction both happen.
    let s = store(40 * (BODY + ENTRY_OVERHEAD + 1024), quota());
    for round in 0..200 {
        let ws = format!("w{}", round % 7);
        fill(s, Some(&ws), round, BODY).await;
        for w in 0..7 {
            assert!(s.workspace_bytes(&format!("w{w}")) <= quota());
        }
    }
    let sum: usize = (0..7).map(|w| s.workspace_bytes(&format!("w{w}"))).sum();
    assert_eq!(sum, s.stats().bytes);
    assert!(s.stats().bytes <= s.max_size());
}
