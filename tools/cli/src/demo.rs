//! `strata demo`: the main job on the embedded default, end to end. A generated receipt
//! workload (`strata_testkit::workload`: receipts with lines, words, labels, places, sections,
//! edits and deletes) is emitted as DynamoDB stream events; the embedding producer's run
//! deltas are written; every event goes through the stream processor Lambda (sealed deltas
//! into the inbox) and the compactor Lambda runs on a schedule (ingest, run merges, label /
//! section / place recomputation, compaction by policy, GC) — the same functions as
//! `strata lambda-invoke`. The resulting metadata is checked against the rules, then the demo
//! queries with filters, shows versions and a rollback, verifies the store, and prints a
//! report with timings and sizes.

use std::path::Path;
use std::time::{Duration, Instant};

use strata_engine::{verify_store, Include, Query, ReadableStore, Snapshot, StoreOptions, Writer};
use strata_formats::{Filter, MetaValue, Quantization};
use strata_pipeline::state::StoreState;
use strata_pipeline::{self as lambda, CollectingReporter, Outcome, Role, Settings};
use strata_testkit::workload::{embedding, Workload, WorkloadConfig};

/// Stream records per Lambda invocation.
const RECORDS_PER_EVENT: usize = 500;
/// Stream processor invocations between two compactor invocations.
const EVENTS_PER_COMPACTION: usize = 8;

/// Bytes under `dir`, each file counted once however many hard links it has (an ingested
/// inbox file is linked into `deltas/` until GC removes the inbox name).
fn dir_bytes(dir: &Path) -> u64 {
    fn walk(dir: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let Ok(rd) = std::fs::read_dir(dir) else {
            return 0;
        };
        rd.filter_map(|e| e.ok())
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path(), seen),
                Ok(m) if seen.insert((m.dev(), m.ino())) => m.len(),
                _ => 0,
            })
            .sum()
    }
    walk(dir, &mut std::collections::HashSet::new())
}

