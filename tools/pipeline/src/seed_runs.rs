//! Run deltas in the seed's format (seed §4.1–§4.3): a Chroma persist directory holding one
//! collection named like the target (`lines` or `words`), as the tarball `delta.tar.gz` or
//! as separate files under the run prefix. [`operations`] turns one into upserts stamped
//! with the run INSERT's SequenceNumber, like a strata run delta: a delta without the
//! target collection is an error (the run is retried), an empty one a successful merge of
//! nothing.

use strata_formats::{Operation, Seq};
use strata_stream::Collection;

use super::run_layout::RunPayload;

/// The operations of a seed-format delta of `collection`, each an upsert at `seq`, and the
/// name of the delta (for messages).
pub fn operations(
    payload: RunPayload,
    collection: Collection,
    seq: Seq,
) -> Result<(String, Vec<Operation>), String> {
    let _ = (collection, seq);
    let name = match payload {
        RunPayload::Strata(_) => return Err("not a seed-format delta".into()),
        RunPayload::ChromaTarball((name, _)) => name,
        RunPayload::ChromaFiles { location, .. } => location,
    };
    Err(format!(
        "{name}: a seed-format (Chroma) run delta, which this compactor cannot read yet"
    ))
}
