//! The COMPACTION_RUN item written back to DynamoDB (seed §2.6), so that the receipts
//! system's waiters learn a run is done: [`DynamoRunReporter`] is the compactor Lambda's
//! [`RunReporter`] when `STRATA_RUNS_TABLE` names the table. Every write is a field-level
//! `UpdateItem` of one collection's fields (`{c}_state`, `{c}_finished_at`,
//! `{c}_merged_vectors`, `{c}_error`, and `updated_at`) with the condition that the item
//! exists, so the lines and words updates never clobber each other and a run whose item
//! is gone creates nothing:
//!
//! - `started` → `{c}_state = PROCESSING, {c}_started_at` for each collection of the run,
//!   unless that collection is already `COMPLETED` (a repeated merge never regresses it);
//! - `completed` (only after the merged version is durable) → `{c}_state = COMPLETED,
//!   {c}_finished_at, {c}_merged_vectors`;
//! - `failed` → `{c}_state = FAILED, {c}_error, {c}_finished_at` for each delta that is
//!   missing or bad, unless already `COMPLETED`.
//!
//! A failed condition (the item is gone, or the state already `COMPLETED`) is not an error:
//! there is nothing to tell; it is logged. Any other error (throttling, network) is
//! returned, so the compactor keeps the run pending and reports it again.
//!
//! The SDK is async; the reporter is called from the compactor's blocking thread and runs
//! each request to completion on the runtime it was created in (or on a runtime of its
//! own when created outside one, as in tests).

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use strata_stream::ops::RunCompleted;
use strata_stream::{Collection, MergeRun};

use super::reporter::{DeltaFailure, RunReporter};

/// The HTTPS client of the SDK: hyper with rustls on ring (no aws-lc to compile).
pub fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The SDK configuration from the usual chain (environment, profile, container and
/// instance credentials; `AWS_REGION`; `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_DYNAMODB`),
/// with the HTTPS client of [`https_client`].
pub async fn sdk_config_from_env() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// Where the SDK futures run.
#[derive(Debug)]
enum Exec {
    Handle(tokio::runtime::Handle),
    Own(tokio::runtime::Runtime),
}

/// Writes COMPACTION_RUN states into a DynamoDB table; see the module documentation.
#[derive(Debug)]
pub struct DynamoRunReporter {
    client: Client,
    table: String,
    exec: Exec,
}

/// What one field-level update sets: `(field suffix or name, value)`.
type Fields = Vec<(String, AttributeValue)>;

impl DynamoRunReporter {
    /// A reporter writing to `table` through `client`. Requests run on the current tokio
    /// runtime if there is one, else on a runtime the reporter starts.
    pub fn new(client: Client, table: impl Into<String>) -> Result<DynamoRunReporter, String> {
        let exec = match tokio::runtime::Handle::try_current() {
            Ok(h) => Exec::Handle(h),
            Err(_) => Exec::Own(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("starting an async runtime: {e}"))?,
            ),
        };
        Ok(DynamoRunReporter {
            client,
            table: table.into(),
            exec,
        })
    }

    /// A reporter for `table` with the configuration of [`sdk_config_from_env`].
    pub async fn from_env(table: &str) -> Result<DynamoRunReporter, String> {
        let config = sdk_config_from_env().await;
        DynamoRunReporter::new(Client::new(&config), table)
    }

    /// [`DynamoRunReporter::from_env`] outside any async runtime (the CLI's
    /// `lambda-invoke --runs-table`): the configuration is loaded on a runtime of its own.
    pub fn from_env_blocking(table: &str) -> Result<DynamoRunReporter, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("start a runtime for the DynamoDB client: {e}"))?;
        let config = rt.block_on(sdk_config_from_env());
        drop(rt);
        DynamoRunReporter::new(Client::new(&config), table)
    }

    /// The table written.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        match &self.exec {
            Exec::Handle(h) => h.block_on(fut),
            Exec::Own(rt) => rt.block_on(fut),
        }
    }

    /// One conditional field-level update of collection `c`'s fields of the run's item.
    /// `guard_completed` adds "and `{c}_state` is not COMPLETED" to the condition.
    fn update(
        &self,
        run: &MergeRun,
        c: Collection,
        fields: Fields,
        guard_completed: bool,
    ) -> Result<(), String> {
        let now = AttributeValue::S(iso_utc(super::now_ms()));
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(
                "PK",
                AttributeValue::S(format!("IMAGE#{}", run.receipt.image_id)),
            )
            .key("SK", AttributeValue::S(run_sort_key(run)))
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_values(":updated_at", now);
        let mut set = vec!["#updated_at = :updated_at".to_string()];
        for (i, (field, value)) in fields.into_iter().enumerate() {
            set.push(format!("#f{i} = :v{i}"));
            req = req
                .expression_attribute_names(format!("#f{i}"), format!("{c}_{field}"))
                .expression_attribute_values(format!(":v{i}"), value);
        }
        let mut condition = "attribute_exists(PK)".to_string();
        if guard_completed {
            condition.push_str(" AND (attribute_not_exists(#state) OR #state <> :completed)");
            req = req
                .expression_attribute_names("#state", format!("{c}_state"))
                .expression_attribute_values(":completed", AttributeValue::S("COMPLETED".into()));
        }
        let req = req
            .update_expression(format!("SET {}", set.join(", ")))
            .condition_expression(condition);
        match self.block_on(req.send()) {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                tracing::warn!(
                    run_id = %run.run_id,
                    collection = %c,
                    table = %self.table,
                    "COMPACTION_RUN item not updated: it is gone{}",
                    if guard_completed { " or already COMPLETED" } else { "" }
                );
                Ok(())
            }
            Err(e) => Err(format!(
                "DynamoDB UpdateItem of run {} ({c}) in table {}: {}",
                run.run_id,
                self.table,
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            )),
        }
    }
}

