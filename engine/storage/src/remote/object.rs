//! [`ObjectStorage`]: the one place strata talks to object storage. A blocking facade over
//! the `object_store` crate (S3, the local filesystem, memory) for a store published under
//! a prefix: immutable files written create-if-absent, the head object moved with a
//! conditional write, conditional reads of the head, listings, streamed downloads.
//!
//! Credentials and endpoints come the usual AWS way, never from a URL: the environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` — what a Lambda's
//! role provides —, `AWS_REGION`, `AWS_ENDPOINT_URL` for an S3-compatible server,
//! `AWS_ALLOW_HTTP=true` for one over plain http), or web identity / container
//! credentials, else a named profile (`AWS_PROFILE`, `~/.aws/credentials`; see
//! `aws_profile`). Uploads to S3 carry a SHA-256 checksum the server verifies.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, GetOptions, ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion,
};

use super::aws_profile;
use crate::error::{Result, StorageError};
use crate::storage::check_path;

/// Files of at least this many bytes are uploaded in parts.
pub const MULTIPART_FROM: u64 = 64 << 20;

/// The size of a multipart upload's parts (S3 wants at least 5 MiB but for the last).
pub const PART_BYTES: usize = 16 << 20;

/// The object metadata key under which an immutable file's crc32 is recorded.
pub const CRC_METADATA: &str = "strata-crc32";

/// The bytes of an object and the version tag (ETag) they had.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The content.
    pub bytes: Bytes,
    /// The ETag the store reported, if any.
    pub etag: Option<String>,
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its path relative to the store's prefix.
    pub path: String,
    /// Its length in bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: SystemTime,
}

/// What a conditional read of an object found.
#[derive(Debug, Clone)]
pub enum Refreshed {
    /// The object still has the ETag given.
    Unchanged,
    /// It changed: the new content.
    Changed(Fetched),
    /// It does not exist.
    Missing,
}

/// How a conditional move of the head ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadMove {
    /// The head now holds the bytes written; its new ETag.
    Moved(Option<String>),
    /// The head was not what the caller read (another publisher moved it, or created it
    /// first): nothing was written. Re-read it and compare before deciding anything.
    Conflict,
}

/// A store's place in object storage: an `object_store` backend and a prefix in it.
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    /// Whether the backend can replace an object only if its ETag matches
    /// (`LocalFileSystem` cannot).
    compare_and_swap: bool,
    runtime: tokio::runtime::Runtime,
    requests: AtomicU64,
    /// Files from this size on are uploaded in parts.
    multipart_from: u64,
    /// Whether [`ObjectStorage::check_conditional_writes`] passed (probed once).
    conditions_checked: std::sync::OnceLock<()>,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("url", &self.url)
            .finish()
    }
}

fn remote_error(op: &'static str, location: &str, e: object_store::Error) -> StorageError {
    let kind = match &e {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        object_store::Error::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
        object_store::Error::NotImplemented | object_store::Error::NotSupported { .. } => {
            io::ErrorKind::Unsupported
        }
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::Other,
    };
    StorageError::Io {
        op,
        path: PathBuf::from(location),
        source: io::Error::new(kind, e.to_string()),
    }
}

/// The runtime an [`ObjectStorage`] runs its requests on.
fn runtime(url: &str) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("strata-object-io")
        .enable_all()
        .build()
        .map_err(StorageError::io("start the object storage runtime", url))
}

fn usage(url: &str, why: &str) -> StorageError {
    StorageError::Io {
        op: "open object storage",
        path: PathBuf::from(url),
        source: io::Error::new(io::ErrorKind::InvalidInput, why.to_string()),
    }
}

