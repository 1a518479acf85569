//! Host prerequisites: what refine needs from the machine, each check with
//! what is wrong and the one command that fixes it. `refine doctor` runs
//! them all; the podman executor runs the ones a build needs before it
//! starts (a failure there is run-wide: every other build would meet it).
//!
//! The fixes are Debian commands, as root: refine's home is a Debian or
//! Ubuntu machine (`bash .ci/setup` applies them all).

use crate::platform::Arch;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Works, but something is worth knowing (little free space).
    Warn,
    Fail,
}

/// One check's finding.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    /// The command that fixes a failure (or a warning).
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            status: Status::Warn,
            ..Check::fail(name, detail, fix)
        }
    }

    pub fn passed(&self) -> bool {
        self.status != Status::Fail
    }
}

/// Find a program on PATH (or take it as a path).
pub fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| PathBuf::from(program));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The first line a program prints for `args` (its version), if it runs.
fn first_line(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(|l| l.trim().to_string())
}

fn apt(package: &str) -> String {
    format!("apt-get install -y {package}")
}

/// A program from a Debian package: found and able to say its version.
pub fn program(
    name: &'static str,
    program: &str,
    package: &str,
    version_args: &[&str],
    needed_for: &str,
) -> Check {
    match which(program) {
        Some(p) => Check::ok(
            name,
            first_line(&p, version_args).unwrap_or_else(|| p.display().to_string()),
        ),
        None => Check::fail(
            name,
            format!("`{program}` is not installed; refine needs it {needed_for}"),
            apt(package),
        ),
    }
}

pub fn podman(program_name: &str) -> Check {
    program(
        "podman",
        program_name,
        "podman",
        &["--version"],
        "to run every build in a container",
    )
}

/// podman's OCI runtime on these machines (crun cannot run containers
/// under hybrid cgroups without CAP_SYS_RESOURCE; runc can).
pub fn runc() -> Check {
    program(
        "runc",
        "runc",
        "runc",
        &["--version"],
        "as podman's container runtime",
    )
}

pub fn mmdebstrap(program_name: &str) -> Check {
    program(
        "mmdebstrap",
        program_name,
        "mmdebstrap",
        &["--version"],
        "to make builder images",
    )
}

/// mmdebstrap checks that a foreign architecture can run with `arch-test`;
/// without it: "E: install arch-test for foreign architecture support".
pub fn arch_test(arch: Arch) -> Check {
    match which("arch-test") {
        Some(_) => Check::ok(
            "arch-test",
            format!("mmdebstrap can check that {arch} runs"),
        ),
        None => Check::fail(
            "arch-test",
            format!(
                "arch-test is not installed; mmdebstrap needs it to make {arch} images on this {} machine",
                Arch::host()
            ),
            apt("arch-test"),
        ),
    }
}

/// The command that registers the qemu-user handler of `arch`.
pub fn binfmt_fix(arch: Arch) -> String {
    let a = arch.as_str();
    format!(
        "apt-get install -y qemu-user-static && {{ [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; }} && cat /usr/lib/binfmt.d/qemu-{a}.conf > /proc/sys/fs/binfmt_misc/register"
    )
}

/// The qemu-user binfmt handler of a foreign `arch`: registered, enabled,
/// its interpreter present, and with the F flag (the kernel opens the
/// interpreter at registration, so it works inside containers too).
pub fn binfmt(arch: Arch) -> Check {
    let path = Path::new("/proc/sys/fs/binfmt_misc").join(format!("qemu-{}", arch.as_str()));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Check::fail(
            "binfmt",
            format!(
                "no qemu-user binfmt handler for {arch} is registered, so {arch} containers cannot run on this {} machine",
                Arch::host()
            ),
            binfmt_fix(arch),
        );
    };
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
    };
    if text.lines().next() != Some("enabled") {
        return Check::fail(
            "binfmt",
            format!("the qemu-{arch} binfmt handler is registered but disabled"),
            format!("echo 1 > /proc/sys/fs/binfmt_misc/qemu-{}", arch.as_str()),
        );
    }
    let flags = field("flags:").unwrap_or_default();
    let interp = field("interpreter").unwrap_or_default();
    if !flags.contains('F') {
        return Check::fail(
            "binfmt",
            format!(
                "the qemu-{arch} handler lacks the F flag (flags: {flags}), so containers cannot find {interp}"
            ),
            format!(
                "echo -1 > /proc/sys/fs/binfmt_misc/qemu-{a} && {}",
                binfmt_fix(arch),
                a = arch.as_str()
            ),
        );
    }
    Check::ok(
        "binfmt",
        format!("qemu-{arch} handler registered with flags {flags} ({interp})"),
    )
}

