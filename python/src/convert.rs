//! Python values ↔ strata values: metadata dicts (types kept: a `bool` stays a bool, an
//! `int` an int), `where` filters (JSON text from the Python side), embedding arrays
//! (borrowed from numpy, shape-checked) and records back out as Python objects.

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyList, PyString, PyTuple};
use strata_formats::{Filter, MetaValue, Metadata, Scalar};

use crate::error::{BindError, BindResult};

/// A metadata dict: keys to set and keys a `None` value removes.
#[derive(Debug, Default, Clone)]
pub(crate) struct MetaIn {
    /// Keys and values to write.
    pub(crate) set: Metadata,
    /// Keys whose value was `None` (delete them, in an update).
    pub(crate) unset: Vec<String>,
}

fn py_type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// One scalar metadata value (`Ok(None)` for `None`).
fn scalar_from_py(v: &Bound<'_, PyAny>, key: &str) -> BindResult<Option<Scalar>> {
    if v.is_none() {
        return Ok(None);
    }
    if v.is_instance_of::<PyBool>() {
        return Ok(Some(Scalar::Bool(v.extract::<bool>().unwrap_or(false))));
    }
    if v.is_instance_of::<PyString>() {
        let s: String = v
            .extract()
            .map_err(|e| BindError::Value(format!("metadata key {key:?}: {e}")))?;
        return Ok(Some(Scalar::Str(s)));
    }
    if v.is_instance_of::<PyFloat>() {
        return float_scalar(v.extract::<f64>().unwrap_or(f64::NAN), key).map(Some);
    }
    if v.hasattr("__index__").unwrap_or(false) {
        return match v.extract::<i64>() {
            Ok(i) => Ok(Some(Scalar::Int(i))),
            Err(_) => Err(BindError::Value(format!(
                "metadata key {key:?}: integer {} does not fit in 64 bits",
                v.str().map(|s| s.to_string()).unwrap_or_default()
            ))),
        };
    }
    if v.hasattr("__float__").unwrap_or(false) && !v.is_instance_of::<PyList>() {
        if let Ok(f) = v.extract::<f64>() {
            return float_scalar(f, key).map(Some);
        }
    }
    Err(BindError::Type(format!(
        "metadata key {key:?}: a value of type {} is not allowed; use str, int, float, bool or a list of one of those",
        py_type_name(v)
    )))
}

fn float_scalar(f: f64, key: &str) -> BindResult<Scalar> {
    if f.is_finite() {
        Ok(Scalar::Float(f))
    } else {
        Err(BindError::Value(format!(
            "metadata key {key:?}: {f} is not a finite number"
        )))
    }
}

/// One metadata value: a scalar or a homogeneous, non-empty list of scalars.
fn value_from_py(v: &Bound<'_, PyAny>, key: &str) -> BindResult<Option<MetaValue>> {
    let items: Option<Vec<Bound<'_, PyAny>>> = if let Ok(l) = v.downcast::<PyList>() {
        Some(l.iter().collect())
    } else if let Ok(t) = v.downcast::<PyTuple>() {
        Some(t.iter().collect())
    } else {
        None
    };
    let Some(items) = items else {
        return Ok(scalar_from_py(v, key)?.map(MetaValue::from));
    };
    let mut scalars = Vec::with_capacity(items.len());
    for item in &items {
        match scalar_from_py(item, key)? {
            Some(s) => scalars.push(s),
            None => {
                return Err(BindError::Value(format!(
                    "metadata key {key:?}: a list may not hold None"
                )))
            }
        }
    }
    MetaValue::from_scalars(scalars)
        .map(Some)
        .map_err(|e| BindError::Value(format!("metadata key {key:?}: {e}")))
}

