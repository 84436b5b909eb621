//! `import-chroma SOURCE`: a Chroma collection (a persist directory, a `.tar.gz` of one, or
//! the seed's snapshot layout under `s3://bucket/{collection}`) read by strata-chroma and
//! written into a strata collection of the same metric and dimension, in batches.
//!
//! Everything about the source is checked before the store is opened, so a refused source
//! writes nothing. Each record is an upsert stamped with its Chroma log seq (the seq of the
//! last operation Chroma applied to it): far below any DynamoDB SequenceNumber, so a later
//! stream operation wins; writer-stamped writes come after the collection's watermark, so
//! they win too. Records already present with the same content are skipped, so importing
//! the same source twice writes nothing.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use serde_json::json;
use strata_chroma::{ChromaCollection, ChromaDir, Limits, VectorSource};
use strata_engine::{Include, ReadableStore, Writer};
use strata_formats::{Operation, Quantization, Seq};

use super::Ctx;
use crate::error::{CliError, CliResult, Context};
use crate::output::print_json;
use crate::progress;

/// Bytes of vectors per write (the batch size follows from the dimension).
const BATCH_BYTES: usize = 8 << 20;

/// What `import-chroma` was asked to do.
#[derive(Debug, Clone)]
pub struct ImportArgs {
    /// A persist directory, a `.tar.gz`, or `s3://bucket/{collection}`.
    pub source: String,
    /// The Chroma collection to read (default: the only one, or the S3 prefix's name).
    pub collection: Option<String>,
    /// The strata collection to write (default: the Chroma collection's name).
    pub as_name: Option<String>,
}

/// What an import did.
#[derive(Debug, Default)]
struct Summary {
    read: u64,
    written: u64,
    unchanged: u64,
    with_embedding: u64,
    without_embedding: u64,
    from_hnsw: u64,
    from_log: u64,
    keys: BTreeSet<String>,
}

/// Open the source: a directory, a tarball, or the seed's S3 snapshot layout. Returns the
/// directory and the collection name the source implies (the S3 prefix's last part).
fn open_source(source: &str) -> CliResult<(ChromaDir, Option<String>)> {
    if let Some(rest) = source.strip_prefix("s3://") {
        return super::s3::open_snapshot(rest);
    }
    let path = Path::new(source);
    if path.is_dir() {
        let dir = ChromaDir::open(path).context(|| format!("reading {source}"))?;
        return Ok((dir, None));
    }
    if path.is_file() {
        let bytes = std::fs::read(path).context(|| format!("reading {source}"))?;
        let dir = ChromaDir::from_tar_gz(&bytes, &Limits::default())
            .context(|| format!("reading {source}"))?;
        return Ok((dir, None));
    }
    Err(CliError::failed(format!(
        "{source}: no such directory or file (expected a Chroma persist directory, a .tar.gz of one, or s3://bucket/collection)"
    )))
}

fn choose<'d>(
    dir: &'d ChromaDir,
    asked: Option<&str>,
    implied: Option<&str>,
) -> CliResult<ChromaCollection<'d>> {
    let result = match (asked, implied) {
        (Some(name), _) => dir.collection(name),
        (None, Some(name))
            if dir
                .collections()
                .is_ok_and(|c| c.iter().any(|c| c.name == name)) =>
        {
            dir.collection(name)
        }
        _ => dir.only_collection(),
    };
    result.map_err(|e| CliError::failed(e.to_string()))
}

/// `strata import-chroma SOURCE [--collection NAME] [--as NAME]`.
pub fn import_chroma(ctx: &Ctx, args: &ImportArgs) -> CliResult<i32> {
    let start = Instant::now();
    let opening = progress::spinner(format!("reading {}", args.source));
    let (dir, implied) = open_source(&args.source)?;
    let coll = choose(&dir, args.collection.as_deref(), implied.as_deref())?;
    opening.finish_and_clear();
    let target = args
        .as_name
        .clone()
        .unwrap_or_else(|| coll.name().to_string());
    strata_engine::check_collection_name(&target)?;
    let Some(dims) = coll.dimension() else {
        return Err(CliError::failed(format!(
            "collection {:?} was never written (no dimension): nothing to import",
            coll.name()
        )));
    };
    let store = ctx.writer("import-chroma")?;
    let result = run(&store, &coll, &target, dims);
    let closed = store.close();
    let summary = result?;
    closed?;
    report(
        ctx,
        args,
        &coll,
        &target,
        dims,
        &summary,
        start.elapsed().as_secs_f64(),
    );
    Ok(0)
}

