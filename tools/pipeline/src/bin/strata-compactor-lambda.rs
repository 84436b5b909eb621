//! `strata-compactor-lambda`: the AWS Lambda runtime process of the receipt pipeline's
//! compactor, the store's one writer (a container Lambda: it links RocksDB).
//! `STRATA_STORE` (the store directory on EFS), `STRATA_RUNS` and `STRATA_QUANTIZE`
//! configure it (see `strata_pipeline::Settings`); `STRATA_ROLE` is not needed, and if set
//! must be `compactor`. Each invocation runs the same handler as
//! `strata lambda-invoke compactor`, on a blocking thread, and returns its
//! `batchItemFailures` response; an error fails the invocation, so Lambda retries the whole
//! event. Completed compaction runs are logged as JSON lines (a DynamoDB write-back of the
//! COMPACTION_RUN state plugs in as another `RunReporter`).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use strata_pipeline::{check_role, invoke, Role, RunReporter, Settings};
use strata_stream::ops::RunCompleted;
use strata_stream::MergeRun;

/// Logs every completed run as one JSON line on stdout (CloudWatch).
struct LogReporter;

impl RunReporter for LogReporter {
    fn completed(&mut self, run: &MergeRun, done: &RunCompleted) -> Result<(), String> {
        let merged: serde_json::Map<String, Value> = done
            .merged
            .iter()
            .map(|(c, n)| (c.as_str().to_string(), Value::from(*n)))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "event": "compaction_run_completed",
                "run_id": run.run_id,
                "image_id": run.receipt.image_id,
                "receipt_id": run.receipt.receipt_id,
                "merged": merged,
            })
        );
        Ok(())
    }
}

async fn handle(settings: Settings, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let bytes = serde_json::to_vec(&event.payload)?;
    let request_id = event.context.request_id.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        invoke(
            Role::Compactor,
            &settings,
            &request_id,
            &bytes,
            &mut LogReporter,
        )
    })
    .await??;
    eprintln!("{}", serde_json::to_string(&outcome)?);
    Ok(serde_json::from_str(&outcome.response_json())?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let var = |name: &str| std::env::var(name).ok();
    check_role(var, Role::Compactor)?;
    let settings = Settings::from_vars(var)?;
    lambda_runtime::run(service_fn(move |event| handle(settings.clone(), event))).await
}
