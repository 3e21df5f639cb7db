//! Memory-tier hit path: `lookup` plus reading the whole body, with 10k entries stored.
//!
//! Run with `cargo bench --bench memory_hit`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::FutureExt;
use pingora_cache::storage::Storage;
use pingora_cache::trace::{Span, SpanHandle};
use pingora_cache::{CacheKey, CacheMeta};
use pingora_http::ResponseHeader;
use tagcache::storage::{EntryInfo, MemoryStore};

const ENTRIES: usize = 10_000;

fn meta() -> CacheMeta {
    let mut header = ResponseHeader::build(200, Some(8)).expect("status 200 is valid");
    for (name, value) in [
        ("Content-Type", "application/json; charset=utf-8"),
        ("Cache-Control", "public, max-age=180"),
        ("ETag", "W/\"5f2a-1c0b7e9d\""),
        ("Vary", "Accept-Encoding"),
        ("X-Request-Id", "8c1e4f0a-2b7d-4c59-9e3a-61d0f2b8a7c4"),
    ] {
        header
            .append_header(name, value)
            .expect("static header is valid");
    }
    let now = SystemTime::now();
    let mut meta = CacheMeta::new(now + Duration::from_secs(3600), now, 60, 60, header);
    // The proxy attaches one to every fill; the store hands it back on each hit.
    Arc::new(EntryInfo {
        route: 0,
        workspace: Some("w1".into()),
        tags: vec![0x9e37_79b9, 0x85eb_ca6b, 0xc2b2_ae35].into_boxed_slice(),
        born: 1,
    })
    .attach(&mut meta);
    meta
}

fn key(i: usize) -> CacheKey {
    CacheKey::new(
        format!("/api/boards/b{}/contacts?page={}&pageSize=50", i % 97, i),
        "w1",
    )
}

/// Builds a store holding `ENTRIES` bodies of `body_len` bytes.
fn filled_store(body_len: usize) -> &'static MemoryStore {
    let store: &'static MemoryStore = Box::leak(Box::new(MemoryStore::new(1 << 30, 1 << 20)));
    let span = Span::inactive().handle();
    let meta = meta();
    let body = Bytes::from(vec![b'x'; body_len]);
    for i in 0..ENTRIES {
        let fill = async {
            let mut miss = store.get_miss_handler(&key(i), &meta, &span).await?;
            miss.write_body(body.clone(), true).await?;
            miss.finish().await
        };
        fill.now_or_never()
            .expect("the memory store never suspends")
            .expect("fill succeeds");
    }
    assert_eq!(store.stats().entries, ENTRIES, "every entry fits");
    store
}

/// One hit: lookup, then read the body to the end. Returns the body length.
async fn hit(
    store: &'static MemoryStore,
    key: &CacheKey,
    span: &SpanHandle,
) -> pingora_error::Result<usize> {
    let (meta, mut handler) = store.lookup(key, span).await?.expect("stored");
    let mut len = 0;
    while let Some(chunk) = handler.read_body().await? {
        len += chunk.len();
    }
    black_box(meta);
    Ok(len)
}

fn memory_hit(c: &mut Criterion) {
    let mut group = c.benchmark_group("memory_hit");
    let span = Span::inactive().handle();
    for body_len in [2 * 1024, 20 * 1024] {
        let store = filled_store(body_len);
        let keys: Vec<CacheKey> = (0..ENTRIES).map(key).collect();
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{}KiB", body_len / 1024)),
            &body_len,
            |b, &body_len| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 7919) % ENTRIES;
                    let len = hit(store, &keys[i], &span)
                        .now_or_never()
                        .expect("the memory store never suspends")
                        .expect("hit succeeds");
                    debug_assert_eq!(len, body_len);
                    len
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, memory_hit);
criterion_main!(benches);
