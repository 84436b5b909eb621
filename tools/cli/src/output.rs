//! Output: aligned text tables for people, JSON for scripts, and the formatting of records,
//! times and sizes both share.

use serde_json::{json, Value as Json};
use strata_engine::RecordOut;
use strata_formats::value::metadata_to_json;

/// Longest cell a table prints; longer text is cut with an ellipsis.
pub const MAX_CELL: usize = 60;

/// An aligned text table.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers; a header starting with '>' is right-aligned
    /// (the '>' is not printed).
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers
                .iter()
                .map(|h| h.trim_start_matches('>').to_string())
                .collect(),
            right: headers.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    /// Add a row (cells beyond the headers are dropped, missing ones are blank).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row, columns separated by two spaces.
    pub fn render(&self) -> String {
        let n = self.headers.len();
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                (0..n)
                    .map(|i| truncate(r.get(i).map(String::as_str).unwrap_or(""), MAX_CELL))
                    .collect()
            })
            .collect();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &cells {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |r: &[String]| {
            let mut s = String::new();
            for (i, c) in r.iter().enumerate() {
                let pad = widths[i] - c.chars().count();
                let last = i + 1 == n;
                if i > 0 {
                    s.push_str("  ");
                }
                if self.right[i] {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    if !last {
                        s.push_str(&" ".repeat(pad));
                    }
                }
            }
            s.trim_end().to_string()
        };
        let mut out = line(&self.headers);
        out.push('\n');
        for r in &cells {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }

    /// Print the table to stdout.
    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// `s` cut to `max` characters (the last one an ellipsis), newlines shown as spaces.
pub fn truncate(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let mut t: String = flat.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Print one JSON document (one line) to stdout.
pub fn print_json(v: &Json) {
    println!("{v}");
}

/// An f32 as a JSON number in its shortest form (0.1, not 0.10000000149011612); null if
/// not finite.
pub fn f32_json(x: f32) -> Json {
    format!("{x}")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Json::Null, Json::Number)
}

/// "1 record", "2 records": `n` and the noun's form for it.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A record as JSON: `id`, then `distance`, `document`, `metadata`, `embedding` when present.
pub fn record_json(r: &RecordOut) -> Json {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), json!(r.id));
    if let Some(d) = r.distance {
        m.insert("distance".into(), f32_json(d));
    }
    if let Some(d) = &r.document {
        m.insert("document".into(), json!(d));
    }
    if let Some(meta) = &r.metadata {
        m.insert("metadata".into(), metadata_to_json(meta));
    }
    if let Some(e) = &r.embedding {
        m.insert(
            "embedding".into(),
            Json::Array(e.iter().map(|x| f32_json(*x)).collect()),
        );
    }
    Json::Object(m)
}

/// A short text form of an embedding: the first values and the length.
pub fn embedding_text(e: &[f32]) -> String {
    let head: Vec<String> = e.iter().take(3).map(|x| format!("{x:.4}")).collect();
    if e.len() > 3 {
        format!("[{}, …] ({})", head.join(", "), e.len())
    } else {
        format!("[{}]", head.join(", "))
    }
}

/// Columns of a record table for these records (only the parts any record carries).
pub fn record_table(records: &[RecordOut], ranked: bool) -> Table {
    let docs = records.iter().any(|r| r.document.is_some());
    let metas = records.iter().any(|r| r.metadata.is_some());
    let embs = records.iter().any(|r| r.embedding.is_some());
    let mut headers = vec![];
    if ranked {
        headers.extend([">#", "id", ">distance"]);
    } else {
        headers.push("id");
    }
    if docs {
        headers.push("document");
    }
    if metas {
        headers.push("metadata");
    }
    if embs {
        headers.push("embedding");
    }
    let mut t = Table::new(&headers);
    for (i, r) in records.iter().enumerate() {
        let mut row = vec![];
        if ranked {
            row.push((i + 1).to_string());
            row.push(r.id.clone());
            row.push(r.distance.map(|d| format!("{d:.6}")).unwrap_or_default());
        } else {
            row.push(r.id.clone());
        }
        if docs {
            row.push(r.document.clone().unwrap_or_default());
        }
        if metas {
            row.push(
                r.metadata
                    .as_ref()
                    .map(|m| metadata_to_json(m).to_string())
                    .unwrap_or_default(),
            );
        }
        if embs {
            row.push(
                r.embedding
                    .as_deref()
                    .map(embedding_text)
                    .unwrap_or_default(),
            );
        }
        t.row(row);
    }
    t
}

/// A byte count for people: `812 B`, `1.5 KiB`, `23.0 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// A time (ms since the Unix epoch) as RFC 3339 UTC.
pub fn time_text(ms: u64) -> String {
    strata_engine::rfc3339(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_truncate() {
        let mut t = Table::new(&["id", ">n", "text"]);
        t.row(vec!["a".into(), "1".into(), "x".repeat(100)]);
        t.row(vec!["bbb".into(), "100".into(), "y\nz".into()]);
        let s = t.render();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "id     n  text");
        assert!(lines[1].starts_with("a      1  xxx"));
        assert!(lines[1].ends_with('…'));
        assert_eq!(lines[1].chars().count(), 10 + MAX_CELL);
        assert_eq!(lines[2], "bbb  100  y z");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(f32_json(0.1).to_string(), "0.1");
        assert_eq!(f32_json(f32::NAN), Json::Null);
        assert_eq!(plural(1, "patch", "patches"), "1 patch");
        assert_eq!(plural(0, "patch", "patches"), "0 patches");
    }
}
