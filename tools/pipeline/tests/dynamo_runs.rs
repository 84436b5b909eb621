//! The COMPACTION_RUN write-back against a real DynamoDB API: moto's server on 127.0.0.1
//! (`STRATA_TEST_DYNAMODB_ENDPOINT`, set by `.ci/moto.sh start`; every test skips with a
//! printed message when it is unset). Items are laid out as the seed's `CompactionRun`
//! entity writes them; the reporter's field-level updates must leave every other field
//! alone, never create an item, never regress a COMPLETED collection, and the compactor
//! must report a run COMPLETED only with its merged counts.

use std::collections::HashMap;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use strata_engine::{StoreOptions, Writer};
use strata_pipeline::dynamo_runs::{https_client, run_sort_key, DynamoRunReporter};
use strata_pipeline::{Compactor, CompactorOptions, LocalRuns, RunReporter};
use strata_stream::ops::{DeltaLocation, RunCompleted, RunDelta};
use strata_stream::{Collection, MergeRun, ReceiptKey};
use strata_testkit::workload::{Workload, WorkloadConfig};

type Item = HashMap<String, AttributeValue>;

fn endpoint() -> Option<String> {
    let e = std::env::var("STRATA_TEST_DYNAMODB_ENDPOINT").ok();
    if e.is_none() {
        println!("skipped: STRATA_TEST_DYNAMODB_ENDPOINT is unset (start moto: .ci/moto.sh start)");
    }
    e
}

fn client(endpoint: &str) -> Client {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .http_client(https_client())
        .build();
    Client::from_conf(conf)
}

/// The test's own table (PK/SK strings, on demand) and a runtime for its direct calls.
struct Table {
    rt: tokio::runtime::Runtime,
    client: Client,
    name: String,
    endpoint: String,
}

impl Table {
    fn create(endpoint: &str, name: &str) -> Table {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = client(endpoint);
        let name = format!("{name}-{}", std::process::id());
        let key = |n: &str, t| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(t)
                .build()
                .unwrap()
        };
        let attr = |n: &str| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap()
        };
        rt.block_on(
            client
                .create_table()
                .table_name(&name)
                .key_schema(key("PK", KeyType::Hash))
                .key_schema(key("SK", KeyType::Range))
                .attribute_definitions(attr("PK"))
                .attribute_definitions(attr("SK"))
                .billing_mode(BillingMode::PayPerRequest)
                .send(),
        )
        .unwrap();
        Table {
            rt,
            client,
            name,
            endpoint: endpoint.to_string(),
        }
    }

    /// A reporter on its own client and runtime (created outside any runtime).
    fn reporter(&self) -> DynamoRunReporter {
        DynamoRunReporter::new(client(&self.endpoint), &self.name).unwrap()
    }

    /// The item the seed's producer inserts before the compactor sees the run.
    fn put_run(&self, run: &MergeRun) {
        let s = |v: &str| AttributeValue::S(v.to_string());
        let mut item: Item = HashMap::new();
        item.insert("PK".into(), s(&format!("IMAGE#{}", run.receipt.image_id)));
        item.insert("SK".into(), s(&run_sort_key(run)));
        item.insert("TYPE".into(), s("COMPACTION_RUN"));
        item.insert("run_id".into(), s(&run.run_id));
        item.insert("image_id".into(), s(&run.receipt.image_id));
        item.insert(
            "receipt_id".into(),
            AttributeValue::N(run.receipt.receipt_id.to_string()),
        );
        for c in ["lines", "words"] {
            item.insert(
                format!("{c}_delta_prefix"),
                s(&format!("{c}/delta/{}/", run.run_id)),
            );
            item.insert(format!("{c}_state"), s("PENDING"));
        }
        item.insert("created_at".into(), s("2026-12-01T00:00:00+00:00"));
        self.rt
            .block_on(
                self.client
                    .put_item()
                    .table_name(&self.name)
                    .set_item(Some(item))
                    .send(),
            )
            .unwrap();
    }

    fn get(&self, run: &MergeRun) -> Option<Item> {
        self.rt
            .block_on(
                self.client
                    .get_item()
                    .table_name(&self.name)
                    .key(
                        "PK",
                        AttributeValue::S(format!("IMAGE#{}", run.receipt.image_id)),
                    )
                    .key("SK", AttributeValue::S(run_sort_key(run)))
                    .consistent_read(true)
                    .send(),
            )
            .unwrap()
            .item
    }
}

