//! Chroma's reads on a snapshot: `get` (ids and/or `where`, `where_document`, paging,
//! `include`) and `query` (k-NN for each row of a 2-D array, one engine call for a batch).
//! A query restricted by `where_document` or by ids scores the records those select
//! exactly; otherwise the engine's search runs (quantized unless `exact`), `where` filters
//! first.

use std::cmp::Ordering;
use std::collections::HashSet;

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use strata_engine::{scalar_distance, Include, Query, RecordOut, SearchOptions, Snapshot};
use strata_formats::{Filter, Metadata};

use crate::convert::{embeddings_to_py, metadata_to_py, Embeddings};
use crate::docfilter::DocFilter;
use crate::error::{BindError, BindResult};

/// Which parts of each record a read returns.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IncludeFlags {
    /// Embeddings (as one float32 array).
    pub(crate) embeddings: bool,
    /// Documents.
    pub(crate) documents: bool,
    /// Metadata dicts.
    pub(crate) metadatas: bool,
}

impl IncludeFlags {
    fn engine(self) -> Include {
        Include {
            embeddings: self.embeddings,
            documents: self.documents,
            metadatas: self.metadatas,
        }
    }
}

/// Paging of a `get`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Page {
    /// At most this many records.
    pub(crate) limit: Option<usize>,
    /// Skip this many first.
    pub(crate) offset: usize,
}

/// The records `ids`, `filter` and `doc` select together, paged; ordered by id when no
/// ids are given, else in the order of `ids` (repeated ids once).
pub(crate) fn select(
    snap: &Snapshot,
    ids: Option<&[String]>,
    filter: Option<&Filter>,
    doc: Option<&DocFilter>,
    include: Include,
    page: Page,
) -> BindResult<Vec<RecordOut>> {
    let need = Include {
        embeddings: include.embeddings,
        documents: include.documents || doc.is_some(),
        metadatas: include.metadatas || (ids.is_some() && filter.is_some()),
    };
    let mut recs = match ids {
        Some(ids) => {
            let mut seen = HashSet::with_capacity(ids.len());
            let unique: Vec<String> = ids
                .iter()
                .filter(|id| seen.insert(id.as_str()))
                .cloned()
                .collect();
            let mut recs = snap.get(&unique, need)?;
            if let Some(f) = filter {
                let empty = Metadata::new();
                recs.retain(|r| f.matches(r.metadata.as_ref().unwrap_or(&empty)));
            }
            recs
        }
        None if doc.is_none() => {
            return Ok(snap.get_where(filter, page.limit, page.offset, include)?);
        }
        None => snap.get_where(filter, None, 0, need)?,
    };
    if let Some(d) = doc {
        recs.retain(|r| d.matches(r.document.as_deref()));
    }
    let mut recs: Vec<RecordOut> = recs
        .into_iter()
        .skip(page.offset)
        .take(page.limit.unwrap_or(usize::MAX))
        .collect();
    for r in &mut recs {
        if !include.documents {
            r.document = None;
        }
        if !include.metadatas {
            r.metadata = None;
        }
    }
    Ok(recs)
}

/// The columns of a read, ready to become Python objects.
pub(crate) struct GetOut {
    ids: Vec<String>,
    embeddings: Vec<Option<Vec<f32>>>,
    documents: Vec<Option<String>>,
    metadatas: Vec<Option<Metadata>>,
    dims: usize,
}

impl GetOut {
    fn from_records(recs: Vec<RecordOut>, dims: usize) -> GetOut {
        let mut out = GetOut {
            ids: Vec::with_capacity(recs.len()),
            embeddings: Vec::with_capacity(recs.len()),
            documents: Vec::with_capacity(recs.len()),
            metadatas: Vec::with_capacity(recs.len()),
            dims,
        };
        for r in recs {
            out.ids.push(r.id);
            out.embeddings.push(r.embedding);
            out.documents.push(r.document);
            out.metadatas.push(r.metadata);
        }
        out
    }

    fn columns<'py>(
        &self,
        py: Python<'py>,
        include: IncludeFlags,
    ) -> PyResult<[Bound<'py, PyAny>; 4]> {
        let none = || py.None().into_bound(py);
        let ids = PyList::new(py, &self.ids)?.into_any();
        let emb = if include.embeddings {
            embeddings_to_py(py, &self.embeddings, self.dims)?
        } else {
            none()
        };
        let docs = if include.documents {
            PyList::new(py, &self.documents)?.into_any()
        } else {
            none()
        };
        let metas = if include.metadatas {
            let l = PyList::empty(py);
            for m in &self.metadatas {
                match m {
                    Some(m) => l.append(metadata_to_py(py, m)?)?,
                    None => l.append(py.None())?,
                }
            }
            l.into_any()
        } else {
            none()
        };
        Ok([ids, emb, docs, metas])
    }

    /// `(ids, embeddings | None, documents | None, metadatas | None)`.
    pub(crate) fn into_py(self, py: Python<'_>, include: IncludeFlags) -> PyResult<PyObject> {
        let cols = self.columns(py, include)?;
        Ok(PyTuple::new(py, cols)?.into_any().unbind())
    }
}

