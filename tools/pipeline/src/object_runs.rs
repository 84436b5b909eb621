//! Runs in an object store: the seed's embedding producer writes its deltas to S3
//! (`lines/delta/{run_id}/` in the snapshot bucket, or `s3://bucket/key`), and
//! [`ObjectStoreRuns`] reads them through `object_store` — S3 in AWS
//! ([`ObjectStoreRuns::s3_from_env`]), or any other `object_store` backend (the tests use
//! the in-memory one). It is a [`RunSource`] like the directory-backed
//! [`super::LocalRuns`]: the prefix's listing decides its layout
//! ([`super::run_layout::detect`]: the seed's `delta.tar.gz`, sealed `*.delta` objects in
//! key order, or the seed's directory layout of separate objects), and only then are the
//! objects it names fetched, each and all together at most [`MAX_RUN_DELTA_BYTES`].

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use strata_stream::ops::DeltaLocation;

use super::run_layout::{detect, Layout, RunFile, RunPayload, TARBALL};
use super::runs::{RunSource, MAX_RUN_DELTA_BYTES};

/// Run deltas in one bucket of an object store.
#[derive(Debug)]
pub struct ObjectStoreRuns {
    store: Arc<dyn ObjectStore>,
    bucket: String,
}

impl ObjectStoreRuns {
    /// Runs in `store`, which serves `bucket` (a run naming another bucket is refused).
    pub fn new(store: Arc<dyn ObjectStore>, bucket: impl Into<String>) -> ObjectStoreRuns {
        ObjectStoreRuns {
            store,
            bucket: bucket.into(),
        }
    }

    /// Runs in the S3 bucket `bucket`, with credentials and region from the environment
    /// (the Lambda's role).
    pub fn s3_from_env(bucket: &str) -> Result<ObjectStoreRuns, String> {
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| format!("S3 bucket {bucket:?}: {e}"))?;
        Ok(ObjectStoreRuns::new(Arc::new(s3), bucket))
    }

    async fn fetch_async(&self, prefix: &ObjectPath) -> Result<Option<RunPayload>, String> {
        let shown = format!("s3://{}/{prefix}", self.bucket);
        let metas: Vec<_> = self
            .store
            .list(Some(prefix))
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| format!("listing {shown}: {e}"))?;
        let base = prefix.as_ref().len() + 1;
        let listing: Vec<(String, u64)> = metas
            .iter()
            .filter(|m| !m.location.as_ref().ends_with('/'))
            .filter_map(|m| {
                let rel = m.location.as_ref().get(base..)?;
                Some((rel.to_string(), m.size))
            })
            .collect();
        let layout = detect(&shown, &listing)?;
        let names = match &layout {
            Layout::Nothing => return Ok(None),
            Layout::Strata(names) | Layout::ChromaDir(names) => names.clone(),
            Layout::Tarball => vec![TARBALL.to_string()],
        };
        let mut files = Vec::with_capacity(names.len());
        for rel in names {
            let key = ObjectPath::from(format!("{prefix}/{rel}"));
            let name = format!("{shown}/{rel}");
            let bytes = self
                .store
                .get(&key)
                .await
                .map_err(|e| format!("{name}: {e}"))?
                .bytes()
                .await
                .map_err(|e| format!("{name}: {e}"))?;
            if bytes.len() as u64 > MAX_RUN_DELTA_BYTES {
                return Err(format!(
                    "{name}: {} bytes exceeds the {MAX_RUN_DELTA_BYTES}-byte limit of a run delta",
                    bytes.len()
                ));
            }
            files.push((rel, bytes.to_vec()));
        }
        let shown_files = |files: Vec<RunFile>| {
            files
                .into_iter()
                .map(|(rel, b)| (format!("{shown}/{rel}"), b))
                .collect::<Vec<_>>()
        };
        Ok(Some(match layout {
            Layout::Strata(_) => RunPayload::Strata(shown_files(files)),
            Layout::Tarball => match shown_files(files).pop() {
                Some(f) => RunPayload::ChromaTarball(f),
                None => return Ok(None),
            },
            _ => RunPayload::ChromaFiles {
                location: shown,
                files,
            },
        }))
    }
}

