//! Follow-up requests made durable: each [`FollowUp`] a stream record asks for (merge a
//! compaction run, recompute a word's labels, a receipt's labels, sections or place) becomes a
//! row of the metadata-only collection [`FOLLOW_UPS`], written in the same batch as the
//! record's operations (into the inbox by the stream processor, or directly by the
//! compactor). The compactor works through the pending rows after every ingestion and
//! deletes a row only once its work is committed, so a crash between the two repeats
//! idempotent work and never loses a request.
//!
//! Row ids are `{seq:049}#{index:04}`: the record's SequenceNumber zero-padded to 49 digits
//! (the widest 160-bit value), so that id order is seq order, and the follow-up's index in
//! its record, so two requests never share a row (a shared row could be shadowed by the
//! deletion of an earlier one).

use strata_formats::{MetaValue, Metadata, Op, Operation, Record, Seq};
use strata_stream::FollowUp;

/// The collection holding pending follow-ups (metadata-only).
pub const FOLLOW_UPS: &str = "followups";

/// A pending follow-up, decoded from its row.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The row id.
    pub id: String,
    /// What to do.
    pub follow_up: FollowUp,
    /// The seq of the record that asked for it.
    pub seq: Seq,
    /// Failed attempts so far.
    pub attempts: i64,
}

/// The row id of follow-up `index` of the record with seq `seq`.
pub fn row_id(seq: Seq, index: usize) -> String {
    format!("{:0>49}#{index:04}", seq.to_string())
}

fn kind(f: &FollowUp) -> &'static str {
    match f {
        FollowUp::MergeRun(_) => "merge_run",
        FollowUp::RecomputeWordLabels(_) => "word_labels",
        FollowUp::RecomputeReceiptLabels(_) => "receipt_labels",
        FollowUp::RecomputeSections(_) => "sections",
        FollowUp::RecomputePlace(_) => "place",
        FollowUp::ClearPlace(_) => "clear_place",
    }
}

fn receipt_of(f: &FollowUp) -> (String, u32) {
    match f {
        FollowUp::MergeRun(m) => (m.receipt.image_id.clone(), m.receipt.receipt_id),
        FollowUp::RecomputeWordLabels(w) => (w.image_id.clone(), w.receipt_id),
        FollowUp::RecomputeReceiptLabels(r)
        | FollowUp::RecomputeSections(r)
        | FollowUp::RecomputePlace(r)
        | FollowUp::ClearPlace(r) => (r.image_id.clone(), r.receipt_id),
    }
}

/// The upsert that records follow-up `index` of the record with seq `seq`.
pub fn encode(follow_up: &FollowUp, seq: Seq, index: usize) -> Operation {
    let (image_id, receipt_id) = receipt_of(follow_up);
    let request = serde_json::to_string(follow_up)
        .expect("a FollowUp serializes: it holds only strings, integers and vectors of them");
    let mut metadata = Metadata::new();
    metadata.insert("kind".into(), MetaValue::Str(kind(follow_up).into()));
    metadata.insert("request".into(), MetaValue::Str(request));
    metadata.insert("seq".into(), MetaValue::Str(seq.to_string()));
    metadata.insert("image_id".into(), MetaValue::Str(image_id));
    metadata.insert("receipt_id".into(), MetaValue::Int(i64::from(receipt_id)));
    Operation {
        seq,
        op: Op::Upsert(Record {
            id: row_id(seq, index),
            embedding: None,
            document: None,
            metadata,
        }),
    }
}

/// Decode a row; the error says which field is wrong.
pub fn decode(id: &str, meta: &Metadata) -> Result<Pending, String> {
    let text = |key: &str| match meta.get(key) {
        Some(MetaValue::Str(s)) => Ok(s.as_str()),
        Some(other) => Err(format!("`{key}` is {other:?}, not a string")),
        None => Err(format!("no `{key}`")),
    };
    let follow_up: FollowUp = serde_json::from_str(text("request")?)
        .map_err(|e| format!("`request` is not a follow-up: {e}"))?;
    let seq: Seq = text("seq")?.parse().map_err(|e| format!("`seq`: {e}"))?;
    let attempts = match meta.get("attempts") {
        Some(MetaValue::Int(n)) => *n,
        _ => 0,
    };
    Ok(Pending {
        id: id.to_string(),
        follow_up,
        seq,
        attempts,
    })
}

/// The patch recording a failed attempt on a pending row.
pub fn failed_attempt(pending: &Pending, error: &str) -> Op {
    let mut set = Metadata::new();
    set.insert("attempts".into(), MetaValue::Int(pending.attempts + 1));
    set.insert("last_error".into(), MetaValue::Str(error.to_string()));
    Op::Patch(strata_formats::Patch {
        target: strata_formats::Target::Id(pending.id.clone()),
        set,
        unset: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_stream::{ReceiptKey, WordKey};

    #[test]
    fn rows_round_trip_and_sort_by_seq() {
        let word = FollowUp::RecomputeWordLabels(WordKey {
            image_id: "img".into(),
            receipt_id: 3,
            line_id: 4,
            word_id: 5,
        });
        let sections = FollowUp::RecomputeSections(ReceiptKey {
            image_id: "img".into(),
            receipt_id: 3,
        });
        let small: Seq = "9".parse().unwrap();
        let large: Seq = "10".parse().unwrap();
        let a = encode(&word, large, 0);
        let b = encode(&sections, small, 1);
        let (Op::Upsert(ra), Op::Upsert(rb)) = (&a.op, &b.op) else {
            panic!("follow-ups are upserts");
        };
        assert!(
            rb.id < ra.id,
            "seq 9 sorts before seq 10: {} {}",
            rb.id,
            ra.id
        );
        let p = decode(&ra.id, &ra.metadata).unwrap();
        assert_eq!(p.follow_up, word);
        assert_eq!(p.seq, large);
        assert_eq!(p.attempts, 0);
        assert_eq!(ra.metadata.get("receipt_id"), Some(&MetaValue::Int(3)));
    }

    #[test]
    fn bad_rows_say_what_is_wrong() {
        let mut meta = Metadata::new();
        assert_eq!(decode("x", &meta).unwrap_err(), "no `request`");
        meta.insert("request".into(), MetaValue::Str("{}".into()));
        assert!(decode("x", &meta).unwrap_err().contains("not a follow-up"));
        meta.insert("request".into(), MetaValue::Int(3));
        assert!(decode("x", &meta).unwrap_err().contains("not a string"));
    }
}