/// A metadata dict. `None` values go to `unset` when `allow_none`, else are a `TypeError`.
pub(crate) fn metadata_from_py(obj: &Bound<'_, PyAny>, allow_none: bool) -> BindResult<MetaIn> {
    let dict = obj.downcast::<PyDict>().map_err(|_| {
        BindError::Type(format!(
            "metadata must be a dict, got {}",
            py_type_name(obj)
        ))
    })?;
    let mut out = MetaIn::default();
    for (k, v) in dict.iter() {
        let key: String = k.extract().map_err(|_| {
            BindError::Type(format!(
                "metadata keys must be str, got {}",
                py_type_name(&k)
            ))
        })?;
        match value_from_py(&v, &key)? {
            Some(value) => {
                out.set.insert(key, value);
            }
            None if allow_none => out.unset.push(key),
            None => {
                return Err(BindError::Type(format!(
                    "metadata key {key:?}: None is only allowed in update and upsert, where it deletes the key"
                )))
            }
        }
    }
    Ok(out)
}

/// A list of optional metadata dicts.
pub(crate) fn metadatas_from_py(
    list: Option<Vec<Option<Bound<'_, PyAny>>>>,
    allow_none: bool,
) -> BindResult<Option<Vec<Option<MetaIn>>>> {
    list.map(|l| {
        l.iter()
            .map(|m| {
                m.as_ref()
                    .map(|m| metadata_from_py(m, allow_none))
                    .transpose()
            })
            .collect()
    })
    .transpose()
}

/// A `where` filter from its JSON text (the Python side serializes the dict).
pub(crate) fn parse_where(text: Option<&str>) -> BindResult<Option<Filter>> {
    text.map(|t| Filter::parse(t).map_err(BindError::from))
        .transpose()
}

/// Embeddings as a borrowed, C-contiguous `(n, dims)` float32 array.
pub(crate) struct Embeddings<'a> {
    /// Rows × dims, row-major.
    pub(crate) flat: &'a [f32],
    /// Rows.
    pub(crate) rows: usize,
    /// Dimensions.
    pub(crate) dims: usize,
}

impl<'a> Embeddings<'a> {
    /// Borrow an array (the Python side makes it float32 and C-contiguous, copying only
    /// when the caller's array is not already).
    pub(crate) fn borrow(a: &'a PyReadonlyArray2<'_, f32>) -> BindResult<Embeddings<'a>> {
        let shape = a.shape();
        let (rows, dims) = (shape[0], shape[1]);
        let flat = a.as_slice().map_err(|_| {
            BindError::Value("embeddings must be a C-contiguous float32 array".into())
        })?;
        Ok(Embeddings { flat, rows, dims })
    }

    /// Row `i`.
    pub(crate) fn row(&self, i: usize) -> &'a [f32] {
        &self.flat[i * self.dims..(i + 1) * self.dims]
    }
}

/// A metadata value as a Python object.
fn value_to_py<'py>(py: Python<'py>, v: &MetaValue) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        MetaValue::Str(s) => PyString::new(py, s).into_any(),
        MetaValue::Int(i) => i.into_pyobject(py)?.into_any(),
        MetaValue::Float(f) => PyFloat::new(py, *f).into_any(),
        MetaValue::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        MetaValue::StrList(l) => PyList::new(py, l)?.into_any(),
        MetaValue::IntList(l) => PyList::new(py, l)?.into_any(),
        MetaValue::FloatList(l) => PyList::new(py, l)?.into_any(),
        MetaValue::BoolList(l) => PyList::new(py, l)?.into_any(),
    })
}

/// A record's metadata as a dict, or `None` when it has no keys (as Chroma returns it).
pub(crate) fn metadata_to_py<'py>(py: Python<'py>, m: &Metadata) -> PyResult<Bound<'py, PyAny>> {
    if m.is_empty() {
        return Ok(py.None().into_bound(py));
    }
    let d = PyDict::new(py);
    for (k, v) in m {
        d.set_item(k, value_to_py(py, v)?)?;
    }
    Ok(d.into_any())
}

/// Rows of embeddings as one `(n, dims)` float32 array (missing rows are NaN).
pub(crate) fn embeddings_to_py<'py>(
    py: Python<'py>,
    rows: &[Option<Vec<f32>>],
    dims: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let mut flat = Vec::with_capacity(rows.len() * dims);
    for r in rows {
        match r {
            Some(v) if v.len() == dims => flat.extend_from_slice(v),
            _ => flat.extend(std::iter::repeat_n(f32::NAN, dims)),
        }
    }
    Ok(PyArray1::from_vec(py, flat)
        .reshape([rows.len(), dims])?
        .into_any())
}
