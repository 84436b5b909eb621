//! `create`, `collections` and `drop`.

use serde_json::{json, Value as Json};
use strata_engine::{CollectionInfo, ReadableStore};
use strata_formats::{Metric, Quantization};

use super::Ctx;
use crate::error::{CliError, CliResult};
use crate::output::{print_json, time_text, Table};

/// A collection's settings as JSON.
pub fn info_json(info: &CollectionInfo) -> Json {
    json!({
        "name": info.name,
        "dims": info.dims,
        "metric": info.metric.name(),
        "quantization": info.quantization.name(),
        "created_ms": info.created_ms,
    })
}

/// `strata create NAME --dims N [--metric M] [--quantize Q]`.
pub fn create(
    ctx: &Ctx,
    name: &str,
    dims: u32,
    metric: Metric,
    quantize: Quantization,
) -> CliResult<i32> {
    // Check the name before opening, so that a bad name creates no store directory.
    strata_engine::check_collection_name(name)?;
    if dims > strata_formats::segment::MAX_DIMS {
        return Err(CliError::failed(format!(
            "--dims {dims} exceeds the maximum of {}",
            strata_formats::segment::MAX_DIMS
        )));
    }
    let store = ctx.writer("create")?;
    let info = store.create_collection(name, dims, metric, quantize)?;
    store.close()?;
    if ctx.json {
        print_json(&info_json(&info));
    } else {
        println!(
            "created collection {}: {} dims, metric {}, quantization {}",
            info.name, info.dims, info.metric, info.quantization
        );
    }
    Ok(0)
}

/// `strata collections`.
pub fn list(ctx: &Ctx) -> CliResult<i32> {
    let store = ctx.reader()?;
    let infos = store.collections()?;
    if ctx.json {
        print_json(&Json::Array(infos.iter().map(info_json).collect()));
    } else if infos.is_empty() {
        println!("no collections");
    } else {
        let mut t = Table::new(&["name", ">dims", "metric", "quantization", "created"]);
        for i in &infos {
            t.row(vec![
                i.name.clone(),
                i.dims.to_string(),
                i.metric.to_string(),
                i.quantization.to_string(),
                time_text(i.created_ms),
            ]);
        }
        t.print();
    }
    Ok(0)
}

/// `strata drop NAME`.
pub fn drop(ctx: &Ctx, name: &str) -> CliResult<i32> {
    let store = ctx.existing_writer("drop")?;
    store.drop_collection(name)?;
    store.close()?;
    if ctx.json {
        print_json(&json!({"dropped": name}));
    } else {
        println!("dropped collection {name} (its files are deleted by a later `strata gc`)");
    }
    Ok(0)
}
