//! Checking an operation against a collection's settings before anything touches the
//! disk: [`validate`] and the typed [`InvalidOp`] (defined with the other errors) it
//! returns, naming the [`Field`] at fault.

use strata_formats::{Op, Operation};

use crate::error::{Field, InvalidOp};
use crate::snapshot::CollectionInfo;

/// Longest id accepted, in bytes.
const MAX_ID_BYTES: usize = 4096;

impl InvalidOp {
    pub(crate) fn new(field: Field, detail: String) -> InvalidOp {
        InvalidOp { field, detail }
    }
}

fn check_id(id: &str) -> Result<(), InvalidOp> {
    if id.is_empty() {
        Err(InvalidOp::new(Field::Id, "empty id".to_string()))
    } else if id.len() > MAX_ID_BYTES {
        Err(InvalidOp::new(
            Field::Id,
            format!("id of {} bytes exceeds {MAX_ID_BYTES}", id.len()),
        ))
    } else {
        Ok(())
    }
}

/// Check an operation against a collection's settings (ids, embedding dimensions, finite
/// floats): what every write does before anything touches the disk. Front ends call it to
/// report every bad input before writing.
pub fn validate(info: &CollectionInfo, op: &Operation) -> Result<(), InvalidOp> {
    match &op.op {
        Op::Upsert(r) => {
            check_id(&r.id)?;
            match (&r.embedding, info.dims) {
                (None, 0) => Ok(()),
                (Some(v), 0) => Err(InvalidOp::new(
                    Field::Embedding,
                    format!(
                        "record {:?} has a {}-d embedding but collection {:?} is metadata-only",
                        r.id,
                        v.len(),
                        info.name
                    ),
                )),
                (None, d) => Err(InvalidOp::new(
                    Field::Embedding,
                    format!(
                        "record {:?} has no embedding; collection {:?} needs {d} dimensions",
                        r.id, info.name
                    ),
                )),
                (Some(v), d) if v.len() != d as usize => Err(InvalidOp::new(
                    Field::Dims,
                    format!(
                        "record {:?} has {} dimensions; collection {:?} has {d}",
                        r.id,
                        v.len(),
                        info.name
                    ),
                )),
                // A branch-free pass first (it vectorises); the position only on failure.
                (Some(v), _) if v.iter().fold(true, |ok, x| ok & x.is_finite()) => Ok(()),
                (Some(v), _) => match v.iter().position(|x| !x.is_finite()) {
                    Some(i) => Err(InvalidOp::new(
                        Field::Embedding,
                        format!("record {:?}: embedding[{i}] is not finite", r.id),
                    )),
                    None => Ok(()),
                },
            }
        }
        Op::Patch(p) => p
            .target
            .ids()
            .unwrap_or_default()
            .iter()
            .try_for_each(|id| check_id(id)),
        Op::Delete(t) => t
            .ids()
            .unwrap_or_default()
            .iter()
            .try_for_each(|id| check_id(id)),
    }
}

#[cfg(test)]
mod tests {
    use strata_formats::{Metric, Quantization, Record, Seq, Target};

    use super::*;

    fn info(dims: u32) -> CollectionInfo {
        CollectionInfo {
            name: "c".into(),
            dims,
            metric: Metric::L2,
            quantization: Quantization::None,
            created_ms: 0,
        }
    }

    fn upsert(id: &str, embedding: Option<Vec<f32>>) -> Operation {
        Operation {
            seq: Seq::ZERO,
            op: Op::Upsert(Record {
                id: id.into(),
                embedding,
                document: None,
                metadata: Default::default(),
            }),
        }
    }

    fn field(info: &CollectionInfo, op: &Operation) -> Option<Field> {
        validate(info, op).err().map(|e| e.field)
    }

    #[test]
    fn each_refusal_names_its_field() {
        let two = info(2);
        assert_eq!(field(&two, &upsert("a", Some(vec![1.0, 2.0]))), None);
        assert_eq!(
            field(&two, &upsert("", Some(vec![1.0, 2.0]))),
            Some(Field::Id)
        );
        let long = "x".repeat(MAX_ID_BYTES + 1);
        assert_eq!(
            field(&two, &upsert(&long, Some(vec![1.0, 2.0]))),
            Some(Field::Id)
        );
        assert_eq!(field(&two, &upsert("a", None)), Some(Field::Embedding));
        assert_eq!(
            field(&two, &upsert("a", Some(vec![1.0, f32::NAN]))),
            Some(Field::Embedding)
        );
        assert_eq!(
            field(&two, &upsert("a", Some(vec![1.0]))),
            Some(Field::Dims)
        );
        assert_eq!(field(&info(0), &upsert("a", None)), None);
        assert_eq!(
            field(&info(0), &upsert("a", Some(vec![1.0]))),
            Some(Field::Embedding)
        );
        let delete = Operation {
            seq: Seq::ZERO,
            op: Op::Delete(Target::Ids(vec!["ok".into(), String::new()])),
        };
        assert_eq!(field(&two, &delete), Some(Field::Id));
    }

    #[test]
    fn the_detail_says_what_and_where() {
        let err = validate(&info(2), &upsert("r", Some(vec![1.0, 2.0, 3.0]))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "record \"r\" has 3 dimensions; collection \"c\" has 2"
        );
        assert_eq!(err.field.to_string(), "dims");
    }
}
