//! The order-independence rules: how one id's state follows from upserts, patches and
//! deletes (by id or by filter) that may arrive in any seq order.
//!
//! The visible state of an id is the [`State`] reached by applying its operations sorted by
//! seq. An [`Entry`] holds that state and, while operations newer than its last upsert or
//! delete are within the retention horizon, a [`History`]: the base (state after the last
//! upsert or delete, with everything up to `through` folded in) and the id's later patches.
//! Every arriving operation is placed by seq:
//! * an upsert or delete newer than `through` becomes the new base (older patches drop);
//! * a patch newer than `through` joins the history;
//! * an operation at or below `through` meets the folded part: an upsert, delete or patch
//!   older than the base's own seq is ignored (a newer upsert or delete replaced the
//!   record); one between the base's seq and `through` — beyond the horizon — is resolved by
//!   the per-key rules on the base (a newer patch of a key wins);
//!
//! then the state is rebuilt by replaying the base, the patches and the collection's
//! retained filter operations newer than `through`, merged in seq order, each filter
//! evaluated on the state at its own seq. A new filter operation is retained and every id it
//! may touch is replayed (those it matches now, and every id with a history, whose state at
//! the filter's seq may differ from its state now).
//!
//! An entry without a history is its own base, folded through the largest seq it reflects
//! (its upsert, delete or patched keys): no operation after that changed it, so the state at
//! any later seq is the state now. Compaction folds a history's settled prefix — the
//! operations older than the first one that arrived within the horizon — into its base, and
//! drops the history once all of it is settled ([`Entry::fold_settled`]); an operation
//! arriving more than the horizon after a newer one is out of the guarantee and resolved by
//! the per-key rules.
//!
//! With these rules the state equals applying the operations sorted by seq, whatever their
//! arrival order (tested against that model in `tests/order_model.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::segment::IndexKey;

use strata_formats::{
    BaseRecord, BaseState, CmpOp, Filter, Metadata, Op, PatchEvent, Predicate, Record, RetainedOp,
    RowMeta, Seq, ShadowEntry, Target,
};

/// A record's contents.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Row {
    /// The embedding.
    pub(crate) embedding: Option<Arc<[f32]>>,
    /// The document.
    pub(crate) document: Option<String>,
    /// The metadata (for states that are not live: the values of patched keys).
    pub(crate) metadata: Metadata,
}

/// Whether an id currently has a visible record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    /// Visible.
    Live,
    /// Deleted at `seq` (a tombstone).
    Deleted,
    /// Never upserted; only patches have arrived.
    Absent,
}

/// What one id is after some operations.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct State {
    /// Seq of the last upsert or delete (zero when neither arrived).
    pub(crate) seq: Seq,
    /// Live, deleted or absent.
    pub(crate) presence: Presence,
    /// The record (see [`Row::metadata`] for states that are not live).
    pub(crate) row: Row,
    /// Keys patched after `seq`, with the seq of their last patch.
    pub(crate) patched: BTreeMap<String, Seq>,
}

/// How an entry's state was reached (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct History {
    /// Operations with a seq up to this one are folded into `base`.
    pub(crate) through: Seq,
    /// The state after the last upsert or delete, with operations up to `through`.
    pub(crate) base: State,
    /// The id's patches newer than `through`, ascending seq.
    pub(crate) patches: Vec<PatchEvent>,
}

/// The state of one id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// Seq of the last upsert or delete (zero when neither arrived).
    pub(crate) seq: Seq,
    /// Live, deleted or absent.
    pub(crate) presence: Presence,
    /// The record (see [`Row::metadata`] for entries that are not live).
    pub(crate) row: Row,
    /// Keys patched after `seq`, with the seq of their last patch.
    pub(crate) patched: BTreeMap<String, Seq>,
    /// When the entry last changed (ms since the Unix epoch).
    pub(crate) time_ms: u64,
    /// How the state was reached, while that is within the horizon.
    pub(crate) history: Option<Box<History>>,
}

impl State {
    fn absent() -> State {
        State {
            seq: Seq::ZERO,
            presence: Presence::Absent,
            row: Row::default(),
            patched: BTreeMap::new(),
        }
    }

    fn is_live(&self) -> bool {
        self.presence == Presence::Live
    }

    /// The largest seq this state reflects.
    fn reflects(&self) -> Seq {
        self.patched.values().copied().fold(self.seq, Seq::max)
    }

