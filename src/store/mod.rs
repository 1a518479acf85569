//! Storage of build results: the local store (CAS + action cache), trees,
//! deterministic archives, and remote stores behind it.
//!
//! The action cache maps key → output digest; the CAS maps digest → bytes.
//! The two are kept apart so that a key can never vouch for bytes it does
//! not name, and so that equal outputs of different keys share storage.

pub mod archive;
pub mod local;
pub mod maint;
pub mod tree;

pub use local::{
    ActionResult, LabelRecord, LocalStore, Lookup, StoreError, Verification, now_secs,
};
pub use tree::{EntryKind, Tree, TreeEntry};
