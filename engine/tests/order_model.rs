//! The state machine test of DESIGN.md's order-independence: random upserts, patches and
//! deletes (by id and by filter), delivered in shuffled seq order and split into random
//! batches, interleaved with compactions, rollbacks and reopenings. After every step the
//! visible state equals a plain in-memory model that applies the delivered operations
//! sorted by seq.
//!
//! Filters select on `group`, which changes freely: each upsert picks one, and patches (by
//! id and by filter) set or remove it, so a filter operation's targets depend on the state
//! at its own seq — the case the replay histories exist for (`resolve.rs`).
//!
//! Cases: `PROPTEST_CASES` (CI runs 1000; the closing note reports a longer run).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use strata_engine::{CompactionPolicy, Include, ReadableStore, Reader, StoreOptions, Writer};
use strata_formats::{
    Filter, MetaValue, Metadata, Metric, Op, Operation, Quantization, Record, Seq, Target,
};

#[derive(Debug, Clone)]
enum Kind {
    Upsert {
        id: u8,
        v: i64,
        group: u8,
    },
    PatchIds {
        ids: Vec<u8>,
        key: u8,
        v: Option<i64>,
    },
    DeleteIds {
        ids: Vec<u8>,
    },
    PatchWhere {
        group: u8,
        key: u8,
        v: Option<i64>,
    },
    DeleteWhere {
        group: u8,
    },
}

#[derive(Debug, Clone)]
enum Step {
    Deliver(usize),
    Compact,
    MaybeCompact,
    Rollback(usize),
    Reopen,
}

fn id(i: u8) -> String {
    format!("id{i}")
}

fn group_filter(g: u8) -> Filter {
    Filter::parse(&format!(r#"{{"group": "g{g}"}}"#)).unwrap()
}

fn to_op(seq: u64, k: &Kind) -> Operation {
    // Key 3 is the filtered `group` (patched to g0 or g1); the others are plain values.
    let key = |k: u8| match k {
        3 => "group".to_string(),
        k => format!("k{k}"),
    };
    let seq = Seq::from(seq);
    let patch = |target, key: String, v: &Option<i64>| match v {
        Some(v) => {
            let value = if key == "group" {
                MetaValue::Str(format!("g{}", v % 2))
            } else {
                MetaValue::Int(*v)
            };
            Operation::patch(seq, target, [(key, value)].into_iter().collect(), vec![])
        }
        None => Operation::patch(seq, target, Metadata::new(), vec![key]),
    };
    match k {
        Kind::Upsert { id: i, v, group } => Operation::upsert(
            seq,
            Record {
                id: id(*i),
                embedding: Some(vec![*v as f32, *i as f32]),
                document: Some(format!("doc {v}")),
                metadata: [
                    ("group".to_string(), MetaValue::Str(format!("g{group}"))),
                    ("k0".to_string(), MetaValue::Int(*v)),
                ]
                .into_iter()
                .collect(),
            },
        ),
        Kind::PatchIds { ids, key: k, v } => patch(
            Target::Ids(ids.iter().map(|i| id(*i)).collect()),
            key(*k),
            v,
        ),
        Kind::DeleteIds { ids } => {
            Operation::delete(seq, Target::Ids(ids.iter().map(|i| id(*i)).collect()))
        }
        Kind::PatchWhere { group, key: k, v } => {
            patch(Target::Where(group_filter(*group)), key(*k), v)
        }
        Kind::DeleteWhere { group } => Operation::delete(seq, Target::Where(group_filter(*group))),
    }
}

type State = BTreeMap<String, (Metadata, Option<String>, Vec<f32>)>;

/// The model: apply the delivered operations sorted by seq, plainly.
fn model(delivered: &BTreeSet<u64>, ops: &[(u64, Operation)]) -> State {
    let mut state = State::new();
    let mut sorted: Vec<&(u64, Operation)> =
        ops.iter().filter(|(s, _)| delivered.contains(s)).collect();
    sorted.sort_by_key(|(s, _)| *s);
    for (_, op) in sorted {
        let targets = |state: &State, t: &Target| -> Vec<String> {
            match t {
                Target::Where(f) => state
                    .iter()
                    .filter(|(_, (m, _, _))| f.matches(m))
                    .map(|(k, _)| k.clone())
                    .collect(),
                t => t.ids().unwrap().to_vec(),
            }
        };
        match &op.op {
            Op::Upsert(r) => {
                state.insert(
                    r.id.clone(),
                    (
                        r.metadata.clone(),
                        r.document.clone(),
                        r.embedding.clone().unwrap(),
                    ),
                );
            }
            Op::Patch(p) => {
                for id in targets(&state, &p.target) {
                    if let Some((m, _, _)) = state.get_mut(&id) {
                        m.extend(p.set.clone());
                        for k in &p.unset {
                            m.remove(k);
                        }
                    }
                }
            }
            Op::Delete(t) => {
                for id in targets(&state, t) {
                    state.remove(&id);
                }
            }
        }
    }
    state
}

fn observed(store: &impl ReadableStore) -> State {
    store
        .snapshot("c")
        .unwrap()
        .get_where(None, None, 0, Include::all())
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.id,
                (r.metadata.unwrap(), r.document, r.embedding.unwrap()),
            )
        })
        .collect()
}