fn text<'a>(item: &'a Item, key: &str) -> &'a str {
    match item.get(key) {
        Some(AttributeValue::S(s)) => s,
        other => panic!("{key} is {other:?}"),
    }
}

fn run(run_id: &str, receipt_id: u32) -> MergeRun {
    MergeRun {
        run_id: run_id.into(),
        receipt: ReceiptKey {
            image_id: "3f2a8c1e-0000-4000-8000-000000000001".into(),
            receipt_id,
        },
        seq: "100".parse().unwrap(),
        deltas: [Collection::Lines, Collection::Words]
            .into_iter()
            .map(|c| RunDelta {
                collection: c,
                location: DeltaLocation::parse(&format!("{c}/delta/{run_id}/")).unwrap(),
            })
            .collect(),
    }
}

fn is_iso(s: &str) -> bool {
    s.len() == 32 && s.ends_with("+00:00") && s.as_bytes()[10] == b'T'
}

#[test]
fn completed_sets_each_collections_fields_and_nothing_else() {
    let Some(ep) = endpoint() else { return };
    let table = Table::create(&ep, "runs-completed");
    let r = run("run-a", 7);
    table.put_run(&r);
    // Two reporters, as two compactors would: lines first, then words.
    let mut a = table.reporter();
    let mut b = table.reporter();
    a.completed(
        &r,
        &RunCompleted {
            run_id: r.run_id.clone(),
            merged: vec![(Collection::Lines, 5)],
        },
    )
    .unwrap();
    let after_lines = table.get(&r).unwrap();
    assert_eq!(text(&after_lines, "lines_state"), "COMPLETED");
    assert_eq!(text(&after_lines, "words_state"), "PENDING");
    b.completed(
        &r,
        &RunCompleted {
            run_id: r.run_id.clone(),
            merged: vec![(Collection::Words, 12)],
        },
    )
    .unwrap();
    let item = table.get(&r).unwrap();
    assert_eq!(text(&item, "lines_state"), "COMPLETED");
    assert_eq!(text(&item, "words_state"), "COMPLETED");
    assert_eq!(item["lines_merged_vectors"], AttributeValue::N("5".into()));
    assert_eq!(item["words_merged_vectors"], AttributeValue::N("12".into()));
    assert!(is_iso(text(&item, "lines_finished_at")), "{item:?}");
    assert!(is_iso(text(&item, "words_finished_at")), "{item:?}");
    assert!(is_iso(text(&item, "updated_at")), "{item:?}");
    // The producer's fields are untouched.
    assert_eq!(text(&item, "TYPE"), "COMPACTION_RUN");
    assert_eq!(text(&item, "created_at"), "2026-12-01T00:00:00+00:00");
    assert_eq!(text(&item, "lines_delta_prefix"), "lines/delta/run-a/");
    assert_eq!(item.len(), after_lines.len() + 2, "{item:?}");
}

#[test]
fn processing_and_failed_never_regress_a_completed_collection() {
    let Some(ep) = endpoint() else { return };
    let table = Table::create(&ep, "runs-states");
    let r = run("run-b", 8);
    table.put_run(&r);
    let mut rep = table.reporter();
    rep.started(&r).unwrap();
    let item = table.get(&r).unwrap();
    assert_eq!(text(&item, "lines_state"), "PROCESSING");
    assert_eq!(text(&item, "words_state"), "PROCESSING");
    assert!(is_iso(text(&item, "lines_started_at")));
    rep.completed(
        &r,
        &RunCompleted {
            run_id: r.run_id.clone(),
            merged: vec![(Collection::Lines, 3)],
        },
    )
    .unwrap();
    let failures = vec![
        (Collection::Lines, "late failure".to_string()),
        (
            Collection::Words,
            "delta download failed: no delta".to_string(),
        ),
    ];
    rep.failed(&r, &failures, 5).unwrap();
    rep.started(&r).unwrap();
    let item = table.get(&r).unwrap();
    assert_eq!(text(&item, "lines_state"), "COMPLETED", "{item:?}");
    assert!(!item.contains_key("lines_error"), "{item:?}");
    assert_eq!(text(&item, "words_state"), "PROCESSING", "{item:?}");
    assert_eq!(
        text(&item, "words_error"),
        "delta download failed: no delta"
    );
    assert!(is_iso(text(&item, "words_finished_at")));
}

