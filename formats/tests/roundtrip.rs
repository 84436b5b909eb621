//! proptest round trips of every format and of the filter parser.

use std::io::Cursor;

use proptest::prelude::*;
use strata_formats::segment::{RowInput, SegmentLayout, SegmentView, SegmentWriter};
use strata_formats::{
    decode_delta, decode_version, encode_version, AlignedBuf, DeltaHeader, DeltaRef, DeltaStatus,
    DeltaWriter, Filter, MetaValue, Metadata, Metric, Op, Operation, Patch, Quantization, Record,
    RetainedOp, RowMeta, Scalar, SegmentRef, Seq, Target, VersionRecord,
};

fn seq() -> impl Strategy<Value = Seq> {
    prop::array::uniform5(any::<u32>()).prop_map(Seq::from_limbs)
}

fn finite() -> impl Strategy<Value = f64> {
    -1e12f64..1e12
}

fn scalar() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        "[a-zA-Z0-9 #_]{0,12}".prop_map(Scalar::Str),
        any::<i64>().prop_map(Scalar::Int),
        finite().prop_map(Scalar::Float),
        any::<bool>().prop_map(Scalar::Bool),
    ]
}

fn meta_value() -> impl Strategy<Value = MetaValue> {
    prop_oneof![
        scalar().prop_map(MetaValue::from),
        prop::collection::vec("[A-Z_]{1,8}", 1..4).prop_map(MetaValue::StrList),
        prop::collection::vec(any::<i64>(), 1..4).prop_map(MetaValue::IntList),
        prop::collection::vec(finite(), 1..4).prop_map(MetaValue::FloatList),
        prop::collection::vec(any::<bool>(), 1..4).prop_map(MetaValue::BoolList),
    ]
}

fn metadata() -> impl Strategy<Value = Metadata> {
    prop::collection::btree_map("[a-z_]{1,10}", meta_value(), 0..6)
}

fn filter() -> impl Strategy<Value = Filter> {
    use strata_formats::{CmpOp, Predicate};
    let op = prop_oneof![
        Just(CmpOp::Eq),
        Just(CmpOp::Ne),
        Just(CmpOp::Gt),
        Just(CmpOp::Gte),
        Just(CmpOp::Lt),
        Just(CmpOp::Lte)
    ];
    let leaf = (
        "[a-z_]{1,8}",
        op,
        scalar(),
        prop::collection::vec(scalar(), 1..4),
        0..3u8,
    )
        .prop_map(|(key, op, s, list, which)| {
            let numeric = matches!(s, Scalar::Int(_) | Scalar::Float(_));
            let pred = match which {
                0 if numeric || matches!(op, CmpOp::Eq | CmpOp::Ne) => Predicate::Cmp(op, s),
                0 => Predicate::Cmp(CmpOp::Eq, s),
                1 => Predicate::In(list),
                _ => Predicate::Nin(list),
            };
            Filter::Field { key, pred }
        });
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(Filter::And),
            prop::collection::vec(inner, 1..3).prop_map(Filter::Or),
        ]
    })
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        "[a-z0-9#]{1,12}".prop_map(Target::Id),
        prop::collection::vec("[a-z0-9#]{1,12}", 0..4).prop_map(Target::Ids),
        filter().prop_map(Target::Where),
    ]
}

fn operation() -> impl Strategy<Value = Operation> {
    let op = prop_oneof![
        (
            "[a-z0-9#]{1,12}",
            prop::option::of(prop::collection::vec(-10f32..10.0, 3)),
            prop::option::of(".{0,20}"),
            metadata()
        )
            .prop_map(|(id, embedding, document, metadata)| Op::Upsert(Record {
                id,
                embedding,
                document,
                metadata
            })),
        (
            target(),
            metadata(),
            prop::collection::vec("[a-z]{1,5}", 0..3)
        )
            .prop_map(|(target, set, unset)| Op::Patch(Patch { target, set, unset })),
        target().prop_map(Op::Delete),
    ];
    (seq(), op).prop_map(|(seq, op)| Operation { seq, op })
}

