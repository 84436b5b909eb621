//! `ingest-events` and `lambda-invoke`: the receipt pipeline's entry points from the
//! command line, on event files, without AWS.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{json, Value as Json};

use super::Ctx;
use crate::cli::LambdaRole;
use crate::error::{CliError, CliResult, Context};
use crate::output::{plural, print_json, Table};
use crate::progress;
use strata_pipeline::dynamo_runs::DynamoRunReporter;
use strata_pipeline::{
    self as lambda, CollectingReporter, Compactor, CompactorOptions, CompactorOutcome, Outcome,
    RunReporter, Settings,
};

/// The largest event file read (Lambda's synchronous payload limit is 6 MB; stream and
/// SQS batches are smaller).
pub const MAX_EVENT_FILE_BYTES: u64 = 16 << 20;

fn read_event(path: &Path) -> CliResult<Vec<u8>> {
    let file = fs::File::open(path).context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_EVENT_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_EVENT_FILE_BYTES {
        return Err(CliError::failed(format!(
            "{}: larger than {MAX_EVENT_FILE_BYTES} bytes; an event is at most 6 MB",
            path.display()
        )));
    }
    Ok(bytes)
}

fn problems(o: &CompactorOutcome) -> usize {
    o.event.failures.len() + o.follow_ups.failed_runs.len() + o.inbox_failed.len()
}

fn outcome_json(file: &Path, o: &CompactorOutcome) -> Json {
    let mut v = serde_json::to_value(o).unwrap_or(Json::Null);
    if let Json::Object(m) = &mut v {
        m.insert("file".into(), json!(file.display().to_string()));
    }
    v
}

fn print_problems(file: &Path, o: &CompactorOutcome) {
    for f in &o.event.failures {
        eprintln!(
            "{}: record {} (SequenceNumber {}): {}",
            file.display(),
            f.index,
            f.sequence_number.as_deref().unwrap_or("unknown"),
            f.error
        );
    }
    for r in &o.follow_ups.failed_runs {
        eprintln!(
            "{}: run {} stays pending (attempt {}): {}",
            file.display(),
            r.run_id,
            r.attempts,
            r.error
        );
    }
    for (name, why) in &o.inbox_failed {
        eprintln!("inbox file {name} not ingested: {why}");
    }
}

/// `strata ingest-events FILE... [--runs DIR]`: every file is read and parsed before the
/// first is applied (a file that is not an event changes nothing); then each is applied as
/// one compactor invocation.
pub fn ingest(ctx: &Ctx, files: &[PathBuf], runs: Option<PathBuf>) -> CliResult<i32> {
    let mut events = Vec::with_capacity(files.len());
    for f in files {
        let bytes = read_event(f)?;
        strata_stream::parse_event(&bytes).context(|| f.display().to_string())?;
        events.push(bytes);
    }
    let store = ctx.writer("ingest-events")?;
    let runs = lambda::run_source(&runs.unwrap_or_else(|| ctx.store.join("runs")))
        .map_err(CliError::Failed)?;
    let mut reporter = CollectingReporter::default();
    let options = CompactorOptions {
        gc: false,
        ..CompactorOptions::default()
    };
    let bar = progress::items(files.len() as u64, "events");
    let mut outcomes = Vec::with_capacity(files.len());
    for (f, bytes) in files.iter().zip(&events) {
        let o = Compactor::new(&store, &*runs, &mut reporter, options.clone())
            .handle(bytes)
            .context(|| f.display().to_string())?;
        bar.inc(1);
        outcomes.push(o);
    }
    bar.finish_and_clear();
    store.close()?;
    let mut bad = 0;
    for (f, o) in files.iter().zip(&outcomes) {
        print_problems(f, o);
        bad += problems(o);
    }
    if ctx.json {
        print_json(&Json::Array(
            files
                .iter()
                .zip(&outcomes)
                .map(|(f, o)| outcome_json(f, o))
                .collect(),
        ));
    } else {
        let mut t = Table::new(&[
            "file",
            ">records",
            ">applied",
            ">ignored",
            ">failed",
            ">runs merged",
            ">runs pending",
            ">recomputed",
            ">patches",
        ]);
        for (f, o) in files.iter().zip(&outcomes) {
            t.row(vec![
                f.display().to_string(),
                o.event.records.to_string(),
                o.event.applied.to_string(),
                o.event.ignored.to_string(),
                o.event.failures.len().to_string(),
                o.follow_ups.merged_runs.len().to_string(),
                o.follow_ups.failed_runs.len().to_string(),
                o.follow_ups.recomputations.to_string(),
                o.follow_ups.patches.to_string(),
            ]);
        }
        t.print();
    }
    if bad > 0 {
        eprintln!(
            "{} not applied (listed above); everything else was",
            plural(bad, "problem", "problems")
        );
        return Ok(1);
    }
    Ok(0)
}

