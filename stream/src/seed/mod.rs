//! The seed's SQS migration path: the seed system's `StreamMessage` bodies and the Lambda
//! SQS events that carry them, so that existing queues (`lines`, `words`,
//! `receipt_summary`, `line_items`) and tools keep working while strata takes over storage.
//! Only the migration needs it; the DynamoDB stream path ([`crate::event`],
//! [`crate::ops`]) does not. Its parts:
//!
//! - `message`: the [`StreamMessage`] body, parsed and emitted exactly as the seed does
//!   ([`build_messages`] applies the seed's routing table);
//! - `parse`: an SQS event → one [`SqsRecord`] per record, failures named by messageId
//!   ([`parse_sqs_event`]);
//! - `order`: the copies of one change grouped, the changes ordered ([`dedupe_and_order`]);
//! - `translate`: a message → the operations of the stream record it stands for
//!   ([`translate_message`]).
//!
//! The seed's SQS batches, as the compactor Lambda receives them: Lambda SQS events whose
//! record bodies are [`StreamMessage`] JSON (seed-system §1.5, §2.4), turned into the same
//! operations and follow-ups [`crate::ops::translate`] gives for the stream record the
//! message was built from, as far as the message carries the data.
//!
//! # Parsing ([`parse_sqs_event`])
//!
//! The payload is `{"Records": [...]}` (at most [`MAX_SQS_EVENT_BYTES`]); the envelope must
//! be a JSON object, or the whole call fails with a position ([`SqsEventError`]). Each record
//! is then read on its own: its `messageId`, its `body` (through
//! [`StreamMessage::from_sqs`], with the `collection` message attribute's `stringValue`)
//! and the body's `stream_record_id`. A record that cannot be used is an [`SqsRecord`]
//! whose `message` is an [`SqsRecordError`] — never dropped, as the seed did (§6.2): the
//! caller reports it failed by its messageId. A record without a messageId cannot be
//! named in a partial-batch response; [`SqsBatch::batch_response`] then reports an empty
//! identifier, which makes Lambda retry the whole batch (as [`BatchResponse::failing`](crate::BatchResponse::failing) does
//! for an unknown SequenceNumber) — the only answer that loses nothing. Only the fields
//! read are type-checked (`messageId`, `body`: strings or absent); other fields and other
//! message attributes are ignored, so an odd `md5OfBody` never fails a good message.
//!
//! # Duplicates and order ([`dedupe_and_order`])
//!
//! A change that targets both queues is sent as two SQS messages with identical bodies
//! (§2.4), and SQS may deliver a message twice: all copies are the **same change**. The two
//! messages of a COMPACTION_RUN INSERT (one per queue) differ only in `delta_s3_prefix` and
//! are one change too (one [`FollowUp::MergeRun`](crate::FollowUp::MergeRun) merges both deltas). [`SqsChange`] groups
//! the messageIds of one change: the caller translates and applies it once, and reports all
//! of its messageIds failed or none. The key is the whole body with the body's own
//! `stream_record_id` (the DynamoDB eventID) and build time, so two distinct changes with
//! the same content stay distinct.
//!
//! Messages carry no SequenceNumber: the caller stamps seqs in the order
//! [`dedupe_and_order`] returns (increasing, after everything the store has seen), and the
//! engine then applies them in that order. That order is the body's `timestamp` (parsed as
//! a time; messages without one first, as the seed sorts null as `""`), then delivery order.
//! The timestamp is the stream processor's build time: it follows the DynamoDB change order
//! for one item (one shard, processed in order; a retried stream batch re-sends copies with
//! later times but the records after it are built later still), which SQS delivery order
//! (Standard queues) does not. The seed's §4.5 rules are **not** applied, because with
//! in-order seqs they are wrong rather than needed:
//!
//! * REMOVE first: a word REMOVE after a COMPACTION_RUN that embedded the word would be
//!   stamped before the run, so the merged vector would come back; a section INSERT then
//!   REMOVE would leave the section row. The seed needed REMOVE-first only because its
//!   fixed phase order ran deletions last anyway.
//! * Dropping an INSERT/MODIFY whose entity key matches a REMOVE of the batch: a MODIFY
//!   before the REMOVE is harmless (the later delete wins), a re-creation after it is lost,
//!   and the seed's key (no label name) even drops a MODIFY of label B when label A of the
//!   same word is removed.
//!
//! Duplicates that arrive in different invocations (the lines and the words queue have
//! their own event source mappings) are applied once per invocation: their values are the
//! same, so this is harmless unless a newer change of the same keys was applied in between
//! — an ordering the SQS path cannot guarantee across invocations. In particular a run's
//! two messages usually arrive in two invocations, and each merges both deltas (as
//! `translate` does): the second merge rewrites the same vectors at its later seq, and
//! its [`crate::ops::MergeRun::after_merge`] recomputations rebuild the derived metadata
//! again. Only the DynamoDB stream path (seq = SequenceNumber) is order-independent.
//!
//! # Translation ([`translate_message`])
//!
//! The message's identity (`entity_data`: `image_id`, `receipt_id`, `line_id`, `word_id`,
//! `label`, `section_type`, `run_id`) and the new values of its `changes` are rebuilt into
//! a stream record with keys `PK`/`SK` and a new image, which [`crate::ops::translate`]
//! turns into operations: the same ids, filters, title-casing, null/empty → `unset` rules
//! and metadata builders, by construction. What a message cannot carry, and what follows:
//!
//! A row is *whole* when the message determines every field of it: on an INSERT every
//! relevant field is in `changes` or null (§2.3); on a MODIFY only the fields in `changes`
//! are known. A whole row gives exactly `translate`'s operations; otherwise every upsert
//! `translate` would give becomes a patch of the known keys (present: set, absent: unset),
//! and every patch keeps only the known keys.
//!
//! | entity | message | operations |
//! |---|---|---|
//! | RECEIPT_PLACE | INSERT, REMOVE, or MODIFY of all five fields | as `translate` (patches by receipt filter, the receipt's place row) |
//! | RECEIPT_PLACE | MODIFY of some fields | the same operations narrowed to the changed place keys (patches also keep `last_place_update`, `place_removed_at`); `translate` rewrites all five keys from the full image |
//! | RECEIPT_WORD_LABEL | REMOVE | delete the label row + [`FollowUp::RecomputeWordLabels`](crate::FollowUp::RecomputeWordLabels), as `translate` |
//! | RECEIPT_WORD_LABEL | MODIFY | patch of the changed row keys + recompute (`translate` upserts the full row) |
//! | RECEIPT_WORD_LABEL | INSERT | `timestamp_added` and `confidence` are not relevant fields (§2.3), so no seed message carries them: a patch of every key the message determines (identity included) + recompute; the upsert `translate` gives only when `changes` or `entity_data` carry both |
//! | RECEIPT_SECTION | INSERT with changes, MODIFY of all three row fields, REMOVE | as `translate` (row upsert or delete + [`FollowUp::RecomputeSections`](crate::FollowUp::RecomputeSections)) |
//! | RECEIPT_SECTION | MODIFY of some row fields | patch of the changed row keys + recompute |
//! | RECEIPT_SECTION | backfill (`source=section_backfill`) or no changed row field (not a REMOVE) | only [`FollowUp::RecomputeSections`](crate::FollowUp::RecomputeSections) (`section_type` not needed) |
//! | RECEIPT / RECEIPT_LINE / RECEIPT_WORD | REMOVE | as `translate` |
//! | COMPACTION_RUN | INSERT | [`FollowUp::MergeRun`](crate::FollowUp::MergeRun) from `entity_data`'s `run_id`, `lines_delta_prefix`, `words_delta_prefix`, as `translate`; a missing or unusable prefix is an error, never an acknowledgement; `delta_s3_prefix` is not read (it repeats the message's own queue's prefix) |
//! | RECEIPT_SUMMARY, unknown types, other events | | [`Translation::Ignore`](crate::Translation::Ignore), as `translate` (no identity needed) |
//!
//! Limits: a patch of a label, section or place row that was never upserted stays
//! invisible until the row is upserted (the engine keeps it for that upsert); the seed
//! routes no label or place INSERT (§2.2), so those rows must come from the stream path or
//! a backfill. `last_place_update` / `place_removed_at` are the message's build time
//! (whole seconds), not the change time. Only the relevant fields of `changes` (§2.3) are
//! read, others are ignored. `image_id`, `label` and `section_type` must be non-empty and
//! without `#` (they come from `#`-separated DynamoDB keys; `run_id` may hold `#`, as an
//! image's can); `receipt_id`, `line_id`, `word_id` are positive integers (JSON numbers,
//! or strings of digits). The key rebuilt from the identity must be detected as the
//! message's entity type, or the message is an error (never an acknowledgement), and no
//! id of its operations may exceed [`MAX_ID_BYTES`], the engine's limit (a refused write
//! would fail the whole invocation). A message that breaks these is an error (report it
//! failed; the queue dead-letters it after its receive limit), never a panic.

mod message;
mod order;
mod parse;
mod translate;

pub use message::{
    build_messages, entity_data, targets, MessageContext, MessageError, Queue, StreamMessage,
    MAX_MESSAGE_BYTES, SOURCE_DYNAMODB_STREAM,
};
pub use order::{dedupe_and_order, message_time, SqsChange};
pub use parse::{
    parse_sqs_event, SqsBatch, SqsEventError, SqsRecord, SqsRecordError, MAX_SQS_EVENT_BYTES,
};
pub use translate::{
    translate_message, MessageOpsError, MessageOpsErrorKind, MAX_ID_BYTES, SOURCE_SECTION_BACKFILL,
};
