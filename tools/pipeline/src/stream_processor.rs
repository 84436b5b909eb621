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
use strata_formats::{DeltaHeader, DeltaWriter, Operation};
use strata_storage::inbox::publish_inbox_delta;
use strata_storage::LocalStorage;
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

/// One collection's operations as a sealed delta of `producer`.
fn seal(collection: &str, producer: &str, ops: &[Operation]) -> Result<Vec<u8>, LambdaError> {
    let header = DeltaHeader {
        collection: collection.to_string(),
        dims: dims(collection),
        producer: producer.to_string(),
        first_seq: ops[0].seq,
        created_ms: super::now_ms(),
    };
    Ok(DeltaWriter::encode(&header, ops)?)
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
    if !ops.is_empty() {
        let storage = LocalStorage::new(store)?;
        for (collection, ops) in &ops.writes {
            let sealed = seal(collection, producer, ops)?;
            let name = publish_inbox_delta(&storage, producer, &sealed)?;
            files.push(store.join(name));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use strata_formats::decode_delta;
    use strata_testkit::workload::{Workload, WorkloadConfig};

    /// What the stream processor writes, read back with the formats alone: one sealed delta
    /// per collection, named for the producer, holding every operation, follow-ups last.
    #[test]
    fn an_event_becomes_one_sealed_inbox_delta_per_collection() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let w = Workload::generate(&WorkloadConfig {
            receipts: 2,
            ..WorkloadConfig::default()
        });
        let out = process_stream_event(&store, "stream-t1", &w.events[0]).unwrap();
        assert!(out.failures.is_empty(), "{:?}", out.failures);
        assert!(out.files.len() > 1, "{:?}", out.files);
        let mut collections = Vec::new();
        let mut operations = 0;
        for file in &out.files {
            let rel = file.strip_prefix(&store).unwrap();
            assert!(rel.starts_with("inbox"), "{}", file.display());
            let name = rel.file_name().unwrap().to_str().unwrap();
            assert!(
                name.starts_with("stream-t1-") && name.ends_with(".delta"),
                "{name}"
            );
            let delta = decode_delta(&std::fs::read(file).unwrap()).unwrap();
            assert!(delta.is_sealed(), "{name}");
            assert_eq!(delta.header.producer, "stream-t1");
            assert_eq!(delta.header.dims, dims(&delta.header.collection));
            operations += delta.ops.len();
            collections.push(delta.header.collection);
        }
        assert_eq!(operations, out.operations);
        assert_eq!(collections.last().map(String::as_str), Some("followups"));
        let mut distinct = collections.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), collections.len(), "{collections:?}");
    }

    /// An event with nothing to write leaves the store untouched (not even created), and a
    /// bad producer name is refused before anything is written.
    #[test]
    fn nothing_to_write_touches_nothing_and_bad_producers_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let out = process_stream_event(&store, "stream-t2", b"{\"Records\": []}").unwrap();
        assert_eq!((out.records, out.operations, out.files.len()), (0, 0, 0));
        assert!(!store.exists());
        let w = Workload::generate(&WorkloadConfig {
            receipts: 1,
            ..WorkloadConfig::default()
        });
        let err = process_stream_event(&store, "bad/name", &w.events[0]).unwrap_err();
        assert!(matches!(err, LambdaError::Storage(_)), "{err}");
        let inbox = std::fs::read_dir(store.join("inbox")).map_or(0, |d| d.count());
        assert_eq!(inbox, 0, "nothing is published for a refused producer");
    }
}
