//! The real executor: podman for recipes, mmdebstrap for images.
//!
//! Every container carries labels naming the refine process that owns it
//! (`dev.refine.run=<pid>-<start>`), so that a container left behind by a
//! refine that was killed (SIGKILL leaves no chance to clean up) is found
//! and stopped by the next refine that runs containers. Children run in
//! their own process group: refine alone decides when they stop (timeout,
//! interrupt), and stops the container itself with `podman rm -f`.

use super::host::{self, Status};
use super::{ExecError, Executor, ImageRequest, Needs, RunStatus, SandboxSpec, interrupt};
use crate::platform::Arch;
use crate::runid::RunId;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The label that names a container's owner.
pub const RUN_LABEL: &str = "dev.refine.run";

/// Runs recipes with podman and makes images with mmdebstrap. The programs
/// can be swapped with `REFINE_PODMAN` and `REFINE_MMDEBSTRAP` (a wrapper, a
/// non-default install), like `CC` for a compiler.
pub struct Podman {
    program: String,
    mmdebstrap: String,
    /// Whether this process looked for containers of dead runs yet.
    swept: Mutex<bool>,
}

impl Default for Podman {
    fn default() -> Self {
        Podman {
            program: std::env::var("REFINE_PODMAN").unwrap_or_else(|_| "podman".into()),
            mmdebstrap: std::env::var("REFINE_MMDEBSTRAP").unwrap_or_else(|_| "mmdebstrap".into()),
            swept: Mutex::new(false),
        }
    }
}

/// How a wait for a child ended.
enum Waited {
    Exited(std::process::ExitStatus),
    TimedOut,
    Interrupted,
}

/// Wait for a child, calling `stop` (then killing the child's process
/// group) after `timeout` or when the user interrupts refine.
fn wait_for(child: &mut Child, timeout: Duration, stop: &dyn Fn()) -> std::io::Result<Waited> {
    wait_for_gracefully(child, timeout, stop, Duration::ZERO)
}

/// [`wait_for`], but a child stopped by the timeout or an interrupt gets
/// SIGTERM first and `grace` to clean up after itself (mmdebstrap unmounts
/// what it mounted and removes its root) before the SIGKILL.
fn wait_for_gracefully(
    child: &mut Child,
    timeout: Duration,
    stop: &dyn Fn(),
    grace: Duration,
) -> std::io::Result<Waited> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(20);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Waited::Exited(status));
        }
        let timed_out = !timeout.is_zero() && start.elapsed() >= timeout;
        if timed_out || interrupt::requested() {
            stop();
            if !grace.is_zero()
                && let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32)
            {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::TERM);
                let until = Instant::now() + grace;
                while Instant::now() < until && child.try_wait()?.is_none() {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            kill_group(child);
            let _ = child.wait();
            return Ok(if timed_out {
                Waited::TimedOut
            } else {
                Waited::Interrupted
            });
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}

/// How long mmdebstrap gets to clean up after a SIGTERM.
const MMDEBSTRAP_GRACE: Duration = Duration::from_secs(20);

/// SIGKILL a child and everything in its process group.
fn kill_group(child: &mut Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
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
            let c = host::podman(&self.program);
            ExecError::host(c.detail, c.fix.unwrap_or_default())
        } else {
            ExecError::Io(e)
        }
    }

    /// Stop and remove a container (best effort: it may be gone already).
    fn remove(&self, name: &str) {
        let _ = self.quiet(&["rm", "--force", "--time", "2", name]);
    }

    /// Once per process, before the first container: stop and remove the
    /// containers of refine runs whose process is gone, and say so; say if
    /// builds run without a user namespace.
    fn sweep_dead_runs(&self) -> Vec<String> {
        let mut swept = self.swept.lock().unwrap_or_else(|e| e.into_inner());
        if *swept {
            return Vec::new();
        }
        *swept = true;
        let mut notes = Vec::new();
        if !host::userns_available() {
            notes.push(format!("{} (fix: {})", host::USERNS_OFF, host::USERNS_FIX));
        }
        let filter = format!("label={RUN_LABEL}");
        let Ok(out) = self.quiet(&[
            "ps",
            "--all",
            "--filter",
            &filter,
            "--format",
            &format!("{{{{.Names}}}} {{{{index .Labels \"{RUN_LABEL}\"}}}}"),
        ]) else {
            return notes;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some((name, tag)) = line.trim().split_once(' ') else {
                continue;
            };
            let Some(owner) = RunId::parse(tag.trim()) else {
                continue;
            };
            if owner.alive() {
                continue;
            }
            self.remove(name);
            notes.push(format!(
                "stopped container {name}, left running by a refine run that is gone (pid {})",
                owner.pid
            ));
        }
        notes
    }
}

