//! The producer side without the writer: seal a delta of upserts (`encode_delta`) and
//! publish sealed bytes into a store's inbox (`publish_inbox`), as the stream Lambda does.
//! The Python embedding producer writes run deltas this way (the Python side writes the
//! bytes under a run prefix, or uploads them).

use std::path::PathBuf;

use numpy::PyReadonlyArray2;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use strata_engine::{validate, CollectionInfo};
use strata_formats::{DeltaHeader, DeltaWriter, Metric, Op, Operation, Quantization, Record, Seq};
use strata_storage::LocalStorage;

use crate::convert::{metadatas_from_py, Embeddings};
use crate::error::{detached, BindError, BindResult};

fn seqs_of(seqs: Option<Vec<String>>, n: usize) -> BindResult<Vec<Seq>> {
    match seqs {
        None => Ok((1..=n as u64).map(Seq::from).collect()),
        Some(s) if s.len() != n => Err(BindError::Value(format!(
            "unequal lengths: {n} ids but {} seqs",
            s.len()
        ))),
        Some(s) => s
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.parse::<Seq>()
                    .map_err(|e| BindError::Value(format!("seq {i} ({t:?}): {e}")))
            })
            .collect(),
    }
}

/// The sealed bytes of a delta file holding one upsert per id, for `collection` of `dims`
/// dimensions. `seqs` (decimal strings, e.g. DynamoDB SequenceNumbers) order the records;
/// without them they get 1, 2, … (what a run delta needs: the writer re-stamps a run's
/// operations with the run's seq). Every record is validated as the writer would.
#[pyfunction]
#[pyo3(signature = (collection, dims, ids, embeddings = None, documents = None, metadatas = None, seqs = None, producer = "python"))]
#[allow(clippy::too_many_arguments)]
pub fn encode_delta<'py>(
    py: Python<'py>,
    collection: String,
    dims: u32,
    ids: Vec<String>,
    embeddings: Option<PyReadonlyArray2<'_, f32>>,
    documents: Option<Vec<Option<String>>>,
    metadatas: Option<Vec<Option<Bound<'_, PyAny>>>>,
    seqs: Option<Vec<String>>,
    producer: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let metas = metadatas_from_py(metadatas, false).map_err(|e| e.into_py(py))?;
    let emb = embeddings
        .as_ref()
        .map(Embeddings::borrow)
        .transpose()
        .map_err(|e| e.into_py(py))?;
    let bytes = detached(py, || {
        let n = ids.len();
        let seqs = seqs_of(seqs, n)?;
        for (what, len) in [
            ("embeddings", emb.as_ref().map(|e| e.rows)),
            ("documents", documents.as_ref().map(Vec::len)),
            ("metadatas", metas.as_ref().map(Vec::len)),
        ] {
            if let Some(len) = len.filter(|l| *l != n) {
                return Err(BindError::Value(format!(
                    "unequal lengths: {n} ids but {len} {what}"
                )));
            }
        }
        let info = CollectionInfo {
            name: collection.clone(),
            dims,
            metric: Metric::L2,
            quantization: Quantization::None,
            created_ms: 0,
        };
        let mut ops = Vec::with_capacity(n);
        for (i, id) in ids.iter().enumerate() {
            let op = Operation {
                seq: seqs[i],
                op: Op::Upsert(Record {
                    id: id.clone(),
                    embedding: emb.as_ref().map(|e| e.row(i).to_vec()),
                    document: documents.as_ref().and_then(|d| d[i].clone()),
                    metadata: metas
                        .as_ref()
                        .and_then(|m| m[i].as_ref())
                        .map(|m| m.set.clone())
                        .unwrap_or_default(),
                }),
            };
            validate(&info, &op)
                .map_err(|e| BindError::InvalidArgument(format!("record {i}: {e}")))?;
            ops.push(op);
        }
        let header = DeltaHeader {
            collection,
            dims,
            producer: producer.to_string(),
            first_seq: ops.first().map(|o| o.seq).unwrap_or(Seq::ZERO),
            created_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        };
        DeltaWriter::encode(&header, &ops).map_err(|e| BindError::Value(e.to_string()))
    })?;
    Ok(PyBytes::new(py, &bytes))
}

/// Publish sealed delta bytes into the inbox of the store at `store` (no lock, never
/// replaces a file); returns the file's path relative to the store. The writer registers
/// it at its next `ingest_inbox`.
#[pyfunction]
pub fn publish_inbox(
    py: Python<'_>,
    store: PathBuf,
    producer: &str,
    data: &[u8],
) -> PyResult<String> {
    detached(py, || {
        let storage = LocalStorage::new(&store).map_err(strata_engine::Error::from)?;
        Ok(
            strata_storage::inbox::publish_inbox_delta(&storage, producer, data)
                .map_err(strata_engine::Error::from)?,
        )
    })
}