/// A `get`.
pub(crate) fn get(
    snap: &Snapshot,
    ids: Option<&[String]>,
    filter: Option<&Filter>,
    doc: Option<&DocFilter>,
    page: Page,
    include: IncludeFlags,
) -> BindResult<GetOut> {
    let recs = select(snap, ids, filter, doc, include.engine(), page)?;
    Ok(GetOut::from_records(recs, snap.info().dims as usize))
}

/// The arguments of a `query`.
pub(crate) struct QueryArgs<'a> {
    /// The query vectors, one per row.
    pub(crate) vectors: &'a Embeddings<'a>,
    /// Neighbours per query.
    pub(crate) k: usize,
    /// `where`.
    pub(crate) filter: Option<&'a Filter>,
    /// `where_document`.
    pub(crate) doc: Option<&'a DocFilter>,
    /// Only these ids.
    pub(crate) ids: Option<&'a [String]>,
    /// What to return.
    pub(crate) include: IncludeFlags,
    /// Skip the quantized first pass.
    pub(crate) exact: bool,
}

/// One query's results.
pub(crate) struct QueryOut {
    records: GetOut,
    distances: Vec<f32>,
}

impl QueryOut {
    fn new(recs: Vec<RecordOut>, dims: usize) -> QueryOut {
        let distances = recs
            .iter()
            .map(|r| r.distance.unwrap_or(f32::NAN))
            .collect();
        QueryOut {
            records: GetOut::from_records(recs, dims),
            distances,
        }
    }

    /// `(ids, distances, embeddings | None, documents | None, metadatas | None)`.
    pub(crate) fn into_py(self, py: Python<'_>, include: IncludeFlags) -> PyResult<PyObject> {
        let [ids, emb, docs, metas] = self.records.columns(py, include)?;
        let dist = PyList::new(py, self.distances.iter().map(|d| f64::from(*d)))?.into_any();
        Ok(PyTuple::new(py, [ids, dist, emb, docs, metas])?
            .into_any()
            .unbind())
    }
}

/// Exact scores of the records a restriction selects.
fn restricted(snap: &Snapshot, q: &QueryArgs<'_>) -> BindResult<Vec<Vec<RecordOut>>> {
    let include = Include {
        embeddings: true,
        ..q.include.engine()
    };
    let page = Page {
        limit: None,
        offset: 0,
    };
    let candidates = select(snap, q.ids, q.filter, q.doc, include, page)?;
    let metric = snap.info().metric;
    let mut out = Vec::with_capacity(q.vectors.rows);
    for i in 0..q.vectors.rows {
        let v = q.vectors.row(i);
        let mut scored: Vec<(f32, &RecordOut)> = candidates
            .iter()
            .filter_map(|r| Some((scalar_distance(metric, v, r.embedding.as_deref()?), r)))
            .collect();
        scored.sort_by(|a, b| {
            a.0.partial_cmp(&b.0)
                .unwrap_or(Ordering::Equal)
                .then_with(|| a.1.id.cmp(&b.1.id))
        });
        scored.truncate(q.k);
        out.push(
            scored
                .into_iter()
                .map(|(d, r)| RecordOut {
                    distance: Some(d),
                    embedding: r.embedding.clone().filter(|_| q.include.embeddings),
                    ..r.clone()
                })
                .collect(),
        );
    }
    Ok(out)
}

/// Above this many neighbours a query is bounded by the collection's size first.
const LARGE_K: usize = 4096;

/// A `query`: one result list per row of `vectors`.
pub(crate) fn query(snap: &Snapshot, q: &QueryArgs<'_>) -> BindResult<Vec<QueryOut>> {
    let info = snap.info();
    let dims = info.dims as usize;
    if q.k == 0 {
        return Err(BindError::Value("n_results must be at least 1".into()));
    }
    if dims == 0 {
        return Err(BindError::InvalidArgument(format!(
            "collection {:?} has no embeddings (metadata-only); it cannot be queried",
            info.name
        )));
    }
    if q.vectors.dims != dims {
        return Err(BindError::InvalidArgument(format!(
            "Collection expecting embedding with dimension of {dims}, got {}",
            q.vectors.dims
        )));
    }
    if let Some(i) = q.vectors.flat.iter().position(|x| !x.is_finite()) {
        return Err(BindError::InvalidArgument(format!(
            "query embedding {} holds a value that is not finite (element {})",
            i / dims,
            i % dims
        )));
    }
    let k = if q.k > LARGE_K {
        q.k.min(snap.rows()?.max(1))
    } else {
        q.k
    };
    let q = QueryArgs { k, ..*q };
    let lists = if q.doc.is_some() || q.ids.is_some() {
        restricted(snap, &q)?
    } else {
        let opts = SearchOptions {
            exact: q.exact,
            oversample: None,
        };
        let include = q.include.engine();
        match q.vectors.rows {
            0 => vec![],
            1 => vec![snap.query_with(
                &Query {
                    vector: q.vectors.row(0),
                    k,
                    filter: q.filter,
                    include,
                },
                &opts,
            )?],
            n => {
                let vectors: Vec<Vec<f32>> = (0..n).map(|i| q.vectors.row(i).to_vec()).collect();
                snap.query_batch(&vectors, k, q.filter, include, &opts)?
            }
        }
    };
    Ok(lists.into_iter().map(|l| QueryOut::new(l, dims)).collect())
}
