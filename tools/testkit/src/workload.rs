//! A deterministic, realistic receipt workload as the receipts table's DynamoDB stream
//! delivers it, for the end-to-end test and `strata demo`.
//!
//! [`Workload::generate`] simulates the DynamoDB table (single table, `PK = IMAGE#…`,
//! stream view `NEW_AND_OLD_IMAGES`) while receipts are uploaded, embedded, labelled,
//! sectioned, edited and deleted, and records every item write as the stream record Lambda
//! receives: INSERT carries only `NewImage`, REMOVE only `OldImage`, MODIFY both, always the
//! exact previous and next item. Items have the attribute names and types of the seed's
//! `receipt_dynamo` entities (the ones `strata_stream::entity` reads and the others the real
//! items carry). Records are grouped into Lambda events (`{"Records": [...]}`) in stream
//! order, with strictly increasing 28-digit SequenceNumbers.
//!
//! # Timeline
//!
//! Uploads, receipt after receipt (two receipts share an image every third image):
//! INSERT of the RECEIPT, its RECEIPT_LINEs and RECEIPT_WORDs; then what is known before
//! embedding — for about half the receipts the RECEIPT_PLACE (merchant names partly in
//! lower case, so that title-casing matters), about two thirds of the RECEIPT_SECTIONs
//! (STOREFRONT / ADDRESS / TRANSACTION_INFO / ITEMS / TOTAL_LINE / PAYMENT / FOOTER, some
//! receipts with overlapping SUMMARY, legacy HEADER, INVALID SURVEY sections and rows split
//! between two sections) and about half the RECEIPT_WORD_LABELs (CORE labels and an
//! occasional non-CORE one, statuses VALID / PENDING / INVALID / NEEDS_REVIEW / NONE,
//! several labels on some words); then the embedding producer writes one sealed strata
//! delta per collection ([`Workload::run_files`], built with `strata_stream::builders` from
//! the table as it is at that moment, ops at seq 0) and inserts the COMPACTION_RUN item.
//! The rest of the receipt's place, sections and labels arrive after the next receipt's
//! run, followed by the compactor's COMPACTION_RUN MODIFY (`COMPLETED`).
//!
//! Edit rounds, a simulated day apart, over the receipts still present, each receipt
//! getting a deterministic mix of: label MODIFY (PENDING → VALID / INVALID, and VALID →
//! INVALID in later rounds), REMOVE of one of several labels of a word, label INSERT,
//! place MODIFY (merchant change with `phone_number` set to NULL), a place MODIFY of
//! fields the stream ignores, place REMOVE, section MODIFY (status, confidence or lines),
//! a section MODIFY of ignored fields, section REMOVE, REMOVE of single words (their labels
//! first) and of single-line rows (words and labels first), RECEIPT MODIFY, and whole
//! receipt deletes (labels, words, lines, sections, place, runs, then the RECEIPT, as
//! DynamoDB emits them). In the first round one receipt is deleted and re-created (new
//! lines, words, place, sections, labels and a new run) inside a single event.
//!
//! [`Workload::expected`] is the final table turned into what the collections must hold
//! ([`Expected::check`] compares a store with it). Generation is pure: the same
//! [`WorkloadConfig`] gives the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use strata_formats::{samples, DeltaHeader, DeltaWriter, MetaValue, Metadata, Op, Operation, Seq};
use strata_stream::builders::{
    self, BoundingBox, ExtractedData, LineInput, Point, RowContext, WordContext, WordInput,
};
use strata_stream::derive::{self, LabelView, SectionView};
use strata_stream::entity::ReceiptPlace;
use strata_stream::ops::{self, Collection, EMBEDDING_DIMS};
use strata_stream::{ids, ReceiptKey, StateReader};

/// Most records [`Workload::generate`] puts in one event.
pub const MAX_RECORDS_PER_EVENT: usize = 1000;
/// Records per event unless configured otherwise.
pub const DEFAULT_RECORDS_PER_EVENT: usize = 100;
/// The `producer` of the run deltas' headers.
pub const PRODUCER: &str = "embedding-producer";
/// File name of a run's delta under its prefix (`lines/delta/{run_id}/part-00000.delta`).
pub const RUN_FILE_NAME: &str = "part-00000.delta";
/// `awsRegion` of every record.
pub const REGION: &str = "us-east-1";
/// `eventSourceARN` of every record.
pub const STREAM_ARN: &str =
    "arn:aws:dynamodb:us-east-1:123456789012:table/ReceiptsTable/stream/2025-02-19T00:00:00.000";

/// Dimensions of the generated embeddings (those of text-embedding-3-small).
pub const DIMS: usize = 1536;

/// A deterministic unit-norm embedding with cluster structure: texts that share a word
/// share a cluster center.
pub fn embedding(cluster: u64, item: u64) -> Vec<f32> {
    let center = samples::noise(cluster.wrapping_mul(0x9E37_79B9), DIMS);
    let noise = samples::noise(item.wrapping_add(1 << 40), DIMS);
    let mut v: Vec<f32> = center
        .iter()
        .zip(&noise)
        .map(|(c, n)| c + 0.45 * n)
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// First SequenceNumber (28 digits, the shape of real ones); later ones grow irregularly.
const BASE_SEQ: u128 = 4_421_584_500_000_000_000_000_000_000;
/// Simulated wall clock at the start, ms since the epoch (2025-02-19T21:20:00Z).
const START_MS: i64 = 1_740_000_000_000;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadConfig {
    /// Receipts uploaded (each with lines, words, place, sections, labels and a run).
    pub receipts: usize,
    /// Seed of every choice: the same configuration gives the same bytes.
    pub seed: u64,
    /// Records per event, clamped to `1..=`[`MAX_RECORDS_PER_EVENT`]. A delete-and-re-create
    /// group is never split across events, so the event holding it may be larger (it is
    /// split only beyond [`MAX_RECORDS_PER_EVENT`], which the generated receipts never
    /// reach).
    pub records_per_event: usize,
    /// Rounds of edits after the uploads (0: uploads only).
    pub edit_rounds: usize,
}

impl Default for WorkloadConfig {
    fn default() -> WorkloadConfig {
        WorkloadConfig {
            receipts: 20,
            seed: 1,
            records_per_event: DEFAULT_RECORDS_PER_EVENT,
            edit_rounds: 1,
        }
    }
}

/// Optional parts of a workload (see [`Workload::generate_with`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extras {
    /// Also write real items of other types that share the receipts' sort-key space:
    /// RECEIPT_LETTER (`…#WORD#{wid}#LETTER#{n}`: inserted with the words, some removed on
    /// their own in the edit rounds) and RECEIPT_WORD_LABEL_COVE_VERIFICATION
    /// (`…#LABEL#{LABEL}#COVE`, inserted after the run). The expected state does not change:
    /// these items are not labels or words, so a stream that mistakes them for ones shows
    /// up as mismatches.
    pub related_items: bool,
}

/// Where a run's records went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    /// The run id (a UUID).
    pub run_id: String,
    /// The receipt embedded.
    pub receipt: ReceiptKey,
    /// `lines_delta_prefix` of the COMPACTION_RUN item (relative to the runs root).
    pub lines_prefix: String,
    /// `words_delta_prefix` of the COMPACTION_RUN item.
    pub words_prefix: String,
    /// Index in [`Workload::events`] of the event holding the run's INSERT.
    pub event: usize,
    /// `lines` records (visual rows) in the run's delta.
    pub lines: usize,
    /// `words` records in the run's delta.
    pub words: usize,
}

/// Counts describing a workload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadStats {
    /// Events.
    pub events: usize,
    /// Stream records over all events.
    pub records: usize,
    /// Records of the largest event.
    pub largest_event: usize,
    /// Records per item `TYPE` and event name (`"RECEIPT_WORD_LABEL MODIFY"` → n).
    pub by_kind: BTreeMap<String, usize>,
}

impl fmt::Display for WorkloadStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} records in {} events (largest {})",
            self.records, self.events, self.largest_event
        )?;
        for (kind, n) in &self.by_kind {
            writeln!(f, "  {kind:<48}{n:>7}")?;
        }
        Ok(())
    }
}

/// A generated workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Lambda DynamoDB stream events (`{"Records":[...]}` with `eventID`, `eventName`,
    /// `eventVersion`, `eventSource` `aws:dynamodb`, `awsRegion`, `eventSourceARN` and
    /// `dynamodb{ApproximateCreationDateTime, Keys, NewImage, OldImage, SequenceNumber,
    /// SizeBytes, StreamViewType: NEW_AND_OLD_IMAGES}`), in stream order; SequenceNumbers
    /// strictly increase across all events.
    pub events: Vec<Vec<u8>>,
    /// Files the embedding producer writes before it inserts each COMPACTION_RUN item:
    /// `(path relative to a runs root, bytes)`, one sealed strata delta per collection per
    /// run at `{lines|words}/delta/{run_id}/`[`RUN_FILE_NAME`] (the item's
    /// `lines_delta_prefix` / `words_delta_prefix` is that directory with a trailing `/`).
    /// Operations are upserts at seq 0: the compactor stamps them with the INSERT's
    /// SequenceNumber.
    pub run_files: Vec<(PathBuf, Vec<u8>)>,
    /// Every run, in stream order.
    pub runs: Vec<RunInfo>,
    /// The final state of the simulated table, and what the collections must hold.
    pub expected: Expected,
    /// Counts.
    pub stats: WorkloadStats,
}

impl Workload {
    /// Generate the workload of `cfg` (without [`Extras`]).
    pub fn generate(cfg: &WorkloadConfig) -> Workload {
        Workload::generate_with(cfg, &Extras::default())
    }

    /// Generate the workload of `cfg` with optional parts.
    pub fn generate_with(cfg: &WorkloadConfig, extras: &Extras) -> Workload {
        let mut g = Gen::new(cfg.seed, extras.clone());
        g.uploads(cfg.receipts);
        for round in 0..cfg.edit_rounds {
            g.edit_round(round);
        }
        g.finish(cfg.records_per_event)
    }

    /// Write [`Workload::run_files`] under `runs_root` (directories created; each file
    /// written under a temporary name, then renamed, so a reader never sees half a delta).
    pub fn write_run_files(&self, runs_root: &Path) -> io::Result<()> {
        for (rel, bytes) in &self.run_files {
            let path = runs_root.join(rel);
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("tmp");
            fs::write(&tmp, bytes)?;
            fs::rename(&tmp, &path)?;
        }
        Ok(())
    }
}

/// Expected values of the checked keys of one record (`None`: the key must be absent).
pub type ExpectedKeys = BTreeMap<String, Option<MetaValue>>;

/// What the collections must hold for one receipt present at the end.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedReceipt {
    /// The receipt.
    pub receipt: ReceiptKey,
    /// `lines` records (visual rows of the receipt's last run whose primary line still
    /// exists) with the expected place keys ([`ops::PLACE_KEYS`]), `section_label` and
    /// [`derive::ROW_LABEL_KEYS`].
    pub lines: BTreeMap<String, ExpectedKeys>,
    /// `words` records (words of the last run still in the table) with the expected place
    /// keys and [`derive::WORD_LABEL_KEYS`].
    pub words: BTreeMap<String, ExpectedKeys>,
    /// Ids of the `labels` rows (one per RECEIPT_WORD_LABEL item).
    pub labels: BTreeSet<String>,
    /// Ids of the `sections` rows (one per RECEIPT_SECTION item).
    pub sections: BTreeSet<String>,
    /// Id of the `places` row (one per RECEIPT_PLACE item: none or one).
    pub places: BTreeSet<String>,
    /// True when no place INSERT, MODIFY or REMOVE followed the receipt's last run: the
    /// records' place keys then come from the place recomputation after the run's merge
    /// (the run's own records carry only the embed-time `merchant_name`). Expected values
    /// are the full place all the same; the flag only tells the workload covers the case.
    pub place_only_at_embed_time: bool,
}

/// The final table as the collections must reflect it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expected {
    /// Receipts present at the end, in key order.
    pub receipts: Vec<ExpectedReceipt>,
    /// Receipts deleted (and not re-created): no record of theirs may remain in any
    /// collection ([`Collection::ALL`]).
    pub deleted: Vec<ReceiptKey>,
    /// Receipts deleted and re-created (new items, new run) inside one event; they are
    /// also in [`Expected::receipts`].
    pub recreated: Vec<ReceiptKey>,
}

/// Record counts of an [`Expected`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpectedSummary {
    /// Receipts present.
    pub receipts: usize,
    /// Receipts deleted.
    pub deleted: usize,
    /// `lines` records.
    pub lines: usize,
    /// `words` records.
    pub words: usize,
    /// `labels` rows.
    pub labels: usize,
    /// `sections` rows.
    pub sections: usize,
    /// `places` rows.
    pub places: usize,
    /// Key values compared by [`Expected::check`].
    pub keys: usize,
}

impl fmt::Display for ExpectedSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} receipts ({} deleted): {} lines, {} words, {} labels, {} sections, {} places, {} keys",
            self.receipts,
            self.deleted,
            self.lines,
            self.words,
            self.labels,
            self.sections,
            self.places,
            self.keys
        )
    }
}

/// A difference between a store and [`Expected`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The collection.
    pub collection: String,
    /// The record id.
    pub id: String,
    /// The metadata key, or `(record)` when the record itself is missing or unexpected.
    pub key: String,
    /// What was expected (a JSON value, `absent`, or `present`).
    pub expected: String,
    /// What was found.
    pub actual: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}: expected {}, found {}",
            self.collection, self.id, self.key, self.expected, self.actual
        )
    }
}

const RECORD_KEY: &str = "(record)";

fn show(v: Option<&MetaValue>) -> String {
    v.map_or_else(|| "absent".to_string(), |v| v.to_json().to_string())
}

impl Expected {
    /// Counts of what is expected.
    pub fn summary(&self) -> ExpectedSummary {
        let mut s = ExpectedSummary {
            receipts: self.receipts.len(),
            deleted: self.deleted.len(),
            ..ExpectedSummary::default()
        };
        for r in &self.receipts {
            s.lines += r.lines.len();
            s.words += r.words.len();
            s.labels += r.labels.len();
            s.sections += r.sections.len();
            s.places += r.places.len();
            s.keys += r
                .lines
                .values()
                .chain(r.words.values())
                .map(BTreeMap::len)
                .sum::<usize>();
        }
        s
    }

