//! What a node's run ends with: one [`Verdict`], its key and output, and
//! the failure (an [`Error`]) when there is one.

use crate::error::{Error, ErrorClass};
use crate::eval::GraphNode;
use crate::key::{Digest, Key, Preimage};
use crate::rules::Label;
use crate::store::Tree;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    HitLocal,
    HitRemote,
    Built,
    Failed,
    Blocked,
    Skipped,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::HitLocal => "hit:local",
            Verdict::HitRemote => "hit:remote",
            Verdict::Built => "built",
            Verdict::Failed => "failed",
            Verdict::Blocked => "blocked",
            Verdict::Skipped => "skipped",
        }
    }

    pub fn is_ok(self) -> bool {
        matches!(
            self,
            Verdict::HitLocal | Verdict::HitRemote | Verdict::Built
        )
    }
}

/// Pushing a result to the remote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushStatus {
    Pushed,
    Failed(String),
}

#[derive(Clone, Debug)]
pub struct NodeResult {
    pub label: Label,
    pub verdict: Verdict,
    pub key: Option<Key>,
    pub preimage: Option<Preimage>,
    /// The output tree's digest.
    pub output: Option<Digest>,
    pub tree: Option<Tree>,
    pub duration: Duration,
    pub log: Option<PathBuf>,
    /// Why it failed; a failure of [`Scope::Run`](crate::error::Scope)
    /// stops the run (see [`NodeResult::stops_the_run`]).
    pub failure: Option<Error>,
    pub push: Option<PushStatus>,
    /// Things worth saying that did not fail the node (a corrupt cache
    /// entry, an unreachable remote).
    pub notes: Vec<String>,
    /// Failed without a build: its key failed before
    /// (`--skip-known-failures`).
    pub known_failure: bool,
    /// The remote worker that built it (`built:remote`); `None` for a
    /// build on this machine.
    pub worker: Option<String>,
}

impl NodeResult {
    /// A result with only a label, a verdict and (maybe) a key; the rest is
    /// filled in as the node runs.
    pub fn new(label: &Label, verdict: Verdict, key: Option<Key>) -> NodeResult {
        NodeResult {
            label: label.clone(),
            verdict,
            key,
            preimage: None,
            output: None,
            tree: None,
            duration: Duration::ZERO,
            log: None,
            failure: None,
            push: None,
            notes: Vec::new(),
            known_failure: false,
            worker: None,
        }
    }

    /// The failure is the host's, not this node's: every other build would
    /// fail the same way (podman cannot start a container, the store's disk
    /// is full), so the run stops at once, with or without `--keep-going`.
    pub fn stops_the_run(&self) -> bool {
        self.failure.as_ref().is_some_and(Error::is_run_wide)
    }

    /// A node that did not run: blocked by a failed dependency, or not
    /// started because the run stopped.
    pub fn not_run(label: &Label, verdict: Verdict, why: &str) -> NodeResult {
        NodeResult {
            failure: Some(Error::new(ErrorClass::Build, why)),
            ..NodeResult::new(label, verdict, None)
        }
    }
}

/// The digest a dependency contributes to its dependents' keys: the pin of
/// a fixed-output node, the output digest of anything else.
pub fn dep_digest(n: &GraphNode, r: &NodeResult) -> Option<Digest> {
    n.fixed_output().cloned().or_else(|| r.output.clone())
}
