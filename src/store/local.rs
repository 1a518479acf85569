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
//! <root>/unpacked/<hex>/            wheels laid out (for mounts)             (checkout.rs)
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
//!
//! `LocalStore` is the composition: each concept is a type of its own
//! (`cas`, `actions`, `labels`, `checkouts`, `logs`, `locks`) that knows
//! nothing of the others but the CAS; `lookup` and `indexed_hit` are the
//! questions that need several of them; maintenance (`maint.rs`) walks
//! them all.

use super::Lookup;
use super::action::{ActionCache, Entry};
use super::cas::Cas;
use super::checkout::Checkouts;
pub(crate) use super::error::IoCtx;
pub use super::error::{StoreError, write_atomic};
use super::labels::Labels;
use super::locks::Locks;
use super::logs::Logs;
use crate::key::Key;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const STORE_VERSION: &str = "refine-store 1";

pub struct LocalStore {
    pub(super) root: PathBuf,
    /// The label index: per arch, every label's last result.
    pub labels: Labels,
    /// The blobs, named by their sha256, and the trees made of them.
    pub cas: Arc<Cas>,
    /// Key → result, the preimages, verification records, source names.
    pub actions: ActionCache,
    /// The read-only checkouts of trees and wheels kept for mounts.
    pub checkouts: Checkouts,
    /// The build logs.
    pub logs: Logs,
    /// One lock per key, one for the whole store.
    pub locks: Locks,
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
        let cas = Arc::new(Cas::new(root));
        let store = LocalStore {
            root: root.to_path_buf(),
            labels: Labels::new(root),
            checkouts: Checkouts::new(root, cas.clone()),
            cas,
            actions: ActionCache::new(root),
            logs: Logs::new(root),
            locks: Locks::new(root),
        };
        store.sweep_staging();
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn tmp_dir(&self) -> Result<tempfile::TempDir, StoreError> {
        super::error::staging_dir(&self.root)
    }

    /// Bytes free for the store (0 if unknown).
    pub fn free_space(&self) -> u64 {
        rustix::fs::statvfs(&self.root)
            .map(|v| v.f_bavail.saturating_mul(v.f_frsize))
            .unwrap_or(0)
    }

    /// Remove what refine processes that are gone (killed, crashed) left in
    /// `tmp/`: their names carry their owner (see [`staging_prefix`](super::error::staging_prefix)).
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

    /// Look a key up: a hit has its output tree present and intact (the
    /// action cache's entry, then the CAS's tree and blobs).
    pub fn lookup(&self, key: &Key) -> Lookup {
        let result = match self.actions.entry(key) {
            Entry::Missing => return Lookup::Miss,
            Entry::Damaged(why) => return Lookup::Corrupt(why),
            Entry::Found(r) => r,
        };
        match self
            .cas
            .tree(&result.output)
            .and_then(|t| self.cas.tree_complete(&t).map(|()| t))
        {
            Ok(tree) => Lookup::Hit(result, tree),
            Err(e) => {
                self.actions.remove_entry(key);
                Lookup::Corrupt(format!("output of {}: {e}", result.label))
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
        delivered: Option<&super::delivered::Delivered>,
        trusts: &dyn Fn(&str) -> bool,
    ) -> Option<(crate::key::Digest, super::Tree)> {
        let (output, tree) = self.labels.hit(arch, label, key, trusts)?;
        for (name, d, _) in tree.files() {
            self.cas
                .check_blob(d, super::delivered::check_for(check, delivered, name, d))
                .ok()?;
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