impl Executor for Podman {
    fn name(&self) -> &'static str {
        "podman"
    }

    fn preflight(&self, needs: &Needs) -> Result<Vec<String>, ExecError> {
        let mut checks = Vec::new();
        if needs.containers {
            checks.push(host::podman(&self.program));
        }
        if needs.mmdebstrap {
            checks.push(host::mmdebstrap(&self.mmdebstrap));
            for arch in &needs.emulate {
                checks.push(host::arch_test(*arch));
            }
        }
        for arch in &needs.emulate {
            checks.push(host::binfmt(*arch));
        }
        if let Some(c) = checks.into_iter().find(|c| c.status == Status::Fail) {
            return Err(ExecError::host(c.detail, c.fix.unwrap_or_default()));
        }
        Ok(if needs.containers {
            self.sweep_dead_runs()
        } else {
            Vec::new()
        })
    }

    fn run(&self, spec: &SandboxSpec, log: &mut File) -> Result<RunStatus, ExecError> {
        let argv = spec.podman_argv();
        let mut child = self
            .cmd()
            .args(&argv)
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .process_group(0)
            .spawn()
            .map_err(|e| self.spawn_err(e))?;
        let timeout = Duration::from_secs(spec.limits.timeout);
        let waited = wait_for(&mut child, timeout, &|| self.remove(&spec.name))?;
        let st = match waited {
            Waited::TimedOut => return Ok(RunStatus::TimedOut(timeout)),
            Waited::Interrupted => return Ok(RunStatus::Interrupted),
            Waited::Exited(st) => st,
        };
        if st.success() {
            return Ok(RunStatus::Success);
        }
        let code = st.code().unwrap_or(-1);
        if code != 125 {
            return Ok(RunStatus::Failed(code));
        }
        // podman itself failed: not the recipe's fault.
        let t = tail(log, 8);
        if let Some((what, fix)) = host::diagnose_podman(&t) {
            return Err(ExecError::host(format!("{what}:\n{t}"), fix));
        }
        let hint = if t.contains("image not known") || t.contains("no such image") {
            "the builder image is not loaded in podman; run the build again (refine imports it)"
                .to_string()
        } else {
            format!(
                "podman could not start the container; try `podman run --rm {} true`",
                spec.image
            )
        };
        Err(ExecError::env(
            format!("podman failed to run the build container:\n{t}"),
            hint,
        ))
    }

    fn build_image(
        &self,
        req: &ImageRequest,
        out_tar: &Path,
        log: &mut File,
    ) -> Result<RunStatus, ExecError> {
        let argv = req.mmdebstrap_argv(&out_tar.to_string_lossy());
        // mmdebstrap makes its root (with proc, sys and dev mounted in it)
        // under TMPDIR: in memory when there is room, else beside the
        // output; named for this process either way, so that whatever
        // becomes of mmdebstrap (or of refine), it is found and released.
        let scratch = super::scratch::image_scratch(out_tar.parent().unwrap_or(Path::new(".")))?;
        {
            use std::io::Write;
            log.write_all(scratch.note.as_bytes())?;
        }
        let status = self.run_mmdebstrap(req, &argv, &scratch.dir, log);
        crate::store::mounts::release(&scratch.dir);
        status
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

impl Podman {
    fn run_mmdebstrap(
        &self,
        req: &ImageRequest,
        argv: &[String],
        scratch: &Path,
        log: &mut File,
    ) -> Result<RunStatus, ExecError> {
        let mut child = Command::new(&self.mmdebstrap)
            .args(argv)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("TMPDIR", scratch)
            .env("SOURCE_DATE_EPOCH", req.source_date_epoch.to_string())
            .env("LC_ALL", "C")
            .env("TZ", "UTC")
            .envs(req.cross.iter().flat_map(|c| c.env.iter()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .process_group(0)
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    let c = host::mmdebstrap(&self.mmdebstrap);
                    ExecError::host(c.detail, c.fix.unwrap_or_default())
                } else {
                    ExecError::Io(e)
                }
            })?;
        let timeout = Duration::from_secs(req.timeout);
        Ok(
            match wait_for_gracefully(&mut child, timeout, &|| {}, MMDEBSTRAP_GRACE)? {
                Waited::TimedOut => RunStatus::TimedOut(timeout),
                Waited::Interrupted => RunStatus::Interrupted,
                Waited::Exited(st) if st.success() => RunStatus::Success,
                Waited::Exited(st) => RunStatus::Failed(st.code().unwrap_or(-1)),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn timeout_stops_the_child_and_its_group() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 5 & sleep 5; wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        let stopped = std::cell::Cell::new(false);
        let start = Instant::now();
        let w = wait_for(&mut child, Duration::from_millis(100), &|| {
            stopped.set(true)
        })
        .unwrap();
        assert!(matches!(w, Waited::TimedOut));
        assert!(stopped.get());
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "the group was killed"
        );
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
