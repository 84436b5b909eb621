//! `where` filters: a typed AST, a parser of Chroma's JSON syntax and an evaluator.
//!
//! Syntax (Chroma's): `{"key": v}` means `{"key": {"$eq": v}}`; operators `$eq $ne $gt $gte
//! $lt $lte $in $nin $contains` on a key, `$and` / `$or` over a list of filters. An object
//! with several keys is their conjunction. A record that lacks the key matches `$ne` and
//! `$nin` and no other operator. `$contains` matches a list value holding the scalar (or a
//! string value holding it as a substring). Numbers compare numerically across int and float.
//!
//! In binary files a filter is stored as its canonical JSON text and parsed back through the
//! same parser, whose nesting depth is bounded ([`MAX_FILTER_DEPTH`]): untrusted bytes cannot
//! exhaust the stack.

use std::cmp::Ordering;
use std::fmt;

use serde_json::{Map, Value as Json};

use crate::value::{MetaValue, Metadata, Scalar};

/// Deepest nesting of `$and` / `$or` a filter may have.
pub const MAX_FILTER_DEPTH: usize = 32;

/// Longest filter text [`Filter::parse`] takes, in bytes (1 MiB).
pub const MAX_FILTER_BYTES: usize = 1 << 20;

/// A comparison operator on one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `$eq`
    Eq,
    /// `$ne`
    Ne,
    /// `$gt`
    Gt,
    /// `$gte`
    Gte,
    /// `$lt`
    Lt,
    /// `$lte`
    Lte,
}

/// A predicate on the value of one key.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// A comparison with a scalar.
    Cmp(CmpOp, Scalar),
    /// `$in`: equal to one of the scalars.
    In(Vec<Scalar>),
    /// `$nin`: equal to none of the scalars (also true when the key is missing).
    Nin(Vec<Scalar>),
    /// `$contains`: a list value holding the scalar, or a string holding it as a substring.
    Contains(Scalar),
}

/// A `where` filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every sub-filter matches (an empty list matches everything).
    And(Vec<Filter>),
    /// Some sub-filter matches (an empty list matches nothing).
    Or(Vec<Filter>),
    /// A predicate on one key.
    Field {
        /// The metadata key.
        key: String,
        /// The predicate on its value.
        pred: Predicate,
    },
}

/// A malformed filter: where in the filter (a JSON path) and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid where filter at {path}: {message}")]
pub struct FilterError {
    /// JSON path of the offending part, for example `$.$and[1].receipt_id`.
    pub path: String,
    /// What was wrong.
    pub message: String,
}

impl CmpOp {
    fn name(self) -> &'static str {
        match self {
            CmpOp::Eq => "$eq",
            CmpOp::Ne => "$ne",
            CmpOp::Gt => "$gt",
            CmpOp::Gte => "$gte",
            CmpOp::Lt => "$lt",
            CmpOp::Lte => "$lte",
        }
    }
}

fn err(path: &str, message: impl Into<String>) -> FilterError {
    FilterError {
        path: path.to_string(),
        message: message.into(),
    }
}

fn parse_scalar(v: &Json, path: &str) -> Result<Scalar, FilterError> {
    match Scalar::from_json(v) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(err(path, "null is not a value a filter can compare with")),
        Err(e) => Err(err(path, e.to_string())),
    }
}