    fn replaced_after(&self, seq: Seq) -> bool {
        self.presence != Presence::Absent && seq <= self.seq
    }

    /// Keys patched after `seq` with their values (None = removed).
    fn later_patches(&self, seq: Seq) -> Vec<(String, Seq, Option<strata_formats::MetaValue>)> {
        self.patched
            .iter()
            .filter(|(_, s)| **s > seq)
            .map(|(k, s)| (k.clone(), *s, self.row.metadata.get(k).cloned()))
            .collect()
    }

    /// The per-key upsert rule: replaces the record, keeps keys patched after `seq`.
    fn upsert(&mut self, seq: Seq, record: &Record) -> bool {
        if self.replaced_after(seq) {
            return false;
        }
        let mut metadata = record.metadata.clone();
        let mut patched = BTreeMap::new();
        for (key, s, value) in self.later_patches(seq) {
            match value {
                Some(v) => metadata.insert(key.clone(), v),
                None => metadata.remove(&key),
            };
            patched.insert(key, s);
        }
        self.row = Row {
            embedding: record.embedding.as_deref().map(Arc::from),
            document: record.document.clone(),
            metadata,
        };
        self.patched = patched;
        self.seq = seq;
        self.presence = Presence::Live;
        true
    }

    /// The per-key delete rule: a tombstone that keeps keys patched after `seq`.
    fn delete(&mut self, seq: Seq) -> bool {
        if self.replaced_after(seq) {
            return false;
        }
        let later = self.later_patches(seq);
        self.row = Row::default();
        self.patched.clear();
        for (key, s, value) in later {
            if let Some(v) = value {
                self.row.metadata.insert(key.clone(), v);
            }
            self.patched.insert(key, s);
        }
        self.seq = seq;
        self.presence = Presence::Deleted;
        true
    }

    /// The per-key patch rule: each key is written unless a newer patch wrote it.
    fn patch(&mut self, seq: Seq, set: &Metadata, unset: &[String]) -> bool {
        if self.replaced_after(seq) {
            return false;
        }
        let mut changed = false;
        let newer = |patched: &mut BTreeMap<String, Seq>, key: &str| {
            if patched.get(key).is_some_and(|s| *s >= seq) {
                return false;
            }
            patched.insert(key.to_string(), seq);
            true
        };
        for (key, value) in set {
            if newer(&mut self.patched, key) {
                self.row.metadata.insert(key.clone(), value.clone());
                changed = true;
            }
        }
        for key in unset {
            if newer(&mut self.patched, key) {
                self.row.metadata.remove(key);
                changed = true;
            }
        }
        changed
    }

    /// Apply one retained filter operation at its seq; returns whether it matched.
    fn apply_filter_op(&mut self, retained: &RetainedOp) -> bool {
        let (filter, op) = match &retained.op.op {
            Op::Patch(p) => match &p.target {
                Target::Where(f) => (f, &retained.op.op),
                _ => return false,
            },
            Op::Delete(Target::Where(f)) => (f, &retained.op.op),
            _ => return false,
        };
        if !self.is_live() || !filter.matches(&self.row.metadata) {
            return false;
        }
        match op {
            Op::Patch(p) => {
                self.patch(retained.op.seq, &p.set, &p.unset);
            }
            _ => {
                self.delete(retained.op.seq);
            }
        }
        true
    }
}

impl Entry {
    /// An id nothing is known about.
    pub(crate) fn absent() -> Entry {
        Entry::from_state(State::absent(), 0, None)
    }

    fn from_state(s: State, time_ms: u64, history: Option<Box<History>>) -> Entry {
        Entry {
            seq: s.seq,
            presence: s.presence,
            row: s.row,
            patched: s.patched,
            time_ms,
            history,
        }
    }

    fn state(&self) -> State {
        State {
            seq: self.seq,
            presence: self.presence,
            row: self.row.clone(),
            patched: self.patched.clone(),
        }
    }

    /// A live entry from a segment row (with the segment's history of the id, if any).
    ///
    /// Fails (with what is wrong) when the history's live base has no stored record.
    pub(crate) fn from_row(
        seq: Seq,
        row: Row,
        key_seqs: Vec<(String, Seq)>,
        history: Option<&strata_formats::History>,
    ) -> Result<Entry, String> {
        let state = State {
            seq,
            presence: Presence::Live,
            patched: key_seqs.into_iter().collect(),
            row,
        };
        let time_ms = history.map_or(0, |h| h.time_ms);
        let history = match history {
            Some(h) => Some(Box::new(History::from_stored(h, Some(&state.row))?)),
            None => None,
        };
        Ok(Entry::from_state(state, time_ms, history))
    }

