//! `put`, `update` and `delete`: the input is read and checked in full (syntax, types,
//! dimensions against the collection, duplicate ids) before anything is written, and then
//! written as one delta, so a failed command leaves the store as it was.

use std::path::{Path, PathBuf};

use serde_json::json;
use strata_engine::{Include, ReadableStore, WriteReceipt, Writer};
use strata_formats::{Op, Operation, Record, Seq, Target};

use super::Ctx;
use crate::error::{CliError, CliResult};
use crate::input::{
    read_documents_jsonl, read_ids, read_metadata_jsonl, read_npy, read_patches_jsonl,
    read_records_jsonl, RecordLine,
};
use crate::output::{plural, print_json};
use crate::progress;

/// Where `put` reads records from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutSource {
    /// A JSON lines file of records.
    Jsonl(PathBuf),
    /// A `.npy` matrix, an id list and optionally metadata and document lines.
    Npy {
        /// The `.npy` file.
        npy: PathBuf,
        /// The ids file.
        ids: PathBuf,
        /// The metadata lines file.
        metadata: Option<PathBuf>,
        /// The document lines file.
        documents: Option<PathBuf>,
    },
}

impl PutSource {
    /// From the `put` flags (clap has checked which combinations are allowed).
    pub fn from_args(
        file: Option<PathBuf>,
        npy: Option<PathBuf>,
        ids: Option<PathBuf>,
        metadata: Option<PathBuf>,
        documents: Option<PathBuf>,
    ) -> CliResult<PutSource> {
        match (file, npy, ids) {
            (Some(f), None, None) => Ok(PutSource::Jsonl(f)),
            (None, Some(npy), Some(ids)) => Ok(PutSource::Npy {
                npy,
                ids,
                metadata,
                documents,
            }),
            _ => Err(CliError::usage(
                "put needs either --file FILE, or --npy FILE --ids FILE [--metadata FILE] \
                 [--documents FILE]",
            )),
        }
    }
}

/// Refuse a file of one line per row (`count` lines, read from `path`) whose count is not
/// the ids file's `n`.
fn same_count(
    what: &str,
    count: Option<usize>,
    path: Option<&Path>,
    ids: &Path,
    n: usize,
) -> CliResult<()> {
    match (count, path) {
        (Some(c), Some(p)) if c != n => Err(CliError::failed(format!(
            "{} has {c} {what} lines but {} has {n} ids",
            p.display(),
            ids.display()
        ))),
        _ => Ok(()),
    }
}

/// Records from a `.npy` matrix, ids and metadata, checked against each other. Record
/// "lines" are the ids file's line numbers.
fn npy_records(
    npy: &Path,
    ids: &Path,
    metadata: Option<&Path>,
    documents: Option<&Path>,
) -> CliResult<Vec<RecordLine>> {
    let ids_list = read_ids(ids)?;
    let metas = metadata.map(read_metadata_jsonl).transpose()?;
    let docs = documents.map(read_documents_jsonl).transpose()?;
    let arr = read_npy(npy)?;
    if arr.shape.len() != 2 {
        return Err(CliError::failed(format!(
            "{}: expected a 2-D array (one row per record), found shape {}",
            npy.display(),
            arr.shape_text()
        )));
    }
    if arr.rows.len() != ids_list.len() {
        return Err(CliError::failed(format!(
            "{} has {} ids but {} has {} rows (shape {})",
            ids.display(),
            ids_list.len(),
            npy.display(),
            arr.rows.len(),
            arr.shape_text()
        )));
    }
    let n = ids_list.len();
    same_count("metadata", metas.as_ref().map(Vec::len), metadata, ids, n)?;
    same_count("document", docs.as_ref().map(Vec::len), documents, ids, n)?;
    let mut metas = metas.map(Vec::into_iter);
    let mut docs = docs.map(Vec::into_iter);
    Ok(ids_list
        .into_iter()
        .zip(arr.rows)
        .enumerate()
        .map(|(i, (id, embedding))| RecordLine {
            line: i + 1,
            record: Record {
                id,
                embedding: Some(embedding),
                document: docs.as_mut().and_then(Iterator::next).flatten(),
                metadata: metas.as_mut().and_then(Iterator::next).unwrap_or_default(),
            },
        })
        .collect())
}

fn write_with_progress(store: &Writer, name: &str, ops: Vec<Op>) -> CliResult<WriteReceipt> {
    let pb = progress::spinner(format!("writing {} operations to {name}", ops.len()));
    let r = store.write(name, ops);
    pb.finish_and_clear();
    Ok(r?)
}

fn report(ctx: &Ctx, name: &str, key: &str, n: usize, text: &str, receipt: &WriteReceipt) {
    if ctx.json {
        print_json(&json!({
            "collection": name,
            key: n,
            "version": receipt.version,
            "delta": receipt.delta,
        }));
    } else {
        println!(
            "{text} (version {}, delta {})",
            receipt.version, receipt.delta
        );
    }
}

