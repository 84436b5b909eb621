//! The stream processor Lambda: a DynamoDB stream event becomes sealed delta files in the
//! store's inbox, one per collection the event touches (a delta holds one collection), the
//! follow-up requests last. It needs no lock and no manifest (it never opens RocksDB); the
//! compactor ingests the files. Records that cannot be read or translated are answered as
//! `batchItemFailures` (itemIdentifier = SequenceNumber) and the others are written, so
//! one bad record does not hold back its batch; the response is returned only once every
//! file is durable, and a failed write fails the invocation (Lambda retries the batch, and
//! the repeated operations carry the same SequenceNumbers, so applying them twice changes
//! nothing).

use std::path::{Path, PathBuf};

use serde::Serialize;
use strata_engine::write_inbox_delta;
use strata_formats::DeltaHeader;
use strata_stream::ops::FailedRecord;
use strata_stream::{parse_event, translate_batch, BatchResponse, Collection};

use super::batch::{split, BatchOps};
use super::LambdaError;

/// What one invocation did.
#[derive(Debug, Clone, Serialize)]
pub struct StreamOutcome {
    /// The Lambda response (`batchItemFailures`).
    pub response: BatchResponse,
    /// Records in the event.
    pub records: usize,
    /// Records that became operations.
    pub applied: usize,
    /// Records with nothing to do (other entities, unchanged fields).
    pub ignored: usize,
    /// Records that failed, with why.
    pub failures: Vec<Failure>,
    /// Operations written (follow-up rows included).
    pub operations: usize,
    /// The inbox files written.
    pub files: Vec<PathBuf>,
}

/// A failed record, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// Index in the event's `Records`.
    pub index: usize,
    /// Its SequenceNumber, if known.
    pub sequence_number: Option<String>,
    /// What was wrong.
    pub error: String,
}

impl From<&FailedRecord> for Failure {
    fn from(f: &FailedRecord) -> Failure {
        Failure {
            index: f.index,
            sequence_number: f.sequence_number.clone(),
            error: f.error.clone(),
        }
    }
}

fn dims(collection: &str) -> u32 {
    Collection::parse(collection).map_or(0, |c| c.dims() as u32)
}

/// Handle one event: translate it and write its deltas into `store`'s inbox as `producer`
/// (1–64 characters of `A-Z a-z 0-9 _ -`, unique per concurrent invocation).
pub fn process_stream_event(
    store: &Path,
    producer: &str,
    event: &[u8],
) -> Result<StreamOutcome, LambdaError> {
    let batch = parse_event(event)?;
    let translated = translate_batch(&batch);
    let (applied, ignored) = split(&translated);
    let ops = BatchOps::collect(applied.iter().copied());
    let mut files = Vec::new();
    for (collection, ops) in &ops.writes {
        let header = DeltaHeader {
            collection: (*collection).to_string(),
            dims: dims(collection),
            producer: producer.to_string(),
            first_seq: ops[0].seq,
            created_ms: super::now_ms(),
        };
        files.push(write_inbox_delta(store, producer, &header, ops)?);
    }
    Ok(StreamOutcome {
        response: translated.batch_response(),
        records: batch.len(),
        applied: applied.len(),
        ignored,
        failures: translated.failures.iter().map(Failure::from).collect(),
        operations: ops.len(),
        files,
    })
}
