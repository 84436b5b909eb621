//! strata-pipeline: the receipt pipeline's two Lambda entry points, as plain functions over
//! event bytes so that `strata lambda-invoke`, the tests and the two runtime binaries
//! (`strata-stream-lambda`, `strata-compactor-lambda`) share them:
//!
//! - [`stream_processor`]: a DynamoDB stream event → sealed deltas in the store's inbox (no
//!   lock, no manifest), failed records answered as `batchItemFailures`;
//! - `compactor`: the single writer — ingests the inbox, applies SQS StreamMessage
//!   batches or DynamoDB events directly, merges compaction runs (`runs`, `object_runs`),
//!   recomputes derived metadata through `state`, compacts and collects garbage.
//!
//! Run states reach the receipts system's waiters through a `reporter::RunReporter`
//! (`dynamo_runs` writes the COMPACTION_RUN item); the binaries emit the seed's CloudWatch
//! metrics as EMF lines ([`metrics`]) and log JSON ([`logs`]).
//!
//! Follow-up work travels as rows of a metadata-only collection ([`followups`]), so it is
//! as durable as the operations it follows; [`batch`] groups a batch's operations by
//! collection. [`invoke_stream`] (and, with the compactor, `invoke`) runs a role on one
//! event with settings from [`Settings`].
//!
//! # Features
//!
//! `compactor` (default) adds the compactor's modules, which open the store through
//! `strata-engine` (RocksDB) and read run deltas through `object_store`. Without it the
//! crate is what the stream Lambda links: formats, the stream translation and the storage
//! layer, no RocksDB, no engine, no clap (`cargo build --release -p strata-pipeline
//! --no-default-features --bin strata-stream-lambda`).

#![deny(missing_docs)]

pub mod batch;
#[cfg(feature = "compactor")]
pub mod compactor;
#[cfg(feature = "compactor")]
pub mod dynamo_runs;
pub mod followups;
#[cfg(feature = "compactor")]
mod invoke;
pub mod logs;
pub mod metrics;
#[cfg(feature = "compactor")]
pub mod object_runs;
#[cfg(feature = "compactor")]
pub mod reporter;
#[cfg(feature = "compactor")]
pub mod run_layout;
#[cfg(feature = "compactor")]
pub mod run_retention;
#[cfg(feature = "compactor")]
pub mod runs;
#[cfg(feature = "compactor")]
pub mod seed_runs;
#[cfg(feature = "compactor")]
pub mod state;
pub mod stream_processor;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use strata_formats::Quantization;

#[cfg(feature = "compactor")]
pub use compactor::{Compactor, CompactorOptions, CompactorOutcome};
#[cfg(feature = "compactor")]
pub use invoke::{invoke, run_source, Outcome};
#[cfg(feature = "compactor")]
pub use reporter::{CollectingReporter, LogReporter, RunEvent, RunReporter};
#[cfg(feature = "compactor")]
pub use runs::{LocalRuns, RunSource};
pub use stream_processor::{process_stream_event, StreamOutcome};

