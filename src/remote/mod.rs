//! Remote stores: artifacts shared between machines through an OCI registry.
//!
//! [`Remote`] is what the scheduler sees: pull a key's result into the
//! local store, push one. [`oci::OciRemote`] implements it on any registry
//! of the OCI distribution spec (Zot, the CNCF distribution registry…).

pub mod auth;
pub mod oci;
pub mod registry;

use crate::key::{Key, Preimage};
use crate::rules::Label;
use crate::store::{ActionResult, LocalStore, Tree};

/// A problem while moving results to or from a remote: reported once per
/// node, never a failed build, unless it is this machine's store that
/// failed (then it is the store's failure, with its class and scope: a
/// full disk stops the run).
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The registry's: unreachable, refusing, or serving what does not
    /// check out.
    #[error("{0}")]
    Remote(String),
    /// The local store's, while a pull or push read or wrote it.
    #[error("local store: {0}")]
    Store(#[from] crate::store::StoreError),
}

impl RemoteError {
    /// The remote's own failure (not the local store's).
    pub fn is_remote(&self) -> bool {
        matches!(self, RemoteError::Remote(_))
    }
}

impl From<RemoteError> for crate::error::Error {
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::Remote(m) => crate::error::Error::env(m),
            RemoteError::Store(s) => crate::error::Error::from(s),
        }
    }
}

/// A store behind the local one.
pub trait Remote: Send + Sync {
    /// Where it is, for messages (never with credentials).
    fn describe(&self) -> String;

    /// Fetch the result of `key` into `local`; `Ok(None)` is a miss.
    fn pull(
        &self,
        label: &Label,
        key: &Key,
        local: &LocalStore,
    ) -> Result<Option<(ActionResult, Tree)>, RemoteError>;

    /// Publish a successful result that is in `local`.
    fn push(
        &self,
        label: &Label,
        key: &Key,
        result: &ActionResult,
        tree: &Tree,
        preimage: &Preimage,
        local: &LocalStore,
    ) -> Result<(), RemoteError>;
}
