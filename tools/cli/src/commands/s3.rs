//! The seed's snapshot layout in S3, read through `object_store` (credentials, region,
//! `AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP` from the environment):
//! `{prefix}/snapshot/latest-pointer.txt` names the version, whose objects are
//! `{prefix}/snapshot/timestamped/{version}/snapshot.tar.gz` (current) or the persist
//! directory's files one object each (legacy; `.snapshot_hash` is skipped).

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use strata_chroma::{ChromaDir, Limits};

use crate::error::{CliError, CliResult};

/// The largest `latest-pointer.txt` read.
const MAX_POINTER_BYTES: u64 = 4096;

fn fail(what: impl Into<String>) -> CliError {
    CliError::failed(what.into())
}

/// A version id as the seed writes it (`20260714_123456_123456_ab12cd34`): plain
/// characters only, so it cannot move the key outside the prefix.
fn check_version(v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.len() <= 128
        && v != "."
        && v != ".."
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("latest-pointer.txt holds {v:?}, not a version id"))
    }
}

async fn get_bytes(
    store: &dyn ObjectStore,
    url: &str,
    key: &ObjectPath,
    limit: u64,
) -> CliResult<Option<Vec<u8>>> {
    let meta = match store.head(key).await {
        Ok(m) => m,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(fail(format!("{url}/{key}: {e}"))),
    };
    if meta.size > limit {
        return Err(fail(format!(
            "{url}/{key}: {} bytes, over the limit of {limit}",
            meta.size
        )));
    }
    let got = store
        .get(key)
        .await
        .map_err(|e| fail(format!("{url}/{key}: {e}")))?;
    let bytes = got
        .bytes()
        .await
        .map_err(|e| fail(format!("{url}/{key}: {e}")))?;
    Ok(Some(bytes.to_vec()))
}

async fn fetch(store: Arc<dyn ObjectStore>, bucket: &str, prefix: &str) -> CliResult<ChromaDir> {
    let url = format!("s3://{bucket}");
    let limits = Limits::default();
    let pointer = ObjectPath::from(format!("{prefix}/snapshot/latest-pointer.txt"));
    let version = get_bytes(store.as_ref(), &url, &pointer, MAX_POINTER_BYTES)
        .await?
        .ok_or_else(|| {
            fail(format!(
                "{url}/{pointer}: not found (no snapshot published)"
            ))
        })?;
    let version = String::from_utf8_lossy(&version).trim().to_string();
    check_version(&version).map_err(|e| fail(format!("{url}/{pointer}: {e}")))?;
    let base = format!("{prefix}/snapshot/timestamped/{version}");
    let tarball = ObjectPath::from(format!("{base}/snapshot.tar.gz"));
    if let Some(bytes) = get_bytes(store.as_ref(), &url, &tarball, limits.max_total_bytes).await? {
        return ChromaDir::from_tar_gz(&bytes, &limits)
            .map_err(|e| fail(format!("{url}/{tarball}: {e}")));
    }
    let base_path = ObjectPath::from(base.clone());
    let metas: Vec<_> = store
        .list(Some(&base_path))
        .try_collect()
        .await
        .map_err(|e| fail(format!("listing {url}/{base}/: {e}")))?;
    let mut files = Vec::new();
    for m in metas {
        let key = m.location.as_ref();
        let Some(rel) = key.strip_prefix(&format!("{base}/")) else {
            continue;
        };
        if rel.is_empty() || rel.ends_with('/') || rel == ".snapshot_hash" {
            continue;
        }
        let bytes = get_bytes(store.as_ref(), &url, &m.location, limits.max_member_bytes)
            .await?
            .ok_or_else(|| fail(format!("{url}/{key}: vanished while reading")))?;
        files.push((rel.to_string(), bytes));
    }
    if files.is_empty() {
        return Err(fail(format!(
            "{url}/{base}/: neither snapshot.tar.gz nor a persist directory's files"
        )));
    }
    ChromaDir::from_files(files, &limits).map_err(|e| fail(format!("{url}/{base}/: {e}")))
}

/// Open `bucket/prefix` (the part of `s3://bucket/prefix` after the scheme): the
/// directory of the version `latest-pointer.txt` names, and the collection name the
/// prefix implies (its last part).
pub fn open_snapshot(rest: &str) -> CliResult<(ChromaDir, Option<String>)> {
    let rest = rest.trim_end_matches('/');
    let Some((bucket, prefix)) = rest.split_once('/') else {
        return Err(CliError::usage(format!(
            "s3://{rest}: expected s3://BUCKET/COLLECTION (the seed's layout)"
        )));
    };
    if bucket.is_empty() || prefix.is_empty() {
        return Err(CliError::usage(format!(
            "s3://{rest}: expected s3://BUCKET/COLLECTION"
        )));
    }
    let s3 = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .map_err(|e| fail(format!("S3 bucket {bucket:?}: {e}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("starting the async runtime: {e}")))?;
    let dir = runtime.block_on(fetch(Arc::new(s3), bucket, prefix))?;
    let implied = prefix.rsplit('/').next().map(str::to_string);
    Ok((dir, implied))
}
