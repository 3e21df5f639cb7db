//! Purge cost against the number of entries a tag covers, and the cost the
//! generation check adds to a memory hit.
//!
//! Run with `cargo bench --bench purge`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use futures::FutureExt;
use pingora_cache::storage::Storage;
use pingora_cache::trace::Span;
use pingora_cache::{CacheKey, CacheMeta};
use pingora_http::ResponseHeader;
use tagcache::generations::{TagRegistry, Verdict};
use tagcache::storage::{EntryInfo, MemoryStore};
use tagcache::tags;

fn meta(info: Arc<EntryInfo>) -> CacheMeta {
    let header = ResponseHeader::build(200, Some(2)).expect("valid status");
    let now = SystemTime::now();
    let mut meta = CacheMeta::new(now + Duration::from_secs(3600), now, 0, 0, header);
    info.attach(&mut meta);
    meta
}

fn key(i: usize) -> CacheKey {
    CacheKey::new(format!("/api/boards/b1/contacts?page={i}"), "w1")
}

/// A store with `n` entries all carrying the tag `board:w1:b1`.
fn fill(registry: &TagRegistry, n: usize) -> &'static MemoryStore {
    let store: &'static MemoryStore = Box::leak(Box::new(MemoryStore::new(4 << 30, 1 << 20)));
    let span = Span::inactive().handle();
    let info = Arc::new(EntryInfo {
        route: 0,
        workspace: Some("w1".into()),
        tags: vec![tags::hash("board:w1:b1"), tags::hash("workspace:w1")].into_boxed_slice(),
        born: registry.epoch(),
    });
    let body = Bytes::from_static(b"[]");
    for i in 0..n {
        let m = meta(info.clone());
        async {
            let mut miss = store.get_miss_handler(&key(i), &m, &span).await?;
            miss.write_body(body.clone(), true).await?;
            miss.finish().await
        }
        .now_or_never()
        .expect("memory store never suspends")
        .expect("fill");
    }
    store
}

fn purge_latency(c: &mut Criterion) {
    let mut group = c.benchmark_group("purge_tag");
    group.sample_size(30);
    let tag = [tags::hash("board:w1:b1")];
    for n in [1usize, 1_000, 100_000, 1_000_000] {
        let registry = TagRegistry::new(Duration::from_secs(3600));
        let store = fill(&registry, n);
        assert_eq!(store.stats().entries, n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| registry.purge(black_box(&tag), false))
        });
        // Every covered entry now reads as purged (purge once more in case a
        // filter skipped the measurement above).
        registry.purge(&tag, false);
        let span = Span::inactive().handle();
        let (m, _) = store
            .lookup(&key(n - 1), &span)
            .now_or_never()
            .expect("never suspends")
            .expect("lookup")
            .expect("stored");
        assert_eq!(
            {
                let i = EntryInfo::of(&m).expect("info");
                registry.check(i.born, &i.tags)
            },
            Verdict::Purged
        );
    }
    group.finish();
}

fn hit_overhead(c: &mut Criterion) {
    let registry = TagRegistry::new(Duration::from_secs(3600));
    let store = fill(&registry, 10_000);
    let span = Span::inactive().handle();
    let keys: Vec<CacheKey> = (0..10_000).map(key).collect();
    let mut group = c.benchmark_group("hit_generation_check");
    let mut i = 0;
    group.bench_function("hit_without_check", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            let (m, mut h) = store
                .lookup(&keys[i], &span)
                .now_or_never()
                .unwrap()
                .unwrap()
                .unwrap();
            let body = h.read_body().now_or_never().unwrap().unwrap();
            black_box((m, body))
        })
    });
    group.bench_function("hit_with_check_no_purges", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            let (m, mut h) = store
                .lookup(&keys[i], &span)
                .now_or_never()
                .unwrap()
                .unwrap()
                .unwrap();
            let v = {
                let i = EntryInfo::of(&m).unwrap();
                registry.check(i.born, &i.tags)
            };
            let body = h.read_body().now_or_never().unwrap().unwrap();
            black_box((m, body, v))
        })
    });
    // Purges of unrelated tags force the slow path: one table probe per tag.
    let unrelated: Vec<u64> = (0..10_000)
        .map(|i| tags::hash(&format!("other:{i}")))
        .collect();
    registry.purge(&unrelated, false);
    group.bench_function("hit_with_check_after_unrelated_purges", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            let (m, mut h) = store
                .lookup(&keys[i], &span)
                .now_or_never()
                .unwrap()
                .unwrap()
                .unwrap();
            let v = {
                let i = EntryInfo::of(&m).unwrap();
                registry.check(i.born, &i.tags)
            };
            let body = h.read_body().now_or_never().unwrap().unwrap();
            black_box((m, body, v))
        })
    });
    group.finish();

    // The check alone, on both paths.
    let mut group = c.benchmark_group("generation_check");
    let fresh = TagRegistry::new(Duration::from_secs(3600));
    let info = EntryInfo {
        route: 0,
        workspace: Some("w1".into()),
        tags: (0..4).map(|i| tags::hash(&format!("t{i}"))).collect(),
        born: fresh.epoch(),
    };
    group.bench_function("fast_path_no_newer_purge", |b| {
        b.iter(|| fresh.check(black_box(info.born), black_box(&info.tags)))
    });
    let busy = TagRegistry::new(Duration::from_secs(3600));
    let info = EntryInfo {
        born: busy.epoch(),
        ..info
    };
    busy.purge(&unrelated, false);
    group.bench_function("slow_path_4_tags", |b| {
        b.iter(|| busy.check(black_box(info.born), black_box(&info.tags)))
    });
    group.finish();
}

criterion_group!(benches, purge_latency, hit_overhead);
criterion_main!(benches);
