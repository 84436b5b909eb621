//! The seed's CloudWatch metrics (seed §6.6, namespace `EmbeddingWorkflow`, no
//! dimensions), written by the Lambda entry points as Embedded Metric Format lines on
//! stdout: CloudWatch Logs turns each line into metric data points, so the existing alarms
//! (`CompactionDeltaMergeError > 0`, …) keep working without a metrics client. One line per
//! invocation:
//!
//! ```json
//! {"_aws":{"Timestamp":1796189359123,"CloudWatchMetrics":[{"Namespace":"EmbeddingWorkflow",
//!  "Dimensions":[[]],"Metrics":[{"Name":"StreamBatchSize","Unit":"Count"},…]}]},
//!  "StreamBatchSize":60,…}
//! ```
//!
//! [`stream_metrics`] and `compactor_metrics` map an invocation's outcome to the values;
//! [`emf_line`] writes the document.

use serde_json::{json, Map, Value};

use super::stream_processor::StreamOutcome;

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "EmbeddingWorkflow";

/// A metric's unit (the CloudWatch names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// `Count`.
    Count,
    /// `Milliseconds`.
    Milliseconds,
}

impl Unit {
    /// The CloudWatch name of the unit.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One metric value.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The metric name, as the seed emits it.
    pub name: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// The value.
    pub value: f64,
}

impl Metric {
    /// A count.
    pub fn count(name: &'static str, n: usize) -> Metric {
        Metric {
            name,
            unit: Unit::Count,
            value: n as f64,
        }
    }

    /// A duration in milliseconds.
    pub fn millis(name: &'static str, ms: f64) -> Metric {
        Metric {
            name,
            unit: Unit::Milliseconds,
            value: ms,
        }
    }
}

/// A value as JSON: whole numbers as integers.
fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        json!(v)
    }
}

/// One EMF document (a single line, no newline) holding `metrics` in [`NAMESPACE`]
/// without dimensions, stamped `timestamp_ms` (milliseconds since the Unix epoch).
pub fn emf_line(metrics: &[Metric], timestamp_ms: u64) -> String {
    let defs: Vec<Value> = metrics
        .iter()
        .map(|m| json!({"Name": m.name, "Unit": m.unit.as_str()}))
        .collect();
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[]],
                "Metrics": defs,
            }],
        }),
    );
    for m in metrics {
        doc.insert(m.name.into(), number(m.value));
    }
    Value::Object(doc).to_string()
}

/// Write `metrics` as one EMF line on stdout, stamped now.
pub fn emit(metrics: &[Metric]) {
    println!("{}", emf_line(metrics, super::now_ms()));
}

/// The stream processor's metrics: `StreamBatchSize` (records in the event),
/// `ChromaDBRelevantChanges` (records that became operations), `StreamMessageCreated`
/// (operations written to the inbox, follow-ups included), `StreamRecordParsingError`
/// (records that could not be read or translated).
pub fn stream_metrics(out: &StreamOutcome) -> Vec<Metric> {
    vec![
        Metric::count("StreamBatchSize", out.records),
        Metric::count("ChromaDBRelevantChanges", out.applied),
        Metric::count("StreamMessageCreated", out.operations),
        Metric::count("StreamRecordParsingError", out.failures.len()),
    ]
}

/// The compactor's metrics for one invocation that took `elapsed_ms`:
///
/// | metric | value |
/// |---|---|
/// | `CompactionRecordsReceived` | records or messages in the event |
/// | `CompactionCollectionUpdatesProcessed` | of them, applied |
/// | `CompactionFailedMessages` | of them, failed (in `batchItemFailures`) |
/// | `CompactionPartialBatchFailure` | 1 if some failed, else 0 |
/// | `CompactionDeltasMergedCount` | run deltas merged |
/// | `CompactionDeltaMergeError` | runs whose merge failed (left pending) |
/// | `CompactionRunStateUpdateError` | run states the reporter could not write |
/// | `CompactionMetadataUpdatedCount` | derived-metadata patches written |
/// | `CompactionLambdaExecutionTime` | `elapsed_ms` |
#[cfg(feature = "compactor")]
pub fn compactor_metrics(out: &super::CompactorOutcome, elapsed_ms: f64) -> Vec<Metric> {
    let f = &out.follow_ups;
    let failed = out.event.failures.len();
    vec![
        Metric::count("CompactionRecordsReceived", out.event.records),
        Metric::count("CompactionCollectionUpdatesProcessed", out.event.applied),
        Metric::count("CompactionFailedMessages", failed),
        Metric::count("CompactionPartialBatchFailure", usize::from(failed > 0)),
        Metric::count(
            "CompactionDeltasMergedCount",
            f.merged_runs.iter().map(|r| r.merged.len()).sum(),
        ),
        Metric::count("CompactionDeltaMergeError", f.failed_runs.len()),
        Metric::count("CompactionRunStateUpdateError", f.report_errors.len()),
        Metric::count("CompactionMetadataUpdatedCount", f.patches),
        Metric::millis("CompactionLambdaExecutionTime", elapsed_ms),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_documents_have_the_cloudwatch_shape() {
        let line = emf_line(
            &[
                Metric::count("StreamBatchSize", 60),
                Metric::millis("CompactionLambdaExecutionTime", 12.5),
            ],
            1_796_189_359_123,
        );
        assert!(!line.contains('\n'));
        let doc: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            doc,
            json!({
                "_aws": {
                    "Timestamp": 1_796_189_359_123u64,
                    "CloudWatchMetrics": [{
                        "Namespace": "EmbeddingWorkflow",
                        "Dimensions": [[]],
                        "Metrics": [
                            {"Name": "StreamBatchSize", "Unit": "Count"},
                            {"Name": "CompactionLambdaExecutionTime", "Unit": "Milliseconds"},
                        ],
                    }],
                },
                "StreamBatchSize": 60,
                "CompactionLambdaExecutionTime": 12.5,
            })
        );
        assert!(line.contains("\"StreamBatchSize\":60"), "{line}");
    }

    #[test]
    fn stream_metrics_count_the_outcome() {
        let out = StreamOutcome {
            response: strata_stream::BatchResponse::default(),
            records: 7,
            applied: 4,
            ignored: 2,
            failures: vec![super::super::stream_processor::Failure {
                index: 3,
                sequence_number: Some("11".into()),
                error: "bad".into(),
            }],
            operations: 9,
            files: Vec::new(),
        };
        let values: Vec<(&str, f64)> = stream_metrics(&out)
            .iter()
            .map(|m| (m.name, m.value))
            .collect();
        assert_eq!(
            values,
            [
                ("StreamBatchSize", 7.0),
                ("ChromaDBRelevantChanges", 4.0),
                ("StreamMessageCreated", 9.0),
                ("StreamRecordParsingError", 1.0),
            ]
        );
    }
}
