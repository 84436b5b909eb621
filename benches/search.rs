//! Search benchmarks (criterion): single-query latency and batch throughput, exact and
//! quantized, with and without a selective filter, at 10k and 100k rows × 1536 and × 384;
//! beside them a plain memory-read loop over the same vector bytes, so the exact scan can be
//! reported as a fraction of one core's read bandwidth. Recall@10 of the quantized paths is
//! printed once per configuration.
//!
//! `cargo bench --bench search` (sizes: `STRATA_BENCH_ROWS`, default "10000,100000";
//! dims: `STRATA_BENCH_DIMS`, default "1536,384"). Figures in README.md.

// criterion_group! and criterion_main! define public functions that cannot carry docs.
#![allow(missing_docs)]

use std::collections::HashSet;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata::engine::SearchOptions;
use strata::formats::samples;
use strata::formats::segment::{SegmentLayout, SegmentView};
use strata::storage::layout;
use strata::{
    Filter, Include, MetaValue, Metric, Op, Quantization, Query, ReadableStore, Record,
    StoreOptions, Writer,
};

fn list(var: &str, default: &str) -> Vec<usize> {
    std::env::var(var)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// Clustered unit-norm vectors, like text embeddings.
fn embedding(i: usize, dims: usize) -> Vec<f32> {
    let center = samples::noise((i % 64) as u64 * 7919, dims);
    let noise = samples::noise(i as u64 + 1_000_003, dims);
    let mut v: Vec<f32> = center
        .iter()
        .zip(&noise)
        .map(|(c, n)| c + 0.6 * n)
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn build(dir: &std::path::Path, rows: usize, dims: usize) -> Writer {
    let store = Writer::open(dir, StoreOptions::default()).unwrap();
    for q in [Quantization::None, Quantization::I8, Quantization::Bit] {
        let name = format!("c-{}", q.name());
        store
            .create_collection(&name, dims as u32, Metric::L2, q)
            .unwrap();
        for start in (0..rows).step_by(5000) {
            let ops = (start..(start + 5000).min(rows))
                .map(|i| {
                    Op::Upsert(Record {
                        id: format!("row-{i:08}"),
                        embedding: Some(embedding(i, dims)),
                        document: None,
                        metadata: [
                            (
                                "image_id".to_string(),
                                MetaValue::Str(format!("img-{}", i / 50)),
                            ),
                            (
                                "receipt_id".to_string(),
                                MetaValue::Int((i % 50 / 25) as i64),
                            ),
                        ]
                        .into_iter()
                        .collect(),
                    })
                })
                .collect();
            store.write(&name, ops).unwrap();
        }
        store.compact(&name).unwrap();
    }
    store
}

fn search(c: &mut Criterion) {
    for dims in list("STRATA_BENCH_DIMS", "1536,384") {
        for rows in list("STRATA_BENCH_ROWS", "10000,100000") {
            let dir = tempfile::tempdir_in("/var/tmp").unwrap();
            let store = build(dir.path(), rows, dims);
            let queries: Vec<Vec<f32>> = (0..64).map(|i| embedding(i * 7 + 3, dims)).collect();
            let filter =
                Filter::parse(r#"{"$and": [{"image_id": "img-7"}, {"receipt_id": 1}]}"#).unwrap();
            let mut g = c.benchmark_group(format!("search {rows} x {dims}"));
            g.sample_size(20);
            let bytes = (rows * dims * 4) as u64;

            // The memory-read reference: sum every f32 of the same segment, mapped as the
            // engine maps it.
            let snap = store.snapshot("c-none").unwrap();
            let seg = store
                .storage()
                .map(&layout::segment(&snap.version().segments[0].file))
                .unwrap();
            let seg_layout = SegmentLayout::parse(&seg).unwrap();
            g.throughput(Throughput::Bytes(bytes));
            g.bench_function("memory read loop (reference)", |b| {
                let v = SegmentView::new(&seg, &seg_layout).unwrap();
                let data = v.vectors().unwrap();
                b.iter(|| {
                    let mut acc = [0f32; 16];
                    for chunk in data.chunks_exact(16) {
                        for (a, x) in acc.iter_mut().zip(chunk) {
                            *a += x;
                        }
                    }
                    black_box(acc)
                })
            });
            let exact = SearchOptions {
                exact: true,
                oversample: None,
            };
            for q in [Quantization::None, Quantization::I8, Quantization::Bit] {
                let snap = store.snapshot(&format!("c-{}", q.name())).unwrap();
                let opts = if q == Quantization::None {
                    exact
                } else {
                    SearchOptions::default()
                };
                let label = if q == Quantization::None {
                    "exact".to_string()
                } else {
                    format!("{} + rescore", q.name())
                };
                // Recall@10 against the exact path on the same data.
                if q != Quantization::None {
                    let (mut hit, mut total) = (0, 0);
                    for v in &queries[..32] {
                        let query = Query {
                            vector: v,
                            k: 10,
                            filter: None,
                            include: Include::ids(),
                        };
                        let want: HashSet<String> = snap
                            .query_with(&query, &exact)
                            .unwrap()
                            .into_iter()
                            .map(|r| r.id)
                            .collect();
                        let got = snap.query_with(&query, &opts).unwrap();
                        hit += got.iter().filter(|r| want.contains(&r.id)).count();
                        total += want.len();
                    }
                    eprintln!(
                        "recall@10 {rows} x {dims} {label}: {:.3}",
                        hit as f64 / total as f64
                    );
                }
                g.throughput(Throughput::Bytes(bytes));
                g.bench_function(BenchmarkId::new("single query k=10", &label), |b| {
                    let mut i = 0;
                    b.iter(|| {
                        i += 1;
                        let v = &queries[i % queries.len()];
                        snap.query_with(
                            &Query {
                                vector: v,
                                k: 10,
                                filter: None,
                                include: Include::ids(),
                            },
                            &opts,
                        )
                        .unwrap()
                    })
                });
                g.throughput(Throughput::Elements(queries.len() as u64));
                g.bench_function(BenchmarkId::new("batch of 64 queries", &label), |b| {
                    b.iter(|| {
                        snap.query_batch(&queries, 10, None, Include::ids(), &opts)
                            .unwrap()
                    })
                });
                g.bench_function(
                    BenchmarkId::new("single query, selective filter", &label),
                    |b| {
                        let mut i = 0;
                        b.iter(|| {
                            i += 1;
                            let v = &queries[i % queries.len()];
                            snap.query_with(
                                &Query {
                                    vector: v,
                                    k: 10,
                                    filter: Some(&filter),
                                    include: Include::ids(),
                                },
                                &opts,
                            )
                            .unwrap()
                        })
                    },
                );
            }
            g.finish();
        }
    }
}

criterion_group!(benches, search);
criterion_main!(benches);
