//! `CliError`: how a command fails — a usage error (exit status 2) or a failure (exit
//! status 1) — with a message that says what was wrong and where.

use std::fmt;

/// A failed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// The command line itself is wrong (exit status 2).
    Usage(String),
    /// The command could not be done: bad input, a store error, … (exit status 1).
    Failed(String),
}

/// Result of a command.
pub type CliResult<T> = Result<T, CliError>;

impl CliError {
    /// A failure with a message.
    pub fn failed(msg: impl Into<String>) -> CliError {
        CliError::Failed(msg.into())
    }

    /// A usage error with a message.
    pub fn usage(msg: impl Into<String>) -> CliError {
        CliError::Usage(msg.into())
    }

    /// The exit status this error maps to.
    pub fn exit_status(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CliError {}

impl From<strata_engine::Error> for CliError {
    fn from(e: strata_engine::Error) -> CliError {
        CliError::Failed(e.to_string())
    }
}

/// Attach "where" to any error: `result.context(|| format!("reading {path}"))` turns an
/// error `e` into the failure "reading {path}: e".
pub trait Context<T> {
    /// Prefix the error's message with `what`.
    fn context<S: Into<String>>(self, what: impl FnOnce() -> S) -> CliResult<T>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn context<S: Into<String>>(self, what: impl FnOnce() -> S) -> CliResult<T> {
        self.map_err(|e| CliError::Failed(format!("{}: {e}", what().into())))
    }
}