impl ObjectStorage {
    /// The store at `url`: `s3://BUCKET/PREFIX` (credentials and endpoint from the
    /// environment, see the module doc) or `file:///ABSOLUTE/DIR` (a local directory laid
    /// out like a bucket; it cannot compare-and-swap, so a publish there needs the unsafe
    /// unconditional mode).
    pub fn from_url(url: &str) -> Result<ObjectStorage> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(usage(url, "expected s3://BUCKET/PREFIX"));
            }
            if bucket.contains(['@', ':']) {
                return Err(usage(
                    url,
                    "credentials never go in the URL: use the environment or the Lambda's role",
                ));
            }
            let runtime = runtime(url)?;
            let mut builder = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_checksum_algorithm(object_store::aws::Checksum::SHA256);
            if aws_profile::wanted() {
                builder =
                    builder.with_credentials(Arc::new(aws_profile::ProfileCredentials::new()));
                if let Some(region) = aws_profile::region(&runtime) {
                    builder = builder.with_region(region);
                }
            }
            let s3 = builder
                .build()
                .map_err(|e| remote_error("open object storage", url, e))?;
            ObjectStorage::with_runtime(Arc::new(s3), prefix, url, true, runtime)
        } else if let Some(dir) = url.strip_prefix("file://") {
            if !dir.starts_with('/') {
                return Err(usage(url, "expected file:///ABSOLUTE/DIR"));
            }
            std::fs::create_dir_all(dir).map_err(StorageError::io("create directory", dir))?;
            let local = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| remote_error("open object storage", url, e))?;
            ObjectStorage::new(Arc::new(local), "", url, false)
        } else {
            Err(usage(url, "expected s3://BUCKET/PREFIX or file:///DIR"))
        }
    }

    /// A store under `prefix` of any backend; `url` names it in messages;
    /// `compare_and_swap` says whether the backend honours `PutMode::Update`.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        url: &str,
        compare_and_swap: bool,
    ) -> Result<ObjectStorage> {
        ObjectStorage::with_runtime(store, prefix, url, compare_and_swap, runtime(url)?)
    }

    fn with_runtime(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        url: &str,
        compare_and_swap: bool,
        runtime: tokio::runtime::Runtime,
    ) -> Result<ObjectStorage> {
        let prefix = prefix.trim_matches('/');
        check_path(prefix)?;
        Ok(ObjectStorage {
            store,
            prefix: prefix.to_string(),
            url: url.trim_end_matches('/').to_string(),
            compare_and_swap,
            runtime,
            requests: AtomicU64::new(0),
            multipart_from: MULTIPART_FROM,
            conditions_checked: std::sync::OnceLock::new(),
        })
    }

    /// The URL it was opened with (no credentials are ever in it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the backend can move the head with a compare-and-swap.
    pub fn compare_and_swap(&self) -> bool {
        self.compare_and_swap
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Where a relative path lives, for messages.
    pub fn location(&self, path: &str) -> String {
        format!("{}/{path}", self.url)
    }

    fn key(&self, path: &str) -> Result<ObjectPath> {
        check_path(path)?;
        Ok(ObjectPath::from(crate::layout::join(&self.prefix, path)))
    }

    fn count(&self, n: u64) {
        self.requests.fetch_add(n, Ordering::Relaxed);
    }

    /// Run a future to completion, also from inside another async runtime (on a scoped
    /// thread then, since a runtime cannot block inside another).
    fn run<F>(&self, f: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_err() {
            return self.runtime.block_on(f);
        }
        std::thread::scope(|s| {
            s.spawn(|| self.runtime.block_on(f))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Read a whole object; `None` if it does not exist. At most `limit` bytes: a bigger
    /// object is an error, not an allocation.
    pub fn get(&self, path: &str, limit: u64) -> Result<Option<Fetched>> {
        match self.get_if_changed(path, None, limit)? {
            Refreshed::Changed(f) => Ok(Some(f)),
            Refreshed::Missing => Ok(None),
            Refreshed::Unchanged => unreachable!("an unconditional GET is never unchanged"),
        }
    }

    /// Read an object unless its ETag is still `etag` (one conditional GET).
    pub fn get_if_changed(&self, path: &str, etag: Option<&str>, limit: u64) -> Result<Refreshed> {
        let key = self.key(path)?;
        let location = self.location(path);
        self.count(1);
        let options = GetOptions {
            if_none_match: etag.map(str::to_string),
            ..GetOptions::default()
        };
        self.run(async {
            let got = match self.store.get_opts(&key, options).await {
                Ok(got) => got,
                Err(object_store::Error::NotModified { .. }) => return Ok(Refreshed::Unchanged),
                Err(object_store::Error::NotFound { .. }) => return Ok(Refreshed::Missing),
                Err(e) => return Err(remote_error("get", &location, e)),
            };
            if got.meta.size > limit {
                return Err(StorageError::Io {
                    op: "get",
                    path: PathBuf::from(&location),
                    source: io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} bytes, more than the limit of {limit}", got.meta.size),
                    ),
                });
            }
            let etag = got.meta.e_tag.clone();
            let bytes = got
                .bytes()
                .await
                .map_err(|e| remote_error("get", &location, e))?;
            Ok(Refreshed::Changed(Fetched { bytes, etag }))
        })
    }

    /// Stream an object into `out`; returns its length, after checking that the bytes
    /// received are as many as the store said.
    pub fn download(&self, path: &str, out: &mut (dyn io::Write + Send)) -> Result<u64> {
        let key = self.key(path)?;
        let location = self.location(path);
        self.count(1);
        self.run(async {
            let got = self
                .store
                .get(&key)
                .await
                .map_err(|e| remote_error("get", &location, e))?;
            let expected = got.meta.size;
            let mut stream = got.into_stream();
            let mut n = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| remote_error("get", &location, e))?;
                n += chunk.len() as u64;
                out.write_all(&chunk)
                    .map_err(StorageError::io("write the download of", &location))?;
            }
            if n != expected {
                return Err(StorageError::Io {
                    op: "get",
                    path: PathBuf::from(&location),
                    source: io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("received {n} of {expected} bytes"),
                    ),
                });
            }
            Ok(n)
        })
    }

    /// Every object under the directory `dir`.
    pub fn list(&self, dir: &str) -> Result<Vec<Listed>> {
        let key = self.key(dir)?;
        let location = self.location(dir);
        let strip = format!("{}/", self.prefix);
        self.count(1);
        let metas: Vec<object_store::ObjectMeta> = self.run(async {
            self.store
                .list(Some(&key))
                .try_collect()
                .await
                .map_err(|e| remote_error("list", &location, e))
        })?;
        Ok(metas
            .into_iter()
            .map(|m| {
                let full = m.location.as_ref();
                let rel = if self.prefix.is_empty() {
                    full
                } else {
                    full.strip_prefix(&strip).unwrap_or(full)
                };
                Listed {
                    path: rel.to_string(),
                    size: m.size,
                    modified: SystemTime::from(m.last_modified),
                }
            })
            .collect())
    }

    /// Write an immutable object unless one exists under that name (`If-None-Match: *`
    /// on S3), recording `crc` (crc32 of `bytes`) as its `strata-crc32` metadata where
    /// the backend keeps metadata: `Ok(true)` if written, `Ok(false)` if something was
    /// there (perhaps this very write, retried after a lost answer: compare before
    /// concluding, see [`ObjectStorage::crc32_of`]).
    pub fn put_new(&self, path: &str, bytes: Bytes, crc: u32) -> Result<bool> {
        let written = self.put_new_all(vec![(path.to_string(), bytes, crc)], 1)?;
        Ok(written[0])
    }

    fn create_options(&self, crc: u32) -> PutOptions {
        let mut attributes = Attributes::new();
        if self.compare_and_swap {
            attributes.insert(
                Attribute::Metadata(CRC_METADATA.into()),
                crc.to_string().into(),
            );
        }
        PutOptions {
            mode: PutMode::Create,
            attributes,
            ..PutOptions::default()
        }
    }

    /// The `strata-crc32` metadata of an object: `None` if it does not exist,
    /// `Some(None)` if it has none (a backend without metadata, or written by other
    /// means).
    pub fn crc32_of(&self, path: &str) -> Result<Option<Option<u32>>> {
        let key = self.key(path)?;
        let location = self.location(path);
        self.count(1);
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        self.run(async {
            match self.store.get_opts(&key, options).await {
                Ok(got) => Ok(Some(
                    got.attributes
                        .get(&Attribute::Metadata(CRC_METADATA.into()))
                        .and_then(|v| v.as_ref().parse().ok()),
                )),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(remote_error("head", &location, e)),
            }
        })
    }

    /// Upload several immutable objects (path, bytes, crc32), at most `in_flight` at a
    /// time; for each, whether it was written (see [`ObjectStorage::put_new`]).
    pub fn put_new_all(
        &self,
        files: Vec<(String, Bytes, u32)>,
        in_flight: usize,
    ) -> Result<Vec<bool>> {
        for (path, ..) in &files {
            check_path(path)?;
        }
        self.count(files.len() as u64);
        self.run(async {
            futures::stream::iter(
                files
                    .into_iter()
                    .map(|(path, bytes, crc)| self.create_one(path, bytes, crc)),
            )
            .buffered(in_flight.max(1))
            .try_collect()
            .await
        })
    }

    /// Create one immutable object: one conditional PUT, or, from
    /// [`MULTIPART_FROM`] bytes on, a multipart upload of [`PART_BYTES`] parts (four in
    /// flight). S3 cannot make a multipart upload create-if-absent through `object_store`,
    /// so that path first checks that nothing is there; the publisher's crc32 check of
    /// what it finds covers the window (the object carries the crc32 metadata either way).
    async fn create_one(&self, path: String, bytes: Bytes, crc: u32) -> Result<bool> {
        let key = ObjectPath::from(crate::layout::join(&self.prefix, &path));
        let location = self.location(&path);
        if (bytes.len() as u64) < self.multipart_from {
            return match self
                .store
                .put_opts(
                    &key,
                    PutPayload::from_bytes(bytes),
                    self.create_options(crc),
                )
                .await
            {
                Ok(_) => Ok(true),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                Err(e) => Err(remote_error("put", &location, e)),
            };
        }
        match self.store.head(&key).await {
            Ok(_) => return Ok(false),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(remote_error("head", &location, e)),
        }
        let options = object_store::PutMultipartOptions {
            attributes: self.create_options(crc).attributes,
            ..Default::default()
        };
        let upload = self
            .store
            .put_multipart_opts(&key, options)
            .await
            .map_err(|e| remote_error("start a multipart upload of", &location, e))?;
        let mut writer = object_store::WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        for part in bytes.chunks(PART_BYTES) {
            writer
                .wait_for_capacity(4)
                .await
                .map_err(|e| remote_error("upload a part of", &location, e))?;
            writer.put(bytes.slice_ref(part));
        }
        writer
            .finish()
            .await
            .map_err(|e| remote_error("complete the multipart upload of", &location, e))?;
        Ok(true)
    }

    /// Upload files of at least `bytes` bytes in parts (tests lower it).
    pub fn set_multipart_from(&mut self, bytes: u64) {
        self.multipart_from = bytes;
    }

    /// Move the head object at `path` to `bytes`: only if its ETag is still `expected`
    /// (`If-Match`), or, with `expected = None`, only if it does not exist yet. Where the
    /// backend cannot compare-and-swap, `unconditional` must be set (and the caller takes
    /// the risk of overwriting a concurrent publish); otherwise that is an error.
    pub fn move_head(
        &self,
        path: &str,
        bytes: Vec<u8>,
        expected: Option<&str>,
        unconditional: bool,
    ) -> Result<HeadMove> {
        let key = self.key(path)?;
        let location = self.location(path);
        let mode = match (expected, self.compare_and_swap, unconditional) {
            (None, _, false) => PutMode::Create,
            (Some(etag), true, false) => PutMode::Update(UpdateVersion {
                e_tag: Some(etag.to_string()),
                version: None,
            }),
            (_, _, true) => PutMode::Overwrite,
            (Some(_), false, false) => {
                return Err(StorageError::Io {
                    op: "move the head of",
                    path: PathBuf::from(&location),
                    source: io::Error::new(
                        io::ErrorKind::Unsupported,
                        "this object store cannot replace an object only if it is unchanged \
                         (compare-and-swap), so a concurrent publish could be lost; refusing \
                         (the unsafe unconditional mode overrides this)",
                    ),
                })
            }
        };
        self.count(1);
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        self.run(async {
            match self
                .store
                .put_opts(&key, PutPayload::from(bytes), options)
                .await
            {
                Ok(r) => Ok(HeadMove::Moved(r.e_tag)),
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. },
                ) => Ok(HeadMove::Conflict),
                Err(e) => Err(remote_error("move the head of", &location, e)),
            }
        })
    }

    /// Check, once per `ObjectStorage`, that the server honours the conditions publishing
    /// relies on: a second create-if-absent of one object must fail, and so must a
    /// replacement naming a wrong ETag (where the backend claims compare-and-swap). A
    /// server that ignores either (some S3-compatible servers do) would let a publish
    /// overwrite another's head: it is refused. Costs four requests on a probe object
    /// under `_strata/`, which is deleted.
    pub fn check_conditional_writes(&self) -> Result<()> {
        if self.conditions_checked.get().is_some() {
            return Ok(());
        }
        let probe = format!("_strata/probe-{}", crate::now_ms());
        let key = self.key(&probe)?;
        let location = self.location(&probe);
        let unsafe_server = |what: &str| StorageError::Io {
            op: "check the conditional writes of",
            path: PathBuf::from(self.url()),
            source: io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the server ignores {what}, so a publish could overwrite a concurrent one; \
                     refusing to publish here"
                ),
            ),
        };
        self.count(4);
        self.run(async {
            let create = || PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            let put = |options: PutOptions| {
                self.store
                    .put_opts(&key, PutPayload::from_static(b"probe"), options)
            };
            match put(create()).await {
                Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(remote_error("put", &location, e)),
            }
            let second = put(create()).await;
            let stale = put(PutOptions {
                mode: PutMode::Update(UpdateVersion {
                    e_tag: Some("\"strata-probe-not-an-etag\"".into()),
                    version: None,
                }),
                ..PutOptions::default()
            });
            let stale = if self.compare_and_swap {
                Some(stale.await)
            } else {
                None
            };
            let _ = self.store.delete(&key).await;
            match second {
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Ok(_) => return Err(unsafe_server("If-None-Match: * (create-if-absent)")),
                Err(e) => return Err(remote_error("put", &location, e)),
            }
            match stale {
                None | Some(Err(object_store::Error::Precondition { .. })) => Ok(()),
                Some(Ok(_)) => Err(unsafe_server("If-Match (compare-and-swap)")),
                Some(Err(e)) => Err(remote_error("put", &location, e)),
            }
        })?;
        let _ = self.conditions_checked.set(());
        Ok(())
    }

    /// Delete objects (a missing one is not an error).
    pub fn delete_all(&self, paths: &[String]) -> Result<()> {
        let mut keys = Vec::with_capacity(paths.len());
        for p in paths {
            keys.push(self.key(p)?);
        }
        self.count(paths.len() as u64);
        self.run(async {
            let results: Vec<_> = self
                .store
                .delete_stream(futures::stream::iter(keys.into_iter().map(Ok)).boxed())
                .collect()
                .await;
            for r in results {
                match r {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(remote_error("delete", &self.url, e)),
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn memory() -> ObjectStorage {
        ObjectStorage::new(Arc::new(InMemory::new()), "a/b", "memory://t/a/b", true).unwrap()
    }

    #[test]
    fn immutable_objects_are_written_once() {
        let o = memory();
        assert!(o
            .put_new("segments/1.seg", Bytes::from_static(b"one"), 7)
            .unwrap());
        assert!(!o
            .put_new("segments/1.seg", Bytes::from_static(b"two"), 8)
            .unwrap());
        assert_eq!(o.crc32_of("segments/1.seg").unwrap(), Some(Some(7)));
        assert_eq!(o.crc32_of("segments/2.seg").unwrap(), None);
        let got = o.get("segments/1.seg", 10).unwrap().unwrap();
        assert_eq!(&got.bytes[..], b"one");
        let listed = o.list("segments").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].path.as_str(), listed[0].size),
            ("segments/1.seg", 3)
        );
        assert!(o.get("segments/2.seg", 10).unwrap().is_none());
        let err = o.get("segments/1.seg", 2).unwrap_err();
        assert!(
            err.to_string().contains("more than the limit of 2"),
            "{err}"
        );
        let mut out = Vec::new();
        assert_eq!(o.download("segments/1.seg", &mut out).unwrap(), 3);
        assert_eq!(out, b"one");
        o.delete_all(&["segments/1.seg".into(), "segments/9.seg".into()])
            .unwrap();
        assert!(o.list("segments").unwrap().is_empty());
    }

    #[test]
    fn large_files_go_up_in_parts_and_are_written_once() {
        let mut o = memory();
        o.set_multipart_from(1);
        let big = Bytes::from(vec![7u8; PART_BYTES + 10]);
        assert!(o.put_new("segments/9.seg", big.clone(), 5).unwrap());
        assert!(!o
            .put_new("segments/9.seg", Bytes::from_static(b"x"), 6)
            .unwrap());
        let got = o.get("segments/9.seg", u64::MAX).unwrap().unwrap();
        assert_eq!(got.bytes, big);
        assert_eq!(o.crc32_of("segments/9.seg").unwrap(), Some(Some(5)));
    }

    #[test]
    fn the_head_moves_only_from_the_version_read() {
        let o = memory();
        let HeadMove::Moved(first) = o.move_head("HEAD", b"1".to_vec(), None, false).unwrap()
        else {
            panic!("creating the head failed")
        };
        assert_eq!(
            o.move_head("HEAD", b"x".to_vec(), None, false).unwrap(),
            HeadMove::Conflict
        );
        let first = first.unwrap();
        assert!(matches!(
            o.move_head("HEAD", b"2".to_vec(), Some(&first), false)
                .unwrap(),
            HeadMove::Moved(_)
        ));
        // The ETag read before the second move is stale now.
        assert_eq!(
            o.move_head("HEAD", b"3".to_vec(), Some(&first), false)
                .unwrap(),
            HeadMove::Conflict
        );
        assert_eq!(&o.get("HEAD", 10).unwrap().unwrap().bytes[..], b"2");
        assert!(matches!(
            o.get_if_changed("HEAD", Some(&first), 10).unwrap(),
            Refreshed::Changed(_)
        ));
        let now = o.get("HEAD", 10).unwrap().unwrap().etag.unwrap();
        assert!(matches!(
            o.get_if_changed("HEAD", Some(&now), 10).unwrap(),
            Refreshed::Unchanged
        ));
    }

    #[test]
    fn a_backend_without_compare_and_swap_refuses_to_replace_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let o = ObjectStorage::from_url(&url).unwrap();
        assert!(!o.compare_and_swap());
        let HeadMove::Moved(etag) = o.move_head("HEAD", b"1".to_vec(), None, false).unwrap() else {
            panic!("creating the head failed")
        };
        let err = o
            .move_head("HEAD", b"2".to_vec(), etag.as_deref(), false)
            .unwrap_err();
        assert!(err.to_string().contains("compare-and-swap"), "{err}");
        assert!(matches!(
            o.move_head("HEAD", b"2".to_vec(), etag.as_deref(), true)
                .unwrap(),
            HeadMove::Moved(_)
        ));
    }

    /// A server that accepts every conditional write as unconditional.
    #[derive(Debug, Default)]
    struct IgnoresConditions(InMemory);

    impl std::fmt::Display for IgnoresConditions {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "IgnoresConditions")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for IgnoresConditions {
        async fn put_opts(
            &self,
            location: &ObjectPath,
            payload: PutPayload,
            _opts: PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            self.0.put(location, payload).await
        }
        async fn put_multipart_opts(
            &self,
            location: &ObjectPath,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.0.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &ObjectPath,
            options: GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.0.get_opts(location, options).await
        }
        async fn delete(&self, location: &ObjectPath) -> object_store::Result<()> {
            self.0.delete(location).await
        }
        fn list(
            &self,
            prefix: Option<&ObjectPath>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
        {
            self.0.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&ObjectPath>,
        ) -> object_store::Result<object_store::ListResult> {
            self.0.list_with_delimiter(prefix).await
        }
        async fn copy(&self, from: &ObjectPath, to: &ObjectPath) -> object_store::Result<()> {
            self.0.copy(from, to).await
        }
        async fn copy_if_not_exists(
            &self,
            from: &ObjectPath,
            to: &ObjectPath,
        ) -> object_store::Result<()> {
            self.0.copy_if_not_exists(from, to).await
        }
    }

    #[test]
    fn a_server_that_ignores_conditions_is_detected_and_refused() {
        assert!(memory().check_conditional_writes().is_ok());
        let o = ObjectStorage::new(
            Arc::new(IgnoresConditions::default()),
            "p",
            "memory://ignores/p",
            true,
        )
        .unwrap();
        let err = o.check_conditional_writes().unwrap_err().to_string();
        assert!(err.contains("ignores If-None-Match"), "{err}");
        assert!(
            o.list("_strata").unwrap().is_empty(),
            "the probe is deleted"
        );
    }

    #[test]
    fn urls_say_what_is_wrong() {
        for (url, want) in [
            ("s3://", "expected s3://BUCKET/PREFIX"),
            (
                "s3://key:secret@bucket/p",
                "credentials never go in the URL",
            ),
            ("file://relative", "ABSOLUTE"),
            ("gs://b/p", "expected s3://"),
        ] {
            let err = ObjectStorage::from_url(url).unwrap_err().to_string();
            assert!(err.contains(want), "{url}: {err}");
        }
    }
}
