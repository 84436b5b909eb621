//! Failpoints (the `fail` crate), compiled in only under the `failpoints` feature: the
//! [`failpoint!`](crate::failpoint) macro marks an I/O step; a test configures it to fail
//! with `return(eio)`, `return(enospc)` (an [`StorageError::Io`] naming the step and the
//! file) or to run a callback (a child process aborts there). Without the feature the macro
//! expands to nothing.

use std::io;
use std::path::PathBuf;

use crate::error::StorageError;

/// The error a failpoint configured with `return(ARG)` injects: `enospc` is "no space left
/// on device" ([`StorageError::is_no_space`]), anything else an input/output error. The
/// operation is the failpoint's name (the step), the path the file it was about to touch.
pub fn injected(step: &'static str, path: PathBuf, arg: Option<&str>) -> StorageError {
    let source = match arg {
        Some("enospc") => io::Error::new(
            io::ErrorKind::StorageFull,
            format!("injected ENOSPC (no space left on device) at failpoint {step}"),
        ),
        _ => io::Error::other(format!(
            "injected EIO (input/output error) at failpoint {step}"
        )),
    };
    StorageError::Io {
        op: step,
        path,
        source,
    }
}

/// `failpoint!("step", path)`: when the failpoint `step` is configured to `return(ARG)`,
/// return `Err(injected(step, path, ARG).into())` from the enclosing function (which
/// returns a `Result` whose error converts from [`StorageError`]). Nothing without the
/// `failpoints` feature.
#[macro_export]
macro_rules! failpoint {
    ($name:literal, $path:expr) => {
        $crate::fail::fail_point!($name, |arg: Option<String>| {
            Err($crate::failpoints::injected($name, $path, arg.as_deref()).into())
        })
    };
}
