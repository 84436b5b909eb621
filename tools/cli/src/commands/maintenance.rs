//! `compact`, `gc`, `publish` and `stats`.

use std::fs;
use std::path::Path;

use serde_json::{json, Value as Json};
use strata_engine::{
    CompactReport, ObjectStorage, PublishOptions, ReadableStore, SpaceReport, SpaceUsage,
};

use super::Ctx;
use crate::error::CliResult;
use crate::output::{human_bytes, print_json, Table};
use crate::progress;

/// A compaction report as JSON.
pub fn compact_json(name: &str, r: &CompactReport) -> Json {
    json!({
        "collection": name,
        "version": r.version,
        "deltas_folded": r.deltas_folded,
        "segments_in": r.segments_in,
        "segments_out": r.segments_out,
        "rows_out": r.rows_out,
        "bytes_in": r.bytes_in,
        "bytes_out": r.bytes_out,
    })
}

/// `strata compact [NAME]`: one collection, or every collection in name order. Each
/// collection's compaction is one atomic commit.
pub fn compact(ctx: &Ctx, name: Option<&str>) -> CliResult<i32> {
    let store = ctx.existing_writer("compact")?;
    let names: Vec<String> = match name {
        Some(n) => vec![store.collection_info(n)?.name],
        None => {
            let mut v: Vec<String> = store.collections()?.into_iter().map(|c| c.name).collect();
            v.sort();
            v
        }
    };
    let mut reports = Vec::new();
    for n in &names {
        let pb = progress::spinner(format!("compacting {n}"));
        let r = store.compact(n);
        pb.finish_and_clear();
        reports.push((n.clone(), r?));
    }
    store.close()?;
    if ctx.json {
        print_json(&Json::Array(
            reports.iter().map(|(n, r)| compact_json(n, r)).collect(),
        ));
        return Ok(0);
    }
    if reports.is_empty() {
        println!("no collections");
        return Ok(0);
    }
    let mut t = Table::new(&[
        "collection",
        ">version",
        ">deltas folded",
        ">segments in",
        ">segments out",
        ">rows",
        ">bytes in",
        ">bytes out",
    ]);
    for (n, r) in &reports {
        match r.version {
            None => t.row(vec![n.clone(), "-".into(), "nothing to do".into()]),
            Some(v) => t.row(vec![
                n.clone(),
                v.to_string(),
                r.deltas_folded.to_string(),
                r.segments_in.to_string(),
                r.segments_out.to_string(),
                r.rows_out.to_string(),
                human_bytes(r.bytes_in),
                human_bytes(r.bytes_out),
            ]),
        }
    }
    t.print();
    Ok(0)
}

/// `strata gc [--older-than DURATION]`.
pub fn gc(ctx: &Ctx, older_than: Option<std::time::Duration>) -> CliResult<i32> {
    let store = ctx.existing_writer("gc")?;
    let pb = progress::spinner("collecting garbage");
    let r = match older_than {
        Some(age) => store.gc_with(&strata_engine::GcOptions::older_than(age)),
        None => store.gc(),
    };
    pb.finish_and_clear();
    let r = r?;
    store.close()?;
    if ctx.json {
        print_json(&json!({
            "versions_dropped": r.versions_dropped,
            "files_deleted": r.files_deleted,
            "bytes_freed": r.bytes_freed,
            "files_in_grace": r.files_in_grace,
        }));
    } else {
        println!(
            "dropped {} versions, deleted {} files ({}); {} unreferenced files kept for the grace period",
            r.versions_dropped,
            r.files_deleted,
            human_bytes(r.bytes_freed),
            r.files_in_grace
        );
    }
    Ok(0)
}

/// `publish URL`: the store's retained versions to object storage.
pub fn publish(ctx: &Ctx, url: &str, unsafe_unconditional: bool) -> CliResult<i32> {
    let store = ctx.existing_writer("publish")?;
    let remote = ObjectStorage::from_url(url).map_err(strata_engine::Error::from)?;
    let options = PublishOptions {
        unsafe_unconditional,
        ..PublishOptions::default()
    };
    let pb = progress::spinner("publishing");
    let r = store.publish_to(&remote, &options);
    pb.finish_and_clear();
    let r = r?;
    store.close()?;
    let heads: Vec<Json> = r
        .head
        .collections
        .iter()
        .map(|(name, c)| json!({"collection": name, "head": c.head, "versions": c.versions}))
        .collect();
    if ctx.json {
        print_json(&json!({
            "url": r.url,
            "store_id": r.head.store_id,
            "unchanged": r.unchanged,
            "files_uploaded": r.files_uploaded,
            "bytes_uploaded": r.bytes_uploaded,
            "files_present": r.files_present,
            "requests": r.requests,
            "collections": heads,
        }));
    } else if r.unchanged {
        println!(
            "{} already holds this store's state ({})",
            r.url,
            r.head.describe()
        );
    } else {
        println!(
            "published {} to {}: {} files uploaded ({}), {} already there, {} requests",
            r.head.describe(),
            r.url,
            r.files_uploaded,
            human_bytes(r.bytes_uploaded),
            r.files_present,
            r.requests
        );
    }
    Ok(0)
}

