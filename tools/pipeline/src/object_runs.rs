//! Runs in an object store: the seed's embedding producer writes its deltas to S3
//! (`lines/delta/{run_id}/` in the snapshot bucket, or `s3://bucket/key`), and
//! [`ObjectStoreRuns`] reads them through `object_store` — S3 in AWS
//! ([`ObjectStoreRuns::s3_from_env`]), or any other `object_store` backend (the tests use
//! the in-memory one). It is a [`RunSource`] like the directory-backed
//! [`super::LocalRuns`]: every `*.delta` object under the run's prefix, in key order,
//! each at most [`MAX_RUN_DELTA_BYTES`].

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use strata_stream::ops::DeltaLocation;

use super::runs::{RunFile, RunSource, MAX_RUN_DELTA_BYTES};

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

    async fn fetch_async(&self, prefix: &ObjectPath) -> Result<Vec<RunFile>, String> {
        let mut metas: Vec<_> = self
            .store
            .list(Some(prefix))
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| format!("listing {}/{prefix}: {e}", self.bucket))?;
        metas.retain(|m| m.location.as_ref().ends_with(".delta"));
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        let mut out = Vec::with_capacity(metas.len());
        for m in metas {
            let name = format!("s3://{}/{}", self.bucket, m.location);
            if m.size > MAX_RUN_DELTA_BYTES {
                return Err(format!(
                    "{name}: {} bytes exceeds the {MAX_RUN_DELTA_BYTES}-byte limit of a run delta",
                    m.size
                ));
            }
            let bytes = self
                .store
                .get(&m.location)
                .await
                .map_err(|e| format!("{name}: {e}"))?
                .bytes()
                .await
                .map_err(|e| format!("{name}: {e}"))?;
            out.push((name, bytes.to_vec()));
        }
        Ok(out)
    }
}

impl RunSource for ObjectStoreRuns {
    fn fetch(&self, location: &DeltaLocation) -> Result<Option<Vec<RunFile>>, String> {
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
        let files = match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle.block_on(fut),
            Err(_) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("starting an async runtime: {e}"))?
                .block_on(fut),
        }?;
        Ok(if files.is_empty() { None } else { Some(files) })
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
        let files = runs.fetch(&loc("lines/delta/r1/")).unwrap().unwrap();
        let bytes: Vec<&[u8]> = files.iter().map(|(_, b)| b.as_slice()).collect();
        assert_eq!(bytes, [&b"first"[..], &b"second"[..]]);
        assert_eq!(files[0].0, "s3://bucket/lines/delta/r1/part-00000.delta");
        assert_eq!(
            runs.fetch(&loc("s3://bucket/lines/delta/r1"))
                .unwrap()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(runs.fetch(&loc("words/delta/r1/")).unwrap(), None);
        let err = runs
            .fetch(&loc("s3://elsewhere/lines/delta/r1/"))
            .unwrap_err();
        assert!(err.contains("names bucket \"elsewhere\""), "{err}");
    }
}