fn kind() -> impl Strategy<Value = Kind> {
    let ids = prop::collection::vec(0u8..6, 1..3);
    let v = prop::option::of(0i64..5);
    prop_oneof![
        4 => (0u8..6, 0i64..100, 0u8..2).prop_map(|(id, v, group)| Kind::Upsert { id, v, group }),
        2 => (ids.clone(), 0u8..4, v.clone()).prop_map(|(ids, key, v)| Kind::PatchIds { ids, key, v }),
        1 => ids.prop_map(|ids| Kind::DeleteIds { ids }),
        1 => (0u8..2, 0u8..4, v).prop_map(|(group, key, v)| Kind::PatchWhere { group, key, v }),
        1 => (0u8..2).prop_map(|group| Kind::DeleteWhere { group }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1usize..4).prop_map(Step::Deliver),
        1 => Just(Step::Compact),
        1 => Just(Step::MaybeCompact),
        1 => any::<usize>().prop_map(Step::Rollback),
        1 => Just(Step::Reopen),
    ]
}

fn options() -> StoreOptions {
    StoreOptions {
        // Small thresholds so that maybe_compact flushes and merges within a short case.
        policy: std::sync::Arc::new(CompactionPolicy {
            max_deltas: 2,
            merge_factor: 2,
            min_segment_rows: 2,
            vacuum_min_dead: 1,
            ..CompactionPolicy::default()
        }),
        retain_versions: 1000,
        ..StoreOptions::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn visible_state_equals_seq_sorted_model(
        kinds in prop::collection::vec(kind(), 1..14),
        order in any::<u64>(),
        steps in prop::collection::vec(step(), 1..16),
    ) {
        // Seqs 1..=n in kind order; delivery order is a seeded shuffle of them.
        let ops: Vec<(u64, Operation)> = kinds.iter().enumerate().map(|(i, k)| (i as u64 + 1, to_op(i as u64 + 1, k))).collect();
        let mut pending: Vec<usize> = (0..ops.len()).collect();
        let mut x = order | 1;
        for i in (1..pending.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            pending.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let dir = tempfile::tempdir().unwrap();
        let mut store = Writer::open(dir.path(), options()).unwrap();
        store.create_collection("c", 2, Metric::L2, Quantization::None).unwrap();
        let mut delivered = BTreeSet::new();
        // Delivered set of every committed version, for rollbacks.
        let mut history: Vec<(u64, BTreeSet<u64>)> = vec![];
        let mut steps = steps;
        steps.push(Step::Deliver(usize::MAX));
        for step in steps {
            match step {
                Step::Deliver(n) => {
                    let take = n.min(pending.len());
                    if take == 0 { continue; }
                    let batch: Vec<Operation> = pending.drain(..take).map(|i| ops[i].1.clone()).collect();
                    for op in &batch { delivered.insert(op.seq.limbs()[4] as u64); }
                    store.write_sequenced("c", batch).unwrap();
                }
                Step::Compact => { store.compact("c").unwrap(); }
                Step::MaybeCompact => { store.maybe_compact("c").unwrap(); }
                Step::Rollback(i) => {
                    if history.is_empty() { continue; }
                    let (v, set) = history[i % history.len()].clone();
                    store.rollback("c", v).unwrap();
                    delivered = set;
                }
                Step::Reopen => {
                    drop(store);
                    store = Writer::open(dir.path(), options()).unwrap();
                }
            }
            let snap = store.snapshot("c").unwrap();
            let head = snap.version().version;
            history.push((head, delivered.clone()));
            let seen = observed(&store);
            // The version's row count (kept as the overlay changes) is what it shows.
            prop_assert_eq!(snap.version().rows, seen.len() as u64, "rows of {}", head);
            prop_assert_eq!(seen, model(&delivered, &ops), "after {:?}", history.last());
        }
        // A reader from the version files sees the same state as the writer.
        let reader = Reader::open(dir.path()).unwrap();
        prop_assert_eq!(observed(&reader), model(&delivered, &ops));
    }
}
