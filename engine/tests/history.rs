//! Replay histories end to end: a filter operation is evaluated on the state at its own seq
//! across flushes, merges, reopenings and readers, and histories fold once they settle.

use std::path::Path;
use std::time::Duration;

use strata_engine::{Include, Query, ReadableStore, Reader, StoreOptions, Writer};
use strata_formats::{
    BlockKind, Filter, MetaValue, Metadata, Metric, Operation, Quantization, Record, SegmentLayout,
    Target,
};

fn upsert(seq: u64, id: &str, group: &str, v: [f32; 2]) -> Operation {
    Operation::upsert(
        seq,
        Record {
            id: id.into(),
            embedding: Some(v.to_vec()),
            document: Some(format!("{id} at {seq}")),
            metadata: [("group".to_string(), MetaValue::Str(group.into()))]
                .into_iter()
                .collect(),
        },
    )
}

fn set(seq: u64, target: Target, key: &str, value: &str) -> Operation {
    let set: Metadata = [(key.to_string(), MetaValue::Str(value.into()))]
        .into_iter()
        .collect();
    Operation::patch(seq, target, set, vec![])
}

fn group(g: &str) -> Target {
    Target::Where(Filter::parse(&format!(r#"{{"group": "{g}"}}"#)).unwrap())
}

fn store(dir: &Path, horizon: Duration) -> Writer {
    let s = Writer::open(
        dir,
        StoreOptions {
            horizon,
            gc_grace: Duration::ZERO,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    if s.collections().unwrap().is_empty() {
        s.create_collection("c", 2, Metric::L2, Quantization::None)
            .unwrap();
    }
    s
}

fn docs(store: &impl ReadableStore) -> Vec<(String, Option<String>, Metadata)> {
    store
        .snapshot("c")
        .unwrap()
        .get_where(None, None, 0, Include::all())
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.document, r.metadata.unwrap()))
        .collect()
}

/// How many of the head version's segment files hold a History block.
fn history_blocks(dir: &Path, store: &Writer) -> usize {
    let snap = store.snapshot("c").unwrap();
    snap.version()
        .segments
        .iter()
        .filter(|s| {
            let bytes = std::fs::read(dir.join("segments").join(&s.file)).unwrap();
            let layout = SegmentLayout::parse(&bytes).unwrap();
            layout.blocks.iter().any(|b| b.kind == BlockKind::History)
        })
        .count()
}

#[test]
fn a_filter_delete_meets_the_upsert_of_its_own_seq_across_compactions() {
    // U1 (g1), F3 = delete where g1, U2 (g0) delivered U1, F3, U2 with a compaction between
    // each: in seq order F3 meets U2, which it does not match — the record stays.
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), Duration::from_secs(3600));
    s.write_sequenced("c", vec![upsert(1, "a", "g1", [1.0, 0.0])])
        .unwrap();
    s.compact("c").unwrap();
    s.write_sequenced("c", vec![Operation::delete(3u64, group("g1"))])
        .unwrap();
    s.compact("c").unwrap();
    assert!(docs(&s).is_empty(), "F3 deletes U1 for now");
    s.write_sequenced("c", vec![upsert(2, "a", "g0", [2.0, 0.0])])
        .unwrap();
    let expect = vec![(
        "a".to_string(),
        Some("a at 2".to_string()),
        [("group".to_string(), MetaValue::Str("g0".into()))]
            .into_iter()
            .collect::<Metadata>(),
    )];
    assert_eq!(docs(&s), expect);
    s.compact("c").unwrap();
    assert_eq!(docs(&s), expect);
    s.close().unwrap();
    let s = store(dir.path(), Duration::from_secs(3600));
    assert_eq!(docs(&s), expect);
    assert_eq!(docs(&Reader::open(dir.path()).unwrap()), expect);
}

#[test]
fn a_late_patch_revives_a_record_a_filter_deleted_with_its_vector() {
    // U1 (g1) and F5 = delete where g1 are compacted into a segment (a shadow entry whose
    // history keeps the vector); P3 (group := g0) arrives after a reopen: F5 no longer
    // matches, so the record is back — vector, document and all — and queries find it.
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), Duration::from_secs(3600));
    s.write_sequenced(
        "c",
        vec![
            upsert(1, "a", "g1", [1.0, 2.0]),
            upsert(2, "b", "g1", [9.0, 9.0]),
            Operation::delete(5u64, group("g1")),
        ],
    )
    .unwrap();
    s.compact("c").unwrap();
    assert!(docs(&s).is_empty());
    assert_eq!(history_blocks(dir.path(), &s), 1);
    s.close().unwrap();
    let s = store(dir.path(), Duration::from_secs(3600));
    s.write_sequenced("c", vec![set(3, Target::Id("a".into()), "group", "g0")])
        .unwrap();
    let hits = s
        .snapshot("c")
        .unwrap()
        .query(&Query {
            vector: &[1.0, 2.0],
            k: 5,
            filter: None,
            include: Include::all(),
        })
        .unwrap();
    assert_eq!(hits.len(), 1, "b stays deleted");
    assert_eq!(hits[0].id, "a");
    assert_eq!(hits[0].embedding.as_deref(), Some(&[1.0f32, 2.0][..]));
    assert_eq!(hits[0].document.as_deref(), Some("a at 1"));
    assert_eq!(hits[0].distance, Some(0.0));
    s.compact("c").unwrap();
    assert_eq!(docs(&s).len(), 1);
}