impl RunSource for ObjectStoreRuns {
    /// Nothing: the run deltas live in the producer's bucket, whose lifecycle rule expires
    /// them (the compactor's role need not hold `s3:DeleteObject` there).
    fn remove(&self, _location: &DeltaLocation) -> Result<u64, String> {
        Ok(0)
    }

    fn fetch(&self, location: &DeltaLocation) -> Result<Option<RunPayload>, String> {
        if let Some(b) = &location.bucket {
            if *b != self.bucket {
                return Err(format!(
                    "run prefix {:?} names bucket {b:?}; this compactor reads bucket {:?}",
                    location.raw, self.bucket
                ));
            }
        }
        let prefix = ObjectPath::parse(location.key_prefix.trim_end_matches('/'))
            .map_err(|e| format!("run prefix {:?}: {e}", location.raw))?;
        let fut = self.fetch_async(&prefix);
        // Inside the Lambda runtime (a blocking thread) use its handle; elsewhere (the CLI,
        // tests) a runtime of our own.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle.block_on(fut),
            Err(_) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("starting an async runtime: {e}"))?
                .block_on(fut),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::PutPayload;

    fn put(store: &InMemory, key: &str, bytes: &[u8]) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(store.put(
                &ObjectPath::parse(key).unwrap(),
                PutPayload::from(bytes.to_vec()),
            ))
            .unwrap();
    }

    fn loc(raw: &str) -> DeltaLocation {
        DeltaLocation::parse(raw).unwrap()
    }

    #[test]
    fn deltas_under_a_prefix_in_key_order() {
        let mem = Arc::new(InMemory::new());
        put(&mem, "lines/delta/r1/part-00001.delta", b"second");
        put(&mem, "lines/delta/r1/part-00000.delta", b"first");
        put(&mem, "lines/delta/r1/_SUCCESS", b"");
        put(&mem, "lines/delta/r10/part-00000.delta", b"another run");
        let runs = ObjectStoreRuns::new(mem, "bucket");
        let Some(RunPayload::Strata(files)) = runs.fetch(&loc("lines/delta/r1/")).unwrap() else {
            panic!("strata deltas");
        };
        let bytes: Vec<&[u8]> = files.iter().map(|(_, b)| b.as_slice()).collect();
        assert_eq!(bytes, [&b"first"[..], &b"second"[..]]);
        assert_eq!(files[0].0, "s3://bucket/lines/delta/r1/part-00000.delta");
        assert_eq!(
            runs.fetch(&loc("s3://bucket/lines/delta/r1")).unwrap(),
            Some(RunPayload::Strata(files))
        );
        assert_eq!(runs.fetch(&loc("words/delta/r1/")).unwrap(), None);
        let err = runs
            .fetch(&loc("s3://elsewhere/lines/delta/r1/"))
            .unwrap_err();
        assert!(err.contains("names bucket \"elsewhere\""), "{err}");
    }

    #[test]
    fn the_seeds_layouts_are_fetched_whole() {
        let mem = Arc::new(InMemory::new());
        put(&mem, "lines/delta/t1/delta.tar.gz", b"gz");
        put(&mem, "words/delta/d1/chroma.sqlite3", b"db");
        put(&mem, "words/delta/d1/seg-1/header.bin", b"h");
        put(&mem, "words/delta/d1/seg-1/data_level0.bin", b"d");
        put(&mem, "words/delta/both/delta.tar.gz", b"gz");
        put(&mem, "words/delta/both/part-0.delta", b"x");
        let runs = ObjectStoreRuns::new(mem, "bucket");
        assert_eq!(
            runs.fetch(&loc("lines/delta/t1/")).unwrap(),
            Some(RunPayload::ChromaTarball((
                "s3://bucket/lines/delta/t1/delta.tar.gz".into(),
                b"gz".to_vec()
            )))
        );
        assert_eq!(
            runs.fetch(&loc("/words/delta/d1")).unwrap(),
            Some(RunPayload::ChromaFiles {
                location: "s3://bucket/words/delta/d1".into(),
                files: vec![
                    ("chroma.sqlite3".into(), b"db".to_vec()),
                    ("seg-1/data_level0.bin".into(), b"d".to_vec()),
                    ("seg-1/header.bin".into(), b"h".to_vec()),
                ],
            })
        );
        let err = runs.fetch(&loc("words/delta/both/")).unwrap_err();
        assert!(err.contains("more than one kind"), "{err}");
    }
}
