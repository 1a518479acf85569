//! Storage of build results: the local store (CAS + action cache), trees,
//! deterministic archives, and remote stores behind it.
//!
//! The action cache maps key → output digest; the CAS maps digest → bytes.
//! The two are kept apart so that a key can never vouch for bytes it does
//! not name, and so that equal outputs of different keys share storage.

pub mod action;
pub mod archive;
pub mod cas;
pub mod checkout;
pub mod confined;
pub mod delivered;
pub mod dirhandle;
pub mod error;
pub mod labels;
pub mod limits;
pub mod local;
pub mod locks;
pub mod logs;
pub mod maint;
pub mod mounts;
pub mod readahead;
pub mod tree;

pub use action::{ActionCache, ActionResult, Lookup, Verification};
pub use cas::BlobCheck;
pub use labels::{LabelRecord, Labels, Recorded};
pub use local::{LocalStore, StoreError, now_secs};
pub use tree::{EntryKind, Tree, TreeEntry};

/// A store in a fresh temporary directory, for the store's unit tests.
#[cfg(test)]
pub(crate) fn temp_store() -> (tempfile::TempDir, LocalStore) {
    let d = tempfile::tempdir().unwrap();
    let s = LocalStore::open(d.path()).unwrap();
    (d, s)
}