#[test]
fn settled_histories_fold_and_the_ledger_empties() {
    let dir = tempfile::tempdir().unwrap();
    let horizon = Duration::from_millis(300);
    let s = store(dir.path(), horizon);
    s.write_sequenced(
        "c",
        vec![
            upsert(1, "a", "g1", [1.0, 0.0]),
            upsert(2, "b", "g0", [0.0, 1.0]),
            set(3, Target::Id("a".into()), "k", "v"),
            set(4, group("g1"), "label", "L"),
        ],
    )
    .unwrap();
    s.compact("c").unwrap();
    let before = docs(&s);
    assert_eq!(history_blocks(dir.path(), &s), 1, "a has a history");
    assert_eq!(s.snapshot("c").unwrap().version().retained.len(), 1);
    std::thread::sleep(horizon + Duration::from_millis(100));
    // A new delta and a full compaction merge the old segment: its history is settled.
    s.write_sequenced("c", vec![upsert(5, "c", "g0", [1.0, 1.0])])
        .unwrap();
    s.compact("c").unwrap();
    assert_eq!(history_blocks(dir.path(), &s), 0, "the history folded");
    assert!(
        s.snapshot("c").unwrap().version().retained.is_empty(),
        "no history needs the filter patch: the ledger let it go"
    );
    let after: Vec<_> = docs(&s)
        .into_iter()
        .filter(|(id, _, _)| id != "c")
        .collect();
    assert_eq!(after, before, "folding changes no visible state");
}

#[test]
fn maybe_compact_rewrites_a_segment_whose_history_holds_the_ledger() {
    // One segment with a history and nothing to merge: once the filter operation its
    // history replays is two horizons old, maybe_compact rewrites the segment alone.
    let dir = tempfile::tempdir().unwrap();
    let horizon = Duration::from_millis(200);
    let s = store(dir.path(), horizon);
    s.write_sequenced(
        "c",
        vec![
            upsert(1, "a", "g1", [1.0, 0.0]),
            set(2, Target::Id("a".into()), "k", "v"),
            set(3, group("g1"), "label", "L"),
        ],
    )
    .unwrap();
    s.compact("c").unwrap();
    assert_eq!(history_blocks(dir.path(), &s), 1);
    let before = docs(&s);
    assert!(
        s.maybe_compact("c").unwrap().is_none(),
        "nothing is stale yet"
    );
    std::thread::sleep(2 * horizon + Duration::from_millis(100));
    let report = s
        .maybe_compact("c")
        .unwrap()
        .expect("the stale segment is rewritten");
    assert_eq!(report.segments_in, 1);
    assert_eq!(history_blocks(dir.path(), &s), 0);
    assert!(s.snapshot("c").unwrap().version().retained.is_empty());
    assert_eq!(docs(&s), before);
}