    /// An entry from a segment's shadow entry (with the segment's history of the id, if any).
    ///
    /// Fails (with what is wrong) when the history's live base has no stored record.
    pub(crate) fn from_shadow(
        s: ShadowEntry,
        history: Option<&strata_formats::History>,
    ) -> Result<Entry, String> {
        let mut row = Row::default();
        let mut patched = BTreeMap::new();
        for (key, seq, value) in s.overlay {
            if let Some(v) = value {
                row.metadata.insert(key.clone(), v);
            }
            patched.insert(key, seq);
        }
        let state = State {
            seq: s.seq,
            presence: if s.deleted {
                Presence::Deleted
            } else {
                Presence::Absent
            },
            row,
            patched,
        };
        let history = match history {
            Some(h) => Some(Box::new(History::from_stored(h, None)?)),
            None => None,
        };
        Ok(Entry::from_state(state, s.time_ms, history))
    }

    /// Whether the id has a visible record.
    pub(crate) fn is_live(&self) -> bool {
        self.presence == Presence::Live
    }

    /// The shadow entry of an entry that is not live.
    pub(crate) fn to_shadow(&self, id: &str) -> ShadowEntry {
        ShadowEntry {
            id: id.to_string(),
            seq: self.seq,
            deleted: self.presence == Presence::Deleted,
            overlay: self
                .patched
                .iter()
                .map(|(k, s)| (k.clone(), *s, self.row.metadata.get(k).cloned()))
                .collect(),
            time_ms: self.time_ms,
        }
    }

    /// The metadata and patched-key seqs of a live entry, as a segment stores them.
    pub(crate) fn row_meta(&self) -> RowMeta {
        RowMeta {
            metadata: self.row.metadata.clone(),
            key_seqs: self.patched.iter().map(|(k, s)| (k.clone(), *s)).collect(),
        }
    }

    /// The stored form of the entry's history, if it has one.
    pub(crate) fn to_history(&self, id: &str) -> Option<strata_formats::History> {
        let h = self.history.as_deref()?;
        let base = &h.base;
        let base_record =
            (base.presence == Presence::Live && !self.is_live()).then(|| BaseRecord {
                embedding: base
                    .row
                    .embedding
                    .as_deref()
                    .map(<[f32]>::to_vec)
                    .unwrap_or_default(),
                document: base.row.document.clone(),
            });
        Some(strata_formats::History {
            id: id.to_string(),
            through: h.through,
            base_seq: base.seq,
            base_state: match base.presence {
                Presence::Live => BaseState::Live,
                Presence::Deleted => BaseState::Deleted,
                Presence::Absent => BaseState::Absent,
            },
            base_metadata: base.row.metadata.clone(),
            base_key_seqs: base.patched.iter().map(|(k, s)| (k.clone(), *s)).collect(),
            base_record,
            patches: h.patches.clone(),
            time_ms: self.time_ms,
        })
    }

    /// Fold the settled part of the history into its base: every operation older than the
    /// first one (patch or retained filter operation) that arrived within the horizon. The
    /// history is dropped when nothing in it is that recent. Returns whether it changed.
    ///
    /// Folding is exact for every operation that arrives within the horizon of each newer
    /// one: such an operation is newer than everything folded.
    pub(crate) fn fold_settled(&mut self, ledger: &[RetainedOp], horizon_start: u64) -> bool {
        let Some(h) = self.history.as_deref() else {
            return false;
        };
        let ops = &ledger[ledger.partition_point(|r| r.op.seq <= h.through)..];
        let first_recent = h
            .patches
            .iter()
            .filter(|p| p.time_ms >= horizon_start)
            .map(|p| p.seq)
            .chain(
                ops.iter()
                    .filter(|r| r.time_ms >= horizon_start)
                    .map(|r| r.op.seq),
            )
            .min();
        let Some(cut) = first_recent else {
            self.history = None;
            return true;
        };
        let folded_patches = h.patches.partition_point(|p| p.seq < cut);
        let folded_ops = ops.partition_point(|r| r.op.seq < cut);
        if folded_patches == 0 && folded_ops == 0 {
            return false;
        }
        let mut base = h.base.clone();
        let mut through = h.through;
        let (patches, rest) = h.patches.split_at(folded_patches);
        replay_into(&mut base, patches, &ops[..folded_ops], &mut through);
        self.history = Some(Box::new(History {
            through,
            base,
            patches: rest.to_vec(),
        }));
        true
    }

