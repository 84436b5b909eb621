//! One Chroma collection: its segments, metric and dimension, and its live records in
//! Chroma's `get()` order (`ORDER BY embeddings.id`), read page by page from the METADATA
//! segment (documents, scalar metadata, 1.5 list metadata) and joined with the vectors.

use std::collections::VecDeque;

use rusqlite::types::ValueRef;
use strata_formats::{MetaValue, Metadata, Metric, Operation, Record, Scalar, Seq};

use crate::db::{seq_value, Db};
use crate::error::{ChromaError, Result};
use crate::metric::{resolve, MetricSource};
use crate::source::Source;
use crate::vectors::{VectorSegment, VectorSource, Vectors};

/// The METADATA segment type read.
pub const METADATA_SEGMENT: &str = "urn:chroma:segment/metadata/sqlite";
/// The VECTOR segment type read (everything else, e.g. SPANN, is refused).
pub const VECTOR_SEGMENT: &str = "urn:chroma:segment/vector/hnsw-local-persisted";
/// The metadata key that holds a record's document.
pub const DOCUMENT_KEY: &str = "chroma:document";
/// Records read per page.
const PAGE: i64 = 1000;

/// One live record, as Chroma's `get(include=["embeddings", "documents", "metadatas"])`
/// returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChromaRecord {
    /// The user id.
    pub id: String,
    /// The embedding (`dimension` f32).
    pub embedding: Vec<f32>,
    /// The document.
    pub document: Option<String>,
    /// The metadata, with its types (empty when Chroma returns `None`).
    pub metadata: Metadata,
    /// Where the embedding was read.
    pub vector_source: VectorSource,
    /// The Chroma log seq of the last operation applied to the record
    /// (`embeddings.seq_id`): its position in the source's own order.
    pub seq: u64,
}

impl ChromaRecord {
    /// The strata record.
    pub fn into_record(self) -> Record {
        Record {
            id: self.id,
            embedding: Some(self.embedding),
            document: self.document,
            metadata: self.metadata,
        }
    }

    /// The strata upsert of this record at `seq` (see [`ChromaRecord::seq`] for the
    /// record's own position).
    pub fn into_upsert(self, seq: Seq) -> Operation {
        Operation::upsert(seq, self.into_record())
    }
}

/// What the reader found about a collection, besides its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionStats {
    /// Where the metric came from.
    pub metric_source: MetricSource,
    /// The METADATA segment's `max_seq_id` (0 when absent).
    pub metadata_max_seq_id: u64,
    /// The VECTOR segment's high-water mark (sqlite row or legacy pickle; 0 when nothing
    /// was persisted).
    pub vector_max_seq_id: u64,
    /// `(live, deleted)` elements of the HNSW files; `None` when never persisted.
    pub hnsw_elements: Option<(usize, u64)>,
    /// Log rows replayed above the vector high-water mark.
    pub log_rows_replayed: usize,
}

/// A collection of a persist directory, checked and ready to read.
pub struct ChromaCollection<'a> {
    db: &'a Db,
    name: String,
    id: String,
    metadata_segment: String,
    metric: Metric,
    dimension: Option<usize>,
    len: usize,
    vectors: Vectors<'a>,
    stats: CollectionStats,
}

impl std::fmt::Debug for ChromaCollection<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChromaCollection")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("metric", &self.metric)
            .field("dimension", &self.dimension)
            .field("len", &self.len)
            .finish()
    }
}

/// A row of `collections`.
pub(crate) struct CollectionRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) dimension: Option<i64>,
    pub(crate) config: Option<String>,
    pub(crate) schema: Option<String>,
}

fn one_string(db: &Db, sql: &str, args: &[&str]) -> Result<Option<String>> {
    let mut stmt = db.conn.prepare(sql).map_err(|e| db.err(e))?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(args))
        .map_err(|e| db.err(e))?;
    match rows.next().map_err(|e| db.err(e))? {
        Some(r) => r.get(0).map_err(|e| db.err(e)),
        None => Ok(None),
    }
}

