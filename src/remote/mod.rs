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

/// A remote problem: reported once per node, never a failed build.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct RemoteError(pub String);

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
