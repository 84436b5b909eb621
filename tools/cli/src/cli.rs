//! The clap command tree: global options (`--store`, `--json`) and one variant per command,
//! each with its help text and examples.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use strata_formats::{Metric, Quantization};

const MAIN_LONG_ABOUT: &str = "\
strata: an embedded storage engine for vector collections that change through a stream of
edits. A store is one directory; it holds collections of records (id, embedding, document,
metadata). Writes are small immutable deltas; `compact` folds them into memory-mapped
segments; every write or compaction is a new version that can be rolled back to.

Read commands (collections, get, count, query, versions, stats, inspect, verify) open the
store read-only, so they work while another process is the writer. Write commands take the
writer role and fail at once, naming the holder, if another process has it.

A command that fails changes nothing: input files are read and checked in full before
anything is written, and each write is one atomic delta.

Exit status: 0 ok, 1 error, 2 usage.";

const MAIN_AFTER_HELP: &str = "\
Examples:
  strata --store ./data create lines --dims 1536 --metric l2
  strata --store ./data put lines --file records.jsonl
  strata --store ./data query lines --vector '[0.1, 0.2, ...]' --k 5 --where '{\"receipt_id\": 7}'
  strata --store ./data compact
  strata --store ./data --json stats";

/// strata: an embedded storage engine for vector collections that change through a stream
/// of edits.
#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about,
    long_about = MAIN_LONG_ABOUT,
    after_help = MAIN_AFTER_HELP
)]
pub struct Cli {
    /// The store directory, or a store published to object storage
    /// (`s3://BUCKET/PREFIX`, `file:///DIR`) for the read commands (collections, get,
    /// count, query, versions, stats).
    #[arg(
        long,
        global = true,
        value_name = "DIR|URL",
        default_value = "./strata-data"
    )]
    pub store: PathBuf,
    /// Where a published store's files are cached (default `$XDG_CACHE_HOME/strata`, else
    /// `~/.cache/strata`).
    #[arg(long, global = true, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Print JSON instead of a table: one document per command (one line per query for
    /// batch queries).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// A part of a record that `get` and `query` can return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IncludeField {
    /// Ids only (they are always returned).
    Ids,
    /// The documents.
    Documents,
    /// The metadata.
    Metadatas,
    /// The embeddings.
    Embeddings,
}

/// The Lambda entry point `lambda-invoke` runs (a [`strata_pipeline::Role`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LambdaRole {
    /// DynamoDB stream event → inbox deltas.
    Stream,
    /// Inbox, SQS batches, follow-ups, compaction, GC.
    Compactor,
}

impl From<LambdaRole> for strata_pipeline::Role {
    fn from(role: LambdaRole) -> strata_pipeline::Role {
        match role {
            LambdaRole::Stream => strata_pipeline::Role::Stream,
            LambdaRole::Compactor => strata_pipeline::Role::Compactor,
        }
    }
}

/// Which records a command applies to: ids, or a `where` filter.
#[derive(Debug, Clone, Args)]
pub struct Selection {
    /// Record ids (space-separated).
    #[arg(long, num_args = 1.., value_name = "ID", conflicts_with = "filter")]
    pub ids: Vec<String>,
    /// A Chroma `where` filter as JSON, for example '{"receipt_id": {"$in": [1, 2]}}'.
    /// Operators: $eq $ne $gt $gte $lt $lte $in $nin $and $or $contains.
    #[arg(long = "where", value_name = "JSON")]
    pub filter: Option<String>,
}

fn metric_parser() -> impl TypedValueParser<Value = Metric> {
    PossibleValuesParser::new(["l2", "cosine", "ip"])
        .map(|s| s.parse::<Metric>().expect("a possible value"))
}

