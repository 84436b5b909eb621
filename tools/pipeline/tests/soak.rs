//! Soak of the receipt pipeline under killed Lambdas: the generated workload
//! (`strata_testkit::workload`) delivered as DynamoDB stream batches to the stream processor
//! and to the compactor, and scheduled compactor invocations, each one run in a child
//! process (this binary re-run) that is killed with SIGKILL at random instants. Delivery
//! follows DynamoDB streams' rules: records are split into two shards by partition key;
//! each shard's batches go in order and a batch that was not answered, or whose answer
//! listed failures, is delivered again (so a batch that was processed but not answered
//! comes twice: duplicates included) before the shard's next one; the two shards interleave
//! at random. Shard 0 goes through the stream processor (inbox files), shard 1 straight to
//! the compactor. A scheduled compactor invocation killed or failed is run again.
//!
//! After the soak, one last compactor run, then: `Expected::check` finds 0 mismatches,
//! every run's rows are present exactly once, no follow-up row is pending, `verify` passes.
//!
//! Kills: `STRATA_SOAK_KILLS` (default 200; the workload grows with it unless
//! `STRATA_SOAK_RECEIPTS` sets it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_engine::{verify_store, Include, ReadableStore, StoreOptions, Writer};
use strata_pipeline::state::StoreState;
use strata_pipeline::{
    process_stream_event, CollectingReporter, Compactor, CompactorOptions, LocalRuns,
};
use strata_stream::event::BatchResponse;
use strata_testkit::workload::{Workload, WorkloadConfig};

const RECORDS_PER_BATCH: usize = 25;

/// The workload: `STRATA_SOAK_RECEIPTS` receipts, else one per 25 kills (6 to 1500). A long
/// run on a smaller workload kills more often per minute: each invocation is shorter.
fn workload(kills: usize) -> Workload {
    let receipts = std::env::var("STRATA_SOAK_RECEIPTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(kills / 25)
        .clamp(6, 1500);
    Workload::generate(&WorkloadConfig {
        receipts,
        seed: 17,
        records_per_event: 60,
        edit_rounds: 1,
    })
}

fn compactor_options() -> CompactorOptions {
    CompactorOptions {
        // Compactions and GC run too, so kills land in them.
        compact: true,
        gc: true,
        ..CompactorOptions::default()
    }
}

fn store_options() -> StoreOptions {
    StoreOptions {
        gc_grace: Duration::from_secs(3600),
        ..StoreOptions::default()
    }
}

/// Write `answer` as the invocation's response (temporary, then rename: whole or absent).
fn answer(dir: &Path, answer: &str) {
    let tmp = dir.join("answer.tmp");
    std::fs::write(&tmp, answer).unwrap();
    std::fs::rename(&tmp, dir.join("answer")).unwrap();
}

/// The child: one Lambda invocation, answering `ok`, or what failed.
fn child(kind: &str, dir: &Path) {
    let store = dir.join("store");
    let event = std::fs::read(dir.join("event.json")).unwrap_or_default();
    let text = match kind {
        "stream" => {
            let producer = std::env::var("STRATA_SOAK_PRODUCER").unwrap();
            match process_stream_event(&store, &producer, &event) {
                Ok(out) if out.response.batch_item_failures.is_empty() => "ok".to_string(),
                Ok(out) => format!("failed: {}", out.response.to_json()),
                Err(e) => format!("error: {e}"),
            }
        }
        _ => {
            let writer = Writer::open(&store, store_options()).unwrap();
            let runs = LocalRuns::new(dir.join("runs"));
            let mut reporter = CollectingReporter::default();
            let event: &[u8] = if kind == "compactor-event" {
                &event
            } else {
                b"{}"
            };
            match Compactor::new(&writer, &runs, &mut reporter, compactor_options()).handle(event) {
                Ok(out) => {
                    let failed = out
                        .response
                        .as_ref()
                        .is_some_and(|r: &BatchResponse| !r.batch_item_failures.is_empty());
                    if failed
                        || !out.inbox_failed.is_empty()
                        || !out.follow_ups.failed_runs.is_empty()
                    {
                        format!(
                            "failed: {:?} {:?} {:?}",
                            out.response, out.inbox_failed, out.follow_ups.failed_runs
                        )
                    } else {
                        "ok".to_string()
                    }
                }
                Err(e) => format!("error: {e}"),
            }
        }
    };
    answer(dir, &text);
}

/// A tiny xorshift generator (fixed seed: the same soak each run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One delivery to retry until answered `ok`.
#[derive(Debug, Clone)]
enum Delivery {
    /// A stream batch to the stream processor.
    Stream(Vec<u8>),
    /// A stream batch to the compactor.
    CompactorEvent(Vec<u8>),
    /// A scheduled compactor invocation.
    Scheduled,
}

impl Delivery {
    fn kind(&self) -> &'static str {
        match self {
            Delivery::Stream(_) => "stream",
            Delivery::CompactorEvent(_) => "compactor-event",
            Delivery::Scheduled => "compactor",
        }
    }
}

