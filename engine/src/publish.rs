//! Publishing a store to object storage ([`Writer::publish`]): upload the files the
//! retained and pinned versions reference that the destination lacks, then the version
//! files, then move the head object with a conditional write. A reader anywhere opens the
//! result with [`Reader::open_remote`](crate::Reader::open_remote).
//!
//! The protocol, and why each step is safe when a publisher dies or races another:
//!
//! 1. Read the head object (and its ETag). If there is one, it must be this store's
//!    (same store id) and each collection's head must be a version of this store's
//!    history: one it retains, byte for byte (same crc32 of the version file), or one it
//!    published before (the manifest remembers the crc32 of each published head, since
//!    local retention may have dropped the version since). Otherwise the destination holds
//!    another history and the publish is refused before it uploads anything.
//! 2. List what the destination holds; upload every missing file create-if-absent, with
//!    its crc32 as metadata. A file already there that the remote head does not reference
//!    (a dead publisher's leftover, or another history's) must carry the same crc32, or
//!    the publish is refused. File names are never reused (the file-number watermark), so
//!    a name means one content.
//! 3. Move the head: `If-Match` on the ETag read in 1, or create-if-absent for the first
//!    publish. If that fails the head is re-read: if it is what this publish wrote (a
//!    retried request that had landed) the publish succeeded; otherwise another publisher
//!    won and this one returns [`Error::PublishConflict`], having overwritten nothing.
//!
//! Until step 3 the head names the previous complete version; the files uploaded before a
//! crash are reused by the next publish.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use strata_formats::VersionRecord;
use strata_storage::remote::{
    HeadMove, ObjectStorage, RemoteCollection, RemoteHead, HEAD_FORMAT, HEAD_OBJECT, MAX_HEAD_BYTES,
};
use strata_storage::FileBytes;

use crate::clock::now_ms;
use crate::error::{Error, Result};
use crate::layout;
use crate::store::Role;
use crate::writer::Writer;

/// How [`Writer::publish_to`] publishes.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Uploads in flight at once (default 8).
    pub in_flight: usize,
    /// Move the head without a compare-and-swap where the backend cannot do one
    /// (`file://`): a concurrent publish could then be overwritten. Off by default, and
    /// then such a backend is refused once a head exists.
    pub unsafe_unconditional: bool,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            in_flight: 8,
            unsafe_unconditional: false,
        }
    }
}

/// What a publish did.
#[derive(Debug, Clone)]
pub struct PublishReport {
    /// The destination.
    pub url: String,
    /// The head object now published.
    pub head: RemoteHead,
    /// Whether the destination already had exactly this state (nothing was uploaded and
    /// the head was not moved).
    pub unchanged: bool,
    /// Files uploaded (segments, deltas and version files).
    pub files_uploaded: u64,
    /// Their bytes.
    pub bytes_uploaded: u64,
    /// Files the published versions reference that the destination already had.
    pub files_present: u64,
    /// Requests sent to the object store.
    pub requests: u64,
}

/// One file a published version needs.
struct Needed {
    path: String,
    bytes: FileBytes,
}

/// What a publish will publish: the head object (its time set when it is written) and
/// every file, data files first.
struct Plan {
    head: RemoteHead,
    files: Vec<Needed>,
    /// How many of `files` (the last ones) are version files.
    versions: usize,
}

fn head_text(head: Option<&RemoteHead>) -> String {
    head.map_or_else(|| "none".to_string(), RemoteHead::describe)
}

impl Writer {
    /// Publish the store to `url` (`s3://BUCKET/PREFIX`, or `file:///DIR` with
    /// [`PublishOptions::unsafe_unconditional`]) with the default options.
    pub fn publish(&self, url: &str) -> Result<PublishReport> {
        let remote = ObjectStorage::from_url(url)?;
        self.publish_to(&remote, &PublishOptions::default())
    }

