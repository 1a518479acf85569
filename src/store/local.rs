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

use super::cas::StatCache;
use super::labels::LabelIndex;
use crate::key::Digest;
use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub const STORE_VERSION: &str = "refine-store 1";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("corrupt store entry {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("blob {0} is not in the store")]
    Missing(Digest),
    #[error("{path} is a refine store of another version ({found:?})")]
    Version { path: PathBuf, found: String },
}

impl StoreError {
    pub fn is_corrupt(&self) -> bool {
        matches!(self, StoreError::Corrupt { .. } | StoreError::Missing(_))
    }

    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Io { source, .. } if crate::error::is_disk_full(source))
    }
}

/// A store failure is the host's (environment); a full disk stops the run,
/// as it does when the executor meets it: every other build would need
/// the same disk.
impl From<StoreError> for crate::error::Error {
    fn from(e: StoreError) -> Self {
        use crate::error::Error;
        match &e {
            StoreError::Version { .. } => {
                Error::env(e.to_string()).hint("use another store (--store DIR) or remove this one")
            }
            StoreError::Corrupt { .. } | StoreError::Missing(_) => {
                Error::env(format!("an entry in the store is damaged: {e}"))
                    .hint("the damaged entry was removed; run the build again to rebuild it")
            }
            _ if e.is_disk_full() => Error::env(e.to_string())
                .hint(crate::error::DISK_FULL_HINT)
                .run_wide(),
            StoreError::Io { .. } => Error::env(e.to_string()).hint(
                "check free space and permissions of the store directory (--store, REFINE_STORE)",
            ),
        }
    }
}

pub(crate) trait IoCtx<T> {
    fn ctx(self, path: &Path) -> Result<T, StoreError>;
}

impl<T> IoCtx<T> for io::Result<T> {
    fn ctx(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

pub struct LocalStore {
    pub(super) root: PathBuf,
    /// Per arch: label → last result, loaded once, written once.
    pub(super) labels: Mutex<HashMap<crate::platform::Arch, LabelIndex>>,
    /// (path of a blob) → (inode, size, mtime ns) when its bytes were last
    /// verified; lets unchanged large blobs skip rehashing.
    pub(super) stat_cache: Mutex<Option<StatCache>>,
    pub(super) stat_dirty: Mutex<bool>,
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
            labels: Mutex::new(HashMap::new()),
            stat_cache: Mutex::new(None),
            stat_dirty: Mutex::new(false),
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

    /// Write what is only kept in memory: the label index and the stat
    /// cache (best effort: both are caches of what the files say).
    pub fn flush(&self) {
        self.flush_labels();
        self.flush_stat_cache();
    }
}

/// `t<pid>-<start>.`: staging entries name the process that made them.
pub(super) fn staging_prefix() -> String {
    format!("t{}.", crate::runid::RunId::current().tag())
}

impl Drop for LocalStore {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Write `bytes` to `dest` through a temp file in the store's `tmp/`.
pub fn write_atomic(root: &Path, dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = dest.parent().unwrap_or(root);
    fs::create_dir_all(dir).ctx(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).ctx(dir)?;
    tmp.write_all(bytes).ctx(dest)?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .ctx(dest)?;
    tmp.as_file().sync_all().ctx(dest)?;
    tmp.persist(dest).map_err(|e| StoreError::Io {
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}