fn quantization_parser() -> impl TypedValueParser<Value = Quantization> {
    PossibleValuesParser::new(["none", "i8", "1bit"])
        .map(|s| s.parse::<Quantization>().expect("a possible value"))
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a collection.
    #[command(after_help = "\
Examples:
  strata create lines --dims 1536
  strata create words --dims 1536 --metric cosine --quantize i8
  strata create labels --dims 0        # metadata-only")]
    Create {
        /// Name: 1 to 64 characters of A-Z a-z 0-9 _ - . not starting with a dot.
        name: String,
        /// Dimensions of the embeddings (0 = metadata-only collection).
        #[arg(long, value_name = "N")]
        dims: u32,
        /// Distance metric: l2 (squared L2, Chroma's default), cosine (1 - cos), ip (1 - dot).
        #[arg(long, default_value = "l2", value_parser = metric_parser())]
        metric: Metric,
        /// Quantized copy built at compaction for a fast first search pass.
        #[arg(long, default_value = "none", value_parser = quantization_parser())]
        quantize: Quantization,
    },
    /// List the collections.
    Collections,
    /// Drop a collection (its files are deleted by a later `gc`).
    Drop {
        /// The collection.
        name: String,
    },
    /// Insert or replace records, from JSON lines or from a .npy matrix plus an id list.
    #[command(
        long_about = "\
Insert or replace records (upsert). The whole input is read and checked first (JSON syntax,
field types, dimensions against the collection, finite numbers, duplicate ids); any problem
is reported with its line number and nothing is written. All records go into one delta.",
        after_help = "\
Examples:
  strata put lines --file records.jsonl
      each line: {\"id\": \"r1\", \"embedding\": [0.1, ...], \"document\": \"TOTAL 12.99\",
                  \"metadata\": {\"receipt_id\": 7, \"labels\": [\"TOTAL\"]}}
      (embedding, document and metadata are optional; embedding is required when the
       collection has dims > 0)
  strata put lines --npy vectors.npy --ids ids.txt --metadata meta.jsonl --documents docs.jsonl
      vectors.npy: a 2-D little-endian float32 (or float64) array, one row per id
      ids.txt: one id per line; meta.jsonl: one metadata object per line (optional);
      docs.jsonl: one JSON string (or null) per line (optional)"
    )]
    Put {
        /// The collection.
        name: String,
        /// JSON lines file of records.
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "npy",
            conflicts_with = "npy"
        )]
        file: Option<PathBuf>,
        /// .npy file of embeddings (rows = records).
        #[arg(long, value_name = "FILE", requires = "ids")]
        npy: Option<PathBuf>,
        /// Text file of ids, one per line (taken as written; a trailing CR is dropped), in the
        /// order of the .npy rows.
        #[arg(long, value_name = "FILE", requires = "npy")]
        ids: Option<PathBuf>,
        /// JSON lines file of metadata objects, one per .npy row.
        #[arg(long, value_name = "FILE", requires = "npy")]
        metadata: Option<PathBuf>,
        /// JSON lines file of documents, one per .npy row: a JSON string, or null for none.
        #[arg(long, value_name = "FILE", requires = "npy")]
        documents: Option<PathBuf>,
    },
    /// Merge metadata into records (Chroma's update): keys not named survive, null deletes.
    #[command(after_help = "\