    /// Publish the store to `remote`; see the module documentation for the protocol.
    pub fn publish_to(
        &self,
        remote: &ObjectStorage,
        options: &PublishOptions,
    ) -> Result<PublishReport> {
        let requests_before = remote.requests();
        // The plan maps every file it needs under the writer lock: GC may unlink them
        // afterwards, the maps keep the bytes readable.
        let mut plan = {
            let _g = self.lock()?;
            self.publish_plan()?
        };
        let url = remote.url().to_string();
        remote.check_conditional_writes()?;
        let current = match remote.get(HEAD_OBJECT, MAX_HEAD_BYTES as u64)? {
            Some(f) => {
                let head = RemoteHead::parse(&f.bytes).map_err(|e| Error::PublishRefused {
                    url: url.clone(),
                    reason: format!("its head object is unreadable: {e}"),
                })?;
                Some((head, f.etag))
            }
            None => None,
        };
        if let Some((head, _)) = &current {
            if !remote.compare_and_swap() && !options.unsafe_unconditional {
                return Err(Error::PublishRefused {
                    url,
                    reason: "a head exists there and this object store cannot replace it only \
                             if unchanged (compare-and-swap), so a concurrent publish could be \
                             lost; the unsafe unconditional mode (--unsafe-unconditional) \
                             overrides this"
                        .into(),
                });
            }
            self.check_history(&url, head, &plan)?;
            if head.collections == plan.head.collections {
                self.remember_published(&plan.head)?;
                return Ok(PublishReport {
                    url,
                    head: head.clone(),
                    unchanged: true,
                    files_uploaded: 0,
                    bytes_uploaded: 0,
                    files_present: plan.files.len() as u64,
                    requests: remote.requests() - requests_before,
                });
            }
        }
        let trusted = current
            .as_ref()
            .map(|(h, _)| self.files_of_heads(h))
            .transpose()?
            .unwrap_or_default();
        let (uploaded, bytes, present) =
            upload(remote, &url, &plan.files, plan.versions, &trusted, options)?;
        plan.head.published_ms = now_ms();
        move_head(remote, &url, &plan.head, current.as_ref(), options)?;
        self.remember_published(&plan.head)?;
        Ok(PublishReport {
            url,
            head: plan.head,
            unchanged: false,
            files_uploaded: uploaded,
            bytes_uploaded: bytes,
            files_present: present,
            requests: remote.requests() - requests_before,
        })
    }

    /// The head object this store would publish now, and the files it needs (mapped).
    fn publish_plan(&self) -> Result<Plan> {
        let m = self.manifest();
        let storage = self.core().storage();
        let mut collections = BTreeMap::new();
        let mut data: Vec<Needed> = Vec::new();
        let mut versions: Vec<Needed> = Vec::new();
        let mut seen = HashSet::new();
        for info in m.collections()? {
            let Some(head) = m.head(&info.name)? else {
                continue;
            };
            let mut numbers = Vec::new();
            let mut head_crc = 0;
            for record in m.versions(&info.name)? {
                let path = layout::version_file(&info.name, record.version);
                let bytes = storage.map(&path)?;
                if record.version == head {
                    head_crc = self.version_identity(&bytes, &record)?;
                }
                numbers.push(record.version);
                versions.push(Needed { path, bytes });
                let files = record
                    .segments
                    .iter()
                    .map(|s| layout::segment(&s.file))
                    .chain(record.deltas.iter().map(|d| layout::delta(&d.file)));
                for path in files {
                    if seen.insert(path.clone()) {
                        data.push(Needed {
                            bytes: storage.map(&path)?,
                            path,
                        });
                    }
                }
            }
            numbers.sort_unstable();
            collections.insert(
                info.name.clone(),
                RemoteCollection {
                    head,
                    head_crc,
                    versions: numbers,
                    pins: m.pins(&info.name)?.into_iter().collect(),
                },
            );
        }
        let n_versions = versions.len();
        data.extend(versions);
        Ok(Plan {
            head: RemoteHead {
                format: HEAD_FORMAT,
                store_id: self.store_id().to_string(),
                published_ms: 0,
                collections,
            },
            files: data,
            versions: n_versions,
        })
    }

