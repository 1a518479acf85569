//! Executors: where build steps run.
//!
//! A build step is described as plain data first — a [`SandboxSpec`] for a
//! recipe in a container, an [`ImageRequest`] for a builder image — and
//! then handed to an [`Executor`]. [`podman::Podman`] runs it for real;
//! [`fake::Fake`] records it and writes plausible outputs, so the engine
//! can be tested (and benchmarked) without containers. The podman argv is
//! a pure function of the spec and is unit-tested on its own.

pub mod fake;
pub mod podman;
pub mod spec;

pub use spec::{ImageRequest, Limits, Mount, SandboxSpec};

use crate::rules::Arch;
use std::fs::File;
use std::path::Path;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunStatus {
    Success,
    Failed(i32),
    TimedOut(Duration),
}

/// Failures of the executor itself (not of the recipe it ran).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{message}")]
    Environment { message: String, hint: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl ExecError {
    pub fn env(message: impl Into<String>, hint: impl Into<String>) -> Self {
        ExecError::Environment {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn hint(&self) -> String {
        match self {
            ExecError::Environment { hint, .. } => hint.clone(),
            ExecError::Io(_) => "check disk space and permissions of the store".into(),
        }
    }
}

/// What a run will need from the host, checked once before building.
#[derive(Clone, Debug, Default)]
pub struct Needs {
    pub containers: bool,
    pub mmdebstrap: bool,
    /// Foreign architectures that containers will run.
    pub emulate: Vec<Arch>,
}

pub trait Executor: Send + Sync {
    fn name(&self) -> &'static str;

    /// Fail early, with a hint, if the host cannot do what the run needs.
    fn preflight(&self, needs: &Needs) -> Result<(), ExecError>;

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

/// Whether a qemu-user binfmt handler for `arch` is registered and enabled.
pub fn binfmt_registered(arch: Arch) -> bool {
    let p = Path::new("/proc/sys/fs/binfmt_misc").join(format!("qemu-{}", arch.as_str()));
    std::fs::read_to_string(p).is_ok_and(|s| s.lines().next() == Some("enabled"))
}

pub fn binfmt_hint(arch: Arch) -> String {
    format!(
        "install qemu-user-static and register it (as root, once per boot): \
         `[ -d /proc/sys/fs/binfmt_misc/ ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; \
         cat /usr/lib/binfmt.d/qemu-{a}.conf > /proc/sys/fs/binfmt_misc/register` \
         (bash .ci/setup does this)",
        a = arch.as_str()
    )
}

/// Find a program on PATH.
pub fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
