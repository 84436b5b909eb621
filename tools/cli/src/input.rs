//! Input parsing: JSON lines of records and of patches, id lists, metadata lines, query
//! vectors, `where` filters, and `.npy` arrays (format versions 1 to 3, little-endian
//! float32 or float64, C or Fortran order).
//!
//! Every error names the file, the line (or row and column) and what is wrong. Nothing is
//! allocated beyond what the input holds: a `.npy` header that claims more data than its
//! file has is rejected before any allocation.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::{Map, Value as Json};
use strata_formats::value::metadata_from_json;
use strata_formats::{Filter, Metadata, Patch, Record, Target};

use crate::error::{CliError, CliResult, Context};
use crate::progress;

/// The kind of a JSON value, for error messages ("expected a string, found number").
pub fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "list",
        Json::Object(_) => "object",
    }
}

/// Call `f(line_number, text)` for every line of a file (1-based numbers, line endings
/// stripped), with a progress bar over the file's bytes. An error of `f` becomes
/// "FILE line N: error".
pub fn for_each_line(
    path: &Path,
    mut f: impl FnMut(usize, &str) -> Result<(), String>,
) -> CliResult<()> {
    let file = File::open(path).context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let pb = progress::bytes(len, format!("reading {}", file_name(path)));
    let mut reader = BufReader::new(pb.wrap_read(file));
    let mut buf = Vec::new();
    let mut line = 0usize;
    let result = loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(CliError::failed(format!("reading {}: {e}", path.display()))),
        }
        line += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t,
            Err(e) => {
                break Err(CliError::failed(format!(
                    "{} line {line}: not valid UTF-8 (byte {} of the line)",
                    path.display(),
                    e.valid_up_to() + 1
                )))
            }
        };
        if let Err(e) = f(line, text) {
            break Err(CliError::failed(format!(
                "{} line {line}: {e}",
                path.display()
            )));
        }
    };
    pb.finish_and_clear();
    result
}

/// The last component of a path, for progress messages.
fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Parse one line as JSON, with the column of a syntax error.
fn parse_json_line(text: &str) -> Result<Json, String> {
    serde_json::from_str(text).map_err(|e| {
        let msg = e.to_string();
        let msg = match msg.rfind(" at line ") {
            Some(i) => &msg[..i],
            None => &msg,
        };
        format!("invalid JSON at column {}: {msg}", e.column())
    })
}

fn as_object(v: Json) -> Result<Map<String, Json>, String> {
    match v {
        Json::Object(m) => Ok(m),
        other => Err(format!(
            "expected a JSON object, found {}",
            json_kind(&other)
        )),
    }
}

fn check_keys(obj: &Map<String, Json>, allowed: &[&str], hint: &str) -> Result<(), String> {
    for key in obj.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(format!(
                "unknown field {key:?}; expected {}{hint}",
                allowed.join(", ")
            ));
        }
    }
    Ok(())
}

/// A vector from JSON: a list of numbers, each finite as a 32-bit float.
pub fn vector_from_json(v: &Json, what: &str) -> Result<Vec<f32>, String> {
    let Json::Array(items) = v else {
        return Err(format!(
            "{what}: expected a list of numbers, found {}",
            json_kind(v)
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, x)| match x.as_f64() {
            Some(f) if (f as f32).is_finite() => Ok(f as f32),
            Some(f) => Err(format!("{what}[{i}]: {f} does not fit in a 32-bit float")),
            None => Err(format!(
                "{what}[{i}]: expected a number, found {}",
                json_kind(x)
            )),
        })
        .collect()
}

fn metadata_field(v: Json, what: &str) -> Result<(Metadata, Vec<String>), String> {
    match v {
        Json::Null => Ok((Metadata::new(), vec![])),
        Json::Object(m) => metadata_from_json(&m).map_err(|e| format!("{what}: {e}")),
        other => Err(format!(
            "{what}: expected an object, found {}",
            json_kind(&other)
        )),
    }
}

fn id_from_json(v: &Json, what: &str) -> Result<String, String> {
    match v {
        Json::String(s) if s.is_empty() => Err(format!("{what}: empty id")),
        Json::String(s) if s.len() > 4096 => {
            Err(format!("{what}: id of {} bytes exceeds 4096", s.len()))
        }
        Json::String(s) => Ok(s.clone()),
        other => Err(format!(
            "{what}: expected a string, found {}",
            json_kind(other)
        )),
    }
}

/// A record read from a file, with the line it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordLine {
    /// 1-based line number (or row number for `.npy` input).
    pub line: usize,
    /// The record.
    pub record: Record,
}