/// The soak's counters.
#[derive(Debug, Default)]
struct Counts {
    kills: usize,
    attempts: usize,
    /// Killed after they had answered (the work is done; the answer stands).
    answered_then_killed: usize,
    /// Answers that listed failures (delivered again).
    failed_answers: usize,
    /// Deliveries repeated after a kill or a failure.
    redelivered: usize,
}

struct Soak {
    dir: PathBuf,
    exe: PathBuf,
    rng: Rng,
    target: usize,
    counts: Counts,
    /// Typical run time of an unkilled invocation per kind (the kill window).
    typical: BTreeMap<&'static str, Duration>,
}

impl Soak {
    fn spawn(&self, d: &Delivery, attempt: usize) -> Child {
        let _ = std::fs::remove_file(self.dir.join("answer"));
        let event = match d {
            Delivery::Stream(e) | Delivery::CompactorEvent(e) => e.as_slice(),
            Delivery::Scheduled => b"{}",
        };
        std::fs::write(self.dir.join("event.json"), event).unwrap();
        Command::new(&self.exe)
            .args(["--exact", "killed_lambdas_lose_nothing", "--nocapture"])
            .env("STRATA_SOAK_CHILD", d.kind())
            .env("STRATA_SOAK_DIR", &self.dir)
            .env("STRATA_SOAK_PRODUCER", format!("stream-{attempt}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Deliver until answered `ok`, killing attempts at random instants while kills remain.
    fn deliver(&mut self, d: &Delivery) {
        for round in 0.. {
            if round > 0 {
                self.counts.redelivered += 1;
            }
            assert!(round < 200, "{} never succeeds", d.kind());
            self.counts.attempts += 1;
            let kill = self.counts.kills < self.target && self.rng.below(4) != 0;
            let started = Instant::now();
            let mut child = self.spawn(d, self.counts.attempts);
            if kill {
                let window = self
                    .typical
                    .get(d.kind())
                    .copied()
                    .unwrap_or(Duration::from_millis(40));
                let delay = self.rng.below(window.as_micros() as u64 * 3 / 2 + 1);
                std::thread::sleep(Duration::from_micros(delay));
                if child.try_wait().unwrap().is_none() {
                    child.kill().unwrap();
                    self.counts.kills += 1;
                    if self.counts.kills.is_multiple_of(500) {
                        eprintln!("soak: {} kills, {:?}", self.counts.kills, self.counts);
                    }
                }
            }
            let status = child.wait().unwrap();
            let answer = std::fs::read_to_string(self.dir.join("answer")).ok();
            match answer.as_deref() {
                Some("ok") => {
                    if kill && !status.success() {
                        self.counts.answered_then_killed += 1;
                    }
                    if !kill {
                        let took = started.elapsed();
                        let t = self.typical.entry(d.kind()).or_insert(took);
                        *t = (*t * 3 + took) / 4;
                    }
                    return;
                }
                Some(failed) => {
                    // Deliver again; a failure must not be permanent.
                    self.counts.failed_answers += 1;
                    if !kill {
                        eprintln!("{} answered {failed}", d.kind());
                    }
                }
                None => {
                    if !kill {
                        let mut err = String::new();
                        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err)
                            .unwrap();
                        panic!("{} exited without answering ({status}):\n{err}", d.kind());
                    }
                }
            }
        }
    }
}

/// Every record of the workload, in stream order.
fn records(w: &Workload) -> Vec<Value> {
    w.events
        .iter()
        .flat_map(|e| {
            let v: Value = serde_json::from_slice(e).unwrap();
            v["Records"].as_array().unwrap().clone()
        })
        .collect()
}

/// Records split into two shards by partition key (stream order kept within each), cut
/// into batches.
fn shards(records: &[Value]) -> [Vec<Vec<u8>>; 2] {
    let mut by_shard: [Vec<Value>; 2] = [vec![], vec![]];
    for r in records {
        let pk = r["dynamodb"]["Keys"]["PK"]["S"].as_str().unwrap_or("");
        let h = pk.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        by_shard[(h % 2) as usize].push(r.clone());
    }
    by_shard.map(|rs| {
        rs.chunks(RECORDS_PER_BATCH)
            .map(|c| serde_json::to_vec(&serde_json::json!({ "Records": c })).unwrap())
            .collect()
    })
}

#[test]
fn killed_lambdas_lose_nothing() {
    if let Some(kind) = std::env::var_os("STRATA_SOAK_CHILD") {
        let dir = PathBuf::from(std::env::var_os("STRATA_SOAK_DIR").unwrap());
        child(&kind.to_string_lossy(), &dir);
        return;
    }
    let target: usize = std::env::var("STRATA_SOAK_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let w = workload(target);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    w.write_run_files(&dir.join("runs")).unwrap();
    let all = records(&w);
    let [stream_shard, compactor_shard] = shards(&all);
    let mut soak = Soak {
        dir: dir.clone(),
        exe: std::env::current_exe().unwrap(),
        rng: Rng(0x9E37_79B9_7F4A_7C15),
        target,
        counts: Counts::default(),
        typical: BTreeMap::new(),
    };
    let started = Instant::now();
    let (mut a, mut b) = (0, 0);
    let mut since_schedule = 0;
    // The shards interleave at random; a scheduled compactor run every few batches; once
    // every batch is in, scheduled runs go on until the kills are done.
    while a < stream_shard.len() || b < compactor_shard.len() || soak.counts.kills < target {
        let pick = soak.rng.below(3);
        let d = if since_schedule >= 3 || (a >= stream_shard.len() && b >= compactor_shard.len()) {
            since_schedule = 0;
            Delivery::Scheduled
        } else if (pick == 0 || b >= compactor_shard.len()) && a < stream_shard.len() {
            a += 1;
            since_schedule += 1;
            Delivery::Stream(stream_shard[a - 1].clone())
        } else {
            b += 1;
            since_schedule += 1;
            Delivery::CompactorEvent(compactor_shard[b - 1].clone())
        };
        soak.deliver(&d);
    }
    // The last scheduled run, unkilled, until nothing is pending.
    let store_dir = dir.join("store");
    let runs = LocalRuns::new(dir.join("runs"));
    let store = Writer::open(&store_dir, store_options()).unwrap();
    for _ in 0..20 {
        let mut reporter = CollectingReporter::default();
        let out = Compactor::new(&store, &runs, &mut reporter, compactor_options())
            .handle(b"{}")
            .unwrap();
        assert!(out.inbox_failed.is_empty(), "{:?}", out.inbox_failed);
        assert!(
            out.follow_ups.failed_runs.is_empty(),
            "{:?}",
            out.follow_ups.failed_runs
        );
        if out.ingested.is_empty() && out.follow_ups.pending == 0 {
            break;
        }
    }
    let c = &soak.counts;
    eprintln!(
        "soak: {} kills over {} invocations ({} redeliveries, {} killed after answering, \
         {} failed answers), {} records in {} + {} batches, {} runs, in {:?}",
        c.kills,
        c.attempts,
        c.redelivered,
        c.answered_then_killed,
        c.failed_answers,
        all.len(),
        stream_shard.len(),
        compactor_shard.len(),
        w.runs.len(),
        started.elapsed()
    );
    assert!(c.kills >= target, "{c:?}");
    // The rules.
    let mismatches = w.expected.check(&StoreState::new(&store)).unwrap();
    let shown: Vec<String> = mismatches.iter().take(10).map(|m| m.to_string()).collect();
    assert!(
        mismatches.is_empty(),
        "{} mismatches; first:\n{}",
        mismatches.len(),
        shown.join("\n")
    );
    // No follow-up pending.
    assert_eq!(store.snapshot("followups").unwrap().rows().unwrap(), 0);
    // Every run's rows exactly once: ids are unique, and each receipt's rows number what
    // its last run left (no row missing, none twice under another id).
    for collection in ["lines", "words"] {
        let snap = store.snapshot(collection).unwrap();
        let all_ids: Vec<String> = snap
            .get_where(None, None, 0, Include::ids())
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        let unique: std::collections::BTreeSet<&String> = all_ids.iter().collect();
        assert_eq!(unique.len(), all_ids.len(), "{collection}: duplicate ids");
        for r in &w.expected.receipts {
            let filter =
                strata_stream::ids::receipt_filter(&r.receipt.image_id, r.receipt.receipt_id);
            let rows = snap.count(Some(&filter)).unwrap();
            let expected = if collection == "lines" {
                r.lines.len()
            } else {
                r.words.len()
            };
            assert_eq!(rows, expected, "{collection} rows of {:?}", r.receipt);
        }
    }
    store.close().unwrap();
    let report = verify_store(&store_dir).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}
