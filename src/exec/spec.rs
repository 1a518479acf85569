//! Build steps as data, and the podman command lines they become.
//!
//! Every build step runs with nothing to spare (build code comes from the
//! internet): as the unprivileged uid 65534 (`nobody`), in a user namespace
//! that maps container uids 0–65535 to host uids from [`HOST_UID_BASE`]
//! (so container root is not host root, and the build's uid owns nothing
//! of the host), with every capability dropped, `no-new-privileges` (a
//! setuid program cannot raise them back), a process limit, no network,
//! no user namespaces of its own (a seccomp profile, [`super::seccomp`],
//! unless its rule asks), memory and CPU limits, the image's root
//! filesystem read-only, and only `/build`, `/out`, a private size-limited
//! `/tmp` and `/dev/shm` writable — `/build` and `/out` by the build's uid
//! only. (`/var/tmp` and `/run`, which podman makes writable tmpfs for a
//! read-only root by default, stay read-only.)

use crate::platform::Arch;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub host: PathBuf,
    pub container: String,
    pub read_only: bool,
}

/// The uid (and gid) builds run as inside the container: `nobody`.
pub const SANDBOX_UID: u32 = 65534;
/// Where container uids start on the host, with a user namespace: far
/// above the ranges /etc/subuid gives people (100000 and up).
pub const HOST_UID_BASE: u32 = 0x7000_0000;
/// How many uids the namespace maps.
pub const USERNS_SIZE: u32 = 65536;

/// The protections a build runs under that depend on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Isolation {
    /// A user namespace (container root is not host root). Off only where
    /// the host has none (`refine doctor` says so, and so does the build).
    pub userns: bool,
    /// At most this many processes (a fork bomb stops here).
    pub pids_limit: u32,
    /// The seccomp profile that refuses user namespaces ([`super::seccomp`]);
    /// `None` for a rule that may make its own (podman's default profile).
    pub seccomp: Option<PathBuf>,
}

impl Isolation {
    /// The host uid the build's files belong to: what `/build` and `/out`
    /// must be owned by.
    pub fn host_uid(&self) -> u32 {
        if self.userns {
            HOST_UID_BASE + SANDBOX_UID
        } else {
            SANDBOX_UID
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    pub cpus: Option<String>,
    pub memory: Option<String>,
    /// Seconds.
    pub timeout: u64,
    /// Bytes of the private `/tmp` (memory-backed; counted in `memory`).
    pub scratch: Option<u64>,
}

/// Bytes of `/dev/shm` (semaphores and shared memory for Python's
/// multiprocessing, not a place for files).
pub const SHM_SIZE: u64 = 64 << 20;

/// One recipe run in a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxSpec {
    /// Container name (unique per run).
    pub name: String,
    /// The refine process that owns the container (`RunId::tag`), as the
    /// `dev.refine.run` label: how a later run finds containers of a dead one.
    pub owner: String,
    /// The node, as the `dev.refine.label` label (for people reading `podman ps`).
    pub label: String,
    /// The image, by a tag that carries its digest.
    pub image: String,
    pub arch: Arch,
    /// Whether `arch` is not the host's (runs under qemu-user).
    pub foreign: bool,
    /// Inputs (read-only), the scratch directory and the output directory.
    pub mounts: Vec<Mount>,
    /// The complete environment of the build; nothing else is inherited.
    pub env: BTreeMap<String, String>,
    pub command: Vec<String>,
    pub workdir: String,
    pub limits: Limits,
    pub isolation: Isolation,
    /// The host directory mounted at `REFINE_OUT`.
    pub out: PathBuf,
}

/// The podman flags of the protections every build runs under.
pub fn protection_args(isolation: &Isolation) -> Vec<String> {
    let mut a = vec![
        format!("--user={SANDBOX_UID}:{SANDBOX_UID}"),
        "--cap-drop=all".into(),
        "--security-opt=no-new-privileges".into(),
        format!("--pids-limit={}", isolation.pids_limit),
    ];
    if let Some(p) = &isolation.seccomp {
        a.push(format!("--security-opt=seccomp={}", p.display()));
    }
    if isolation.userns {
        a.push(format!("--uidmap=0:{HOST_UID_BASE}:{USERNS_SIZE}"));
        a.push(format!("--gidmap=0:{HOST_UID_BASE}:{USERNS_SIZE}"));
    }
    a
}

impl SandboxSpec {
    /// The `podman run` argv (without the program name).
    pub fn podman_argv(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "run".into(),
            "--rm".into(),
            "--name".into(),
            self.name.clone(),
            "--network=none".into(),
            "--pull=never".into(),
            // Nothing from the host or the image's config: only `env` below.
            "--unsetenv-all".into(),
            "--log-driver=none".into(),
            "--read-only".into(),
            // Not podman's writable /tmp, /var/tmp and /run: only the
            // scratch below.
            "--read-only-tmpfs=false".into(),
            "--hostname=refine".into(),
        ];
        a.extend(protection_args(&self.isolation));
        a.extend([
            format!("--workdir={}", self.workdir),
            format!("--label={}={}", crate::exec::podman::RUN_LABEL, self.owner),
            format!("--label=dev.refine.label={}", self.label),
        ]);
        if self.foreign {
            a.push(format!("--arch={}", self.arch.oci()));
        }
        if let Some(c) = &self.limits.cpus {
            a.push(format!("--cpus={c}"));
        }
        if let Some(m) = &self.limits.memory {
            a.push(format!("--memory={m}"));
        }
        let tmp = match self.limits.scratch {
            Some(n) => format!(",size={n}"),
            None => String::new(),
        };
        a.push(format!("--tmpfs=/tmp:rw,nosuid,nodev,mode=1777{tmp}"));
        a.push(format!("--shm-size={SHM_SIZE}"));
        if self.limits.timeout > 0 {
            // A backstop: refine's own watchdog stops the container first.
            a.push(format!("--timeout={}", self.limits.timeout + 60));
        }
        for m in &self.mounts {
            let mode = if m.read_only { "ro" } else { "rw" };
            a.push("--volume".into());
            a.push(format!("{}:{}:{mode}", m.host.display(), m.container));
        }
        for (k, v) in &self.env {
            a.push("--env".into());
            a.push(format!("{k}={v}"));
        }
        a.push(self.image.clone());
        a.extend(self.command.iter().cloned());
        a
    }
}

