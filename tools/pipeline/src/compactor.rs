//! The compactor Lambda: the store's one writer. Each invocation ingests the inbox, applies
//! what its event carries (a DynamoDB stream event applied directly, or the seed's SQS
//! StreamMessage batches), works through the pending follow-ups (run merges, then label and
//! section recomputation against current state), compacts by policy and collects garbage.
//!
//! Failure semantics, fixing seed §6.2: a run whose delta is missing or broken stays pending
//! and is retried on every invocation (its error recorded on its follow-up row and in the
//! outcome), never acknowledged; an SQS message is acknowledged only when its operations and
//! follow-up requests are durable; an engine error fails the invocation, so every message is
//! retried. Recomputations write only the keys that change, stamped after everything the
//! writer has seen, so a late or repeated merge (whose operations carry the run's own
//! SequenceNumber) never reverts newer label, section or place metadata.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;
use strata_engine::{IngestReport, ObjectStorage, ReadableStore, Writer};
use strata_formats::{Metric, Op, Quantization, Seq, Target};
use strata_stream::derive::run_follow_up;
use strata_stream::ops::RecordOps;
use strata_stream::ops::{DeltaOutcome, RunError};
use strata_stream::{
    parse_event, parse_sqs_event, translate_batch, translate_message, BatchResponse, Collection,
    FollowUp, MergeRun, ReceiptKey, Translation,
};

use super::batch::{split, BatchOps};
use super::followups::{self, FOLLOW_UPS};
use super::reporter::{DeltaFailure, RunReporter};
use super::run_retention::{self, RunsCollected};
use super::runs::{merge_run, RunSource};
use super::state::StoreState;
use super::stream_processor::Failure;
use super::{LambdaError, DEFAULT_FAIL_AFTER_ATTEMPTS};

/// Settings of the compactor.
#[derive(Debug, Clone)]
pub struct CompactorOptions {
    /// Quantization of `lines` and `words` when the compactor creates them.
    pub quantization: Quantization,
    /// Most follow-up rows handled in one invocation (the rest wait for the next one).
    pub max_follow_ups: usize,
    /// Compact each collection by policy at the end.
    pub compact: bool,
    /// Collect garbage at the end.
    pub gc: bool,
    /// Failed attempts after which a run is reported FAILED (it is still retried, and a
    /// later success reported COMPLETED); at least 1.
    pub fail_after_attempts: i64,
    /// Publish the store to this object-storage URL at the end (`STRATA_PUBLISH`), so
    /// readers elsewhere see the invocation's edits (`Writer::publish`).
    pub publish: Option<String>,
    /// With `gc`, remove the files of runs merged longer ago than this from a local runs
    /// root ([`run_retention`]; default two days; `None` keeps them).
    pub run_retention: Option<Duration>,
}

impl Default for CompactorOptions {
    fn default() -> CompactorOptions {
        CompactorOptions {
            quantization: Quantization::None,
            max_follow_ups: 20_000,
            compact: true,
            gc: true,
            fail_after_attempts: DEFAULT_FAIL_AFTER_ATTEMPTS,
            publish: None,
            run_retention: Some(run_retention::DEFAULT_RUN_RETENTION),
        }
    }
}

/// What publishing at the end of an invocation did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Published {
    /// The destination.
    pub url: String,
    /// Files uploaded.
    pub files_uploaded: u64,
    /// Their bytes.
    pub bytes_uploaded: u64,
    /// Requests sent.
    pub requests: u64,
    /// Why the publish failed, if it did. The edits are committed to the store either
    /// way; the next invocation publishes them.
    pub error: Option<String>,
}

/// The object storage at `url`, opened once per process: a warm Lambda's invocations share
/// its client (connections, credentials) and its conditional-write probe, which runs once.
fn object_storage(url: &str) -> Result<Arc<ObjectStorage>, strata_engine::Error> {
    static OPENED: OnceLock<Mutex<HashMap<String, Arc<ObjectStorage>>>> = OnceLock::new();
    let mut opened = OPENED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(remote) = opened.get(url) {
        return Ok(remote.clone());
    }
    let remote = Arc::new(ObjectStorage::from_url(url)?);
    opened.insert(url.to_string(), remote.clone());
    Ok(remote)
}