/// One record from a JSON object `{"id", "embedding", "document", "metadata"}`. Metadata
/// keys whose value is null are left out.
pub fn record_from_json(v: Json) -> Result<Record, String> {
    let mut obj = as_object(v)?;
    check_keys(&obj, &["id", "embedding", "document", "metadata"], "")?;
    let id = match obj.get("id") {
        Some(v) => id_from_json(v, "field \"id\"")?,
        None => return Err("missing field \"id\"".into()),
    };
    let embedding = match obj.remove("embedding") {
        None | Some(Json::Null) => None,
        Some(v) => Some(vector_from_json(&v, "field \"embedding\"")?),
    };
    let document = match obj.remove("document") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(s),
        Some(other) => {
            return Err(format!(
                "field \"document\": expected a string, found {}",
                json_kind(&other)
            ))
        }
    };
    let (metadata, _) = metadata_field(
        obj.remove("metadata").unwrap_or(Json::Null),
        "field \"metadata\"",
    )?;
    Ok(Record {
        id,
        embedding,
        document,
        metadata,
    })
}

/// Check that no id repeats; the error names both lines.
pub fn check_unique_ids(records: &[RecordLine], unit: &str) -> Result<(), String> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(records.len());
    for r in records {
        if let Some(first) = seen.insert(&r.record.id, r.line) {
            return Err(format!(
                "{unit} {}: id {:?} already appears on {unit} {first}",
                r.line, r.record.id
            ));
        }
    }
    Ok(())
}

/// Read a JSON lines file of records (blank lines are skipped). Ids must be unique.
pub fn read_records_jsonl(path: &Path) -> CliResult<Vec<RecordLine>> {
    let mut out = Vec::new();
    for_each_line(path, |line, text| {
        if text.trim().is_empty() {
            return Ok(());
        }
        let record = record_from_json(parse_json_line(text)?)?;
        out.push(RecordLine { line, record });
        Ok(())
    })?;
    check_unique_ids(&out, "line").context(|| path.display().to_string())?;
    Ok(out)
}

/// A patch read from a file, with its line.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchLine {
    /// 1-based line number.
    pub line: usize,
    /// The patch.
    pub patch: Patch,
}

/// One patch from `{"id"|"ids"|"where": ..., "metadata": {...}}`; null values unset keys.
pub fn patch_from_json(v: Json) -> Result<Patch, String> {
    let mut obj = as_object(v)?;
    check_keys(
        &obj,
        &["id", "ids", "where", "metadata"],
        " (update changes metadata only; use `put` to replace documents or embeddings)",
    )?;
    let targets = ["id", "ids", "where"]
        .iter()
        .filter(|k| obj.contains_key(**k))
        .count();
    if targets != 1 {
        return Err(format!(
            "give exactly one of \"id\", \"ids\" or \"where\" (found {targets})"
        ));
    }
    let target = if let Some(v) = obj.get("id") {
        Target::Id(id_from_json(v, "field \"id\"")?)
    } else if let Some(v) = obj.get("ids") {
        let Json::Array(items) = v else {
            return Err(format!(
                "field \"ids\": expected a list of strings, found {}",
                json_kind(v)
            ));
        };
        if items.is_empty() {
            return Err("field \"ids\": empty list".into());
        }
        Target::Ids(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| id_from_json(x, &format!("field \"ids\"[{i}]")))
                .collect::<Result<_, _>>()?,
        )
    } else {
        let v = obj.get("where").expect("counted above");
        Target::Where(Filter::from_json(v).map_err(|e| format!("field \"where\": {e}"))?)
    };
    let (set, unset) = match obj.remove("metadata") {
        None => return Err("missing field \"metadata\"".into()),
        Some(v @ Json::Object(_)) => metadata_field(v, "field \"metadata\"")?,
        Some(other) => {
            return Err(format!(
                "field \"metadata\": expected an object, found {}",
                json_kind(&other)
            ))
        }
    };
    if set.is_empty() && unset.is_empty() {
        return Err("field \"metadata\" is empty: nothing to update".into());
    }
    Ok(Patch { target, set, unset })
}

