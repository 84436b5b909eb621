//! The order-independence rules: how one id's state changes under upserts, patches and
//! deletes that may arrive in any seq order.
//!
//! An [`Entry`] keeps the seq of the last upsert or delete (`seq`) and, for every key
//! patched after it, the seq of that key's last patch (`patched`). Then:
//! * an upsert or delete older than `seq` is ignored (a newer one replaced the record);
//! * an upsert newer than `seq` replaces the record but keeps the keys patched after it;
//! * a delete newer than `seq` makes a tombstone that keeps the keys patched after it;
//! * a patch writes each key unless a newer patch already wrote it, and is ignored if an
//!   upsert or delete newer than it exists. A patch of an id never upserted is kept (the
//!   entry is `Absent`) so that the late upsert still receives it.
//!
//! With these rules the state equals applying the operations sorted by seq, whatever their
//! arrival order (tested against that model in `tests/order_model.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use strata_formats::{Metadata, Record, RowMeta, Seq, ShadowEntry};

/// A record's contents.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    /// The embedding.
    pub embedding: Option<Arc<[f32]>>,
    /// The document.
    pub document: Option<String>,
    /// The metadata (for entries that are not live: the values of patched keys).
    pub metadata: Metadata,
}

/// Whether an id currently has a visible record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Visible.
    Live,
    /// Deleted at `seq` (a tombstone).
    Deleted,
    /// Never upserted; only patches have arrived.
    Absent,
}

/// The state of one id.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Seq of the last upsert or delete (zero when neither arrived).
    pub seq: Seq,
    /// Live, deleted or absent.
    pub presence: Presence,
    /// The record (see [`Row::metadata`] for entries that are not live).
    pub row: Row,
    /// Keys patched after `seq`, with the seq of their last patch.
    pub patched: BTreeMap<String, Seq>,
    /// When the entry last changed (ms since the Unix epoch).
    pub time_ms: u64,
}

impl Entry {
    /// An id nothing is known about.
    pub fn absent() -> Entry {
        Entry {
            seq: Seq::ZERO,
            presence: Presence::Absent,
            row: Row::default(),
            patched: BTreeMap::new(),
            time_ms: 0,
        }
    }

    /// A live entry from a segment row.
    pub fn from_row(seq: Seq, row: Row, key_seqs: Vec<(String, Seq)>) -> Entry {
        Entry {
            seq,
            presence: Presence::Live,
            row,
            patched: key_seqs.into_iter().collect(),
            time_ms: 0,
        }
    }

    /// An entry from a segment's shadow entry.
    pub fn from_shadow(s: ShadowEntry) -> Entry {
        let mut row = Row::default();
        let mut patched = BTreeMap::new();
        for (key, seq, value) in s.overlay {
            if let Some(v) = value {
                row.metadata.insert(key.clone(), v);
            }
            patched.insert(key, seq);
        }
        Entry {
            seq: s.seq,
            presence: if s.deleted {
                Presence::Deleted
            } else {
                Presence::Absent
            },
            row,
            patched,
            time_ms: s.time_ms,
        }
    }

    /// Whether the id has a visible record.
    pub fn is_live(&self) -> bool {
        self.presence == Presence::Live
    }