/// Publish the store to `url`; a failure is reported, not raised: what the invocation
/// committed stays committed, and the next invocation publishes it.
fn publish(store: &Writer, url: &str) -> Published {
    let result = object_storage(url)
        .and_then(|remote| store.publish_to(&remote, &strata_engine::PublishOptions::default()));
    match result {
        Ok(r) => Published {
            url: url.to_string(),
            files_uploaded: r.files_uploaded,
            bytes_uploaded: r.bytes_uploaded,
            requests: r.requests,
            error: None,
        },
        Err(e) => Published {
            url: url.to_string(),
            error: Some(e.to_string()),
            ..Published::default()
        },
    }
}

/// Why a run did not merge, naming every delta that is missing or bad (`merge_run` reports
/// only those when any is); `None` when none is.
fn run_error(run: &MergeRun, outcomes: &[(Collection, DeltaOutcome)]) -> Option<String> {
    let errors: Vec<String> = outcomes
        .iter()
        .filter_map(|(c, o)| {
            let location = run
                .deltas
                .iter()
                .find(|d| d.collection == *c)
                .map_or_else(String::new, |d| d.location.raw.clone());
            let (run_id, collection) = (run.run_id.clone(), *c);
            match o {
                DeltaOutcome::Merged { .. } => None,
                DeltaOutcome::Missing => Some(RunError::DeltaMissing {
                    run_id,
                    collection,
                    location,
                }),
                DeltaOutcome::Failed { reason } => Some(RunError::DeltaFailed {
                    run_id,
                    collection,
                    location,
                    reason: reason.clone(),
                }),
            }
        })
        .map(|e| e.to_string())
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// The deltas of a run's outcomes that did not merge, with why.
fn delta_failures(outcomes: &[(Collection, DeltaOutcome)]) -> Vec<DeltaFailure> {
    outcomes
        .iter()
        .filter_map(|(c, o)| match o {
            DeltaOutcome::Merged { .. } => None,
            DeltaOutcome::Missing => {
                Some((*c, "delta download failed: no delta at the prefix".into()))
            }
            DeltaOutcome::Failed { reason } => Some((*c, format!("delta merge failed: {reason}"))),
        })
        .collect()
}

/// Create the receipt collections, [`FOLLOW_UPS`] and [`run_retention::MERGED_RUNS`] where
/// missing: `lines` and `words` 1536-d squared l2 (the seed's Chroma default), `labels`,
/// `sections`, `places`, `followups` and `merged_runs` metadata-only. Returns the names
/// created.
pub fn ensure_collections(
    store: &Writer,
    quantization: Quantization,
) -> Result<Vec<String>, strata_engine::Error> {
    let existing: BTreeSet<String> = store.collections()?.into_iter().map(|c| c.name).collect();
    let mut created = Vec::new();
    let wanted = Collection::ALL
        .iter()
        .map(|c| (c.as_str(), c.dims() as u32))
        .chain([(FOLLOW_UPS, 0), (run_retention::MERGED_RUNS, 0)]);
    for (name, dims) in wanted {
        if !existing.contains(name) {
            let q = if dims == 0 {
                Quantization::None
            } else {
                quantization
            };
            store.create_collection(name, dims, Metric::L2, q)?;
            created.push(name.to_string());
        }
    }
    Ok(created)
}

/// An inbox file registered by this invocation.
#[derive(Debug, Clone, Serialize)]
pub struct IngestedFile {
    /// Its inbox name.
    pub name: String,
    /// Its collection.
    pub collection: String,
    /// Operations in it.
    pub operations: usize,
    /// The version that registered it.
    pub version: u64,
}

/// What the event of an invocation carried.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EventSummary {
    /// `dynamodb`, `sqs` or `none` (a scheduled or empty invocation).
    pub kind: String,
    /// Records or messages in the event.
    pub records: usize,
    /// Records or messages applied.
    pub applied: usize,
    /// Records or messages with nothing to do.
    pub ignored: usize,
    /// Records or messages that failed.
    pub failures: Vec<Failure>,
}

/// A run that merged.
#[derive(Debug, Clone, Serialize)]
pub struct MergedRun {
    /// The run.
    pub run_id: String,
    /// Operations merged per collection.
    pub merged: BTreeMap<String, u64>,
}

/// A run that did not merge (it stays pending).
#[derive(Debug, Clone, Serialize)]
pub struct FailedRun {
    /// The run.
    pub run_id: String,
    /// Why.
    pub error: String,
    /// Failed attempts, this one included.
    pub attempts: i64,
}

