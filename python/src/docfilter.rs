//! `where_document`: Chroma's filter on a record's document — `$contains` and
//! `$not_contains` (substring tests), combined with `$and` / `$or`. strata has no full-text
//! index; the binding applies it to the records a `where` (or the id list) selects.

use serde_json::Value as Json;

use crate::error::{BindError, BindResult};

/// Deepest nesting of `$and` / `$or`.
const MAX_DEPTH: usize = 32;

/// A parsed `where_document`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DocFilter {
    /// The document holds the text.
    Contains(String),
    /// The document does not hold the text (a record without one matches).
    NotContains(String),
    /// Every part matches.
    And(Vec<DocFilter>),
    /// Some part matches.
    Or(Vec<DocFilter>),
}

fn bad(path: &str, what: impl std::fmt::Display) -> BindError {
    BindError::Value(format!("invalid where_document at {path}: {what}"))
}

fn parse_at(v: &Json, path: &str, depth: usize) -> BindResult<DocFilter> {
    if depth > MAX_DEPTH {
        return Err(bad(path, format!("nests deeper than {MAX_DEPTH} levels")));
    }
    let Json::Object(obj) = v else {
        return Err(bad(path, "expected a dict"));
    };
    if obj.len() != 1 {
        return Err(bad(
            path,
            format!("expected exactly one operator, found {}", obj.len()),
        ));
    }
    let (op, arg) = obj.iter().next().expect("one entry");
    let at = format!("{path}.{op}");
    let text = |arg: &Json| match arg {
        Json::String(s) => Ok(s.clone()),
        _ => Err(bad(&at, "expected a string")),
    };
    match op.as_str() {
        "$contains" => Ok(DocFilter::Contains(text(arg)?)),
        "$not_contains" => Ok(DocFilter::NotContains(text(arg)?)),
        "$and" | "$or" => {
            let Json::Array(items) = arg else {
                return Err(bad(&at, "expected a list"));
            };
            if items.is_empty() {
                return Err(bad(&at, "expected a non-empty list"));
            }
            let parts = items
                .iter()
                .enumerate()
                .map(|(i, x)| parse_at(x, &format!("{at}[{i}]"), depth + 1))
                .collect::<BindResult<Vec<_>>>()?;
            Ok(if op == "$and" {
                DocFilter::And(parts)
            } else {
                DocFilter::Or(parts)
            })
        }
        "$regex" | "$not_regex" => Err(bad(
            &at,
            "strata does not support regular expressions; use $contains or $not_contains",
        )),
        other => Err(bad(
            path,
            format!("unknown operator {other:?}; expected $contains, $not_contains, $and or $or"),
        )),
    }
}

impl DocFilter {
    /// Parse the JSON text of a `where_document` dict.
    pub(crate) fn parse(text: &str) -> BindResult<DocFilter> {
        let v: Json = serde_json::from_str(text).map_err(|e| bad("$", e))?;
        parse_at(&v, "$", 0)
    }

    /// Whether a document (or its absence) matches.
    pub(crate) fn matches(&self, doc: Option<&str>) -> bool {
        match self {
            DocFilter::Contains(s) => doc.is_some_and(|d| d.contains(s.as_str())),
            DocFilter::NotContains(s) => !doc.is_some_and(|d| d.contains(s.as_str())),
            DocFilter::And(p) => p.iter().all(|f| f.matches(doc)),
            DocFilter::Or(p) => p.iter().any(|f| f.matches(doc)),
        }
    }
}

/// An optional `where_document`.
pub(crate) fn parse_doc(text: Option<&str>) -> BindResult<Option<DocFilter>> {
    text.map(DocFilter::parse).transpose()
}
