//! Metadata values and records, with their JSON form (Chroma's).
//!
//! A metadata value is a string, an integer, a float, a boolean or a homogeneous list of one
//! of those. In JSON a `null` stands for "delete this key" and is therefore not a value: the
//! conversions here return `None` for it so that callers decide what a null means.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value as Json;

/// A scalar metadata value (also what filters compare against).
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub enum Scalar {
    /// UTF-8 string.
    Str(String),
    /// 64-bit signed integer.
    Int(i64),
    /// 64-bit float.
    Float(f64),
    /// Boolean.
    Bool(bool),
}

/// A metadata value: a scalar or a homogeneous list of scalars.
#[derive(Debug, Clone, PartialEq, bincode::Encode, bincode::Decode)]
pub enum MetaValue {
    /// UTF-8 string.
    Str(String),
    /// 64-bit signed integer.
    Int(i64),
    /// 64-bit float.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// List of strings.
    StrList(Vec<String>),
    /// List of integers.
    IntList(Vec<i64>),
    /// List of floats.
    FloatList(Vec<f64>),
    /// List of booleans.
    BoolList(Vec<bool>),
}

/// A record's metadata: keys in sorted order.
pub type Metadata = BTreeMap<String, MetaValue>;

/// Why a JSON value is not a metadata value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// A nested object, or a list holding something other than scalars.
    #[error("unsupported value type ({found}); allowed: string, int, float, bool or a homogeneous list of those")]
    Unsupported {
        /// What was found.
        found: &'static str,
    },
    /// A list mixing types.
    #[error("list mixes {first} and {other}; lists must be homogeneous")]
    MixedList {
        /// Type of the first element.
        first: &'static str,
        /// Type of the first element that differs.
        other: &'static str,
    },
    /// An empty list (its element type cannot be known).
    #[error("empty lists are not allowed (their type is unknown)")]
    EmptyList,
    /// A number that is neither an i64 nor a finite f64.
    #[error("number {0} is out of range")]
    Number(String),
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "bool",
        Json::Number(n) if n.is_i64() => "int",
        Json::Number(_) => "float",
        Json::String(_) => "string",
        Json::Array(_) => "list",
        Json::Object(_) => "object",
    }
}

impl Scalar {
    /// A scalar from JSON; `Ok(None)` for `null`.
    pub fn from_json(v: &Json) -> Result<Option<Scalar>, ValueError> {
        Ok(Some(match v {
            Json::Null => return Ok(None),
            Json::Bool(b) => Scalar::Bool(*b),
            Json::String(s) => Scalar::Str(s.clone()),
            Json::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Scalar::Int(i)
                } else {
                    match n.as_f64() {
                        Some(f) if f.is_finite() && !n.is_u64() => Scalar::Float(f),
                        _ => return Err(ValueError::Number(n.to_string())),
                    }
                }
            }
            other => {
                return Err(ValueError::Unsupported {
                    found: json_kind(other),
                })
            }
        }))
    }

    /// The JSON form.
    pub fn to_json(&self) -> Json {
        match self {
            Scalar::Str(s) => Json::String(s.clone()),
            Scalar::Int(i) => Json::from(*i),
            Scalar::Float(f) => Json::from(*f),
            Scalar::Bool(b) => Json::Bool(*b),
        }
    }

    /// Name of the scalar's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "string",
            Scalar::Int(_) => "int",
            Scalar::Float(_) => "float",
            Scalar::Bool(_) => "bool",
        }
    }
}

impl MetaValue {
    /// A metadata value from JSON; `Ok(None)` for `null` (which means "delete the key").
    pub fn from_json(v: &Json) -> Result<Option<MetaValue>, ValueError> {
        let Json::Array(items) = v else {
            return Ok(Scalar::from_json(v)?.map(MetaValue::from));
        };
        let mut scalars = Vec::with_capacity(items.len());
        for item in items {
            match Scalar::from_json(item) {
                Ok(Some(s)) => scalars.push(s),
                Ok(None) | Err(ValueError::Unsupported { .. }) => {
                    return Err(ValueError::Unsupported {
                        found: "list holding null, a list or an object",
                    })
                }
                Err(e) => return Err(e),
            }
        }
        MetaValue::from_scalars(scalars).map(Some)
    }