/// What the follow-up pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FollowUpReport {
    /// Pending rows read.
    pub pending: usize,
    /// Rows done and deleted.
    pub done: usize,
    /// Runs merged.
    pub merged_runs: Vec<MergedRun>,
    /// Runs left pending.
    pub failed_runs: Vec<FailedRun>,
    /// Recomputations run (after deduplication).
    pub recomputations: usize,
    /// Patches written by them.
    pub patches: usize,
    /// Records a recomputation could not use: `(collection, id, why)`.
    pub skipped_records: Vec<(String, String, String)>,
    /// Rows that are not follow-ups: `(id, why)` (left in place for an operator).
    pub bad_rows: Vec<(String, String)>,
    /// Rows left for the next invocation (over `max_follow_ups`).
    pub remaining: usize,
    /// Runs reported FAILED by this invocation (past `fail_after_attempts`).
    pub reported_failed: Vec<String>,
    /// Run states the reporter could not write: `(run_id, why)` (a COMPLETED state that
    /// could not be written keeps its run pending, and is also in `failed_runs`).
    pub report_errors: Vec<(String, String)>,
}

/// A compaction that ran.
#[derive(Debug, Clone, Serialize)]
pub struct Compaction {
    /// The collection.
    pub collection: String,
    /// The committed version.
    pub version: Option<u64>,
    /// Deltas folded.
    pub deltas_folded: usize,
    /// Segments read and written.
    pub segments: (usize, usize),
    /// Rows written.
    pub rows: u64,
}

/// What one compactor invocation did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CompactorOutcome {
    /// The Lambda response: `batchItemFailures` naming failed SQS message ids or DynamoDB
    /// SequenceNumbers; `None` for a scheduled invocation (no records).
    pub response: Option<BatchResponse>,
    /// Collections created.
    pub created: Vec<String>,
    /// Inbox files registered.
    pub ingested: Vec<IngestedFile>,
    /// Inbox files seen again (already registered).
    pub already_ingested: usize,
    /// Unsealed inbox files (a producer died mid-write): ignored.
    pub torn: Vec<String>,
    /// Inbox files that cannot be registered: `(name, why)`, left for an operator.
    pub inbox_failed: Vec<(String, String)>,
    /// The event.
    pub event: EventSummary,
    /// The follow-ups.
    pub follow_ups: FollowUpReport,
    /// Compactions run.
    pub compactions: Vec<Compaction>,
    /// Bytes freed by garbage collection.
    pub gc_freed_bytes: u64,
    /// Merged runs whose files were removed after their retention (with `gc`).
    pub runs_collected: RunsCollected,
    /// The publish to object storage (with `publish` set).
    pub published: Option<Published>,
}

#[derive(serde::Deserialize)]
struct Probe {
    #[serde(rename = "Records", default)]
    records: Vec<ProbeRecord>,
}

#[derive(serde::Deserialize)]
struct ProbeRecord {
    #[serde(rename = "eventSource", alias = "EventSource", default)]
    source: Option<String>,
}

/// The writer's side of the pipeline; see the module documentation.
pub struct Compactor<'a> {
    store: &'a Writer,
    runs: &'a dyn RunSource,
    reporter: &'a mut dyn RunReporter,
    options: CompactorOptions,
}