    /// Compare a store with the expectation: per present receipt, missing and unexpected
    /// ids in `lines`, `words`, `labels`, `sections` and `places` and every checked key of
    /// every `lines` / `words` record; per deleted receipt, any record still present in any
    /// collection. Empty when the store is as expected.
    pub fn check<R: StateReader>(&self, reader: &R) -> Result<Vec<Mismatch>, R::Error> {
        let mut out = Vec::new();
        let record = |collection: Collection, id: &str, expected: &str, actual: &str| Mismatch {
            collection: collection.as_str().to_string(),
            id: id.to_string(),
            key: RECORD_KEY.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        };
        for r in &self.receipts {
            let filter = ids::receipt_filter(&r.receipt.image_id, r.receipt.receipt_id);
            for (collection, records) in
                [(Collection::Lines, &r.lines), (Collection::Words, &r.words)]
            {
                let actual: BTreeMap<String, Metadata> = reader
                    .get_where(collection.as_str(), &filter)?
                    .into_iter()
                    .collect();
                for (id, keys) in records {
                    let Some(meta) = actual.get(id) else {
                        out.push(record(collection, id, "present", "missing"));
                        continue;
                    };
                    for (key, want) in keys {
                        let got = meta.get(key);
                        if got != want.as_ref() {
                            out.push(Mismatch {
                                collection: collection.as_str().to_string(),
                                id: id.clone(),
                                key: key.clone(),
                                expected: show(want.as_ref()),
                                actual: show(got),
                            });
                        }
                    }
                }
                for id in actual.keys().filter(|id| !records.contains_key(*id)) {
                    out.push(record(collection, id, "absent", "present"));
                }
            }
            for (collection, wanted) in [
                (Collection::Labels, &r.labels),
                (Collection::Sections, &r.sections),
                (Collection::Places, &r.places),
            ] {
                let actual: BTreeSet<String> = reader
                    .get_where(collection.as_str(), &filter)?
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect();
                for id in wanted.difference(&actual) {
                    out.push(record(collection, id, "present", "missing"));
                }
                for id in actual.difference(wanted) {
                    out.push(record(collection, id, "absent", "present"));
                }
            }
        }
        for key in &self.deleted {
            let filter = ids::receipt_filter(&key.image_id, key.receipt_id);
            for collection in Collection::ALL {
                for (id, _) in reader.get_where(collection.as_str(), &filter)? {
                    out.push(record(
                        collection,
                        &id,
                        "absent (receipt deleted)",
                        "present",
                    ));
                }
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// Deterministic choices.

/// splitmix64.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next_u64() % den.max(1) < num
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.get(self.below(items.len())).copied().unwrap_or("")
    }

    fn uuid(&mut self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    fn hex(&mut self, chars: usize) -> String {
        let mut s = String::with_capacity(chars + 16);
        while s.len() < chars {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(chars);
        s
    }

    fn base62(&mut self, chars: usize) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        (0..chars)
            .map(|_| char::from(ALPHABET[self.below(ALPHABET.len())]))
            .collect()
    }
}

fn mix(a: u64, b: u64) -> u64 {
    Rng::new(a ^ b.rotate_left(29) ^ 0xA076_1D64_78BD_642F).next_u64()
}

/// FNV-1a of a string (embedding items and clusters).
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Gregorian (year, month, day) of a day count since 1970-01-01.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// ISO-8601 UTC time with microseconds, as Python's `datetime.isoformat()` writes it.
fn iso(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let micros = ms.rem_euclid(1000) * 1000;
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}+00:00",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

fn money(cents: usize) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// A number as a DynamoDB `N` (shortest text that reads back as the same f64).
fn num(x: f64) -> String {
    format!("{x}")
}

// ---------------------------------------------------------------------------------------
// DynamoDB JSON.

type Item = Map<String, Value>;

fn s(v: impl Into<String>) -> Value {
    json!({ "S": v.into() })
}

fn n(v: impl fmt::Display) -> Value {
    json!({ "N": v.to_string() })
}

fn null() -> Value {
    json!({ "NULL": true })
}

fn opt_s(v: &Option<String>) -> Value {
    v.as_ref().map_or_else(null, |x| s(x.clone()))
}

fn point(x: f64, y: f64) -> Value {
    json!({ "M": { "x": n(num(x)), "y": n(num(y)) } })
}

fn bbox_value(b: &BoundingBox) -> Value {
    json!({ "M": {
        "x": n(num(b.x)), "y": n(num(b.y)),
        "width": n(num(b.width)), "height": n(num(b.height)),
    }})
}

fn corners(b: &BoundingBox) -> [Point; 4] {
    let (l, r, bottom, top) = (b.x, b.x + b.width, b.y, b.y + b.height);
    [
        Point { x: l, y: top },
        Point { x: r, y: top },
        Point { x: l, y: bottom },
        Point { x: r, y: bottom },
    ]
}

fn geometry(item: &mut Item, b: &BoundingBox) {
    let [tl, tr, bl, br] = corners(b);
    item.insert("bounding_box".into(), bbox_value(b));
    item.insert("top_left".into(), point(tl.x, tl.y));
    item.insert("top_right".into(), point(tr.x, tr.y));
    item.insert("bottom_left".into(), point(bl.x, bl.y));
    item.insert("bottom_right".into(), point(br.x, br.y));
    item.insert("angle_degrees".into(), n("0"));
    item.insert("angle_radians".into(), n("0"));
}

fn pk(key: &ReceiptKey) -> String {
    format!("IMAGE#{}", key.image_id)
}

fn receipt_sk(rid: u32) -> String {
    format!("RECEIPT#{rid:05}")
}

fn line_sk(rid: u32, line: u32) -> String {
    format!("RECEIPT#{rid:05}#LINE#{line:05}")
}

fn word_sk(rid: u32, line: u32, word: u32) -> String {
    format!("RECEIPT#{rid:05}#LINE#{line:05}#WORD#{word:05}")
}

fn label_sk(rid: u32, line: u32, word: u32, label: &str) -> String {
    format!("{}#LABEL#{label}", word_sk(rid, line, word))
}

fn base(key: &ReceiptKey, sk: &str, ty: &str) -> Item {
    let mut m = Item::new();
    m.insert("PK".into(), s(pk(key)));
    m.insert("SK".into(), s(sk));
    m.insert("TYPE".into(), s(ty));
    m
}

// ---------------------------------------------------------------------------------------
// The receipt domain, as the simulated table holds it.

/// What a line is on the receipt (decides its words' labels and extracted data, its
/// section and its row's embedding cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Merchant,
    Address,
    Phone,
    Date,
    Time,
    Qty,
    ItemDesc,
    ItemPrice,
    SubtotalLabel,
    SubtotalAmount,
    TaxLabel,
    TaxAmount,
    TotalLabel,
    TotalAmount,
    PaymentDesc,
    PaymentAmount,
    Thanks,
    Url,
}

impl Kind {
    fn section(self) -> &'static str {
        use Kind::*;
        match self {
            Merchant => "STOREFRONT",
            Address | Phone => "ADDRESS",
            Date | Time => "TRANSACTION_INFO",
            Qty | ItemDesc | ItemPrice => "ITEMS",
            SubtotalLabel | SubtotalAmount | TaxLabel | TaxAmount | TotalLabel | TotalAmount => {
                "TOTAL_LINE"
            }
            PaymentDesc | PaymentAmount => "PAYMENT",
            Thanks | Url => "FOOTER",
        }
    }

    fn cluster(self) -> u64 {
        match self.section() {
            "STOREFRONT" => 1,
            "ADDRESS" => 2,
            "TRANSACTION_INFO" => 3,
            "ITEMS" => 4,
            "TOTAL_LINE" => 5,
            "PAYMENT" => 6,
            _ => 7,
        }
    }

    fn is_total(self) -> bool {
        self.section() == "TOTAL_LINE"
    }
}

#[derive(Debug, Clone, PartialEq)]
struct LineM {
    id: u32,
    text: String,
    bbox: BoundingBox,
    confidence: f64,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
struct WordM {
    line_id: u32,
    id: u32,
    text: String,
    bbox: BoundingBox,
    confidence: f64,
    extracted: Option<(String, String)>,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
struct PlaceM {
    place_id: String,
    merchant_name: String,
    merchant_category: Option<String>,
    formatted_address: Option<String>,
    phone_number: Option<String>,
    website: Option<String>,
    latitude: f64,
    longitude: f64,
    confidence: f64,
    timestamp: String,
}

#[derive(Debug, Clone, PartialEq)]
struct SectionM {
    section_type: String,
    line_ids: Vec<u32>,
    confidence: Option<f64>,
    status: Option<String>,
    model_source: String,
    /// Empty: stamped with the clock when written.
    created_at: String,
}

#[derive(Debug, Clone, PartialEq)]
struct LabelM {
    line_id: u32,
    word_id: u32,
    label: String,
    reasoning: Option<String>,
    /// Empty: stamped with the clock when written.
    timestamp_added: String,
    status: String,
    proposed_by: Option<String>,
    consolidated_from: Option<String>,
}

type LabelKey = (u32, u32, String);

impl LabelM {
    fn key(&self) -> LabelKey {
        (self.line_id, self.word_id, self.label.clone())
    }