fn ensure_collection(
    store: &Writer,
    coll: &ChromaCollection<'_>,
    target: &str,
    dims: usize,
) -> CliResult<()> {
    match store.collection_info(target) {
        Ok(info) => {
            if info.dims as usize != dims || info.metric != coll.metric() {
                return Err(CliError::failed(format!(
                    "collection {target} exists with {} dims and metric {}; the Chroma collection has {dims} dims and metric {}",
                    info.dims, info.metric, coll.metric()
                )));
            }
            Ok(())
        }
        Err(strata_engine::Error::NoSuchCollection(_)) => {
            store.create_collection(target, dims as u32, coll.metric(), Quantization::None)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn run(
    store: &Writer,
    coll: &ChromaCollection<'_>,
    target: &str,
    dims: usize,
) -> CliResult<Summary> {
    ensure_collection(store, coll, target, dims)?;
    let batch = (BATCH_BYTES / (dims * 4 + 256)).max(1);
    let bar = progress::items(coll.len() as u64, format!("importing {}", coll.name()));
    let mut summary = Summary::default();
    // Reading (SQLite pages, vector reads) on this thread, writing on another: one batch
    // in flight between them bounds the memory to two batches.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Operation>>(1);
    let written = std::thread::scope(|scope| -> CliResult<(u64, u64)> {
        let writer = scope.spawn(move || -> CliResult<(u64, u64)> {
            let mut counts = (0, 0);
            for ops in rx {
                write_batch(store, target, ops, &mut counts)?;
            }
            Ok(counts)
        });
        let read = read_all(coll, batch, &bar, &mut summary, &tx);
        drop(tx);
        let counts = writer
            .join()
            .map_err(|_| CliError::failed("the import's writer thread panicked"))?;
        read?;
        counts
    })?;
    (summary.written, summary.unchanged) = written;
    bar.finish_and_clear();
    Ok(summary)
}

/// Every record into batches of upserts sent to the writer thread.
fn read_all(
    coll: &ChromaCollection<'_>,
    batch: usize,
    bar: &indicatif::ProgressBar,
    summary: &mut Summary,
    tx: &std::sync::mpsc::SyncSender<Vec<Operation>>,
) -> CliResult<()> {
    let mut pending = Vec::with_capacity(batch);
    for record in coll.records() {
        let record = record.map_err(|e| CliError::failed(e.to_string()))?;
        summary.read += 1;
        summary.with_embedding += 1;
        match record.vector_source {
            VectorSource::Hnsw => summary.from_hnsw += 1,
            VectorSource::Log => summary.from_log += 1,
        }
        for k in record.metadata.keys() {
            if !summary.keys.contains(k) {
                summary.keys.insert(k.clone());
            }
        }
        let seq = Seq::from_u128(record.seq as u128);
        pending.push(record.into_upsert(seq));
        if pending.len() == batch {
            // A closed channel means the writer failed: its error is reported.
            if tx.send(std::mem::take(&mut pending)).is_err() {
                return Ok(());
            }
            bar.set_position(summary.read);
        }
    }
    let _ = tx.send(pending);
    Ok(())
}

/// Write the upserts whose record is not already there with the same content.
/// `counts` is (written, unchanged).
fn write_batch(
    store: &Writer,
    target: &str,
    ops: Vec<Operation>,
    counts: &mut (u64, u64),
) -> CliResult<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = ops
        .iter()
        .filter_map(|o| match &o.op {
            strata_formats::Op::Upsert(r) => Some(r.id.clone()),
            _ => None,
        })
        .collect();
    let snap = store.snapshot(target)?;
    let existing: std::collections::HashMap<String, strata_engine::RecordOut> = snap
        .get(&ids, Include::all())?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let fresh: Vec<Operation> = ops
        .into_iter()
        .filter(|o| match &o.op {
            strata_formats::Op::Upsert(r) => existing.get(&r.id).is_none_or(|e| {
                e.embedding != r.embedding
                    || e.document != r.document
                    || e.metadata.as_ref() != Some(&r.metadata)
            }),
            _ => true,
        })
        .collect();
    counts.1 += (ids.len() - fresh.len()) as u64;
    counts.0 += fresh.len() as u64;
    if !fresh.is_empty() {
        store.write_sequenced(target, fresh)?;
    }
    Ok(())
}

fn report(
    ctx: &Ctx,
    args: &ImportArgs,
    coll: &ChromaCollection<'_>,
    target: &str,
    dims: usize,
    s: &Summary,
    seconds: f64,
) {
    let rate = if seconds > 0.0 {
        s.read as f64 / seconds
    } else {
        0.0
    };
    if ctx.json {
        print_json(&json!({
            "source": args.source,
            "chroma_collection": coll.name(),
            "collection": target,
            "metric": coll.metric().name(),
            "dims": dims,
            "records": s.read,
            "written": s.written,
            "unchanged": s.unchanged,
            "with_embedding": s.with_embedding,
            "without_embedding": s.without_embedding,
            "vectors_from_hnsw": s.from_hnsw,
            "vectors_from_log": s.from_log,
            "metadata_keys": s.keys,
            "seconds": seconds,
            "records_per_second": rate,
        }));
        return;
    }
    println!(
        "imported {} records of Chroma collection {:?} into {target} ({dims} dims, metric {}) in {seconds:.2} s ({rate:.0} records/s)",
        s.read,
        coll.name(),
        coll.metric()
    );
    println!(
        "  written {}, unchanged {}; with embedding {}, without {}; vectors from HNSW files {}, from the log {}",
        s.written, s.unchanged, s.with_embedding, s.without_embedding, s.from_hnsw, s.from_log
    );
    let keys: Vec<&str> = s.keys.iter().map(String::as_str).collect();
    println!("  metadata keys ({}): {}", keys.len(), keys.join(", "));
}