/// Whether `arch` can run here: natively, or through its binfmt handler.
pub fn binfmt_registered(arch: Arch) -> bool {
    binfmt(arch).status == Status::Ok
}

/// The containers.conf that these VMs need (no CAP_SYS_RESOURCE to raise
/// rlimits, cgroups in hybrid mode), as the command that writes it.
pub fn containers_conf_fix() -> String {
    let conf = "/etc/containers/containers.conf";
    let body = r#"'[containers]' 'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]' '[engine]' 'runtime = "runc"'"#;
    if Path::new(conf).exists() {
        format!(
            "edit {conf}: set `default_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]` under [containers] and `runtime = \"runc\"` under [engine]"
        )
    } else {
        format!("mkdir -p /etc/containers && printf '%s\\n' {body} > {conf}")
    }
}

/// What podman's failure to start a container says about the host, as
/// (what is wrong, the fix), when it names a known host problem.
pub fn diagnose_podman(stderr: &str) -> Option<(String, String)> {
    let s = stderr.to_ascii_lowercase();
    if s.contains("rlimit") {
        return Some((
            "podman cannot set resource limits (rlimits) on this host".into(),
            containers_conf_fix(),
        ));
    }
    if s.contains("cgroup") || s.contains("crun") || s.contains("oci runtime") {
        return Some((
            "podman's container runtime cannot start containers on this host".into(),
            format!("{} && {}", apt("runc"), containers_conf_fix()),
        ));
    }
    if s.contains("no space left on device") {
        return Some((
            "the disk podman keeps its containers on is full".into(),
            "podman system prune --force  (and free space under /var/lib/containers)".into(),
        ));
    }
    None
}

/// A host problem recognized in a failed step's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostProblem {
    pub what: String,
    pub fix: String,
    /// Every other step would fail the same way.
    pub run_wide: bool,
}

/// What a failed step's log says about the host, if it names a problem of
/// the machine rather than of the recipe: mmdebstrap without arch-test, a
/// full disk, a foreign binary without its binfmt handler, no mirror.
pub fn diagnose_log(log_tail: &str, arch: Arch) -> Option<HostProblem> {
    let has = |needle: &str| log_tail.contains(needle);
    let problem = |what: String, fix: String, run_wide: bool| {
        Some(HostProblem {
            what,
            fix,
            run_wide,
        })
    };
    if has("install arch-test for foreign architecture support") {
        return problem(
            format!("mmdebstrap needs arch-test to make {arch} images, and it is not installed"),
            apt("arch-test"),
            true,
        );
    }
    if has("No space left on device") || has("Disk quota exceeded") {
        return problem(
            "the disk is full".into(),
            "free space: `refine gc --max-size 20G`, `podman system prune --force`, or a store on a larger disk (--store DIR)".into(),
            true,
        );
    }
    if arch != Arch::host() && (has("Exec format error") || has("exec format error")) {
        return problem(
            format!(
                "{arch} programs cannot run on this {} machine (no binfmt handler)",
                Arch::host()
            ),
            binfmt_fix(arch),
            true,
        );
    }
    if has("Temporary failure resolving")
        || has("Could not resolve")
        || has("Unable to connect to")
        || has("Failed to fetch")
    {
        return problem(
            "the Debian mirrors could not be reached".into(),
            "check the network and the mirrors in /etc/apt/sources.list.d, then build again".into(),
            false,
        );
    }
    None
}

/// Whether the kernel offers user namespaces (builds then run in one).
pub fn userns_available() -> bool {
    std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
}