    /// The stored history an id carries into a rewritten segment: `h` (of a live row, or of
    /// the shadow entry `shadow`) with its settled part folded ([`Entry::fold_settled`]);
    /// None once all of it is settled. Reads no vector: folding needs only the history.
    pub(crate) fn fold_stored(
        id: &str,
        h: &strata_formats::History,
        shadow: Option<&ShadowEntry>,
        ledger: &[RetainedOp],
        horizon_start: u64,
    ) -> Result<Option<strata_formats::History>, String> {
        let mut e = match shadow {
            Some(s) => Entry::from_shadow(s.clone(), Some(h))?,
            // A live row's vector is the base's, and a live entry does not store it in its
            // history: an empty row stands in for it.
            None => Entry::from_row(Seq::ZERO, Row::default(), Vec::new(), Some(h))?,
        };
        e.fold_settled(ledger, horizon_start);
        Ok(e.to_history(id))
    }

    /// Whether a filter operation may apply to this entry (see [`FilterProbe`]); an entry
    /// without a history is its own state: the operation applies if it matches it now.
    pub(crate) fn may_match_at(&self, probe: &FilterProbe<'_>) -> bool {
        match &self.history {
            Some(h) => probe.matches(h.through, &h.base.row.metadata, &h.patches, || {
                h.base.clone()
            }),
            None => self.is_live() && probe.filter.matches(&self.row.metadata),
        }
    }

    /// The seq up to which operations are folded into the entry's base.
    pub(crate) fn through(&self) -> Seq {
        match &self.history {
            Some(h) => h.through,
            None => self.patched.values().copied().fold(self.seq, Seq::max),
        }
    }

    fn parts(&self) -> (State, Seq, Vec<PatchEvent>) {
        match &self.history {
            Some(h) => (h.base.clone(), h.through, h.patches.clone()),
            None => {
                let s = self.state();
                let through = s.reflects();
                (s, through, Vec::new())
            }
        }
    }

    /// Apply an operation to this id (an upsert, or a patch or delete that targets it by
    /// id), with the collection's retained filter operations; returns whether it changed.
    pub(crate) fn apply(&mut self, seq: Seq, op: &Op, ledger: &[RetainedOp], now_ms: u64) -> bool {
        let through = self.through();
        if seq <= through {
            // At or below the folded part: the per-key rules on the base.
            let (mut base, through, patches) = self.parts();
            let changed = match op {
                Op::Upsert(r) => base.upsert(seq, r),
                Op::Patch(p) => base.patch(seq, &p.set, &p.unset),
                Op::Delete(_) => base.delete(seq),
            };
            return changed && self.rebuild(base, through, patches, ledger, now_ms);
        }
        let p = match op {
            Op::Patch(p) => p,
            replacing => {
                // A new base: the old one is not needed, only the patches newer than it.
                let mut base = State::absent();
                match replacing {
                    Op::Upsert(r) => base.upsert(seq, r),
                    _ => base.delete(seq),
                };
                let patches = self.history.as_ref().map_or_else(Vec::new, |h| {
                    h.patches.iter().filter(|p| p.seq > seq).cloned().collect()
                });
                return self.rebuild(base, seq, patches, ledger, now_ms);
            }
        };
        let (base, through, mut patches) = self.parts();
        let at = patches.partition_point(|e| e.seq < seq);
        if patches[at..]
            .iter()
            .take_while(|e| e.seq == seq)
            .any(|e| e.set == p.set && e.unset == p.unset)
        {
            return false;
        }
        let after = patches.partition_point(|e| e.seq <= seq);
        patches.insert(
            after,
            PatchEvent {
                seq,
                set: p.set.clone(),
                unset: p.unset.clone(),
                time_ms: now_ms,
            },
        );
        self.rebuild(base, through, patches, ledger, now_ms)
    }

    /// Replay the entry against the retained filter operations (one was added); returns
    /// whether it changed.
    pub(crate) fn replay(&mut self, ledger: &[RetainedOp], now_ms: u64) -> bool {
        let (base, through, patches) = self.parts();
        self.rebuild(base, through, patches, ledger, now_ms)
    }

