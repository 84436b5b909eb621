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

/// Run merges held up until after the receipts' place changes (a killed compactor, a run
/// whose deltas arrived late), then the place REMOVEs: each merge's recomputation writes
/// the newer place over the run's embed-time records, stamped after everything seen (above
/// the removals' seqs), and the removals' own patches lose to it. The follow-up a removal
/// asks for clears the keys all the same. (Found by the 5000-kill soak: 904 mismatches.)
#[test]
fn place_removals_after_late_merges_still_clear_the_place() {
    let w = workload(12, 3);
    let all = records(&w);
    let ordered_dir = tempfile::tempdir().unwrap();
    let ordered = fresh(ordered_dir.path(), &w);
    apply_in_batches(&ordered, &ordered_dir.path().join("runs"), &all, 50);
    assert_matches_rules(&ordered, &w);
    let (removals, rest): (Vec<Value>, Vec<Value>) = all
        .into_iter()
        .partition(|r| entity_of(r) == "RECEIPT_PLACE" && r["eventName"] == "REMOVE");
    let (run_inserts, rest): (Vec<Value>, Vec<Value>) = rest
        .into_iter()
        .partition(|r| entity_of(r) == "COMPACTION_RUN" && r["eventName"] == "INSERT");
    assert!(removals.len() >= 2, "{} place removals", removals.len());
    let dir = tempfile::tempdir().unwrap();
    let store = fresh(dir.path(), &w);
    let runs = dir.path().join("runs");
    apply_in_batches(&store, &runs, &rest, 50);
    apply_in_batches(&store, &runs, &run_inserts, 50);
    apply_in_batches(&store, &runs, &removals, 1);
    assert_eq!(pending_follow_ups(&store), 0);
    assert_matches_rules(&store, &w);
    assert_same(&state(&ordered), &state(&store), "place removals last");
}

/// Merged runs' files stay through the retention period and are removed after it; a
/// redelivered run INSERT afterwards changes nothing (its follow-up is shadowed by the
/// completed one), and the store still matches the rules.
#[test]
fn merged_run_deltas_are_removed_after_their_retention() {
    let w = workload(4, 29);
    let all = records(&w);
    let dir = tempfile::tempdir().unwrap();
    let store = fresh(dir.path(), &w);
    let runs = dir.path().join("runs");
    let files = walk;
    let before = files(&runs);
    assert!(!before.is_empty());
    let keep = CompactorOptions {
        run_retention: Some(std::time::Duration::from_secs(3600)),
        ..CompactorOptions::default()
    };
    let source = LocalRuns::new(&runs);
    let mut reporter = CollectingReporter::default();
    for chunk in all.chunks(50) {
        let out = Compactor::new(&store, &source, &mut reporter, keep.clone())
            .handle(&event(chunk))
            .unwrap();
        assert_eq!(out.runs_collected.runs, 0);
    }
    assert_eq!(
        files(&runs),
        before,
        "within the retention nothing is removed"
    );
    assert_eq!(
        store.snapshot("merged_runs").unwrap().rows().unwrap(),
        w.runs.len()
    );
    let now = CompactorOptions {
        run_retention: Some(std::time::Duration::ZERO),
        ..CompactorOptions::default()
    };
    std::thread::sleep(std::time::Duration::from_millis(5));
    let out = Compactor::new(&store, &source, &mut reporter, now.clone())
        .handle(b"{}")
        .unwrap();
    assert_eq!(
        out.runs_collected.runs,
        w.runs.len(),
        "{:?}",
        out.runs_collected
    );
    assert_eq!(out.runs_collected.files, before.len() as u64);
    assert!(out.runs_collected.errors.is_empty());
    assert!(files(&runs).is_empty(), "{:?}", files(&runs));
    assert_eq!(store.snapshot("merged_runs").unwrap().rows().unwrap(), 0);
    // Every run INSERT again: nothing to merge, nothing missing, the rules still hold.
    let inserts: Vec<Value> = all
        .iter()
        .filter(|r| entity_of(r) == "COMPACTION_RUN" && r["eventName"] == "INSERT")
        .cloned()
        .collect();
    let out = Compactor::new(&store, &source, &mut reporter, now)
        .handle(&event(&inserts))
        .unwrap();
    assert!(
        out.follow_ups.failed_runs.is_empty(),
        "{:?}",
        out.follow_ups
    );
    assert_matches_rules(&store, &w);
}