/// What a host without user namespaces costs, said once by every build
/// and by `refine doctor`.
pub const USERNS_OFF: &str = "user namespaces are off on this host: builds run as uid 65534 with no capabilities, but without a user namespace (container root would be host root)";
pub const USERNS_FIX: &str = "sysctl -w user.max_user_namespaces=15000";

pub fn userns() -> Check {
    if userns_available() {
        Check::ok(
            "userns",
            format!(
                "builds run as uid {} in a user namespace (host uids from {})",
                super::spec::SANDBOX_UID,
                super::spec::HOST_UID_BASE
            ),
        )
    } else {
        Check::warn("userns", USERNS_OFF, USERNS_FIX)
    }
}

/// A static busybox, to probe podman with a root filesystem of one file.
fn static_busybox() -> Option<PathBuf> {
    let p = which("busybox")?;
    let bytes = std::fs::read(&p).ok()?;
    crate::wheel::is_static_elf(&bytes).then_some(p)
}

/// podman can start a container with the protections builds get (an
/// unprivileged uid in a user namespace, no capabilities): a root
/// filesystem of one static busybox.
pub fn podman_runs(podman: &str) -> Check {
    const NAME: &str = "podman-run";
    let Some(bb) = static_busybox() else {
        return Check::fail(
            NAME,
            "cannot probe podman: a static busybox is needed for the probe container",
            apt("busybox-static"),
        );
    };
    let Ok(dir) = tempfile::tempdir() else {
        return Check::fail(NAME, "cannot make a temporary directory", "check /tmp");
    };
    let isolation = super::spec::Isolation {
        userns: userns_available(),
        pids_limit: 64,
        seccomp: None,
    };
    if probe_rootfs(dir.path(), &bb, &isolation).is_err() {
        return Check::fail(
            NAME,
            "cannot write the probe's root filesystem",
            "check /tmp",
        );
    }
    let out = Command::new(podman)
        .args(["run", "--rm", "--network=none", "--read-only"])
        .args(super::spec::protection_args(&isolation))
        .arg("--rootfs")
        .arg(dir.path())
        .args(["/bin/busybox", "true"])
        .stdin(Stdio::null())
        .output();
    match out {
        Err(e) => Check::fail(NAME, format!("cannot run {podman}: {e}"), apt("podman")),
        Ok(o) if o.status.success() => Check::ok(
            NAME,
            "podman starts containers as an unprivileged uid with no capabilities",
        ),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
            let last = err.lines().last().unwrap_or("").to_string();
            match diagnose_podman(&err) {
                Some((what, fix)) => Check::fail(NAME, format!("{what}: {last}"), fix),
                None => Check::fail(
                    NAME,
                    format!("podman cannot start a container: {last}"),
                    "podman info  (and read what it says about the runtime and storage)",
                ),
            }
        }
    }
}

/// A root filesystem of one static busybox, owned by the namespace's root
/// (podman mounts /proc, /sys, /run and /etc files over it).
fn probe_rootfs(
    root: &Path,
    busybox: &Path,
    isolation: &super::spec::Isolation,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for d in ["bin", "etc", "proc", "sys", "dev", "run", "tmp", "var/tmp"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    for f in ["etc/hosts", "etc/resolv.conf", "etc/hostname"] {
        std::fs::write(root.join(f), "")?;
    }
    std::fs::copy(busybox, root.join("bin/busybox"))?;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755))?;
    if isolation.userns {
        let owner = rustix::fs::Uid::from_raw(super::spec::HOST_UID_BASE);
        let group = rustix::fs::Gid::from_raw(super::spec::HOST_UID_BASE);
        for e in walkdir::WalkDir::new(root) {
            let e = e.map_err(std::io::Error::other)?;
            rustix::fs::chown(e.path(), Some(owner), Some(group))?;
        }
    }
    Ok(())
}