/// What `lambda-invoke` takes besides the role and the event.
pub struct InvokeOptions {
    /// Root of the run deltas (default: STORE/runs).
    pub runs: Option<PathBuf>,
    /// The request id naming inbox files (default: the time).
    pub request_id: Option<String>,
    /// The DynamoDB table run states go to (default: none, printed only).
    pub runs_table: Option<String>,
    /// Where to publish after the invocation.
    pub publish: Option<String>,
}

/// `strata lambda-invoke stream|compactor EVENT [--runs DIR] [--request-id ID]
/// [--runs-table TABLE] [--publish URL]`.
pub fn invoke(ctx: &Ctx, role: LambdaRole, event: &Path, options: InvokeOptions) -> CliResult<i32> {
    let bytes = read_event(event)?;
    let mut settings = Settings::for_store(&ctx.store);
    if let Some(r) = options.runs {
        settings.runs = r;
    }
    settings.publish = options.publish;
    let request_id = options
        .request_id
        .unwrap_or_else(|| format!("local-{}", lambda::now_ms()));
    let mut collecting = CollectingReporter::default();
    let mut dynamo;
    let reporter: &mut dyn RunReporter = match &options.runs_table {
        Some(table) => {
            dynamo = DynamoRunReporter::from_env_blocking(table)
                .map_err(|e| CliError::usage(format!("--runs-table {table}: {e}")))?;
            &mut dynamo
        }
        None => &mut collecting,
    };
    let pb = progress::spinner(format!("{role:?} on {}", event.display()).to_lowercase());
    let outcome = lambda::invoke(role.into(), &settings, &request_id, &bytes, reporter);
    pb.finish_and_clear();
    let outcome = outcome.context(|| event.display().to_string())?;
    if ctx.json {
        print_json(&serde_json::to_value(&outcome).unwrap_or(Json::Null));
    } else {
        println!("{}", outcome.response_json());
        match &outcome {
            Outcome::Stream(s) => eprintln!(
                "{} records: {} applied, {} ignored, {} failed; {} operations in {}",
                s.records,
                s.applied,
                s.ignored,
                s.failures.len(),
                s.operations,
                plural(s.files.len(), "inbox file", "inbox files")
            ),
            Outcome::Compactor(c) => {
                print_problems(event, c);
                eprintln!(
                    "{} ingested; {} merged, {} pending; {} recomputations, {} patches; {} compactions",
                    plural(c.ingested.len(), "inbox file", "inbox files"),
                    plural(c.follow_ups.merged_runs.len(), "run", "runs"),
                    c.follow_ups.failed_runs.len(),
                    c.follow_ups.recomputations,
                    c.follow_ups.patches,
                    c.compactions.len()
                );
            }
        }
    }
    let failed = match &outcome {
        Outcome::Stream(s) => !s.response.batch_item_failures.is_empty(),
        Outcome::Compactor(c) => c
            .response
            .as_ref()
            .is_some_and(|r| !r.batch_item_failures.is_empty()),
    };
    Ok(i32::from(failed))
}
