//! `strata-stream-lambda`: the AWS Lambda runtime process of the receipt pipeline's stream
//! processor, the small one (a zip Lambda: it links no RocksDB, no engine, no clap, no
//! AWS SDK). `STRATA_STORE` (the store directory on EFS) configures it (see
//! `strata_pipeline::Settings`; the compactor's variables are checked but only the
//! compactor uses them); `STRATA_ROLE` is not needed, and if set must be `stream`. Each
//! invocation runs the same handler as `strata lambda-invoke stream`, on a blocking thread,
//! and returns its `batchItemFailures` response; an error fails the invocation, so Lambda
//! retries the whole event. Every invocation that read its event writes one EMF line of the
//! seed's stream metrics (`StreamBatchSize`, …) on stdout; logs are JSON on stderr.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use strata_pipeline::metrics;
use strata_pipeline::{check_role, invoke_stream, Role, Settings};

async fn handle(settings: Settings, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let bytes = serde_json::to_vec(&event.payload)?;
    let request_id = event.context.request_id.clone();
    let outcome =
        tokio::task::spawn_blocking(move || invoke_stream(&settings, &request_id, &bytes)).await?;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "stream invocation failed");
            return Err(e.into());
        }
    };
    metrics::emit(&metrics::stream_metrics(&outcome));
    tracing::info!(outcome = %serde_json::to_string(&outcome)?, "stream invocation done");
    Ok(serde_json::from_str(&outcome.response.to_json())?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    strata_pipeline::logs::init_json_logs();
    let var = |name: &str| std::env::var(name).ok();
    check_role(var, Role::Stream)?;
    let settings = Settings::from_vars(var)?;
    lambda_runtime::run(service_fn(move |event| handle(settings.clone(), event))).await
}