/// Why an invocation failed as a whole (Lambda then retries the whole event). Which
/// variants exist depends on the features (`Engine` comes with `compactor`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LambdaError {
    /// The event is not one the handler can read.
    #[error("event: {0}")]
    Stream(#[from] strata_stream::EventError),
    /// The SQS event is not one the compactor can read.
    #[error("event: {0}")]
    Sqs(#[from] strata_stream::SqsEventError),
    /// The event is not JSON.
    #[error("event at line {line} column {column}: {message}")]
    Event {
        /// Line of the error.
        line: usize,
        /// Column.
        column: usize,
        /// What was wrong.
        message: String,
    },
    /// The store failed.
    #[cfg(feature = "compactor")]
    #[error("store: {0}")]
    Engine(#[from] strata_engine::Error),
    /// Writing an inbox delta failed.
    #[error("store: {0}")]
    Storage(#[from] strata_storage::StorageError),
    /// An operation or a delta header could not be encoded into a delta.
    #[error("delta: {0}")]
    Delta(#[from] strata_formats::delta::DeltaWriteError),
    /// The settings are unusable.
    #[error("settings: {0}")]
    Settings(String),
    /// A recomputation could not read current state.
    #[error("recomputing derived metadata: {0}")]
    Derive(String),
}

/// Which entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// DynamoDB stream event → inbox deltas.
    Stream,
    /// Inbox, SQS batches, follow-ups, compaction, GC.
    Compactor,
}

/// Where the handlers work, read from the environment by the runtime binary.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The store directory (`STRATA_STORE`, on EFS in AWS).
    pub store: PathBuf,
    /// Root of the embedding producer's run deltas (`STRATA_RUNS`, default
    /// `{store}/runs`): a directory, or `s3://bucket` for the seed's producer, whose
    /// prefixes are relative to the bucket root (see `run_source`).
    pub runs: PathBuf,
    /// Quantization of `lines`/`words` when the compactor creates them
    /// (`STRATA_QUANTIZE`: none, i8, 1bit; default none).
    pub quantization: Quantization,
    /// The DynamoDB table of the COMPACTION_RUN items (`STRATA_RUNS_TABLE`): when set, the
    /// compactor Lambda writes run states there; unset, it logs them.
    pub runs_table: Option<String>,
    /// Failed attempts after which a run is reported FAILED (`STRATA_RUN_FAIL_AFTER`,
    /// default 5, at least 1).
    pub fail_after_attempts: i64,
    /// Where the compactor publishes the store after each invocation (`STRATA_PUBLISH`:
    /// `s3://BUCKET/PREFIX`); unset, it does not publish.
    pub publish: Option<String>,
}

/// Failed attempts after which a run is reported FAILED, unless `STRATA_RUN_FAIL_AFTER`
/// says otherwise.
pub const DEFAULT_FAIL_AFTER_ATTEMPTS: i64 = 5;

impl Settings {
    /// Settings for a store, runs under `{store}/runs`.
    pub fn for_store(store: impl Into<PathBuf>) -> Settings {
        let store = store.into();
        Settings {
            runs: store.join("runs"),
            store,
            quantization: Quantization::None,
            runs_table: None,
            fail_after_attempts: DEFAULT_FAIL_AFTER_ATTEMPTS,
            publish: None,
        }
    }
}

impl Settings {
    /// Settings from the environment: `STRATA_STORE` (required), `STRATA_RUNS`,
    /// `STRATA_QUANTIZE`, `STRATA_RUNS_TABLE`, `STRATA_RUN_FAIL_AFTER`, `STRATA_PUBLISH`. The error names the
    /// variable and what was wrong.
    pub fn from_env() -> Result<Settings, String> {
        Settings::from_vars(|name| std::env::var(name).ok())
    }

    /// Settings from a lookup of variables (what [`Settings::from_env`] reads).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let store = var("STRATA_STORE")
            .filter(|s| !s.is_empty())
            .ok_or("STRATA_STORE is not set: the store directory (an EFS mount in AWS)")?;
        let mut s = Settings::for_store(store);
        if let Some(r) = var("STRATA_RUNS").filter(|s| !s.is_empty()) {
            s.runs = r.into();
        }
        if let Some(q) = var("STRATA_QUANTIZE").filter(|s| !s.is_empty()) {
            s.quantization = match q.as_str() {
                "none" => Quantization::None,
                "i8" => Quantization::I8,
                "1bit" => Quantization::Bit,
                other => {
                    return Err(format!(
                        "STRATA_QUANTIZE is {other:?}: use none, i8 or 1bit"
                    ))
                }
            };
        }
        s.runs_table = var("STRATA_RUNS_TABLE").filter(|s| !s.is_empty());
        s.publish = var("STRATA_PUBLISH").filter(|s| !s.is_empty());
        if let Some(n) = var("STRATA_RUN_FAIL_AFTER").filter(|s| !s.is_empty()) {
            s.fail_after_attempts = match n.parse::<i64>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(format!(
                        "STRATA_RUN_FAIL_AFTER is {n:?}: use a whole number of attempts, at least 1"
                    ))
                }
            };
        }
        Ok(s)
    }
}

impl Role {
    /// The role's name: `stream` or `compactor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Stream => "stream",
            Role::Compactor => "compactor",
        }
    }
}

