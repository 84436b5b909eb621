//! strata-cli: the `strata` command-line tool.
//!
//! Modules: [`cli`] (the clap command tree), [`commands`] (one module per group of
//! commands), [`input`] (JSON lines, id lists, `.npy`, filters), [`output`] (tables and
//! JSON), [`progress`] (indicatif on stderr), [`error`] (exit statuses), [`demo`]. The
//! receipt pipeline's entry points that `ingest-events`, `lambda-invoke` and the demo run
//! are `strata_pipeline`'s; the demo's workload is `strata_testkit::workload`.
//!
//! Exit status: 0 ok, 1 error, 2 usage. Every read command has `--json`.

#![deny(missing_docs)]

use std::ffi::OsString;

pub mod cli;
pub mod commands;
pub mod demo;
pub mod error;
pub mod input;
pub mod output;
pub mod progress;

use clap::Parser;

pub use cli::{Cli, Command};
pub use error::{CliError, CliResult};

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
    match commands::execute(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_status()
        }
    }
}