    fn view(&self) -> LabelView {
        LabelView {
            line_id: self.line_id,
            word_id: self.word_id,
            label: self.label.clone(),
            status: self.status.clone(),
            timestamp_added: Some(self.timestamp_added.clone()),
            proposed_by: self.proposed_by.clone(),
            // ReceiptWordLabel items carry no confidence.
            confidence: None,
        }
    }
}

impl SectionM {
    fn view(&self) -> SectionView {
        SectionView {
            section_type: self.section_type.clone(),
            line_ids: self.line_ids.clone(),
            status: self.status.clone(),
            confidence: self.confidence,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct ReceiptM {
    width: usize,
    height: usize,
    timestamp_added: String,
    raw_key: String,
    sha256: String,
    cdn_key: Option<String>,
}

/// A receipt to upload: its items, and which of place / sections / labels exist before the
/// run (`true`) or arrive after it.
#[derive(Debug, Clone)]
struct Plan {
    key: ReceiptKey,
    merchant: usize,
    receipt: ReceiptM,
    lines: Vec<LineM>,
    words: Vec<WordM>,
    place: PlaceM,
    place_early: bool,
    sections: Vec<(SectionM, bool)>,
    labels: Vec<(LabelM, bool)>,
}

/// The records of the last run: rows (line ids, primary first) and words.
#[derive(Debug, Clone, Default)]
struct Embedded {
    rows: Vec<Vec<u32>>,
    words: Vec<(u32, u32)>,
}

/// A receipt as the table holds it now (`receipt: None` once deleted).
#[derive(Debug, Clone, Default)]
struct ReceiptState {
    merchant: usize,
    receipt: Option<ReceiptM>,
    lines: BTreeMap<u32, LineM>,
    words: BTreeMap<(u32, u32), WordM>,
    place: Option<PlaceM>,
    sections: BTreeMap<String, SectionM>,
    labels: BTreeMap<LabelKey, LabelM>,
    embedded: Option<Embedded>,
    place_after_run: bool,
}

/// Work that reaches the table after a receipt's run.
#[derive(Debug, Clone)]
enum Late {
    Place(PlaceM),
    Section(SectionM),
    Label(LabelM),
    Cove(LabelKey),
    RunDone(String),
}

#[derive(Debug, Clone)]
struct LateBatch {
    key: ReceiptKey,
    items: Vec<Late>,
}

struct Merchant {
    header: &'static str,
    place_name: &'static str,
    category: &'static str,
    street: &'static str,
    city: &'static str,
    phone: &'static str,
    website: &'static str,
    lat: f64,
    lng: f64,
    products: &'static [&'static str],
}

const GROCERY: &[&str] = &[
    "ORGANIC BANANAS",
    "MILK 2% GAL",
    "SOURDOUGH BREAD",
    "LARGE EGGS 12CT",
    "COFFEE BEANS",
    "CHEDDAR CHEESE",
    "BUTTER UNSALTED",
    "BROWN RICE",
    "BLACK BEANS",
    "FUJI APPLES",
    "GREEK YOGURT",
    "BABY SPINACH",
];
const FAST_FOOD: &[&str] = &[
    "DOUBLE-DOUBLE",
    "CHEESEBURGER",
    "FRENCH FRIES",
    "CHOC SHAKE",
    "LEMONADE",
    "BIG MAC",
    "MCNUGGETS 10PC",
    "ICED COFFEE",
];
const CONVENIENCE: &[&str] = &[
    "BIG GULP",
    "SLURPEE",
    "HOT DOG",
    "POTATO CHIPS",
    "ENERGY DRINK",
    "WATER 1L",
    "BEEF JERKY",
];
const STORE: &[&str] = &[
    "PAPER TOWELS",
    "DISH SOAP",
    "USB-C CABLE",
    "TOOTHPASTE",
    "SHAMPOO",
    "BATTERIES AA",
    "TRASH BAGS",
];

const MERCHANTS: [Merchant; 8] = [
    Merchant {
        header: "VONS",
        place_name: "vons",
        category: "grocery_store",
        street: "2800 E Thousand Oaks Blvd",
        city: "Thousand Oaks, CA 91362",
        phone: "(805) 495-5311",
        website: "www.vons.com",
        lat: 34.1753,
        lng: -118.8487,
        products: GROCERY,
    },
    Merchant {
        header: "TRADER JOE'S",
        place_name: "Trader Joe's",
        category: "grocery_store",
        street: "3835 E Thousand Oaks Blvd",
        city: "Westlake Village, CA 91362",
        phone: "(805) 494-5040",
        website: "www.traderjoes.com",
        lat: 34.1574,
        lng: -118.8242,
        products: GROCERY,
    },
    Merchant {
        header: "SPROUTS FARMERS MARKET",
        place_name: "sprouts farmers market",
        category: "grocery_store",
        street: "1800 Avenida De Los Arboles",
        city: "Thousand Oaks, CA 91362",
        phone: "(805) 241-7660",
        website: "sprouts.com",
        lat: 34.2149,
        lng: -118.8712,
        products: GROCERY,
    },
    Merchant {
        header: "COSTCO WHOLESALE",
        place_name: "Costco Wholesale",
        category: "warehouse_store",
        street: "5700 Lindero Canyon Rd",
        city: "Westlake Village, CA 91362",
        phone: "(818) 865-9232",
        website: "www.costco.com",
        lat: 34.1562,
        lng: -118.7944,
        products: STORE,
    },
    Merchant {
        header: "IN-N-OUT BURGER",
        place_name: "in-n-out burger",
        category: "restaurant",
        street: "4000 E Thousand Oaks Blvd",
        city: "Westlake Village, CA 91362",
        phone: "(800) 786-1000",
        website: "www.in-n-out.com",
        lat: 34.1567,
        lng: -118.8183,
        products: FAST_FOOD,
    },
    Merchant {
        header: "7-ELEVEN",
        place_name: "7-eleven",
        category: "convenience_store",
        street: "1125 Lawrence Dr",
        city: "Newbury Park, CA 91320",
        phone: "(805) 499-1019",
        website: "www.7-eleven.com",
        lat: 34.1839,
        lng: -118.9304,
        products: CONVENIENCE,
    },
    Merchant {
        header: "MCDONALD'S",
        place_name: "mcdonald's",
        category: "restaurant",
        street: "1345 Newbury Rd",
        city: "Newbury Park, CA 91320",
        phone: "(805) 498-1177",
        website: "www.mcdonalds.com",
        lat: 34.1846,
        lng: -118.9232,
        products: FAST_FOOD,
    },
    Merchant {
        header: "TARGET",
        place_name: "TARGET",
        category: "department_store",
        street: "2705 Teller Rd",
        city: "Newbury Park, CA 91320",
        phone: "(805) 499-5006",
        website: "www.target.com",
        lat: 34.1861,
        lng: -118.9405,
        products: STORE,
    },
];

const PROPOSERS: [&str; 4] = [
    "label_harmonizer_v2",
    "gpt-4o-mini",
    "pattern_detector",
    "manual_review",
];

fn label_status(rng: &mut Rng, doubtful: bool) -> &'static str {
    let r = rng.below(100);
    if doubtful {
        match r {
            0..=59 => "INVALID",
            60..=89 => "PENDING",
            _ => "VALID",
        }
    } else {
        match r {
            0..=44 => "VALID",
            45..=79 => "PENDING",
            80..=91 => "INVALID",
            92..=96 => "NEEDS_REVIEW",
            _ => "NONE",
        }
    }
}

/// A confidence as written to DynamoDB and read back (two decimals).
fn confidence(rng: &mut Rng, low: usize) -> f64 {
    (low + rng.below(100 - low)) as f64 / 100.0
}

/// The content of a receipt: lines and words laid out top to bottom (y = 0 at the bottom),
/// multi-line visual rows for item / amount pairs, and its place, sections and labels.
fn plan_receipt(rng: &mut Rng, key: &ReceiptKey, merchant: usize, items: usize, ms: i64) -> Plan {
    let m = &MERCHANTS[merchant % MERCHANTS.len()];
    let secs = ms.div_euclid(1000);
    let date = civil(secs.div_euclid(86_400));
    let rows = receipt_rows(rng, m, date, secs.rem_euclid(86_400), items);
    let (lines, words) = lay_out(rng, m, date, &rows);
    let sections = plan_sections(rng, &lines);
    let labels = plan_labels(rng, &words);
    let place = PlaceM {
        place_id: format!("ChIJ{}", rng.base62(23)),
        merchant_name: m.place_name.to_string(),
        merchant_category: Some(m.category.to_string()),
        formatted_address: Some(format!("{}, {}, USA", m.street, m.city)),
        phone_number: Some(m.phone.to_string()),
        website: Some(format!("https://{}/", m.website)),
        latitude: m.lat,
        longitude: m.lng,
        confidence: confidence(rng, 70),
        timestamp: String::new(),
    };
    let receipt = ReceiptM {
        width: 800 + rng.below(800),
        height: 1800 + rng.below(1600),
        timestamp_added: iso(ms),
        raw_key: format!("raw/{}_RECEIPT_{:05}.png", key.image_id, key.receipt_id),
        sha256: rng.hex(64),
        cdn_key: None,
    };
    Plan {
        key: key.clone(),
        merchant,
        receipt,
        lines,
        words,
        place,
        place_early: rng.chance(1, 2),
        sections,
        labels,
    }
}

/// A line of a receipt before layout: text, left edge, width, what it is.
type Cell = (String, f64, f64, Kind);

/// The receipt's rows, top to bottom: header, `items` items (a quantity line above some),
/// totals, payment and footer; `t` is the time of day in seconds.
fn receipt_rows(
    rng: &mut Rng,
    m: &Merchant,
    (y, mo, d): (i64, u32, u32),
    t: i64,
    items: usize,
) -> Vec<Vec<Cell>> {
    let phone_word = m.phone.replace(['(', ')'], "").replace(' ', "-");
    let cell = |text: &str, x: f64, w: f64, kind: Kind| -> Cell { (text.to_string(), x, w, kind) };
    let mut rows: Vec<Vec<Cell>> = vec![
        vec![cell(m.header, 0.28, 0.44, Kind::Merchant)],
        vec![cell(m.street, 0.15, 0.70, Kind::Address)],
        vec![cell(m.city, 0.18, 0.64, Kind::Address)],
        vec![cell(&phone_word, 0.32, 0.36, Kind::Phone)],
        vec![
            cell(&format!("{mo:02}/{d:02}/{y:04}"), 0.05, 0.30, Kind::Date),
            cell(
                &format!("{:02}:{:02}", t / 3600, t % 3600 / 60),
                0.72,
                0.18,
                Kind::Time,
            ),
        ],
    ];
    let mut subtotal = 0;
    for _ in 0..items {
        let product = rng.pick(m.products);
        let qty = if rng.chance(1, 4) {
            2 + rng.below(3)
        } else {
            1
        };
        let unit = 99 + rng.below(1500);
        if qty > 1 {
            rows.push(vec![cell(
                &format!("{qty} @ {}", money(unit)),
                0.10,
                0.40,
                Kind::Qty,
            )]);
        }
        rows.push(vec![
            cell(product, 0.05, 0.55, Kind::ItemDesc),
            cell(&money(unit * qty), 0.75, 0.18, Kind::ItemPrice),
        ]);
        subtotal += unit * qty;
    }
    let tax = (subtotal * 725 + 5000) / 10_000;
    let total = subtotal + tax;
    let card = rng.pick(&["VISA", "MASTERCARD", "AMEX", "DEBIT"]);
    rows.push(vec![
        cell("SUBTOTAL", 0.05, 0.30, Kind::SubtotalLabel),
        cell(&money(subtotal), 0.75, 0.18, Kind::SubtotalAmount),
    ]);
    rows.push(vec![
        cell("TAX", 0.05, 0.12, Kind::TaxLabel),
        cell(&money(tax), 0.75, 0.18, Kind::TaxAmount),
    ]);
    rows.push(vec![
        cell("TOTAL", 0.05, 0.20, Kind::TotalLabel),
        cell(&money(total), 0.75, 0.18, Kind::TotalAmount),
    ]);
    rows.push(vec![
        cell(
            &format!("{card} **** {:04}", rng.below(10_000)),
            0.05,
            0.45,
            Kind::PaymentDesc,
        ),
        cell(&money(total), 0.75, 0.18, Kind::PaymentAmount),
    ]);
    rows.push(vec![cell(
        "THANK YOU FOR SHOPPING",
        0.15,
        0.70,
        Kind::Thanks,
    )]);
    rows.push(vec![cell(m.website, 0.25, 0.50, Kind::Url)]);

    rows
}

/// Lines and words of `rows`, with their geometry and what the OCR extracted.
fn lay_out(
    rng: &mut Rng,
    m: &Merchant,
    (_, mo, d): (i64, u32, u32),
    rows: &[Vec<Cell>],
) -> (Vec<LineM>, Vec<WordM>) {
    // Geometry: rows evenly spaced from the top; a row's second line sits slightly higher
    // (still within the first one's span, so the two group into one visual row).
    let step = 0.92 / rows.len() as f64;
    let height = step * 0.55;
    let (mut lines, mut words) = (Vec::new(), Vec::new());
    let mut line_id = 0;
    for (r, row) in rows.iter().enumerate() {
        let top = 0.96 - r as f64 * step;
        for (c, (text, x, width, kind)) in row.iter().enumerate() {
            line_id += 1;
            let y = top - height + if c > 0 { height * 0.08 } else { 0.0 };
            let bbox = BoundingBox {
                x: *x,
                y,
                width: *width,
                height,
            };
            lines.push(LineM {
                id: line_id,
                text: text.clone(),
                bbox,
                confidence: confidence(rng, 90),
                kind: *kind,
            });
            let tokens: Vec<&str> = text.split_whitespace().collect();
            let chars = text.chars().count().max(1) as f64;
            let mut cursor = *x;
            for (w, token) in tokens.iter().enumerate() {
                let share = token.chars().count() as f64 / chars;
                let extracted = match kind {
                    Kind::Phone => Some(("phone", m.phone.to_string())),
                    Kind::Address => Some(("address", format!("{}, {}", m.street, m.city))),
                    Kind::Url => Some(("url", format!("https://{}/", m.website))),
                    Kind::Date => Some(("date", format!("{y:04}-{mo:02}-{d:02}"))),
                    _ => None,
                };
                words.push(WordM {
                    line_id,
                    id: w as u32 + 1,
                    text: token.to_string(),
                    bbox: BoundingBox {
                        x: cursor,
                        y,
                        width: width * share,
                        height,
                    },
                    confidence: confidence(rng, 80),
                    extracted: extracted.map(|(k, v)| (k.to_string(), v)),
                    kind: *kind,
                });
                cursor += width * (share + 1.0 / chars);
            }
        }
    }

    (lines, words)
}

/// The receipt's sections, each with whether it arrives before the run.
fn plan_sections(rng: &mut Rng, lines: &[LineM]) -> Vec<(SectionM, bool)> {
    // Sections: one per section type, then the variants that exercise the rules.
    let mut by_type: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for l in lines {
        by_type.entry(l.kind.section()).or_default().push(l.id);
    }
    let lines_of = |pred: &dyn Fn(Kind) -> bool| -> Vec<u32> {
        lines
            .iter()
            .filter(|l| pred(l.kind))
            .map(|l| l.id)
            .collect()
    };
    let mut sections: BTreeMap<String, SectionM> = BTreeMap::new();
    for (t, ids) in by_type {
        let status = match rng.below(100) {
            0..=39 => Some("VALID"),
            40..=84 => Some("PENDING"),
            _ => None,
        };
        sections.insert(
            t.to_string(),
            SectionM {
                section_type: t.to_string(),
                line_ids: ids,
                confidence: (!rng.chance(3, 20)).then(|| confidence(rng, 50)),
                status: status.map(str::to_string),
                model_source: "section-seed-v0".into(),
                created_at: String::new(),
            },
        );
    }
    let extra = |t: &str, ids: Vec<u32>, status: &str, conf: f64| SectionM {
        section_type: t.to_string(),
        line_ids: ids,
        confidence: Some(conf),
        status: Some(status.to_string()),
        model_source: "section-seed-v0".into(),
        created_at: String::new(),
    };
    if rng.chance(1, 3) {
        // A competing section over the totals: wins or loses by status, then confidence.
        let conf = confidence(rng, 50);
        sections.insert(
            "SUMMARY".into(),
            extra("SUMMARY", lines_of(&|k| k.is_total()), "PENDING", conf),
        );
    }
    if rng.chance(1, 3) {
        // The last item's amount also in TOTAL_LINE, which wins it: that row is split 1-1.
        if let Some(price) = lines.iter().rev().find(|l| l.kind == Kind::ItemPrice) {
            if let Some(t) = sections.get_mut("TOTAL_LINE") {
                t.line_ids.push(price.id);
                t.line_ids.sort_unstable();
                t.status = Some("VALID".into());
            }
            if let Some(items) = sections.get_mut("ITEMS") {
                items.status = Some("PENDING".into());
            }
        }
    }
    if rng.chance(1, 4) {
        // An INVALID section is ignored however confident.
        let ids = lines_of(&|k| {
            matches!(
                k,
                Kind::Thanks | Kind::Url | Kind::PaymentDesc | Kind::PaymentAmount
            )
        });
        sections.insert("SURVEY".into(), extra("SURVEY", ids, "INVALID", 0.99));
    }
    if rng.chance(1, 5) {
        // The legacy HEADER type, PENDING, over an ADDRESS without status.
        let ids = lines_of(&|k| matches!(k, Kind::Merchant | Kind::Address));
        let conf = confidence(rng, 50);
        sections.insert("HEADER".into(), extra("HEADER", ids, "PENDING", conf));
        if let Some(a) = sections.get_mut("ADDRESS") {
            a.status = None;
        }
    }
    sections
        .into_values()
        .map(|x| {
            let early = !rng.chance(1, 3);
            (x, early)
        })
        .collect()
}

/// The receipt's word labels, each with whether it arrives before the run.
fn plan_labels(rng: &mut Rng, words: &[WordM]) -> Vec<(LabelM, bool)> {
    // Labels: by what the word is; some words carry several.
    let mut labels = Vec::new();
    for w in words {
        let specs: &[(&str, bool, usize)] = match w.kind {
            Kind::Merchant => &[("MERCHANT_NAME", false, 90)],
            Kind::Address => &[("ADDRESS_LINE", false, 80)],
            Kind::Phone => &[("PHONE_NUMBER", false, 90)],
            Kind::Date => &[("DATE", false, 85)],
            Kind::Time => &[("TIME", false, 80)],
            Kind::Qty if w.id == 1 => &[("QUANTITY", false, 80)],
            Kind::Qty if w.id == 3 => &[("UNIT_PRICE", false, 80)],
            Kind::ItemDesc => &[("PRODUCT_NAME", false, 70)],
            Kind::ItemPrice => &[("LINE_TOTAL", false, 75)],
            Kind::SubtotalAmount => &[("SUBTOTAL", false, 90), ("GRAND_TOTAL", true, 30)],
            Kind::TaxAmount => &[("TAX", false, 90)],
            Kind::TotalAmount => &[
                ("GRAND_TOTAL", false, 95),
                ("LINE_TOTAL", true, 45),
                ("SUBTOTAL", true, 20),
            ],
            Kind::PaymentDesc if w.id == 1 => &[("PAYMENT_METHOD", false, 85)],
            Kind::PaymentAmount => &[("GRAND_TOTAL", true, 30)],
            Kind::Thanks => &[("OTHER", false, 25)],
            Kind::Url => &[("WEBSITE", false, 90)],
            _ => &[],
        };
        for &(label, doubtful, percent) in specs {
            if rng.below(100) >= percent {
                continue;
            }
            let label = LabelM {
                line_id: w.line_id,
                word_id: w.id,
                label: label.to_string(),
                reasoning: rng
                    .chance(4, 5)
                    .then(|| format!("'{}' reads as {label}", w.text)),
                timestamp_added: String::new(),
                status: label_status(rng, doubtful).to_string(),
                proposed_by: rng.chance(17, 20).then(|| rng.pick(&PROPOSERS).to_string()),
                consolidated_from: rng.chance(1, 10).then(|| "LINE_TOTAL".to_string()),
            };
            let early = rng.chance(1, 2);
            labels.push((label, early));
        }
    }
    labels
}

// ---------------------------------------------------------------------------------------
// Items.

fn receipt_item(key: &ReceiptKey, r: &ReceiptM) -> Item {
    let sk = receipt_sk(key.receipt_id);
    let mut m = base(key, &sk, "RECEIPT");
    let gsi = format!("IMAGE#{}#{sk}", key.image_id);
    m.insert("GSI1PK".into(), s("IMAGE"));
    m.insert("GSI1SK".into(), s(gsi.clone()));
    m.insert("GSI2PK".into(), s("RECEIPT"));
    m.insert("GSI2SK".into(), s(gsi));
    m.insert("GSI3PK".into(), s(pk(key)));
    m.insert("GSI3SK".into(), s(sk));
    m.insert("width".into(), n(r.width));
    m.insert("height".into(), n(r.height));
    m.insert("timestamp_added".into(), s(r.timestamp_added.clone()));
    m.insert("raw_s3_bucket".into(), s("raw-image-bucket-c779c32"));
    m.insert("raw_s3_key".into(), s(r.raw_key.clone()));
    m.insert("top_left".into(), point(0.04, 0.97));
    m.insert("top_right".into(), point(0.96, 0.97));
    m.insert("bottom_left".into(), point(0.04, 0.03));
    m.insert("bottom_right".into(), point(0.96, 0.03));
    m.insert("sha256".into(), s(r.sha256.clone()));
    m.insert("cdn_s3_bucket".into(), s("cdn-bucket-d2f4a1e"));
    m.insert("cdn_s3_key".into(), opt_s(&r.cdn_key));
    m
}

fn line_item(key: &ReceiptKey, l: &LineM) -> Item {
    let mut m = base(key, &line_sk(key.receipt_id, l.id), "RECEIPT_LINE");
    m.insert("text".into(), s(l.text.clone()));
    geometry(&mut m, &l.bbox);
    m.insert("confidence".into(), n(num(l.confidence)));
    m
}

fn word_item(key: &ReceiptKey, w: &WordM) -> Item {
    let mut m = base(
        key,
        &word_sk(key.receipt_id, w.line_id, w.id),
        "RECEIPT_WORD",
    );
    m.insert("text".into(), s(w.text.clone()));
    geometry(&mut m, &w.bbox);
    m.insert("confidence".into(), n(num(w.confidence)));
    m.insert(
        "extracted_data".into(),
        w.extracted.as_ref().map_or_else(
            null,
            |(t, v)| json!({ "M": { "type": s(t.clone()), "value": s(v.clone()) } }),
        ),
    );
    m.insert("num_chars".into(), n(w.text.chars().count()));
    m
}

fn label_item(key: &ReceiptKey, l: &LabelM) -> Item {
    let rid = key.receipt_id;
    let mut m = base(
        key,
        &label_sk(rid, l.line_id, l.word_id, &l.label),
        "RECEIPT_WORD_LABEL",
    );
    let word = format!(
        "IMAGE#{}#{}",
        key.image_id,
        word_sk(rid, l.line_id, l.word_id)
    );
    let padding = 40usize.saturating_sub("LABEL#".len() + l.label.len());
    m.insert(
        "GSI1PK".into(),
        s(format!("LABEL#{}{}", l.label, "_".repeat(padding))),
    );
    m.insert("GSI1SK".into(), s(word.clone()));
    m.insert("GSI2PK".into(), s("RECEIPT"));
    m.insert("GSI2SK".into(), s(word.clone()));
    m.insert(
        "GSI3PK".into(),
        s(format!("VALIDATION_STATUS#{}", l.status)),
    );
    m.insert("GSI3SK".into(), s(format!("{word}#LABEL#{}", l.label)));
    m.insert("reasoning".into(), opt_s(&l.reasoning));
    m.insert("timestamp_added".into(), s(l.timestamp_added.clone()));
    m.insert("validation_status".into(), s(l.status.clone()));
    m.insert(
        "label_consolidated_from".into(),
        opt_s(&l.consolidated_from),
    );
    m.insert("label_proposed_by".into(), opt_s(&l.proposed_by));
    m
}

fn merchant_slug(name: &str) -> String {
    let upper = name.to_uppercase();
    let mut slug = String::new();
    for c in upper.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('_') {
            slug.push('_');
        }
    }
    slug.trim_matches('_').to_string()
}

fn place_item(key: &ReceiptKey, p: &PlaceM) -> Item {
    let sk = format!("{}#PLACE", receipt_sk(key.receipt_id));
    let mut m = base(key, &sk, "RECEIPT_PLACE");
    let gsi_sk = format!("IMAGE#{}#{sk}", key.image_id);
    m.insert(
        "GSI1PK".into(),
        s(format!("MERCHANT#{}", merchant_slug(&p.merchant_name))),
    );
    m.insert("GSI1SK".into(), s(gsi_sk.clone()));
    m.insert("GSI2PK".into(), s(format!("PLACE#{}", p.place_id)));
    m.insert("GSI2SK".into(), s(gsi_sk));
    m.insert("GSI3PK".into(), s("PLACE_VALIDATION"));
    m.insert(
        "GSI3SK".into(),
        s(format!(
            "CONFIDENCE#{:.4}#STATUS#MATCHED#IMAGE#{}",
            p.confidence, key.image_id
        )),
    );
    m.insert(
        "GSI4PK".into(),
        s(format!(
            "IMAGE#{}#{}",
            key.image_id,
            receipt_sk(key.receipt_id)
        )),
    );
    m.insert("GSI4SK".into(), s("1_PLACE"));
    m.insert("image_id".into(), s(key.image_id.clone()));
    m.insert("receipt_id".into(), n(key.receipt_id));
    m.insert("place_id".into(), s(p.place_id.clone()));
    m.insert("merchant_name".into(), s(p.merchant_name.clone()));
    m.insert("validation_status".into(), s("MATCHED"));
    m.insert("timestamp".into(), s(p.timestamp.clone()));
    m.insert("confidence".into(), n(num(p.confidence)));
    m.insert("merchant_category".into(), opt_s(&p.merchant_category));
    m.insert("formatted_address".into(), opt_s(&p.formatted_address));
    m.insert("phone_number".into(), opt_s(&p.phone_number));
    m.insert("website".into(), opt_s(&p.website));
    m.insert("validated_by".into(), s("INFERENCE"));
    m.insert("places_api_version".into(), s("v1"));
    m.insert("latitude".into(), n(num(p.latitude)));
    m.insert("longitude".into(), n(num(p.longitude)));
    if let Some(c) = &p.merchant_category {
        m.insert(
            "merchant_types".into(),
            json!({ "L": [s(c.clone()), s("store")] }),
        );
    }
    m
}

fn section_item(key: &ReceiptKey, x: &SectionM) -> Item {
    let sk = format!("{}#SECTION#{}", receipt_sk(key.receipt_id), x.section_type);
    let mut m = base(key, &sk, "RECEIPT_SECTION");
    m.insert("section_type".into(), s(x.section_type.clone()));
    let ids: Vec<Value> = x.line_ids.iter().map(|&i| n(i)).collect();
    m.insert("line_ids".into(), json!({ "L": ids }));
    m.insert("created_at".into(), s(x.created_at.clone()));
    if let Some(c) = x.confidence {
        m.insert("confidence".into(), n(num(c)));
    }
    m.insert("model_source".into(), s(x.model_source.clone()));
    if let Some(v) = &x.status {
        m.insert("validation_status".into(), s(v.clone()));
    }
    m
}

fn run_item(key: &ReceiptKey, run_id: &str, created_at: &str) -> Item {
    let sk = format!("{}#COMPACTION_RUN#{run_id}", receipt_sk(key.receipt_id));
    let mut m = base(key, &sk, "COMPACTION_RUN");
    m.insert("GSI1PK".into(), s("RUNS"));
    m.insert("GSI1SK".into(), s(format!("CREATED_AT#{created_at}")));
    m.insert("run_id".into(), s(run_id));
    m.insert("image_id".into(), s(key.image_id.clone()));
    m.insert("receipt_id".into(), n(key.receipt_id));
    m.insert(
        "lines_delta_prefix".into(),
        s(format!("lines/delta/{run_id}/")),
    );
    m.insert(
        "words_delta_prefix".into(),
        s(format!("words/delta/{run_id}/")),
    );
    m.insert("lines_state".into(), s("PENDING"));
    m.insert("words_state".into(), s("PENDING"));
    m.insert("lines_merged_vectors".into(), n(0));
    m.insert("words_merged_vectors".into(), n(0));
    m.insert("created_at".into(), s(created_at));
    for field in [
        "lines_started_at",
        "lines_finished_at",
        "words_started_at",
        "words_finished_at",
        "updated_at",
        "lines_error",
        "words_error",
    ] {
        m.insert(field.into(), null());
    }
    m
}

fn letter_item(key: &ReceiptKey, w: &WordM, index: u32, c: char) -> Item {
    let sk = format!(
        "{}#LETTER#{index:05}",
        word_sk(key.receipt_id, w.line_id, w.id)
    );
    let mut m = base(key, &sk, "RECEIPT_LETTER");
    m.insert("text".into(), s(c.to_string()));
    geometry(&mut m, &w.bbox);
    m.insert("confidence".into(), n(num(w.confidence)));
    m
}

fn cove_item(key: &ReceiptKey, l: &LabelM, text: &str, when: &str) -> Item {
    let sk = format!(
        "{}#COVE",
        label_sk(key.receipt_id, l.line_id, l.word_id, &l.label)
    );
    let mut m = base(key, &sk, "RECEIPT_WORD_LABEL_COVE_VERIFICATION");
    m.insert("GSI1PK".into(), s(format!("LABEL#{}#COVE", l.label)));
    m.insert("GSI1SK".into(), s(format!("VERIFIED#True#{when}")));
    m.insert("verification_questions".into(), json!({ "L": [] }));
    m.insert("verification_answers".into(), json!({ "L": [] }));
    m.insert("initial_label".into(), s(l.label.clone()));
    m.insert("final_label".into(), s(l.label.clone()));
    m.insert("revision_needed".into(), json!({ "BOOL": false }));
    m.insert("overall_assessment".into(), s("consistent"));
    m.insert("cove_verified".into(), json!({ "BOOL": true }));
    m.insert("verification_timestamp".into(), s(when));
    m.insert("llm_model".into(), s("gpt-oss:120b"));
    m.insert("revision_reasoning".into(), null());
    m.insert("word_text".into(), s(text));
    m.insert("merchant_name".into(), null());
    m.insert("can_be_reused_as_template".into(), json!({ "BOOL": false }));
    m.insert("template_applicability_score".into(), n("0.0"));
    m
}

/// Delete order of a receipt's items: children first, the RECEIPT last.
fn delete_rank(ty: &str) -> u8 {
    match ty {
        "RECEIPT_WORD_LABEL" | "RECEIPT_WORD_LABEL_COVE_VERIFICATION" => 0,
        "RECEIPT_LETTER" => 1,
        "RECEIPT_WORD" => 2,
        "RECEIPT_LINE" => 3,
        "RECEIPT_SECTION" => 4,
        "RECEIPT_PLACE" => 5,
        "COMPACTION_RUN" => 6,
        "RECEIPT" => 8,
        _ => 7,
    }
}

fn item_type(item: &Item) -> String {
    match item
        .get("TYPE")
        .and_then(|t| t.get("S"))
        .and_then(Value::as_str)
    {
        Some(t) => t.to_string(),
        None => "UNKNOWN".to_string(),
    }
}

fn encode_delta(collection: Collection, created_ms: i64, ops: &[Operation]) -> Vec<u8> {
    let header = DeltaHeader {
        collection: collection.as_str().to_string(),
        dims: EMBEDDING_DIMS as u32,
        producer: PRODUCER.to_string(),
        first_seq: Seq::ZERO,
        created_ms: u64::try_from(created_ms).unwrap_or(0),
    };
    // A header of a few dozen bytes and records of a few KB are far below the format's
    // limits (1 MiB and 64 MiB), the only reasons this call fails.
    DeltaWriter::encode(&header, ops)
        .expect("a run delta's header and records are far below the limits")
}

// ---------------------------------------------------------------------------------------
// The simulation.

struct Gen {
    seed: u64,
    extras: Extras,
    rng: Rng,
    event_ids: Rng,
    seq: u128,
    clock_ms: i64,
    records: Vec<Value>,
    atomic: Vec<(usize, usize)>,
    table: BTreeMap<(String, String), Item>,
    run_files: Vec<(PathBuf, Vec<u8>)>,
    runs: Vec<(RunInfo, usize)>,
    receipts: BTreeMap<ReceiptKey, ReceiptState>,
    order: Vec<ReceiptKey>,
    recreated: Vec<ReceiptKey>,
    by_kind: BTreeMap<String, usize>,
}

impl Gen {
    fn new(seed: u64, extras: Extras) -> Gen {
        Gen {
            seed,
            extras,
            rng: Rng::new(mix(seed, 1)),
            event_ids: Rng::new(mix(seed, 2)),
            seq: BASE_SEQ + u128::from(seed % 1_000_000) * 1_000_000_000_000,
            clock_ms: START_MS,
            records: Vec::new(),
            atomic: Vec::new(),
            table: BTreeMap::new(),
            run_files: Vec::new(),
            runs: Vec::new(),
            receipts: BTreeMap::new(),
            order: Vec::new(),
            recreated: Vec::new(),
            by_kind: BTreeMap::new(),
        }
    }