/// Every file under `root` (relative paths), sorted.
fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
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
struct DurableCheck<'w> {
    store: std::path::PathBuf,
    writer: &'w Writer,
    /// Run records a fresh reader saw at `completed` time.
    visible: usize,
    /// run id → `(collection, ids)` of its deltas.
    ids: BTreeMap<String, Vec<(String, Vec<String>)>>,
    seen: CollectingReporter,
}

impl RunReporter for DurableCheck<'_> {
    fn started(&mut self, run: &strata_stream::MergeRun) -> Result<(), String> {
        self.seen.started(run)
    }

    fn completed(
        &mut self,
        run: &strata_stream::MergeRun,
        done: &strata_stream::ops::RunCompleted,
    ) -> Result<(), String> {
        // What a process opening the store now sees is what the writer holds: the run's
        // records (less those a newer stream REMOVE deleted) are durable and published.
        let reader = strata_engine::Reader::open(&self.store).unwrap();
        for (collection, ids) in &self.ids[&run.run_id] {
            let get = |snap: strata_engine::Snapshot| {
                let rows = snap.get(ids, Include::all()).unwrap();
                rows.into_iter()
                    .map(|r| (r.id, r.embedding, r.metadata))
                    .collect::<Vec<_>>()
            };
            let seen = get(reader.snapshot(collection).unwrap());
            let held = get(self.writer.snapshot(collection).unwrap());
            assert_eq!(seen, held, "{collection} of {}", run.run_id);
            self.visible += seen.len();
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
        writer: &store,
        visible: 0,
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
    assert!(reporter.visible > 0, "the check saw the runs' records");
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

// ---- seed-format run deltas ------------------------------------------------------------

/// strata-chroma's golden fixtures (made by real chromadb 1.5.9): `delta.tar.gz` holds a
/// `lines` collection, `delta_dir/` a `words` collection, 25 records each, 8-d, with the
/// expected JSON of `collection.get()`.
const CHROMA_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../chroma/fixtures");
/// This crate's: `empty_lines.tar.gz`, a `lines` collection never written.
const SEED_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

const IMAGE: &str = "5a0c5ab4-7f1e-4a4e-9c61-2d4b1f0e7a10";

/// The DynamoDB stream event of a COMPACTION_RUN INSERT (the shape the seed's table emits).
fn run_insert(run_id: &str, seq: u64) -> Vec<u8> {
    let sk = format!("RECEIPT#00001#COMPACTION_RUN#{run_id}");
    let s = |v: &str| serde_json::json!({ "S": v });
    let record = serde_json::json!({
        "eventID": format!("ev-{seq}"),
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": { "PK": s(&format!("IMAGE#{IMAGE}")), "SK": s(&sk) },
            "NewImage": {
                "PK": s(&format!("IMAGE#{IMAGE}")),
                "SK": s(&sk),
                "TYPE": s("COMPACTION_RUN"),
                "run_id": s(run_id),
                "image_id": s(IMAGE),
                "receipt_id": { "N": "1" },
                "lines_delta_prefix": s(&format!("lines/delta/{run_id}/")),
                "words_delta_prefix": s(&format!("words/delta/{run_id}/")),
                "lines_state": s("PENDING"),
                "words_state": s("PENDING"),
            },
            "ApproximateCreationDateTime": 1_796_189_359,
            "SequenceNumber": seq.to_string(),
            "SizeBytes": 512,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    });
    event(&[record])
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A metadata value of the expected JSON (Python's json: ints without a point).
fn meta_value(v: &Value) -> strata_formats::MetaValue {
    use strata_formats::MetaValue as M;
    let all = |f: fn(&Value) -> bool| v.as_array().unwrap().iter().all(f);
    match v {
        Value::String(s) => M::Str(s.clone()),
        Value::Bool(b) => M::Bool(*b),
        Value::Number(n) if n.is_i64() => M::Int(n.as_i64().unwrap()),
        Value::Number(n) => M::Float(n.as_f64().unwrap()),
        Value::Array(a) if all(Value::is_string) => {
            M::StrList(a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        }
        Value::Array(a) if all(Value::is_boolean) => {
            M::BoolList(a.iter().map(|x| x.as_bool().unwrap()).collect())
        }
        Value::Array(a) if all(Value::is_i64) => {
            M::IntList(a.iter().map(|x| x.as_i64().unwrap()).collect())
        }
        Value::Array(a) => M::FloatList(a.iter().map(|x| x.as_f64().unwrap()).collect()),
        other => panic!("unexpected metadata value {other}"),
    }
}

/// The records of one collection of an expected JSON, as strata upserts at seq 0.
fn expected_ops(file: &str, collection: &str) -> Vec<strata_formats::Operation> {
    let path = Path::new(CHROMA_FIXTURES).join(file);
    let doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    doc["collections"][collection]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let embedding = r["embedding_bits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| f32::from_bits(b.as_u64().unwrap() as u32))
                .collect();
            let metadata = r["metadata"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), meta_value(v))).collect())
                .unwrap_or_default();
            strata_formats::Operation::upsert(
                strata_formats::Seq::ZERO,
                strata_formats::Record {
                    id: r["id"].as_str().unwrap().to_string(),
                    embedding: Some(embedding),
                    document: r["document"].as_str().map(str::to_string),
                    metadata,
                },
            )
        })
        .collect()
}

/// A store whose `lines` and `words` have the fixtures' dimension (8), so the compactor
/// merges into them rather than creating its 1536-d defaults.
fn store_for_fixtures(dir: &Path) -> Writer {
    let store = Writer::open(dir, StoreOptions::default()).unwrap();
    for c in ["lines", "words"] {
        store
            .create_collection(
                c,
                8,
                strata_formats::Metric::L2,
                strata_formats::Quantization::None,
            )
            .unwrap();
    }
    store
}

/// Run the compactor once on `event` over `runs`, with a collecting reporter.
fn compact_reporting(
    store: &Writer,
    runs: &Path,
    event: &[u8],
) -> (CompactorOutcome, CollectingReporter) {
    let source = LocalRuns::new(runs);
    let mut reporter = CollectingReporter::default();
    let options = CompactorOptions {
        gc: false,
        ..CompactorOptions::default()
    };
    let out = Compactor::new(store, &source, &mut reporter, options)
        .handle(event)
        .unwrap();
    (out, reporter)
}

fn rows(store: &Writer, c: &str) -> Vec<strata_engine::RecordOut> {
    store
        .snapshot(c)
        .unwrap()
        .get_where(None, None, 0, Include::all())
        .unwrap()
}

/// The compactor merges a run delivered in the seed's formats — `lines` as the realtime
/// producer's `delta.tar.gz`, `words` as the batch producer's directory layout — end to
/// end from the COMPACTION_RUN INSERT, and the store equals one fed the same records as
/// strata run deltas: same ids, bit-identical embeddings, documents and typed metadata,
/// every operation stamped with the INSERT's SequenceNumber.
#[test]
fn seed_format_runs_merge_like_strata_runs() {
    let run_id = "9d1f3c2a-5b7e-4c11-8a0f-6e2d4c8b9a01";
    let dir = tempfile::tempdir().unwrap();
    // The seed's layouts.
    let seed_runs = dir.path().join("seed-runs");
    let tar_dir = seed_runs.join(format!("lines/delta/{run_id}"));
    std::fs::create_dir_all(&tar_dir).unwrap();
    std::fs::copy(
        Path::new(CHROMA_FIXTURES).join("delta.tar.gz"),
        tar_dir.join("delta.tar.gz"),
    )
    .unwrap();
    copy_tree(
        &Path::new(CHROMA_FIXTURES).join("delta_dir"),
        &seed_runs.join(format!("words/delta/{run_id}")),
    );
    // The same records as strata deltas.
    let strata_runs = dir.path().join("strata-runs");
    for (c, file) in [
        ("lines", "delta.tar.gz.expected.json"),
        ("words", "delta_dir.expected.json"),
    ] {
        let ops = expected_ops(file, c);
        assert_eq!(ops.len(), 25, "{file}");
        let header = strata_formats::DeltaHeader {
            collection: c.to_string(),
            dims: 8,
            producer: "embedding-producer".into(),
            first_seq: strata_formats::Seq::ZERO,
            created_ms: 0,
        };
        let bytes = strata_formats::DeltaWriter::encode(&header, &ops).unwrap();
        let d = strata_runs.join(format!("{c}/delta/{run_id}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("part-00000.delta"), bytes).unwrap();
    }
    let event = run_insert(run_id, 4_200_000_000);
    let mut states = Vec::new();
    for (name, runs) in [("seed", &seed_runs), ("strata", &strata_runs)] {
        let store = store_for_fixtures(&dir.path().join(format!("store-{name}")));
        let (out, reporter) = compact_reporting(&store, runs, &event);
        assert!(
            out.follow_ups.failed_runs.is_empty(),
            "{name}: {:?}",
            out.follow_ups.failed_runs
        );
        assert_eq!(
            out.follow_ups.merged_runs.len(),
            1,
            "{name}: {:?} {:?}",
            out.event,
            out.follow_ups
        );
        let merged = &out.follow_ups.merged_runs[0].merged;
        assert_eq!((merged["lines"], merged["words"]), (25, 25), "{name}");
        assert_eq!(reporter.completed.len(), 1, "{name}");
        assert_eq!(
            store.snapshot("lines").unwrap().rows().unwrap(),
            25,
            "{name}"
        );
        states.push(state_of(&store));
        // Every merged operation carries the INSERT's seq: an upsert of the same id stamped
        // just before it loses, one just after it wins.
        let id = "IMAGE#0001#RECEIPT#00001#LINE#00003";
        let upsert = |seq: u64, doc: &str| {
            strata_formats::Operation::upsert(
                seq.to_string().parse::<strata_formats::Seq>().unwrap(),
                strata_formats::Record {
                    id: id.into(),
                    embedding: Some(vec![0.5; 8]),
                    document: Some(doc.into()),
                    metadata: Metadata::new(),
                },
            )
        };
        let doc = |store: &Writer| {
            let snap = store.snapshot("lines").unwrap();
            snap.get(&[id.to_string()], Include::all()).unwrap()[0]
                .document
                .clone()
        };
        store
            .write_sequenced("lines", vec![upsert(4_199_999_999, "older")])
            .unwrap();
        assert_eq!(doc(&store).as_deref(), Some("line 3"), "{name}");
        store
            .write_sequenced("lines", vec![upsert(4_200_000_001, "newer")])
            .unwrap();
        assert_eq!(doc(&store).as_deref(), Some("newer"), "{name}");
    }
    assert_eq!(
        states[0], states[1],
        "a seed-fed store equals a strata-fed one"
    );
    // And both hold exactly the expected records of collection.get().
    let lines = &states[0]["lines"];
    for op in expected_ops("delta.tar.gz.expected.json", "lines") {
        let strata_formats::Op::Upsert(r) = op.op else {
            unreachable!()
        };
        let (_, doc, emb) = &lines[&r.id];
        assert_eq!(doc, &r.document);
        let bits = |v: &Option<Vec<f32>>| {
            v.as_ref()
                .map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
        };
        assert_eq!(bits(emb), bits(&r.embedding), "{}", r.id);
    }
}

/// `lines` and `words` of a store: id → (metadata, document, embedding).
fn state_of(store: &Writer) -> State {
    ["lines", "words"]
        .iter()
        .map(|c| {
            let rows = rows(store, c)
                .into_iter()
                .map(|r| {
                    (
                        r.id,
                        (r.metadata.unwrap_or_default(), r.document, r.embedding),
                    )
                })
                .collect();
            (c.to_string(), rows)
        })
        .collect()
}

/// Seed §4.3: a delta whose collection is missing is an error — the run stays pending,
/// nothing of it is written, not even its other delta — and an empty delta merges as a
/// success with 0 vectors.
#[test]
fn seed_deltas_without_the_collection_fail_and_empty_ones_merge_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    // Run 1: its `words` prefix holds the `lines` tarball.
    let bad = "0b6f2a9e-1c3d-4e5f-8a7b-9c0d1e2f3a4b";
    for c in ["lines", "words"] {
        let d = runs.join(format!("{c}/delta/{bad}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(
            Path::new(CHROMA_FIXTURES).join("delta.tar.gz"),
            d.join("delta.tar.gz"),
        )
        .unwrap();
    }
    let store = store_for_fixtures(&dir.path().join("store"));
    let (out, reporter) = compact_reporting(&store, &runs, &run_insert(bad, 5_000_000_000));
    let failed = &out.follow_ups.failed_runs;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].error.contains("words"), "{failed:?}");
    assert!(reporter.completed.is_empty());
    assert_eq!(
        rows(&store, "lines").len(),
        0,
        "nothing of a failed run is written"
    );
    assert_eq!(pending_follow_ups(&store), 1, "the run stays pending");
    // Run 2: an empty `lines` delta and the `words` directory.
    let empty = "7e3a1b2c-4d5e-4f60-9a8b-7c6d5e4f3a2b";
    let d = runs.join(format!("lines/delta/{empty}"));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(
        Path::new(SEED_FIXTURES).join("empty_lines.tar.gz"),
        d.join("delta.tar.gz"),
    )
    .unwrap();
    copy_tree(
        &Path::new(CHROMA_FIXTURES).join("delta_dir"),
        &runs.join(format!("words/delta/{empty}")),
    );
    let (out, _) = compact_reporting(&store, &runs, &run_insert(empty, 5_100_000_000));
    let merged: Vec<_> = out
        .follow_ups
        .merged_runs
        .iter()
        .filter(|r| r.run_id == empty)
        .collect();
    assert_eq!(merged.len(), 1, "{:?}", out.follow_ups);
    assert_eq!(
        (merged[0].merged["lines"], merged[0].merged["words"]),
        (0, 25)
    );
    assert_eq!(rows(&store, "lines").len(), 0);
    assert_eq!(rows(&store, "words").len(), 25);
}

#[test]
fn the_compactor_publishes_each_invocation_when_told_to() {
    let w = workload(6, 11);
    let dir = tempfile::tempdir().unwrap();
    let store = fresh(dir.path(), &w);
    let runs = LocalRuns::new(dir.path().join("runs"));
    let dest = format!("file://{}", dir.path().join("bucket").display());
    let mut reporter = CollectingReporter::default();
    let options = CompactorOptions {
        publish: Some(dest.clone()),
        ..CompactorOptions::default()
    };
    let first = Compactor::new(&store, &runs, &mut reporter, options.clone())
        .handle(&w.events[0])
        .unwrap();
    let published = first.published.expect("a publish was asked for");
    assert!(published.error.is_none(), "{published:?}");
    assert!(published.files_uploaded > 0, "{published:?}");
    let cache = tempfile::tempdir().unwrap();
    let remote =
        strata_engine::Reader::open_remote(&dest, Some(cache.path()), Default::default()).unwrap();
    for c in ["lines", "words"] {
        assert_eq!(
            remote.snapshot(c).unwrap().count(None).unwrap(),
            store.snapshot(c).unwrap().count(None).unwrap(),
            "{c}"
        );
    }
    // A directory cannot move an existing head safely: the next invocation commits its
    // edits and reports why it did not publish, instead of failing the batch.
    let second = Compactor::new(&store, &runs, &mut reporter, options)
        .handle(&w.events[1])
        .unwrap();
    let published = second.published.unwrap();
    let error = published.error.unwrap_or_default();
    assert!(error.contains("compare-and-swap"), "{error}");
    assert!(second.response.unwrap().batch_item_failures.is_empty());
}
