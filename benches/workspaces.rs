//! What the per-workspace figures add to a request: one `record` on a
//! tracked workspace, alone and with two threads counting the same shard.
//!
//! Run with `cargo bench --bench workspaces`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tagcache::metrics::CacheStatus;
use tagcache::workspaces::WorkspaceStats;

fn record(c: &mut Criterion) {
    let stats = Arc::new(WorkspaceStats::new());
    // 500 workspaces tracked, as in the users' largest deployments.
    let names: Vec<String> = (0..500)
        .map(|i| format!("0b7c6f1e-workspace-{i:04}"))
        .collect();
    for n in &names {
        stats.record(n, CacheStatus::Miss, true);
    }
    let mut group = c.benchmark_group("workspaces");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("record_tracked", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % names.len();
            stats.record(black_box(&names[i]), CacheStatus::Hit, false);
        })
    });
    group.bench_function("record_same_workspace_two_threads", |b| {
        b.iter_custom(|iters| {
            let other = {
                let stats = stats.clone();
                let name = names[0].clone();
                std::thread::spawn(move || {
                    for _ in 0..iters {
                        stats.record(black_box(&name), CacheStatus::Hit, false);
                    }
                })
            };
            let start = Instant::now();
            for _ in 0..iters {
                stats.record(black_box(&names[0]), CacheStatus::Hit, false);
            }
            let took = start.elapsed();
            let _ = other.join();
            took
        })
    });
    group.bench_function("record_new_workspace_full_sketch", |b| {
        let flood = WorkspaceStats::new();
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            flood.record(black_box(&format!("flood-{i}")), CacheStatus::Miss, false);
        })
    });
    group.finish();
}

criterion_group!(benches, record);
criterion_main!(benches);