/// A builder image made with mmdebstrap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRequest {
    pub label: String,
    pub suite: String,
    pub variant: String,
    pub components: Vec<String>,
    pub packages: Vec<String>,
    pub arch: Arch,
    pub source_date_epoch: i64,
    pub timeout: u64,
    /// A hybrid image: the host's cross compilers wired in by a hook.
    pub cross: Option<CrossRequest>,
}

/// What makes an image hybrid (see `recipes/images/cross-toolchain.sh`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrossRequest {
    /// The host's Debian architecture, added to the image's.
    pub host: String,
    /// The hook script, on the host, run as a setup, an essential and a
    /// customize hook.
    pub hook: PathBuf,
    /// The hook's environment: REFINE_TRIPLET, REFINE_HOST_ARCH,
    /// REFINE_HOST_TRIPLET, REFINE_HOST_LOADER, REFINE_GCC, REFINE_UNPACK,
    /// REFINE_NATIVE, REFINE_STAND_IN.
    pub env: BTreeMap<String, String>,
    /// Debian suites beside the image's own (`cross.suites`): each added to
    /// the image's apt from its own suite's sources line, pinned at 1, so
    /// that only a package that names it (`pkg/suite`) comes from it.
    pub suites: Vec<String>,
}

/// The setup hook that adds `cross.suites` to an image's apt (before its
/// first `apt-get update`): for each suite, the image's own suite's `deb`
/// lines with the suite's name in its place, and a pin at 1 (below every
/// default release: apt installs nothing from it unless asked by
/// `pkg/suite`). The names, the image's suite's too, are checked when the
/// rule is read (`rules::lower::suite_name`: lowercase, digits, `-`), so
/// they are safe in the script, which mmdebstrap runs on the host.
fn suites_hook(suite: &str, suites: &[String]) -> String {
    const SCRIPT: &str = r#"set -e
mkdir -p "$1/etc/apt/sources.list.d" "$1/etc/apt/preferences.d"
for s in @SUITES@; do
    f="$1/etc/apt/sources.list.d/refine-$s.list"
    sed -n "s/^\(deb \(\[[^]]*\] \)\{0,1\}[^ ]*\) @SUITE@ /\1 $s /p" "$1/etc/apt/sources.list" > "$f"
    [ -s "$f" ] || { echo "refine: the image's sources have no line of @SUITE@ to add $s from" >&2; exit 1; }
    printf 'Package: *\nPin: release n=%s\nPin-Priority: 1\n' "$s" > "$1/etc/apt/preferences.d/refine-$s"
done"#;
    SCRIPT
        .replace("@SUITES@", &suites.join(" "))
        .replace("@SUITE@", suite)
}