    fn rebuild(
        &mut self,
        base: State,
        through: Seq,
        patches: Vec<PatchEvent>,
        ledger: &[RetainedOp],
        now_ms: u64,
    ) -> bool {
        let mut state = base.clone();
        let ops = &ledger[ledger.partition_point(|r| r.op.seq <= through)..];
        let mut last = through;
        let applied = replay_into(&mut state, &patches, ops, &mut last);
        let history = (!patches.is_empty() || applied || state.reflects() != through).then(|| {
            Box::new(History {
                through,
                base,
                patches,
            })
        });
        if state.seq == self.seq
            && state.presence == self.presence
            && state.patched == self.patched
            && state.row == self.row
            && history == self.history
        {
            return false;
        }
        let time_ms = now_ms.max(self.time_ms);
        *self = Entry::from_state(state, time_ms, history);
        true
    }
}

fn presence_of(b: BaseState) -> Presence {
    match b {
        BaseState::Live => Presence::Live,
        BaseState::Deleted => Presence::Deleted,
        BaseState::Absent => Presence::Absent,
    }
}

/// A filter operation being placed: what [`stored_history_matches`] and
/// [`Entry::may_match_at`] test a history against.
pub(crate) struct FilterProbe<'a> {
    /// The operation's seq.
    pub(crate) seq: Seq,
    /// Its filter.
    pub(crate) filter: &'a Filter,
    /// The retained filter operations before it (the ledger up to its own position).
    pub(crate) before: &'a [RetainedOp],
    /// Each required equality (`key == value` through `$and`s), with the largest seq of a
    /// retained filter patch in `before` that sets the key to a value satisfying it.
    required: Vec<(&'a str, Predicate, Option<Seq>)>,
}

impl<'a> FilterProbe<'a> {
    /// A probe for the filter operation at `seq`.
    pub(crate) fn new(seq: Seq, filter: &'a Filter, before: &'a [RetainedOp]) -> FilterProbe<'a> {
        let required = filter
            .required_equalities()
            .into_iter()
            .map(|(key, v)| {
                let pred = Predicate::Cmp(CmpOp::Eq, v.clone());
                let last_set = before
                    .iter()
                    .rev()
                    .find(|r| match &r.op.op {
                        Op::Patch(p) => p.set.get(key).is_some_and(|v| pred.matches(Some(v))),
                        _ => false,
                    })
                    .map(|r| r.op.seq);
                (key, pred, last_set)
            })
            .collect();
        FilterProbe {
            seq,
            filter,
            before,
            required,
        }
    }

    /// A required equality no retained filter patch before the operation can satisfy, as an
    /// index key: every history the operation may apply to holds that value in its base or
    /// one of its patches (so an index over those finds all candidates).
    pub(crate) fn index_key(&self) -> Option<(&'a str, IndexKey)> {
        self.required
            .iter()
            .find_map(|(key, pred, last_set)| match pred {
                Predicate::Cmp(CmpOp::Eq, v) if last_set.is_none() => {
                    IndexKey::of_scalar(v).map(|k| (*key, k))
                }
                _ => None,
            })
    }

    /// Whether the state just before the probe's operation — `base` (folded through
    /// `through`) with `patches` up to its seq and the retained filter operations before it —
    /// is live and matches. A history none of whose values for a required equality key (in
    /// the base, the patches or the replayed filter patches) satisfies it is rejected before
    /// the base is even built.
    fn matches(
        &self,
        through: Seq,
        base_metadata: &Metadata,
        patches: &[PatchEvent],
        base: impl FnOnce() -> State,
    ) -> bool {
        if self.seq <= through {
            return false;
        }
        let ops = &self.before[self.before.partition_point(|r| r.op.seq <= through)..];
        let patches = &patches[..patches.partition_point(|p| p.seq <= self.seq)];
        let possible = |key: &str, pred: &Predicate, last_set: &Option<Seq>| {
            let hit = |m: &Metadata| m.get(key).is_some_and(|v| pred.matches(Some(v)));
            hit(base_metadata)
                || last_set.is_some_and(|s| s > through)
                || patches.iter().any(|p| hit(&p.set))
        };
        if !self.required.iter().all(|(k, p, s)| possible(k, p, s)) {
            return false;
        }
        let mut state = base();
        let mut last = through;
        replay_into(&mut state, patches, ops, &mut last);
        state.is_live() && self.filter.matches(&state.row.metadata)
    }
}

