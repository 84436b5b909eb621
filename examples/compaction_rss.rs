//! Peak memory of a compaction: `cargo run --release --example compaction_rss -- ROWS`.
//!
//! Builds a store of ROWS × 1536 rows in a child process (1000-row deltas, flushed into
//! 4096-row segments as they arrive), then, in a fresh child process, opens it and runs a
//! full compaction, and prints that process's peak resident set (VmHWM) — anonymous memory
//! and the mapped file pages it touched.

use std::process::Command;

use strata::formats::samples;
use strata::{
    CompactionPolicy, MetaValue, Metric, Op, Quantization, ReadableStore, Record, StoreOptions,
    Writer,
};

const DIMS: usize = 1536;

fn status(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len()..].trim().to_string())
        .unwrap_or_else(|| "n/a".into())
}

fn build(dir: &str, rows: usize) {
    let o = StoreOptions {
        policy: std::sync::Arc::new(CompactionPolicy {
            max_deltas: 4,
            merge_factor: usize::MAX,
            ..CompactionPolicy::default()
        }),
        ..StoreOptions::default()
    };
    let store = Writer::open(dir, o).unwrap();
    store
        .create_collection("c", DIMS as u32, Metric::L2, Quantization::None)
        .unwrap();
    for start in (0..rows).step_by(1000) {
        let ops = (start..(start + 1000).min(rows))
            .map(|i| {
                Op::Upsert(Record {
                    id: format!("row-{i:08}"),
                    embedding: Some(samples::vector(i as u64, DIMS)),
                    document: Some(format!("LINE {i}")),
                    metadata: [("receipt_id".to_string(), MetaValue::Int(i as i64 % 50))]
                        .into_iter()
                        .collect(),
                })
            })
            .collect();
        store.write("c", ops).unwrap();
        store.maybe_compact("c").unwrap();
    }
    store.close().unwrap();
}

fn compact(dir: &str) {
    let store = Writer::open(dir, StoreOptions::default()).unwrap();
    let segments_before = store.snapshot("c").unwrap().version().segments.len();
    let t = std::time::Instant::now();
    let r = store.compact("c").unwrap();
    println!(
        "compacted {} segments + {} deltas into {} segment(s): {} rows, {:.1} MB in, {:.1} MB out, {:.2} s",
        segments_before,
        r.deltas_folded,
        r.segments_out,
        r.rows_out,
        r.bytes_in as f64 / 1e6,
        r.bytes_out as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    println!(
        "peak RSS (VmHWM) {}; at end RssAnon {}, RssFile {}",
        status("VmHWM:"),
        status("RssAnon:"),
        status("RssFile:")
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("build") => build(&args[2], args[3].parse().unwrap()),
        Some("compact") => compact(&args[2]),
        _ => {
            let rows: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(100_000);
            let dir = tempfile::tempdir_in("/var/tmp").unwrap();
            let path = dir.path().to_str().unwrap();
            let me = std::env::current_exe().unwrap();
            let ok = |mut c: Command| assert!(c.status().unwrap().success());
            let mut b = Command::new(&me);
            b.args(["build", path, &rows.to_string()]);
            ok(b);
            let mut c = Command::new(&me);
            c.args(["compact", path]);
            ok(c);
        }
    }
}
