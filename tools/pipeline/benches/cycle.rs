//! The receipts system's common cycle (criterion): a store holding 70 000 words × 1536
//! (compacted, with receipt metadata) receives one receipt's changes — its COMPACTION_RUN
//! (a run merge of its lines and words), its place, sections and labels, and later edits —
//! as one DynamoDB stream batch, and the compactor entry point processes it, compaction
//! and GC included. Each iteration is the next receipt of a generated workload, so no
//! batch repeats. Before criterion runs, one cycle's bytes written (files created or grown
//! in the store directory) are printed.
//!
//! `cargo bench -p strata-pipeline --bench cycle`; `STRATA_BENCH_WORDS` sets the store's
//! size (default 70000).

// criterion_group! and criterion_main! define public functions that cannot carry docs.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::Value;
use strata_engine::{StoreOptions, Writer};
use strata_formats::{MetaValue, Op, Quantization, Record};
use strata_pipeline::compactor::ensure_collections;
use strata_pipeline::{CollectingReporter, Compactor, CompactorOptions, LocalRuns};
use strata_testkit::workload::{embedding, Workload, WorkloadConfig};

fn words() -> usize {
    std::env::var("STRATA_BENCH_WORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(70_000)
}

/// A word record of another receipt, with the seed's word metadata keys.
fn word(i: usize) -> Op {
    let image = format!("{:08x}-0000-4000-8000-{:012x}", i / 120, i / 120);
    let text = |s: String| MetaValue::Str(s);
    Op::Upsert(Record {
        id: format!(
            "IMAGE#{image}#RECEIPT#00001#LINE#{:05}#WORD#{:05}",
            i / 6,
            i % 6
        ),
        embedding: Some(embedding((i % 500) as u64, i as u64)),
        document: Some(format!("WORD{i}")),
        metadata: [
            ("image_id".to_string(), text(image)),
            ("receipt_id".to_string(), MetaValue::Int(1)),
            ("line_id".to_string(), MetaValue::Int((i / 6) as i64)),
            ("word_id".to_string(), MetaValue::Int((i % 6) as i64)),
            ("text".to_string(), text(format!("WORD{i}"))),
            ("merchant_name".to_string(), text("Vons".into())),
            ("label_status".to_string(), text("unvalidated".into())),
        ]
        .into_iter()
        .collect(),
    })
}

/// Each receipt's records of the workload (all its stream records, in stream order), one
/// batch per receipt.
fn receipt_batches(w: &Workload) -> Vec<Vec<u8>> {
    let mut by_receipt: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for e in &w.events {
        let v: Value = serde_json::from_slice(e).unwrap();
        for r in v["Records"].as_array().unwrap() {
            let pk = r["dynamodb"]["Keys"]["PK"]["S"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if !by_receipt.contains_key(&pk) {
                order.push(pk.clone());
            }
            by_receipt.entry(pk).or_default().push(r.clone());
        }
    }
    order
        .iter()
        .map(|pk| serde_json::to_vec(&serde_json::json!({ "Records": by_receipt[pk] })).unwrap())
        .collect()
}

/// Every file under `dir` and its size.
fn sizes(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            match e.metadata() {
                Ok(m) if m.is_dir() => todo.push(p),
                Ok(m) => {
                    out.insert(p, m.len());
                }
                Err(_) => {}
            }
        }
    }
    out
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Writer,
    runs: LocalRuns,
    store_dir: PathBuf,
    batches: Vec<Vec<u8>>,
    next: usize,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let store_dir = dir.path().join("store");
        let store = Writer::open(&store_dir, StoreOptions::default()).unwrap();
        ensure_collections(&store, Quantization::None).unwrap();
        let n = words();
        let t = Instant::now();
        for start in (0..n).step_by(5000) {
            store
                .write("words", (start..(start + 5000).min(n)).map(word).collect())
                .unwrap();
        }
        store.compact("words").unwrap();
        let w = Workload::generate(&WorkloadConfig {
            receipts: 300,
            seed: 41,
            records_per_event: 60,
            edit_rounds: 1,
        });
        w.write_run_files(&dir.path().join("runs")).unwrap();
        eprintln!(
            "cycle: {n} words written and compacted in {:.1} s; {} receipts to deliver",
            t.elapsed().as_secs_f64(),
            w.expected.receipts.len()
        );
        Setup {
            runs: LocalRuns::new(dir.path().join("runs")),
            batches: receipt_batches(&w),
            _dir: dir,
            store,
            store_dir,
            next: 0,
        }
    }

    /// One receipt's batch through the compactor; the time it took.
    fn cycle(&mut self) -> Duration {
        let batch = &self.batches[self.next % self.batches.len()];
        self.next += 1;
        let mut reporter = CollectingReporter::default();
        let t = Instant::now();
        let out = Compactor::new(
            &self.store,
            &self.runs,
            &mut reporter,
            CompactorOptions::default(),
        )
        .handle(batch)
        .unwrap();
        let took = t.elapsed();
        assert!(out.event.failures.is_empty(), "{:?}", out.event.failures);
        took
    }
}

fn cycle(c: &mut Criterion) {
    let mut setup = Setup::new();
    let before = sizes(&setup.store_dir);
    let took = setup.cycle();
    let after = sizes(&setup.store_dir);
    let written: u64 = after
        .iter()
        .map(|(p, len)| len.saturating_sub(before.get(p).copied().unwrap_or(0)))
        .sum();
    eprintln!(
        "cycle: one receipt's batch took {:.1} ms and wrote {written} bytes ({} files new or grown); the store holds {} bytes",
        took.as_secs_f64() * 1e3,
        after
            .iter()
            .filter(|(p, len)| before.get(*p).is_none_or(|b| b < *len))
            .count(),
        after.values().sum::<u64>()
    );
    let mut g = c.benchmark_group("receipts cycle");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("one receipt's changes into 70k words", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| setup.cycle()).sum())
    });
    g.finish();
    if setup.next > setup.batches.len() {
        eprintln!(
            "cycle: {} iterations for {} receipts: later ones re-delivered batches",
            setup.next,
            setup.batches.len()
        );
    }
}

criterion_group!(benches, cycle);
criterion_main!(benches);