fn mb(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

fn filter(json: &str) -> Result<Filter, String> {
    Filter::parse(json).map_err(|e| e.to_string())
}

/// What the compactor invocations added up to.
#[derive(Default)]
struct Totals {
    invocations: usize,
    ingested: usize,
    merged: usize,
    recomputations: usize,
    patches: usize,
    compactions: usize,
}

fn compactor(settings: &Settings, totals: &mut Totals) -> Result<(), String> {
    let mut reporter = CollectingReporter::default();
    let out = lambda::invoke(Role::Compactor, settings, "demo", b"{}", &mut reporter)
        .map_err(|e| format!("compactor: {e}"))?;
    let Outcome::Compactor(c) = out else {
        return Err("compactor returned a stream outcome".into());
    };
    if !c.inbox_failed.is_empty() || !c.follow_ups.failed_runs.is_empty() {
        return Err(format!(
            "compactor: inbox failures {:?}, failed runs {:?}",
            c.inbox_failed, c.follow_ups.failed_runs
        ));
    }
    totals.invocations += 1;
    totals.ingested += c.ingested.len();
    totals.merged += c.follow_ups.merged_runs.len();
    totals.recomputations += c.follow_ups.recomputations;
    totals.patches += c.follow_ups.patches;
    totals.compactions += c.compactions.len();
    Ok(())
}

fn engine(e: strata_engine::Error) -> String {
    e.to_string()
}

/// One line of the report: the step, its time since `t`, and what it did.
fn step(name: &str, t: Instant, detail: String) {
    println!("{name:<30}{:>7.2} s  {detail}", t.elapsed().as_secs_f64());
}

/// Run the demo against a store directory; prints the report and returns an error message
/// on failure.
pub fn run(store_dir: &Path, receipts: usize, seed: u64) -> Result<(), String> {
    let t0 = Instant::now();
    let settings = Settings {
        quantization: Quantization::I8,
        ..Settings::for_store(store_dir)
    };
    let w = produce(&settings, receipts, seed)?;
    run_lambdas(&w, &settings, seed)?;
    let store = Writer::open(store_dir, StoreOptions::default()).map_err(engine)?;
    check_rules(&store, &w)?;
    let before_compaction = store.snapshot("lines").map_err(engine)?.version().version;

    // 4. Full compaction (i8 codes built for lines and words).
    let t = Instant::now();
    for c in ["lines", "words"] {
        store.compact(c).map_err(engine)?;
    }
    step(
        "compact lines and words",
        t,
        format!("store now {}", mb(dir_bytes(store_dir))),
    );

    let words = store.snapshot("words").map_err(engine)?;
    let lines = store.snapshot("lines").map_err(engine)?;
    query(&w, &words, &lines, seed)?;
    rollback_and_forward(&store, &lines, before_compaction)?;
    // GC runs while the query snapshots are alive (their versions are retained).
    gc_and_verify(store, store_dir, (words, lines))?;
    println!(
        "done in {:.1} s; store {} at {} (the seed downloaded and re-uploaded a whole \
         snapshot per batch)",
        t0.elapsed().as_secs_f64(),
        mb(dir_bytes(store_dir)),
        store_dir.display()
    );
    Ok(())
}

/// 1. The receipts table's stream, and the embedding producer's run deltas.
fn produce(settings: &Settings, receipts: usize, seed: u64) -> Result<Workload, String> {
    let t = Instant::now();
    let w = Workload::generate(&WorkloadConfig {
        receipts,
        seed,
        records_per_event: RECORDS_PER_EVENT,
        edit_rounds: 1,
    });
    let kind = |k: &str| w.stats.by_kind.get(k).copied().unwrap_or(0);
    let edits = ["MODIFY", "REMOVE"]
        .iter()
        .flat_map(|ev| {
            ["RECEIPT_WORD_LABEL", "RECEIPT_PLACE", "RECEIPT_SECTION"]
                .map(|t| kind(&format!("{t} {ev}")))
        })
        .sum::<usize>();
    step(
        "generate workload",
        t,
        format!(
            "{receipts} receipts → {} stream records in {} events ({edits} label/place/section \
             edits, {} receipts deleted, {} re-created); {} runs",
            w.stats.records,
            w.stats.events,
            w.expected.deleted.len(),
            w.expected.recreated.len(),
            w.runs.len()
        ),
    );
    let t = Instant::now();
    w.write_run_files(&settings.runs)
        .map_err(|x| format!("writing run deltas under {}: {x}", settings.runs.display()))?;
    let run_bytes: usize = w.run_files.iter().map(|(_, b)| b.len()).sum();
    step(
        "producer: run deltas",
        t,
        format!(
            "{} sealed deltas, {}",
            w.run_files.len(),
            mb(run_bytes as u64)
        ),
    );
    Ok(w)
}

/// 2. The two Lambdas: every event through the stream processor, the compactor on a
///    schedule.
fn run_lambdas(w: &Workload, settings: &Settings, seed: u64) -> Result<(), String> {
    let mut stream_s = 0.0;
    let mut compact_s = 0.0;
    let mut inbox_files = 0;
    let mut totals = Totals::default();
    for (i, event) in w.events.iter().enumerate() {
        let t = Instant::now();
        let mut reporter = CollectingReporter::default();
        let out = lambda::invoke(
            Role::Stream,
            settings,
            &format!("demo-{seed}-{i:05}"),
            event,
            &mut reporter,
        )
        .map_err(|x| format!("stream processor, event {i}: {x}"))?;
        if let Outcome::Stream(s) = out {
            if !s.failures.is_empty() {
                return Err(format!("event {i}: failed records {:?}", s.failures));
            }
            inbox_files += s.files.len();
        }
        stream_s += t.elapsed().as_secs_f64();
        if (i + 1) % EVENTS_PER_COMPACTION == 0 || i + 1 == w.events.len() {
            let t = Instant::now();
            compactor(settings, &mut totals)?;
            compact_s += t.elapsed().as_secs_f64();
        }
    }
    println!(
        "{:<30}{stream_s:>7.2} s  {} invocations → {inbox_files} sealed inbox deltas",
        "stream processor Lambda",
        w.events.len()
    );
    println!(
        "{:<30}{compact_s:>7.2} s  {} invocations: {} deltas ingested, {} runs merged, \
         {} recomputations → {} patches, {} compactions",
        "compactor Lambda",
        totals.invocations,
        totals.ingested,
        totals.merged,
        totals.recomputations,
        totals.patches,
        totals.compactions
    );
    Ok(())
}

/// 3. The metadata the rules require, key by key.
fn check_rules(store: &Writer, w: &Workload) -> Result<(), String> {
    let t = Instant::now();
    let mismatches = w.expected.check(&StoreState::new(store)).map_err(engine)?;
    let summary = w.expected.summary();
    step(
        "check against the rules",
        t,
        format!(
            "{} receipts, {} lines, {} words, {} labels, {} sections, {} keys: {} mismatches",
            summary.receipts,
            summary.lines,
            summary.words,
            summary.labels,
            summary.sections,
            summary.keys,
            mismatches.len()
        ),
    );
    match mismatches.first() {
        Some(m) => Err(format!("{} mismatches, first: {m}", mismatches.len())),
        None => Ok(()),
    }
}

/// 5. Queries with filters, and the deleted receipts invisible.
fn query(w: &Workload, words: &Snapshot, lines: &Snapshot, seed: u64) -> Result<(), String> {
    let t = Instant::now();
    let probe = &w
        .expected
        .receipts
        .first()
        .ok_or("the workload has no receipt left")?
        .receipt;
    let in_receipt = strata_stream::ids::receipt_filter(&probe.image_id, probe.receipt_id);
    let q = embedding(3, seed);
    let nearest = lines
        .query(&Query {
            vector: &q,
            k: 3,
            filter: Some(&in_receipt),
            include: Include::default(),
        })
        .map_err(engine)?;
    let validated = words
        .count(Some(&filter(r#"{"label_status": "validated"}"#)?))
        .map_err(engine)?;
    let totals_rows = lines
        .count(Some(&filter(
            r#"{"valid_labels_array": {"$contains": "GRAND_TOTAL"}}"#,
        )?))
        .map_err(engine)?;
    let merchant = nearest
        .first()
        .and_then(|h| h.metadata.as_ref())
        .and_then(|m| m.get("merchant_name"))
        .and_then(|v| match v {
            MetaValue::Str(s) => Some(s.clone()),
            _ => None,
        });
    let at_merchant = match &merchant {
        Some(m) => words
            .count(Some(
                &Filter::parse(&serde_json::json!({ "merchant_name": m }).to_string())
                    .map_err(|x| x.to_string())?,
            ))
            .map_err(engine)?,
        None => 0,
    };
    step(
        "queries",
        t,
        format!(
            "{validated} validated words; {totals_rows} rows with a valid GRAND_TOTAL; \
             {at_merchant} words at {}",
            merchant.as_deref().unwrap_or("(no merchant)")
        ),
    );
    println!(
        "  3 nearest rows of receipt {}#{}: {}",
        probe.image_id,
        probe.receipt_id,
        nearest
            .iter()
            .map(|h| format!(
                "{:?} ({:.3})",
                h.document.clone().unwrap_or_default(),
                h.distance.unwrap_or(0.0)
            ))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    for r in &w.expected.deleted {
        let f = strata_stream::ids::receipt_filter(&r.image_id, r.receipt_id);
        if words.count(Some(&f)).map_err(engine)? + lines.count(Some(&f)).map_err(engine)? != 0 {
            return Err(format!(
                "records of deleted receipt {r:?} are still visible"
            ));
        }
    }
    Ok(())
}

/// 6. Versions and a rollback (and forward again) of `lines`, whose head `lines` is.
fn rollback_and_forward(
    store: &Writer,
    lines: &Snapshot,
    before_compaction: u64,
) -> Result<(), String> {
    let t = Instant::now();
    let versions = store.versions("lines").map_err(engine)?;
    let head = lines.version().version;
    let oldest = versions
        .iter()
        .map(|v| v.version)
        .min()
        .unwrap_or(before_compaction);
    let rows_now = lines.count(None).map_err(engine)?;
    store.rollback("lines", oldest).map_err(engine)?;
    let rows_then = store
        .snapshot("lines")
        .map_err(engine)?
        .count(None)
        .map_err(engine)?;
    store.rollback("lines", head).map_err(engine)?;
    let rows_back = store
        .snapshot("lines")
        .map_err(engine)?
        .count(None)
        .map_err(engine)?;
    if rows_back != rows_now {
        return Err(format!(
            "roll forward gave {rows_back} rows, not {rows_now}"
        ));
    }
    step(
        "rollback and forward",
        t,
        format!(
            "lines: {} versions kept; {rows_now} rows at v{head}, {rows_then} at v{oldest}, \
             {rows_back} after rolling forward",
            versions.len()
        ),
    );
    Ok(())
}

/// 7. GC (while `snapshots` are alive), then close and verify.
fn gc_and_verify(
    store: Writer,
    store_dir: &Path,
    snapshots: (Snapshot, Snapshot),
) -> Result<(), String> {
    let t = Instant::now();
    let gc = store.gc().map_err(engine)?;
    drop(snapshots);
    let before = store.space().map_err(engine)?;
    // What an operator's `strata gc --older-than 0s` leaves: the heads' files only.
    let aggressive = store
        .gc_with(&strata_engine::GcOptions::older_than(Duration::ZERO))
        .map_err(engine)?;
    let after = store.space().map_err(engine)?;
    step(
        "space",
        t,
        format!(
            "head {}, rollback window {}, awaiting GC {}: {:.2}× the head; after gc \
             --older-than 0s ({} versions dropped, {} files freed): {} in all, {:.2}×",
            mb(before.head.bytes),
            mb(before.retained.bytes),
            mb(before.unreferenced.bytes),
            before.amplification().unwrap_or(1.0),
            aggressive.versions_dropped,
            mb(aggressive.bytes_freed),
            mb(after.total_bytes()),
            after.amplification().unwrap_or(1.0),
        ),
    );
    store.close().map_err(engine)?;
    let v = verify_store(store_dir).map_err(engine)?;
    step(
        "gc + verify",
        t,
        format!(
            "{} files freed ({}), {} young files kept; verify: {} files, {}: {}",
            gc.files_deleted,
            mb(gc.bytes_freed),
            gc.files_in_grace,
            v.files,
            mb(v.bytes),
            if v.ok() {
                "ok".to_string()
            } else {
                format!("{} problems", v.problems.len())
            }
        ),
    );
    if !v.ok() {
        return Err(format!("verify found problems: {:?}", v.problems));
    }
    Ok(())
}
