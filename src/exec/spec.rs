//! Build steps as data, and the podman command lines they become.

use crate::rules::Arch;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub host: PathBuf,
    pub container: String,
    pub read_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Limits {
    pub cpus: Option<String>,
    pub memory: Option<String>,
    /// Seconds.
    pub timeout: u64,
}

/// One recipe run in a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxSpec {
    /// Container name (unique per run).
    pub name: String,
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
    /// The host directory mounted at `REFINE_OUT`.
    pub out: PathBuf,
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
            "--hostname=refine".into(),
            "--user=0:0".into(),
            format!("--workdir={}", self.workdir),
        ];
        if self.foreign {
            a.push(format!("--arch={}", self.arch.oci()));
        }
        if let Some(c) = &self.limits.cpus {
            a.push(format!("--cpus={c}"));
        }
        if let Some(m) = &self.limits.memory {
            a.push(format!("--memory={m}"));
        }
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
}

impl ImageRequest {
    /// The mmdebstrap argv (without the program name) writing `out`.
    pub fn mmdebstrap_argv(&self, out: &str) -> Vec<String> {
        let mut a = vec![
            format!("--variant={}", self.variant),
            format!("--architectures={}", self.arch.debian()),
            format!("--components={}", self.components.join(",")),
            "--mode=root".into(),
            "--format=tar".into(),
        ];
        if !self.packages.is_empty() {
            a.push(format!("--include={}", self.packages.join(",")));
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
             --read-only --hostname=refine --user=0:0 --workdir=/build --arch=s390x --cpus=2 --memory=4g \
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
        };
        assert_eq!(
            r.mmdebstrap_argv("/t/i.tar").join(" "),
            "--variant=minbase --architectures=s390x --components=main --mode=root --format=tar \
             --include=gcc,python3 bookworm /t/i.tar"
        );
    }
}
