//! The producer side of the inbox protocol, without the engine: a producer that is not the
//! writer (the stream Lambda) publishes a sealed delta under a fresh name in `inbox/`; the
//! writer registers each inbox file exactly once (`Writer::ingest_inbox` in strata-engine).

use crate::error::Result;
use crate::layout::{self, check_producer_name};
use crate::{now_ms, Storage};

/// Publish the bytes of a sealed delta file (as `strata_formats::DeltaWriter::seal` makes
/// them) into the store's inbox: a temporary is written and fsynced, then published
/// create-if-absent as `inbox/{producer}-{now_ms:013}-{n:04}.delta`, `n` counting up from 0
/// until a name is free, and the inbox directory fsynced. Needs no lock: producers never
/// collide, and nothing is ever replaced. Creates `inbox/` and `tmp/` if missing.
///
/// Returns the published file's path relative to the store's root. The bytes are not
/// checked here; the writer reports torn or corrupt inbox files and leaves them in place.
pub fn publish_inbox_delta(storage: &dyn Storage, producer: &str, sealed: &[u8]) -> Result<String> {
    check_producer_name(producer)?;
    storage.create_dir(layout::INBOX)?;
    storage.create_dir(layout::TMP)?;
    let temp = storage.write_temp("inbox", sealed)?;
    let mut n = 0u32;
    loop {
        let dest = layout::inbox_file(&layout::inbox_name(producer, now_ms(), n));
        match publish_once(storage, &temp, &dest) {
            Ok(true) => return Ok(dest),
            Ok(false) => {}
            Err(e) => {
                // A failed publication removes the temporary before it returns.
                storage.discard_temp(&temp);
                return Err(e);
            }
        }
        n = n.wrapping_add(1);
    }
}

/// One create-if-absent publication of `temp` as `dest` (a failpoint ahead of it under the
/// `failpoints` feature: an injected error returns from here, so the caller still discards
/// the temporary).
fn publish_once(storage: &dyn Storage, temp: &crate::TempFile, dest: &str) -> Result<bool> {
    crate::failpoint!("inbox: publish", storage.location(dest));
    storage.publish(temp, dest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStorage;

    #[test]
    fn names_are_unique_and_nothing_is_replaced() {
        let m = MemoryStorage::new();
        let a = publish_inbox_delta(&m, "lambda-1", b"first").unwrap();
        let b = publish_inbox_delta(&m, "lambda-1", b"second").unwrap();
        assert_ne!(a, b);
        assert!(
            a.starts_with("inbox/lambda-1-") && a.ends_with(".delta"),
            "{a}"
        );
        assert_eq!(m.read(&a).unwrap(), b"first");
        assert_eq!(m.read(&b).unwrap(), b"second");
        assert!(m.list(layout::TMP).unwrap().is_empty(), "temporaries left");
        let err = publish_inbox_delta(&m, "no/slash", b"x").unwrap_err();
        assert!(err.to_string().contains("producer name"), "{err}");
    }

    #[test]
    fn a_published_inbox_file_survives_a_crash() {
        let m = MemoryStorage::new();
        let a = publish_inbox_delta(&m, "p", b"sealed").unwrap();
        m.crash();
        assert_eq!(m.recover().read(&a).unwrap(), b"sealed");
    }
}
