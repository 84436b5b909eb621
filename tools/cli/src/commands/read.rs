//! `get`, `count` and `query`: read-only, on a snapshot of the collection's head, through
//! a reader handle (they work while another process is the writer).

use std::path::PathBuf;

use serde_json::{json, Value as Json};
use strata_engine::{Include, Query, ReadableStore, SearchOptions};
use strata_formats::Filter;

use super::Ctx;
use crate::error::{CliError, CliResult};
use crate::input::{parse_vectors, parse_where, read_npy};
use crate::output::{print_json, record_json, record_table};
use crate::progress;

fn filter_of(text: Option<&str>) -> CliResult<Option<Filter>> {
    text.map(parse_where).transpose()
}

/// `strata get NAME [--ids ID... | --where JSON] [--limit N] [--offset N] [--include ...]`.
pub fn get(
    ctx: &Ctx,
    name: &str,
    ids: &[String],
    filter: Option<&str>,
    limit: Option<usize>,
    offset: usize,
    include: Include,
) -> CliResult<i32> {
    let filter = filter_of(filter)?;
    let store = ctx.reader()?;
    let snap = store.snapshot(name)?;
    let pb = progress::spinner(format!("reading {name}"));
    let records = if ids.is_empty() {
        snap.get_where(filter.as_ref(), limit, offset, include)
    } else {
        snap.get(ids, include).map(|r| {
            r.into_iter()
                .skip(offset)
                .take(limit.unwrap_or(usize::MAX))
                .collect()
        })
    };
    pb.finish_and_clear();
    let records = records?;
    if ctx.json {
        print_json(&json!({
            "collection": name,
            "version": snap.version().version,
            "records": records.iter().map(record_json).collect::<Vec<_>>(),
        }));
    } else if records.is_empty() {
        println!("no records");
    } else {
        record_table(&records, false).print();
    }
    Ok(0)
}

/// `strata count NAME [--where JSON]`.
pub fn count(ctx: &Ctx, name: &str, filter: Option<&str>) -> CliResult<i32> {
    let filter = filter_of(filter)?;
    let store = ctx.reader()?;
    let snap = store.snapshot(name)?;
    let pb = progress::spinner(format!("counting {name}"));
    let n = snap.count(filter.as_ref());
    pb.finish_and_clear();
    let n = n?;
    if ctx.json {
        print_json(&json!({
            "collection": name,
            "version": snap.version().version,
            "count": n,
        }));
    } else {
        println!("{n}");
    }
    Ok(0)
}

/// The arguments of `query`.
#[derive(Debug, Clone)]
pub struct QueryArgs {
    /// The collection.
    pub name: String,
    /// `--vector`: JSON of one vector or a list of vectors.
    pub vector: Option<String>,
    /// `--npy`: a file of query vectors.
    pub npy: Option<PathBuf>,
    /// Neighbours per query.
    pub k: usize,
    /// `--where` text.
    pub filter: Option<String>,
    /// What to return.
    pub include: Include,
    /// `--exact`.
    pub exact: bool,
    /// `--oversample`.
    pub oversample: Option<usize>,
}

/// Queries answered per engine call (and per progress step).
const BATCH: usize = 1024;

/// `strata query NAME (--vector JSON | --npy FILE) [--k N] [--where JSON] [--include ...]`.
pub fn query(ctx: &Ctx, a: &QueryArgs) -> CliResult<i32> {
    let (vectors, source) = match (&a.vector, &a.npy) {
        (Some(text), None) => (parse_vectors(text)?, "--vector".to_string()),
        (None, Some(path)) => (read_npy(path)?.rows, path.display().to_string()),
        _ => {
            return Err(CliError::usage(
                "query needs either --vector JSON or --npy FILE",
            ))
        }
    };
    let filter = filter_of(a.filter.as_deref())?;
    let store = ctx.reader()?;
    let snap = store.snapshot(&a.name)?;
    let dims = snap.info().dims as usize;
    if dims == 0 {
        return Err(CliError::failed(format!(
            "collection {:?} is metadata-only (dims 0): it has no vectors to query; use `strata get --where`",
            a.name
        )));
    }
    for (i, v) in vectors.iter().enumerate() {
        if v.len() != dims {
            let which = if vectors.len() == 1 {
                "the query vector".to_string()
            } else {
                format!("query {i}")
            };
            return Err(CliError::failed(format!(
                "{source}: {which} has {} dimensions; collection {:?} has {dims}",
                v.len(),
                a.name
            )));
        }
    }
    let opts = SearchOptions {
        exact: a.exact,
        oversample: a.oversample,
    };
    let many = vectors.len() > 1;
    let pb = if many {
        progress::items(vectors.len() as u64, format!("querying {}", a.name))
    } else {
        progress::spinner(format!("querying {}", a.name))
    };
    let mut first = true;
    for (chunk_no, chunk) in vectors.chunks(BATCH).enumerate() {
        let results = if chunk.len() == 1 {
            snap.query_with(
                &Query {
                    vector: &chunk[0],
                    k: a.k,
                    filter: filter.as_ref(),
                    include: a.include,
                },
                &opts,
            )
            .map(|r| vec![r])
        } else {
            snap.query_batch(chunk, a.k, filter.as_ref(), a.include, &opts)
        };
        let results = match results {
            Ok(r) => r,
            Err(e) => {
                pb.finish_and_clear();
                return Err(e.into());
            }
        };
        pb.inc(chunk.len() as u64);
        pb.suspend(|| {
            for (j, records) in results.iter().enumerate() {
                let qi = chunk_no * BATCH + j;
                if ctx.json {
                    print_json(&json!({
                        "query": qi,
                        "results": records.iter().map(record_json).collect::<Vec<Json>>(),
                    }));
                } else {
                    if many {
                        if !first {
                            println!();
                        }
                        println!("query {qi}:");
                    }
                    if records.is_empty() {
                        println!("no results");
                    } else {
                        record_table(records, true).print();
                    }
                }
                first = false;
            }
        });
    }
    pb.finish_and_clear();
    Ok(0)
}
