//! The receipt pipeline end to end on a generated workload (`strata_testkit::workload`): DynamoDB
//! stream events through the stream processor into the inbox and through the compactor into
//! a real store, with the resulting metadata checked against the rules; then the order
//! properties — shuffled delivery, late and repeated run merges, late place changes, runs
//! whose deltas arrive late — each compared with the in-order result.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use strata_engine::{Include, ReadableStore, StoreOptions, Writer};
use strata_formats::Metadata;
use strata_pipeline::runs::merge_run;
use strata_pipeline::state::StoreState;
use strata_pipeline::{
    process_stream_event, CollectingReporter, Compactor, CompactorOptions, CompactorOutcome,
    LocalRuns, RunReporter,
};
use strata_stream::Collection;
use strata_testkit::workload::{Workload, WorkloadConfig};

fn workload(receipts: usize, seed: u64) -> Workload {
    Workload::generate(&WorkloadConfig {
        receipts,
        seed,
        records_per_event: 60,
        edit_rounds: 1,
    })
}

/// Every record of every event, in stream order.
fn records(w: &Workload) -> Vec<Value> {
    w.events
        .iter()
        .flat_map(|e| {
            let v: Value = serde_json::from_slice(e).unwrap();
            v["Records"].as_array().unwrap().clone()
        })
        .collect()
}

fn event(records: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "Records": records })).unwrap()
}

fn entity_of(record: &Value) -> String {
    let sk = record["dynamodb"]["Keys"]["SK"]["S"].as_str().unwrap_or("");
    strata_stream::EntityType::detect(sk)
        .map_or("other", |t| t.as_str())
        .to_string()
}

/// Run the compactor once on `event` (None: a scheduled invocation).
fn compact(store: &Writer, runs: &Path, event: Option<&[u8]>) -> CompactorOutcome {
    let runs = LocalRuns::new(runs);
    let mut reporter = CollectingReporter::default();
    let options = CompactorOptions {
        gc: false,
        ..CompactorOptions::default()
    };
    Compactor::new(store, &runs, &mut reporter, options)
        .handle(event.unwrap_or(b"{}"))
        .unwrap()
}

/// Everything the receipt collections hold: id → (metadata, document, embedding).
type State = BTreeMap<String, BTreeMap<String, (Metadata, Option<String>, Option<Vec<f32>>)>>;

fn state(store: &Writer) -> State {
    Collection::ALL
        .iter()
        .map(|c| {
            let rows = store
                .snapshot(c.as_str())
                .unwrap()
                .get_where(None, None, 0, Include::all())
                .unwrap();
            let rows = rows
                .into_iter()
                .map(|r| {
                    (
                        r.id,
                        (r.metadata.unwrap_or_default(), r.document, r.embedding),
                    )
                })
                .collect();
            (c.as_str().to_string(), rows)
        })
        .collect()
}

fn assert_same(a: &State, b: &State, what: &str) {
    for (c, rows) in a {
        let other = &b[c];
        assert_eq!(rows.len(), other.len(), "{what}: {c} row counts differ");
        for (id, row) in rows {
            assert_eq!(Some(row), other.get(id), "{what}: {c} {id} differs");
        }
    }
}

fn assert_matches_rules(store: &Writer, w: &Workload) {
    let mismatches = w.expected.check(&StoreState::new(store)).unwrap();
    let mut by_key: BTreeMap<(String, String), usize> = BTreeMap::new();
    for m in &mismatches {
        *by_key
            .entry((m.collection.clone(), m.key.clone()))
            .or_default() += 1;
    }
    let shown: Vec<String> = mismatches.iter().take(10).map(|m| m.to_string()).collect();
    assert!(
        mismatches.is_empty(),
        "{} mismatches by (collection, key): {by_key:?}; first ones:\n{}",
        mismatches.len(),
        shown.join("\n")
    );
}

fn pending_follow_ups(store: &Writer) -> usize {
    store.snapshot("followups").unwrap().rows().unwrap()
}

