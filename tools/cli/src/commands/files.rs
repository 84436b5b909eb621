//! `inspect` and `verify`: offline checks of strata files, no writer needed.

use std::path::{Path, PathBuf};

use serde_json::json;
use strata_engine::{inspect_file, verify_store, FileSummary};

use super::Ctx;
use crate::error::CliResult;
use crate::output::print_json;
use crate::progress;

/// A file summary as JSON.
pub fn summary_json(s: &FileSummary) -> serde_json::Value {
    json!({
        "kind": s.kind.to_string(),
        "format_version": s.version.map(|v| v.to_string()),
        "bytes": s.bytes,
        "collection": s.collection,
        "dims": s.dims,
        "count": s.count,
        "seq_range": s.seq_range.map(|(a, b)| [a.to_string(), b.to_string()]),
        "details": s.details.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
        "checksums": match &s.checksums { Ok(()) => "ok".to_string(), Err(e) => e.clone() },
    })
}

/// `strata inspect FILE`: exit status 1 when a checksum fails.
pub fn inspect(ctx: &Ctx, file: &Path) -> CliResult<i32> {
    let s = inspect_file(file)?;
    if ctx.json {
        print_json(&summary_json(&s));
    } else {
        println!("file            {}", file.display());
        println!("kind            {}", s.kind);
        if let Some(v) = s.version {
            println!("format version  {v}");
        }
        println!("bytes           {}", s.bytes);
        if let Some(c) = &s.collection {
            println!("collection      {c}");
        }
        if let Some(d) = s.dims {
            println!("dims            {d}");
        }
        println!("count           {}", s.count);
        if let Some((a, b)) = s.seq_range {
            println!("seq range       {a} ..= {b}");
        }
        for (k, v) in &s.details {
            println!("{k:<15} {v}");
        }
        match &s.checksums {
            Ok(()) => println!("checksums       ok"),
            Err(e) => println!("checksums       FAILED: {e}"),
        }
    }
    Ok(if s.checksums.is_ok() { 0 } else { 1 })
}

/// `strata verify [DIR]`: exit status 1 on any corruption.
pub fn verify(ctx: &Ctx, dir: Option<PathBuf>) -> CliResult<i32> {
    let dir = dir.unwrap_or_else(|| ctx.store.clone());
    let pb = progress::spinner(format!("verifying {}", dir.display()));
    let r = verify_store(&dir);
    pb.finish_and_clear();
    let r = r?;
    if ctx.json {
        print_json(&json!({
            "files": r.files,
            "bytes": r.bytes,
            "ok": r.ok(),
            "problems": r.problems.iter().map(|p| json!({"file": p.path.display().to_string(), "problem": p.what})).collect::<Vec<_>>(),
            "versions": r.versions.iter().map(|v| json!({
                "collection": v.collection,
                "version": v.version,
                "head": v.head,
                "intact": v.intact(),
                "damaged": v.damaged.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }));
    } else {
        for p in &r.problems {
            println!("CORRUPT  {}: {}", p.path.display(), p.what);
        }
        if !r.ok() {
            print_version_health(&r);
        }
        println!(
            "{} files, {} bytes checked: {}",
            r.files,
            r.bytes,
            if r.ok() {
                "ok".to_string()
            } else {
                format!("{} problems", r.problems.len())
            }
        );
    }
    Ok(if r.ok() { 0 } else { 1 })
}

/// Where files are damaged: each collection's retained versions, intact or not, and the
/// rollback that returns to the newest intact one.
fn print_version_health(r: &strata_engine::VerifyReport) {
    let mut collections: Vec<&str> = r.versions.iter().map(|v| v.collection.as_str()).collect();
    collections.dedup();
    for c in collections {
        let mut versions: Vec<_> = r.versions.iter().filter(|v| v.collection == c).collect();
        versions.sort_by_key(|v| std::cmp::Reverse(v.version));
        if versions.iter().all(|v| v.intact()) {
            continue;
        }
        println!("collection {c:?}: retained versions");
        for v in &versions {
            let head = if v.head { " (head)" } else { "" };
            if v.intact() {
                println!("  version {}{head}: intact", v.version);
            } else {
                let files: Vec<String> =
                    v.damaged.iter().map(|p| p.display().to_string()).collect();
                println!(
                    "  version {}{head}: DAMAGED ({})",
                    v.version,
                    files.join(", ")
                );
            }
        }
        match r.intact_versions(c).first() {
            Some(v) => {
                println!("  to return to the newest intact version: strata rollback {c} --to {v}")
            }
            None => println!("  no retained version is intact"),
        }
    }
}
