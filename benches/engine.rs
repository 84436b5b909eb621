//! Engine benchmarks (criterion): delta append with fsync, a 1-op write over a large
//! overlay, compaction throughput, and open-to-first-read latency. `cargo bench --bench engine`; figures in README.md.
//!
//! Sizes: `STRATA_BENCH_ROWS` (comma-separated, default "10000,100000") rows × 1536 dims.

// criterion_group! and criterion_main! define public functions that cannot carry docs.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata::formats::samples;
use strata::{
    CompactionPolicy, Include, MetaValue, Metric, Op, Quantization, ReadableStore, Reader, Record,
    StoreOptions, Writer,
};

const DIMS: usize = 1536;

fn rows() -> Vec<usize> {
    std::env::var("STRATA_BENCH_ROWS")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn record(i: usize) -> Op {
    Op::Upsert(Record {
        id: format!("IMAGE#{:08}#RECEIPT#{:05}#LINE#{i:06}", i / 100, i % 7),
        embedding: Some(samples::vector(i as u64, DIMS)),
        document: Some(format!("LINE {i} TOTAL 12.99")),
        metadata: [
            (
                "image_id".to_string(),
                MetaValue::Str(format!("{:08}", i / 100)),
            ),
            ("receipt_id".to_string(), MetaValue::Int((i % 7) as i64)),
            ("line_id".to_string(), MetaValue::Int(i as i64)),
        ]
        .into_iter()
        .collect(),
    })
}

fn options() -> StoreOptions {
    StoreOptions {
        policy: std::sync::Arc::new(CompactionPolicy {
            max_deltas: usize::MAX,
            ..CompactionPolicy::default()
        }),
        ..StoreOptions::default()
    }
}

/// A store holding `n` rows in deltas of 1000 rows each.
fn filled(n: usize) -> (tempfile::TempDir, Writer) {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let store = Writer::open(dir.path(), options()).unwrap();
    store
        .create_collection("c", DIMS as u32, Metric::L2, Quantization::None)
        .unwrap();
    for start in (0..n).step_by(1000) {
        store
            .write("c", (start..(start + 1000).min(n)).map(record).collect())
            .unwrap();
    }
    (dir, store)
}

fn delta_append(c: &mut Criterion) {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let store = Writer::open(dir.path(), options()).unwrap();
    store
        .create_collection("c", DIMS as u32, Metric::L2, Quantization::None)
        .unwrap();
    let mut g = c.benchmark_group("delta append (fsync)");
    g.sample_size(10);
    let mut next = 0usize;
    for batch in [1usize, 100, 1000] {
        let bytes = batch as u64 * (DIMS as u64 * 4 + 120);
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_with_input(BenchmarkId::new("ops", batch), &batch, |b, batch| {
            b.iter(|| {
                let ops = (next..next + batch).map(record).collect();
                next += batch;
                store.write("c", ops).unwrap()
            })
        });
        g.throughput(Throughput::Bytes(bytes));
        g.bench_with_input(BenchmarkId::new("bytes", batch), &batch, |b, batch| {
            b.iter(|| {
                let ops = (next..next + batch).map(record).collect();
                next += batch;
                store.write("c", ops).unwrap()
            })
        });
    }
    g.finish();
}

/// A 1-operation durable write with 0, 10k and 100k entries in the overlay (16-d records:
/// the overlay's size is what is measured), while a reader holds the head snapshot, as a
/// process serving queries does: the writer then derives the next state from a shared one.
fn write_over_overlay(c: &mut Criterion) {
    let mut g = c.benchmark_group("1-op write over an overlay (fsync)");
    g.sample_size(20);
    for n in [0usize, 10_000, 100_000] {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let store = Writer::open(dir.path(), options()).unwrap();
        store
            .create_collection("c", 16, Metric::L2, Quantization::None)
            .unwrap();
        let small = |i: usize| {
            Op::Upsert(Record {
                id: format!("r{i:08}"),
                embedding: Some(samples::vector(i as u64, 16)),
                document: None,
                metadata: Default::default(),
            })
        };
        for start in (0..n).step_by(10_000) {
            store
                .write("c", (start..(start + 10_000).min(n)).map(small).collect())
                .unwrap();
        }
        let mut next = n;
        g.bench_with_input(BenchmarkId::new("overlay entries", n), &n, |b, _| {
            b.iter(|| {
                let held = store.snapshot("c").unwrap();
                next += 1;
                let receipt = store.write("c", vec![small(next)]).unwrap();
                drop(held);
                receipt
            })
        });
    }
    g.finish();
}

fn compaction(c: &mut Criterion) {
    let mut g = c.benchmark_group("compaction");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(1));
    g.warm_up_time(Duration::from_millis(1));
    for n in rows() {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(
            BenchmarkId::new("deltas to segment, rows", n),
            &n,
            |b, n| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (_dir, store) = filled(*n);
                        let t = Instant::now();
                        store.compact("c").unwrap();
                        total += t.elapsed();
                    }
                    total
                })
            },
        );
    }
    g.finish();
}

fn open_to_first_read(c: &mut Criterion) {
    let mut g = c.benchmark_group("open to first read");
    g.sample_size(10);
    for n in rows() {
        let (dir, store) = filled(n);
        store.compact("c").unwrap();
        store.close().unwrap();
        let probe = vec![format!("IMAGE#{:08}#RECEIPT#{:05}#LINE#{:06}", 0, 5, 5)];
        for (name, verify) in [
            ("reader, rows", true),
            ("reader without verify, rows", false),
        ] {
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    let reader = Reader::open_with(dir.path(), verify).unwrap();
                    let got = reader
                        .snapshot("c")
                        .unwrap()
                        .get(&probe, Include::default())
                        .unwrap();
                    assert_eq!(got.len(), 1);
                })
            });
        }
    }
    g.finish();
}

criterion_group!(
    benches,
    delta_append,
    write_over_overlay,
    compaction,
    open_to_first_read
);
criterion_main!(benches);
