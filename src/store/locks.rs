//! Locks: one per key (a second process waits for the first builder, then
//! finds its result), and one for the whole store (shared by builds,
//! exclusive for `refine gc` and `refine store verify`).

use super::error::{IoCtx, StoreError};
use crate::key::Key;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// The store's lock files (`<root>/locks/`). A lock is held as long as
/// the returned file is open.
pub struct Locks {
    dir: PathBuf,
}

impl Locks {
    pub fn new(store_root: &Path) -> Locks {
        Locks {
            dir: store_root.join("locks"),
        }
    }

    fn open(&self, name: &str) -> Result<(File, PathBuf), StoreError> {
        let p = self.dir.join(name);
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx(&p)?;
        Ok((f, p))
    }

    /// Hold this while building a key: a second process waits, then finds
    /// the result in the cache instead of building it again.
    pub fn key(&self, key: &Key) -> Result<File, StoreError> {
        let (f, p) = self.open(&format!("{}.lock", key.0))?;
        f.lock().ctx(&p)?;
        Ok(f)
    }

    /// A lock for the whole store (gc takes it exclusively).
    pub fn store(&self, exclusive: bool) -> Result<File, StoreError> {
        let (f, p) = self.open("store.lock")?;
        if exclusive {
            f.lock().ctx(&p)?;
        } else {
            f.lock_shared().ctx(&p)?;
        }
        Ok(f)
    }
}
