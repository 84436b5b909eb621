//! Errors of the binding and their Python exceptions: engine errors map onto the classes of
//! `strata.errors` (Chroma's names: `NotFoundError`, `InvalidArgumentError`, …), argument
//! errors onto `ValueError` / `TypeError`; the message is always strata's.

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use strata_engine::Error;

/// Why a binding call failed.
#[derive(Debug)]
pub(crate) enum BindError {
    /// The engine refused or failed.
    Engine(Error),
    /// A bad argument (`ValueError`).
    Value(String),
    /// An argument of the wrong type (`TypeError`).
    Type(String),
    /// A bad argument Chroma reports as `InvalidArgumentError`.
    InvalidArgument(String),
    /// The store was closed.
    Closed,
    /// A writing call on a read-only store.
    ReadOnly(&'static str),
}

impl From<Error> for BindError {
    fn from(e: Error) -> BindError {
        BindError::Engine(e)
    }
}

impl From<strata_formats::FilterError> for BindError {
    fn from(e: strata_formats::FilterError) -> BindError {
        BindError::Value(e.to_string())
    }
}

/// Result of a binding call.
pub(crate) type BindResult<T> = Result<T, BindError>;

/// An instance of `strata.errors.<class>` carrying `message`; a `RuntimeError` if that
/// module cannot be imported (the package is broken).
fn strata_error(py: Python<'_>, class: &str, message: String) -> PyErr {
    let made = py
        .import("strata.errors")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.call1((message.clone(),)));
    match made {
        Ok(instance) => PyErr::from_value(instance),
        Err(_) => PyRuntimeError::new_err(message),
    }
}

/// The `strata.errors` class an engine error is raised as.
fn class_of(e: &Error) -> &'static str {
    match e {
        Error::NoSuchCollection(_) | Error::NoSuchVersion { .. } => "NotFoundError",
        Error::CollectionExists(_) => "UniqueConstraintError",
        Error::InvalidOperation { .. } | Error::Invalid { .. } => "InvalidArgumentError",
        Error::WriterBusy { .. } | Error::Fenced { .. } => "WriterBusyError",
        Error::Format { .. } | Error::ManifestEntry { .. } => "CorruptionError",
        _ => "StrataError",
    }
}

impl BindError {
    /// The Python exception.
    pub(crate) fn into_py(self, py: Python<'_>) -> PyErr {
        match self {
            BindError::Engine(e) => strata_error(py, class_of(&e), e.to_string()),
            BindError::Value(m) => PyValueError::new_err(m),
            BindError::Type(m) => PyTypeError::new_err(m),
            BindError::InvalidArgument(m) => strata_error(py, "InvalidArgumentError", m),
            BindError::Closed => strata_error(py, "StrataError", "the store is closed".into()),
            BindError::ReadOnly(what) => strata_error(
                py,
                "ReadOnlyError",
                format!("{what} needs the writer: this client was opened read-only"),
            ),
        }
    }
}

/// Run `f` with the GIL released and turn its error into the Python exception.
pub(crate) fn detached<T: Send>(
    py: Python<'_>,
    f: impl FnOnce() -> BindResult<T> + Send,
) -> PyResult<T> {
    py.allow_threads(f).map_err(|e| e.into_py(py))
}