    /// A list value from scalars that must all have the same type.
    pub fn from_scalars(scalars: Vec<Scalar>) -> Result<MetaValue, ValueError> {
        let first = scalars.first().ok_or(ValueError::EmptyList)?.type_name();
        if let Some(other) = scalars.iter().find(|s| s.type_name() != first) {
            return Err(ValueError::MixedList {
                first,
                other: other.type_name(),
            });
        }
        macro_rules! collect {
            ($variant:ident, $list:ident) => {
                MetaValue::$list(
                    scalars
                        .into_iter()
                        .filter_map(|s| match s {
                            Scalar::$variant(v) => Some(v),
                            _ => None,
                        })
                        .collect(),
                )
            };
        }
        Ok(match first {
            "string" => collect!(Str, StrList),
            "int" => collect!(Int, IntList),
            "float" => collect!(Float, FloatList),
            _ => collect!(Bool, BoolList),
        })
    }

    /// The JSON form.
    pub fn to_json(&self) -> Json {
        match self {
            MetaValue::Str(s) => Json::String(s.clone()),
            MetaValue::Int(i) => Json::from(*i),
            MetaValue::Float(f) => Json::from(*f),
            MetaValue::Bool(b) => Json::Bool(*b),
            MetaValue::StrList(v) => Json::from(v.clone()),
            MetaValue::IntList(v) => Json::from(v.clone()),
            MetaValue::FloatList(v) => Json::from(v.clone()),
            MetaValue::BoolList(v) => Json::from(v.clone()),
        }
    }

    /// The value as a scalar, if it is one.
    pub fn as_scalar(&self) -> Option<Scalar> {
        Some(match self {
            MetaValue::Str(s) => Scalar::Str(s.clone()),
            MetaValue::Int(i) => Scalar::Int(*i),
            MetaValue::Float(f) => Scalar::Float(*f),
            MetaValue::Bool(b) => Scalar::Bool(*b),
            _ => return None,
        })
    }
}

impl From<Scalar> for MetaValue {
    fn from(s: Scalar) -> MetaValue {
        match s {
            Scalar::Str(v) => MetaValue::Str(v),
            Scalar::Int(v) => MetaValue::Int(v),
            Scalar::Float(v) => MetaValue::Float(v),
            Scalar::Bool(v) => MetaValue::Bool(v),
        }
    }
}

impl fmt::Display for MetaValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

/// Why a JSON object is not metadata: the key and what was wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metadata key {key:?}: {error}")]
pub struct MetadataError {
    /// The offending key.
    pub key: String,
    /// What was wrong with its value.
    pub error: ValueError,
}

/// Metadata from a JSON object: keys with non-null values go to `set`, keys with `null`
/// values to `unset` (Chroma's update semantics).
pub fn metadata_from_json(
    obj: &serde_json::Map<String, Json>,
) -> Result<(Metadata, Vec<String>), MetadataError> {
    let mut set = Metadata::new();
    let mut unset = Vec::new();
    for (key, v) in obj {
        match MetaValue::from_json(v) {
            Ok(Some(value)) => {
                set.insert(key.clone(), value);
            }
            Ok(None) => unset.push(key.clone()),
            Err(error) => {
                return Err(MetadataError {
                    key: key.clone(),
                    error,
                })
            }
        }
    }
    Ok((set, unset))
}

/// The JSON object of some metadata.
pub fn metadata_to_json(meta: &Metadata) -> Json {
    Json::Object(meta.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_values_convert() {
        assert_eq!(
            MetaValue::from_json(&json!(3)).unwrap(),
            Some(MetaValue::Int(3))
        );
        assert_eq!(
            MetaValue::from_json(&json!(2.5)).unwrap(),
            Some(MetaValue::Float(2.5))
        );
        assert_eq!(MetaValue::from_json(&json!(null)).unwrap(), None);
        assert_eq!(
            MetaValue::from_json(&json!(["a", "b"])).unwrap(),
            Some(MetaValue::StrList(vec!["a".into(), "b".into()]))
        );
        assert!(matches!(
            MetaValue::from_json(&json!([1, "b"])),
            Err(ValueError::MixedList {
                first: "int",
                other: "string"
            })
        ));
        assert!(matches!(
            MetaValue::from_json(&json!({"a": 1})),
            Err(ValueError::Unsupported { found: "object" })
        ));
        assert!(matches!(
            MetaValue::from_json(&json!(u64::MAX)),
            Err(ValueError::Number(_))
        ));
        assert_eq!(MetaValue::from_json(&json!([])), Err(ValueError::EmptyList));
    }

    #[test]
    fn nulls_become_unset_keys() {
        let obj = json!({"a": 1, "b": null}).as_object().unwrap().clone();
        let (set, unset) = metadata_from_json(&obj).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(unset, vec!["b".to_string()]);
        assert_eq!(metadata_to_json(&set), json!({"a": 1}));
    }
}
