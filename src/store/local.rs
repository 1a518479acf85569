//! The local store: a CAS of blobs, an action cache, preimages, logs.
//!
//! ```text
//! <root>/VERSION
//! <root>/cas/sha256/ab/<hex>        blobs, named by their sha256, read-only   (cas.rs)
//! <root>/ac/ab/<key>.json           action cache: key → output tree digest   (action.rs)
//! <root>/preimages/ab/<key>.json    what each key was computed from          (action.rs)
//! <root>/names/<sha256>             file name of a fetched source            (action.rs)
//! <root>/labels/<arch>.jsonl        last result per label                   (labels.rs)
//! <root>/trees/<hex>/               materialized trees (for mounts)          (checkout.rs)
//! <root>/logs/<arch>/<kind>/<name>/ build logs                               (logs.rs)
//! <root>/locks/<key>.lock           one builder per key across processes    (locks.rs)
//! <root>/tmp/                       staging; same filesystem as the rest
//! ```
//!
//! Invariants: every write is a temp file (or directory) in `tmp/` renamed
//! into place, so a reader sees a whole entry or none; a blob's bytes
//! match its name, checked whenever it is read (a mismatch deletes the blob
//! and is reported as corruption, which callers treat as a miss); only
//! successful builds enter the action cache.

use super::action::ActionCache;
use super::cas::Cas;
pub(crate) use super::error::IoCtx;
pub(crate) use super::error::staging_prefix;
pub use super::error::{StoreError, write_atomic};
use super::labels::Labels;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub const STORE_VERSION: &str = "refine-store 1";

pub struct LocalStore {
    pub(super) root: PathBuf,
    /// The label index: per arch, every label's last result.
    pub labels: Labels,
    /// The blobs, named by their sha256.
    pub cas: Cas,
    /// Key → result, the preimages, verification records, source names.
    pub actions: ActionCache,
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl LocalStore {
    pub fn open(root: &Path) -> Result<LocalStore, StoreError> {
        for d in [
            "cas/sha256",
            "ac",
            "preimages",
            "names",
            "labels",
            "trees",
            "logs",
            "locks",
            "tmp",
            "verified",
        ] {
            let p = root.join(d);
            fs::create_dir_all(&p).ctx(&p)?;
        }
        let vpath = root.join("VERSION");
        match fs::read_to_string(&vpath) {
            Ok(v) if v.trim() == STORE_VERSION => {}
            Ok(v) => {
                return Err(StoreError::Version {
                    path: root.to_path_buf(),
                    found: v.trim().to_string(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                write_atomic(root, &vpath, format!("{STORE_VERSION}\n").as_bytes())?;
            }
            Err(e) => return Err(e).ctx(&vpath),
        }
        let store = LocalStore {
            root: root.to_path_buf(),
            labels: Labels::new(root),
            cas: Cas::new(root),
            actions: ActionCache::new(root),
        };
        store.sweep_staging();
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn tmp_dir(&self) -> Result<tempfile::TempDir, StoreError> {
        let p = self.root.join("tmp");
        tempfile::Builder::new()
            .prefix(&staging_prefix())
            .tempdir_in(&p)
            .ctx(&p)
    }

    /// Bytes free for the store (0 if unknown).
    pub fn free_space(&self) -> u64 {
        rustix::fs::statvfs(&self.root)
            .map(|v| v.f_bavail.saturating_mul(v.f_frsize))
            .unwrap_or(0)
    }

    /// Remove what refine processes that are gone (killed, crashed) left in
    /// `tmp/`: their names carry their owner (see [`staging_prefix`]).
    /// Entries of live processes are theirs; older unnamed ones go after a
    /// day.
    fn sweep_staging(&self) {
        let Ok(rd) = fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let owner = name
                .strip_prefix('t')
                .and_then(|r| r.split_once('.'))
                .and_then(|(tag, _)| crate::runid::RunId::parse(tag));
            let gone = match owner {
                Some(o) => !o.alive(),
                None => e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 86_400),
            };
            if gone {
                // A killed image build may have left mounts in there.
                let p = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    super::mounts::release(&p);
                } else {
                    let _ = fs::remove_file(&p);
                }
            }
        }
    }

    /// A hit from the label index alone: the label's last result has this
    /// key and its output is present and intact. The no-op path runs on
    /// this, without opening an action-cache entry per node.
    ///
    /// `check` says how much of the output's blobs is checked (see
    /// [`BlobCheck`](super::BlobCheck)): what a later read checks anyway
    /// (mounts, copies) need only exist, which saves a stat per node on a
    /// no-op run of a large graph.
    ///
    /// Only a result whose executor `trusts` accepts is a hit.
    pub fn indexed_hit(
        &self,
        arch: crate::platform::Arch,
        label: &crate::rules::Label,
        key: &crate::key::Key,
        check: super::BlobCheck,
        trusts: &dyn Fn(&str) -> bool,
    ) -> Option<(crate::key::Digest, super::Tree)> {
        let (output, tree) = self.labels.hit(arch, label, key, trusts)?;
        for (_, d, _) in tree.files() {
            self.cas.check_blob(d, check).ok()?;
        }
        Some((output, tree))
    }

    /// Write what is only kept in memory: the label index and the stat
    /// cache (best effort: both are caches of what the files say).
    pub fn flush(&self) {
        self.labels.flush();
        self.cas.flush();
    }
}

impl Drop for LocalStore {
    fn drop(&mut self) {
        self.flush();
    }
}
