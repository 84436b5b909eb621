//! Either role on one event, as the compactor's runtime binary, `strata lambda-invoke` and
//! the demo run it: [`invoke`] dispatches on a [`Role`], opening the store as writer for a
//! compactor invocation, and [`run_source`] picks where run deltas are read from.

use serde::Serialize;
use strata_engine::{StoreOptions, Writer};

use crate::compactor::{self, Compactor, CompactorOptions, CompactorOutcome};
use crate::object_runs;
use crate::reporter::RunReporter;
use crate::runs::{LocalRuns, RunSource};
use crate::stream_processor::StreamOutcome;
use crate::{invoke_stream, LambdaError, Role, Settings};

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
        Role::Stream => invoke_stream(settings, request_id, event).map(Outcome::Stream),
        Role::Compactor => {
            // An unreadable event fails before the store is opened (or created).
            let kind = compactor::event_kind(event)?;
            let store = Writer::open(&settings.store, StoreOptions::default())?;
            let runs = run_source(&settings.runs).map_err(LambdaError::Settings)?;
            let options = CompactorOptions {
                quantization: settings.quantization,
                fail_after_attempts: settings.fail_after_attempts,
                publish: settings.publish.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_roots_name_a_directory_or_an_s3_bucket() {
        assert!(run_source(std::path::Path::new("/mnt/efs/runs")).is_ok());
        for bad in ["s3://", "s3://bucket/prefix"] {
            let err = run_source(std::path::Path::new(bad)).err().unwrap();
            assert!(err.contains("use s3://BUCKET"), "{bad}: {err}");
        }
    }
}
