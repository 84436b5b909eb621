//! Duplicates and order of a batch's messages: the copies of one change (both queues,
//! redeliveries, a run's two messages) grouped into one [`SqsChange`], the changes ordered
//! by the body's build time, then delivery order — the order the caller stamps seqs in (why
//! not the seed's REMOVE-first order: [the module documentation](super)).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::message::StreamMessage;
use super::parse::SqsRecord;
use crate::entity::EntityType;

/// One change of a batch: the message, once, and every messageId that carried it.
#[derive(Debug, Clone, PartialEq)]
pub struct SqsChange {
    /// The first copy's message; `collections` lists the queues of all copies (first seen
    /// first) and `context.record_id` is the first copy's messageId.
    pub message: StreamMessage,
    /// The messageIds of all copies, in delivery order (report all failed, or none).
    pub message_ids: Vec<String>,
    /// Positions of the copies in the event's `Records`.
    pub indexes: Vec<usize>,
    /// The body's `timestamp` as a time (what orders the batch), when it parses.
    pub time: Option<DateTime<Utc>>,
}

/// What identifies a change: the body, with the body's own `stream_record_id`, without the
/// per-queue `delta_s3_prefix` of a compaction run.
fn change_key(m: &StreamMessage, stream_record_id: Option<&str>) -> String {
    let mut k = m.clone();
    k.collections.clear();
    k.record_snapshot = None;
    k.context.record_id = stream_record_id.map(str::to_string);
    if m.entity_type() == Some(EntityType::CompactionRun) {
        k.entity_data.remove("delta_s3_prefix");
    }
    k.to_body()
}

/// The changes of a batch's records, each once with all its messageIds, in the order the
/// caller stamps seqs: by the body's `timestamp` (none first), then delivery order. Records
/// without a message or a messageId are left out (they are failures, see
/// [`SqsBatch::batch_response`](super::SqsBatch::batch_response)). The seed's REMOVE-first order and REMOVE deduplication
/// (§4.5) are deliberately not applied; the module documentation says why.
pub fn dedupe_and_order<'a>(records: impl IntoIterator<Item = &'a SqsRecord>) -> Vec<SqsChange> {
    let mut changes: Vec<SqsChange> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for r in records {
        let (Ok(m), Some(id)) = (&r.message, &r.message_id) else {
            continue;
        };
        let key = change_key(m, r.stream_record_id.as_deref());
        match by_key.get(&key) {
            Some(&i) => {
                let c = &mut changes[i];
                c.message_ids.push(id.clone());
                c.indexes.push(r.index);
                for q in &m.collections {
                    if !c.message.collections.contains(q) {
                        c.message.collections.push(*q);
                    }
                }
            }
            None => {
                by_key.insert(key, changes.len());
                changes.push(SqsChange {
                    message: m.clone(),
                    message_ids: vec![id.clone()],
                    indexes: vec![r.index],
                    time: message_time(m),
                });
            }
        }
    }
    // Stable: equal times (and no time) keep delivery order.
    changes.sort_by_key(|c| c.time);
    changes
}

/// The message's `timestamp` as a time: RFC 3339 (`2025-08-01T00:00:00.123456+00:00`), or
/// Python's naive `isoformat()` read as UTC; `None` when absent or unreadable.
pub fn message_time(m: &StreamMessage) -> Option<DateTime<Utc>> {
    let t = m.context.timestamp.as_deref()?.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}