/// Check that `STRATA_ROLE`, if set, names `role`. Each runtime binary is one role (the
/// single `strata-lambda` that `STRATA_ROLE` switched is gone), so the variable is no
/// longer needed; a leftover one naming the other role means the wrong binary was
/// deployed, and the process refuses to start rather than play the wrong part.
pub fn check_role(var: impl Fn(&str) -> Option<String>, role: Role) -> Result<(), String> {
    match var("STRATA_ROLE").filter(|s| !s.is_empty()) {
        None => Ok(()),
        Some(r) if r == role.as_str() => Ok(()),
        Some(other) => Err(format!(
            "STRATA_ROLE is {other:?}, but this is the {} Lambda binary \
             (strata-{}-lambda): deploy the binary of that role, or unset STRATA_ROLE",
            role.as_str(),
            role.as_str()
        )),
    }
}

/// Run the stream processor on one event: `request_id` names its inbox files (unique per
/// invocation, see [`producer_name`]); the store is `settings.store`.
pub fn invoke_stream(
    settings: &Settings,
    request_id: &str,
    event: &[u8],
) -> Result<StreamOutcome, LambdaError> {
    process_stream_event(&settings.store, &producer_name(request_id), event)
}

/// An inbox producer name from a request id: `stream-` and the id's letters, digits, `-`
/// and `_`, at most 64 characters.
pub fn producer_name(request_id: &str) -> String {
    let clean: String = request_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .take(57)
        .collect();
    if clean.is_empty() {
        format!("stream-{}", now_ms())
    } else {
        format!("stream-{clean}")
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn settings_come_from_the_environment_with_clear_errors() {
        let s = Settings::from_vars(vars(&[("STRATA_STORE", "/mnt/efs/s")])).unwrap();
        assert_eq!(s.store, PathBuf::from("/mnt/efs/s"));
        assert_eq!(s.runs, PathBuf::from("/mnt/efs/s/runs"));
        assert_eq!(s.quantization, Quantization::None);
        assert_eq!(s.runs_table, None);
        assert_eq!(s.fail_after_attempts, DEFAULT_FAIL_AFTER_ATTEMPTS);
        let s = Settings::from_vars(vars(&[
            ("STRATA_STORE", "/s"),
            ("STRATA_RUNS", "/r"),
            ("STRATA_QUANTIZE", "i8"),
        ]))
        .unwrap();
        assert_eq!(
            (s.runs, s.quantization),
            (PathBuf::from("/r"), Quantization::I8)
        );
        let s = Settings::from_vars(vars(&[
            ("STRATA_STORE", "/s"),
            ("STRATA_RUNS_TABLE", "ReceiptsTable"),
            ("STRATA_RUN_FAIL_AFTER", "3"),
        ]))
        .unwrap();
        assert_eq!(
            (s.runs_table.as_deref(), s.fail_after_attempts),
            (Some("ReceiptsTable"), 3)
        );
        for bad in ["0", "-2", "many"] {
            let err = Settings::from_vars(vars(&[
                ("STRATA_STORE", "/s"),
                ("STRATA_RUN_FAIL_AFTER", bad),
            ]))
            .unwrap_err();
            assert!(err.contains("STRATA_RUN_FAIL_AFTER"), "{bad}: {err}");
        }
        assert!(Settings::from_vars(vars(&[]))
            .unwrap_err()
            .contains("STRATA_STORE is not set"));
        assert!(
            Settings::from_vars(vars(&[("STRATA_STORE", "/s"), ("STRATA_QUANTIZE", "f16")]))
                .unwrap_err()
                .contains("\"f16\": use none, i8 or 1bit")
        );
        assert_eq!(
            check_role(vars(&[("STRATA_ROLE", "stream")]), Role::Stream),
            Ok(())
        );
        assert_eq!(check_role(vars(&[]), Role::Compactor), Ok(()));
        assert!(check_role(vars(&[("STRATA_ROLE", "x")]), Role::Stream).is_err());
        let err = check_role(vars(&[("STRATA_ROLE", "compactor")]), Role::Stream).unwrap_err();
        assert!(err.contains("this is the stream Lambda binary"), "{err}");
    }

    #[test]
    fn producer_names_are_valid_inbox_producers() {
        assert_eq!(producer_name("8f5c-11ee_a"), "stream-8f5c-11ee_a");
        assert_eq!(producer_name("a/b:c"), "stream-abc");
        assert!(producer_name("").starts_with("stream-"));
        assert!(producer_name(&"x".repeat(500)).len() <= 64);
    }
}