    fn now(&self) -> String {
        iso(self.clock_ms)
    }

    fn st(&mut self, key: &ReceiptKey) -> &mut ReceiptState {
        self.receipts.entry(key.clone()).or_default()
    }

    fn present(&self, key: &ReceiptKey) -> bool {
        self.receipts.get(key).is_some_and(|r| r.receipt.is_some())
    }

    // -- stream records --------------------------------------------------------------

    fn record(&mut self, name: &str, key: (String, String), new: Option<Item>, old: Option<Item>) {
        self.seq += 10_000_000 + u128::from(self.event_ids.next_u64() % 90_000_000);
        self.clock_ms += 40 + (self.event_ids.next_u64() % 400) as i64;
        let ty = new
            .as_ref()
            .or(old.as_ref())
            .map_or_else(|| "UNKNOWN".into(), item_type);
        *self.by_kind.entry(format!("{ty} {name}")).or_default() += 1;
        let (pk, sk) = key;
        let keys = json!({ "PK": s(pk), "SK": s(sk) });
        let size = keys.to_string().len()
            + new
                .as_ref()
                .map_or(0, |i| Value::Object(i.clone()).to_string().len())
            + old
                .as_ref()
                .map_or(0, |i| Value::Object(i.clone()).to_string().len());
        let mut change = Map::new();
        change.insert(
            "ApproximateCreationDateTime".into(),
            json!(self.clock_ms.div_euclid(1000)),
        );
        change.insert("Keys".into(), keys);
        if let Some(item) = new {
            change.insert("NewImage".into(), Value::Object(item));
        }
        if let Some(item) = old {
            change.insert("OldImage".into(), Value::Object(item));
        }
        change.insert("SequenceNumber".into(), json!(self.seq.to_string()));
        change.insert("SizeBytes".into(), json!(size));
        change.insert("StreamViewType".into(), json!("NEW_AND_OLD_IMAGES"));
        let event_id = self.event_ids.hex(32);
        self.records.push(json!({
            "eventID": event_id,
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": REGION,
            "dynamodb": Value::Object(change),
            "eventSourceARN": STREAM_ARN,
        }));
    }

