//! Run deltas in the seed's format (seed §4.1–§4.3): a Chroma persist directory holding one
//! collection named like the target (`lines` or `words`), as the tarball `delta.tar.gz` or
//! as separate files under the run prefix. [`operations`] reads one in memory with
//! `strata-chroma` (every tarball member checked first, nothing extracted to disk, the
//! source never written) and turns its live records into upserts stamped with the run
//! INSERT's SequenceNumber, like a strata run delta: a delta without the target collection
//! is an error (the run is retried), an empty one a successful merge of nothing.

use strata_chroma::{ChromaDir, Limits};
use strata_formats::{Operation, Seq};
use strata_stream::Collection;

use super::run_layout::{RunPayload, MAX_RUN_FILES};
use super::runs::MAX_RUN_DELTA_BYTES;

/// The bounds a seed run delta is read within: each file and all of them (decompressed)
/// at most [`MAX_RUN_DELTA_BYTES`], at most [`MAX_RUN_FILES`] entries.
pub fn limits() -> Limits {
    Limits {
        max_member_bytes: MAX_RUN_DELTA_BYTES,
        max_total_bytes: MAX_RUN_DELTA_BYTES,
        max_members: MAX_RUN_FILES,
    }
}

/// The operations of a seed-format delta of `collection`, each an upsert at `seq` in
/// Chroma's `get()` order, and the delta's name (for messages). The error names the delta
/// and says what was wrong (an unsafe or oversized tarball, not a Chroma database, no
/// collection of that name, an inconsistent segment, …).
pub fn operations(
    payload: RunPayload,
    collection: Collection,
    seq: Seq,
) -> Result<(String, Vec<Operation>), String> {
    let (name, dir) = match payload {
        RunPayload::Strata(files) => {
            let name = files.first().map_or_else(String::new, |(n, _)| n.clone());
            return Err(format!("{name}: strata deltas are not a seed-format delta"));
        }
        RunPayload::ChromaTarball((name, bytes)) => {
            let dir = ChromaDir::from_tar_gz(&bytes, &limits());
            (name, dir)
        }
        RunPayload::ChromaFiles { location, files } => {
            let dir = ChromaDir::from_files(files, &limits());
            (location, dir)
        }
    };
    let fail = |e: strata_chroma::ChromaError| format!("{name}: {e}");
    let dir = dir.map_err(fail)?;
    let coll = dir.collection(collection.as_str()).map_err(fail)?;
    let mut ops = Vec::with_capacity(coll.len());
    for record in coll.records() {
        ops.push(record.map_err(fail)?.into_upsert(seq));
    }
    Ok((name, ops))
}