impl<'a> Compactor<'a> {
    /// A compactor over a store opened as writer.
    pub fn new(
        store: &'a Writer,
        runs: &'a dyn RunSource,
        reporter: &'a mut dyn RunReporter,
        options: CompactorOptions,
    ) -> Compactor<'a> {
        Compactor {
            store,
            runs,
            reporter,
            options,
        }
    }

    /// Handle one invocation: `event` is a DynamoDB stream event, an SQS event of
    /// StreamMessages, or anything else (`{}`, a schedule): then only the inbox, the
    /// follow-ups, compaction and GC.
    pub fn handle(&mut self, event: &[u8]) -> Result<CompactorOutcome, LambdaError> {
        self.handle_kind(event_kind(event)?, event)
    }

    /// [`Compactor::handle`] for an event whose kind was already read.
    pub(crate) fn handle_kind(
        &mut self,
        kind: EventKind,
        event: &[u8],
    ) -> Result<CompactorOutcome, LambdaError> {
        let mut out = CompactorOutcome {
            created: ensure_collections(self.store, self.options.quantization)?,
            ..CompactorOutcome::default()
        };
        self.ingest(&mut out)?;
        out.event = match kind {
            EventKind::Dynamodb => {
                let (summary, response) = self.apply_dynamodb(event)?;
                out.response = Some(response);
                summary
            }
            EventKind::Sqs => {
                let (summary, response) = self.apply_sqs(event)?;
                out.response = Some(response);
                summary
            }
            EventKind::None => EventSummary {
                kind: "none".into(),
                ..EventSummary::default()
            },
        };
        out.follow_ups = self.process_follow_ups()?;
        if self.options.compact {
            for c in self.store.collections()? {
                if let Some(r) = self.store.maybe_compact(&c.name)? {
                    out.compactions.push(Compaction {
                        collection: c.name,
                        version: r.version,
                        deltas_folded: r.deltas_folded,
                        segments: (r.segments_in, r.segments_out),
                        rows: r.rows_out,
                    });
                }
            }
        }
        if self.options.gc {
            out.gc_freed_bytes = self.store.gc()?.bytes_freed;
            if let Some(retention) = self.options.run_retention {
                out.runs_collected =
                    run_retention::collect(self.store, self.runs, retention, crate::now_ms())?;
            }
        }
        if let Some(url) = &self.options.publish {
            out.published = Some(publish(self.store, url));
        }
        Ok(out)
    }

    fn ingest(&mut self, out: &mut CompactorOutcome) -> Result<(), LambdaError> {
        let IngestReport {
            ingested,
            already,
            torn,
            failed,
        } = self.store.ingest_inbox()?;
        out.ingested = ingested
            .into_iter()
            .map(|(name, collection, operations, version)| IngestedFile {
                name,
                collection,
                operations,
                version,
            })
            .collect();
        out.already_ingested = already;
        out.torn = torn;
        out.inbox_failed = failed;
        Ok(())
    }

    /// Apply translated records directly (their operations carry their seqs), follow-up
    /// requests included; durable when this returns.
    pub fn apply_records<'r>(
        &mut self,
        records: impl IntoIterator<Item = &'r RecordOps>,
    ) -> Result<usize, LambdaError> {
        let ops = BatchOps::collect(records);
        for (collection, ops) in ops.writes.iter() {
            self.store.write_sequenced(collection, ops.clone())?;
        }
        Ok(ops.len())
    }

    /// Apply a DynamoDB stream event directly (the compactor as the stream's consumer, or
    /// `ingest-events`): the answer fails the SequenceNumber of every record that could not
    /// be read or translated.
    fn apply_dynamodb(
        &mut self,
        event: &[u8],
    ) -> Result<(EventSummary, BatchResponse), LambdaError> {
        let batch = parse_event(event)?;
        let translated = translate_batch(&batch);
        let (applied, ignored) = split(&translated);
        self.apply_records(applied.iter().copied())?;
        let summary = EventSummary {
            kind: "dynamodb".into(),
            records: batch.len(),
            applied: applied.len(),
            ignored,
            failures: translated.failures.iter().map(Failure::from).collect(),
        };
        Ok((summary, translated.batch_response()))
    }

    /// One attempt at a pending run: `started` on its first attempt, the merge, then
    /// `completed` once it is durable, or a failed attempt recorded (and `failed` reported
    /// past the configured number). Returns whether the run is done.
    fn merge_one(
        &mut self,
        p: &followups::Pending,
        run: &MergeRun,
        report: &mut FollowUpReport,
        attempts: &mut Vec<Op>,
    ) -> Result<bool, LambdaError> {
        if p.attempts == 0 {
            if let Err(e) = self.reporter.started(run) {
                report.report_errors.push((run.run_id.clone(), e));
            }
        }
        let outcome = merge_run(self.store, self.runs, run)?;
        let result = match run_error(run, &outcome) {
            Some(e) => Err(e),
            None => run.complete(&outcome).map_err(|e| e.to_string()),
        };
        let result = result.and_then(|c| match self.reporter.completed(run, &c) {
            Ok(()) => Ok(c),
            Err(e) => {
                report.report_errors.push((run.run_id.clone(), e.clone()));
                Err(format!("reporting the run COMPLETED: {e}"))
            }
        });
        match result {
            Ok(c) => {
                report.merged_runs.push(MergedRun {
                    run_id: c.run_id,
                    merged: c
                        .merged
                        .into_iter()
                        .map(|(col, n)| (col.as_str().to_string(), n))
                        .collect(),
                });
                Ok(true)
            }
            Err(error) => {
                attempts.push(followups::failed_attempt(p, &error));
                let tries = p.attempts + 1;
                if tries >= self.options.fail_after_attempts.max(1) {
                    let failures = delta_failures(&outcome);
                    if !failures.is_empty() {
                        match self.reporter.failed(run, &failures, tries) {
                            Ok(()) => report.reported_failed.push(run.run_id.clone()),
                            Err(e) => report.report_errors.push((run.run_id.clone(), e)),
                        }
                    }
                }
                report.failed_runs.push(FailedRun {
                    run_id: run.run_id.clone(),
                    error,
                    attempts: tries,
                });
                Ok(false)
            }
        }
    }

    /// Work through the pending follow-ups, oldest first: merges, then the recomputations
    /// (deduplicated per word and receipt), then the done rows are deleted.
    pub fn process_follow_ups(&mut self) -> Result<FollowUpReport, LambdaError> {
        let mut report = FollowUpReport::default();
        let snap = self.store.snapshot(FOLLOW_UPS)?;
        report.remaining = snap.rows()?.saturating_sub(self.options.max_follow_ups);
        let rows = snap.get_where(
            None,
            Some(self.options.max_follow_ups),
            0,
            strata_engine::Include {
                embeddings: false,
                documents: false,
                metadatas: true,
            },
        )?;
        drop(snap);
        report.pending = rows.len();
        let mut pending = Vec::with_capacity(rows.len());
        for r in rows {
            match followups::decode(&r.id, &r.metadata.unwrap_or_default()) {
                Ok(p) => pending.push(p),
                Err(why) => report.bad_rows.push((r.id, why)),
            }
        }
        let mut done: Vec<String> = Vec::new();
        let mut merged: Vec<Op> = Vec::new();
        let mut attempts: Vec<Op> = Vec::new();
        let mut work = Recomputations::default();
        for p in &pending {
            match &p.follow_up {
                FollowUp::MergeRun(run) => {
                    if self.merge_one(p, run, &mut report, &mut attempts)? {
                        run.after_merge().iter().for_each(|f| work.add(f));
                        merged.push(run_retention::merged(run, crate::now_ms()));
                        done.push(p.id.clone());
                    }
                }
                other => {
                    work.add(other);
                    done.push(p.id.clone());
                }
            }
        }
        let reader = StoreState::new(self.store);
        let mut patches: BTreeMap<&'static str, Vec<Op>> = BTreeMap::new();
        for f in work.into_list() {
            report.recomputations += 1;
            let Some(derived) = run_follow_up(&reader, &f, strata_formats::Seq::ZERO) else {
                continue;
            };
            let derived = derived.map_err(|e| LambdaError::Derive(e.to_string()))?;
            for s in derived.skipped {
                report
                    .skipped_records
                    .push((s.collection.as_str().to_string(), s.id, s.reason));
            }
            for op in derived.ops {
                patches
                    .entry(op.collection.as_str())
                    .or_default()
                    .push(op.op.op);
            }
        }
        for (collection, ops) in patches {
            report.patches += ops.len();
            // Stamped by the writer: after everything seen, so no late operation reverts it.
            self.store.write(collection, ops)?;
        }
        if !attempts.is_empty() {
            self.store.write(FOLLOW_UPS, attempts)?;
        }
        if !merged.is_empty() {
            // Before the follow-up rows go: a crash in between repeats the merge, whose
            // row is written again.
            self.store.write(run_retention::MERGED_RUNS, merged)?;
        }
        if !done.is_empty() {
            report.done = done.len();
            self.store
                .write(FOLLOW_UPS, vec![Op::Delete(Target::Ids(done))])?;
        }
        Ok(report)
    }
}

