//! `chroma.sqlite3`: opening it without ever writing (a directory's file with
//! `mode=ro&immutable=1`; a tarball's bytes deserialised into a read-only in-memory
//! database), checking that it is a Chroma database, and the few typed reads the reader
//! needs (seq ids as INTEGER or legacy 8-byte big-endian BLOB).

use std::io::Read;
use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::error::{ChromaError, Result};

/// The SQLite header's first 16 bytes.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Tables (and the columns read from them) every Chroma 0.4–1.5 database has.
const REQUIRED: &[(&str, &[&str])] = &[
    ("collections", &["id", "name", "dimension"]),
    ("segments", &["id", "type", "scope", "collection"]),
    ("segment_metadata", &["segment_id", "key", "str_value"]),
    ("embeddings", &["id", "segment_id", "embedding_id"]),
    (
        "embedding_metadata",
        &[
            "id",
            "key",
            "string_value",
            "int_value",
            "float_value",
            "bool_value",
        ],
    ),
    (
        "embeddings_queue",
        &["seq_id", "operation", "topic", "id", "vector", "encoding"],
    ),
    ("max_seq_id", &["segment_id", "seq_id"]),
];

/// An open Chroma database and what its schema has.
pub(crate) struct Db {
    pub(crate) conn: Connection,
    /// How the file is named in errors.
    pub(crate) file: String,
    /// `embedding_metadata_array` exists (1.5+: list values).
    pub(crate) has_arrays: bool,
    /// `collections.schema_str` exists (1.3+).
    pub(crate) has_schema: bool,
    /// `collections.config_json_str` exists (0.5.4+).
    pub(crate) has_config: bool,
    /// `collection_metadata` exists with `str_value`.
    pub(crate) has_collection_metadata: bool,
}

fn not_chroma(file: &str, reason: impl Into<String>) -> ChromaError {
    ChromaError::NotChroma {
        file: file.to_string(),
        reason: reason.into(),
    }
}

/// `path` as a SQLite URI path (`%`, `?` and `#` escaped).
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

impl Db {
    /// Open a directory's `chroma.sqlite3` read-only and immutable. A hot journal or a WAL
    /// beside it means a writer did not finish: refused (rolling it back would write).
    pub(crate) fn open_path(path: &Path) -> Result<Db> {
        let file = path.display().to_string();
        for suffix in ["-journal", "-wal"] {
            let side = format!("{}{suffix}", path.display());
            if Path::new(&side).exists() {
                return Err(ChromaError::unsupported(
                    &file,
                    format!("{side} exists (a writer did not finish; open it with Chroma once, on a copy)"),
                ));
            }
        }
        let mut head = [0u8; 16];
        let mut f = std::fs::File::open(path).map_err(|source| ChromaError::Io {
            file: file.clone(),
            source,
        })?;
        if f.read_exact(&mut head).is_err() || &head != MAGIC {
            return Err(not_chroma(&file, "not an SQLite database"));
        }
        let uri = format!("file:{}?mode=ro&immutable=1", uri_path(path));
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(&uri, flags).map_err(|source| ChromaError::Sqlite {
                file: file.clone(),
                source,
            })?;
        Db::check(conn, file)
    }

    /// Open a database held in memory (a tarball member), read-only.
    pub(crate) fn open_bytes(file: &str, bytes: &[u8]) -> Result<Db> {
        if bytes.len() < 100 || &bytes[..16] != MAGIC {
            return Err(not_chroma(file, "not an SQLite database"));
        }
        if bytes.len() > i32::MAX as usize {
            return Err(ChromaError::Limit {
                file: file.to_string(),
                what: "an in-memory database's size",
                actual: bytes.len() as u64,
                limit: i32::MAX as u64,
            });
        }
        let sqlite = |source| ChromaError::Sqlite {
            file: file.to_string(),
            source,
        };
        let mut conn = Connection::open_in_memory().map_err(sqlite)?;
        conn.deserialize_read_exact(rusqlite::MAIN_DB, bytes, bytes.len(), true)
            .map_err(sqlite)?;
        Db::check(conn, file.to_string())
    }

    fn columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
        let rows = stmt.query_map([table], |r| r.get::<_, String>(0))?;
        rows.collect()
    }

    fn check(conn: Connection, file: String) -> Result<Db> {
        let sqlite = |source| ChromaError::Sqlite {
            file: file.clone(),
            source,
        };
        // A file that is not a database at all fails on the first read of the schema.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|e| not_chroma(&file, format!("SQLite cannot read it: {e}")))?;
        for (table, cols) in REQUIRED {
            let have = Db::columns(&conn, table).map_err(sqlite)?;
            if have.is_empty() {
                return Err(not_chroma(&file, format!("no table {table}")));
            }
            if let Some(c) = cols.iter().find(|c| !have.iter().any(|h| h == *c)) {
                return Err(not_chroma(
                    &file,
                    format!("table {table} has no column {c}"),
                ));
            }
        }
        let coll = Db::columns(&conn, "collections").map_err(sqlite)?;
        let arrays = Db::columns(&conn, "embedding_metadata_array").map_err(sqlite)?;
        let cmeta = Db::columns(&conn, "collection_metadata").map_err(sqlite)?;
        Ok(Db {
            has_arrays: !arrays.is_empty(),
            has_schema: coll.iter().any(|c| c == "schema_str"),
            has_config: coll.iter().any(|c| c == "config_json_str"),
            has_collection_metadata: cmeta.iter().any(|c| c == "str_value"),
            conn,
            file,
        })
    }

    /// A SQLite error on this database.
    pub(crate) fn err(&self, source: rusqlite::Error) -> ChromaError {
        ChromaError::Sqlite {
            file: self.file.clone(),
            source,
        }
    }

    /// The `max_seq_id` of a segment (0 when it has no row).
    pub(crate) fn max_seq_id(&self, segment: &str) -> Result<Option<u64>> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq_id FROM max_seq_id WHERE segment_id = ?1")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([segment]).map_err(|e| self.err(e))?;
        match rows.next().map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(row) => {
                let v = row.get_ref(0).map_err(|e| self.err(e))?;
                seq_value(v).map(Some).map_err(|why| {
                    not_chroma(&self.file, format!("max_seq_id of {segment}: {why}"))
                })
            }
        }
    }
}

/// A seq id as Chroma stores it: INTEGER (1.x) or an 8-byte big-endian BLOB (≤ 0.6).
pub(crate) fn seq_value(v: ValueRef<'_>) -> std::result::Result<u64, String> {
    match v {
        ValueRef::Integer(i) => u64::try_from(i).map_err(|_| format!("negative seq id {i}")),
        ValueRef::Blob(b) if b.len() == 8 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Ok(u64::from_be_bytes(a))
        }
        ValueRef::Null => Ok(0),
        other => Err(format!("a seq id of type {:?}", other.data_type())),
    }
}
