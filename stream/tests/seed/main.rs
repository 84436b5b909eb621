//! The seed's migration path (`strata_stream::seed`): its `StreamMessage` bodies and its
//! SQS events, parsed, ordered and translated.

mod message;
mod sqs;
