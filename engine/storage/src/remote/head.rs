//! The head object of a published store: the one object a publish moves (with a
//! conditional write) and a remote reader reads first. It names the store, and for every
//! collection its head version, the checksum of that version file, and the versions
//! published beside it (retained and pinned). Format in formats/FORMAT.md, "Published
//! stores".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The head object's name under a published store's prefix.
pub const HEAD_OBJECT: &str = "HEAD";

/// The head object format this code writes and reads.
pub const HEAD_FORMAT: u32 = 1;

/// The largest head object read (a head names a few hundred versions at most).
pub const MAX_HEAD_BYTES: usize = 4 << 20;

/// A published store's head object (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteHead {
    /// [`HEAD_FORMAT`].
    pub format: u32,
    /// The publishing store's id (created once with the store, in its manifest).
    pub store_id: String,
    /// When it was published (ms since the Unix epoch).
    pub published_ms: u64,
    /// Every published collection, by name.
    pub collections: BTreeMap<String, RemoteCollection>,
}

/// One collection in a [`RemoteHead`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteCollection {
    /// The head version.
    pub head: u64,
    /// crc32 of the head's version file, byte for byte: two stores whose heads carry the
    /// same number but different records are different histories.
    pub head_crc: u32,
    /// Every version whose files are published (the head, retained and pinned versions),
    /// ascending.
    pub versions: Vec<u64>,
    /// The pinned versions, ascending.
    pub pins: Vec<u64>,
}

impl RemoteHead {
    /// Parse a head object; the error says what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<RemoteHead, String> {
        if bytes.len() > MAX_HEAD_BYTES {
            return Err(format!(
                "{} bytes, more than the {MAX_HEAD_BYTES} a head object may have",
                bytes.len()
            ));
        }
        let head: RemoteHead =
            serde_json::from_slice(bytes).map_err(|e| format!("not a head object: {e}"))?;
        if head.format != HEAD_FORMAT {
            return Err(format!(
                "head format {} (this build reads {HEAD_FORMAT})",
                head.format
            ));
        }
        for (name, c) in &head.collections {
            crate::layout::check_collection_name(name).map_err(|e| e.to_string())?;
            if !c.versions.contains(&c.head) {
                return Err(format!(
                    "collection {name:?}: head {} is not among its versions",
                    c.head
                ));
            }
        }
        Ok(head)
    }

    /// The JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a head object serializes");
        out.push(b'\n');
        out
    }

    /// A short description for errors: `store <id>: lines@12, words@9`.
    pub fn describe(&self) -> String {
        let heads: Vec<String> = self
            .collections
            .iter()
            .map(|(n, c)| format!("{n}@{}", c.head))
            .collect();
        format!("store {}: {}", self.store_id, heads.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> RemoteHead {
        RemoteHead {
            format: HEAD_FORMAT,
            store_id: "abc".into(),
            published_ms: 7,
            collections: BTreeMap::from([(
                "lines".to_string(),
                RemoteCollection {
                    head: 3,
                    head_crc: 9,
                    versions: vec![1, 3],
                    pins: vec![1],
                },
            )]),
        }
    }

    #[test]
    fn a_head_round_trips_and_describes_itself() {
        let h = head();
        assert_eq!(RemoteHead::parse(&h.to_bytes()).unwrap(), h);
        assert_eq!(h.describe(), "store abc: lines@3");
    }

    #[test]
    fn bad_heads_are_refused_with_the_reason() {
        let mut h = head();
        h.collections.get_mut("lines").unwrap().head = 5;
        let err = RemoteHead::parse(&h.to_bytes()).unwrap_err();
        assert!(err.contains("head 5 is not among its versions"), "{err}");
        let mut h = head();
        h.format = 2;
        assert!(RemoteHead::parse(&h.to_bytes())
            .unwrap_err()
            .contains("head format 2"));
        let mut h = head();
        let c = h.collections.remove("lines").unwrap();
        h.collections.insert("../x".into(), c);
        assert!(RemoteHead::parse(&h.to_bytes()).is_err());
        assert!(RemoteHead::parse(b"{\"format\":1}")
            .unwrap_err()
            .contains("not a head object"));
        let big = vec![b' '; MAX_HEAD_BYTES + 1];
        assert!(RemoteHead::parse(&big).unwrap_err().contains("more than"));
    }
}
