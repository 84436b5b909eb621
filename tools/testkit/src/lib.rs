//! strata-testkit: what strata's tests share (not published, not an API; used as a
//! dev-dependency, and by `strata demo` for its workload).
//!
//! - [`workload`]: a deterministic, realistic receipt workload as the receipts table's
//!   DynamoDB stream delivers it, with the embedding producer's run deltas and what the
//!   collections must hold at the end (the pipeline's end-to-end tests, the CLI's
//!   `ingest-events` tests, `strata demo`);
//! - [`records`]: builders of single DynamoDB stream records and attribute values for unit
//!   tests of the stream translation;
//! - [`s3`]: moto's S3 server for the integration tests (endpoint, buckets, environment).

#![deny(missing_docs)]

pub mod records;
pub mod s3;
pub mod workload;
