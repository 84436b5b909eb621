//! `versions`, `rollback`, `pin` and `unpin`.

use serde_json::{json, Value as Json};
use strata_engine::{ReadableStore, VersionInfo};

use super::Ctx;
use crate::error::CliResult;
use crate::output::{human_bytes, print_json, time_text, Table};

/// A version as JSON (`pinned` is null when unknown).
pub fn version_json(v: &VersionInfo, pinned: Option<bool>) -> Json {
    json!({
        "version": v.version,
        "parent": v.parent,
        "created_ms": v.created_ms,
        "created": time_text(v.created_ms),
        "writer_epoch": v.writer_epoch,
        "rows": v.rows,
        "bytes": v.bytes,
        "segments": v.segments,
        "deltas": v.deltas,
        "head": v.head,
        "pinned": pinned,
        "note": v.note,
    })
}

/// `strata versions NAME`.
pub fn list(ctx: &Ctx, name: &str) -> CliResult<i32> {
    let store = ctx.reader()?;
    let versions = store.versions(name)?;
    // Version files do not record pins: the reader reads them from the manifest, without
    // taking the writer role. None when the manifest cannot be read.
    let pins = store.pins(name).ok();
    let pinned = |v: u64| pins.as_ref().map(|p| p.contains(&v));
    if ctx.json {
        print_json(&Json::Array(
            versions
                .iter()
                .map(|v| version_json(v, pinned(v.version)))
                .collect(),
        ));
        return Ok(0);
    }
    let mut t = Table::new(&[
        ">version",
        ">parent",
        "created",
        ">rows",
        ">segments",
        ">deltas",
        ">bytes",
        "flags",
        "note",
    ]);
    for v in &versions {
        let mut flags = vec![];
        if v.head {
            flags.push("head");
        }
        if pinned(v.version) == Some(true) {
            flags.push("pinned");
        }
        t.row(vec![
            v.version.to_string(),
            v.parent
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            time_text(v.created_ms),
            v.rows.to_string(),
            v.segments.to_string(),
            v.deltas.to_string(),
            human_bytes(v.bytes),
            flags.join(","),
            v.note.clone(),
        ]);
    }
    t.print();
    if pins.is_none() {
        eprintln!("note: pins unknown (the manifest could not be read)");
    }
    Ok(0)
}

/// `strata rollback NAME --to VERSION`.
pub fn rollback(ctx: &Ctx, name: &str, to: u64) -> CliResult<i32> {
    let store = ctx.existing_writer("rollback")?;
    let v = store.rollback(name, to)?;
    store.close()?;
    if ctx.json {
        print_json(&version_json(&v, Some(v.pinned)));
    } else {
        println!(
            "rolled {name} back to version {to}: new head version {} ({} rows)",
            v.version, v.rows
        );
    }
    Ok(0)
}

/// `strata pin NAME VERSION` (`pin = true`) and `strata unpin NAME VERSION`.
pub fn pin(ctx: &Ctx, name: &str, version: u64, pin: bool) -> CliResult<i32> {
    let store = ctx.existing_writer(if pin { "pin" } else { "unpin" })?;
    if pin {
        store.pin(name, version)?;
    } else {
        store.unpin(name, version)?;
    }
    store.close()?;
    if ctx.json {
        print_json(&json!({"collection": name, "version": version, "pinned": pin}));
    } else {
        println!(
            "{} version {version} of {name}",
            if pin { "pinned" } else { "unpinned" }
        );
    }
    Ok(0)
}
