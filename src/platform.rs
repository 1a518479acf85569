//! The platform a build targets: the architecture, the Python, the
//! policy floor (which glibc every wheel runs on) and how a foreign
//! target's code is compiled. The core vocabulary of refine, read by the
//! rules (WORKSPACE.toml's `[platform]`), the evaluator, the executors and
//! the import alike; it knows nothing of any of them.

use crate::diag::Diagnostic;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Arch {
    X86_64,
    Aarch64,
    S390x,
    Ppc64le,
}

impl Arch {
    pub const ALL: [Arch; 4] = [Arch::X86_64, Arch::Aarch64, Arch::S390x, Arch::Ppc64le];

    pub fn parse(s: &str) -> Option<Arch> {
        match s {
            "x86_64" | "amd64" => Some(Arch::X86_64),
            "aarch64" | "arm64" => Some(Arch::Aarch64),
            "s390x" => Some(Arch::S390x),
            "ppc64le" | "ppc64el" => Some(Arch::Ppc64le),
            "host" => Some(Arch::host()),
            _ => None,
        }
    }

    pub fn host() -> Arch {
        match std::env::consts::ARCH {
            "aarch64" => Arch::Aarch64,
            "s390x" => Arch::S390x,
            "powerpc64" => Arch::Ppc64le,
            _ => Arch::X86_64,
        }
    }

    /// The name in wheel tags, uname and qemu.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::S390x => "s390x",
            Arch::Ppc64le => "ppc64le",
        }
    }

    /// The name Debian (and so mmdebstrap) uses.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
            Arch::S390x => "s390x",
            Arch::Ppc64le => "ppc64el",
        }
    }

    /// The ELF interpreter (dynamic loader) of glibc programs for this
    /// architecture, where Debian puts it.
    pub fn loader(self) -> &'static str {
        match self {
            Arch::X86_64 => "/lib64/ld-linux-x86-64.so.2",
            Arch::Aarch64 => "/lib/ld-linux-aarch64.so.1",
            Arch::S390x => "/lib/ld64.so.1",
            Arch::Ppc64le => "/lib64/ld64.so.2",
        }
    }

    /// The name podman and OCI use.
    pub fn oci(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
            Arch::S390x => "s390x",
            Arch::Ppc64le => "ppc64le",
        }
    }

    /// The GNU triplet Debian's multiarch and cross compilers use.
    pub fn triplet(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-linux-gnu",
            Arch::Aarch64 => "aarch64-linux-gnu",
            Arch::S390x => "s390x-linux-gnu",
            Arch::Ppc64le => "powerpc64le-linux-gnu",
        }
    }

    /// The ELF `e_machine` of binaries for this architecture.
    pub fn elf_machine(self) -> u16 {
        match self {
            Arch::X86_64 => 62,
            Arch::Aarch64 => 183,
            Arch::S390x => 22,
            Arch::Ppc64le => 21,
        }
    }
}

/// An arch as its name on the wire (`s390x`): the form in action results
/// and OCI manifests, read back through [`Arch::parse`].
pub mod arch_name {
    use super::Arch;

    pub fn serialize<S: serde::Serializer>(a: &Arch, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(a.as_str())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Arch, D::Error> {
        let name = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        Arch::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown architecture `{name}`")))
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a foreign target's code is compiled.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum Toolchain {
    /// The host's cross compilers for the target, running natively inside
    /// the target's (emulated) image: the default.
    #[default]
    Cross,
    /// The target's own compilers, emulated like everything else.
    Emulated,
}

impl Toolchain {
    pub fn parse(s: &str) -> Option<Toolchain> {
        match s {
            "cross" => Some(Toolchain::Cross),
            "emulated" => Some(Toolchain::Emulated),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Toolchain::Cross => "cross",
            Toolchain::Emulated => "emulated",
        }
    }
}

/// Which interpreter runs a wheel's PEP 517 hooks for a foreign target:
/// the host's CPython of the target's version set up for the target
/// (native speed; the extensions still compiled by the target's cross
/// compiler against its headers), or the target's own, emulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum FrontendPython {
    Host,
    Target,
}

impl FrontendPython {
    pub const HINT: &'static str = "frontend_python is \"host\" (the host's Python set up for the target, where the image has one) or \"target\" (the target's own)";

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "host" => Some(Self::Host),
            "target" => Some(Self::Target),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Target => "target",
        }
    }
}

/// The platform a run builds for, after command-line overrides.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Platform {
    pub arch: Arch,
    /// "3.11"
    pub python: String,
    /// "manylinux2014": the floor repaired wheels meet (a rule may set
    /// its own).
    pub policy: String,
    /// How a foreign target's code is compiled (no meaning for the host's).
    pub toolchain: Toolchain,
    /// Which Python runs wheels' PEP 517 hooks (None: the host's wherever
    /// the image has it, else the target's; a rule may say otherwise).
    pub frontend_python: Option<FrontendPython>,
}