fn state(s: &str) -> AttributeValue {
    AttributeValue::S(s.to_string())
}

/// The item's sort key: `RECEIPT#{receipt_id:05}#COMPACTION_RUN#{run_id}`.
pub fn run_sort_key(run: &MergeRun) -> String {
    format!(
        "RECEIPT#{:05}#COMPACTION_RUN#{}",
        run.receipt.receipt_id, run.run_id
    )
}

impl RunReporter for DynamoRunReporter {
    fn started(&mut self, run: &MergeRun) -> Result<(), String> {
        let now = iso_utc(super::now_ms());
        for d in &run.deltas {
            let fields = vec![
                ("state".into(), state("PROCESSING")),
                ("started_at".into(), AttributeValue::S(now.clone())),
            ];
            self.update(run, d.collection, fields, true)?;
        }
        Ok(())
    }

    fn completed(&mut self, run: &MergeRun, done: &RunCompleted) -> Result<(), String> {
        let now = iso_utc(super::now_ms());
        for (c, merged) in &done.merged {
            let fields = vec![
                ("state".into(), state("COMPLETED")),
                ("finished_at".into(), AttributeValue::S(now.clone())),
                (
                    "merged_vectors".into(),
                    AttributeValue::N(merged.to_string()),
                ),
            ];
            self.update(run, *c, fields, false)?;
        }
        tracing::info!(run_id = %run.run_id, table = %self.table, "COMPACTION_RUN COMPLETED");
        Ok(())
    }

    fn failed(
        &mut self,
        run: &MergeRun,
        failures: &[DeltaFailure],
        attempts: i64,
    ) -> Result<(), String> {
        let now = iso_utc(super::now_ms());
        for (c, why) in failures {
            let fields = vec![
                ("state".into(), state("FAILED")),
                ("error".into(), AttributeValue::S(why.clone())),
                ("finished_at".into(), AttributeValue::S(now.clone())),
            ];
            self.update(run, *c, fields, true)?;
        }
        tracing::warn!(run_id = %run.run_id, attempts, table = %self.table, "COMPACTION_RUN FAILED");
        Ok(())
    }
}

/// Milliseconds since the Unix epoch as an ISO-8601 UTC timestamp the way Python's
/// `datetime.now(timezone.utc).isoformat()` writes it: `2026-12-02T05:29:19.123000+00:00`.
pub fn iso_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        (ms % 1000) * 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_python_isoformat_in_utc() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(iso_utc(951_782_400_000), "2000-02-29T00:00:00.000000+00:00");
        assert_eq!(
            iso_utc(1_796_189_359_123),
            "2026-12-02T05:29:19.123000+00:00"
        );
        assert_eq!(
            iso_utc(1_709_251_199_999),
            "2024-02-29T23:59:59.999000+00:00"
        );
    }

    #[test]
    fn sort_keys_follow_the_seed() {
        let run = MergeRun {
            run_id: "r-1".into(),
            receipt: strata_stream::ReceiptKey {
                image_id: "img".into(),
                receipt_id: 42,
            },
            seq: "7".parse().unwrap(),
            deltas: Vec::new(),
        };
        assert_eq!(run_sort_key(&run), "RECEIPT#00042#COMPACTION_RUN#r-1");
    }
}
