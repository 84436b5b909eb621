//! The two Lambda entry points of the receipt pipeline, as plain functions over event bytes
//! so that `strata lambda-invoke`, the tests and the `strata-lambda` runtime binary share
//! them:
//!
//! - [`stream_processor`]: a DynamoDB stream event → sealed deltas in the store's inbox (no
//!   lock, no manifest), failed records answered as `batchItemFailures`;
//! - [`compactor`]: the single writer — ingests the inbox, applies SQS StreamMessage
//!   batches or DynamoDB events directly, merges compaction runs ([`runs`]), recomputes
//!   derived metadata through [`state`], compacts and collects garbage.
//!
//! Follow-up work travels as rows of a metadata-only collection ([`followups`]), so it is
//! as durable as the operations it follows; [`batch`] groups a batch's operations by
//! collection. [`invoke`] runs either role on one event with settings from [`Settings`].

pub mod batch;
pub mod compactor;
pub mod followups;
pub mod object_runs;
pub mod runs;
pub mod state;
pub mod stream_processor;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use strata_engine::{Store, StoreOptions};
use strata_formats::Quantization;

pub use compactor::{Compactor, CompactorOptions, CompactorOutcome};
pub use runs::{CollectingReporter, LocalRuns, RunReporter, RunSource};
pub use stream_processor::{process_stream_event, StreamOutcome};

/// Why an invocation failed as a whole (Lambda then retries the whole event).
#[derive(Debug, thiserror::Error)]
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
    #[error("store: {0}")]
    Engine(#[from] strata_engine::Error),
    /// The settings are unusable.
    #[error("settings: {0}")]
    Settings(String),
    /// A recomputation could not read current state.
    #[error("recomputing derived metadata: {0}")]
    Derive(String),
}

/// Which entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
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
    /// prefixes are relative to the bucket root (see [`run_source`]).
    pub runs: PathBuf,
    /// Quantization of `lines`/`words` when the compactor creates them
    /// (`STRATA_QUANTIZE`: none, i8, 1bit; default none).
    pub quantization: Quantization,
}

impl Settings {
    /// Settings for a store, runs under `{store}/runs`.
    pub fn for_store(store: impl Into<PathBuf>) -> Settings {
        let store = store.into();
        Settings {
            runs: store.join("runs"),
            store,
            quantization: Quantization::None,
        }
    }
}

impl Settings {
    /// Settings from the environment: `STRATA_STORE` (required), `STRATA_RUNS`,
    /// `STRATA_QUANTIZE`. The error names the variable and what was wrong.
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
        Ok(s)
    }
}

/// Which role a runtime process plays, from `STRATA_ROLE` (`stream` or `compactor`).
pub fn role_from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Role, String> {
    match var("STRATA_ROLE").as_deref() {
        Some("stream") => Ok(Role::Stream),
        Some("compactor") => Ok(Role::Compactor),
        Some(other) => Err(format!("STRATA_ROLE is {other:?}: use stream or compactor")),
        None => Err("STRATA_ROLE is not set: use stream or compactor".into()),
    }
}

/// The result of one invocation.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    /// The stream processor's.
    Stream(StreamOutcome),
    /// The compactor's.
    Compactor(Box<CompactorOutcome>),
}

impl Outcome {
    /// The JSON a Lambda returns: the partial-batch response (empty when there is none).
    pub fn response_json(&self) -> String {
        match self {
            Outcome::Stream(s) => s.response.to_json(),
            Outcome::Compactor(c) => c
                .response
                .as_ref()
                .map_or_else(|| "{\"batchItemFailures\":[]}".to_string(), |r| r.to_json()),
        }
    }
}

/// Run one role on one event. `request_id` names the stream processor's inbox files
/// (unique per invocation); the compactor opens the store as writer for the invocation
/// and reports completed runs to `reporter`.
pub fn invoke(
    role: Role,
    settings: &Settings,
    request_id: &str,
    event: &[u8],
    reporter: &mut dyn RunReporter,
) -> Result<Outcome, LambdaError> {
    match role {
        Role::Stream => {
            let producer = producer_name(request_id);
            process_stream_event(&settings.store, &producer, event).map(Outcome::Stream)
        }
        Role::Compactor => {
            // An unreadable event fails before the store is opened (or created).
            let kind = compactor::event_kind(event)?;
            let store = Store::open(&settings.store, StoreOptions::default())?;
            let runs = run_source(&settings.runs).map_err(LambdaError::Settings)?;
            let options = CompactorOptions {
                quantization: settings.quantization,
                ..CompactorOptions::default()
            };
            let outcome =
                Compactor::new(&store, &*runs, reporter, options).handle_kind(kind, event)?;
            store.close()?;
            Ok(Outcome::Compactor(Box::new(outcome)))
        }
    }
}

/// The run source a runs root names: `s3://bucket` → [`object_runs::ObjectStoreRuns`] on
/// that S3 bucket (credentials and region from the environment), anything else a
/// directory ([`LocalRuns`]).
pub fn run_source(runs: &std::path::Path) -> Result<Box<dyn RunSource>, String> {
    match runs.to_str().and_then(|s| s.strip_prefix("s3://")) {
        Some(rest) => {
            let bucket = rest.trim_end_matches('/');
            if bucket.is_empty() || bucket.contains('/') {
                return Err(format!(
                    "runs root {runs:?}: use s3://BUCKET (run prefixes are relative to the \
                     bucket root, as the producer writes them)"
                ));
            }
            Ok(Box::new(object_runs::ObjectStoreRuns::s3_from_env(bucket)?))
        }
        None => Ok(Box::new(LocalRuns::new(runs))),
    }
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
        assert!(Settings::from_vars(vars(&[]))
            .unwrap_err()
            .contains("STRATA_STORE is not set"));
        assert!(
            Settings::from_vars(vars(&[("STRATA_STORE", "/s"), ("STRATA_QUANTIZE", "f16")]))
                .unwrap_err()
                .contains("\"f16\": use none, i8 or 1bit")
        );
        assert_eq!(
            role_from_vars(vars(&[("STRATA_ROLE", "stream")])),
            Ok(Role::Stream)
        );
        assert!(role_from_vars(vars(&[("STRATA_ROLE", "x")])).is_err());
        assert!(role_from_vars(vars(&[])).is_err());
    }

    #[test]
    fn runs_roots_name_a_directory_or_an_s3_bucket() {
        assert!(run_source(std::path::Path::new("/mnt/efs/runs")).is_ok());
        for bad in ["s3://", "s3://bucket/prefix"] {
            let err = run_source(std::path::Path::new(bad)).err().unwrap();
            assert!(err.contains("use s3://BUCKET"), "{bad}: {err}");
        }
    }

    #[test]
    fn producer_names_are_valid_inbox_producers() {
        assert_eq!(producer_name("8f5c-11ee_a"), "stream-8f5c-11ee_a");
        assert_eq!(producer_name("a/b:c"), "stream-abc");
        assert!(producer_name("").starts_with("stream-"));
        assert!(producer_name(&"x".repeat(500)).len() <= 64);
    }
}