/// Read a JSON lines file of patches (blank lines are skipped).
pub fn read_patches_jsonl(path: &Path) -> CliResult<Vec<PatchLine>> {
    let mut out = Vec::new();
    for_each_line(path, |line, text| {
        if text.trim().is_empty() {
            return Ok(());
        }
        let patch = patch_from_json(parse_json_line(text)?)?;
        out.push(PatchLine { line, patch });
        Ok(())
    })?;
    Ok(out)
}

/// Read a file of ids, one per line (an empty line is an error; ids must be unique).
pub fn read_ids(path: &Path) -> CliResult<Vec<String>> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for_each_line(path, |line, text| {
        let id = id_from_json(&Json::String(text.to_string()), "id")?;
        if let Some(first) = seen.insert(id.clone(), line) {
            return Err(format!("id {id:?} already appears on line {first}"));
        }
        out.push(id);
        Ok(())
    })?;
    Ok(out)
}

/// Read a JSON lines file of metadata objects, one per line (`{}` or `null` for none).
pub fn read_metadata_jsonl(path: &Path) -> CliResult<Vec<Metadata>> {
    let mut out = Vec::new();
    for_each_line(path, |_, text| {
        if text.trim().is_empty() {
            return Err("empty line; expected a metadata object ({} for none)".into());
        }
        let (meta, _) = metadata_field(parse_json_line(text)?, "metadata")?;
        out.push(meta);
        Ok(())
    })?;
    Ok(out)
}

