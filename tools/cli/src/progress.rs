//! Progress on stderr (indicatif) for anything that can take more than a second: reading
//! input files, writing a delta, compaction, GC, batch queries. Hidden when stderr is not
//! a terminal, so scripts and tests see clean output.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// A spinner with a message, ticking on its own; `finish_and_clear` it when done.
pub fn spinner(msg: impl Into<String>) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(None, target());
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("a valid template"),
    );
    pb.set_message(msg.into());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// A bar over `len` bytes (reading a file).
pub fn bytes(len: u64, msg: impl Into<String>) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), target());
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:25}] {bytes}/{total_bytes} eta {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    pb.set_message(msg.into());
    pb
}

/// A bar over `len` items (queries, collections).
pub fn items(len: u64, msg: impl Into<String>) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), target());
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:25}] {pos}/{len} eta {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    pb.set_message(msg.into());
    pb
}
