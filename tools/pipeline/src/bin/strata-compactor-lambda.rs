//! `strata-compactor-lambda`: the AWS Lambda runtime process of the receipt pipeline's
//! compactor, the store's one writer (a container Lambda: it links RocksDB).
//! `STRATA_STORE` (the store directory on EFS), `STRATA_RUNS`, `STRATA_QUANTIZE`,
//! `STRATA_RUNS_TABLE` and `STRATA_RUN_FAIL_AFTER` configure it (see
//! `strata_pipeline::Settings`); `STRATA_ROLE` is not needed, and if set must be
//! `compactor`. Each invocation runs the same handler as `strata lambda-invoke compactor`,
//! on a blocking thread, and returns its `batchItemFailures` response; an error fails the
//! invocation, so Lambda retries the whole event. Run states go to the COMPACTION_RUN items
//! of `STRATA_RUNS_TABLE` (`DynamoRunReporter`, credentials and region from the usual AWS
//! chain, `AWS_ENDPOINT_URL` honoured), or are logged when it is unset. Every invocation
//! writes one EMF line of the seed's metrics on stdout; logs are JSON on stderr.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use strata_pipeline::dynamo_runs::DynamoRunReporter;
use strata_pipeline::metrics::{self, Metric};
use strata_pipeline::{check_role, invoke, LogReporter, Role, RunReporter, Settings};

type Reporter = Arc<Mutex<Box<dyn RunReporter + Send>>>;

async fn handle(
    settings: Settings,
    reporter: Reporter,
    event: LambdaEvent<Value>,
) -> Result<Value, Error> {
    let started = Instant::now();
    let bytes = serde_json::to_vec(&event.payload)?;
    let request_id = event.context.request_id.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut reporter = reporter.lock().unwrap_or_else(|p| p.into_inner());
        invoke(
            Role::Compactor,
            &settings,
            &request_id,
            &bytes,
            reporter.as_mut(),
        )
    })
    .await?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            metrics::emit(&[Metric::millis("CompactionLambdaExecutionTime", elapsed_ms)]);
            tracing::error!(error = %e, "compactor invocation failed");
            return Err(e.into());
        }
    };
    if let strata_pipeline::Outcome::Compactor(c) = &outcome {
        metrics::emit(&metrics::compactor_metrics(c, elapsed_ms));
    }
    tracing::info!(outcome = %serde_json::to_string(&outcome)?, "compactor invocation done");
    Ok(serde_json::from_str(&outcome.response_json())?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    strata_pipeline::logs::init_json_logs();
    let var = |name: &str| std::env::var(name).ok();
    check_role(var, Role::Compactor)?;
    let settings = Settings::from_vars(var)?;
    let reporter: Box<dyn RunReporter + Send> = match &settings.runs_table {
        Some(table) => {
            tracing::info!(table = %table, "run states go to DynamoDB");
            Box::new(DynamoRunReporter::from_env(table).await?)
        }
        None => Box::new(LogReporter),
    };
    let reporter: Reporter = Arc::new(Mutex::new(reporter));
    lambda_runtime::run(service_fn(move |event| {
        handle(settings.clone(), reporter.clone(), event)
    }))
    .await
}