impl Platform {
    /// "cp311"
    pub fn python_tag(&self) -> String {
        format!("cp{}", self.python.replace('.', ""))
    }

    /// "manylinux_2_36_s390x": what repaired wheels are tagged with.
    pub fn platform_tag(&self) -> String {
        format!("{}_{}", self.policy, self.arch.as_str())
    }

    /// "linux_s390x": what unrepaired wheels are tagged with.
    pub fn linux_tag(&self) -> String {
        format!("linux_{}", self.arch.as_str())
    }

    pub fn is_foreign(&self) -> bool {
        self.arch != Arch::host()
    }

    /// What compiles: "native" for the host's arch, else the toolchain.
    pub fn toolchain_name(&self) -> &'static str {
        if self.is_foreign() {
            self.toolchain.as_str()
        } else {
            "native"
        }
    }

    /// Whether images get the host's cross compilers.
    pub fn uses_cross(&self) -> bool {
        self.is_foreign() && self.toolchain == Toolchain::Cross
    }

    /// The architectures containers for this platform run under emulation.
    pub fn emulated(&self) -> Vec<Arch> {
        if self.is_foreign() {
            vec![self.arch]
        } else {
            Vec::new()
        }
    }
}

/// The policy a workspace that names none builds for: manylinux2014
/// (glibc 2.17), what the oldest Z systems still served accept.
pub const DEFAULT_POLICY: &str = "manylinux2014";

/// The glibc a manylinux policy stands for, as (major, minor):
/// `manylinux_2_28` is 2.28, the legacy names their PEP 600 equivalents
/// (`manylinux2014` 2.17, `manylinux2010` 2.12, `manylinux1` 2.5). None
/// for a musllinux policy or anything else.
pub fn policy_glibc(policy: &str) -> Option<(u32, u32)> {
    match policy {
        "manylinux2014" => return Some((2, 17)),
        "manylinux2010" => return Some((2, 12)),
        "manylinux1" => return Some((2, 5)),
        _ => {}
    }
    let (major, minor) = policy.strip_prefix("manylinux_")?.split_once('_')?;
    let num = |s: &str| {
        (!s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    Some((num(major)?, num(minor)?))
}

/// A `major.minor` glibc version (an image's `glibc`).
pub fn parse_glibc(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    policy_glibc(&format!("manylinux_{a}_{b}"))
}

/// Whether `policy` names an auditwheel policy (without architecture): a
/// manylinux one (PEP 600 or legacy) or a musllinux one.
pub fn check_policy(policy: &str) -> Result<(), Diagnostic> {
    let musl = policy
        .strip_prefix("musllinux_")
        .and_then(|v| v.split_once('_'))
        .is_some_and(|(a, b)| {
            [a, b]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
        });
    if musl || policy_glibc(policy).is_some() {
        return Ok(());
    }
    let why = if Arch::ALL.iter().any(|a| policy.ends_with(a.as_str())) {
        " (the architecture comes from `arch`: leave it out)"
    } else {
        ""
    };
    Err(
        Diagnostic::error(format!("`{policy}` is not a manylinux policy{why}")).hint(
            "write manylinux2014 (glibc 2.17, the default), manylinux_2_28 (RHEL 8) or \
             manylinux_2_36 (Debian 12, the builder image's own glibc)",
        ),
    )
}

pub fn arch_error(value: &str) -> Diagnostic {
    let names: Vec<&str> = Arch::ALL.iter().map(|a| a.as_str()).collect();
    Diagnostic::error(format!("unknown architecture `{value}`")).hint(format!(
        "architectures are {} (or \"host\")",
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_and_their_glibc() {
        for (p, g) in [
            ("manylinux2014", Some((2, 17))),
            ("manylinux_2_28", Some((2, 28))),
            ("manylinux_2_36", Some((2, 36))),
            ("manylinux2010", Some((2, 12))),
            ("manylinux1", Some((2, 5))),
            ("musllinux_1_2", None),
            ("manylinux_2_", None),
            ("manylinux_2_17_s390x", None),
            ("linux", None),
        ] {
            assert_eq!(policy_glibc(p), g, "{p}");
        }
        assert!(check_policy("musllinux_1_2").is_ok());
        assert!(check_policy("manylinux2014").is_ok());
        let e = check_policy("manylinux2014_s390x").unwrap_err();
        assert!(e.message.contains("leave it out"), "{}", e.message);
        assert_eq!(parse_glibc("2.36"), Some((2, 36)));
        assert_eq!(parse_glibc("2.36.1"), None);
        // Ordered as versions, not as text.
        assert!(policy_glibc("manylinux_2_9") < policy_glibc("manylinux2014"));
    }
}
