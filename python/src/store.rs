//! `Store`: one opened store as Python sees it — the writer (`read_only=False`) or a
//! reader — with the collection, read, write and maintenance calls the Python package
//! builds Chroma's API on. The reads and writes themselves are in `reads` and `writes`;
//! this module holds the Python class, its role, and the maintenance calls.

use std::path::PathBuf;
use std::sync::{Mutex, RwLock};

use numpy::PyReadonlyArray2;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use strata_engine::{
    CollectionInfo, ReadableStore, Reader, Snapshot, StoreOptions, VersionInfo, Writer,
};
use strata_formats::{Metric, Quantization};

use crate::convert::{metadatas_from_py, parse_where, Embeddings};
use crate::docfilter::parse_doc;
use crate::error::{detached, BindError, BindResult};
use crate::reads::{self, GetOut, IncludeFlags, QueryOut};
use crate::writes::{self, Mode, Rows};

/// The role a store was opened in.
pub(crate) enum Role {
    /// The one writer (both roles boxed: a writer is about twice a reader's size).
    Writer(Box<Writer>),
    /// A reader (never writes; works beside a writer in another process).
    Reader(Box<Reader>),
}

impl Role {
    /// The head snapshot of a collection.
    pub(crate) fn snapshot(&self, collection: &str) -> BindResult<Snapshot> {
        Ok(match self {
            Role::Writer(w) => w.snapshot(collection)?,
            Role::Reader(r) => r.snapshot(collection)?,
        })
    }

    fn collections(&self) -> BindResult<Vec<CollectionInfo>> {
        Ok(match self {
            Role::Writer(w) => w.collections()?,
            Role::Reader(r) => r.collections()?,
        })
    }

    fn versions(&self, collection: &str) -> BindResult<Vec<VersionInfo>> {
        Ok(match self {
            Role::Writer(w) => w.versions(collection)?,
            Role::Reader(r) => r.versions(collection)?,
        })
    }

    /// The writer, or `ReadOnlyError` naming the call.
    pub(crate) fn writer(&self, what: &'static str) -> BindResult<&Writer> {
        match self {
            Role::Writer(w) => Ok(w),
            Role::Reader(_) => Err(BindError::ReadOnly(what)),
        }
    }
}

/// A collection as `Store.collections` lists it: name, dims, metric, quantization,
/// creation time (ms).
type CollectionRow = (String, u32, String, String, u64);

/// An opened strata store (the native object behind `strata.PersistentClient`).
#[pyclass(module = "strata._strata", frozen)]
pub struct Store {
    /// `None` once closed.
    role: RwLock<Option<Role>>,
    /// Held across the read-modify-write of Chroma's `add`, `upsert` and `update`.
    rmw: Mutex<()>,
    /// The store's directory.
    path: PathBuf,
}

fn metric_of(name: &str) -> BindResult<Metric> {
    match name {
        "l2" => Ok(Metric::L2),
        "cosine" => Ok(Metric::Cosine),
        "ip" => Ok(Metric::Ip),
        other => Err(BindError::InvalidArgument(format!(
            "unknown distance {other:?}; expected one of l2, cosine, ip"
        ))),
    }
}

fn quantization_of(name: &str) -> BindResult<Quantization> {
    match name {
        "none" => Ok(Quantization::None),
        "i8" => Ok(Quantization::I8),
        "1bit" => Ok(Quantization::Bit),
        other => Err(BindError::InvalidArgument(format!(
            "unknown quantization {other:?}; expected one of none, i8, 1bit"
        ))),
    }
}

fn version_dict<'py>(py: Python<'py>, v: &VersionInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("version", v.version)?;
    d.set_item("parent", v.parent)?;
    d.set_item("created_ms", v.created_ms)?;
    d.set_item("writer_epoch", v.writer_epoch)?;
    d.set_item("rows", v.rows)?;
    d.set_item("bytes", v.bytes)?;
    d.set_item("segments", v.segments)?;
    d.set_item("deltas", v.deltas)?;
    d.set_item("head", v.head)?;
    d.set_item("pinned", v.pinned)?;
    d.set_item("note", &v.note)?;
    Ok(d)
}

fn verify_dict<'py>(
    py: Python<'py>,
    r: &strata_engine::VerifyReport,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("ok", r.ok())?;
    d.set_item("files", r.files)?;
    d.set_item("bytes", r.bytes)?;
    let problems = PyList::empty(py);
    for p in &r.problems {
        problems.append((p.path.display().to_string(), &p.what))?;
    }
    d.set_item("problems", problems)?;
    Ok(d)
}