/// Documents, one per line: a JSON string, or `null` for a record without one.
pub fn read_documents_jsonl(path: &Path) -> CliResult<Vec<Option<String>>> {
    let mut out = Vec::new();
    for_each_line(path, |_, text| {
        match parse_json_line(text)? {
            Json::String(s) => out.push(Some(s)),
            Json::Null => out.push(None),
            other => {
                return Err(format!(
                    "expected a document (a JSON string, or null), found {}",
                    json_kind(&other)
                ))
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// Parse a `where` filter given on the command line; the error names the flag and the
/// offending part of the filter (a JSON path).
pub fn parse_where(text: &str) -> CliResult<Filter> {
    Filter::parse(text).map_err(|e| CliError::failed(format!("--where: {e}")))
}

/// Query vectors from JSON: one list of numbers, or a list of such lists.
pub fn parse_vectors(text: &str) -> CliResult<Vec<Vec<f32>>> {
    let v: Json = serde_json::from_str(text)
        .map_err(|e| CliError::failed(format!("--vector: invalid JSON: {e}")))?;
    let fail = |m: String| CliError::failed(format!("--vector: {m}"));
    match &v {
        Json::Array(items) if items.is_empty() => Err(fail("empty list".into())),
        Json::Array(items) if items.iter().all(Json::is_array) => items
            .iter()
            .enumerate()
            .map(|(i, x)| vector_from_json(x, &format!("vector {i}")).map_err(fail))
            .collect(),
        Json::Array(_) => Ok(vec![vector_from_json(&v, "vector").map_err(fail)?]),
        other => Err(fail(format!(
            "expected a list of numbers, found {}",
            json_kind(other)
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// .npy

/// An array read from a `.npy` file: its shape and its rows (a 1-D array is one row).
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The shape from the header (1 or 2 dimensions).
    pub shape: Vec<usize>,
    /// Rows, each `shape[1]` (or `shape[0]` for 1-D) values.
    pub rows: Vec<Vec<f32>>,
}

impl NpyArray {
    /// The shape written as numpy does: `(3, 4)` or `(4,)`.
    pub fn shape_text(&self) -> String {
        shape_text(&self.shape)
    }
}

fn shape_text(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        s => format!(
            "({})",
            s.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Read a `.npy` file (with a progress bar).
pub fn read_npy(path: &Path) -> CliResult<NpyArray> {
    let file = File::open(path).context(|| format!("cannot open {}", path.display()))?;
    let len = file
        .metadata()
        .context(|| format!("cannot stat {}", path.display()))?
        .len();
    let pb = progress::bytes(len, format!("reading {}", file_name(path)));
    let result = parse_npy(&mut BufReader::new(pb.wrap_read(file)), len);
    pb.finish_and_clear();
    result.context(|| path.display().to_string())
}

#[derive(Debug, Clone, PartialEq)]
enum Py {
    Str(String),
    Bool(bool),
    Int(u64),
    Tuple(Vec<Py>),
    Dict(Vec<(String, Py)>),
    None,
}

/// A parser of the Python literal a `.npy` header holds.
struct PyParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl PyParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("malformed header at byte {}: {what}", self.i))
    }

    fn value(&mut self, depth: usize) -> Result<Py, String> {
        if depth > 8 {
            return self.err("nested too deeply");
        }
        self.ws();
        let Some(&c) = self.s.get(self.i) else {
            return self.err("unexpected end");
        };
        match c {
            b'\'' | b'"' => self.string(c),
            b'(' => self.tuple(depth),
            b'{' => self.dict(depth),
            b'0'..=b'9' => self.int(),
            _ => self.word(),
        }
    }

    /// A string literal whose opening `quote` is at the cursor.
    fn string(&mut self, quote: u8) -> Result<Py, String> {
        self.i += 1;
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i] != quote {
            if self.s[self.i] == b'\\' {
                return self.err("escapes in strings are not supported");
            }
            self.i += 1;
        }
        if self.i >= self.s.len() {
            return self.err("unterminated string");
        }
        let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        self.i += 1;
        Ok(Py::Str(text))
    }

    /// A tuple whose `(` is at the cursor; its items are at `depth + 1`.
    fn tuple(&mut self, depth: usize) -> Result<Py, String> {
        self.i += 1;
        let mut items = Vec::new();
        loop {
            if self.eat(b')') {
                return Ok(Py::Tuple(items));
            }
            items.push(self.value(depth + 1)?);
            if !self.eat(b',') {
                if self.eat(b')') {
                    return Ok(Py::Tuple(items));
                }
                return self.err("expected ',' or ')' in a tuple");
            }
        }
    }

    /// A dictionary with string keys whose `{` is at the cursor; its keys and values are
    /// at `depth + 1`.
    fn dict(&mut self, depth: usize) -> Result<Py, String> {
        self.i += 1;
        let mut items = Vec::new();
        loop {
            if self.eat(b'}') {
                return Ok(Py::Dict(items));
            }
            let Py::Str(key) = self.value(depth + 1)? else {
                return self.err("dictionary keys must be strings");
            };
            if !self.eat(b':') {
                return self.err("expected ':' after a key");
            }
            items.push((key, self.value(depth + 1)?));
            if !self.eat(b',') {
                if self.eat(b'}') {
                    return Ok(Py::Dict(items));
                }
                return self.err("expected ',' or '}' in a dictionary");
            }
        }
    }

    /// A non-negative integer, with an optional Python 2 `L` suffix.
    fn int(&mut self) -> Result<Py, String> {
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
            self.i += 1;
        }
        let digits = std::str::from_utf8(&self.s[start..self.i]).expect("ascii");
        if self.s.get(self.i) == Some(&b'L') {
            self.i += 1;
        }
        digits
            .parse()
            .map(Py::Int)
            .or_else(|_| self.err("integer too large"))
    }

    /// `True`, `False` or `None`.
    fn word(&mut self) -> Result<Py, String> {
        for (word, v) in [
            ("True", Py::Bool(true)),
            ("False", Py::Bool(false)),
            ("None", Py::None),
        ] {
            if self.s[self.i..].starts_with(word.as_bytes()) {
                self.i += word.len();
                return Ok(v);
            }
        }
        self.err("unexpected character")
    }
}

fn read_exact_or<R: Read>(r: &mut R, buf: &mut [u8], what: &str) -> Result<(), String> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            format!("truncated: the file ends inside the {what}")
        } else {
            format!("reading the {what}: {e}")
        }
    })
}

/// Parse a `.npy` stream of `file_len` bytes: format version 1, 2 or 3, dtype `<f4` or
/// `<f8`, 1-D or 2-D, C or Fortran order. Values must be finite. The data length must
/// equal what the header's shape implies; it is checked before anything is allocated.
pub fn parse_npy<R: Read>(r: &mut R, file_len: u64) -> Result<NpyArray, String> {
    let (prefix, header) = read_npy_header(r, file_len)?;
    let header_len = header.len() as u64;
    let NpyHeader {
        item,
        fortran,
        shape,
    } = parse_npy_header(&header)?;
    if shape.is_empty() || shape.len() > 2 {
        return Err(format!(
            "expected a 1-D or 2-D array, found shape {}",
            shape_text(&shape)
        ));
    }
    let (rows, cols) = match shape[..] {
        [n] => (1, n),
        [n, d] => (n, d),
        _ => unreachable!("checked above"),
    };
    if cols == 0 && rows > 0 {
        // No bytes would bound the claimed rows: (2^62, 0) needs none.
        return Err(format!(
            "shape {} has rows of no values; a vector needs at least one",
            shape_text(&shape)
        ));
    }
    let data_len = file_len - prefix - header_len;
    let needed = (rows as u64)
        .checked_mul(cols as u64)
        .and_then(|n| n.checked_mul(item as u64));
    match needed {
        Some(n) if n == data_len => {}
        Some(n) if n < data_len => {
            return Err(format!(
                "{} bytes after the data of shape {} (expected {n} bytes of data)",
                data_len - n,
                shape_text(&shape)
            ))
        }
        _ => {
            return Err(format!(
                "header claims shape {} of {}-byte floats ({} bytes) but the file holds only {data_len} bytes of data",
                shape_text(&shape),
                item,
                needed.map_or("more than 2^64".to_string(), |n| n.to_string())
            ))
        }
    }
    let out = read_npy_data(r, item, fortran, rows, cols)?;
    for (i, row) in out.iter().enumerate() {
        if let Some(j) = row.iter().position(|x| !x.is_finite()) {
            return Err(if shape.len() == 1 {
                format!("element {j} is not finite ({})", row[j])
            } else {
                format!("row {i}, column {j}: not finite ({})", row[j])
            });
        }
    }
    Ok(NpyArray { shape, rows: out })
}

/// Read a `.npy` file's preamble and header (checking the header fits in `file_len` before
/// allocating it, and its encoding for the version); returns the preamble's length and the
/// header's bytes.
fn read_npy_header<R: Read>(r: &mut R, file_len: u64) -> Result<(u64, Vec<u8>), String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if file_len < 10 {
        return Err(format!(
            "not a .npy file: {file_len} bytes, shorter than a .npy preamble"
        ));
    }
    let mut pre = [0u8; 8];
    read_exact_or(r, &mut pre, "preamble")?;
    if &pre[..6] != MAGIC {
        return Err("not a .npy file (it does not start with \\x93NUMPY)".into());
    }
    let (major, minor) = (pre[6], pre[7]);
    let (header_len, prefix) = match major {
        1 => {
            let mut b = [0u8; 2];
            read_exact_or(r, &mut b, "preamble")?;
            (u16::from_le_bytes(b) as u64, 10u64)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            read_exact_or(r, &mut b, "preamble")?;
            (u32::from_le_bytes(b) as u64, 12u64)
        }
        _ => {
            return Err(format!(
                "unsupported .npy format version {major}.{minor} (1.0, 2.0 and 3.0 are)"
            ))
        }
    };
    if prefix + header_len > file_len {
        return Err(format!(
            "header claims {header_len} bytes but the file has only {} after the preamble",
            file_len.saturating_sub(prefix)
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    read_exact_or(r, &mut header, "header")?;
    if major < 3 && !header.is_ascii() {
        return Err(format!(
            "header of a version {major} file is not ASCII (only version 3 headers are UTF-8)"
        ));
    }
    if major == 3 && std::str::from_utf8(&header).is_err() {
        return Err("header is not valid UTF-8".into());
    }
    Ok((prefix, header))
}

/// What a `.npy` header's dictionary says.
struct NpyHeader {
    /// Bytes per value: 4 (`<f4`) or 8 (`<f8`).
    item: usize,
    /// Whether the data is in column-major order.
    fortran: bool,
    /// The array's shape, as written.
    shape: Vec<usize>,
}

/// Parse a `.npy` header's dictionary and its `descr`, `fortran_order` and `shape` keys.
fn parse_npy_header(header: &[u8]) -> Result<NpyHeader, String> {
    let mut p = PyParser { s: header, i: 0 };
    let Py::Dict(dict) = p.value(0)? else {
        return Err("malformed header: not a dictionary".into());
    };
    p.ws();
    if p.i != header.len() {
        return p.err("trailing characters after the dictionary");
    }
    let get = |k: &str| dict.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let item = match get("descr") {
        Some(Py::Str(d)) if d == "<f4" => 4usize,
        Some(Py::Str(d)) if d == "<f8" => 8,
        Some(Py::Str(d)) if d == ">f4" || d == ">f8" => {
            return Err(format!(
                "big-endian data ({d}) is not supported; save as little-endian float32 (<f4)"
            ))
        }
        Some(Py::Str(d)) => {
            return Err(format!(
                "dtype {d:?} is not supported; expected float32 (<f4) or float64 (<f8)"
            ))
        }
        _ => return Err("header has no 'descr' string".into()),
    };
    let fortran = match get("fortran_order") {
        Some(Py::Bool(b)) => *b,
        _ => return Err("header has no 'fortran_order' boolean".into()),
    };
    let shape: Vec<usize> = match get("shape") {
        Some(Py::Tuple(items)) => items
            .iter()
            .map(|x| match x {
                Py::Int(n) => usize::try_from(*n).map_err(|_| "shape too large".to_string()),
                _ => Err("header 'shape' holds a non-integer".to_string()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("header has no 'shape' tuple".into()),
    };
    Ok(NpyHeader {
        item,
        fortran,
        shape,
    })
}

/// Read `rows × cols` values of `item` bytes each (C order, or column-major when
/// `fortran`) as rows of f32.
fn read_npy_data<R: Read>(
    r: &mut R,
    item: usize,
    fortran: bool,
    rows: usize,
    cols: usize,
) -> Result<Vec<Vec<f32>>, String> {
    let decode = |b: &[u8]| -> f32 {
        if item == 4 {
            f32::from_le_bytes(b.try_into().expect("4 bytes"))
        } else {
            f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32
        }
    };
    let mut out: Vec<Vec<f32>> = Vec::with_capacity(rows);
    if fortran && rows > 1 && cols > 1 {
        // Column-major: read every column, then scatter into rows.
        out.resize_with(rows, || Vec::with_capacity(cols));
        let mut buf = vec![0u8; rows * item];
        for _ in 0..cols {
            read_exact_or(r, &mut buf, "data")?;
            for (row, b) in out.iter_mut().zip(buf.chunks_exact(item)) {
                row.push(decode(b));
            }
        }
    } else if item == 4 && cfg!(target_endian = "little") {
        // Little-endian f32 rows are read straight into place.
        for _ in 0..rows {
            let mut row = vec![0f32; cols];
            read_exact_or(r, bytemuck::cast_slice_mut(&mut row), "data")?;
            out.push(row);
        }
    } else {
        let mut buf = vec![0u8; cols * item];
        for _ in 0..rows {
            read_exact_or(r, &mut buf, "data")?;
            out.push(buf.chunks_exact(item).map(decode).collect());
        }
    }
    Ok(out)
}

/// The bytes of a `.npy` file (version 1, `<f4`, C order) holding `rows`: for tests and
/// for tools that write query files.
pub fn write_npy(rows: &[Vec<f32>], cols: usize) -> Vec<u8> {
    let header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {cols}), }}",
        rows.len()
    );
    let mut h = header.into_bytes();
    let total = 10 + h.len() + 1;
    h.resize(h.len() + (64 - total % 64) % 64, b' ');
    h.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(&h);
    for r in rows {
        for x in r {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn npy(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = b"\x93NUMPY".to_vec();
        out.push(version);
        out.push(0);
        if version == 1 {
            out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn parse(bytes: &[u8]) -> Result<NpyArray, String> {
        parse_npy(&mut &bytes[..], bytes.len() as u64)
    }

    fn f4(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn npy_versions_orders_and_dtypes() {
        let data = f4(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        for v in [1, 2, 3] {
            let a = parse(&npy(
                v,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n",
                &data,
            ))
            .unwrap();
            assert_eq!(a.rows, vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]);
        }
        let a = parse(&npy(
            1,
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
            &data,
        ))
        .unwrap();
        assert_eq!(a.rows, vec![vec![1.0, 3.0, 5.0], vec![2.0, 4.0, 6.0]]);
        let d8: Vec<u8> = [0.5f64, -1.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let a = parse(&npy(
            1,
            "{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (2,)}",
            &d8,
        ))
        .unwrap();
        assert_eq!(a.shape, vec![2]);
        assert_eq!(a.rows, vec![vec![0.5, -1.0]]);
        let a = parse(&npy(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 8), }",
            &[],
        ))
        .unwrap();
        assert!(a.rows.is_empty());
        let rows = vec![vec![1.5f32, 2.5], vec![3.5, 4.5]];
        assert_eq!(parse(&write_npy(&rows, 2)).unwrap().rows, rows);
        assert_eq!(write_npy(&rows, 2).len() % 64, 16);
    }

    #[test]
    fn bad_npy_is_rejected_with_a_reason() {
        let data = f4(&[1.0, 2.0, 3.0, 4.0]);
        let cases: Vec<(Vec<u8>, &str)> =
            vec![
            (b"hello world, not npy".to_vec(), "not a .npy file"),
            (b"\x93NUM".to_vec(), "shorter than"),
            (npy(4, "{}", &[]), "unsupported .npy format version 4"),
            (
                npy(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2)}", &data),
                "dtype \"<i4\" is not supported",
            ),
            (
                npy(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2)}", &data),
                "big-endian",
            ),
            (
                npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 1)}", &data),
                "1-D or 2-D",
            ),
            (
                npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)}", &data),
                "holds only 16 bytes",
            ),
            (
                npy(
                    1,
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999)}",
                    &data,
                ),
                "holds only 16 bytes",
            ),
            (
                npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2)}", &data),
                "8 bytes after the data",
            ),
            (
                // No bytes needed, so no size check bounds the rows.
                npy(
                    1,
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 0)}",
                    &[],
                ),
                "rows of no values",
            ),
            (
                npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2)", &data),
                "malformed header",
            ),
            (
                npy(1, "{'descr': '<f4', 'shape': (2, 2)}", &data),
                "fortran_order",
            ),
            (
                npy(
                    1,
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2)}",
                    &f4(&[1.0, f32::NAN, 3.0, 4.0]),
                ),
                "row 0, column 1: not finite",
            ),
        ];
        for (bytes, want) in cases {
            let e = parse(&bytes).unwrap_err();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
        // A header length beyond the file.
        let mut b = npy(2, "{}", &[]);
        b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&b)
            .unwrap_err()
            .contains("header claims 4294967295 bytes"));
    }

    #[test]
    fn records_and_patches_from_json() {
        let r = record_from_json(json!({"id": "a", "embedding": [1, 2.5],
            "document": "x", "metadata": {"k": 1, "gone": null}}))
        .unwrap();
        assert_eq!(r.embedding, Some(vec![1.0, 2.5]));
        assert_eq!(r.metadata.len(), 1);
        let e = record_from_json(json!({"id": "a", "embedding": [1, "x"]})).unwrap_err();
        assert!(
            e.contains("field \"embedding\"[1]: expected a number, found string"),
            "{e}"
        );
        let e = record_from_json(json!({"id": "a", "embedding": [1e300]})).unwrap_err();
        assert!(e.contains("32-bit"), "{e}");
        let e = record_from_json(json!({"ids": "a"})).unwrap_err();
        assert!(e.contains("unknown field \"ids\""), "{e}");
        let e = record_from_json(json!({"id": 3})).unwrap_err();
        assert!(
            e.contains("field \"id\": expected a string, found number"),
            "{e}"
        );
        let e = record_from_json(json!({"id": "a", "metadata": {"k": {"x": 1}}})).unwrap_err();
        assert!(e.contains("metadata key \"k\""), "{e}");

        let p =
            patch_from_json(json!({"ids": ["a", "b"], "metadata": {"x": 1, "y": null}})).unwrap();
        assert_eq!(p.target, Target::Ids(vec!["a".into(), "b".into()]));
        assert_eq!(p.unset, vec!["y".to_string()]);
        let e =
            patch_from_json(json!({"where": {"x": {"$gt": "a", "$bad": 1}}, "metadata": {"x": 1}}))
                .unwrap_err();
        assert!(
            e.contains("field \"where\": invalid where filter at $.x"),
            "{e}"
        );
        let e =
            patch_from_json(json!({"id": "a", "ids": ["b"], "metadata": {"x": 1}})).unwrap_err();
        assert!(e.contains("exactly one"), "{e}");
        let e = patch_from_json(json!({"id": "a", "document": "d"})).unwrap_err();
        assert!(e.contains("metadata only"), "{e}");
        assert!(parse_json_line("{\"id\": }")
            .unwrap_err()
            .contains("column 8"));
    }

    #[test]
    fn query_vectors() {
        assert_eq!(parse_vectors("[1, 2]").unwrap(), vec![vec![1.0, 2.0]]);
        assert_eq!(
            parse_vectors("[[1], [2]]").unwrap(),
            vec![vec![1.0], vec![2.0]]
        );
        assert!(parse_vectors("[]").is_err());
        assert!(parse_vectors("[1, [2]]").is_err());
        assert!(parse_vectors("{\"a\": 1}").is_err());
    }
}