/// The METADATA and VECTOR segment ids of a collection, refusing other segment types.
fn segments(db: &Db, c: &CollectionRow) -> Result<(String, String)> {
    let mut stmt = db
        .conn
        .prepare("SELECT id, type, scope FROM segments WHERE collection = ?1 ORDER BY id")
        .map_err(|e| db.err(e))?;
    let rows = stmt
        .query_map([&c.id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(|e| db.err(e))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| db.err(e))?;
    let pick = |scope: &str, kind: &str| -> Result<String> {
        let found: Vec<_> = rows.iter().filter(|r| r.2 == scope).collect();
        match found.as_slice() {
            [(id, t, _)] if t == kind => Ok(id.clone()),
            [(_, t, _)] => Err(ChromaError::unsupported(
                &c.name,
                format!("{scope} segment of type {t:?} (only {kind:?} is read)"),
            )),
            [] => Err(ChromaError::inconsistent(
                &c.name,
                format!("no {scope} segment"),
            )),
            _ => Err(ChromaError::unsupported(
                &c.name,
                format!("{} {scope} segments (one is expected)", found.len()),
            )),
        }
    };
    Ok((
        pick("METADATA", METADATA_SEGMENT)?,
        pick("VECTOR", VECTOR_SEGMENT)?,
    ))
}

/// Refuse a metadata segment behind the log (a writer stopped between the log insert and
/// the metadata apply): Chroma would replay it on open; the reader does not guess.
fn check_metadata_not_behind(db: &Db, c: &CollectionRow, md_max: u64) -> Result<()> {
    let lagging: Option<i64> = db
        .conn
        .query_row(
            "SELECT max(seq_id) FROM embeddings_queue \
             WHERE substr(topic, -length(?1) - 1) = '/' || ?1 AND operation != 4",
            [&c.id],
            |r| r.get(0),
        )
        .map_err(|e| db.err(e))?;
    if lagging.is_some_and(|m| m as u64 > md_max) {
        return Err(ChromaError::unsupported(
            &c.name,
            format!(
                "the metadata segment (max_seq_id {md_max}) is behind the log (seq {}): a writer stopped between the log and the metadata; open a copy with Chroma once to repair it",
                lagging.unwrap_or(0)
            ),
        ));
    }
    Ok(())
}

impl<'a> ChromaCollection<'a> {
    pub(crate) fn open(
        db: &'a Db,
        source: &'a Source,
        c: CollectionRow,
    ) -> Result<ChromaCollection<'a>> {
        let (md_seg, vec_seg) = segments(db, &c)?;
        let mut legacy = one_string(
            db,
            "SELECT str_value FROM segment_metadata WHERE segment_id = ?1 AND key = 'hnsw:space'",
            &[&vec_seg],
        )?;
        if legacy.is_none() && db.has_collection_metadata {
            legacy = one_string(
                db,
                "SELECT str_value FROM collection_metadata WHERE collection_id = ?1 AND key = 'hnsw:space'",
                &[&c.id],
            )?;
        }
        let (metric, metric_source) = resolve(
            &c.name,
            c.schema.as_deref(),
            c.config.as_deref(),
            legacy.as_deref(),
        )?;
        let dimension = match c.dimension {
            None => None,
            Some(d) if d > 0 && d <= crate::hnsw::MAX_DIMS as i64 => Some(d as usize),
            Some(d) => {
                return Err(ChromaError::inconsistent(&c.name, format!("dimension {d}")));
            }
        };
        let md_max = db.max_seq_id(&md_seg)?.unwrap_or(0);
        let len: i64 = db
            .conn
            .query_row(
                "SELECT count(*) FROM embeddings WHERE segment_id = ?1",
                [&md_seg],
                |r| r.get(0),
            )
            .map_err(|e| db.err(e))?;
        let len = len as usize;
        check_metadata_not_behind(db, &c, md_max)?;
        let vec_max_row = db.max_seq_id(&vec_seg)?;
        let vectors = match dimension {
            Some(dims) => {
                let seg = VectorSegment {
                    collection: &c.name,
                    collection_id: &c.id,
                    segment: &vec_seg,
                    dims,
                    cosine: metric == Metric::Cosine,
                };
                Vectors::load(source, db, &seg, vec_max_row)?
            }
            None => {
                if len > 0 {
                    return Err(ChromaError::inconsistent(
                        &c.name,
                        format!("{len} records but no dimension"),
                    ));
                }
                Vectors::empty()
            }
        };
        let stats = CollectionStats {
            metric_source,
            metadata_max_seq_id: md_max,
            vector_max_seq_id: vectors.vec_max,
            hnsw_elements: vectors.hnsw_elements(),
            log_rows_replayed: vectors.replayed,
        };
        let coll = ChromaCollection {
            db,
            name: c.name,
            id: c.id,
            metadata_segment: md_seg,
            metric,
            dimension,
            len,
            vectors,
            stats,
        };
        coll.check_ids()?;
        Ok(coll)
    }

    /// Every record has a vector and there are as many vectors as records (so the two
    /// id sets are equal: embedding ids are unique per segment).
    fn check_ids(&self) -> Result<()> {
        if self.vectors.live != self.len {
            return Err(ChromaError::inconsistent(
                &self.name,
                format!(
                    "{} records in the metadata segment but {} live vectors",
                    self.len, self.vectors.live
                ),
            ));
        }
        let mut stmt = self
            .db
            .conn
            .prepare("SELECT embedding_id FROM embeddings WHERE segment_id = ?1")
            .map_err(|e| self.db.err(e))?;
        let mut rows = stmt
            .query([&self.metadata_segment])
            .map_err(|e| self.db.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.db.err(e))? {
            let id: String = row.get(0).map_err(|e| self.db.err(e))?;
            if !self.vectors.has(&id) {
                return Err(ChromaError::inconsistent(
                    &self.name,
                    format!("record {id:?} has no vector"),
                ));
            }
        }
        Ok(())
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The collection's id (a UUID).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The distance metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The vector dimension; `None` for a collection that was never written.
    pub fn dimension(&self) -> Option<usize> {
        self.dimension
    }

    /// The number of live records.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the collection has no live record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the metric came from, the high-water marks, the HNSW element counts.
    pub fn stats(&self) -> &CollectionStats {
        &self.stats
    }

    /// Every live record, in Chroma's `get()` order.
    pub fn records(&self) -> Records<'_, 'a> {
        Records {
            coll: self,
            after: i64::MIN,
            page: VecDeque::new(),
            done: false,
        }
    }
}

/// The live records of a collection, page by page ([`ChromaCollection::records`]).
pub struct Records<'c, 'a> {
    coll: &'c ChromaCollection<'a>,
    after: i64,
    page: VecDeque<ChromaRecord>,
    done: bool,
}

impl std::fmt::Debug for Records<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("after", &self.after)
            .finish()
    }
}