/// Recomputations of a pass, deduplicated: a receipt-wide label recomputation covers its
/// words'.
#[derive(Default)]
struct Recomputations {
    receipt_labels: BTreeSet<ReceiptKey>,
    sections: BTreeSet<ReceiptKey>,
    /// Receipts whose place to recompute: `true` when a removal asked for it
    /// ([`FollowUp::ClearPlace`], which covers a plain recomputation).
    places: BTreeMap<ReceiptKey, bool>,
    words: BTreeSet<strata_stream::WordKey>,
}

impl Recomputations {
    fn add(&mut self, f: &FollowUp) {
        match f {
            FollowUp::MergeRun(_) => {}
            FollowUp::RecomputeWordLabels(w) => {
                self.words.insert(w.clone());
            }
            FollowUp::RecomputeReceiptLabels(r) => {
                self.receipt_labels.insert(r.clone());
            }
            FollowUp::RecomputeSections(r) => {
                self.sections.insert(r.clone());
            }
            FollowUp::RecomputePlace(r) => {
                self.places.entry(r.clone()).or_insert(false);
            }
            FollowUp::ClearPlace(r) => {
                self.places.insert(r.clone(), true);
            }
        }
    }

    fn into_list(self) -> Vec<FollowUp> {
        let mut out: Vec<FollowUp> = Vec::new();
        out.extend(
            self.receipt_labels
                .iter()
                .cloned()
                .map(FollowUp::RecomputeReceiptLabels),
        );
        out.extend(
            self.words
                .into_iter()
                .filter(|w| !self.receipt_labels.contains(&w.receipt()))
                .map(FollowUp::RecomputeWordLabels),
        );
        out.extend(self.sections.into_iter().map(FollowUp::RecomputeSections));
        out.extend(self.places.into_iter().map(|(r, removed)| match removed {
            true => FollowUp::ClearPlace(r),
            false => FollowUp::RecomputePlace(r),
        }));
        out
    }
}