/// `strata put NAME (--file F | --npy F --ids F [--metadata F])`.
pub fn put(ctx: &Ctx, name: &str, source: PutSource) -> CliResult<i32> {
    ctx.require_store()?;
    let (records, unit, origin) = match &source {
        PutSource::Jsonl(f) => (read_records_jsonl(f)?, "line", f.clone()),
        PutSource::Npy {
            npy,
            ids,
            metadata,
            documents,
        } => (
            npy_records(npy, ids, metadata.as_deref(), documents.as_deref())?,
            "row",
            npy.clone(),
        ),
    };
    let store = ctx.existing_writer("put")?;
    let info = store.collection_info(name)?;
    if let (PutSource::Npy { npy, .. }, Some(first)) = (&source, records.first()) {
        // Every row has the same length: one message for the whole file.
        let cols = first.record.embedding.as_ref().map_or(0, Vec::len);
        if info.dims == 0 {
            return Err(CliError::failed(format!(
                "collection {name:?} is metadata-only (dims 0); put its records with --file"
            )));
        }
        if cols != info.dims as usize {
            return Err(CliError::failed(format!(
                "{}: rows have {cols} values; collection {name:?} has {} dimensions",
                npy.display(),
                info.dims
            )));
        }
    }
    let (lines, ops): (Vec<usize>, Vec<Operation>) = records
        .into_iter()
        .map(|r| {
            let op = Operation {
                seq: Seq::ZERO,
                op: Op::Upsert(r.record),
            };
            (r.line, op)
        })
        .unzip();
    for (line, op) in lines.iter().zip(&ops) {
        strata_engine::validate(&info, op).map_err(|e| {
            let n = if unit == "row" { line - 1 } else { *line };
            CliError::failed(format!("{} {unit} {n}: {e}", origin.display()))
        })?;
    }
    if ops.is_empty() {
        if ctx.json {
            print_json(&json!({"collection": name, "records": 0, "version": null}));
        } else {
            println!("{}: no records; nothing written", origin.display());
        }
        return Ok(0);
    }
    let n = ops.len();
    let ops = ops.into_iter().map(|o| o.op).collect();
    let receipt = write_with_progress(&store, name, ops)?;
    store.close()?;
    report(
        ctx,
        name,
        "records",
        n,
        &format!("wrote {} to {name}", plural(n, "record", "records")),
        &receipt,
    );
    Ok(0)
}

/// `strata update NAME --file patches.jsonl`.
pub fn update(ctx: &Ctx, name: &str, file: &Path) -> CliResult<i32> {
    ctx.require_store()?;
    let patches = read_patches_jsonl(file)?;
    let store = ctx.existing_writer("update")?;
    let snap = store.snapshot(name)?;
    if patches.is_empty() {
        if ctx.json {
            print_json(&json!({"collection": name, "patches": 0, "version": null}));
        } else {
            println!("{}: no patches; nothing written", file.display());
        }
        return Ok(0);
    }
    let ids: Vec<String> = patches
        .iter()
        .filter_map(|p| p.patch.target.ids())
        .flatten()
        .cloned()
        .collect();
    let mut found = 0;
    for chunk in ids.chunks(strata_engine::limits::MAX_GET_IDS) {
        found += snap.get(chunk, Include::ids())?.len();
    }
    drop(snap);
    if found < ids.len() {
        eprintln!(
            "warning: {} of the {} ids named in {} have no record in {name}",
            ids.len() - found,
            ids.len(),
            file.display()
        );
    }
    let n = patches.len();
    let ops = patches.into_iter().map(|p| Op::Patch(p.patch)).collect();
    let receipt = write_with_progress(&store, name, ops)?;
    store.close()?;
    report(
        ctx,
        name,
        "patches",
        n,
        &format!("wrote {} to {name}", plural(n, "patch", "patches")),
        &receipt,
    );
    Ok(0)
}

/// `strata delete NAME (--ids ID... | --where JSON)`.
pub fn delete(ctx: &Ctx, name: &str, ids: &[String], filter: Option<&str>) -> CliResult<i32> {
    let target = match filter {
        Some(text) => Target::Where(crate::input::parse_where(text)?),
        None => {
            if let Some(i) = ids.iter().position(|id| id.is_empty()) {
                return Err(CliError::failed(format!("--ids: id {} is empty", i + 1)));
            }
            match ids {
                [] => return Err(CliError::usage("delete needs --ids or --where")),
                [one] => Target::Id(one.clone()),
                many => Target::Ids(many.to_vec()),
            }
        }
    };
    let store = ctx.existing_writer("delete")?;
    let snap = store.snapshot(name)?;
    let n = match &target {
        Target::Where(f) => snap.count(Some(f))?,
        t => snap.get(t.ids().unwrap_or_default(), Include::ids())?.len(),
    };
    drop(snap);
    let receipt = write_with_progress(&store, name, vec![Op::Delete(target)])?;
    store.close()?;
    report(
        ctx,
        name,
        "deleted",
        n,
        &format!("deleted {} from {name}", plural(n, "record", "records")),
        &receipt,
    );
    Ok(0)
}