    /// The shadow entry of an entry that is not live.
    pub fn to_shadow(&self, id: &str) -> ShadowEntry {
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
    pub fn row_meta(&self) -> RowMeta {
        RowMeta {
            metadata: self.row.metadata.clone(),
            key_seqs: self.patched.iter().map(|(k, s)| (k.clone(), *s)).collect(),
        }
    }

    fn replaced_after(&self, seq: Seq) -> bool {
        self.presence != Presence::Absent && seq <= self.seq
    }

    /// Keep only the keys patched after `seq`; returns their values (None = removed).
    fn later_patches(&self, seq: Seq) -> Vec<(String, Seq, Option<strata_formats::MetaValue>)> {
        self.patched
            .iter()
            .filter(|(_, s)| **s > seq)
            .map(|(k, s)| (k.clone(), *s, self.row.metadata.get(k).cloned()))
            .collect()
    }

    /// Apply an upsert; returns whether the entry changed.
    pub fn upsert(&mut self, seq: Seq, record: &Record, now_ms: u64) -> bool {
        if self.replaced_after(seq) {
            return false;
        }
        let later = self.later_patches(seq);
        let mut metadata = record.metadata.clone();
        let mut patched = BTreeMap::new();
        for (key, s, value) in later {
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
        self.time_ms = now_ms;
        true
    }

    /// Apply a delete; returns whether the entry changed.
    pub fn delete(&mut self, seq: Seq, now_ms: u64) -> bool {
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
        self.time_ms = now_ms;
        true
    }

    /// Apply a metadata patch; returns whether the entry changed.
    pub fn patch(&mut self, seq: Seq, set: &Metadata, unset: &[String], now_ms: u64) -> bool {
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
        if changed {
            self.time_ms = now_ms;
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_formats::MetaValue;

    fn rec(v: i64) -> Record {
        Record {
            id: "x".into(),
            embedding: None,
            document: None,
            metadata: [("v".to_string(), MetaValue::Int(v))].into_iter().collect(),
        }
    }

    fn set(k: &str, v: i64) -> Metadata {
        [(k.to_string(), MetaValue::Int(v))].into_iter().collect()
    }

    #[test]
    fn late_older_upsert_is_ignored() {
        let mut e = Entry::absent();
        assert!(e.upsert(Seq::from(5), &rec(5), 0));
        assert!(!e.upsert(Seq::from(3), &rec(3), 0));
        assert_eq!(e.row.metadata["v"], MetaValue::Int(5));
    }

    #[test]
    fn late_upsert_keeps_newer_patches() {
        let mut e = Entry::absent();
        e.upsert(Seq::from(1), &rec(1), 0);
        e.patch(Seq::from(10), &set("label", 7), &[], 0);
        e.patch(Seq::from(11), &Metadata::new(), &["v".to_string()], 0);
        // An upsert at 5 arrives late: it replaces the base, patches 10 and 11 survive.
        assert!(e.upsert(Seq::from(5), &rec(5), 0));
        assert_eq!(e.row.metadata.get("label"), Some(&MetaValue::Int(7)));
        assert_eq!(e.row.metadata.get("v"), None);
    }

    #[test]
    fn patch_before_upsert_is_kept_and_applied() {
        let mut e = Entry::absent();
        assert!(e.patch(Seq::from(9), &set("label", 1), &[], 0));
        assert!(!e.is_live());
        e.upsert(Seq::from(4), &rec(4), 0);
        assert!(e.is_live());
        assert_eq!(e.row.metadata.get("label"), Some(&MetaValue::Int(1)));
        // An upsert after the patch discards it.
        e.upsert(Seq::from(12), &rec(12), 0);
        assert_eq!(e.row.metadata.get("label"), None);
    }

    #[test]
    fn deletes_are_tombstones_with_seq() {
        let mut e = Entry::absent();
        e.delete(Seq::from(8), 0);
        assert!(
            !e.upsert(Seq::from(7), &rec(7), 0),
            "an older upsert must not resurrect"
        );
        assert!(
            e.upsert(Seq::from(9), &rec(9), 0),
            "a newer upsert re-creates"
        );
        assert!(e.is_live());
    }

    #[test]
    fn older_patch_of_a_key_loses_to_newer() {
        let mut e = Entry::absent();
        e.upsert(Seq::from(1), &rec(1), 0);
        e.patch(Seq::from(6), &set("k", 6), &[], 0);
        assert!(!e.patch(Seq::from(4), &set("k", 4), &[], 0));
        assert_eq!(e.row.metadata["k"], MetaValue::Int(6));
        assert!(
            !e.patch(Seq::from(0), &set("z", 0), &[], 0),
            "older than the upsert"
        );
    }

    #[test]
    fn shadow_round_trip() {
        let mut e = Entry::absent();
        e.delete(Seq::from(3), 42);
        e.patch(Seq::from(5), &set("k", 1), &["gone".into()], 43);
        let back = Entry::from_shadow(e.to_shadow("x"));
        assert_eq!(back, e);
    }
}