pub(crate) enum EventKind {
    Dynamodb,
    Sqs,
    None,
}

pub(crate) fn event_kind(event: &[u8]) -> Result<EventKind, LambdaError> {
    if event.iter().all(u8::is_ascii_whitespace) {
        return Ok(EventKind::None);
    }
    let probe: Probe = serde_json::from_slice(event).map_err(|e| LambdaError::Event {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let source = probe.records.first().and_then(|r| r.source.as_deref());
    Ok(match source {
        Some("aws:sqs") => EventKind::Sqs,
        Some(_) => EventKind::Dynamodb,
        None if probe.records.is_empty() => EventKind::None,
        None => EventKind::Dynamodb,
    })
}

impl Compactor<'_> {
    /// The seq after everything the store has seen, in every collection: SQS messages carry
    /// no SequenceNumber, so they are stamped from here, in the order of
    /// [`strata_stream::dedupe_and_order`].
    fn stamp_base(&self) -> Result<Seq, LambdaError> {
        let mut base = Seq::ZERO;
        for c in self.store.collections()? {
            base = base.max(self.store.snapshot(&c.name)?.version().seq_watermark);
        }
        Ok(base)
    }

    /// Apply an SQS batch of the seed's StreamMessages: each change (the copies of one
    /// message across queues and redeliveries) is translated once with a stamped seq; the
    /// answer fails every message id of a record that cannot be read or a change that
    /// cannot be translated, and nothing else. Applied changes are durable when this
    /// returns; a store error fails the whole invocation (every message is retried).
    fn apply_sqs(&mut self, event: &[u8]) -> Result<(EventSummary, BatchResponse), LambdaError> {
        let batch = parse_sqs_event(event)?;
        let mut summary = EventSummary {
            kind: "sqs".into(),
            records: batch.records.len(),
            ..EventSummary::default()
        };
        for r in batch.failures() {
            if let Err(e) = &r.message {
                summary.failures.push(Failure {
                    index: r.index,
                    sequence_number: r.message_id.clone(),
                    error: e.to_string(),
                });
            }
        }
        let mut seq = self.stamp_base()?;
        let changes = batch.changes();
        let mut applied = Vec::new();
        let mut failed = Vec::new();
        for change in &changes {
            seq = seq.next();
            match translate_message(&change.message, seq) {
                Ok(Translation::Apply(r)) => {
                    summary.applied += change.message_ids.len();
                    applied.push(r);
                }
                Ok(Translation::Ignore(_)) => summary.ignored += change.message_ids.len(),
                Err(e) => {
                    for (index, id) in change.indexes.iter().zip(&change.message_ids) {
                        summary.failures.push(Failure {
                            index: *index,
                            sequence_number: Some(id.clone()),
                            error: e.to_string(),
                        });
                    }
                    failed.push(change);
                }
            }
        }
        self.apply_records(applied.iter())?;
        summary.failures.sort_by_key(|f| f.index);
        Ok((summary, batch.batch_response(failed)))
    }
}