/// Apply records directly through the compactor, `batch` records per invocation.
fn apply_in_batches(store: &Writer, runs: &Path, records: &[Value], batch: usize) {
    for chunk in records.chunks(batch) {
        let out = compact(store, runs, Some(&event(chunk)));
        assert!(out.event.failures.is_empty(), "{:?}", out.event.failures);
    }
}

/// The item identifiers a compactor invocation answered as failed.
fn failed_items(out: &CompactorOutcome) -> Vec<String> {
    out.response
        .as_ref()
        .expect("an event was given")
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

fn fresh(dir: &Path, w: &Workload) -> Writer {
    w.write_run_files(&dir.join("runs")).unwrap();
    Writer::open(dir.join("store"), StoreOptions::default()).unwrap()
}

#[test]
fn stream_processor_then_compactor_matches_the_rules() {
    let w = workload(12, 3);
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    w.write_run_files(&runs).unwrap();
    let store_dir = dir.path().join("store");
    let mut inbox_files = 0;
    let mut merged = 0;
    for (i, e) in w.events.iter().enumerate() {
        let out = process_stream_event(&store_dir, &format!("stream-{i}"), e).unwrap();
        assert!(out.failures.is_empty(), "event {i}: {:?}", out.failures);
        assert!(out.response.batch_item_failures.is_empty());
        inbox_files += out.files.len();
        // The compactor runs every few stream invocations, as a schedule would.
        if i % 4 == 3 || i + 1 == w.events.len() {
            let store = Writer::open(&store_dir, StoreOptions::default()).unwrap();
            let c = compact(&store, &runs, None);
            assert!(c.inbox_failed.is_empty() && c.torn.is_empty(), "{c:?}");
            assert!(
                c.follow_ups.failed_runs.is_empty(),
                "{:?}",
                c.follow_ups.failed_runs
            );
            assert!(c.follow_ups.bad_rows.is_empty());
            merged += c.follow_ups.merged_runs.len();
            store.close().unwrap();
        }
    }
    assert!(
        inbox_files >= w.events.len(),
        "every event wrote inbox files"
    );
    assert_eq!(merged, w.runs.len(), "every run merged exactly once");
    let store = Writer::open(&store_dir, StoreOptions::default()).unwrap();
    assert_eq!(pending_follow_ups(&store), 0);
    assert!(!w.expected.recreated.is_empty());
    for r in &w.expected.recreated {
        let filter = strata_stream::ids::receipt_filter(&r.image_id, r.receipt_id);
        let rows = store
            .snapshot("lines")
            .unwrap()
            .count(Some(&filter))
            .unwrap();
        assert!(rows > 0, "re-created receipt {r:?} is present");
    }
    assert_matches_rules(&store, &w);
    // The same events applied directly by the compactor give the same state.
    let direct_dir = tempfile::tempdir().unwrap();
    let direct = fresh(direct_dir.path(), &w);
    apply_in_batches(&direct, &direct_dir.path().join("runs"), &records(&w), 60);
    assert_same(&state(&store), &state(&direct), "inbox path vs direct path");
}

#[test]
fn shuffled_delivery_gives_the_same_final_state() {
    let w = workload(10, 11);
    let all = records(&w);
    let ordered_dir = tempfile::tempdir().unwrap();
    let ordered = fresh(ordered_dir.path(), &w);
    apply_in_batches(&ordered, &ordered_dir.path().join("runs"), &all, 50);
    assert_matches_rules(&ordered, &w);
    for seed in [1u64, 2] {
        let mut shuffled = all.clone();
        // Fisher-Yates with a fixed generator.
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let dir = tempfile::tempdir().unwrap();
        let store = fresh(dir.path(), &w);
        apply_in_batches(&store, &dir.path().join("runs"), &shuffled, 37);
        assert_eq!(pending_follow_ups(&store), 0);
        assert_same(&state(&ordered), &state(&store), &format!("shuffle {seed}"));
    }
}

#[test]
fn late_and_repeated_merges_and_late_places_do_not_revert_newer_metadata() {
    let w = workload(10, 5);
    let all = records(&w);
    let dir = tempfile::tempdir().unwrap();
    let store = fresh(dir.path(), &w);
    let runs = dir.path().join("runs");
    apply_in_batches(&store, &runs, &all, 50);
    assert_matches_rules(&store, &w);
    let before = state(&store);
    // Every run INSERT delivered again, late: the merges repeat at their own seqs.
    let run_inserts: Vec<Value> = all
        .iter()
        .filter(|r| entity_of(r) == "COMPACTION_RUN" && r["eventName"] == "INSERT")
        .cloned()
        .collect();
    assert!(!run_inserts.is_empty());
    let out = compact(&store, &runs, Some(&event(&run_inserts)));
    // A redelivered record repeats its follow-up row, which its earlier completion shadows:
    // nothing to merge again.
    assert!(
        out.follow_ups.merged_runs.is_empty(),
        "{:?}",
        out.follow_ups
    );
    // Merging every run again anyway (as a retry after a lost completion would), at the
    // runs' own seqs, with no recomputation after it.
    let source = LocalRuns::new(&runs);
    let batch = strata_stream::parse_event(&event(&run_inserts)).unwrap();
    let mut merges = 0;
    for (_, _, t) in strata_stream::translate_batch(&batch).records {
        let strata_stream::Translation::Apply(r) = t else {
            continue;
        };
        for f in &r.follow_ups {
            if let strata_stream::FollowUp::MergeRun(run) = f {
                let outcomes = merge_run(&store, &source, run).unwrap();
                run.complete(&outcomes).unwrap();
                merges += 1;
            }
        }
    }
    assert_eq!(merges, run_inserts.len());
    // Every place change delivered again, newest first: older ones arrive last.
    let mut places: Vec<Value> = all
        .iter()
        .filter(|r| entity_of(r) == "RECEIPT_PLACE")
        .cloned()
        .collect();
    places.reverse();
    assert!(places.len() > 3);
    compact(&store, &runs, Some(&event(&places)));
    assert_same(&before, &state(&store), "after late merges and places");
    assert_matches_rules(&store, &w);
}

#[test]
fn place_changes_arriving_in_reverse_order_end_as_the_newest() {
    let w = workload(8, 21);
    let all = records(&w);
    let ordered_dir = tempfile::tempdir().unwrap();
    let ordered = fresh(ordered_dir.path(), &w);
    apply_in_batches(&ordered, &ordered_dir.path().join("runs"), &all, 50);
    let (mut places, rest): (Vec<Value>, Vec<Value>) = all
        .into_iter()
        .partition(|r| entity_of(r) == "RECEIPT_PLACE");
    places.reverse();
    let dir = tempfile::tempdir().unwrap();
    let store = fresh(dir.path(), &w);
    let runs = dir.path().join("runs");
    apply_in_batches(&store, &runs, &rest, 50);
    for p in &places {
        compact(&store, &runs, Some(&event(std::slice::from_ref(p))));
    }
    assert_same(&state(&ordered), &state(&store), "places in reverse");
    assert_matches_rules(&store, &w);
}

#[test]
fn a_run_whose_deltas_are_missing_stays_pending_until_they_arrive() {
    let w = workload(6, 9);
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let store = Writer::open(dir.path().join("store"), StoreOptions::default()).unwrap();
    let mut failed = Vec::new();
    for e in &w.events {
        failed.extend(compact(&store, &runs, Some(e)).follow_ups.failed_runs);
    }
    assert!(!failed.is_empty(), "runs without files fail");
    assert!(
        failed.iter().all(|f| f.error.contains("delta missing")),
        "{failed:?}"
    );
    let pending = pending_follow_ups(&store);
    assert!(
        pending >= w.runs.len(),
        "every run is still pending ({pending})"
    );
    // A second invocation retries them: still missing, attempts counted.
    let again = compact(&store, &runs, None);
    assert!(again.follow_ups.failed_runs.iter().all(|f| f.attempts >= 2));
    // The producer's files arrive: the next invocation merges every run.
    w.write_run_files(&runs).unwrap();
    let done = compact(&store, &runs, None);
    assert!(
        done.follow_ups.failed_runs.is_empty(),
        "{:?}",
        done.follow_ups.failed_runs
    );
    assert_eq!(pending_follow_ups(&store), 0);
    assert_matches_rules(&store, &w);
}

/// The seed's SQS path: the stream records become the seed's StreamMessages (one per target
/// queue), delivered as SQS events to the compactor.
fn sqs_events(w: &Workload) -> Vec<Vec<u8>> {
    let mut n = 0;
    w.events
        .iter()
        .map(|e| {
            let batch = strata_stream::parse_event(e).unwrap();
            let mut records = Vec::new();
            for r in &batch.records {
                for m in strata_stream::build_messages(r, "2025-02-20T00:00:00Z").unwrap() {
                    for queue in &m.collections {
                        n += 1;
                        records.push(serde_json::json!({
                            "messageId": format!("msg-{n:06}"),
                            "body": m.to_body(),
                            "eventSource": "aws:sqs",
                            "messageAttributes": {
                                "collection": {"stringValue": queue.as_str(), "dataType": "String"}
                            },
                        }));
                    }
                }
            }
            records
        })
        .filter(|records: &Vec<Value>| !records.is_empty())
        .map(|records| serde_json::to_vec(&serde_json::json!({ "Records": records })).unwrap())
        .collect()
}

#[test]
fn sqs_batches_of_the_seeds_messages_are_applied_and_failures_named() {
    let w = workload(6, 13);
    let dir = tempfile::tempdir().unwrap();
    let store = fresh(dir.path(), &w);
    let runs = dir.path().join("runs");
    let (mut applied, mut merged) = (0, 0);
    for e in sqs_events(&w) {
        let out = compact(&store, &runs, Some(&e));
        assert_eq!(out.event.kind, "sqs");
        let response = out.response.unwrap();
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
        assert!(out.event.failures.is_empty(), "{:?}", out.event.failures);
        assert!(out.follow_ups.failed_runs.is_empty());
        applied += out.event.applied;
        merged += out.follow_ups.merged_runs.len();
    }
    assert!(applied > 0);
    // Each run's two messages (lines and words queue) are one change: merged once per run.
    assert_eq!(merged, w.runs.len());
    let receipt = &w.expected.receipts[0].receipt;
    let filter = strata_stream::ids::receipt_filter(&receipt.image_id, receipt.receipt_id);
    assert!(
        store
            .snapshot("words")
            .unwrap()
            .count(Some(&filter))
            .unwrap()
            > 0
    );
    for r in &w.expected.deleted {
        let f = strata_stream::ids::receipt_filter(&r.image_id, r.receipt_id);
        assert_eq!(store.snapshot("lines").unwrap().count(Some(&f)).unwrap(), 0);
    }

    // A body that is not a message and a message whose change cannot be applied are named by
    // their message ids; the good message next to them is applied.
    let good = serde_json::json!({
        "messageId": "good-1",
        "eventSource": "aws:sqs",
        "body": serde_json::json!({
            "entity_type": "RECEIPT_SECTION", "event_name": "MODIFY", "source": "section_backfill",
            "entity_data": {"image_id": receipt.image_id, "receipt_id": receipt.receipt_id,
                            "section_type": "ITEMS"},
            "changes": {}
        }).to_string(),
    });
    let bad_body =
        serde_json::json!({"messageId": "bad-1", "eventSource": "aws:sqs", "body": "{not json"});
    let no_run_prefix = serde_json::json!({
        "messageId": "bad-2",
        "eventSource": "aws:sqs",
        "body": serde_json::json!({
            "entity_type": "COMPACTION_RUN", "event_name": "INSERT",
            "entity_data": {"image_id": receipt.image_id, "receipt_id": receipt.receipt_id,
                            "run_id": "r-without-prefixes"},
            "changes": {}
        }).to_string(),
    });
    let e = serde_json::to_vec(&serde_json::json!({"Records": [good, bad_body, no_run_prefix]}))
        .unwrap();
    let out = compact(&store, &runs, Some(&e));
    let mut failed = failed_items(&out);
    failed.sort();
    assert_eq!(failed, ["bad-1", "bad-2"], "{:?}", out.event.failures);
    assert_eq!(out.event.applied, 1);
}

#[test]
fn a_dynamodb_event_sent_to_the_compactor_answers_its_failed_records() {
    let w = workload(2, 17);
    let dir = tempfile::tempdir().unwrap();
    let store = fresh(dir.path(), &w);
    let mut event: Value = serde_json::from_slice(&w.events[0]).unwrap();
    let records = event["Records"].as_array_mut().unwrap();
    let victim = records[0]["dynamodb"]["SequenceNumber"]
        .as_str()
        .unwrap()
        .to_string();
    records[0]["dynamodb"]["Keys"] = serde_json::json!({"PK": {"Q": "x"}});
    let out = compact(
        &store,
        &dir.path().join("runs"),
        Some(&serde_json::to_vec(&event).unwrap()),
    );
    assert_eq!(out.event.kind, "dynamodb");
    assert_eq!(failed_items(&out), [victim]);
    assert_eq!(out.event.applied + out.event.ignored + 1, out.event.records);
}

#[test]
fn runs_in_an_object_store_merge_like_runs_in_a_directory() {
    use object_store::{memory::InMemory, path::Path as ObjectPath, ObjectStore, PutPayload};
    let w = workload(4, 23);
    let mem = std::sync::Arc::new(InMemory::new());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (rel, bytes) in &w.run_files {
        let key = ObjectPath::parse(rel.to_str().unwrap()).unwrap();
        rt.block_on(mem.put(&key, PutPayload::from(bytes.clone())))
            .unwrap();
    }
    let runs = strata_pipeline::object_runs::ObjectStoreRuns::new(mem, "receipts-bucket");
    let dir = tempfile::tempdir().unwrap();
    let store = Writer::open(dir.path(), StoreOptions::default()).unwrap();
    let mut reporter = CollectingReporter::default();
    for e in &w.events {
        let out = Compactor::new(&store, &runs, &mut reporter, CompactorOptions::default())
            .handle(e)
            .unwrap();
        assert!(
            out.follow_ups.failed_runs.is_empty(),
            "{:?}",
            out.follow_ups
        );
    }
    assert_eq!(reporter.completed.len(), w.runs.len());
    assert_matches_rules(&store, &w);
}

/// Checks, whenever a run is reported COMPLETED, that a reader opened afresh on the store
/// already sees every record of the run's deltas (the report comes after durability), and
/// records every state it was told.
struct DurableCheck {
    store: std::path::PathBuf,
    /// run id → `(collection, ids)` of its deltas.
    ids: BTreeMap<String, Vec<(String, Vec<String>)>>,
    seen: CollectingReporter,
}

impl RunReporter for DurableCheck {
    fn started(&mut self, run: &strata_stream::MergeRun) -> Result<(), String> {
        self.seen.started(run)
    }

    fn completed(
        &mut self,
        run: &strata_stream::MergeRun,
        done: &strata_stream::ops::RunCompleted,
    ) -> Result<(), String> {
        let reader = strata_engine::Reader::open(&self.store).unwrap();
        for (collection, ids) in &self.ids[&run.run_id] {
            let found = reader
                .snapshot(collection)
                .unwrap()
                .get(ids, Include::default())
                .unwrap();
            assert_eq!(found.len(), ids.len(), "{collection} of {}", run.run_id);
        }
        self.seen.completed(run, done)
    }

    fn failed(
        &mut self,
        run: &strata_stream::MergeRun,
        failures: &[strata_pipeline::reporter::DeltaFailure],
        attempts: i64,
    ) -> Result<(), String> {
        self.seen.failed(run, failures, attempts)
    }
}

/// The ids of every run's delta files: run id → `(collection, ids)`.
fn run_ids(w: &Workload) -> BTreeMap<String, Vec<(String, Vec<String>)>> {
    let mut out: BTreeMap<String, Vec<(String, Vec<String>)>> = BTreeMap::new();
    for (rel, bytes) in &w.run_files {
        let delta = strata_formats::decode_delta(bytes).unwrap();
        let run_id = rel.parent().unwrap().file_name().unwrap().to_str().unwrap();
        let ids = delta
            .ops
            .iter()
            .filter_map(|o| match &o.op {
                strata_formats::Op::Upsert(r) => Some(r.id.clone()),
                _ => None,
            })
            .collect();
        out.entry(run_id.to_string())
            .or_default()
            .push((delta.header.collection.clone(), ids));
    }
    out
}

/// Run states in order: PROCESSING once (the first attempt), FAILED once a run has failed
/// `fail_after_attempts` times (and again on each later failure, never before), COMPLETED
/// only after the merged records are durable, with the number of records of each delta.
#[test]
fn run_states_are_reported_processing_failed_then_completed_after_durability() {
    use strata_pipeline::RunEvent;
    let w = workload(4, 31);
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let store_dir = dir.path().join("store");
    let store = Writer::open(&store_dir, StoreOptions::default()).unwrap();
    let source = LocalRuns::new(&runs);
    let mut reporter = DurableCheck {
        store: store_dir,
        ids: run_ids(&w),
        seen: CollectingReporter::default(),
    };
    let options = CompactorOptions {
        gc: false,
        fail_after_attempts: 3,
        ..CompactorOptions::default()
    };
    // No delta has arrived: every run fails on each invocation.
    let scheduled: Vec<&[u8]> = vec![b"{}"; 3];
    for e in w.events.iter().map(Vec::as_slice).chain(scheduled) {
        Compactor::new(&store, &source, &mut reporter, options.clone())
            .handle(e)
            .unwrap();
    }
    w.write_run_files(&runs).unwrap();
    let out = Compactor::new(&store, &source, &mut reporter, options)
        .handle(b"{}")
        .unwrap();
    assert_eq!(out.follow_ups.merged_runs.len(), w.runs.len());
    let events = &reporter.seen.events;
    for info in &w.runs {
        let mine: Vec<&RunEvent> = events
            .iter()
            .filter(|e| match e {
                RunEvent::Processing { run_id }
                | RunEvent::Completed { run_id, .. }
                | RunEvent::Failed { run_id, .. } => *run_id == info.run_id,
            })
            .collect();
        assert_eq!(
            mine.first(),
            Some(&&RunEvent::Processing {
                run_id: info.run_id.clone()
            })
        );
        let processing = mine
            .iter()
            .filter(|e| matches!(e, RunEvent::Processing { .. }))
            .count();
        assert_eq!(processing, 1, "{mine:?}");
        let failed: Vec<i64> = mine
            .iter()
            .filter_map(|e| match e {
                RunEvent::Failed {
                    attempts, failures, ..
                } => {
                    assert_eq!(failures.len(), 2, "both deltas are missing: {failures:?}");
                    Some(*attempts)
                }
                _ => None,
            })
            .collect();
        assert!(!failed.is_empty(), "{mine:?}");
        assert_eq!(failed[0], 3, "FAILED first at the third attempt: {mine:?}");
        assert!(failed.windows(2).all(|p| p[1] == p[0] + 1), "{failed:?}");
        assert_eq!(
            mine.last(),
            Some(&&RunEvent::Completed {
                run_id: info.run_id.clone(),
                merged: vec![
                    (Collection::Lines, info.lines as u64),
                    (Collection::Words, info.words as u64)
                ],
            })
        );
    }
}