Examples:
  strata update words --file patches.jsonl
      each line is one of
        {\"id\": \"w1\", \"metadata\": {\"label\": \"TOTAL\", \"stale\": null}}
        {\"ids\": [\"w1\", \"w2\"], \"metadata\": {\"valid\": true}}
        {\"where\": {\"receipt_id\": 7}, \"metadata\": {\"merchant\": \"Target\"}}
      a null value deletes the key. The whole file is checked before anything is written.")]
    Update {
        /// The collection.
        name: String,
        /// JSON lines file of patches.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Delete records by id or by filter.
    #[command(after_help = "\
Examples:
  strata delete words --ids w1 w2 w3
  strata delete words --where '{\"receipt_id\": 7}'")]
    Delete {
        /// The collection.
        name: String,
        /// Which records.
        #[command(flatten)]
        select: DeleteSelection,
    },
    /// Compact one collection (or all): fold deltas into segments, merge small segments.
    #[command(after_help = "\
Examples:
  strata compact            # every collection
  strata compact lines")]
    Compact {
        /// The collection (all when omitted).
        name: Option<String>,
    },
    /// List the retained versions of a collection, newest first.
    Versions {
        /// The collection.
        name: String,
    },
    /// Make an earlier version the head again (as a new version; history is kept).
    #[command(after_help = "Example:\n  strata rollback lines --to 12")]
    Rollback {
        /// The collection.
        name: String,
        /// The version to return to (see `strata versions NAME`).
        #[arg(long, value_name = "VERSION")]
        to: u64,
    },
    /// Pin a version: retention and GC keep it until it is unpinned.
    #[command(after_help = "Example:\n  strata pin lines 12")]
    Pin {
        /// The collection.
        name: String,
        /// The version.
        version: u64,
    },
    /// Unpin a version.
    #[command(after_help = "Example:\n  strata unpin lines 12")]
    Unpin {
        /// The collection.
        name: String,
        /// The version.
        version: u64,
    },
    /// Apply retention and delete files no retained version references (after a grace
    /// period of 10 minutes).
    #[command(
        after_help = "Examples:\n  strata gc\n  strata gc --older-than 1h   # keep one hour of versions (and the head, pins)"
    )]
    Gc {
        /// Keep only versions younger than this (besides the head and pinned ones) and
        /// delete unreferenced files older than it: the rollback window, stated in time
        /// ("90s", "30m", "1h", "0s"). Without it: the newest 8 versions, 10 minutes' grace.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        older_than: Option<std::time::Duration>,
    },
    /// Publish the store to object storage: upload the files its retained and pinned
    /// versions reference that the destination lacks, then move the destination's head
    /// object with a conditional write. Credentials and endpoint come from the
    /// environment (AWS_* variables, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP=true for plain http).
    #[command(
        after_help = "Examples:\n  strata --store ./data publish s3://receipts-vectors/prod\n  strata --store s3://receipts-vectors/prod query lines --vector '[...]'"
    )]
    Publish {
        /// Where: s3://BUCKET/PREFIX, or file:///DIR (needs --unsafe-unconditional once
        /// published: a directory cannot compare-and-swap).
        url: String,
        /// Move the head without a compare-and-swap where the destination cannot do one;
        /// a concurrent publish could then be overwritten.
        #[arg(long)]
        unsafe_unconditional: bool,
    },
    /// Delete the objects of a published store that no version its head names references
    /// and that are older than the grace period (readers of an older head may still be
    /// fetching them). Run it where the store's publishes run, not beside them.
    #[command(
        name = "gc-remote",
        after_help = "Example:\n  strata --store ./data gc-remote s3://receipts-vectors/prod --grace 3600"
    )]
    GcRemote {
        /// The published store: s3://BUCKET/PREFIX or file:///DIR.
        url: String,
        /// Seconds an unreferenced object is kept after it was written.
        #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
        grace: u64,
    },
    /// Rows, segments, deltas, bytes and versions per collection.
    Stats {
        /// The collection (all when omitted).
        name: Option<String>,
    },
    /// Fetch records by id, by filter, or all of them (ordered by id, paged).
    #[command(after_help = "\
Examples:
  strata get words --ids w1 w2
  strata get words --where '{\"label\": {\"$in\": [\"TOTAL\", \"TAX\"]}}' --limit 20
  strata get words --include embeddings,metadatas --json")]
    Get {
        /// The collection.
        name: String,
        /// Which records (all when neither is given).
        #[command(flatten)]
        select: Selection,
        /// At most this many records.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Skip this many records first.
        #[arg(long, value_name = "N", default_value_t = 0)]
        offset: usize,
        /// What to return besides ids (comma-separated; default documents,metadatas).
        #[arg(long, value_enum, value_delimiter = ',', value_name = "FIELDS")]
        include: Vec<IncludeField>,
    },
    /// Count records (matching a filter).
    #[command(after_help = "\