proptest! {
    #[test]
    fn filter_json_round_trip(f in filter()) {
        let text = f.to_json().to_string();
        prop_assert_eq!(Filter::parse(&text).unwrap(), f);
    }

    #[test]
    fn filter_parser_never_panics(text in ".{0,64}") {
        let _ = Filter::parse(&text);
    }

    #[test]
    fn delta_round_trip(ops in prop::collection::vec(operation(), 0..8), cut in any::<prop::sample::Index>()) {
        let mut w = DeltaWriter::new(&DeltaHeader {
            collection: "c".into(), dims: 3, producer: "p".into(),
            first_seq: ops.first().map_or(Seq::ZERO, |o| o.seq), created_ms: 1,
        }).unwrap();
        for op in &ops {
            w.push(op).unwrap();
        }
        let unsealed = w.unsealed_bytes().to_vec();
        let bytes = w.seal();
        let d = decode_delta(&bytes).unwrap();
        prop_assert_eq!(&d.ops, &ops);
        let sealed_count = match d.status { DeltaStatus::Sealed(s) => Some(s.count), DeltaStatus::Torn { .. } => None };
        prop_assert_eq!(sealed_count, Some(ops.len() as u64));
        // An unsealed prefix (a crash mid-write) yields its complete records, marked torn.
        let torn = decode_delta(&unsealed[..cut.index(unsealed.len()).max(16)]);
        if let Ok(t) = torn {
            prop_assert!(!t.is_sealed());
            prop_assert_eq!(&t.ops[..], &ops[..t.ops.len()]);
        }
        let whole = decode_delta(&unsealed).unwrap();
        prop_assert_eq!(whole.ops, ops);
        prop_assert_eq!(whole.status, DeltaStatus::Torn { complete_bytes: unsealed.len() as u64 });
    }

    #[test]
    fn segment_round_trip(
        dims in 0usize..20,
        rows in prop::collection::btree_map("[a-z0-9]{1,10}", (seq(), prop::option::of(".{0,10}"), metadata()), 0..20),
        quant in prop_oneof![Just(Quantization::None), Just(Quantization::I8), Just(Quantization::Bit)],
    ) {
        let rows: Vec<_> = rows.into_iter().enumerate().map(|(i, (id, (s, doc, m)))| {
            let v = strata_formats::samples::vector(i as u64, dims);
            (id, s, v, doc, RowMeta { metadata: m, key_seqs: vec![] })
        }).collect();
        let mut w = SegmentWriter::new(Cursor::new(Vec::new()), dims as u32, quant).unwrap();
        for (id, s, v, doc, m) in &rows {
            w.push(RowInput { id, seq: *s, vector: v, document: doc.as_deref(), meta: m }).unwrap();
        }
        let bytes = w.finish().unwrap().0.into_inner();
        let buf = AlignedBuf::copy_from(&bytes);
        let layout = SegmentLayout::parse(buf.as_bytes()).unwrap();
        let view = SegmentView::new(buf.as_bytes(), &layout).unwrap();
        view.verify().unwrap();
        prop_assert_eq!(view.rows(), rows.len());
        for (row, (id, s, v, doc, m)) in rows.iter().enumerate() {
            prop_assert_eq!(view.id(row).unwrap(), id.as_str());
            prop_assert_eq!(view.find(id).unwrap(), Some(row));
            prop_assert_eq!(view.seq(row).unwrap(), *s);
            prop_assert_eq!(view.vector(row).unwrap(), &v[..]);
            prop_assert_eq!(&view.document(row).unwrap(), doc);
            prop_assert_eq!(&view.row_meta(row).unwrap(), m);
        }
        prop_assert_eq!(view.find("not-an-id-at-all!").unwrap(), None);
        if dims > 0 {
            match quant {
                Quantization::I8 => prop_assert!(view.quant_i8().unwrap().is_some()),
                Quantization::Bit => prop_assert_eq!(view.quant_bits().unwrap().unwrap().len(), rows.len() * dims.div_ceil(8)),
                Quantization::None => prop_assert!(view.quant_i8().unwrap().is_none()),
            }
        }
    }

    #[test]
    fn version_round_trip(
        version in any::<u64>(), parent in prop::option::of(any::<u64>()), epoch in any::<u64>(),
        watermark in seq(), deleted in prop::collection::vec(any::<u32>(), 0..10),
        retained in prop::collection::vec(operation(), 0..3), note in ".{0,20}",
    ) {
        let record = VersionRecord {
            collection: "words".into(), version, parent, writer_epoch: epoch, created_ms: 5,
            dims: 1536, metric: Metric::Cosine, quantization: Quantization::Bit,
            seq_watermark: watermark,
            segments: vec![SegmentRef { file: "a.seg".into(), rows: 9, bytes: 10, deleted }],
            deltas: vec![DeltaRef { file: "b.delta".into(), count: 1, min_seq: Seq::ZERO, max_seq: watermark, bytes: 3 }],
            retained: retained.into_iter().map(|op| RetainedOp { op, time_ms: 1 }).collect(),
            rows: 9, bytes: 13, note,
        };
        let bytes = encode_version(&record);
        prop_assert_eq!(decode_version(&bytes).unwrap().1, record);
    }

    #[test]
    fn decoders_never_panic_on_noise(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_delta(&bytes);
        let _ = decode_version(&bytes);
        let buf = AlignedBuf::copy_from(&bytes);
        if let Ok(layout) = SegmentLayout::parse(buf.as_bytes()) {
            let _ = SegmentView::new(buf.as_bytes(), &layout).map(|v| v.verify());
        }
    }
}

