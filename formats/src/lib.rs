//! strata-formats: the byte layouts strata writes and reads, and the data model they carry.
//!
//! Everything here is pure: no I/O policy, no RocksDB. Decoders take untrusted bytes and
//! return a value or a typed error ([`FormatError`]); they never panic and never allocate
//! more than the input size justifies. `FORMAT.md` beside this crate is the byte-level
//! specification that the code follows.

pub mod filter;
pub mod op;
pub mod seq;
pub mod value;

pub use filter::{CmpOp, Filter, FilterError, Predicate};
pub use op::{Op, Operation, Patch, Record, Target};
pub use seq::{Seq, SeqParseError};
pub use value::{MetaValue, Metadata, Scalar, ValueError};
