//! The store's failures, its one way of writing a file (atomically) and
//! the names of its staging entries: the leaf every part of the store
//! builds on.

use crate::key::Digest;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

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

/// Write `bytes` to `dest` through a temp file beside it, synced, then
/// renamed into place: a reader sees the old file or the new one.
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

/// `t<pid>-<start>.`: staging entries name the process that made them.
pub(crate) fn staging_prefix() -> String {
    format!("t{}.", crate::runid::RunId::current().tag())
}

/// A fresh staging directory in `<root>/tmp`, named for this process (see
/// [`staging_prefix`]); on the store's filesystem, so what is made there
/// is renamed into place.
pub(crate) fn staging_dir(root: &Path) -> Result<tempfile::TempDir, StoreError> {
    let p = root.join("tmp");
    tempfile::Builder::new()
        .prefix(&staging_prefix())
        .tempdir_in(&p)
        .ctx(&p)
}