    /// A version's identity for the history check: crc32 of its version file's bytes
    /// followed by the crc32 (u32 LE) of every segment, then delta, it references. The
    /// record alone is not enough: two diverged copies can write byte-identical records
    /// (same numbers, sizes and millisecond) over deltas of different content.
    fn version_identity(&self, version_file: &[u8], record: &VersionRecord) -> Result<u32> {
        let storage = self.core().storage();
        let mut h = crc32fast::Hasher::new();
        h.update(version_file);
        let files = record
            .segments
            .iter()
            .map(|s| layout::segment(&s.file))
            .chain(record.deltas.iter().map(|d| layout::delta(&d.file)));
        for path in files {
            h.update(&crc32fast::hash(&storage.map(&path)?).to_le_bytes());
        }
        Ok(h.finalize())
    }

    /// Record every collection's published head in the manifest (see
    /// `Manifest::put_published`).
    fn remember_published(&self, head: &RemoteHead) -> Result<()> {
        for (name, c) in &head.collections {
            if self.manifest().published_crc(name, c.head)? != Some(c.head_crc) {
                self.manifest().put_published(name, c.head, c.head_crc)?;
            }
        }
        Ok(())
    }

    /// Refuse unless `remote` is this store's and every collection's head there is a
    /// version of this store's history, byte for byte (retained, or published before).
    fn check_history(&self, url: &str, remote: &RemoteHead, plan: &Plan) -> Result<()> {
        let refuse = |reason: String| Error::PublishRefused {
            url: url.to_string(),
            reason,
        };
        if remote.store_id != plan.head.store_id {
            return Err(refuse(format!(
                "it holds another store ({}); this is store {}",
                remote.describe(),
                plan.head.store_id
            )));
        }
        for (name, theirs) in &remote.collections {
            if !plan.head.collections.contains_key(name) {
                // Dropped here since: the new head leaves it out.
                continue;
            }
            let path = layout::version_file(name, theirs.head);
            let mine = match self.manifest().version(name, theirs.head)? {
                Some(record) => {
                    let bytes = self.core().storage().read(&path)?;
                    Some(self.version_identity(&bytes, &record)?)
                }
                // Dropped by local retention since: what this store published is known.
                None => self.manifest().published_crc(name, theirs.head)?,
            };
            if mine != Some(theirs.head_crc) {
                return Err(refuse(format!(
                    "its head {name}@{} is not a version of this store's history ({}) — \
                     another copy of the store published it; the head there is {}, here {}",
                    theirs.head,
                    if mine.is_some() {
                        "a different record under that number"
                    } else {
                        "a version this store never made nor published"
                    },
                    remote.describe(),
                    plan.head.describe()
                )));
            }
        }
        Ok(())
    }

    /// The files the remote head's head versions reference (in this store's history, so
    /// their names mean this store's bytes).
    fn files_of_heads(&self, remote: &RemoteHead) -> Result<HashSet<String>> {
        let mut out = HashSet::new();
        for (name, c) in &remote.collections {
            if let Some(record) = self.manifest().version(name, c.head)? {
                out.insert(layout::version_file(name, c.head));
                out.extend(record.segments.iter().map(|s| layout::segment(&s.file)));
                out.extend(record.deltas.iter().map(|d| layout::delta(&d.file)));
            }
        }
        Ok(out)
    }
}