/// Check every file of a store (no writer needed): `{"ok", "files", "bytes", "problems":
/// [(path, what), ...]}`.
#[pyfunction]
pub fn verify(py: Python<'_>, path: PathBuf) -> PyResult<Py<PyDict>> {
    let report = detached(py, || Ok(strata_engine::verify_store(&path)?))?;
    Ok(verify_dict(py, &report)?.unbind())
}

impl Store {
    /// Run `f` on the role with the GIL released.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&Role) -> BindResult<T> + Send,
    ) -> PyResult<T> {
        detached(py, || {
            let guard = self.role.read().map_err(|_| BindError::Closed)?;
            match guard.as_ref() {
                Some(role) => f(role),
                None => Err(BindError::Closed),
            }
        })
    }
}

#[pymethods]
impl Store {
    /// Open the store at `path`: as the writer (creating it if missing), or with
    /// `read_only=True` as a reader, which works while another process is the writer.
    #[new]
    #[pyo3(signature = (path, read_only = false, verify_on_open = true, holder = None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        read_only: bool,
        verify_on_open: bool,
        holder: Option<String>,
    ) -> PyResult<Store> {
        let p = path.clone();
        let role = detached(py, move || {
            Ok(if read_only {
                Role::Reader(Box::new(Reader::open_with(&p, verify_on_open)?))
            } else {
                let mut options = StoreOptions {
                    verify_on_open,
                    ..StoreOptions::default()
                };
                if let Some(h) = holder {
                    options.holder = h;
                }
                Role::Writer(Box::new(Writer::open(&p, options)?))
            })
        })?;
        Ok(Store {
            role: RwLock::new(Some(role)),
            rmw: Mutex::new(()),
            path,
        })
    }

    /// The store's directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Whether this store was opened read-only.
    #[getter]
    fn read_only(&self) -> bool {
        matches!(
            self.role.read().ok().as_deref(),
            Some(Some(Role::Reader(_)))
        )
    }

    /// Close the store (the writer releases its lease); later calls raise.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        detached(py, || {
            let role = self.role.write().map_err(|_| BindError::Closed)?.take();
            if let Some(Role::Writer(w)) = role {
                w.close()?;
            }
            Ok(())
        })
    }

    /// Every collection: `[(name, dims, metric, quantization, created_ms), ...]`.
    fn collections(&self, py: Python<'_>) -> PyResult<Vec<CollectionRow>> {
        self.with(py, |r| {
            Ok(r.collections()?
                .into_iter()
                .map(|c| {
                    (
                        c.name,
                        c.dims,
                        c.metric.name().to_string(),
                        c.quantization.name().to_string(),
                        c.created_ms,
                    )
                })
                .collect())
        })
    }

    /// Create a collection of `dims` dimensions (0: metadata-only).
    #[pyo3(signature = (name, dims, metric = "l2", quantization = "none"))]
    fn create_collection(
        &self,
        py: Python<'_>,
        name: &str,
        dims: u32,
        metric: &str,
        quantization: &str,
    ) -> PyResult<()> {
        let metric = metric_of(metric).map_err(|e| e.into_py(py))?;
        let quantization = quantization_of(quantization).map_err(|e| e.into_py(py))?;
        self.with(py, |r| {
            r.writer("create_collection")?
                .create_collection(name, dims, metric, quantization)?;
            Ok(())
        })
    }

    /// Drop a collection (its files go at the next `gc`).
    fn drop_collection(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        self.with(py, |r| {
            Ok(r.writer("drop_collection")?.drop_collection(name)?)
        })
    }

    /// Write records in Chroma's terms: `mode` is `add` (ids that exist are left alone),
    /// `upsert` (existing records are updated, others added) or `update` (existing records
    /// only; a `None` metadata value deletes the key). Returns the number of records
    /// written.
    #[pyo3(signature = (collection, mode, ids, embeddings = None, documents = None, metadatas = None))]
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        py: Python<'_>,
        collection: &str,
        mode: &str,
        ids: Vec<String>,
        embeddings: Option<PyReadonlyArray2<'_, f32>>,
        documents: Option<Vec<Option<String>>>,
        metadatas: Option<Vec<Option<Bound<'_, PyAny>>>>,
    ) -> PyResult<usize> {
        let mode = Mode::parse(mode).map_err(|e| e.into_py(py))?;
        let metadatas =
            metadatas_from_py(metadatas, mode != Mode::Add).map_err(|e| e.into_py(py))?;
        let embeddings = embeddings
            .as_ref()
            .map(Embeddings::borrow)
            .transpose()
            .map_err(|e| e.into_py(py))?;
        let rows = Rows::new(ids, embeddings, documents, metadatas).map_err(|e| e.into_py(py))?;
        self.with(py, |r| {
            let w = r.writer("writing")?;
            let _g = self.rmw.lock().map_err(|_| BindError::Closed)?;
            writes::write(w, collection, mode, &rows)
        })
    }

    /// Delete the records that `ids` names and `where` / `where_document` select (JSON
    /// texts); returns how many were deleted.
    #[pyo3(signature = (collection, ids = None, r#where = None, where_document = None))]
    fn delete(
        &self,
        py: Python<'_>,
        collection: &str,
        ids: Option<Vec<String>>,
        r#where: Option<&str>,
        where_document: Option<&str>,
    ) -> PyResult<usize> {
        let filter = parse_where(r#where).map_err(|e| e.into_py(py))?;
        let doc = parse_doc(where_document).map_err(|e| e.into_py(py))?;
        self.with(py, |r| {
            let w = r.writer("delete")?;
            let _g = self.rmw.lock().map_err(|_| BindError::Closed)?;
            writes::delete(w, collection, ids.as_deref(), filter.as_ref(), doc.as_ref())
        })
    }

    /// Records by ids and/or filters, ordered by id when no ids are given:
    /// `(ids, embeddings | None, documents | None, metadatas | None)`.
    #[pyo3(signature = (collection, ids = None, r#where = None, where_document = None, limit = None, offset = 0, embeddings = false, documents = true, metadatas = true))]
    #[allow(clippy::too_many_arguments)]
    fn get(
        &self,
        py: Python<'_>,
        collection: &str,
        ids: Option<Vec<String>>,
        r#where: Option<&str>,
        where_document: Option<&str>,
        limit: Option<usize>,
        offset: usize,
        embeddings: bool,
        documents: bool,
        metadatas: bool,
    ) -> PyResult<PyObject> {
        let filter = parse_where(r#where).map_err(|e| e.into_py(py))?;
        let doc = parse_doc(where_document).map_err(|e| e.into_py(py))?;
        let include = IncludeFlags {
            embeddings,
            documents,
            metadatas,
        };
        let out: GetOut = self.with(py, |r| {
            let snap = r.snapshot(collection)?;
            let page = reads::Page { limit, offset };
            reads::get(
                &snap,
                ids.as_deref(),
                filter.as_ref(),
                doc.as_ref(),
                page,
                include,
            )
        })?;
        out.into_py(py, include)
    }

    /// Number of records.
    fn count(&self, py: Python<'_>, collection: &str) -> PyResult<usize> {
        self.with(py, |r| Ok(r.snapshot(collection)?.rows()?))
    }

    /// The `n_results` nearest records to each row of `queries` (a float32 `(n, dims)`
    /// array): one `(ids, distances, embeddings | None, documents | None, metadatas |
    /// None)` per query. `exact` skips the quantized first pass.
    #[pyo3(signature = (collection, queries, n_results, r#where = None, where_document = None, ids = None, embeddings = false, documents = true, metadatas = true, exact = false))]
    #[allow(clippy::too_many_arguments)]
    fn query(
        &self,
        py: Python<'_>,
        collection: &str,
        queries: PyReadonlyArray2<'_, f32>,
        n_results: usize,
        r#where: Option<&str>,
        where_document: Option<&str>,
        ids: Option<Vec<String>>,
        embeddings: bool,
        documents: bool,
        metadatas: bool,
        exact: bool,
    ) -> PyResult<Vec<PyObject>> {
        let filter = parse_where(r#where).map_err(|e| e.into_py(py))?;
        let doc = parse_doc(where_document).map_err(|e| e.into_py(py))?;
        let vectors = Embeddings::borrow(&queries).map_err(|e| e.into_py(py))?;
        let include = IncludeFlags {
            embeddings,
            documents,
            metadatas,
        };
        let out: Vec<QueryOut> = self.with(py, |r| {
            let snap = r.snapshot(collection)?;
            let q = reads::QueryArgs {
                vectors: &vectors,
                k: n_results,
                filter: filter.as_ref(),
                doc: doc.as_ref(),
                ids: ids.as_deref(),
                include,
                exact,
            };
            reads::query(&snap, &q)
        })?;
        out.into_iter().map(|o| o.into_py(py, include)).collect()
    }

    /// Dimensions of a collection (0 when metadata-only).
    fn dims(&self, py: Python<'_>, collection: &str) -> PyResult<u32> {
        self.with(py, |r| Ok(r.snapshot(collection)?.info().dims))
    }

    /// Retained versions of a collection, newest first (dicts).
    fn versions(&self, py: Python<'_>, collection: &str) -> PyResult<Vec<Py<PyDict>>> {
        let vs = self.with(py, |r| r.versions(collection))?;
        vs.iter()
            .map(|v| version_dict(py, v).map(Bound::unbind))
            .collect()
    }

    /// The head version of a collection.
    fn head(&self, py: Python<'_>, collection: &str) -> PyResult<u64> {
        self.with(py, |r| Ok(r.snapshot(collection)?.version().version))
    }

    /// Make a retained version the head again (as a new version); returns it.
    fn rollback(&self, py: Python<'_>, collection: &str, version: u64) -> PyResult<Py<PyDict>> {
        let v = self.with(py, |r| {
            Ok(r.writer("rollback")?.rollback(collection, version)?)
        })?;
        Ok(version_dict(py, &v)?.unbind())
    }

    /// Pin a version: retention and GC keep it until it is unpinned.
    fn pin(&self, py: Python<'_>, collection: &str, version: u64) -> PyResult<()> {
        self.with(py, |r| Ok(r.writer("pin")?.pin(collection, version)?))
    }

    /// Unpin a version.
    fn unpin(&self, py: Python<'_>, collection: &str, version: u64) -> PyResult<()> {
        self.with(py, |r| Ok(r.writer("unpin")?.unpin(collection, version)?))
    }

    /// Pinned versions of a collection.
    fn pins(&self, py: Python<'_>, collection: &str) -> PyResult<Vec<u64>> {
        self.with(py, |r| {
            Ok(match r {
                Role::Writer(w) => w
                    .versions(collection)?
                    .into_iter()
                    .filter(|v| v.pinned)
                    .map(|v| v.version)
                    .collect(),
                Role::Reader(rd) => rd.pins(collection)?.into_iter().collect(),
            })
        })
    }

    /// Compact a collection now (`full`) or only if the policy says so.
    #[pyo3(signature = (collection, full = true))]
    fn compact(&self, py: Python<'_>, collection: &str, full: bool) -> PyResult<Py<PyDict>> {
        let report = self.with(py, |r| {
            let w = r.writer("compact")?;
            Ok(if full {
                Some(w.compact(collection)?)
            } else {
                w.maybe_compact(collection)?
            })
        })?;
        let d = PyDict::new(py);
        if let Some(r) = report {
            d.set_item("version", r.version)?;
            d.set_item("deltas_folded", r.deltas_folded)?;
            d.set_item("segments_in", r.segments_in)?;
            d.set_item("segments_out", r.segments_out)?;
            d.set_item("rows_out", r.rows_out)?;
            d.set_item("bytes_in", r.bytes_in)?;
            d.set_item("bytes_out", r.bytes_out)?;
        } else {
            d.set_item("version", py.None())?;
        }
        Ok(d.unbind())
    }

    /// Retention and garbage collection of unreferenced files.
    fn gc(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        let r = self.with(py, |r| Ok(r.writer("gc")?.gc()?))?;
        let d = PyDict::new(py);
        d.set_item("versions_dropped", r.versions_dropped)?;
        d.set_item("files_deleted", r.files_deleted)?;
        d.set_item("bytes_freed", r.bytes_freed)?;
        d.set_item("files_in_grace", r.files_in_grace)?;
        Ok(d.unbind())
    }

    /// Register the producers' sealed deltas waiting in the store's inbox.
    fn ingest_inbox(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        let r = self.with(py, |r| Ok(r.writer("ingest_inbox")?.ingest_inbox()?))?;
        let d = PyDict::new(py);
        d.set_item("ingested", r.ingested)?;
        d.set_item("already", r.already)?;
        d.set_item("torn", r.torn)?;
        d.set_item("failed", r.failed)?;
        Ok(d.unbind())
    }

    /// Check every file of the store: `{"ok", "files", "bytes", "problems"}`.
    fn verify(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        verify(py, self.path.clone())
    }
}
