//! strata-chroma: reads Chroma persist directories — chromadb 0.5.x through 1.5.x with
//! `hnsw-local-persisted` vector segments — and their tarballs, with no Python and no
//! Chroma at run time, and never writes to them.
//!
//! A [`ChromaDir`] is opened on a directory ([`ChromaDir::open`]), on a gzip tarball held in
//! memory ([`ChromaDir::from_tar_gz`], every member checked first) or on files fetched from
//! an object prefix ([`ChromaDir::from_files`]). [`ChromaDir::collection`] checks one
//! collection (segment types, metric, dimension, the HNSW files against the pickle, the log
//! replay, every record having a vector) and [`ChromaCollection::records`] then yields every
//! live record as Chroma's `get()` returns it: embeddings bit-identical from the HNSW files
//! (cosine ones re-scaled by `length.bin`), the original f32 from the log above the vector
//! segment's `max_seq_id`, documents, typed metadata (str, int, float, bool, 1.5 lists).
//! [`ChromaRecord::into_upsert`] turns a record into a strata operation.
//!
//! The format as read is documented byte by byte in `formats/FORMAT.md` ("Chroma persist
//! directories").

mod collection;
mod db;
mod error;
pub mod hnsw;
mod metric;
pub mod pickle;
mod source;
pub mod tarball;
mod vectors;

use std::path::{Path, PathBuf};

pub use collection::{
    ChromaCollection, ChromaRecord, CollectionStats, Records, DOCUMENT_KEY, METADATA_SEGMENT,
    VECTOR_SEGMENT,
};
pub use error::{ChromaError, Result};
pub use metric::MetricSource;
pub use source::Blob;
pub use tarball::{Files, Limits};
pub use vectors::VectorSource;

use collection::CollectionRow;
use db::Db;
use source::Source;

/// The SQLite file of a persist directory.
pub const SQLITE_FILE: &str = "chroma.sqlite3";

/// A collection's name, id and dimension, as listed by [`ChromaDir::collections`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionSummary {
    /// The name.
    pub name: String,
    /// The id (a UUID).
    pub id: String,
    /// The dimension; `None` when the collection was never written.
    pub dimension: Option<usize>,
}

/// A Chroma persist directory, opened read-only.
pub struct ChromaDir {
    source: Source,
    db: Db,
}

impl std::fmt::Debug for ChromaDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChromaDir")
            .field("db", &self.db.file)
            .finish()
    }
}

impl ChromaDir {
    /// Open the persist directory at `path` (it holds `chroma.sqlite3`). Nothing in it is
    /// written: SQLite opens it read-only and immutable, segment files are only read.
    pub fn open(path: impl AsRef<Path>) -> Result<ChromaDir> {
        let dir: PathBuf = path.as_ref().to_path_buf();
        let sqlite = dir.join(SQLITE_FILE);
        if !sqlite.is_file() {
            return Err(ChromaError::Missing {
                file: sqlite.display().to_string(),
                why: "a Chroma persist directory holds it".into(),
            });
        }
        let db = Db::open_path(&sqlite)?;
        Ok(ChromaDir {
            source: Source::Dir(dir),
            db,
        })
    }

    /// Open a gzip tarball of a persist directory (archive root `.`, as the seed's
    /// producer packs it), held in memory. Every member is checked before any is used
    /// (see [`tarball`]); nothing is extracted to disk.
    pub fn from_tar_gz(bytes: &[u8], limits: &Limits) -> Result<ChromaDir> {
        ChromaDir::from_checked(tarball::read_tar_gz(bytes, limits)?)
    }

    /// Open a persist directory from files fetched separately (`chroma.sqlite3`,
    /// `<segment>/header.bin`, …; paths relative to the prefix), checked like tarball
    /// members.
    pub fn from_files(files: Vec<(String, Vec<u8>)>, limits: &Limits) -> Result<ChromaDir> {
        ChromaDir::from_checked(tarball::check_files(files, limits)?)
    }

    fn from_checked(files: Files) -> Result<ChromaDir> {
        let bytes = files.get(SQLITE_FILE).ok_or_else(|| ChromaError::Missing {
            file: SQLITE_FILE.into(),
            why: "a Chroma persist directory holds it at its root".into(),
        })?;
        for side in ["chroma.sqlite3-journal", "chroma.sqlite3-wal"] {
            if files.contains_key(side) {
                return Err(ChromaError::unsupported(
                    SQLITE_FILE,
                    format!("{side} is present (a writer did not finish)"),
                ));
            }
        }
        let db = Db::open_bytes(SQLITE_FILE, bytes)?;
        Ok(ChromaDir {
            source: Source::Memory(files),
            db,
        })
    }

    fn rows(&self) -> Result<Vec<CollectionRow>> {
        let db = &self.db;
        let sql = format!(
            "SELECT id, name, dimension, {}, {} FROM collections ORDER BY name, id",
            if db.has_config {
                "config_json_str"
            } else {
                "NULL"
            },
            if db.has_schema { "schema_str" } else { "NULL" },
        );
        let mut stmt = db.conn.prepare(&sql).map_err(|e| db.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(CollectionRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    dimension: r.get(2)?,
                    config: r.get(3)?,
                    schema: r.get(4)?,
                })
            })
            .map_err(|e| db.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| db.err(e))?;
        Ok(rows)
    }

    /// Every collection, by name.
    pub fn collections(&self) -> Result<Vec<CollectionSummary>> {
        Ok(self
            .rows()?
            .into_iter()
            .map(|r| CollectionSummary {
                name: r.name,
                id: r.id,
                dimension: r.dimension.and_then(|d| usize::try_from(d).ok()),
            })
            .collect())
    }

    /// The collection called `name`, checked and ready to read. Two collections of that
    /// name (in two Chroma databases of the file) are ambiguous and refused.
    pub fn collection(&self, name: &str) -> Result<ChromaCollection<'_>> {
        let rows = self.rows()?;
        let available: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
        let mut matching: Vec<CollectionRow> =
            rows.into_iter().filter(|r| r.name == name).collect();
        match matching.len() {
            0 => Err(ChromaError::NoSuchCollection {
                name: name.to_string(),
                available,
            }),
            1 => ChromaCollection::open(&self.db, &self.source, matching.remove(0)),
            n => Err(ChromaError::unsupported(
                name,
                format!("{n} collections of that name (in different Chroma databases)"),
            )),
        }
    }

    /// The only collection of the directory (a seed delta or snapshot holds one);
    /// refused when there are none or several.
    pub fn only_collection(&self) -> Result<ChromaCollection<'_>> {
        let names: Vec<String> = self.collections()?.into_iter().map(|c| c.name).collect();
        match names.as_slice() {
            [one] => self.collection(one),
            _ => Err(ChromaError::Unsupported {
                collection: SQLITE_FILE.into(),
                what: format!(
                    "{} collections ({names:?}); name the one to read",
                    names.len()
                ),
            }),
        }
    }

    /// Whether the directory's source holds a file at `rel` (relative path).
    pub fn has_file(&self, rel: &str) -> bool {
        self.source.exists(rel)
    }
}