/// `gc-remote URL --grace S`: unreferenced objects of a published store.
pub fn gc_remote(ctx: &Ctx, url: &str, grace: u64) -> CliResult<i32> {
    let store = ctx.existing_writer("gc-remote")?;
    let remote = ObjectStorage::from_url(url).map_err(strata_engine::Error::from)?;
    let pb = progress::spinner("collecting remote garbage");
    let r = store.gc_remote(&remote, std::time::Duration::from_secs(grace));
    pb.finish_and_clear();
    let r = r?;
    store.close()?;
    if ctx.json {
        print_json(&json!({
            "url": url,
            "objects_referenced": r.objects_referenced,
            "objects_deleted": r.objects_deleted,
            "bytes_freed": r.bytes_freed,
            "objects_in_grace": r.objects_in_grace,
        }));
    } else {
        println!(
            "{url}: deleted {} objects ({}); {} referenced, {} unreferenced kept for the grace period",
            r.objects_deleted,
            human_bytes(r.bytes_freed),
            r.objects_referenced,
            r.objects_in_grace
        );
    }
    Ok(0)
}

/// Bytes and files under a directory (recursively; missing = 0).
fn dir_usage(dir: &Path) -> (u64, u64) {
    let mut bytes = 0;
    let mut files = 0;
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => {
                    let (b, f) = dir_usage(&e.path());
                    bytes += b;
                    files += f;
                }
                Ok(m) => {
                    bytes += m.len();
                    files += 1;
                }
                Err(_) => {}
            }
        }
    }
    (bytes, files)
}

/// `strata stats [NAME]`: per collection the head's rows, segments, deltas and bytes, and
/// the retained versions; for the whole store, disk use per directory.
pub fn stats(ctx: &Ctx, name: Option<&str>) -> CliResult<i32> {
    let store = ctx.reader()?;
    let infos = match name {
        Some(n) => vec![store.collection_info(n)?],
        None => store.collections()?,
    };
    let mut rows = Vec::new();
    for info in &infos {
        let versions = store.versions(&info.name)?;
        let head = versions.iter().find(|v| v.head);
        rows.push(json!({
            "name": info.name,
            "dims": info.dims,
            "metric": info.metric.name(),
            "quantization": info.quantization.name(),
            "head": head.map(|h| h.version),
            "rows": head.map_or(0, |h| h.rows),
            "segments": head.map_or(0, |h| h.segments),
            "deltas": head.map_or(0, |h| h.deltas),
            "bytes": head.map_or(0, |h| h.bytes),
            "versions": versions.len(),
        }));
    }
    let disk: Vec<(&str, (u64, u64))> =
        ["segments", "deltas", "versions", "inbox", "manifest", "tmp"]
            .into_iter()
            .map(|d| (d, dir_usage(&ctx.store.join(d))))
            .collect();
    let total: u64 = disk.iter().map(|(_, (b, _))| b).sum();
    let space = store.space()?;
    if ctx.json {
        let mut d = serde_json::Map::new();
        for (k, (b, f)) in &disk {
            d.insert(k.to_string(), json!({"bytes": b, "files": f}));
        }
        d.insert("total_bytes".into(), json!(total));
        print_json(&json!({"collections": rows, "disk": d, "space": space_json(&space)}));
        return Ok(0);
    }
    if rows.is_empty() {
        println!("no collections");
    } else {
        let mut t = Table::new(&[
            "collection",
            ">dims",
            "metric",
            "quant",
            ">rows",
            ">segments",
            ">deltas",
            ">bytes",
            ">versions",
            ">head",
        ]);
        for r in &rows {
            let s = |k: &str| match &r[k] {
                Json::String(s) => s.clone(),
                Json::Null => "-".into(),
                v => v.to_string(),
            };
            t.row(vec![
                s("name"),
                s("dims"),
                s("metric"),
                s("quantization"),
                s("rows"),
                s("segments"),
                s("deltas"),
                human_bytes(r["bytes"].as_u64().unwrap_or(0)),
                s("versions"),
                s("head"),
            ]);
        }
        t.print();
    }
    if name.is_none() {
        let parts: Vec<String> = disk
            .iter()
            .filter(|(_, (_, f))| *f > 0)
            .map(|(k, (b, f))| format!("{k} {} in {f} files", human_bytes(*b)))
            .collect();
        println!("disk: {} total; {}", human_bytes(total), parts.join(", "));
    }
    print_space(&space);
    Ok(0)
}

/// The parts of a [`SpaceReport`]: JSON key, label, usage.
fn space_parts(space: &SpaceReport) -> [(&'static str, &'static str, SpaceUsage); 6] {
    [
        ("head", "head", space.head),
        ("retained", "rollback window", space.retained),
        ("unreferenced", "awaiting GC", space.unreferenced),
        ("tmp", "tmp", space.tmp),
        ("inbox", "inbox", space.inbox),
        ("metadata", "metadata", space.metadata),
    ]
}

fn space_json(space: &SpaceReport) -> Json {
    let mut sp = serde_json::Map::new();
    for (k, _, u) in space_parts(space) {
        sp.insert(k.to_string(), json!({"bytes": u.bytes, "files": u.files}));
    }
    sp.insert("total_bytes".into(), json!(space.total_bytes()));
    sp.insert("amplification".into(), json!(space.amplification()));
    Json::Object(sp)
}

fn print_space(space: &SpaceReport) {
    let held: Vec<String> = space_parts(space)
        .iter()
        .filter(|(_, _, u)| u.files > 0)
        .map(|(_, label, u)| format!("{label} {}", human_bytes(u.bytes)))
        .collect();
    let amplification = space
        .amplification()
        .map_or_else(|| "-".to_string(), |a| format!("{a:.2}"));
    println!(
        "space: {}; amplification (all ÷ head) {amplification}",
        held.join(", ")
    );
}
