//! The receipt pipeline's untrusted JSON (strata-stream): the input is read both as a
//! DynamoDB stream event (`parse_event`, then `translate` of each record) and as a Lambda
//! SQS event of the seed's StreamMessage bodies (`parse_sqs_event`, `dedupe_and_order`,
//! `translate_message`). Properties, beyond "never panics":
//!
//! * every operation carries the seq of its record (or the seq the message was stamped
//!   with), every id it names is non-empty, and no longer than the engine accepts (4096
//!   bytes) when the record's keys are within DynamoDB's limits (PK 2048, SK 1024 bytes);
//!   patches change something and never set and unset one key; floats are finite; merges
//!   carry their record's seq and both deltas;
//! * a record's seed messages (`build_messages`), sent as JSON bodies to the lines / words
//!   queues in one SQS event, parse back and translate to the record's own operations
//!   (an INSERT's OldImage and a REMOVE's NewImage are ignored on both paths):
//!   equal for INSERT and REMOVE, and for a MODIFY (whose message holds only the changed
//!   fields) the same operations restricted to keys the record writes the same way; a run
//!   without delta prefixes fails on both paths;
//! * every SQS record with a message and a messageId belongs to exactly one change; the
//!   changes come in time order;
//! * partial-batch responses round-trip through JSON.
#![no_main]

use chrono::{Datelike, SecondsFormat};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use strata_formats::{MetaValue, Metadata, Op, Seq, Target};
use strata_stream::event::{parse_event, BatchResponse, EventName, StreamRecord};
use strata_stream::ops::{translate, translate_batch, FollowUp, OpsError, Translation};
use strata_stream::seed::{
    build_messages, parse_sqs_event, translate_message, MessageOpsErrorKind, Queue, StreamMessage,
    MAX_ID_BYTES, MAX_MESSAGE_BYTES,
};

fuzz_target!(|data: &[u8]| {
    dynamodb(data);
    sqs(data);
});

fn round_trip(r: &BatchResponse) {
    let json = r.to_json();
    match BatchResponse::from_json(json.as_bytes()) {
        Ok(back) => assert_eq!(&back, r, "{json}"),
        Err(e) => panic!("response {json} does not parse back: {e}"),
    }
}

fn check_id(id: &str, limit: bool) {
    assert!(!id.is_empty(), "empty id");
    if limit {
        assert!(id.len() <= MAX_ID_BYTES, "id of {} bytes", id.len());
    }
}

fn check_target(t: &Target, limit: bool) {
    match t {
        Target::Id(id) => check_id(id, limit),
        Target::Ids(ids) => {
            assert!(!ids.is_empty(), "empty id list");
            ids.iter().for_each(|id| check_id(id, limit));
        }
        Target::Where(_) => {}
    }
}

fn check_meta(m: &Metadata) {
    for (k, v) in m {
        assert!(!k.is_empty(), "empty metadata key");
        if let MetaValue::Float(f) = v {
            assert!(f.is_finite(), "{k}: {f}");
        }
    }
}

/// The properties every translation holds.
fn check(t: &Translation, seq: Seq, limit: bool) {
    let Translation::Apply(r) = t else {
        return;
    };
    assert_eq!(r.seq, seq);
    for o in &r.ops {
        assert_eq!(o.op.seq, seq, "{o:?}");
        match &o.op.op {
            Op::Upsert(rec) => {
                check_id(&rec.id, limit);
                assert!(rec.embedding.is_none(), "translation never carries vectors");
                check_meta(&rec.metadata);
            }
            Op::Patch(p) => {
                check_target(&p.target, limit);
                assert!(
                    !p.set.is_empty() || !p.unset.is_empty(),
                    "empty patch {p:?}"
                );
                for k in &p.unset {
                    assert!(!p.set.contains_key(k), "{k} both set and unset");
                }
                check_meta(&p.set);
            }
            Op::Delete(t) => check_target(t, limit),
        }
    }
    for f in &r.follow_ups {
        if let FollowUp::MergeRun(m) = f {
            assert_eq!(m.seq, seq);
            assert_eq!(m.deltas.len(), 2);
            assert!(m.deltas.iter().all(|d| !d.location.key_prefix.is_empty()));
        }
    }
}

fn keys_fit(r: &StreamRecord) -> bool {
    r.key_str("PK").is_some_and(|k| k.len() <= 2048)
        && r.key_str("SK").is_some_and(|k| k.len() <= 1024)
}

/// The stream processor's build time for the record's messages: the record's own time,
/// so that place timestamps compare (`None` when RFC 3339 cannot write its year).
fn built_at(r: &StreamRecord) -> Option<String> {
    match r.approximate_creation {
        None => Some("not a time".into()),
        Some(t) if (0..=9999).contains(&t.year()) => {
            Some(t.to_rfc3339_opts(SecondsFormat::Secs, false))
        }
        Some(_) => None,
    }
}

fn dynamodb(data: &[u8]) {
    let Ok(batch) = parse_event(data) else {
        return;
    };
    let translated = translate_batch(&batch);
    assert_eq!(
        translated.records.len() + translated.failures.len(),
        batch.len()
    );
    round_trip(&translated.batch_response());
    for r in &batch.records {
        let direct = translate(r);
        if let Ok(t @ Translation::Apply(_)) = &direct {
            let seq = r.seq.expect("operations only with a SequenceNumber");
            check(t, seq, keys_fit(r));
        }
        let (Some(seq), Some(at)) = (r.seq, built_at(r)) else {
            continue;
        };
        let Ok(messages) = build_messages(r, &at) else {
            continue;
        };
        via_messages(r, seq, &direct, &messages);
    }
}

