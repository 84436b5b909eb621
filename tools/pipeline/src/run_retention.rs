//! Run deltas collected after their retention period. A run reported COMPLETED leaves a
//! row in the metadata-only collection [`MERGED_RUNS`] (its delta locations and when it
//! merged), written with the deletion of its follow-up row; once the retention period has
//! passed, a compactor invocation that collects garbage removes the run's files through its
//! [`RunSource`] and then the row. The period must outlast the redeliveries of the run's
//! INSERT (DynamoDB streams keep records 24 hours): one arriving later finds its follow-up
//! row shadowed while the store's horizon holds, and after that a missing delta, which
//! fails the run again instead of acknowledging it.
//!
//! Only runs under a local root are removed: in S3 they live in the producer's bucket,
//! whose lifecycle rule expires them (README, "Run deltas").

use std::time::Duration;

use strata_engine::{Include, ReadableStore, Writer};
use strata_formats::{Filter, MetaValue, Metadata, Op, Record, Target};
use strata_stream::ops::DeltaLocation;
use strata_stream::MergeRun;

use super::runs::RunSource;
use super::LambdaError;

/// The collection of merged runs awaiting collection (metadata-only).
pub const MERGED_RUNS: &str = "merged_runs";

/// Default retention of merged run deltas: two days, the store's default horizon.
pub const DEFAULT_RUN_RETENTION: Duration = Duration::from_secs(48 * 3600);

/// Most runs collected in one invocation (the rest wait for the next).
const MAX_COLLECTED: usize = 1000;

/// The row recording that `run` merged at `now_ms`.
pub fn merged(run: &MergeRun, now_ms: u64) -> Op {
    let locations = run.deltas.iter().map(|d| d.location.raw.clone()).collect();
    let mut metadata = Metadata::new();
    metadata.insert("locations".into(), MetaValue::StrList(locations));
    metadata.insert(
        "merged_ms".into(),
        MetaValue::Int(i64::try_from(now_ms).unwrap_or(i64::MAX)),
    );
    Op::Upsert(Record {
        id: run.run_id.clone(),
        embedding: None,
        document: None,
        metadata,
    })
}

/// What a collection of merged runs did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunsCollected {
    /// Runs whose files were removed (or found gone).
    pub runs: usize,
    /// Files removed.
    pub files: u64,
    /// Runs whose files could not be removed: `(run id, why)`; their rows stay, so the
    /// next invocation tries again.
    pub errors: Vec<(String, String)>,
}

/// Remove the files of runs merged more than `retention` before `now_ms`.
pub fn collect(
    store: &Writer,
    runs: &dyn RunSource,
    retention: Duration,
    now_ms: u64,
) -> Result<RunsCollected, LambdaError> {
    let mut out = RunsCollected::default();
    let cutoff = now_ms.saturating_sub(u64::try_from(retention.as_millis()).unwrap_or(u64::MAX));
    let filter = Filter::parse(&format!(r#"{{"merged_ms": {{"$lt": {cutoff}}}}}"#))
        .map_err(|e| LambdaError::Derive(format!("merged runs filter: {e}")))?;
    let rows = store.snapshot(MERGED_RUNS)?.get_where(
        Some(&filter),
        Some(MAX_COLLECTED),
        0,
        Include {
            embeddings: false,
            documents: false,
            metadatas: true,
        },
    )?;
    let mut done = Vec::new();
    for row in rows {
        let meta = row.metadata.unwrap_or_default();
        let Some(MetaValue::StrList(locations)) = meta.get("locations") else {
            out.errors.push((row.id, "no `locations` list".into()));
            continue;
        };
        let removed: Result<u64, String> = locations
            .iter()
            .map(|raw| {
                let location = DeltaLocation::parse(raw)
                    .ok_or_else(|| format!("{raw:?} is not a delta location"))?;
                runs.remove(&location)
            })
            .sum();
        match removed {
            Ok(n) => {
                out.runs += 1;
                out.files += n;
                done.push(row.id);
            }
            Err(e) => out.errors.push((row.id, e)),
        }
    }
    if !done.is_empty() {
        store.write(MERGED_RUNS, vec![Op::Delete(Target::Ids(done))])?;
    }
    Ok(out)
}
