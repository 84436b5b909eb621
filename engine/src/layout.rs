//! Where things live inside a store, and the rules for names in it: the storage layer's
//! [`strata_storage::layout`] (paths relative to the store's root, shared with the
//! producers), re-exported, with the name checks returning engine errors.

pub use strata_storage::layout::*;

use crate::error::Result;

/// Check a collection name: 1 to 64 characters of `A-Z a-z 0-9 _ - .`, not starting with
/// a dot (names become directory names).
pub fn check_collection_name(name: &str) -> Result<()> {
    Ok(strata_storage::layout::check_collection_name(name)?)
}

/// Check a producer name for inbox files: 1 to 64 characters of `A-Z a-z 0-9 _ -`.
pub fn check_producer_name(name: &str) -> Result<()> {
    Ok(strata_storage::layout::check_producer_name(name)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_errors_are_engine_errors() {
        assert!(check_collection_name("lines").is_ok());
        let err = check_collection_name("../x").unwrap_err();
        assert!(
            matches!(&err, crate::Error::Invalid { what, .. } if what == "collection name"),
            "{err}"
        );
        assert!(check_producer_name("a b").is_err());
    }
}
