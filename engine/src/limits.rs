//! Bounds on requests, so that an absurd one (a `k` of a billion, a million ids) gets a
//! typed error ([`Error::LimitExceeded`]) before any allocation proportional to it. The
//! README's "Limits" table lists these with the formats' own (filter size and depth, event
//! size).

use crate::error::{Error, Result};

/// Most neighbours one query returns.
pub const MAX_K: usize = 100_000;

/// Most ids one `get` takes.
pub const MAX_GET_IDS: usize = 100_000;

/// Most query vectors in one `query_batch`.
pub const MAX_BATCH_QUERIES: usize = 10_000;

/// Refuse `got` of `what` above `limit`.
pub(crate) fn check(what: &'static str, got: usize, limit: usize) -> Result<()> {
    if got > limit {
        return Err(Error::LimitExceeded { what, got, limit });
    }
    Ok(())
}
