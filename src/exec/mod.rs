//! Executors: where build steps run.
//!
//! A build step is described as plain data first — a [`SandboxSpec`] for a
//! recipe in a container, an [`ImageRequest`] for a builder image — and
//! then handed to an [`Executor`]. [`podman::Podman`] runs it for real;
//! [`fake::Fake`] records it and writes plausible outputs, so the engine
//! can be tested (and benchmarked) without containers. The podman argv is
//! a pure function of the spec and is unit-tested on its own.

#[cfg(feature = "fake-executor")]
pub mod fake;
pub mod host;
pub mod interrupt;
pub mod podman;
pub mod scratch;
pub mod seccomp;
pub mod spec;

pub use spec::{CrossRequest, ImageRequest, Isolation, Limits, Mount, SandboxSpec};

use crate::platform::Arch;
use std::fs::File;
use std::path::Path;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunStatus {
    Success,
    Failed(i32),
    TimedOut(Duration),
    /// Stopped because the user interrupted refine (SIGINT, SIGTERM).
    Interrupted,
}

/// Failures of the executor itself (not of the recipe it ran): the host's.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{message}")]
    Environment {
        message: String,
        hint: String,
        /// Every build would meet it (podman cannot start any container):
        /// the run stops at once.
        run_wide: bool,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl ExecError {
    pub fn env(message: impl Into<String>, hint: impl Into<String>) -> Self {
        ExecError::Environment {
            message: message.into(),
            hint: hint.into(),
            run_wide: false,
        }
    }

    /// A host problem that stops the whole run.
    pub fn host(message: impl Into<String>, hint: impl Into<String>) -> Self {
        ExecError::Environment {
            message: message.into(),
            hint: hint.into(),
            run_wide: true,
        }
    }

    pub fn hint(&self) -> String {
        match self {
            ExecError::Environment { hint, .. } => hint.clone(),
            ExecError::Io(e) if crate::error::is_disk_full(e) => {
                "the disk is full: free space (`refine gc --max-size 20G`)".into()
            }
            ExecError::Io(_) => "check disk space and permissions of the store".into(),
        }
    }

    pub fn run_wide(&self) -> bool {
        match self {
            ExecError::Environment { run_wide, .. } => *run_wide,
            ExecError::Io(e) => crate::error::is_disk_full(e),
        }
    }
}

/// The executor's failures are the host's (environment); run-wide ones
/// stop the run.
impl From<ExecError> for crate::error::Error {
    fn from(e: ExecError) -> Self {
        let err = crate::error::Error::env(e.to_string()).hint(e.hint());
        if e.run_wide() { err.run_wide() } else { err }
    }
}

/// What a build step needs from the host, checked before it starts.
#[derive(Clone, Debug, Default)]
pub struct Needs {
    pub containers: bool,
    pub mmdebstrap: bool,
    /// Foreign architectures that containers will run.
    pub emulate: Vec<Arch>,
}

pub trait Executor: Send + Sync {
    fn name(&self) -> &'static str;

    /// Fail early, with the fixing command, if the host cannot do what the
    /// step needs (such a failure is run-wide). Returns what is worth
    /// saying once, e.g. that containers of a dead refine run were stopped.
    fn preflight(&self, needs: &Needs) -> Result<Vec<String>, ExecError>;

    /// Run a recipe in a sandbox; its output lands in `spec.out`.
    fn run(&self, spec: &SandboxSpec, log: &mut File) -> Result<RunStatus, ExecError>;

    /// Build a root filesystem tarball at `out_tar`.
    fn build_image(
        &self,
        req: &ImageRequest,
        out_tar: &Path,
        log: &mut File,
    ) -> Result<RunStatus, ExecError>;

    /// Make `tag` available to `run`, importing `tar` if it is not yet.
    fn load_image(&self, tag: &str, tar: &Path, arch: Arch) -> Result<(), ExecError>;

    /// Make a digest-pinned OCI image available to `run`.
    fn pull_image(&self, reference: &str, arch: Arch) -> Result<(), ExecError>;
}

pub use host::{binfmt_registered, which};

/// Whether results of this executor may leave the machine: only what the
/// sandbox built is ever pushed to a shared store.
pub fn pushable(executor: &str) -> bool {
    executor == "podman"
}

/// Whether a result made by `made_by` may answer a run of `run`: a sandbox
/// build's always; another executor's (a test's fake) only for a run of
/// that same executor, never for a podman build. A fixed-output node's
/// result is its pinned bytes, whatever fetched them.
pub fn trusts(run: &str, made_by: &str, fixed_output: bool) -> bool {
    fixed_output || pushable(made_by) || made_by == run
}