/// Send the record's messages through SQS and compare.
fn via_messages(
    r: &StreamRecord,
    seq: Seq,
    direct: &Result<Translation, OpsError>,
    messages: &[StreamMessage],
) {
    let mut records = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let body = m.to_body();
        if body.len() > MAX_MESSAGE_BYTES {
            return;
        }
        match StreamMessage::from_body(body.as_bytes()) {
            Ok(back) => assert_eq!(back.to_body(), body),
            Err(e) => panic!("a built body does not parse: {e}\n{body}"),
        }
        for q in &m.collections {
            if matches!(q, Queue::Lines | Queue::Words) {
                records.push(json!({
                    "messageId": format!("m{i}-{q}"),
                    "body": body,
                    "messageAttributes": {"collection": {"stringValue": q.as_str(), "dataType": "String"}},
                    "eventSource": "aws:sqs",
                }));
            }
        }
    }
    let event = json!({ "Records": records }).to_string();
    let batch = match parse_sqs_event(event.as_bytes()) {
        Ok(b) => b,
        Err(e) => panic!("an SQS event of built bodies does not parse: {e}"),
    };
    assert_eq!(batch.failures().count(), 0, "{:?}", batch.records);
    let exact = r.event_name != EventName::Modify;
    for c in batch.changes() {
        let via = translate_message(&c.message, seq);
        if let Ok(t) = &via {
            check(t, seq, true);
        }
        match (direct, &via) {
            (Ok(d), Ok(v)) => agree(d, v, exact),
            (Ok(d), Err(e)) => assert!(
                matches!(e.kind, MessageOpsErrorKind::IdTooLong { .. }) && long_id(d),
                "record: {d:?}\nmessage: {e}"
            ),
            (Err(OpsError::RunWithoutDelta { .. }), v) => assert!(v.is_err(), "{v:?}"),
            // The record's own errors (no NewImage, ...): a message cannot tell.
            (Err(_), _) => {}
        }
    }
}

fn long_id(t: &Translation) -> bool {
    let Translation::Apply(r) = t else {
        return false;
    };
    r.ops.iter().any(|o| match &o.op.op {
        Op::Upsert(rec) => rec.id.len() > MAX_ID_BYTES,
        Op::Patch(p) => p
            .target
            .ids()
            .is_some_and(|ids| ids.iter().any(|i| i.len() > MAX_ID_BYTES)),
        Op::Delete(t) => t
            .ids()
            .is_some_and(|ids| ids.iter().any(|i| i.len() > MAX_ID_BYTES)),
    })
}

/// The message's translation is the record's, or (a MODIFY) the record's restricted to
/// keys both write the same way.
fn agree(direct: &Translation, via: &Translation, exact: bool) {
    if exact || via == direct {
        assert_eq!(via, direct);
        return;
    }
    let (Translation::Apply(d), Translation::Apply(v)) = (direct, via) else {
        assert_eq!(via, direct);
        return;
    };
    assert_eq!((v.seq, v.entity_type), (d.seq, d.entity_type));
    assert_eq!(v.follow_ups, d.follow_ups);
    assert_eq!(v.ops.len(), d.ops.len(), "{v:?}\n{d:?}");
    for (vo, dop) in v.ops.iter().zip(&d.ops) {
        assert_eq!((vo.collection, vo.op.seq), (dop.collection, dop.op.seq));
        let Op::Patch(vp) = &vo.op.op else {
            panic!("a narrowed operation is a patch: {vo:?}")
        };
        match &dop.op.op {
            Op::Patch(dp) => {
                assert_eq!(vp.target, dp.target);
                for (k, val) in &vp.set {
                    assert_eq!(dp.set.get(k), Some(val), "{k}");
                }
                for k in &vp.unset {
                    assert!(dp.unset.contains(k), "{k}");
                }
            }
            Op::Upsert(rec) => {
                assert_eq!(vp.target, Target::Id(rec.id.clone()));
                for (k, val) in &vp.set {
                    assert_eq!(rec.metadata.get(k), Some(val), "{k}");
                }
                for k in &vp.unset {
                    assert!(!rec.metadata.contains_key(k), "{k}");
                }
            }
            other => panic!("{other:?} vs {vp:?}"),
        }
    }
}

fn sqs(data: &[u8]) {
    let Ok(batch) = parse_sqs_event(data) else {
        return;
    };
    for (i, r) in batch.records.iter().enumerate() {
        assert_eq!(r.index, i);
        if let Ok(m) = &r.message {
            assert!(r.message_id.is_some(), "a message without messageId");
            assert_eq!(m.context.record_id, r.message_id);
            assert_eq!(m.collections.len(), 1);
        }
    }
    let changes = batch.changes();
    let grouped: usize = changes.iter().map(|c| c.message_ids.len()).sum();
    assert_eq!(grouped + batch.failures().count(), batch.records.len());
    assert!(changes.windows(2).all(|w| w[0].time <= w[1].time));
    for (c, s) in changes.iter().zip(1u64..) {
        assert_eq!(c.message_ids.len(), c.indexes.len());
        let seq = Seq::from(s);
        if let Ok(t) = translate_message(&c.message, seq) {
            check(&t, seq, true);
        }
    }
    round_trip(&batch.batch_response([]));
    round_trip(&batch.batch_response(&changes));
}
