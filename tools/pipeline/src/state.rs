//! The engine's side of [`strata_stream::StateReader`]: derived-metadata recomputation reads
//! the current state of a collection through a fresh snapshot of the store, so it sees every
//! write the compactor made earlier in the same invocation.

use strata_engine::{Include, ReadableStore, Writer};
use strata_formats::{Filter, Metadata};
use strata_stream::StateReader;

/// Reads records of a store's collections, each read on the head at that moment.
#[derive(Debug, Clone, Copy)]
pub struct StoreState<'a> {
    store: &'a Writer,
}

impl<'a> StoreState<'a> {
    /// A reader over `store` (writer or reader role).
    pub fn new(store: &'a Writer) -> StoreState<'a> {
        StoreState { store }
    }
}

impl StateReader for StoreState<'_> {
    type Error = strata_engine::Error;

    fn get_where(
        &self,
        collection: &str,
        filter: &Filter,
    ) -> Result<Vec<(String, Metadata)>, strata_engine::Error> {
        let include = Include {
            embeddings: false,
            documents: false,
            metadatas: true,
        };
        let rows = self
            .store
            .snapshot(collection)?
            .get_where(Some(filter), None, 0, include)?;
        Ok(rows
            .into_iter()
            .map(|r| (r.id, r.metadata.unwrap_or_default()))
            .collect())
    }
}