    /// PutItem: INSERT, or MODIFY of the item it replaces.
    fn put(&mut self, item: Item) {
        let key = |field: &str| {
            item.get(field)
                .and_then(|v| v.get("S"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let k = (key("PK"), key("SK"));
        let old = self.table.insert(k.clone(), item.clone());
        let name = if old.is_some() { "MODIFY" } else { "INSERT" };
        self.record(name, k, Some(item), old);
    }

    /// DeleteItem: REMOVE with the old image (nothing when the item does not exist).
    fn delete(&mut self, pk: &str, sk: &str) {
        let k = (pk.to_string(), sk.to_string());
        if let Some(old) = self.table.remove(&k) {
            self.record("REMOVE", k, None, Some(old));
        }
    }

    /// Keys of the table items of `pk` whose sort key is `sk` or starts with `sk#`.
    fn children(&self, pk: &str, sk: &str) -> Vec<(String, String)> {
        let nested = format!("{sk}#");
        self.table
            .range((pk.to_string(), sk.to_string())..)
            .take_while(|((p, k), _)| p == pk && (k == sk || k.starts_with(&nested)))
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn atomic(&mut self, f: impl FnOnce(&mut Gen)) {
        let start = self.records.len();
        f(self);
        let end = self.records.len();
        if end > start {
            self.atomic.push((start, end));
        }
    }

    // -- items, keeping the receipt model in step with the table ----------------------

    fn put_receipt(&mut self, key: &ReceiptKey, r: ReceiptM) {
        self.put(receipt_item(key, &r));
        self.st(key).receipt = Some(r);
    }

    fn put_line(&mut self, key: &ReceiptKey, l: LineM) {
        self.put(line_item(key, &l));
        self.st(key).lines.insert(l.id, l);
    }

    fn put_word(&mut self, key: &ReceiptKey, w: WordM) {
        self.put(word_item(key, &w));
        if self.extras.related_items && w.line_id == 1 && w.id == 1 {
            for (i, c) in w.text.chars().take(3).enumerate() {
                self.put(letter_item(key, &w, i as u32 + 1, c));
            }
        }
        self.st(key).words.insert((w.line_id, w.id), w);
    }

    fn put_place(&mut self, key: &ReceiptKey, mut p: PlaceM) {
        p.timestamp = self.now();
        self.put(place_item(key, &p));
        let st = self.st(key);
        st.place = Some(p);
        st.place_after_run = true;
    }

    fn remove_place(&mut self, key: &ReceiptKey) {
        self.delete(&pk(key), &format!("{}#PLACE", receipt_sk(key.receipt_id)));
        let st = self.st(key);
        st.place = None;
        st.place_after_run = true;
    }

    fn put_section(&mut self, key: &ReceiptKey, mut x: SectionM) {
        if x.created_at.is_empty() {
            x.created_at = self.now();
        }
        self.put(section_item(key, &x));
        self.st(key).sections.insert(x.section_type.clone(), x);
    }

    fn remove_section(&mut self, key: &ReceiptKey, section_type: &str) {
        let sk = format!("{}#SECTION#{section_type}", receipt_sk(key.receipt_id));
        self.delete(&pk(key), &sk);
        self.st(key).sections.remove(section_type);
    }

    fn put_label(&mut self, key: &ReceiptKey, mut l: LabelM) {
        if l.timestamp_added.is_empty() {
            l.timestamp_added = self.now();
        }
        self.put(label_item(key, &l));
        self.st(key).labels.insert(l.key(), l);
    }

    fn remove_label(&mut self, key: &ReceiptKey, k: &LabelKey) {
        let sk = label_sk(key.receipt_id, k.0, k.1, &k.2);
        for (p, child) in self.children(&pk(key), &sk).into_iter().rev() {
            self.delete(&p, &child);
        }
        self.st(key).labels.remove(k);
    }

    /// A word, its labels first (and whatever else hangs under its key).
    fn remove_word(&mut self, key: &ReceiptKey, word: (u32, u32)) {
        let labels: Vec<LabelKey> = self.receipts.get(key).map_or_else(Vec::new, |st| {
            st.labels
                .keys()
                .filter(|k| (k.0, k.1) == word)
                .cloned()
                .collect()
        });
        for k in &labels {
            self.remove_label(key, k);
        }
        let sk = word_sk(key.receipt_id, word.0, word.1);
        for (p, child) in self.children(&pk(key), &sk).into_iter().rev() {
            self.delete(&p, &child);
        }
        self.st(key).words.remove(&word);
    }

    /// A line, its words (and their labels) first.
    fn remove_line(&mut self, key: &ReceiptKey, line: u32) {
        let words: Vec<(u32, u32)> = self.receipts.get(key).map_or_else(Vec::new, |st| {
            st.words.keys().filter(|w| w.0 == line).copied().collect()
        });
        for w in words {
            self.remove_word(key, w);
        }
        self.delete(&pk(key), &line_sk(key.receipt_id, line));
        self.st(key).lines.remove(&line);
    }

    /// Delete a receipt as the application does: every item of the receipt, labels first,
    /// then letters, words, lines, sections, place, runs, and the RECEIPT last.
    fn delete_receipt(&mut self, key: &ReceiptKey) {
        let pk = pk(key);
        let mut keys: Vec<(u8, (String, String))> = self
            .children(&pk, &receipt_sk(key.receipt_id))
            .into_iter()
            .map(|k| {
                let rank = self.table.get(&k).map_or(7, |i| delete_rank(&item_type(i)));
                (rank, k)
            })
            .collect();
        keys.sort_by_key(|a| a.0);
        for (_, (p, sk)) in keys {
            self.delete(&p, &sk);
        }
        let merchant = self.st(key).merchant;
        *self.st(key) = ReceiptState {
            merchant,
            ..ReceiptState::default()
        };
    }

    // -- the embedding producer --------------------------------------------------------

    /// Embed the receipt as the table holds it now: write the two run deltas, then insert
    /// the COMPACTION_RUN item. Returns the run id.
    fn embed_run(&mut self, key: &ReceiptKey) -> String {
        let run_id = self.rng.uuid();
        let Some(st) = self.receipts.get(key).cloned() else {
            return run_id;
        };
        let (image, rid) = (&key.image_id, key.receipt_id);
        let (lines, words) = run_inputs(key, &st);
        let labels: Vec<LabelView> = st.labels.values().map(LabelM::view).collect();
        let sections: Vec<SectionView> = st.sections.values().map(SectionM::view).collect();
        let merchant = st.place.as_ref().map(|p| p.merchant_name.as_str());
        let seed = self.seed;

        let mut embedded = Embedded::default();
        let mut word_ops = Vec::with_capacity(words.len());
        for (i, w) in words.iter().enumerate() {
            let same_line = |o: &&WordInput| o.line_id == w.line_id;
            let left = i
                .checked_sub(1)
                .and_then(|j| words.get(j))
                .filter(same_line)
                .map(|o| o.text.as_str());
            let right = words.get(i + 1).filter(same_line).map(|o| o.text.as_str());
            let own: Vec<LabelView> = labels
                .iter()
                .filter(|l| l.line_id == w.line_id && l.word_id == w.word_id)
                .cloned()
                .collect();
            let cx = WordContext {
                left,
                right,
                merchant_name: merchant,
                labels: &own,
            };
            let id = ids::word_id(image, rid, w.line_id, w.word_id);
            let embedding = embedding(100 + fnv(&w.text) % 400, fnv(&id) ^ seed);
            word_ops.push(Operation {
                seq: Seq::ZERO,
                op: Op::Upsert(builders::word_record(w, &cx, embedding)),
            });
            embedded.words.push((w.line_id, w.word_id));
        }
        let mut line_ops = Vec::new();
        let cx = RowContext {
            words: &words,
            merchant_name: merchant,
            sections: &sections,
            labels: &labels,
        };
        for row in builders::group_rows(&lines) {
            let row: Vec<&LineInput> = row.iter().filter_map(|&i| lines.get(i)).collect();
            let Some(primary) = row.first() else { continue };
            let cluster = st
                .lines
                .get(&primary.line_id)
                .map_or(0, |l| l.kind.cluster());
            let id = ids::line_id(image, rid, primary.line_id);
            let embedding = embedding(cluster, fnv(&id) ^ seed);
            if let Some(record) = builders::row_record(&row, &cx, embedding) {
                line_ops.push(Operation {
                    seq: Seq::ZERO,
                    op: Op::Upsert(record),
                });
                embedded.rows.push(row.iter().map(|l| l.line_id).collect());
            }
        }
        let info = RunInfo {
            run_id: run_id.clone(),
            receipt: key.clone(),
            lines_prefix: format!("lines/delta/{run_id}/"),
            words_prefix: format!("words/delta/{run_id}/"),
            event: 0,
            lines: line_ops.len(),
            words: word_ops.len(),
        };
        for (collection, prefix, ops) in [
            (Collection::Lines, &info.lines_prefix, &line_ops),
            (Collection::Words, &info.words_prefix, &word_ops),
        ] {
            self.run_files.push((
                Path::new(prefix).join(RUN_FILE_NAME),
                encode_delta(collection, self.clock_ms, ops),
            ));
        }
        let now = self.now();
        self.put(run_item(key, &run_id, &now));
        self.runs.push((info, self.records.len() - 1));
        let st = self.st(key);
        st.embedded = Some(embedded);
        st.place_after_run = false;
        run_id
    }

    /// The compactor's write-back (`COMPLETED`), which the stream ignores.
    fn complete_run(&mut self, key: &ReceiptKey, run_id: &str) {
        let k = (
            pk(key),
            format!("{}#COMPACTION_RUN#{run_id}", receipt_sk(key.receipt_id)),
        );
        let Some(mut item) = self.table.get(&k).cloned() else {
            return;
        };
        let counts = self
            .runs
            .iter()
            .find(|(r, _)| r.run_id == run_id)
            .map_or((0, 0), |(r, _)| (r.lines, r.words));
        let now = self.now();
        for c in ["lines", "words"] {
            item.insert(format!("{c}_state"), s("COMPLETED"));
            item.insert(format!("{c}_started_at"), s(now.clone()));
            item.insert(format!("{c}_finished_at"), s(now.clone()));
        }
        item.insert("lines_merged_vectors".into(), n(counts.0));
        item.insert("words_merged_vectors".into(), n(counts.1));
        item.insert("updated_at".into(), s(now));
        self.put(item);
    }

    // -- the timeline --------------------------------------------------------------------

    /// Upload a receipt: its items, what is known before embedding, the run. Returns what
    /// arrives later.
    fn ingest(&mut self, plan: Plan) -> LateBatch {
        let key = plan.key.clone();
        self.receipts.insert(
            key.clone(),
            ReceiptState {
                merchant: plan.merchant,
                ..ReceiptState::default()
            },
        );
        self.put_receipt(&key, plan.receipt);
        for l in plan.lines {
            self.put_line(&key, l);
        }
        for w in plan.words {
            self.put_word(&key, w);
        }
        let mut late = Vec::new();
        if plan.place_early {
            self.put_place(&key, plan.place);
        } else {
            late.push(Late::Place(plan.place));
        }
        for (x, early) in plan.sections {
            if early {
                self.put_section(&key, x);
            } else {
                late.push(Late::Section(x));
            }
        }
        let first_label = plan.labels.first().map(|(l, _)| l.key());
        for (l, early) in plan.labels {
            if early {
                self.put_label(&key, l);
            } else {
                late.push(Late::Label(l));
            }
        }
        let run_id = self.embed_run(&key);
        if self.extras.related_items {
            if let Some(k) = first_label {
                late.push(Late::Cove(k));
            }
        }
        late.push(Late::RunDone(run_id));
        LateBatch { key, items: late }
    }

    fn apply_late(&mut self, batch: LateBatch) {
        let key = batch.key;
        if !self.present(&key) {
            return;
        }
        for item in batch.items {
            match item {
                Late::Place(p) => self.put_place(&key, p),
                Late::Section(x) => self.put_section(&key, x),
                Late::Label(l) => self.put_label(&key, l),
                Late::Cove(k) => {
                    let label = self
                        .receipts
                        .get(&key)
                        .and_then(|st| st.labels.get(&k))
                        .cloned();
                    let text = self
                        .receipts
                        .get(&key)
                        .and_then(|st| st.words.get(&(k.0, k.1)))
                        .map_or_else(String::new, |w| w.text.clone());
                    if let Some(l) = label {
                        let now = self.now();
                        self.put(cove_item(&key, &l, &text, &now));
                    }
                }
                Late::RunDone(run_id) => self.complete_run(&key, &run_id),
            }
        }
    }

    fn key_of(&mut self, i: usize) -> ReceiptKey {
        // Every third image holds two receipts.
        match (i % 3, self.order.last()) {
            (1, Some(prev)) => ReceiptKey {
                image_id: prev.image_id.clone(),
                receipt_id: 2,
            },
            _ => ReceiptKey {
                image_id: self.rng.uuid(),
                receipt_id: 1,
            },
        }
    }

    fn uploads(&mut self, receipts: usize) {
        let mut pending: Option<LateBatch> = None;
        for i in 0..receipts {
            self.clock_ms += 20_000 + (self.rng.below(40_000)) as i64;
            let key = self.key_of(i);
            self.order.push(key.clone());
            let mut rng = Rng::new(mix(self.seed, 1000 + i as u64));
            let merchant = rng.below(MERCHANTS.len());
            let items = 2 + rng.below(4);
            let plan = plan_receipt(&mut rng, &key, merchant, items, self.clock_ms);
            let late = self.ingest(plan);
            // The previous receipt's late items land after this receipt's run.
            if let Some(prev) = pending.take() {
                self.apply_late(prev);
            }
            pending = Some(late);
        }
        if let Some(prev) = pending {
            self.apply_late(prev);
        }
    }

    fn edit_round(&mut self, round: usize) {
        self.clock_ms += 86_400_000;
        let keys = self.order.clone();
        let recreate = (round == 0 && !keys.is_empty()).then_some(keys.len() / 2);
        for (i, key) in keys.iter().enumerate() {
            if !self.present(key) {
                continue;
            }
            self.clock_ms += 5_000 + (self.rng.below(60_000)) as i64;
            let mut rng = Rng::new(mix(self.seed, ((round as u64) << 32) | i as u64));
            if recreate == Some(i) {
                self.recreate(key, &mut rng);
            } else if (i + round) % 8 == 6 {
                self.delete_receipt(key);
            } else {
                self.edit_receipt(key, i, round, &mut rng);
            }
        }
    }

    /// Delete a receipt and upload it again (a re-OCR: new lines, words, place, sections,
    /// labels and run) within one event.
    fn recreate(&mut self, key: &ReceiptKey, rng: &mut Rng) {
        let merchant = self.receipts.get(key).map_or(0, |st| st.merchant);
        self.atomic(|g| {
            g.delete_receipt(key);
            let items = 1 + rng.below(3);
            let plan = plan_receipt(rng, key, merchant, items, g.clock_ms);
            let late = g.ingest(plan);
            g.apply_late(late);
        });
        self.recreated.push(key.clone());
    }

    /// One round of edits of a receipt: `i` (the receipt's position) and `round` pick which.
    fn edit_receipt(&mut self, key: &ReceiptKey, i: usize, round: usize, rng: &mut Rng) {
        let Some(st) = self.receipts.get(key).cloned() else {
            return;
        };
        self.edit_labels(key, &st, i, round, rng);
        self.edit_place(key, &st, i, rng);
        self.edit_sections(key, &st, i, rng);
        self.remove_rows(key, &st, i, rng);
        self.edit_receipt_item(key, &st, i);
    }

    /// Labels: MODIFY (review, audit), REMOVE of one of several labels of a word, INSERT
    /// after the run.
    fn edit_labels(
        &mut self,
        key: &ReceiptKey,
        st: &ReceiptState,
        i: usize,
        round: usize,
        rng: &mut Rng,
    ) {
        // Label MODIFY: PENDING → VALID / INVALID (review), later rounds VALID → INVALID.
        let mut pending: Vec<LabelM> = st
            .labels
            .values()
            .filter(|l| l.status == "PENDING")
            .cloned()
            .collect();
        for _ in 0..2 {
            if pending.is_empty() {
                break;
            }
            let mut l = pending.remove(rng.below(pending.len()));
            l.status = if rng.chance(2, 3) { "VALID" } else { "INVALID" }.into();
            l.reasoning = Some("confirmed by reviewer".into());
            self.put_label(key, l);
        }
        if round > 0 && i % 2 == 1 {
            let valid: Vec<&LabelM> = st.labels.values().filter(|l| l.status == "VALID").collect();
            if let Some(l) = valid.get(rng.below(valid.len())) {
                let mut l = (*l).clone();
                l.status = "INVALID".into();
                l.reasoning = Some("rejected on audit".into());
                self.put_label(key, l);
            }
        }
        // Label REMOVE: one of several labels of a word; the others stay.
        if i.is_multiple_of(2) {
            let current = self
                .receipts
                .get(key)
                .map(|s| s.labels.clone())
                .unwrap_or_default();
            let mut per_word: BTreeMap<(u32, u32), Vec<LabelKey>> = BTreeMap::new();
            for k in current.keys() {
                per_word.entry((k.0, k.1)).or_default().push(k.clone());
            }
            let several: Vec<&Vec<LabelKey>> = per_word.values().filter(|v| v.len() > 1).collect();
            if let Some(ks) = several.get(rng.below(several.len())) {
                if let Some(k) = ks.get(rng.below(ks.len())) {
                    self.remove_label(key, k);
                }
            }
        }
        // Label INSERT after the run.
        if i % 3 == 1 {
            let words: Vec<&WordM> = st.words.values().collect();
            if let Some(w) = words.get(rng.below(words.len())) {
                let label = rng.pick(&["DISCOUNT", "COUPON", "LOYALTY_ID", "PRODUCT_NAME"]);
                if !st
                    .labels
                    .contains_key(&(w.line_id, w.id, label.to_string()))
                {
                    self.put_label(
                        key,
                        LabelM {
                            line_id: w.line_id,
                            word_id: w.id,
                            label: label.to_string(),
                            reasoning: Some(format!("'{}' reads as {label}", w.text)),
                            timestamp_added: String::new(),
                            status: if rng.chance(1, 2) { "PENDING" } else { "VALID" }.into(),
                            proposed_by: Some("manual_review".into()),
                            consolidated_from: None,
                        },
                    );
                }
            }
        }
    }

    /// The place: a merchant change with a field set to NULL, a change of ignored fields,
    /// removal.
    fn edit_place(&mut self, key: &ReceiptKey, st: &ReceiptState, i: usize, rng: &mut Rng) {
        // Place: merchant change with a field set to NULL; a change of ignored fields;
        // removal.
        if let Some(p) = &st.place {
            match i % 4 {
                0 => {
                    let mut p = p.clone();
                    p.merchant_name = format!("{} #{}", p.merchant_name, 1000 + rng.below(9000));
                    p.phone_number = None;
                    self.put_place(key, p);
                }
                2 => {
                    // Only `timestamp` and `confidence` change: the stream ignores it.
                    let mut p = p.clone();
                    p.confidence = 0.97;
                    let keep = self.st(key).place_after_run;
                    self.put_place(key, p);
                    self.st(key).place_after_run = keep;
                }
                _ => {}
            }
            if i % 5 == 3 {
                self.remove_place(key);
            }
        }
    }

    /// Sections: MODIFY (status / confidence, or lines), MODIFY of ignored fields, REMOVE.
    fn edit_sections(&mut self, key: &ReceiptKey, st: &ReceiptState, i: usize, rng: &mut Rng) {
        // Sections: MODIFY (status / confidence, or lines), MODIFY of ignored fields,
        // REMOVE.
        let types: Vec<String> = st.sections.keys().cloned().collect();
        if i.is_multiple_of(3) {
            if let Some(t) = types.get(rng.below(types.len())) {
                if let Some(mut x) = st.sections.get(t).cloned() {
                    if rng.chance(1, 2) || x.line_ids.len() < 2 {
                        x.status = Some(
                            if x.status.as_deref() == Some("VALID") {
                                "PENDING"
                            } else {
                                "VALID"
                            }
                            .into(),
                        );
                        x.confidence = Some(0.99);
                    } else {
                        x.line_ids.pop();
                    }
                    self.put_section(key, x);
                }
            }
        }
        if i % 6 == 5 {
            if let Some(t) = types.first() {
                if let Some(mut x) = st.sections.get(t).cloned() {
                    x.model_source = "section-seed-v1".into();
                    x.created_at = self.now();
                    self.put_section(key, x);
                }
            }
        }
        if i % 4 == 1 {
            if let Some(t) = types.get(rng.below(types.len())) {
                self.remove_section(key, t);
            }
        }
    }

    /// Single words and single-line rows removed (their labels and words first).
    fn remove_rows(&mut self, key: &ReceiptKey, st: &ReceiptState, i: usize, rng: &mut Rng) {
        // A single word (its labels first).
        if i % 3 == 2 {
            let candidates: Vec<(u32, u32)> = st
                .words
                .keys()
                .filter(|(l, _)| st.words.keys().filter(|(m, _)| m == l).count() > 1)
                .copied()
                .collect();
            if let Some(&w) = candidates.get(rng.below(candidates.len())) {
                self.remove_word(key, w);
            }
        }
        // A single-line row: its words and labels, then the line.
        if i % 5 == 1 {
            let now_lines = self
                .receipts
                .get(key)
                .map(|s| s.lines.clone())
                .unwrap_or_default();
            let singles: Vec<u32> = st
                .embedded
                .as_ref()
                .map(|e| {
                    e.rows
                        .iter()
                        .filter(|r| r.len() == 1)
                        .filter_map(|r| r.first().copied())
                        .filter(|l| now_lines.contains_key(l))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(&l) = singles.get(rng.below(singles.len())) {
                self.remove_line(key, l);
            }
        }
    }

    /// A RECEIPT MODIFY, and letters removed on their own.
    fn edit_receipt_item(&mut self, key: &ReceiptKey, st: &ReceiptState, i: usize) {
        // A RECEIPT MODIFY (the stream ignores it).
        if i.is_multiple_of(5) {
            if let Some(mut r) = st.receipt.clone() {
                r.cdn_key = Some(format!(
                    "assets/{}_RECEIPT_{:05}.webp",
                    key.image_id, key.receipt_id
                ));
                self.put_receipt(key, r);
            }
        }
        // Letters removed on their own (re-segmentation), with the related items.
        if self.extras.related_items && i % 2 == 1 {
            let sk = format!("{}#LETTER#", word_sk(key.receipt_id, 1, 1));
            let letters: Vec<(String, String)> = self
                .children(&pk(key), &word_sk(key.receipt_id, 1, 1))
                .into_iter()
                .filter(|(_, k)| k.starts_with(&sk))
                .collect();
            for (p, k) in letters {
                self.delete(&p, &k);
            }
        }
    }

    // -- results --------------------------------------------------------------------------

    fn expected(&self) -> Expected {
        let mut out = Expected {
            recreated: self.recreated.clone(),
            ..Expected::default()
        };
        for (key, st) in &self.receipts {
            if st.receipt.is_none() {
                out.deleted.push(key.clone());
                continue;
            }
            let labels: Vec<LabelView> = st.labels.values().map(LabelM::view).collect();
            let sections: Vec<SectionView> = st.sections.values().map(SectionM::view).collect();
            let map = derive::line_sections(&sections);
            let place = place_values(key, st.place.as_ref());
            let mut r = ExpectedReceipt {
                receipt: key.clone(),
                lines: BTreeMap::new(),
                words: BTreeMap::new(),
                labels: st
                    .labels
                    .values()
                    .map(|l| {
                        ids::label_row_id(
                            &key.image_id,
                            key.receipt_id,
                            l.line_id,
                            l.word_id,
                            &l.label,
                        )
                    })
                    .collect(),
                sections: st
                    .sections
                    .keys()
                    .map(|t| ids::section_row_id(&key.image_id, key.receipt_id, t))
                    .collect(),
                places: st
                    .place
                    .iter()
                    .map(|_| ids::place_row_id(&key.image_id, key.receipt_id))
                    .collect(),
                place_only_at_embed_time: !st.place_after_run,
            };
            let embedded = st.embedded.clone().unwrap_or_default();
            for row in &embedded.rows {
                let Some(&primary) = row.first() else {
                    continue;
                };
                if !st.lines.contains_key(&primary) {
                    continue;
                }
                let mut keys: ExpectedKeys = place.iter().cloned().collect();
                keys.insert(
                    "section_label".into(),
                    derive::row_section(row, &map).map(MetaValue::Str),
                );
                let on_row: Vec<&LabelView> =
                    labels.iter().filter(|l| row.contains(&l.line_id)).collect();
                for (k, v) in derive::row_label_values(&on_row) {
                    keys.insert(k.to_string(), v);
                }
                r.lines
                    .insert(ids::line_id(&key.image_id, key.receipt_id, primary), keys);
            }
            for &(line, word) in &embedded.words {
                if !st.words.contains_key(&(line, word)) {
                    continue;
                }
                let own: Vec<LabelView> = labels
                    .iter()
                    .filter(|l| l.line_id == line && l.word_id == word)
                    .cloned()
                    .collect();
                let mut keys: ExpectedKeys = place.iter().cloned().collect();
                for (k, v) in derive::word_label_values(&own) {
                    keys.insert(k.to_string(), v);
                }
                r.words.insert(
                    ids::word_id(&key.image_id, key.receipt_id, line, word),
                    keys,
                );
            }
            out.receipts.push(r);
        }
        out
    }

    fn finish(self, records_per_event: usize) -> Workload {
        let per_event = records_per_event.clamp(1, MAX_RECORDS_PER_EVENT);
        // Units: single records, or whole atomic groups.
        let mut units: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        let mut groups = self.atomic.iter().peekable();
        while i < self.records.len() {
            match groups.peek() {
                Some(&&(start, end)) if start == i => {
                    let mut at = start;
                    while at < end {
                        let stop = (at + MAX_RECORDS_PER_EVENT).min(end);
                        units.push((at, stop));
                        at = stop;
                    }
                    i = end;
                    groups.next();
                }
                _ => {
                    units.push((i, i + 1));
                    i += 1;
                }
            }
        }
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for (start, end) in units {
            match ranges.last_mut() {
                Some(last) if last.1 == start && end - last.0 <= per_event => last.1 = end,
                _ => ranges.push((start, end)),
            }
        }
        let mut event_of = vec![0; self.records.len()];
        let mut events = Vec::with_capacity(ranges.len());
        let mut largest = 0;
        for (e, &(start, end)) in ranges.iter().enumerate() {
            let mut text = String::from("{\"Records\":[");
            for (j, r) in self.records[start..end].iter().enumerate() {
                if j > 0 {
                    text.push(',');
                }
                text.push_str(&r.to_string());
            }
            text.push_str("]}");
            events.push(text.into_bytes());
            event_of[start..end].fill(e);
            largest = largest.max(end - start);
        }
        let runs = self
            .runs
            .iter()
            .map(|(info, record)| RunInfo {
                event: event_of.get(*record).copied().unwrap_or(0),
                ..info.clone()
            })
            .collect();
        let expected = self.expected();
        let stats = WorkloadStats {
            events: events.len(),
            records: self.records.len(),
            largest_event: largest,
            by_kind: self.by_kind.clone(),
        };
        Workload {
            events,
            run_files: self.run_files,
            runs,
            expected,
            stats,
        }
    }
}

/// The place keys a receipt's records must carry: what [`ops::place_patch`] sets for the
/// place (`None` for the keys it unsets, all of them without a place).
fn place_values(key: &ReceiptKey, place: Option<&PlaceM>) -> Vec<(String, Option<MetaValue>)> {
    let p = place.map(|p| ReceiptPlace {
        receipt: key.clone(),
        merchant_name: Some(p.merchant_name.clone()),
        merchant_category: p.merchant_category.clone(),
        formatted_address: p.formatted_address.clone(),
        phone_number: p.phone_number.clone(),
        place_id: Some(p.place_id.clone()),
    });
    let (set, _) = ops::place_patch(p.as_ref());
    ops::PLACE_KEYS
        .iter()
        .map(|k| (k.to_string(), set.get(*k).cloned()))
        .collect()
}

/// The embed-time inputs of a receipt's lines and words, as the producer reads them from
/// the table.
fn run_inputs(key: &ReceiptKey, st: &ReceiptState) -> (Vec<LineInput>, Vec<WordInput>) {
    let (image, rid) = (&key.image_id, key.receipt_id);
    let lines: Vec<LineInput> = st
        .lines
        .values()
        .map(|l| LineInput {
            image_id: image.clone(),
            receipt_id: rid,
            line_id: l.id,
            text: l.text.clone(),
            bounding_box: l.bbox,
            confidence: l.confidence,
        })
        .collect();
    let words: Vec<WordInput> = st
        .words
        .values()
        .map(|w| WordInput {
            image_id: image.clone(),
            receipt_id: rid,
            line_id: w.line_id,
            word_id: w.id,
            text: w.text.clone(),
            corners: corners(&w.bbox),
            bounding_box: w.bbox,
            confidence: w.confidence,
            extracted_data: w.extracted.as_ref().map(|(kind, value)| ExtractedData {
                kind: kind.clone(),
                value: Some(value.clone()),
            }),
        })
        .collect();
    (lines, words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    use strata_formats::{decode_delta, Filter, Target};
    use strata_stream::event::EventName;
    use strata_stream::ops::Ignored;
    use strata_stream::{parse_event, translate_batch, FollowUp, MergeRun, Translation};

    fn parsed(w: &Workload) -> Vec<strata_stream::ParsedBatch> {
        w.events
            .iter()
            .map(|e| parse_event(e).expect("an event"))
            .collect()
    }

    fn merges(w: &Workload) -> Vec<MergeRun> {
        let mut out = Vec::new();
        for batch in parsed(w) {
            for (_, _, t) in translate_batch(&batch).records {
                if let Translation::Apply(r) = t {
                    for f in r.follow_ups {
                        if let FollowUp::MergeRun(m) = f {
                            out.push(m);
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn iso_times_are_python_isoformat() {
        assert_eq!(iso(START_MS), "2025-02-19T21:20:00.000000+00:00");
        assert_eq!(iso(1_709_164_800_123), "2024-02-29T00:00:00.123000+00:00");
        assert_eq!(iso(0), "1970-01-01T00:00:00.000000+00:00");
    }

    #[test]
    fn same_seed_same_bytes() {
        let cfg = WorkloadConfig {
            receipts: 8,
            seed: 42,
            ..WorkloadConfig::default()
        };
        let (a, b) = (Workload::generate(&cfg), Workload::generate(&cfg));
        assert_eq!(a.events, b.events);
        assert_eq!(a.run_files, b.run_files);
        assert_eq!(a.runs, b.runs);
        assert_eq!(a.expected, b.expected);
        assert_eq!(a.stats, b.stats);
        let c = Workload::generate(&WorkloadConfig { seed: 43, ..cfg });
        assert_ne!(a.events, c.events);
        assert_ne!(a.run_files, c.run_files);
    }

    #[test]
    fn records_have_the_lambda_shape() {
        let w = Workload::generate(&WorkloadConfig::default());
        for bytes in &w.events {
            let v: Value = serde_json::from_slice(bytes).unwrap();
            let records = v["Records"].as_array().unwrap();
            assert!(!records.is_empty() && records.len() <= MAX_RECORDS_PER_EVENT);
            for r in records {
                assert_eq!(r["eventSource"], "aws:dynamodb");
                assert_eq!(r["eventVersion"], "1.1");
                assert_eq!(r["awsRegion"], REGION);
                assert_eq!(r["eventSourceARN"], STREAM_ARN);
                assert_eq!(r["eventID"].as_str().unwrap().len(), 32);
                let d = &r["dynamodb"];
                assert_eq!(d["StreamViewType"], "NEW_AND_OLD_IMAGES");
                assert!(d["ApproximateCreationDateTime"].as_i64().unwrap() >= START_MS / 1000);
                assert!(d["SizeBytes"].as_u64().unwrap() > 0);
                let keys = d["Keys"].as_object().unwrap();
                assert_eq!(keys.len(), 2, "Keys hold PK and SK only");
                for image in ["NewImage", "OldImage"] {
                    if let Some(img) = d.get(image) {
                        assert_eq!(img["PK"], keys["PK"]);
                        assert_eq!(img["SK"], keys["SK"]);
                        assert!(img["TYPE"]["S"].is_string());
                    }
                }
            }
        }
    }

    #[test]
    fn every_record_parses_and_translates_in_sequence() {
        let w = Workload::generate(&WorkloadConfig::default());
        let (mut last, mut records) = (None::<Seq>, 0);
        let mut ignored: BTreeMap<String, usize> = BTreeMap::new();
        let mut previous_new: BTreeMap<(String, String), Option<Item>> = BTreeMap::new();
        for batch in parsed(&w) {
            assert!(batch.failures.is_empty(), "{:?}", batch.failures);
            assert!(batch.window.is_none());
            let t = translate_batch(&batch);
            assert!(t.failures.is_empty(), "{:?}", t.failures);
            for r in &batch.records {
                let text = r.sequence_number.as_deref().unwrap();
                assert!(text.len() >= 21 && text.bytes().all(|b| b.is_ascii_digit()));
                let seq = r.seq.unwrap();
                assert!(last.is_none_or(|l| l < seq), "{text} after {last:?}");
                last = Some(seq);
                assert!(r.approximate_creation.is_some());
                let (new, old) = (r.new_image.is_some(), r.old_image.is_some());
                match r.event_name {
                    EventName::Insert => assert!(new && !old),
                    EventName::Modify => assert!(new && old),
                    EventName::Remove => assert!(!new && old),
                }
                // An image is exactly the item as the previous record of the key left it.
                let key = (
                    r.key_str("PK").unwrap().to_string(),
                    r.key_str("SK").unwrap().to_string(),
                );
                let as_json = |i: &strata_stream::event::Item| serde_json::to_value(i).unwrap();
                let before = previous_new.get(&key).cloned().flatten();
                let old_json = r.old_image.as_ref().map(as_json);
                assert_eq!(
                    old_json,
                    before.map(Value::Object),
                    "{} {:?}",
                    r.event_name,
                    key
                );
                let after = r.new_image.as_ref().map(as_json).and_then(|v| match v {
                    Value::Object(m) => Some(m),
                    _ => None,
                });
                previous_new.insert(key, after);
                records += 1;
            }
            for (_, _, tr) in &t.records {
                if let Translation::Ignore(i) = tr {
                    *ignored.entry(format!("{i:?}")).or_default() += 1;
                }
            }
        }
        assert_eq!(records, w.stats.records);
        assert_eq!(merges(&w).len(), w.runs.len());
        let unchanged = |name: &str| {
            format!(
                "{:?}",
                Ignored::Unchanged(strata_stream::EntityType::parse(name).unwrap())
            )
        };
        assert!(
            ignored.contains_key(&unchanged("RECEIPT_PLACE")),
            "{ignored:?}"
        );
        assert!(
            ignored.contains_key(&unchanged("RECEIPT_SECTION")),
            "{ignored:?}"
        );
    }

    #[test]
    fn twenty_receipts_cover_every_rule() {
        let w = Workload::generate(&WorkloadConfig::default());
        for kind in [
            "RECEIPT INSERT",
            "RECEIPT MODIFY",
            "RECEIPT REMOVE",
            "RECEIPT_LINE INSERT",
            "RECEIPT_LINE REMOVE",
            "RECEIPT_WORD INSERT",
            "RECEIPT_WORD REMOVE",
            "RECEIPT_WORD_LABEL INSERT",
            "RECEIPT_WORD_LABEL MODIFY",
            "RECEIPT_WORD_LABEL REMOVE",
            "RECEIPT_PLACE INSERT",
            "RECEIPT_PLACE MODIFY",
            "RECEIPT_PLACE REMOVE",
            "RECEIPT_SECTION INSERT",
            "RECEIPT_SECTION MODIFY",
            "RECEIPT_SECTION REMOVE",
            "COMPACTION_RUN INSERT",
            "COMPACTION_RUN MODIFY",
            "COMPACTION_RUN REMOVE",
        ] {
            assert!(
                w.stats.by_kind.get(kind).copied().unwrap_or(0) > 0,
                "{kind}\n{}",
                w.stats
            );
        }
        let e = &w.expected;
        assert!(!e.deleted.is_empty());
        assert_eq!(e.recreated.len(), 1);
        let embed_only = e
            .receipts
            .iter()
            .filter(|r| r.place_only_at_embed_time)
            .count();
        assert!(embed_only > 0 && embed_only < e.receipts.len());

        // Place, section and label items before and after their receipt's first run.
        let (mut before, mut after) = (BTreeSet::new(), BTreeSet::new());
        let mut ran: BTreeSet<String> = BTreeSet::new();
        for batch in parsed(&w) {
            for r in &batch.records {
                let (pk, sk) = (r.key_str("PK").unwrap(), r.key_str("SK").unwrap());
                let receipt = format!("{pk}#{}", &sk[..13]);
                let t = strata_stream::EntityType::detect(sk).unwrap();
                if t == strata_stream::EntityType::CompactionRun {
                    ran.insert(receipt.clone());
                } else if r.event_name == EventName::Insert {
                    let side = if ran.contains(&receipt) {
                        &mut after
                    } else {
                        &mut before
                    };
                    side.insert(t);
                }
            }
        }
        use strata_stream::EntityType::*;
        for t in [ReceiptPlace, ReceiptSection, ReceiptWordLabel] {
            assert!(before.contains(&t) && after.contains(&t), "{t}");
        }

        // The re-created receipt: its REMOVEs and new INSERTs share one event.
        let key = &e.recreated[0];
        let sk = receipt_sk(key.receipt_id);
        let mut seen = Vec::new();
        for (i, batch) in parsed(&w).iter().enumerate() {
            for r in &batch.records {
                if r.key_str("PK") == Some(pk(key).as_str()) && r.key_str("SK") == Some(sk.as_str())
                {
                    seen.push((i, r.event_name));
                }
            }
        }
        let removed = seen
            .iter()
            .position(|(_, n)| *n == EventName::Remove)
            .unwrap();
        let (event, next) = (seen[removed].0, seen[removed + 1]);
        assert_eq!(next, (event, EventName::Insert), "{seen:?}");
    }

    #[test]
    fn small_events_keep_a_recreation_whole() {
        let cfg = WorkloadConfig {
            receipts: 5,
            records_per_event: 10,
            ..WorkloadConfig::default()
        };
        let w = Workload::generate(&cfg);
        let sizes: Vec<usize> = parsed(&w).iter().map(|b| b.len()).collect();
        let big: Vec<&usize> = sizes.iter().filter(|&&n| n > 10).collect();
        assert_eq!(big.len(), 1, "{sizes:?}");
        assert_eq!(*big[0], w.stats.largest_event);
        let clamped = Workload::generate(&WorkloadConfig {
            records_per_event: 0,
            edit_rounds: 0,
            ..cfg
        });
        assert!(parsed(&clamped).iter().all(|b| b.len() == 1));
    }

    #[test]
    fn every_run_prefix_has_its_files() {
        let w = Workload::generate(&WorkloadConfig::default());
        let files: BTreeMap<&Path, &Vec<u8>> =
            w.run_files.iter().map(|(p, b)| (p.as_path(), b)).collect();
        let mut used = BTreeSet::new();
        let runs = merges(&w);
        assert_eq!(runs.len(), w.runs.len());
        for (m, info) in runs.iter().zip(&w.runs) {
            assert_eq!(m.run_id, info.run_id);
            assert_eq!(m.receipt, info.receipt);
            for d in &m.deltas {
                let c = d.collection.as_str();
                assert_eq!(d.location.raw, format!("{c}/delta/{}/", m.run_id));
                assert_eq!(d.location.bucket, None);
                let path = Path::new(&d.location.key_prefix).join(RUN_FILE_NAME);
                let bytes = files
                    .get(path.as_path())
                    .unwrap_or_else(|| panic!("{path:?}"));
                used.insert(path.clone());
                let delta = decode_delta(bytes).unwrap();
                assert!(delta.is_sealed());
                assert_eq!(delta.header.collection, c);
                assert_eq!(delta.header.dims, 1536);
                assert_eq!(delta.header.producer, PRODUCER);
                let want = if c == "lines" { info.lines } else { info.words };
                assert_eq!(delta.ops.len(), want);
                assert!(want > 0);
                for op in &delta.ops {
                    assert_eq!(op.seq, Seq::ZERO);
                    let Op::Upsert(r) = &op.op else {
                        panic!("not an upsert")
                    };
                    let parsed = if c == "lines" {
                        ids::parse_line_id(&r.id)
                    } else {
                        ids::parse_word_id(&r.id)
                    }
                    .unwrap();
                    assert_eq!(parsed.image_id, m.receipt.image_id);
                    assert_eq!(parsed.receipt_id, m.receipt.receipt_id);
                    let e = r.embedding.as_ref().unwrap();
                    assert_eq!(e.len(), 1536);
                    let norm: f32 = e.iter().map(|x| x * x).sum::<f32>().sqrt();
                    assert!((norm - 1.0).abs() < 1e-3);
                    assert_eq!(
                        r.metadata["source"],
                        MetaValue::Str(builders::SOURCE.into())
                    );
                    assert!(r.document.is_some());
                }
            }
        }
        assert_eq!(used.len(), files.len(), "every run file belongs to a run");

        let dir = tempfile::tempdir().unwrap();
        w.write_run_files(dir.path()).unwrap();
        for (rel, bytes) in &w.run_files {
            assert_eq!(&fs::read(dir.path().join(rel)).unwrap(), bytes);
        }
    }

    // ---- a store model: the operations applied in stream order, follow-ups at once ----

    #[derive(Default)]
    struct Model {
        cols: BTreeMap<String, BTreeMap<String, Metadata>>,
    }

    impl StateReader for Model {
        type Error = Infallible;
        fn get_where(
            &self,
            collection: &str,
            filter: &Filter,
        ) -> Result<Vec<(String, Metadata)>, Infallible> {
            Ok(self.cols.get(collection).map_or_else(Vec::new, |c| {
                c.iter()
                    .filter(|(_, m)| filter.matches(m))
                    .map(|(id, m)| (id.clone(), m.clone()))
                    .collect()
            }))
        }
    }

    impl Model {
        fn apply(&mut self, collection: &str, op: &Op) {
            let col = self.cols.entry(collection.to_string()).or_default();
            let targets = |col: &BTreeMap<String, Metadata>, t: &Target| -> Vec<String> {
                match t {
                    Target::Id(id) => vec![id.clone()],
                    Target::Ids(ids) => ids.clone(),
                    Target::Where(f) => col
                        .iter()
                        .filter(|(_, m)| f.matches(m))
                        .map(|(id, _)| id.clone())
                        .collect(),
                }
            };
            match op {
                Op::Upsert(r) => {
                    col.insert(r.id.clone(), r.metadata.clone());
                }
                Op::Patch(p) => {
                    for id in targets(col, &p.target) {
                        if let Some(m) = col.get_mut(&id) {
                            m.extend(p.set.clone());
                            for k in &p.unset {
                                m.remove(k);
                            }
                        }
                    }
                }
                Op::Delete(t) => {
                    for id in targets(col, t) {
                        col.remove(&id);
                    }
                }
            }
        }

        fn follow(&mut self, w: &Workload, f: &FollowUp, seq: Seq) {
            match f {
                FollowUp::MergeRun(run) => {
                    for d in &run.deltas {
                        let path = Path::new(&d.location.key_prefix).join(RUN_FILE_NAME);
                        let (_, bytes) = w.run_files.iter().find(|(p, _)| *p == path).unwrap();
                        for op in decode_delta(bytes).unwrap().ops {
                            self.apply(d.collection.as_str(), &op.op);
                        }
                    }
                    for f in run.after_merge() {
                        self.follow(w, &f, seq);
                    }
                }
                other => {
                    let derived = derive::run_follow_up(&*self, other, seq).unwrap().unwrap();
                    for op in derived.ops {
                        self.apply(op.collection.as_str(), &op.op.op);
                    }
                }
            }
        }

        fn replay(w: &Workload) -> Model {
            let mut m = Model::default();
            for bytes in &w.events {
                let batch = parse_event(bytes).unwrap();
                for (_, _, t) in translate_batch(&batch).records {
                    let Translation::Apply(r) = t else { continue };
                    for op in &r.ops {
                        m.apply(op.collection.as_str(), &op.op.op);
                    }
                    for f in &r.follow_ups {
                        m.follow(w, f, r.seq);
                    }
                }
            }
            m
        }
    }

    /// The expected state is the stream applied in order (operations, then the record's
    /// follow-ups on the state they meet, a run's merge followed by its recomputations),
    /// places written before their receipt's run included: the place recomputation after
    /// the merge puts back the keys the run's embed-time records lack.
    #[test]
    fn stream_order_replay_matches() {
        for seed in 0..6 {
            let w = Workload::generate(&WorkloadConfig {
                receipts: 14,
                seed,
                records_per_event: 100,
                edit_rounds: 3,
            });
            let e = &w.expected;
            let placed_before_run = e
                .receipts
                .iter()
                .filter(|r| r.place_only_at_embed_time && !r.places.is_empty())
                .count();
            let mismatches = e.check(&Model::replay(&w)).unwrap();
            let shown: Vec<String> = mismatches.iter().take(20).map(|m| m.to_string()).collect();
            assert!(
                mismatches.is_empty(),
                "seed {seed}: {} mismatches:\n{}",
                mismatches.len(),
                shown.join("\n")
            );
            eprintln!(
                "seed {seed}: {}; {placed_before_run} receipts placed before their run; 0 mismatches",
                e.summary()
            );
        }
    }

    /// Items sharing the receipts' key space (letters, CoVe verifications) change nothing:
    /// the expected state is the same as without them.
    #[test]
    fn related_items_replay() {
        let cfg = WorkloadConfig::default();
        let w = Workload::generate_with(
            &cfg,
            &Extras {
                related_items: true,
            },
        );
        for kind in [
            "RECEIPT_LETTER INSERT",
            "RECEIPT_LETTER REMOVE",
            "RECEIPT_WORD_LABEL_COVE_VERIFICATION INSERT",
            "RECEIPT_WORD_LABEL_COVE_VERIFICATION REMOVE",
        ] {
            assert!(
                w.stats.by_kind.get(kind).copied().unwrap_or(0) > 0,
                "{kind}"
            );
        }
        // The same receipts (timestamps differ: the extra records move the clock).
        let plain = Workload::generate(&cfg);
        assert_eq!(w.expected.summary(), plain.expected.summary());
        let ignored = parsed(&w)
            .iter()
            .flat_map(|b| translate_batch(b).records)
            .filter(|(_, _, t)| *t == Translation::Ignore(Ignored::NotReceiptEntity))
            .count();
        let related: usize = w
            .stats
            .by_kind
            .iter()
            .filter(|(k, _)| k.starts_with("RECEIPT_LETTER") || k.contains("COVE"))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(
            ignored, related,
            "every related item, and only they, is ignored"
        );
        let mismatches = w.expected.check(&Model::replay(&w)).unwrap();
        let shown: Vec<String> = mismatches.iter().take(20).map(|m| m.to_string()).collect();
        assert!(
            mismatches.is_empty(),
            "{} mismatches:\n{}",
            mismatches.len(),
            shown.join("\n")
        );
    }

    #[test]
    fn check_reports_every_kind_of_difference() {
        let w = Workload::generate(&WorkloadConfig {
            receipts: 8,
            ..WorkloadConfig::default()
        });
        let e = &w.expected;
        let mut m = Model::default();
        let ident = |k: &ReceiptKey| -> Metadata {
            [
                ("image_id".to_string(), MetaValue::Str(k.image_id.clone())),
                (
                    "receipt_id".to_string(),
                    MetaValue::Int(i64::from(k.receipt_id)),
                ),
            ]
            .into_iter()
            .collect()
        };
        for r in &e.receipts {
            for (c, records) in [("lines", &r.lines), ("words", &r.words)] {
                for (id, keys) in records {
                    let mut meta = ident(&r.receipt);
                    meta.extend(
                        keys.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.clone()?))),
                    );
                    m.cols.entry(c.into()).or_default().insert(id.clone(), meta);
                }
            }
            for (c, ids) in [
                ("labels", &r.labels),
                ("sections", &r.sections),
                ("places", &r.places),
            ] {
                for id in ids {
                    m.cols
                        .entry(c.into())
                        .or_default()
                        .insert(id.clone(), ident(&r.receipt));
                }
            }
        }
        assert_eq!(e.check(&m).unwrap(), Vec::<Mismatch>::new());

        let r = &e.receipts[0];
        let word = r.words.keys().next().unwrap().clone();
        let row = r.lines.keys().next().unwrap().clone();
        let words = m.cols.get_mut("words").unwrap();
        words.remove(&word);
        words.insert(format!("{word}9"), ident(&r.receipt));
        let row_meta = m.cols.get_mut("lines").unwrap().get_mut(&row).unwrap();
        row_meta.insert("section_label".into(), MetaValue::Str("SURVEY".into()));
        let gone = &e.deleted[0];
        m.cols
            .get_mut("labels")
            .unwrap()
            .insert("leftover".into(), ident(gone));
        let found = e.check(&m).unwrap();
        let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(found.len(), 4, "{shown:#?}");
        assert!(shown.contains(&format!(
            "words {word} (record): expected present, found missing"
        )));
        assert!(shown.contains(&format!(
            "words {word}9 (record): expected absent, found present"
        )));
        assert!(shown.iter().any(|s| s
            .starts_with(&format!("lines {row} section_label: expected"))
            && s.ends_with("found \"SURVEY\"")));
        assert!(shown.contains(
            &"labels leftover (record): expected absent (receipt deleted), found present"
                .to_string()
        ));
    }

    // ---- one receipt, computed by hand ----

    fn strs(v: &[&str]) -> Option<MetaValue> {
        Some(MetaValue::StrList(
            v.iter().map(|s| s.to_string()).collect(),
        ))
    }

    fn text(v: &str) -> Option<MetaValue> {
        Some(MetaValue::Str(v.to_string()))
    }

    fn keys(pairs: &[(&str, Option<MetaValue>)]) -> ExpectedKeys {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn expected_model_of_one_receipt_by_hand() {
        let key = ReceiptKey {
            image_id: "3f52804b-2fad-4e00-92c8-b593da3a8ed3".into(),
            receipt_id: 1,
        };
        let bb = |x: f64, y: f64| BoundingBox {
            x,
            y,
            width: 0.2,
            height: 0.05,
        };
        let line = |id: u32, t: &str, x: f64, y: f64, kind: Kind| LineM {
            id,
            text: t.into(),
            bbox: bb(x, y),
            confidence: 0.95,
            kind,
        };
        let word = |l: &LineM| WordM {
            line_id: l.id,
            id: 1,
            text: l.text.clone(),
            bbox: l.bbox,
            confidence: 0.9,
            extracted: None,
            kind: l.kind,
        };
        // Rows: [1] VONS; [2, 3] MILK 3.49; [4, 5] TOTAL 3.49.
        let lines = vec![
            line(1, "VONS", 0.3, 0.9, Kind::Merchant),
            line(2, "MILK", 0.05, 0.5, Kind::ItemDesc),
            line(3, "3.49", 0.75, 0.5, Kind::ItemPrice),
            line(4, "TOTAL", 0.05, 0.3, Kind::TotalLabel),
            line(5, "3.49", 0.75, 0.3, Kind::TotalAmount),
        ];
        let words = lines.iter().map(word).collect();
        let section = |t: &str, ids: &[u32], status: &str, c: f64| SectionM {
            section_type: t.into(),
            line_ids: ids.to_vec(),
            confidence: Some(c),
            status: Some(status.into()),
            model_source: "hand".into(),
            created_at: String::new(),
        };
        let label = |l: u32, name: &str, status: &str, ts: &str, by: Option<&str>| LabelM {
            line_id: l,
            word_id: 1,
            label: name.into(),
            reasoning: None,
            timestamp_added: format!("2025-03-01T10:00:0{ts}"),
            status: status.into(),
            proposed_by: by.map(str::to_string),
            consolidated_from: None,
        };
        let plan = Plan {
            key: key.clone(),
            merchant: 0,
            receipt: ReceiptM {
                width: 1000,
                height: 3000,
                timestamp_added: iso(START_MS),
                raw_key: "raw/x.png".into(),
                sha256: "0".repeat(64),
                cdn_key: None,
            },
            lines,
            words,
            place: PlaceM {
                place_id: "ChIJN1t_tDeuEmsRUsoyG83frY4".into(),
                merchant_name: "vons".into(),
                merchant_category: Some("grocery_store".into()),
                formatted_address: Some(
                    "2800 E Thousand Oaks Blvd, Thousand Oaks, CA 91362, USA".into(),
                ),
                phone_number: Some("(805) 495-5311".into()),
                website: None,
                latitude: 34.17,
                longitude: -118.84,
                confidence: 0.9,
                timestamp: String::new(),
            },
            // The place arrives after the run.
            place_early: false,
            sections: vec![
                (section("ITEMS", &[2, 3], "PENDING", 0.8), true),
                (section("STOREFRONT", &[1], "VALID", 0.9), true),
                (section("TOTAL_LINE", &[3, 4, 5], "VALID", 0.7), false),
            ],
            labels: vec![
                (label(1, "MERCHANT_NAME", "VALID", "0", None), true),
                (
                    label(2, "PRODUCT_NAME", "PENDING", "1", Some("gpt-4o-mini")),
                    true,
                ),
                (
                    label(5, "GRAND_TOTAL", "PENDING", "2", Some("pattern_detector")),
                    false,
                ),
                (label(5, "LINE_TOTAL", "INVALID", "3", None), false),
                (label(5, "TOTAL", "VALID", "4", None), false),
            ],
        };
        let mut g = Gen::new(1, Extras::default());
        g.order.push(key.clone());
        let late = g.ingest(plan);
        g.apply_late(late);
        // Edits: a review, a removal of one of three labels, a merchant change that nulls
        // the phone, a section removal, a word removal.
        let grand = (5, 1, "GRAND_TOTAL".to_string());
        let mut l = g.receipts[&key].labels[&grand].clone();
        l.status = "VALID".into();
        g.put_label(&key, l);
        g.remove_label(&key, &(5, 1, "LINE_TOTAL".to_string()));
        let mut p = g.receipts[&key].place.clone().unwrap();
        p.merchant_name = "vons #2091".into();
        p.phone_number = None;
        g.put_place(&key, p);
        g.remove_section(&key, "STOREFRONT");
        g.remove_word(&key, (3, 1));
        let w = g.finish(100);

        let e = &w.expected;
        assert!(e.deleted.is_empty() && e.recreated.is_empty());
        let [r] = e.receipts.as_slice() else {
            panic!("one receipt")
        };
        assert!(!r.place_only_at_embed_time);
        let base = "IMAGE#3f52804b-2fad-4e00-92c8-b593da3a8ed3#RECEIPT#00001";
        let place = [
            ("merchant_name", text("Vons #2091")),
            ("merchant_category", text("grocery_store")),
            (
                "address",
                text("2800 E Thousand Oaks Blvd, Thousand Oaks, CA 91362, USA"),
            ),
            ("phone_number", None),
            ("place_id", text("ChIJN1t_tDeuEmsRUsoyG83frY4")),
        ];
        let with_place = |rest: &[(&str, Option<MetaValue>)]| {
            let mut k = keys(&place);
            k.extend(keys(rest));
            k
        };
        let row = |status: &str, valid: Option<MetaValue>, section: Option<MetaValue>| {
            with_place(&[
                ("label_status", text(status)),
                ("valid_labels_array", valid),
                ("invalid_labels_array", None),
                ("section_label", section),
            ])
        };
        let lines: BTreeMap<String, ExpectedKeys> = [
            // STOREFRONT removed: line 1 has no section.
            (1, row("validated", strs(&["MERCHANT_NAME"]), None)),
            // Line 2 ITEMS; line 3 TOTAL_LINE (VALID beats PENDING): a 1-1 tie.
            (2, row("auto_suggested", None, None)),
            // TOTAL is not a CORE label.
            (
                4,
                row("validated", strs(&["GRAND_TOTAL"]), text("TOTAL_LINE")),
            ),
        ]
        .into_iter()
        .map(|(l, k)| (format!("{base}#LINE#{l:05}"), k))
        .collect();
        assert_eq!(r.lines, lines);
        let word = |status: &str, by: Option<MetaValue>, at: Option<MetaValue>, valid| {
            with_place(&[
                ("label_status", text(status)),
                ("label_confidence", None),
                ("label_proposed_by", by),
                ("label_validated_at", at),
                ("valid_labels_array", valid),
                ("invalid_labels_array", None),
            ])
        };
        let words: BTreeMap<String, ExpectedKeys> = [
            (
                1,
                word(
                    "validated",
                    None,
                    text("2025-03-01T10:00:00"),
                    strs(&["MERCHANT_NAME"]),
                ),
            ),
            (2, word("auto_suggested", text("gpt-4o-mini"), None, None)),
            (4, word("unvalidated", None, None, None)),
            // Latest VALID is TOTAL (any label counts); no PENDING left.
            (
                5,
                word(
                    "validated",
                    None,
                    text("2025-03-01T10:00:04"),
                    strs(&["GRAND_TOTAL"]),
                ),
            ),
        ]
        .into_iter()
        .map(|(l, k)| (format!("{base}#LINE#{l:05}#WORD#00001"), k))
        .collect();
        assert_eq!(r.words, words);
        let labels: BTreeSet<String> = [
            (1, "MERCHANT_NAME"),
            (2, "PRODUCT_NAME"),
            (5, "GRAND_TOTAL"),
            (5, "TOTAL"),
        ]
        .iter()
        .map(|(l, n)| format!("{base}#LINE#{l:05}#WORD#00001#LABEL#{n}"))
        .collect();
        assert_eq!(r.labels, labels);
        let sections: BTreeSet<String> = ["ITEMS", "TOTAL_LINE"]
            .iter()
            .map(|t| format!("{base}#SECTION#{t}"))
            .collect();
        assert_eq!(r.sections, sections);
        assert_eq!(r.places, BTreeSet::from([format!("{base}#PLACE")]));

        // The stream, replayed in order, ends exactly there.
        let batch = parse_event(&w.events[0]).unwrap();
        assert!(translate_batch(&batch).failures.is_empty());
        assert_eq!(e.check(&Model::replay(&w)).unwrap(), Vec::<Mismatch>::new());
    }

    #[test]
    #[ignore]
    fn print_stats() {
        let w = Workload::generate(&WorkloadConfig::default());
        eprintln!(
            "{}{}\nruns: {}",
            w.stats,
            w.expected.summary(),
            w.runs.len()
        );
        let bytes: usize = w.run_files.iter().map(|(_, b)| b.len()).sum();
        eprintln!("run files: {} ({bytes} bytes)", w.run_files.len());
        let mismatches = w.expected.check(&Model::replay(&w)).unwrap();
        eprintln!("stream-order replay: {} mismatches", mismatches.len());
    }
}