/// Free space where the store lives (or would be made).
pub fn store_space(store: &Path) -> Check {
    const NAME: &str = "store-space";
    let mut p = store;
    while !p.exists() {
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
    match rustix::fs::statvfs(p) {
        Err(e) => Check::fail(
            NAME,
            format!("cannot read the free space of {}: {e}", p.display()),
            "choose another store: --store DIR or REFINE_STORE",
        ),
        Ok(v) => space_check(v.f_bavail.saturating_mul(v.f_frsize), store, p),
    }
}

/// The verdict on `free` bytes for the store at `store` (on the disk of
/// `p`, its nearest existing ancestor): below 2 GiB nothing builds, below
/// 10 GiB numpy does not.
fn space_check(free: u64, store: &Path, p: &Path) -> Check {
    const NAME: &str = "store-space";
    let gib = free as f64 / (1u64 << 30) as f64;
    let where_ = format!("{:.1} GiB free for the store at {}", gib, store.display());
    let fix = format!(
        "refine gc --max-size 20G  (or a store on a larger disk: --store DIR); free space on {}",
        p.display()
    );
    if free < 2 << 30 {
        Check::fail(NAME, format!("only {where_}; builds need several GiB"), fix)
    } else if free < 10 << 30 {
        Check::warn(
            NAME,
            format!("{where_}; numpy's build needs about 10 GiB"),
            fix,
        )
    } else {
        Check::ok(NAME, where_)
    }
}

/// A field of /proc/meminfo (`MemTotal`, `MemAvailable`…), in bytes.
pub fn meminfo(field: &str) -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_below_two_gib_fails_below_ten_warns() {
        let (store, disk) = (Path::new("/s/.store"), Path::new("/s"));
        let gib = 1u64 << 30;
        let status = |free| format!("{:?}", space_check(free, store, disk).status);
        assert_eq!(status(gib), "Fail");
        assert_eq!(status(2 * gib), "Warn");
        assert_eq!(status(10 * gib - 1), "Warn");
        assert_eq!(status(10 * gib), "Ok");
        let c = space_check(3 * gib, store, disk);
        assert!(
            c.detail.contains("3.0 GiB free for the store at /s/.store"),
            "{}",
            c.detail
        );
        assert!(
            c.fix
                .as_deref()
                .is_some_and(|f| f.contains("free space on /s"))
        );
    }

    #[test]
    fn podman_failures_name_the_host_problem_and_its_fix() {
        let (what, fix) = diagnose_podman(
            "Error: crun: setrlimit `RLIMIT_NPROC`: Operation not permitted: OCI permission denied",
        )
        .unwrap();
        assert!(what.contains("rlimits"), "{what}");
        assert!(
            fix.contains("containers.conf") && fix.contains("nproc=4096:4096"),
            "{fix}"
        );
        let (_, fix) =
            diagnose_podman("Error: OCI runtime error: crun: cannot set cgroup").unwrap();
        assert!(fix.contains("apt-get install -y runc"), "{fix}");
        assert!(diagnose_podman("Error: some/image: image not known").is_none());
    }

    #[test]
    fn host_problems_in_logs_are_recognized() {
        let p = diagnose_log(
            "I: running --setup-hook\nE: install arch-test for foreign architecture support\n",
            Arch::S390x,
        )
        .unwrap();
        assert_eq!(p.fix, "apt-get install -y arch-test");
        assert!(p.run_wide);
        let p = diagnose_log(
            "cc1: fatal error: /build/x.o: No space left on device",
            Arch::X86_64,
        )
        .unwrap();
        assert!(p.what.contains("disk is full"));
        assert!(diagnose_log("error: command 'gcc' failed", Arch::S390x).is_none());
    }

    #[test]
    fn missing_programs_say_which_package_installs_them() {
        let c = program(
            "x",
            "refine-no-such-program",
            "the-package",
            &["--version"],
            "to test",
        );
        assert_eq!(c.status, Status::Fail);
        assert_eq!(c.fix.as_deref(), Some("apt-get install -y the-package"));
        assert!(c.detail.contains("refine-no-such-program"), "{}", c.detail);
    }

    #[test]
    fn an_unregistered_arch_gets_the_registration_command() {
        // ppc64le: never registered by refine's setup.
        let c = binfmt(Arch::Ppc64le);
        assert_eq!(c.status, Status::Fail, "{c:?}");
        let fix = c.fix.unwrap();
        assert!(
            fix.contains("qemu-ppc64le.conf > /proc/sys/fs/binfmt_misc/register"),
            "{fix}"
        );
    }
}
