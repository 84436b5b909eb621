//! A batch of translated stream records as per-collection operation lists: the record
//! operations of `lines`, `words`, `labels`, `sections` and `places` in record order, and the
//! follow-up rows of [`FOLLOW_UPS`] last, so that a request is never durable before the
//! operations it follows up.

use strata_formats::Operation;
use strata_stream::ops::{BatchTranslation, RecordOps};
use strata_stream::{Collection, Translation};

use super::followups::{self, FOLLOW_UPS};

/// Operations grouped by collection, in the order they must be written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchOps {
    /// `(collection, operations)`, receipt collections first, follow-ups last; only
    /// collections with operations appear.
    pub writes: Vec<(&'static str, Vec<Operation>)>,
}

impl BatchOps {
    /// Group the operations and follow-ups of these records.
    pub fn collect<'a>(records: impl IntoIterator<Item = &'a RecordOps>) -> BatchOps {
        let mut per: Vec<(&'static str, Vec<Operation>)> = Collection::ALL
            .iter()
            .map(|c| (c.as_str(), Vec::new()))
            .chain([(FOLLOW_UPS, Vec::new())])
            .collect();
        let follow_up_slot = per.len() - 1;
        for r in records {
            for op in &r.ops {
                if let Some(slot) = per.iter_mut().find(|(n, _)| *n == op.collection.as_str()) {
                    slot.1.push(op.op.clone());
                }
            }
            for (i, f) in r.follow_ups.iter().enumerate() {
                per[follow_up_slot].1.push(followups::encode(f, r.seq, i));
            }
        }
        per.retain(|(_, ops)| !ops.is_empty());
        BatchOps { writes: per }
    }

    /// Total operations.
    pub fn len(&self) -> usize {
        self.writes.iter().map(|(_, o)| o.len()).sum()
    }

    /// No operations at all.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// The records of a translated batch that carry operations, in event order, and how many
/// were ignored (nothing to do).
pub fn split(translated: &BatchTranslation) -> (Vec<&RecordOps>, usize) {
    let mut applied = Vec::new();
    let mut ignored = 0;
    for (_, _, t) in &translated.records {
        match t {
            Translation::Apply(r) => applied.push(r),
            Translation::Ignore(_) => ignored += 1,
        }
    }
    (applied, ignored)
}
