//! The real executor: podman for recipes, mmdebstrap for images.

use super::{
    ExecError, Executor, ImageRequest, Needs, RunStatus, SandboxSpec, binfmt_hint,
    binfmt_registered, which,
};
use crate::rules::Arch;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs recipes with podman and makes images with mmdebstrap. The programs
/// can be swapped with `REFINE_PODMAN` and `REFINE_MMDEBSTRAP` (a wrapper, a
/// non-default install), like `CC` for a compiler.
pub struct Podman {
    program: String,
    mmdebstrap: String,
}

impl Default for Podman {
    fn default() -> Self {
        Podman {
            program: std::env::var("REFINE_PODMAN").unwrap_or_else(|_| "podman".into()),
            mmdebstrap: std::env::var("REFINE_MMDEBSTRAP").unwrap_or_else(|_| "mmdebstrap".into()),
        }
    }
}

const PODMAN_HINT: &str =
    "install podman and runc (`apt-get install -y podman runc`), or run `bash .ci/setup` as root";

/// Wait for a child, killing it (and the container, if named) after `timeout`.
fn wait_with_timeout(
    child: &mut Child,
    timeout: Duration,
    on_timeout: &dyn Fn(),
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(20);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if !timeout.is_zero() && start.elapsed() >= timeout {
            on_timeout();
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

/// The last `n` lines of a log file.
pub fn tail(log: &mut File, n: usize) -> String {
    let len = log.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let mut buf = String::new();
    if log.seek(SeekFrom::Start(start)).is_ok() {
        let mut bytes = Vec::new();
        let _ = log.read_to_end(&mut bytes);
        buf = String::from_utf8_lossy(&bytes).into_owned();
    }
    let lines: Vec<&str> = buf.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Podman {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.stdin(Stdio::null());
        c
    }

    fn quiet(&self, args: &[&str]) -> std::io::Result<std::process::Output> {
        self.cmd()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
    }

    fn spawn_err(&self, e: std::io::Error) -> ExecError {
        if e.kind() == std::io::ErrorKind::NotFound {
            ExecError::env(
                format!("`{}` was not found on PATH", self.program),
                PODMAN_HINT,
            )
        } else {
            ExecError::Io(e)
        }
    }
}

impl Executor for Podman {
    fn name(&self) -> &'static str {
        "podman"
    }

    fn preflight(&self, needs: &Needs) -> Result<(), ExecError> {
        if needs.containers && which(&self.program).is_none() && !Path::new(&self.program).is_file()
        {
            return Err(ExecError::env(
                format!(
                    "`{}` was not found on PATH; refine runs every build in a podman container",
                    self.program
                ),
                PODMAN_HINT,
            ));
        }
        if needs.mmdebstrap
            && which(&self.mmdebstrap).is_none()
            && !Path::new(&self.mmdebstrap).is_file()
        {
            return Err(ExecError::env(
                format!(
                    "`{}` was not found on PATH; refine makes its builder images with mmdebstrap",
                    self.mmdebstrap
                ),
                "install it (`apt-get install -y mmdebstrap`), or pin an OCI image with `oci = \"name@sha256:…\"` in the image rule",
            ));
        }
        for arch in &needs.emulate {
            if !binfmt_registered(*arch) {
                return Err(ExecError::env(
                    format!(
                        "no qemu-user binfmt handler for {arch} is registered, so {arch} containers cannot run on this {} machine",
                        Arch::host()
                    ),
                    binfmt_hint(*arch),
                ));
            }
        }
        Ok(())
    }

    fn run(&self, spec: &SandboxSpec, log: &mut File) -> Result<RunStatus, ExecError> {
        let argv = spec.podman_argv();
        let mut child = self
            .cmd()
            .args(&argv)
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .spawn()
            .map_err(|e| self.spawn_err(e))?;
        let name = spec.name.clone();
        let kill = || {
            let _ = self.quiet(&["kill", &name]);
            let _ = self.quiet(&["rm", "-f", &name]);
        };
        let timeout = Duration::from_secs(spec.limits.timeout);
        match wait_with_timeout(&mut child, timeout, &kill)? {
            None => Ok(RunStatus::TimedOut(timeout)),
            Some(st) if st.success() => Ok(RunStatus::Success),
            Some(st) => {
                let code = st.code().unwrap_or(-1);
                if code == 125 {
                    // podman itself failed: not the recipe's fault.
                    let t = tail(log, 8);
                    let hint = if t.contains("rlimit") || t.contains("RLIMIT") {
                        "podman cannot set resource limits on this host: write \
                         `[containers] default_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]` and \
                         `[engine] runtime = \"runc\"` to /etc/containers/containers.conf (bash .ci/setup does this)"
                            .to_string()
                    } else if t.contains("image not known") || t.contains("no such image") {
                        "the builder image is not loaded in podman; run the build again (refine imports it)".into()
                    } else {
                        format!(
                            "podman could not start the container; try `podman run --rm {} true`",
                            spec.image
                        )
                    };
                    return Err(ExecError::env(
                        format!("podman failed to run the build container:\n{t}"),
                        hint,
                    ));
                }
                Ok(RunStatus::Failed(code))
            }
        }
    }

    fn build_image(
        &self,
        req: &ImageRequest,
        out_tar: &Path,
        log: &mut File,
    ) -> Result<RunStatus, ExecError> {
        let argv = req.mmdebstrap_argv(&out_tar.to_string_lossy());
        let mut child = Command::new(&self.mmdebstrap)
            .args(&argv)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("SOURCE_DATE_EPOCH", req.source_date_epoch.to_string())
            .env("LC_ALL", "C")
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    ExecError::env(
                        "`mmdebstrap` was not found on PATH",
                        "install it (`apt-get install -y mmdebstrap`)",
                    )
                } else {
                    ExecError::Io(e)
                }
            })?;
        let timeout = Duration::from_secs(req.timeout);
        Ok(match wait_with_timeout(&mut child, timeout, &|| {})? {
            None => RunStatus::TimedOut(timeout),
            Some(st) if st.success() => RunStatus::Success,
            Some(st) => RunStatus::Failed(st.code().unwrap_or(-1)),
        })
    }

    fn load_image(&self, tag: &str, tar: &Path, arch: Arch) -> Result<(), ExecError> {
        let exists = self
            .quiet(&["image", "exists", tag])
            .map_err(|e| self.spawn_err(e))?;
        if exists.status.success() {
            return Ok(());
        }
        let out = self
            .quiet(&[
                "import",
                "--quiet",
                "--arch",
                arch.oci(),
                &tar.to_string_lossy(),
                tag,
            ])
            .map_err(|e| self.spawn_err(e))?;
        if !out.status.success() {
            return Err(ExecError::env(
                format!(
                    "podman could not import the builder image {tag}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                "check `podman info` and the free space under /var/lib/containers",
            ));
        }
        Ok(())
    }

    fn pull_image(&self, reference: &str, arch: Arch) -> Result<(), ExecError> {
        let exists = self
            .quiet(&["image", "exists", reference])
            .map_err(|e| self.spawn_err(e))?;
        if exists.status.success() {
            return Ok(());
        }
        let host = reference.split('/').next().unwrap_or("");
        let loopback = host.starts_with("127.0.0.1") || host.starts_with("localhost");
        let mut args = vec!["pull", "--quiet", "--arch", arch.oci()];
        if loopback {
            args.push("--tls-verify=false");
        }
        args.push(reference);
        let out = self.quiet(&args).map_err(|e| self.spawn_err(e))?;
        if !out.status.success() {
            return Err(ExecError::env(
                format!(
                    "podman could not pull {reference}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                "check that the registry is reachable and the digest is right (`skopeo inspect docker://…`)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn timeout_kills_the_child() {
        let mut child = Command::new("sleep").arg("5").spawn().unwrap();
        let killed = std::cell::Cell::new(false);
        let st = wait_with_timeout(&mut child, Duration::from_millis(100), &|| killed.set(true))
            .unwrap();
        assert!(st.is_none());
        assert!(killed.get());
    }

    #[test]
    fn tail_gives_last_lines() {
        let mut f = tempfile::tempfile().unwrap();
        for i in 0..100 {
            writeln!(f, "line {i}").unwrap();
        }
        assert_eq!(tail(&mut f, 2), "line 98\nline 99");
    }
}