/// A metadata row's value: the first non-NULL of string, int, float, bool (Chroma's order).
fn scalar(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Option<Scalar>> {
    for (i, kind) in (first..first + 4).zip(0..) {
        match (kind, row.get_ref(i)?) {
            (_, ValueRef::Null) => continue,
            (0, ValueRef::Text(t)) => {
                return Ok(Some(Scalar::Str(String::from_utf8_lossy(t).into_owned())))
            }
            (1, ValueRef::Integer(v)) => return Ok(Some(Scalar::Int(v))),
            (2, ValueRef::Real(v)) => return Ok(Some(Scalar::Float(v))),
            (2, ValueRef::Integer(v)) => return Ok(Some(Scalar::Float(v as f64))),
            (3, ValueRef::Integer(v)) => return Ok(Some(Scalar::Bool(v != 0))),
            (_, other) => {
                return Err(rusqlite::Error::InvalidColumnType(
                    i,
                    format!("metadata value column {i}"),
                    other.data_type(),
                ))
            }
        }
    }
    Ok(None)
}

impl Records<'_, '_> {
    fn fill(&mut self) -> Result<()> {
        let c = self.coll;
        let db = c.db;
        let err = |e| db.err(e);
        let mut stmt = db
            .conn
            .prepare("SELECT id, embedding_id, seq_id FROM embeddings NOT INDEXED WHERE id > ?2 AND segment_id = ?1 ORDER BY id LIMIT ?3")
            .map_err(err)?;
        let mut ids: Vec<(i64, String)> = Vec::new();
        let mut seqs: Vec<u64> = Vec::new();
        let mut rows = stmt
            .query(rusqlite::params![c.metadata_segment, self.after, PAGE])
            .map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            let id: String = r.get(1).map_err(err)?;
            let seq = seq_value(r.get_ref(2).map_err(err)?).map_err(|why| {
                ChromaError::inconsistent(&c.name, format!("embeddings.seq_id of {id:?}: {why}"))
            })?;
            ids.push((r.get(0).map_err(err)?, id));
            seqs.push(seq);
        }
        drop(rows);
        let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
            self.done = true;
            return Ok(());
        };
        let (lo, hi) = (first.0, last.0);
        self.after = hi;
        let mut docs: Vec<Option<String>> = vec![None; ids.len()];
        let mut metas: Vec<Metadata> = vec![Metadata::new(); ids.len()];
        let pos = |id: i64| ids.binary_search_by_key(&id, |x| x.0).ok();
        let mut stmt = db
            .conn
            .prepare(
                // By primary-key range only: rows of other segments in the range are dropped
                // below (their ids are not in the page).
                "SELECT id, key, string_value, int_value, float_value, bool_value \
                 FROM embedding_metadata WHERE id BETWEEN ?1 AND ?2",
            )
            .map_err(err)?;
        let mut rows = stmt.query(rusqlite::params![lo, hi]).map_err(err)?;
        while let Some(row) = rows.next().map_err(err)? {
            let Some(i) = pos(row.get(0).map_err(err)?) else {
                continue;
            };
            let key: String = row.get(1).map_err(err)?;
            let Some(value) = scalar(row, 2).map_err(err)? else {
                continue;
            };
            match (key.as_str(), value) {
                (DOCUMENT_KEY, Scalar::Str(d)) => docs[i] = Some(d),
                (k, _) if k.starts_with("chroma:") => {}
                (_, v) => {
                    metas[i].insert(key, v.into());
                }
            }
        }
        if db.has_arrays {
            self.arrays(&ids, lo, hi, &mut metas)?;
        }
        let mut vector = Vec::new();
        for ((((_, id), document), metadata), seq) in ids.into_iter().zip(docs).zip(metas).zip(seqs)
        {
            let source = c.vectors.get(&id, &mut vector)?.ok_or_else(|| {
                ChromaError::inconsistent(&c.name, format!("record {id:?} has no vector"))
            })?;
            self.page.push_back(ChromaRecord {
                id,
                embedding: std::mem::take(&mut vector),
                document,
                metadata,
                vector_source: source,
                seq,
            });
        }
        Ok(())
    }

    /// List values (1.5+): one row per element, in rowid order within `(id, key)`.
    fn arrays(
        &self,
        ids: &[(i64, String)],
        lo: i64,
        hi: i64,
        metas: &mut [Metadata],
    ) -> Result<()> {
        let c = self.coll;
        let db = c.db;
        let err = |e| db.err(e);
        let mut stmt = db
            .conn
            .prepare(
                "SELECT id, key, string_value, int_value, float_value, bool_value \
                 FROM embedding_metadata_array WHERE id BETWEEN ?1 AND ?2 ORDER BY id, key, rowid",
            )
            .map_err(err)?;
        let mut rows = stmt.query(rusqlite::params![lo, hi]).map_err(err)?;
        let mut current: Option<(i64, String, Vec<Scalar>)> = None;
        let flush =
            |cur: Option<(i64, String, Vec<Scalar>)>, metas: &mut [Metadata]| -> Result<()> {
                if let Some((id, key, items)) = cur {
                    let Ok(i) = ids.binary_search_by_key(&id, |x| x.0) else {
                        return Ok(());
                    };
                    let value = MetaValue::from_scalars(items).map_err(|e| {
                        ChromaError::inconsistent(
                            &c.name,
                            format!("list metadata {key:?} of {:?}: {e}", ids[i].1),
                        )
                    })?;
                    metas[i].insert(key, value);
                }
                Ok(())
            };
        while let Some(row) = rows.next().map_err(err)? {
            let id: i64 = row.get(0).map_err(err)?;
            let key: String = row.get(1).map_err(err)?;
            let Some(value) = scalar(row, 2).map_err(err)? else {
                continue;
            };
            match &mut current {
                Some((cid, ckey, items)) if *cid == id && *ckey == key => items.push(value),
                _ => {
                    flush(current.take(), metas)?;
                    current = Some((id, key, vec![value]));
                }
            }
        }
        flush(current, metas)
    }
}

impl Iterator for Records<'_, '_> {
    type Item = Result<ChromaRecord>;

    fn next(&mut self) -> Option<Result<ChromaRecord>> {
        if self.page.is_empty() && !self.done {
            if let Err(e) = self.fill() {
                self.done = true;
                return Some(Err(e));
            }
        }
        self.page.pop_front().map(Ok)
    }
}
