//! Chroma's writes on strata operations. `add` writes only ids that do not exist yet (as
//! Chroma does); `upsert` adds new ids and updates existing ones; `update` touches existing
//! ids only. An update that changes only metadata is a strata `Patch` (keys not named
//! survive, `None` deletes a key); one that changes an embedding or a document rewrites
//! the record with the rest kept. `delete` by `where` alone is one filter operation; with
//! ids or `where_document` the matching ids are resolved first.

use std::collections::HashMap;

use strata_engine::{Include, ReadableStore, RecordOut, Writer};
use strata_formats::{Filter, Op, Patch, Record, Target};

use crate::convert::{Embeddings, MetaIn};
use crate::docfilter::DocFilter;
use crate::error::{BindError, BindResult};
use crate::reads::{select, Page};

/// Which of Chroma's writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `add`: new ids only.
    Add,
    /// `upsert`: new ids added, existing ones updated.
    Upsert,
    /// `update`: existing ids only.
    Update,
}

impl Mode {
    /// From the Python side's name.
    pub(crate) fn parse(name: &str) -> BindResult<Mode> {
        match name {
            "add" => Ok(Mode::Add),
            "upsert" => Ok(Mode::Upsert),
            "update" => Ok(Mode::Update),
            other => Err(BindError::Value(format!(
                "unknown write mode {other:?}; expected add, upsert or update"
            ))),
        }
    }
}

/// The rows of a write, their columns checked to be as long as `ids`.
pub(crate) struct Rows<'a> {
    ids: Vec<String>,
    embeddings: Option<Embeddings<'a>>,
    documents: Option<Vec<Option<String>>>,
    metadatas: Option<Vec<Option<MetaIn>>>,
}

fn check_len(what: &str, n: usize, ids: usize) -> BindResult<()> {
    if n == ids {
        Ok(())
    } else {
        Err(BindError::Value(format!(
            "unequal lengths: {ids} ids but {n} {what}"
        )))
    }
}

impl<'a> Rows<'a> {
    /// Rows from their columns.
    pub(crate) fn new(
        ids: Vec<String>,
        embeddings: Option<Embeddings<'a>>,
        documents: Option<Vec<Option<String>>>,
        metadatas: Option<Vec<Option<MetaIn>>>,
    ) -> BindResult<Rows<'a>> {
        if let Some(e) = &embeddings {
            check_len("embeddings", e.rows, ids.len())?;
        }
        if let Some(d) = &documents {
            check_len("documents", d.len(), ids.len())?;
        }
        if let Some(m) = &metadatas {
            check_len("metadatas", m.len(), ids.len())?;
        }
        if let Some(i) = ids.iter().position(|id| id.is_empty()) {
            return Err(BindError::InvalidArgument(format!(
                "id {i} is empty; ids must have at least one character"
            )));
        }
        Ok(Rows {
            ids,
            embeddings,
            documents,
            metadatas,
        })
    }
}

/// An existing record with an update applied.
fn merged(
    old: &RecordOut,
    embedding: Option<Vec<f32>>,
    document: Option<String>,
    meta: Option<&MetaIn>,
) -> Record {
    let mut metadata = old.metadata.clone().unwrap_or_default();
    if let Some(m) = meta {
        for k in &m.unset {
            metadata.remove(k);
        }
        metadata.extend(m.set.clone());
    }
    Record {
        id: old.id.clone(),
        embedding: embedding.or_else(|| old.embedding.clone()),
        document: document.or_else(|| old.document.clone()),
        metadata,
    }
}

/// Apply one of Chroma's writes as one strata write; returns the records written.
pub(crate) fn write(
    w: &Writer,
    collection: &str,
    mode: Mode,
    rows: &Rows<'_>,
) -> BindResult<usize> {
    let snap = w.snapshot(collection)?;
    let dims = snap.info().dims as usize;
    if let Some(e) = &rows.embeddings {
        if e.dims != dims && !rows.ids.is_empty() {
            return Err(BindError::InvalidArgument(format!(
                "Collection expecting embedding with dimension of {dims}, got {}",
                e.dims
            )));
        }
    }
    let include = if mode == Mode::Add {
        Include::ids()
    } else {
        Include::all()
    };
    let existing: HashMap<String, RecordOut> = snap
        .get(&rows.ids, include)?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let mut ops = Vec::with_capacity(rows.ids.len());
    for (i, id) in rows.ids.iter().enumerate() {
        let embedding = rows.embeddings.as_ref().map(|e| e.row(i).to_vec());
        let document = rows.documents.as_ref().and_then(|d| d[i].clone());
        let meta = rows.metadatas.as_ref().and_then(|m| m[i].as_ref());
        match (mode, existing.get(id)) {
            (Mode::Add, Some(_)) | (Mode::Update, None) => {}
            (_, None) => ops.push(Op::Upsert(Record {
                id: id.clone(),
                embedding,
                document,
                metadata: meta.map(|m| m.set.clone()).unwrap_or_default(),
            })),
            (_, Some(_)) if embedding.is_none() && document.is_none() => {
                if let Some(m) = meta.filter(|m| !m.set.is_empty() || !m.unset.is_empty()) {
                    ops.push(Op::Patch(Patch {
                        target: Target::Id(id.clone()),
                        set: m.set.clone(),
                        unset: m.unset.clone(),
                    }));
                }
            }
            (_, Some(old)) => ops.push(Op::Upsert(merged(old, embedding, document, meta))),
        }
    }
    let n = ops.len();
    if n > 0 {
        w.write(collection, ops)?;
    }
    Ok(n)
}

/// Delete what `ids`, `filter` and `doc` select together; returns how many records.
pub(crate) fn delete(
    w: &Writer,
    collection: &str,
    ids: Option<&[String]>,
    filter: Option<&Filter>,
    doc: Option<&DocFilter>,
) -> BindResult<usize> {
    let snap = w.snapshot(collection)?;
    if ids.is_none() && doc.is_none() {
        let Some(filter) = filter else {
            return Err(BindError::Value(
                "delete needs ids, where or where_document".into(),
            ));
        };
        let n = snap.count(Some(filter))?;
        w.write(collection, vec![Op::Delete(Target::Where(filter.clone()))])?;
        return Ok(n);
    }
    let page = Page {
        limit: None,
        offset: 0,
    };
    let found: Vec<String> = select(&snap, ids, filter, doc, Include::ids(), page)?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let n = found.len();
    if n > 0 {
        w.write(collection, vec![Op::Delete(Target::Ids(found))])?;
    }
    Ok(n)
}