#[test]
fn newer_major_version_is_refused_with_a_clear_error() {
    for mut bytes in [
        strata_formats::samples::delta(),
        strata_formats::samples::segment(),
        strata_formats::samples::version(),
    ] {
        bytes[8] = 9;
        let err = match strata_formats::sniff(&bytes).unwrap() {
            strata_formats::FileKind::Delta => decode_delta(&bytes).unwrap_err(),
            strata_formats::FileKind::Version => decode_version(&bytes).unwrap_err(),
            strata_formats::FileKind::Segment => {
                let buf = AlignedBuf::copy_from(&bytes);
                SegmentLayout::parse(buf.as_bytes()).unwrap_err()
            }
        };
        assert!(
            matches!(
                err,
                strata_formats::FormatError::NewerMajor {
                    found: 9,
                    supported: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("newer than this build supports"));
    }
}

#[test]
fn a_segment_with_histories_says_1_1_and_round_trips() {
    use strata_formats::samples::{segment_with, segment_with_history};
    use strata_formats::{BaseState, FormatVersion};

    let plain = AlignedBuf::copy_from(&segment_with(4, 5, Quantization::None));
    let layout = SegmentLayout::parse(plain.as_bytes()).unwrap();
    assert_eq!(layout.header.version, FormatVersion { major: 1, minor: 0 });
    let view = SegmentView::new(plain.as_bytes(), &layout).unwrap();
    assert!(view.history().unwrap().is_empty());

    let buf = AlignedBuf::copy_from(&segment_with_history(4, 5));
    let layout = SegmentLayout::parse(buf.as_bytes()).unwrap();
    assert_eq!(layout.header.version, FormatVersion { major: 1, minor: 1 });
    let view = SegmentView::new(buf.as_bytes(), &layout).unwrap();
    view.verify().unwrap();
    let history = view.history().unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[0].id < history[1].id, "sorted by id");
    let hidden = history.iter().find(|h| h.id == "hidden").unwrap();
    assert_eq!(hidden.base_state, BaseState::Live);
    assert_eq!(hidden.base_record.as_ref().unwrap().embedding.len(), 4);
    assert_eq!(
        layout.header.max_seq,
        Seq::from(200),
        "a history patch's seq counts"
    );
}

#[test]
fn verify_refuses_bad_histories() {
    use strata_formats::{BaseRecord, BaseState, History, PatchEvent};

    let history = |id: &str, dims: usize, patch_seq: u64| History {
        id: id.into(),
        through: Seq::from(10),
        base_seq: Seq::from(10),
        base_state: BaseState::Live,
        base_metadata: Metadata::new(),
        base_key_seqs: vec![],
        base_record: Some(BaseRecord {
            embedding: vec![0.5; dims],
            document: None,
        }),
        patches: vec![PatchEvent {
            seq: Seq::from(patch_seq),
            set: Metadata::new(),
            unset: vec![],
            time_ms: 0,
        }],
        time_ms: 0,
    };
    let write = |h: History| {
        let mut w = SegmentWriter::new(Cursor::new(Vec::new()), 3, Quantization::None).unwrap();
        w.push_shadow(strata_formats::ShadowEntry {
            id: h.id.clone(),
            seq: Seq::from(11),
            deleted: true,
            overlay: vec![],
            time_ms: 0,
        });
        w.push_history(h);
        AlignedBuf::copy_from(&w.finish().unwrap().0.into_inner())
    };
    let check = |buf: &AlignedBuf| {
        let layout = SegmentLayout::parse(buf.as_bytes()).unwrap();
        SegmentView::new(buf.as_bytes(), &layout)
            .unwrap()
            .verify()
            .map_err(|e| e.to_string())
    };
    assert!(check(&write(history("x", 3, 11))).is_ok());
    let err = check(&write(history("x", 2, 11))).unwrap_err();
    assert!(err.contains("2-dimension base vector"), "{err}");
    let err = check(&write(history("x", 3, 10))).unwrap_err();
    assert!(err.contains("not newer than its base"), "{err}");
    let mut w = SegmentWriter::new(Cursor::new(Vec::new()), 3, Quantization::None).unwrap();
    w.push_history(history("x", 3, 11));
    w.push_history(history("x", 3, 12));
    assert!(w.finish().is_err(), "an id with two histories is refused");
}