Examples:
  strata count words
  strata count words --where '{\"receipt_id\": 7}'")]
    Count {
        /// The collection.
        name: String,
        /// A Chroma `where` filter as JSON.
        #[arg(long = "where", value_name = "JSON")]
        filter: Option<String>,
    },
    /// The k nearest records to one or more vectors.
    #[command(
        long_about = "\
The k nearest records to one or more query vectors, nearest first (ties broken by id).
Distances are Chroma's: squared L2, 1 - cos, or 1 - dot. A filter is applied before
distances. With --json, one JSON object per query, one per line.",
        after_help = "\
Examples:
  strata query lines --vector '[0.1, 0.2, 0.3]' --k 5
  strata query lines --vector '[[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]]'   # two queries
  strata query lines --npy queries.npy --where '{\"merchant\": \"Target\"}' --json"
    )]
    Query {
        /// The collection.
        name: String,
        /// A query vector as a JSON list of numbers, or a list of such lists.
        #[arg(
            long,
            value_name = "JSON",
            required_unless_present = "npy",
            conflicts_with = "npy"
        )]
        vector: Option<String>,
        /// A .npy file of query vectors (1-D: one query; 2-D: one per row).
        #[arg(long, value_name = "FILE")]
        npy: Option<PathBuf>,
        /// Neighbours per query (at most the engine's `MAX_K`).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=strata_engine::limits::MAX_K as i64))]
        k: u32,
        /// A Chroma `where` filter as JSON.
        #[arg(long = "where", value_name = "JSON")]
        filter: Option<String>,
        /// What to return besides ids and distances (comma-separated; default
        /// documents,metadatas).
        #[arg(long, value_enum, value_delimiter = ',', value_name = "FIELDS")]
        include: Vec<IncludeField>,
        /// Exact search: skip the quantized first pass.
        #[arg(long, conflicts_with = "oversample")]
        exact: bool,
        /// Candidates re-scored per result in the quantized pass (default: 4 for i8, 200
        /// for 1bit).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
        oversample: Option<u32>,
    },
    /// Apply Lambda DynamoDB stream events of the receipts table through the receipt domain,
    /// as the compactor would: operations on the receipt collections, compaction runs
    /// merged from --runs, derived label, section and place metadata recomputed.
    #[command(
        name = "ingest-events",
        long_about = "\
Apply Lambda DynamoDB stream event files (the JSON Lambda delivers: {\"Records\": [...]})
through the receipt domain, in the order given, as the compactor Lambda does: each record
becomes operations on `lines`, `words`, `labels`, `sections` and `places` ordered by its
SequenceNumber; COMPACTION_RUN inserts merge the run's deltas found under --runs; label,
section and place changes recompute the derived metadata. The collections are created when
missing.
Records that cannot be read are listed with their index and SequenceNumber (exit status 1)
and the others are applied. Runs whose deltas are missing stay pending and are retried by
the next ingest-events or lambda-invoke compactor.",
        after_help = "\
Examples:
  strata ingest-events events/batch-0001.json events/batch-0002.json
  strata ingest-events --runs ./producer-runs events/*.json --json"
    )]
    IngestEvents {
        /// Event files, applied in order.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Root of the embedding producer's run deltas (default: STORE/runs).
        #[arg(long, value_name = "DIR")]
        runs: Option<PathBuf>,
    },
    /// Run a Lambda entry point locally on an event file, without AWS.
    #[command(
        name = "lambda-invoke",
        long_about = "\
Run one of the two Lambda entry points on an event file, without AWS, against --store.
`stream` takes a DynamoDB stream event and writes its operations as sealed deltas into the
store's inbox (no lock; any number can run beside the compactor). `compactor` opens the
store as the writer, ingests the inbox, applies the event (an SQS event of the seed's
StreamMessages, a DynamoDB stream event, or `{}` for a scheduled run), merges compaction
runs, recomputes derived metadata, compacts by policy and collects garbage. Prints the
Lambda response (batchItemFailures); with --json, the whole outcome.",
        after_help = "\
Examples:
  strata lambda-invoke stream event.json
  strata lambda-invoke compactor schedule.json --runs ./producer-runs"
    )]
    LambdaInvoke {
        /// The entry point.
        #[arg(value_enum)]
        role: LambdaRole,
        /// The event file (JSON).
        event: PathBuf,
        /// Root of the embedding producer's run deltas (default: STORE/runs).
        #[arg(long, value_name = "DIR")]
        runs: Option<PathBuf>,
        /// The request id naming the stream processor's inbox files (default: the time).
        #[arg(long, value_name = "ID")]
        request_id: Option<String>,
        /// Write run states (PROCESSING, COMPLETED, FAILED) to this DynamoDB table, as the
        /// compactor Lambda does with STRATA_RUNS_TABLE (credentials, region and
        /// AWS_ENDPOINT_URL the usual AWS way). Without it they are only printed.
        #[arg(long, value_name = "TABLE")]
        runs_table: Option<String>,
        /// Publish the store after the invocation, as STRATA_PUBLISH does.
        #[arg(long, value_name = "URL")]
        publish: Option<String>,
    },
    /// Import a Chroma collection (persist directory, .tar.gz of one, or the seed's S3
    /// snapshot) into a strata collection of the same metric and dimension.
    #[command(
        name = "import-chroma",
        long_about = "\
Import every live record of a Chroma collection — id, embedding (as Chroma's get() returns
it), document, typed metadata — into a strata collection with the same metric and
dimension, created when missing. SOURCE is a Chroma persist directory (chromadb 0.5-1.5,
hnsw-local-persisted; never written to), a .tar.gz of one, or s3://BUCKET/COLLECTION in the
seed's layout (COLLECTION/snapshot/latest-pointer.txt names the version; its
snapshot.tar.gz or its files are read; AWS_ENDPOINT_URL and AWS_ALLOW_HTTP are honoured).
The source is checked in full before the store is opened: a refused source (unsafe
tarball, limits, not a Chroma database, SPANN, inconsistent segment files) writes nothing.
Each record is an upsert stamped with its Chroma log seq, so later stream operations and
later writes win; records already there with the same content are skipped, so importing the
same source twice changes nothing.",
        after_help = "\
Examples:
  strata import-chroma ./chroma-data --collection words
  strata import-chroma delta.tar.gz --as words-test --json
  AWS_ENDPOINT_URL=http://127.0.0.1:5734 AWS_ALLOW_HTTP=true strata import-chroma s3://receipts-chroma/lines"
    )]
    ImportChroma {
        /// A Chroma persist directory, a .tar.gz of one, or s3://BUCKET/COLLECTION.
        source: String,
        /// The Chroma collection to read (default: the only one; for s3://, the prefix's name).
        #[arg(long, value_name = "NAME")]
        collection: Option<String>,
        /// The strata collection to write (default: the Chroma collection's name).
        #[arg(long = "as", value_name = "NAME")]
        as_name: Option<String>,
    },
    /// Describe one strata file: kind, format version, dims, counts, seq range, checksums.
    #[command(after_help = "Example:\n  strata inspect ./strata-data/segments/00000012.seg")]
    Inspect {
        /// A delta, segment or version file.
        file: PathBuf,
    },
    /// Check every file of a store; exit status 1 on any corruption (file and block named).
    Verify {
        /// The store directory (defaults to --store).
        dir: Option<PathBuf>,
    },
    /// Run the main job on a generated receipt workload: DynamoDB stream events through the
    /// stream processor and compactor Lambdas (runs, place/label/section edits, deletes),
    /// metadata checked against the rules, compaction, filtered queries, versions and a
    /// rollback, GC and verify; prints a report with timings and sizes.
    Demo {
        /// Number of receipts to generate.
        #[arg(long, default_value_t = 300)]
        receipts: usize,
        /// Seed of the deterministic generator.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
}

/// Which records `delete` removes: ids or a filter, one of them required.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct DeleteSelection {
    /// Record ids (space-separated).
    #[arg(long, num_args = 1.., value_name = "ID")]
    pub ids: Vec<String>,
    /// A Chroma `where` filter as JSON: every matching record is deleted.
    #[arg(long = "where", value_name = "JSON")]
    pub filter: Option<String>,
}