/// Move the head object to `head`: `If-Match` on the ETag of `current` (the head read), or
/// create-if-absent when there was none. A conflict is re-read once: the head holding
/// exactly `head` means a retried request of ours landed; anything else is another
/// publisher's win ([`Error::PublishConflict`]).
fn move_head(
    remote: &ObjectStorage,
    url: &str,
    head: &RemoteHead,
    current: Option<&(RemoteHead, Option<String>)>,
    options: &PublishOptions,
) -> Result<()> {
    let expected = match current {
        None => None,
        Some((_, Some(etag))) => Some(etag.as_str()),
        Some((_, None)) => {
            return Err(Error::PublishRefused {
                url: url.to_string(),
                reason: "the object store gave no ETag for the head, so it cannot be moved \
                         conditionally"
                    .into(),
            })
        }
    };
    strata_storage::failpoint!(
        "publish: move head",
        std::path::PathBuf::from(remote.location(HEAD_OBJECT))
    );
    let moved = remote.move_head(
        HEAD_OBJECT,
        head.to_bytes(),
        expected,
        options.unsafe_unconditional,
    )?;
    if moved == HeadMove::Conflict {
        let now = remote
            .get(HEAD_OBJECT, MAX_HEAD_BYTES as u64)?
            .and_then(|f| RemoteHead::parse(&f.bytes).ok());
        if now.as_ref() != Some(head) {
            return Err(Error::PublishConflict {
                url: url.to_string(),
                read: head_text(current.map(|(h, _)| h)),
                ours: head.describe(),
                theirs: head_text(now.as_ref()),
            });
        }
    }
    Ok(())
}

/// Upload what the destination lacks: data files, then version files. Returns (files
/// uploaded, bytes uploaded, files already there).
fn upload(
    remote: &ObjectStorage,
    url: &str,
    files: &[Needed],
    n_versions: usize,
    trusted: &HashSet<String>,
    options: &PublishOptions,
) -> Result<(u64, u64, u64)> {
    let mut existing: HashMap<String, u64> = HashMap::new();
    for dir in [layout::SEGMENTS, layout::DELTAS, layout::VERSIONS] {
        existing.extend(remote.list(dir)?.into_iter().map(|l| (l.path, l.size)));
    }
    let refuse = |reason: String| Error::PublishRefused {
        url: url.to_string(),
        reason,
    };
    let (data, versions) = files.split_at(files.len() - n_versions);
    let (mut uploaded, mut bytes, mut present) = (0, 0, 0);
    for phase in [data, versions] {
        let mut batch = Vec::new();
        for f in phase {
            let crc = crc32fast::hash(&f.bytes);
            match existing.get(&f.path) {
                None => batch.push((f.path.clone(), Bytes::from_owner(f.bytes.clone()), crc)),
                Some(&len) if len != f.bytes.len() as u64 => {
                    return Err(refuse(format!(
                        "{} there has {len} bytes, this store's has {}: another history wrote it",
                        f.path,
                        f.bytes.len()
                    )))
                }
                Some(_) => {
                    if !trusted.contains(&f.path) {
                        check_same(remote, url, &f.path, crc)?;
                    }
                    present += 1;
                }
            }
        }
        let sizes: Vec<u64> = batch.iter().map(|(_, b, _)| b.len() as u64).collect();
        let paths: Vec<(String, u32)> = batch.iter().map(|(p, _, c)| (p.clone(), *c)).collect();
        let written = remote.put_new_all(batch, options.in_flight)?;
        for ((w, size), (path, crc)) in written.into_iter().zip(sizes).zip(paths) {
            if w {
                uploaded += 1;
                bytes += size;
            } else {
                // Created meanwhile (a racing publisher, or a retried request of ours).
                check_same(remote, url, &path, crc)?;
                present += 1;
            }
        }
    }
    Ok((uploaded, bytes, present))
}

/// Refuse unless the object at `path` records crc32 `crc`.
fn check_same(remote: &ObjectStorage, url: &str, path: &str, crc: u32) -> Result<()> {
    if !remote.compare_and_swap() {
        // A backend without metadata (file://): the size matched, which is all it offers.
        return Ok(());
    }
    match remote.crc32_of(path)? {
        Some(Some(c)) if c == crc => Ok(()),
        found => Err(Error::PublishRefused {
            url: url.to_string(),
            reason: format!(
                "{path} there is not this store's file (crc32 {}, here {crc:#010x}): \
                 another history wrote it",
                match found {
                    Some(Some(c)) => format!("{c:#010x}"),
                    _ => "not recorded".to_string(),
                }
            ),
        }),
    }
}