impl ImageRequest {
    /// The mmdebstrap argv (without the program name) writing `out`.
    pub fn mmdebstrap_argv(&self, out: &str) -> Vec<String> {
        let arches = match &self.cross {
            Some(c) => format!("{},{}", self.arch.debian(), c.host),
            None => self.arch.debian().to_string(),
        };
        let mut a = vec![
            format!("--variant={}", self.variant),
            format!("--architectures={arches}"),
            format!("--components={}", self.components.join(",")),
            "--mode=root".into(),
            "--format=tar".into(),
        ];
        if !self.packages.is_empty() {
            a.push(format!("--include={}", self.packages.join(",")));
        }
        if let Some(c) = self.cross.as_ref().filter(|c| !c.suites.is_empty()) {
            a.push(format!(
                "--setup-hook={}",
                suites_hook(&self.suite, &c.suites)
            ));
        }
        if let Some(c) = &self.cross {
            // One script, four phases: apt's settings before anything is
            // installed, the host's dpkg-deb for the Essential packages'
            // install, the host's programs once they are in (the remaining
            // packages' maintainer scripts then run natively), the
            // compilers' wiring after.
            a.push(format!("--setup-hook=sh {} setup \"$1\"", c.hook.display()));
            a.push(format!(
                "--extract-hook=sh {} extract \"$1\"",
                c.hook.display()
            ));
            a.push(format!(
                "--essential-hook=sh {} essential \"$1\"",
                c.hook.display()
            ));
            a.push(format!(
                "--customize-hook=sh {} customize \"$1\"",
                c.hook.display()
            ));
        }
        a.push(self.suite.clone());
        a.push(out.into());
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SandboxSpec {
        let mut env = BTreeMap::new();
        env.insert("REFINE_OUT".to_string(), "/out".to_string());
        env.insert("LC_ALL".to_string(), "C".to_string());
        SandboxSpec {
            name: "refine-abc".into(),
            owner: "4242-1234".into(),
            label: "//wheels:abc".into(),
            image: "localhost/refine/bookworm:0123".into(),
            arch: Arch::S390x,
            foreign: true,
            mounts: vec![
                Mount {
                    host: "/s/trees/aa".into(),
                    container: "/opt/packs/zlib".into(),
                    read_only: true,
                },
                Mount {
                    host: "/s/tmp/out".into(),
                    container: "/out".into(),
                    read_only: false,
                },
            ],
            env,
            command: vec!["/bin/sh".into(), "/refine/recipe/r.sh".into()],
            workdir: "/build".into(),
            limits: Limits {
                cpus: Some("2".into()),
                memory: Some("4g".into()),
                timeout: 600,
                scratch: Some(1 << 30),
            },
            isolation: Isolation {
                userns: true,
                pids_limit: 4096,
                seccomp: Some("/s/sandbox/seccomp-00.json".into()),
            },
            out: "/s/tmp/out".into(),
        }
    }

    #[test]
    fn podman_argv_is_sandboxed() {
        let a = spec().podman_argv();
        let s = a.join(" ");
        assert_eq!(
            s,
            "run --rm --name refine-abc --network=none --pull=never --unsetenv-all --log-driver=none \
             --read-only --read-only-tmpfs=false --hostname=refine --user=65534:65534 --cap-drop=all \
             --security-opt=no-new-privileges --pids-limit=4096 \
             --security-opt=seccomp=/s/sandbox/seccomp-00.json --uidmap=0:1879048192:65536 \
             --gidmap=0:1879048192:65536 --workdir=/build --label=dev.refine.run=4242-1234 \
             --label=dev.refine.label=//wheels:abc --arch=s390x --cpus=2 --memory=4g \
             --tmpfs=/tmp:rw,nosuid,nodev,mode=1777,size=1073741824 --shm-size=67108864 \
             --timeout=660 --volume /s/trees/aa:/opt/packs/zlib:ro --volume /s/tmp/out:/out:rw \
             --env LC_ALL=C --env REFINE_OUT=/out localhost/refine/bookworm:0123 /bin/sh /refine/recipe/r.sh"
        );
    }

    #[test]
    fn native_runs_do_not_ask_for_an_arch() {
        let mut s = spec();
        s.foreign = false;
        s.arch = Arch::X86_64;
        assert!(!s.podman_argv().iter().any(|a| a.starts_with("--arch")));
    }

    #[test]
    fn mmdebstrap_argv() {
        let r = ImageRequest {
            label: "//images:bookworm".into(),
            suite: "bookworm".into(),
            variant: "minbase".into(),
            components: vec!["main".into()],
            packages: vec!["gcc".into(), "python3".into()],
            arch: Arch::S390x,
            source_date_epoch: 1,
            timeout: 10,
            cross: None,
        };
        assert_eq!(
            r.mmdebstrap_argv("/t/i.tar").join(" "),
            "--variant=minbase --architectures=s390x --components=main --mode=root --format=tar \
             --include=gcc,python3 bookworm /t/i.tar"
        );
        let hybrid = ImageRequest {
            cross: Some(CrossRequest {
                host: "amd64".into(),
                hook: "/s/tmp/cross-hook.sh".into(),
                env: BTreeMap::new(),
                suites: Vec::new(),
            }),
            ..r.clone()
        };
        assert_eq!(
            hybrid.mmdebstrap_argv("/t/i.tar").join(" "),
            "--variant=minbase --architectures=s390x,amd64 --components=main --mode=root \
             --format=tar --include=gcc,python3 \
             --setup-hook=sh /s/tmp/cross-hook.sh setup \"$1\" \
             --extract-hook=sh /s/tmp/cross-hook.sh extract \"$1\" \
             --essential-hook=sh /s/tmp/cross-hook.sh essential \"$1\" \
             --customize-hook=sh /s/tmp/cross-hook.sh customize \"$1\" bookworm /t/i.tar"
        );
        // With suites beside its own: one more setup hook, before the
        // cross hook's.
        let mut with_suites = hybrid.clone();
        with_suites.cross.as_mut().unwrap().suites = vec!["trixie".into()];
        let a = with_suites.mmdebstrap_argv("/t/i.tar");
        let setups: Vec<&String> = a
            .iter()
            .filter(|a| a.starts_with("--setup-hook="))
            .collect();
        assert_eq!(setups.len(), 2);
        assert!(setups[0].contains("for s in trixie; do"), "{}", setups[0]);
        assert!(setups[1].ends_with("cross-hook.sh setup \"$1\""));
    }

    /// The suites hook, run by sh as mmdebstrap runs it, on a chroot's
    /// sources as mmdebstrap writes them: the image's suite's lines (not
    /// its updates' or security's) under the new suite's name, and a pin
    /// that keeps apt from taking anything there unasked.
    #[test]
    fn the_suites_hook_adds_each_suite_from_the_images_own_line_pinned_at_one() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc/apt")).unwrap();
        std::fs::write(
            root.path().join("etc/apt/sources.list"),
            "deb http://mirror.invalid/debian bookworm main\n\
             deb http://mirror.invalid/debian bookworm-updates main\n\
             deb [signed-by=/k.gpg] http://security.invalid/debian-security bookworm-security main\n",
        )
        .unwrap();
        let run = |suites: &[&str], sources_suite: &str| {
            let script = suites_hook(
                sources_suite,
                &suites.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            );
            std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .arg("sh")
                .arg(root.path())
                .output()
                .unwrap()
        };
        let out = run(&["trixie", "sid"], "bookworm");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let read = |rel: &str| std::fs::read_to_string(root.path().join(rel)).unwrap();
        assert_eq!(
            read("etc/apt/sources.list.d/refine-trixie.list"),
            "deb http://mirror.invalid/debian trixie main\n"
        );
        assert_eq!(
            read("etc/apt/sources.list.d/refine-sid.list"),
            "deb http://mirror.invalid/debian sid main\n"
        );
        assert_eq!(
            read("etc/apt/preferences.d/refine-trixie"),
            "Package: *\nPin: release n=trixie\nPin-Priority: 1\n"
        );
        // Sources without a line of the image's suite: an error that says so.
        let out = run(&["trixie"], "buster");
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no line of buster to add trixie from"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