/// Whether a filter operation may apply to the id a stored history describes (see
/// [`FilterProbe::matches`]); replayed on metadata alone, no vector is read.
pub(crate) fn stored_history_matches(h: &strata_formats::History, probe: &FilterProbe<'_>) -> bool {
    probe.matches(h.through, &h.base_metadata, &h.patches, || State {
        seq: h.base_seq,
        presence: presence_of(h.base_state),
        row: Row {
            metadata: h.base_metadata.clone(),
            ..Row::default()
        },
        patched: h.base_key_seqs.iter().cloned().collect(),
    })
}

/// Apply patches and retained filter operations (both ascending seq) to a state, merged in
/// seq order (a patch before a filter operation of the same seq); `last` becomes the largest
/// seq applied. Returns whether any filter operation matched.
fn replay_into(
    state: &mut State,
    patches: &[PatchEvent],
    ops: &[RetainedOp],
    last: &mut Seq,
) -> bool {
    let mut applied = false;
    let mut ops = ops.iter().peekable();
    let mut events = patches.iter().peekable();
    loop {
        let patch_first = match (events.peek(), ops.peek()) {
            (Some(p), Some(r)) => p.seq <= r.op.seq,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if patch_first {
            let p = events.next().expect("peeked");
            state.patch(p.seq, &p.set, &p.unset);
            *last = (*last).max(p.seq);
        } else {
            let r = ops.next().expect("peeked");
            applied |= state.apply_filter_op(r);
            *last = (*last).max(r.op.seq);
        }
    }
    applied
}

impl History {
    /// A history from its stored form; `row` is the segment's live row of the id, which
    /// holds the base's vector and document when the base is live and the row is visible.
    fn from_stored(h: &strata_formats::History, row: Option<&Row>) -> Result<History, String> {
        let mut base_row = Row {
            metadata: h.base_metadata.clone(),
            ..Row::default()
        };
        if h.base_state == BaseState::Live {
            match (&h.base_record, row) {
                (Some(r), _) => {
                    base_row.embedding = (!r.embedding.is_empty()).then(|| Arc::from(r.embedding.as_slice()));
                    base_row.document = r.document.clone();
                }
                (None, Some(row)) => {
                    base_row.embedding = row.embedding.clone();
                    base_row.document = row.document.clone();
                }
                (None, None) => {
                    return Err(format!(
                        "the history of {:?} has a live base but neither a row nor a stored base record",
                        h.id
                    ))
                }
            }
        }
        Ok(History {
            through: h.through,
            base: State {
                seq: h.base_seq,
                presence: presence_of(h.base_state),
                row: base_row,
                patched: h.base_key_seqs.iter().cloned().collect(),
            },
            patches: h.patches.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_formats::{Filter, MetaValue, Operation};

    fn rec(v: i64, group: &str) -> Op {
        Op::Upsert(Record {
            id: "x".into(),
            embedding: Some(vec![v as f32, 1.0]),
            document: Some(format!("doc {v}")),
            metadata: [
                ("v".to_string(), MetaValue::Int(v)),
                ("group".to_string(), MetaValue::Str(group.into())),
            ]
            .into_iter()
            .collect(),
        })
    }

    fn set(k: &str, v: &str) -> Op {
        Op::Patch(strata_formats::Patch {
            target: Target::Id("x".into()),
            set: [(k.to_string(), MetaValue::Str(v.into()))]
                .into_iter()
                .collect(),
            unset: vec![],
        })
    }

    fn unset(k: &str) -> Op {
        Op::Patch(strata_formats::Patch {
            target: Target::Id("x".into()),
            set: Metadata::new(),
            unset: vec![k.to_string()],
        })
    }

    fn delete() -> Op {
        Op::Delete(Target::Id("x".into()))
    }

    fn where_group(g: &str) -> Target {
        Target::Where(Filter::parse(&format!(r#"{{"group": "{g}"}}"#)).unwrap())
    }

    fn retained(seq: u64, op: Op) -> RetainedOp {
        RetainedOp {
            op: Operation {
                seq: Seq::from(seq),
                op,
            },
            time_ms: 0,
        }
    }

    fn apply(e: &mut Entry, seq: u64, op: Op) -> bool {
        e.apply(Seq::from(seq), &op, &[], 0)
    }

    fn get<'a>(e: &'a Entry, k: &str) -> Option<&'a MetaValue> {
        e.row.metadata.get(k)
    }

    #[test]
    fn late_older_upsert_is_ignored() {
        let mut e = Entry::absent();
        assert!(apply(&mut e, 5, rec(5, "a")));
        assert!(!apply(&mut e, 3, rec(3, "a")));
        assert_eq!(get(&e, "v"), Some(&MetaValue::Int(5)));
    }

    #[test]
    fn late_upsert_keeps_newer_patches() {
        let mut e = Entry::absent();
        apply(&mut e, 1, rec(1, "a"));
        apply(&mut e, 10, set("label", "L"));
        apply(&mut e, 11, unset("v"));
        // An upsert at 5 arrives late: it replaces the base, patches 10 and 11 survive.
        assert!(apply(&mut e, 5, rec(5, "a")));
        assert_eq!(get(&e, "label"), Some(&MetaValue::Str("L".into())));
        assert_eq!(get(&e, "v"), None);
        assert_eq!(e.row.document.as_deref(), Some("doc 5"));
    }

    #[test]
    fn patch_before_upsert_is_kept_and_applied() {
        let mut e = Entry::absent();
        assert!(apply(&mut e, 9, set("label", "L")));
        assert!(!e.is_live());
        apply(&mut e, 4, rec(4, "a"));
        assert!(e.is_live());
        assert_eq!(get(&e, "label"), Some(&MetaValue::Str("L".into())));
        // An upsert after the patch discards it.
        apply(&mut e, 12, rec(12, "a"));
        assert_eq!(get(&e, "label"), None);
        assert!(e.history.is_none(), "nothing after the base: no history");
    }

    #[test]
    fn deletes_are_tombstones_with_seq() {
        let mut e = Entry::absent();
        apply(&mut e, 8, delete());
        assert!(
            !apply(&mut e, 7, rec(7, "a")),
            "an older upsert must not resurrect"
        );
        assert!(apply(&mut e, 9, rec(9, "a")), "a newer upsert re-creates");
        assert!(e.is_live());
    }

    #[test]
    fn older_patch_of_a_key_loses_to_newer() {
        let mut e = Entry::absent();
        apply(&mut e, 1, rec(1, "a"));
        apply(&mut e, 6, set("k", "six"));
        apply(&mut e, 4, set("k", "four"));
        assert_eq!(get(&e, "k"), Some(&MetaValue::Str("six".into())));
        assert!(!apply(&mut e, 0, set("z", "zero")), "older than the upsert");
        assert_eq!(get(&e, "z"), None);
    }

    #[test]
    fn a_filter_delete_is_evaluated_at_its_own_seq() {
        // U1 (group g1), F3 = delete where g1, then U2 (group g0) arrives late: in seq order
        // F3 meets U2, which it does not match.
        let ledger = vec![retained(3, Op::Delete(where_group("g1")))];
        let mut e = Entry::absent();
        e.apply(Seq::from(1), &rec(1, "g1"), &ledger, 0);
        assert!(!e.is_live(), "F3 deletes U1");
        assert!(e.apply(Seq::from(2), &rec(2, "g0"), &ledger, 0));
        assert!(e.is_live());
        assert_eq!(get(&e, "v"), Some(&MetaValue::Int(2)));
    }

    #[test]
    fn a_late_patch_before_a_filter_delete_brings_the_record_back() {
        // U1 (g1), F5 = delete where g1 deletes it; P3 (group := g0) arrives late: F5 no
        // longer matches, and the record — vector and document included — is visible again.
        let ledger = vec![retained(5, Op::Delete(where_group("g1")))];
        let mut e = Entry::absent();
        e.apply(Seq::from(1), &rec(1, "g1"), &ledger, 0);
        assert!(!e.is_live());
        let stored = e
            .to_history("x")
            .expect("a filter delete keeps the history");
        assert!(
            stored.base_record.is_some(),
            "the hidden base keeps its vector"
        );
        let mut back = Entry::from_shadow(e.to_shadow("x"), Some(&stored)).unwrap();
        assert_eq!(back, e);
        assert!(back.apply(Seq::from(3), &set("group", "g0"), &ledger, 0));
        assert!(back.is_live());
        assert_eq!(back.row.embedding.as_deref(), Some(&[1.0f32, 1.0][..]));
        assert_eq!(back.row.document.as_deref(), Some("doc 1"));
        assert_eq!(get(&back, "group"), Some(&MetaValue::Str("g0".into())));
    }

    #[test]
    fn a_filter_patch_sees_the_value_of_its_seq() {
        // P2 sets group g1, P6 sets it back to g0; F4 (label where g1) arrives last: at seq 4
        // the group is g1, so the label applies although the group is g0 now.
        let f = retained(
            4,
            Op::Patch(strata_formats::Patch {
                target: where_group("g1"),
                set: [("label".to_string(), MetaValue::Str("L".into()))]
                    .into_iter()
                    .collect(),
                unset: vec![],
            }),
        );
        let mut e = Entry::absent();
        apply(&mut e, 1, rec(1, "g0"));
        apply(&mut e, 6, set("group", "g0"));
        apply(&mut e, 2, set("group", "g1"));
        assert!(e.replay(&[f], 0));
        assert_eq!(get(&e, "label"), Some(&MetaValue::Str("L".into())));
        assert_eq!(get(&e, "group"), Some(&MetaValue::Str("g0".into())));
    }

    #[test]
    fn a_settled_history_folds_and_the_state_stays() {
        let mut e = Entry::absent();
        apply(&mut e, 1, rec(1, "a"));
        apply(&mut e, 2, set("k", "two"));
        assert!(e.history.is_some());
        let before = e.clone();
        assert!(
            !e.fold_settled(&[], 0),
            "the patch arrived at time 0: within a horizon starting at 0"
        );
        assert_eq!(e, before);
        assert!(e.fold_settled(&[], 1));
        assert!(e.history.is_none());
        assert_eq!(e.row, before.row);
        assert_eq!(e.through(), Seq::from(2));
    }

    #[test]
    fn a_partial_fold_keeps_the_recent_part_exact() {
        // U1, P2, F3 (label where g1) arrived at time 0, P5 at time 10; a fold with the
        // horizon starting at 5 folds P2 and F3 and keeps P5. Then P4 (group := g0) arrives:
        // in seq order U1 P2 F3 P4 P5 — F3 still saw g1.
        let f3 = RetainedOp {
            op: Operation {
                seq: Seq::from(3),
                op: Op::Patch(strata_formats::Patch {
                    target: where_group("g1"),
                    set: [("label".to_string(), MetaValue::Str("L".into()))]
                        .into_iter()
                        .collect(),
                    unset: vec![],
                }),
            },
            time_ms: 0,
        };
        let ledger = vec![f3];
        let mut e = Entry::absent();
        e.apply(Seq::from(1), &rec(1, "g1"), &ledger, 0);
        e.apply(Seq::from(2), &set("k", "two"), &ledger, 0);
        e.apply(Seq::from(5), &set("k", "five"), &ledger, 10);
        assert!(e.fold_settled(&ledger, 5));
        let h = e.history.as_deref().unwrap();
        assert_eq!(h.through, Seq::from(3));
        assert_eq!(h.patches.len(), 1);
        assert_eq!(
            h.base.row.metadata.get("label"),
            Some(&MetaValue::Str("L".into()))
        );
        e.apply(Seq::from(4), &set("group", "g0"), &ledger, 11);
        assert_eq!(get(&e, "label"), Some(&MetaValue::Str("L".into())));
        assert_eq!(get(&e, "group"), Some(&MetaValue::Str("g0".into())));
        assert_eq!(get(&e, "k"), Some(&MetaValue::Str("five".into())));
        // Replaying against a ledger that no longer holds F3 changes nothing: it is folded.
        assert!(!e.replay(&[], 12));
    }

    #[test]
    fn shadow_round_trip() {
        let mut e = Entry::absent();
        e.apply(Seq::from(3), &delete(), &[], 42);
        e.apply(Seq::from(5), &set("k", "1"), &[], 43);
        e.apply(Seq::from(6), &unset("gone"), &[], 43);
        let back = Entry::from_shadow(e.to_shadow("x"), e.to_history("x").as_ref()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn a_live_base_without_a_record_is_refused() {
        let mut e = Entry::absent();
        e.apply(Seq::from(1), &rec(1, "g1"), &[], 0);
        e.apply(Seq::from(2), &set("k", "v"), &[], 0);
        let stored = e.to_history("x").unwrap();
        assert!(Entry::from_shadow(e.to_shadow("x"), Some(&stored)).is_err());
    }
}
