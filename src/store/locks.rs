//! Locks: one per key (a second process waits for the first builder, then
//! finds its result), and one for the whole store (shared by builds,
//! exclusive for `refine gc` and `refine store verify`).

use super::error::{IoCtx, StoreError};
use super::local::LocalStore;
use crate::key::Key;
use std::fs::{self, File};

impl LocalStore {
    /// Hold this while building a key: a second process waits, then finds
    /// the result in the cache instead of building it again.
    pub fn lock(&self, key: &Key) -> Result<File, StoreError> {
        let p = self.root.join("locks").join(format!("{}.lock", key.0));
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx(&p)?;
        f.lock().ctx(&p)?;
        Ok(f)
    }

    /// A lock for the whole store (gc takes it exclusively).
    pub fn store_lock(&self, exclusive: bool) -> Result<File, StoreError> {
        let p = self.root.join("locks").join("store.lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx(&p)?;
        if exclusive {
            f.lock().ctx(&p)?;
        } else {
            f.lock_shared().ctx(&p)?;
        }
        Ok(f)
    }
}
