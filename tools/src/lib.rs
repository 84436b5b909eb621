//! strata-cli: the `strata` command-line tool (and, later, the Lambda entry points).
//!
//! Exit status: 0 ok, 1 error, 2 usage. Every read command has `--json`.

#![deny(missing_docs)]

use std::ffi::OsString;
use std::path::PathBuf;

pub mod demo;

use clap::{Parser, Subcommand};
use serde_json::json;
use strata_engine::{inspect_file, verify_store, FileSummary};

/// strata: an embedded storage engine for vector collections that change through a stream
/// of edits.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, long_about = None)]
pub struct Cli {
    /// The store directory.
    #[arg(long, global = true, default_value = "./strata-data")]
    pub store: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Describe one strata file: kind, format version, dims, counts, seq range, checksums.
    Inspect {
        /// A delta, segment or version file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the main job on a generated receipt workload: inbox deltas, ingestion,
    /// compaction, place/label/section edits, deletes, filtered queries, versions and a
    /// rollback, GC and verify; prints a report with timings and sizes.
    Demo {
        /// Number of receipts to generate.
        #[arg(long, default_value_t = 300)]
        receipts: usize,
        /// Seed of the deterministic generator.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Check every file of a store; exit status 1 on any corruption (file and block named).
    Verify {
        /// The store directory (defaults to --store).
        dir: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn summary_json(s: &FileSummary) -> serde_json::Value {
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

fn execute(cli: Cli) -> Result<i32, String> {
    match cli.command {
        Command::Inspect { file, json } => {
            let s = inspect_file(&file).map_err(|e| e.to_string())?;
            if json {
                println!("{}", summary_json(&s));
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
        Command::Demo { receipts, seed } => {
            demo::run(&cli.store, receipts, seed)?;
            Ok(0)
        }
        Command::Verify { dir, json } => {
            let dir = dir.unwrap_or(cli.store);
            let r = verify_store(&dir).map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    json!({
                        "files": r.files,
                        "bytes": r.bytes,
                        "ok": r.ok(),
                        "problems": r.problems.iter().map(|p| json!({"file": p.path.display().to_string(), "problem": p.what})).collect::<Vec<_>>(),
                    })
                );
            } else {
                for p in &r.problems {
                    println!("CORRUPT  {}: {}", p.path.display(), p.what);
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
    }
}

/// Run the CLI on arguments (the first is the program name); returns the exit status.
pub fn run<I: IntoIterator<Item = OsString>>(args: I) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match execute(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}