fn parse_list(v: &Json, path: &str) -> Result<Vec<Scalar>, FilterError> {
    let Json::Array(items) = v else {
        return Err(err(path, "expected a list of values"));
    };
    if items.is_empty() {
        return Err(err(path, "expected a non-empty list of values"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_scalar(item, &format!("{path}[{i}]")))
        .collect()
}

fn parse_predicate(key: &str, v: &Json, path: &str) -> Result<Predicate, FilterError> {
    let Json::Object(ops) = v else {
        return Ok(Predicate::Cmp(CmpOp::Eq, parse_scalar(v, path)?));
    };
    if ops.len() != 1 {
        return Err(err(
            path,
            format!(
                "the operator object of key {key:?} must hold exactly one operator, found {}",
                ops.len()
            ),
        ));
    }
    let (op, arg) = ops.iter().next().expect("one entry");
    let at = format!("{path}.{op}");
    let cmp = |op: CmpOp, numeric: bool| -> Result<Predicate, FilterError> {
        let s = parse_scalar(arg, &at)?;
        if numeric && !matches!(s, Scalar::Int(_) | Scalar::Float(_)) {
            return Err(err(
                &at,
                format!("{} needs a number, found {}", op.name(), s.type_name()),
            ));
        }
        Ok(Predicate::Cmp(op, s))
    };
    match op.as_str() {
        "$eq" => cmp(CmpOp::Eq, false),
        "$ne" => cmp(CmpOp::Ne, false),
        "$gt" => cmp(CmpOp::Gt, true),
        "$gte" => cmp(CmpOp::Gte, true),
        "$lt" => cmp(CmpOp::Lt, true),
        "$lte" => cmp(CmpOp::Lte, true),
        "$in" => Ok(Predicate::In(parse_list(arg, &at)?)),
        "$nin" => Ok(Predicate::Nin(parse_list(arg, &at)?)),
        "$contains" => Ok(Predicate::Contains(parse_scalar(arg, &at)?)),
        other => Err(err(
            path,
            format!(
                "unknown operator {other:?}; expected one of $eq $ne $gt $gte $lt $lte $in $nin $contains"
            ),
        )),
    }
}

fn parse_at(v: &Json, path: &str, depth: usize) -> Result<Filter, FilterError> {
    if depth > MAX_FILTER_DEPTH {
        return Err(err(
            path,
            format!("filter nests deeper than {MAX_FILTER_DEPTH} levels"),
        ));
    }
    let Json::Object(obj) = v else {
        return Err(err(path, "expected an object"));
    };
    if obj.is_empty() {
        return Err(err(path, "empty filter object"));
    }
    let mut parts = Vec::with_capacity(obj.len());
    for (key, value) in obj {
        let at = format!("{path}.{key}");
        let part = match key.as_str() {
            "$and" | "$or" => {
                let Json::Array(items) = value else {
                    return Err(err(&at, format!("{key} needs a list of filters")));
                };
                if items.is_empty() {
                    return Err(err(&at, format!("{key} needs at least one filter")));
                }
                let subs = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| parse_at(item, &format!("{at}[{i}]"), depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                if key == "$and" {
                    Filter::And(subs)
                } else {
                    Filter::Or(subs)
                }
            }
            k if k.starts_with('$') => {
                return Err(err(
                    &at,
                    format!("unknown logical operator {k:?}; expected $and or $or"),
                ))
            }
            k => Filter::Field {
                key: k.to_string(),
                pred: parse_predicate(k, value, &at)?,
            },
        };
        parts.push(part);
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Filter::And(parts)
    })
}

fn num(s: &Scalar) -> Option<f64> {
    match s {
        Scalar::Int(i) => Some(*i as f64),
        Scalar::Float(f) => Some(*f),
        _ => None,
    }
}

/// Compare two scalars: numbers numerically (int vs int exactly), strings and bools by
/// value; `None` when the types cannot be compared.
fn compare(a: &Scalar, b: &Scalar) -> Option<Ordering> {
    match (a, b) {
        (Scalar::Int(x), Scalar::Int(y)) => Some(x.cmp(y)),
        (Scalar::Str(x), Scalar::Str(y)) => Some(x.cmp(y)),
        (Scalar::Bool(x), Scalar::Bool(y)) => Some(x.cmp(y)),
        _ => num(a)?.partial_cmp(&num(b)?),
    }
}

fn scalar_eq(a: &Scalar, b: &Scalar) -> bool {
    compare(a, b) == Some(Ordering::Equal)
}

fn list_contains(v: &MetaValue, needle: &Scalar) -> bool {
    match (v, needle) {
        (MetaValue::StrList(l), Scalar::Str(s)) => l.iter().any(|x| x == s),
        (MetaValue::IntList(l), _) => l.iter().any(|x| scalar_eq(&Scalar::Int(*x), needle)),
        (MetaValue::FloatList(l), _) => l.iter().any(|x| scalar_eq(&Scalar::Float(*x), needle)),
        (MetaValue::BoolList(l), Scalar::Bool(b)) => l.contains(b),
        (MetaValue::Str(s), Scalar::Str(sub)) => s.contains(sub.as_str()),
        _ => false,
    }
}

impl Predicate {
    /// Whether a value (or its absence) satisfies the predicate.
    pub fn matches(&self, value: Option<&MetaValue>) -> bool {
        let Some(value) = value else {
            return matches!(self, Predicate::Cmp(CmpOp::Ne, _) | Predicate::Nin(_));
        };
        if let Predicate::Contains(needle) = self {
            return list_contains(value, needle);
        }
        let Some(scalar) = value.as_scalar() else {
            // Lists only answer $contains; $ne / $nin hold since a list equals no scalar.
            return matches!(self, Predicate::Cmp(CmpOp::Ne, _) | Predicate::Nin(_));
        };
        match self {
            Predicate::Cmp(op, rhs) => {
                let ord = compare(&scalar, rhs);
                match op {
                    CmpOp::Eq => ord == Some(Ordering::Equal),
                    CmpOp::Ne => ord != Some(Ordering::Equal),
                    CmpOp::Gt => ord == Some(Ordering::Greater),
                    CmpOp::Gte => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                    CmpOp::Lt => ord == Some(Ordering::Less),
                    CmpOp::Lte => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                }
            }
            Predicate::In(set) => set.iter().any(|s| scalar_eq(&scalar, s)),
            Predicate::Nin(set) => !set.iter().any(|s| scalar_eq(&scalar, s)),
            Predicate::Contains(_) => unreachable!("handled above"),
        }
    }

    fn to_json(&self) -> Json {
        let (op, arg) = match self {
            Predicate::Cmp(op, s) => (op.name(), s.to_json()),
            Predicate::In(l) => ("$in", Json::Array(l.iter().map(Scalar::to_json).collect())),
            Predicate::Nin(l) => ("$nin", Json::Array(l.iter().map(Scalar::to_json).collect())),
            Predicate::Contains(s) => ("$contains", s.to_json()),
        };
        let mut m = Map::new();
        m.insert(op.to_string(), arg);
        Json::Object(m)
    }
}

impl Filter {
    /// Parse Chroma's JSON filter syntax.
    pub fn from_json(v: &Json) -> Result<Filter, FilterError> {
        let filter = parse_at(v, "$", 0)?;
        // An object with several keys becomes an `$and`: count it as a level, so that the
        // canonical form (`to_json`) of every accepted filter parses again.
        if filter.depth() > MAX_FILTER_DEPTH {
            return Err(err(
                "$",
                format!(
                    "filter nests deeper than {MAX_FILTER_DEPTH} levels (an object with several keys counts as an $and)"
                ),
            ));
        }
        Ok(filter)
    }

    /// Nesting depth of `$and` / `$or` (0 for a single predicate).
    pub fn depth(&self) -> usize {
        match self {
            Filter::And(subs) | Filter::Or(subs) => {
                1 + subs.iter().map(Filter::depth).max().unwrap_or(0)
            }
            Filter::Field { .. } => 0,
        }
    }

    /// Parse a filter from JSON text.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        if text.len() > MAX_FILTER_BYTES {
            return Err(err(
                "$",
                format!(
                    "filter is {} bytes, more than the limit of {MAX_FILTER_BYTES}",
                    text.len()
                ),
            ));
        }
        let v: Json = serde_json::from_str(text).map_err(|e| err("$", e.to_string()))?;
        Filter::from_json(&v)
    }

    /// The canonical JSON form (parses back to an equal filter).
    pub fn to_json(&self) -> Json {
        let mut m = Map::new();
        match self {
            Filter::And(subs) => {
                m.insert("$and".into(), subs.iter().map(Filter::to_json).collect());
            }
            Filter::Or(subs) => {
                m.insert("$or".into(), subs.iter().map(Filter::to_json).collect());
            }
            Filter::Field { key, pred } => {
                m.insert(key.clone(), pred.to_json());
            }
        }
        Json::Object(m)
    }

    /// Whether a record's metadata matches.
    pub fn matches(&self, meta: &Metadata) -> bool {
        match self {
            Filter::And(subs) => subs.iter().all(|f| f.matches(meta)),
            Filter::Or(subs) => subs.iter().any(|f| f.matches(meta)),
            Filter::Field { key, pred } => pred.matches(meta.get(key)),
        }
    }

    /// Equality constraints every match must satisfy (`key == value` reached through
    /// `$and`s only): what an equality index can use to avoid a scan.
    pub fn required_equalities(&self) -> Vec<(&str, &Scalar)> {
        let mut out = Vec::new();
        self.collect_equalities(&mut out);
        out
    }

    fn collect_equalities<'a>(&'a self, out: &mut Vec<(&'a str, &'a Scalar)>) {
        match self {
            Filter::And(subs) => subs.iter().for_each(|f| f.collect_equalities(out)),
            Filter::Field {
                key,
                pred: Predicate::Cmp(CmpOp::Eq, v),
            } => out.push((key, v)),
            _ => {}
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

impl bincode::Encode for Filter {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.to_json().to_string().encode(encoder)
    }
}

impl<Ctx> bincode::Decode<Ctx> for Filter {
    fn decode<D: bincode::de::Decoder<Context = Ctx>>(
        decoder: &mut D,
    ) -> Result<Filter, bincode::error::DecodeError> {
        let text = String::decode(decoder)?;
        Filter::parse(&text).map_err(|e| bincode::error::DecodeError::OtherString(e.to_string()))
    }
}

bincode::impl_borrow_decode!(Filter);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(v: Json) -> Metadata {
        crate::value::metadata_from_json(v.as_object().unwrap())
            .unwrap()
            .0
    }

    fn f(v: Json) -> Filter {
        Filter::from_json(&v).unwrap()
    }

    #[test]
    fn shorthand_is_eq_and_multi_key_is_and() {
        assert_eq!(
            f(json!({"a": 1})),
            Filter::Field {
                key: "a".into(),
                pred: Predicate::Cmp(CmpOp::Eq, Scalar::Int(1))
            }
        );
        let both = f(json!({"image_id": "x", "receipt_id": 2}));
        assert!(both.matches(&meta(json!({"image_id": "x", "receipt_id": 2}))));
        assert!(!both.matches(&meta(json!({"image_id": "x", "receipt_id": 3}))));
    }

    #[test]
    fn missing_key_matches_only_ne_and_nin() {
        let m = meta(json!({"other": 1}));
        for (filter, expect) in [
            (json!({"k": {"$eq": 1}}), false),
            (json!({"k": {"$ne": 1}}), true),
            (json!({"k": {"$gt": 1}}), false),
            (json!({"k": {"$gte": 1}}), false),
            (json!({"k": {"$lt": 1}}), false),
            (json!({"k": {"$lte": 1}}), false),
            (json!({"k": {"$in": [1]}}), false),
            (json!({"k": {"$nin": [1]}}), true),
            (json!({"k": {"$contains": 1}}), false),
        ] {
            assert_eq!(f(filter.clone()).matches(&m), expect, "{filter}");
        }
    }

    #[test]
    fn operators_evaluate() {
        let m = meta(json!({"n": 5, "x": 2.5, "s": "TOTAL", "l": ["A", "B"], "b": true}));
        for (filter, expect) in [
            (json!({"n": {"$gt": 4}}), true),
            (json!({"n": {"$gt": 5}}), false),
            (json!({"n": {"$gte": 5.0}}), true),
            (json!({"x": {"$lt": 3}}), true),
            (json!({"x": {"$lte": 2.4}}), false),
            (json!({"n": {"$in": [1, 5]}}), true),
            (json!({"s": {"$nin": ["TOTAL"]}}), false),
            (json!({"s": {"$ne": "TAX"}}), true),
            (json!({"l": {"$contains": "B"}}), true),
            (json!({"l": {"$contains": "C"}}), false),
            (json!({"b": true}), true),
            (json!({"$or": [{"n": 1}, {"s": "TOTAL"}]}), true),
            (json!({"$and": [{"n": 5}, {"s": "TAX"}]}), false),
            (json!({"n": "5"}), false),
        ] {
            assert_eq!(f(filter.clone()).matches(&m), expect, "{filter}");
        }
    }

    #[test]
    fn errors_name_the_offending_part() {
        let e =
            Filter::from_json(&json!({"$and": [{"a": 1}, {"b": {"$between": 2}}]})).unwrap_err();
        assert_eq!(e.path, "$.$and[1].b");
        assert!(e.message.contains("$between"), "{e}");
        let e = Filter::from_json(&json!({"a": {"$gt": "x"}})).unwrap_err();
        assert_eq!(e.path, "$.a.$gt");
        let e = Filter::from_json(&json!({"a": {"$in": [1, {"b": 2}]}})).unwrap_err();
        assert_eq!(e.path, "$.a.$in[1]");
        let e = Filter::from_json(&json!({"$not": []})).unwrap_err();
        assert_eq!(e.path, "$.$not");
        assert!(Filter::from_json(&json!([1])).is_err());
        assert!(Filter::from_json(&json!({})).is_err());
        assert!(Filter::parse("{\"a\":").is_err());
    }

    #[test]
    fn depth_is_bounded() {
        let mut v = json!({"a": 1});
        for _ in 0..=MAX_FILTER_DEPTH {
            v = json!({ "$and": [v] });
        }
        let e = Filter::from_json(&v).unwrap_err();
        assert!(e.message.contains("deeper"), "{e}");
    }

    #[test]
    fn multi_key_object_at_the_depth_limit_round_trips_or_is_refused() {
        // Fuzzing found: a multi-key object at level 32 parsed, but its canonical form
        // (one more `$and`) did not, so files holding it were written and then refused.
        let mut v = json!({"a": 1, "b": 2});
        for _ in 0..MAX_FILTER_DEPTH {
            v = json!({ "$and": [v] });
        }
        assert!(Filter::from_json(&v).is_err());
        let mut v = json!({"a": 1, "b": 2});
        for _ in 0..MAX_FILTER_DEPTH - 1 {
            v = json!({ "$and": [v] });
        }
        let f = Filter::from_json(&v).unwrap();
        assert_eq!(Filter::from_json(&f.to_json()).unwrap(), f);
    }

    #[test]
    fn required_equalities_follow_ands_only() {
        let filter =
            f(json!({"$and": [{"image_id": "x"}, {"receipt_id": 2}, {"$or": [{"a": 1}]}]}));
        let eqs = filter.required_equalities();
        assert_eq!(eqs.len(), 2);
        assert_eq!(eqs[0].0, "image_id");
    }
}