#[test]
fn a_run_without_an_item_creates_none_and_a_missing_table_is_an_error() {
    let Some(ep) = endpoint() else { return };
    let table = Table::create(&ep, "runs-missing");
    let r = run("run-c", 9);
    let mut rep = table.reporter();
    rep.started(&r).unwrap();
    rep.completed(
        &r,
        &RunCompleted {
            run_id: r.run_id.clone(),
            merged: vec![(Collection::Lines, 1), (Collection::Words, 2)],
        },
    )
    .unwrap();
    rep.failed(&r, &[(Collection::Words, "x".into())], 9)
        .unwrap();
    assert_eq!(table.get(&r), None, "no item is created");
    let mut nowhere = DynamoRunReporter::new(client(&ep), "no-such-table").unwrap();
    let err = nowhere
        .completed(
            &r,
            &RunCompleted {
                run_id: r.run_id.clone(),
                merged: vec![(Collection::Lines, 1)],
            },
        )
        .unwrap_err();
    assert!(
        err.contains("no-such-table") && err.contains("run-c"),
        "{err}"
    );
}

/// The compactor over a generated workload reports every run COMPLETED in DynamoDB with the
/// number of records its deltas carried; a run whose deltas never arrive is reported
/// FAILED after the configured number of attempts, and COMPLETED once they do.
#[test]
fn the_compactor_writes_run_states_back() {
    let Some(ep) = endpoint() else { return };
    let table = Table::create(&ep, "runs-compactor");
    let w = Workload::generate(&WorkloadConfig {
        receipts: 3,
        seed: 5,
        records_per_event: 60,
        edit_rounds: 0,
    });
    let merge_runs: Vec<MergeRun> = w
        .runs
        .iter()
        .map(|info| MergeRun {
            run_id: info.run_id.clone(),
            receipt: info.receipt.clone(),
            ..run(&info.run_id, info.receipt.receipt_id)
        })
        .collect();
    merge_runs.iter().for_each(|r| table.put_run(r));
    let dir = tempfile::tempdir().unwrap();
    let runs_root = dir.path().join("runs");
    // Every run but the last has its deltas from the start.
    let late = &w.runs[w.runs.len() - 1];
    for (rel, bytes) in &w.run_files {
        if !rel.to_string_lossy().contains(&late.run_id) {
            let path = runs_root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }
    let store = Writer::open(dir.path().join("store"), StoreOptions::default()).unwrap();
    let source = LocalRuns::new(&runs_root);
    let mut reporter = table.reporter();
    let options = CompactorOptions {
        gc: false,
        compact: false,
        fail_after_attempts: 2,
        ..CompactorOptions::default()
    };
    let last = merge_runs.last().unwrap();
    let scheduled: Vec<&[u8]> = vec![b"{}"; 2];
    let mut failed_reports = 0;
    for e in w.events.iter().map(Vec::as_slice).chain(scheduled) {
        let out = Compactor::new(&store, &source, &mut reporter, options.clone())
            .handle(e)
            .unwrap();
        let Some(f) = out
            .follow_ups
            .failed_runs
            .iter()
            .find(|f| f.run_id == late.run_id)
        else {
            continue;
        };
        let item = table.get(last).unwrap();
        if f.attempts < 2 {
            assert!(out.follow_ups.reported_failed.is_empty());
            assert_eq!(text(&item, "lines_state"), "PROCESSING", "{item:?}");
        } else {
            assert_eq!(out.follow_ups.reported_failed, vec![late.run_id.clone()]);
            assert_eq!(text(&item, "lines_state"), "FAILED", "{item:?}");
            assert!(text(&item, "lines_error").contains("delta download failed"));
            failed_reports += 1;
        }
    }
    assert!(failed_reports >= 1, "the late run was reported FAILED");
    w.write_run_files(&runs_root).unwrap();
    let out = Compactor::new(&store, &source, &mut reporter, options)
        .handle(b"{}")
        .unwrap();
    assert_eq!(out.follow_ups.merged_runs.len(), 1, "{:?}", out.follow_ups);
    for (info, r) in w.runs.iter().zip(&merge_runs) {
        let item = table.get(r).unwrap();
        assert_eq!(text(&item, "lines_state"), "COMPLETED", "{item:?}");
        assert_eq!(text(&item, "words_state"), "COMPLETED", "{item:?}");
        assert_eq!(
            item["lines_merged_vectors"],
            AttributeValue::N(info.lines.to_string())
        );
        assert_eq!(
            item["words_merged_vectors"],
            AttributeValue::N(info.words.to_string())
        );
    }
}
