//! Where a collection's metric ("space") lives in each Chroma version, and the precedence
//! Chroma 1.5 applies (FORMAT.md, "Chroma persist directories — metric"):
//! `collections.schema_str` (1.3+) › `collections.config_json_str` (1.0–1.2) › the VECTOR
//! segment's `segment_metadata` `hnsw:space` (0.4–0.6) › the collection's metadata
//! `hnsw:space` (0.4) › `l2`. A legacy `hnsw:space` beats a configuration that only holds
//! the default `l2` (0.5–0.6 wrote `l2` there whatever the real space); a configuration
//! that names another space *and* disagrees with it is ambiguous and refused, as is a
//! SPANN index.

use serde_json::Value;
use strata_formats::Metric;

use crate::error::{ChromaError, Result};

fn parse_space(collection: &str, space: &str) -> Result<Metric> {
    match space {
        "l2" => Ok(Metric::L2),
        "cosine" => Ok(Metric::Cosine),
        "ip" => Ok(Metric::Ip),
        other => Err(ChromaError::unsupported(
            collection,
            format!("distance space {other:?} (known: l2, cosine, ip)"),
        )),
    }
}

fn spann(collection: &str, config: &Value) -> Result<()> {
    if config.get("spann").is_some_and(|s| !s.is_null()) {
        return Err(ChromaError::unsupported(
            collection,
            "a SPANN vector index (only hnsw-local-persisted segments are read)",
        ));
    }
    Ok(())
}

fn json(collection: &str, what: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        ChromaError::inconsistent(collection, format!("collections.{what} is not JSON: {e}"))
    })
}

/// The space named by `schema_str` (the `#embedding` key's vector index, else the
/// defaults').
fn schema_space(collection: &str, schema: &str) -> Result<Option<String>> {
    let v = json(collection, "schema_str", schema)?;
    let index = |root: &Value| {
        root.get("float_list")
            .and_then(|f| f.get("vector_index"))
            .and_then(|i| i.get("config"))
            .cloned()
    };
    let config = v
        .get("keys")
        .and_then(|k| k.get("#embedding"))
        .and_then(index)
        .or_else(|| v.get("defaults").and_then(index));
    let Some(config) = config else {
        return Ok(None);
    };
    spann(collection, &config)?;
    Ok(config
        .get("space")
        .and_then(Value::as_str)
        .map(str::to_string))
}

/// The space named by a 1.x `config_json_str` (`{"vector_index":{"hnsw":{"space":…}}}`);
/// the 0.5–0.6 `hnsw_configuration` form is ignored, as Chroma 1.x ignores it.
fn config_space(collection: &str, config: &str) -> Result<Option<String>> {
    let v = json(collection, "config_json_str", config)?;
    let Some(index) = v.get("vector_index") else {
        return Ok(None);
    };
    spann(collection, index)?;
    Ok(index
        .get("hnsw")
        .and_then(|h| h.get("space"))
        .and_then(Value::as_str)
        .map(str::to_string))
}

/// Where the metric was found, for the importer's summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricSource {
    /// `collections.schema_str`.
    Schema,
    /// `collections.config_json_str`.
    Config,
    /// `hnsw:space` in the VECTOR segment's or the collection's metadata (legacy).
    LegacyMetadata,
    /// Nothing named one: Chroma's default, `l2`.
    Default,
}

/// Resolve the metric of `collection` from its stored configuration.
pub(crate) fn resolve(
    collection: &str,
    schema: Option<&str>,
    config: Option<&str>,
    legacy: Option<&str>,
) -> Result<(Metric, MetricSource)> {
    let configured = match schema.filter(|s| !s.trim().is_empty()) {
        Some(s) => schema_space(collection, s)?.map(|x| (x, MetricSource::Schema)),
        None => match config.filter(|s| !s.trim().is_empty()) {
            Some(c) => config_space(collection, c)?.map(|x| (x, MetricSource::Config)),
            None => None,
        },
    };
    match (configured, legacy) {
        (Some((c, _)), Some(l)) if c != l => {
            if c == "l2" {
                Ok((parse_space(collection, l)?, MetricSource::LegacyMetadata))
            } else {
                Err(ChromaError::unsupported(
                    collection,
                    format!(
                        "ambiguous metric: the configuration says {c:?}, hnsw:space says {l:?}"
                    ),
                ))
            }
        }
        (Some((c, source)), _) => Ok((parse_space(collection, &c)?, source)),
        (None, Some(l)) => Ok((parse_space(collection, l)?, MetricSource::LegacyMetadata)),
        (None, None) => Ok((Metric::L2, MetricSource::Default)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_follows_chroma() {
        let schema = r##"{"keys":{"#embedding":{"float_list":{"vector_index":{"config":{"space":"cosine"}}}}}}"##;
        assert_eq!(
            resolve("c", Some(schema), None, None).unwrap().0,
            Metric::Cosine
        );
        let legacy_cfg = r#"{"hnsw_configuration":{"space":"l2"}}"#;
        assert_eq!(
            resolve("c", None, Some(legacy_cfg), Some("cosine")).unwrap(),
            (Metric::Cosine, MetricSource::LegacyMetadata)
        );
        let v1 = r#"{"vector_index":{"hnsw":{"space":"ip"}}}"#;
        assert_eq!(resolve("c", None, Some(v1), None).unwrap().0, Metric::Ip);
        assert!(resolve("c", None, Some(v1), Some("cosine")).is_err());
        assert_eq!(resolve("c", None, Some("{}"), None).unwrap().0, Metric::L2);
        let spann = r#"{"vector_index":{"spann":{"space":"l2"}}}"#;
        let err = resolve("c", None, Some(spann), None).unwrap_err();
        assert!(err.to_string().contains("SPANN"), "{err}");
        assert!(resolve("c", None, None, Some("manhattan")).is_err());
    }
}
