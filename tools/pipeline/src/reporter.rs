//! What the receipts system's waiters learn about a compaction run: a [`RunReporter`] is
//! told when a run's merge starts, when every delta of it is merged and durable, and when
//! it has failed too often. The compactor calls it synchronously from its follow-up pass;
//! [`CollectingReporter`] keeps what it was told (the local default and the tests' fake),
//! `dynamo_runs::DynamoRunReporter` writes the COMPACTION_RUN item in DynamoDB (seed §2.6).

use serde::Serialize;
use strata_stream::ops::RunCompleted;
use strata_stream::{Collection, MergeRun};

/// One delta of a run that did not merge: its collection and why (missing, or the error).
pub type DeltaFailure = (Collection, String);

/// Told about the state of compaction runs. Every method is called after the fact it
/// reports is true: `completed` only once the merged operations are durable and
/// published in a committed version.
pub trait RunReporter {
    /// The first attempt at merging the run starts. An error is recorded in the outcome
    /// (`report_errors`) and the merge goes on: the state is informational.
    fn started(&mut self, run: &MergeRun) -> Result<(), String>;

    /// The run is merged and committed; an error keeps the run pending (it is merged again,
    /// which changes nothing, and reported again next time).
    fn completed(&mut self, run: &MergeRun, done: &RunCompleted) -> Result<(), String>;

    /// The run has now failed `attempts` times, at least the configured number
    /// (`CompactorOptions::fail_after_attempts`): `failures` are its deltas that are
    /// missing or bad. The run stays pending and is still retried; a later success is
    /// reported as `completed`. An error is recorded in the outcome.
    fn failed(
        &mut self,
        run: &MergeRun,
        failures: &[DeltaFailure],
        attempts: i64,
    ) -> Result<(), String>;
}

/// One thing a [`CollectingReporter`] was told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RunEvent {
    /// `started`.
    Processing {
        /// The run.
        run_id: String,
    },
    /// `completed`.
    Completed {
        /// The run.
        run_id: String,
        /// Operations merged per collection.
        merged: Vec<(Collection, u64)>,
    },
    /// `failed`.
    Failed {
        /// The run.
        run_id: String,
        /// The deltas that did not merge, with why.
        failures: Vec<DeltaFailure>,
        /// Failed attempts so far.
        attempts: i64,
    },
}

/// A reporter that keeps what it was told, in order (the local default; tests read it).
#[derive(Debug, Default, Clone)]
pub struct CollectingReporter {
    /// The completed runs, in order.
    pub completed: Vec<RunCompleted>,
    /// Everything it was told, in order.
    pub events: Vec<RunEvent>,
}

impl RunReporter for CollectingReporter {
    fn started(&mut self, run: &MergeRun) -> Result<(), String> {
        self.events.push(RunEvent::Processing {
            run_id: run.run_id.clone(),
        });
        Ok(())
    }

    fn completed(&mut self, _run: &MergeRun, done: &RunCompleted) -> Result<(), String> {
        self.completed.push(done.clone());
        self.events.push(RunEvent::Completed {
            run_id: done.run_id.clone(),
            merged: done.merged.clone(),
        });
        Ok(())
    }

    fn failed(
        &mut self,
        run: &MergeRun,
        failures: &[DeltaFailure],
        attempts: i64,
    ) -> Result<(), String> {
        self.events.push(RunEvent::Failed {
            run_id: run.run_id.clone(),
            failures: failures.to_vec(),
            attempts,
        });
        Ok(())
    }
}

/// A reporter that logs every state as a `tracing` event (JSON lines in the Lambda): the
/// compactor Lambda's reporter when no `STRATA_RUNS_TABLE` is set.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogReporter;

impl RunReporter for LogReporter {
    fn started(&mut self, run: &MergeRun) -> Result<(), String> {
        tracing::info!(
            run_id = %run.run_id,
            image_id = %run.receipt.image_id,
            receipt_id = run.receipt.receipt_id,
            "compaction run PROCESSING"
        );
        Ok(())
    }

    fn completed(&mut self, run: &MergeRun, done: &RunCompleted) -> Result<(), String> {
        let merged = serde_json::to_string(&done.merged).unwrap_or_default();
        tracing::info!(
            run_id = %run.run_id,
            image_id = %run.receipt.image_id,
            receipt_id = run.receipt.receipt_id,
            merged = %merged,
            "compaction run COMPLETED"
        );
        Ok(())
    }

    fn failed(
        &mut self,
        run: &MergeRun,
        failures: &[DeltaFailure],
        attempts: i64,
    ) -> Result<(), String> {
        let failures = serde_json::to_string(failures).unwrap_or_default();
        tracing::warn!(
            run_id = %run.run_id,
            image_id = %run.receipt.image_id,
            receipt_id = run.receipt.receipt_id,
            attempts,
            failures = %failures,
            "compaction run FAILED"
        );
        Ok(())
    }
}
