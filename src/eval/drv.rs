//! Derivations: a target with everything resolved, and what goes into its key.
//!
//! What the key of each kind covers (and what it leaves out on purpose):
//!
//! | field | covers | left out |
//! |---|---|---|
//! | `kind`, `name`, `version` | the target's identity | the rule file it is in, comments, key order |
//! | `platform` | arch; for runtimes, wheels and repairs also the Python tag and platform tag | the host |
//! | `source_date_epoch` | timestamps the build writes | |
//! | `action` | the fetch pin / mmdebstrap spec / recipe files by digest | mirrors, `upstream` (same bytes) |
//! | `sources` | each source's pinned sha256 | where it is fetched from |
//! | `image`, `runtime`, `packs`, `wheels`, `tools`, `wheel` | the *output digest* of each dependency (early cutoff) | the dependency's own key |
//! | `install` | wheels: which of `wheels` the rule names itself (installed in the build environment, not only offered), by label | their order |
//! | `frontend` | the pin of the uv wheel the recipe runs (wheels, repairs, tests: the one for the machine whose programs run natively in the image) | the uv wheels of other architectures |
//! | `zig`, `cc_target` | wheels and packs whose floor (policy) is older than their image's glibc: the pin of the host's Zig wheel and the target it compiles for (`s390x-linux-gnu.2.17`); absent otherwise | the image's glibc as declared (the image's own digest stands for it) |
//! | `env`, `config_settings` | the rule's explicit variables | the host environment, entirely |
//! | | | CPU, memory, timeout, `--jobs` (they change how fast, not what) |
//!
//! Sources are fixed-output: their key is their pin, so a changed mirror
//! never refetches and a dependent's key is known before anything is fetched.

use crate::key::{Digest, KEY_VERSION, PValue, Preimage};
use crate::platform::Platform;
use crate::rules::{Dist, Fetch, Kind, Label};
use std::collections::BTreeMap;

/// A recipe script and its includes, each by workspace path and digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct RecipeFiles {
    /// Workspace-relative path of the script.
    pub script: String,
    /// Every file (script first), with the digest it had at evaluation.
    pub files: Vec<(String, Digest)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Action {
    Fetch {
        fetch: Fetch,
        sha256: String,
    },
    Mmdebstrap {
        suite: String,
        variant: String,
        components: Vec<String>,
        packages: Vec<String>,
        /// The hybrid image of a foreign target (toolchain "cross").
        cross: Option<CrossAction>,
    },
    OciImage {
        reference: String,
        digest: String,
    },
    SystemRuntime {
        python: String,
    },
    /// A set: nothing to build; its output names its members' outputs.
    Set,
    Recipe {
        recipe: RecipeFiles,
        config_settings: BTreeMap<String, Vec<String>>,
        /// Repairs: the auditwheel policy (platform tag).
        policy: Option<String>,
    },
}

/// How an image of a foreign target gets the host's cross compilers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CrossAction {
    /// The host's Debian architecture (added to the image's).
    pub host: String,
    /// The target's GNU triplet.
    pub triplet: String,
    /// The GCC major version of the cross compilers.
    pub gcc: String,
    /// Packages the hook unpacks.
    pub unpack: Vec<String>,
    /// Host packages whose programs replace the target's (the hook keeps
    /// the ones that report the machine).
    #[serde(default)]
    pub native: Vec<String>,
    /// Host programs that stand in for the target's while the image is
    /// made (`PACKAGE:/PATH`); the image ends with the target's own.
    #[serde(default)]
    pub stand_in: Vec<String>,
    /// Host programs the image keeps in `/usr/lib/refine/host/bin`
    /// (`PACKAGE:/PATH`): the host's Python for `frontend_python = "host"`.
    #[serde(default)]
    pub keep_host: Vec<String>,
    /// Debian suites beside the image's own, for packages that name one
    /// (`pkg/suite`). In the key only when there are some: images without
    /// them keep the keys they had.
    #[serde(default)]
    pub suites: Vec<String>,
    /// The mmdebstrap hook (setup, extract, essential and customize), by
    /// digest.
    pub hook: RecipeFiles,
}

/// The resolved inputs of a target, by label.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Inputs {
    pub image: Option<Label>,
    pub runtime: Option<Label>,
    pub sources: Vec<Label>,
    /// The transitive pack closure, in dependency order (a pack before the
    /// packs that need it); this is also `DEPS_PREFIXES` order.
    pub packs: Vec<Label>,
    /// Build-requirement wheels: wheel sources and wheel targets.
    pub wheels: Vec<Label>,
    /// Wheels: those of `wheels` the rule names itself (not `[defaults]`):
    /// installed in the build's environment as well as offered, whether
    /// the project declares them or not.
    #[serde(default)]
    pub install: Vec<Label>,
    /// Repairs: the tool wheels (auditwheel and what it needs).
    pub tools: Vec<Label>,
    /// Repairs: the wheel to repair.
    pub wheel: Option<Label>,
    /// Sets: their members.
    #[serde(default)]
    pub members: Vec<Label>,
    /// Wheels, repairs and tests: the frontend's wheel (uv), for the
    /// architecture whose programs run natively in the image.
    #[serde(default)]
    pub frontend: Option<Label>,
    /// Wheels and packs whose floor is older than their image's glibc:
    /// the host's Zig wheel, their C compiler and linker.
    #[serde(default)]
    pub zig: Option<Label>,
}

impl Inputs {
    /// Every dependency, each once, in a stable order.
    pub fn all(&self) -> Vec<Label> {
        let mut out: Vec<Label> = Vec::new();
        let mut push = |l: &Label| {
            if !out.contains(l) {
                out.push(l.clone());
            }
        };
        self.image.iter().for_each(&mut push);
        self.runtime.iter().for_each(&mut push);
        self.sources.iter().for_each(&mut push);
        self.packs.iter().for_each(&mut push);
        self.wheels.iter().for_each(&mut push);
        self.tools.iter().for_each(&mut push);
        self.wheel.iter().for_each(&mut push);
        self.members.iter().for_each(&mut push);
        self.frontend.iter().for_each(&mut push);
        self.zig.iter().for_each(&mut push);
        out
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Derivation {
    pub label: Label,
    pub version: Option<String>,
    pub platform: Platform,
    pub source_date_epoch: i64,
    pub action: Action,
    pub inputs: Inputs,
    pub env: BTreeMap<String, String>,
    /// Seconds a build step may take. Not part of the key.
    pub timeout: u64,
    /// The build may make user namespaces of its own. Not part of the key
    /// (it changes what the sandbox allows, never what a build makes).
    #[serde(default)]
    pub nested_userns: bool,
    /// Sources with `dist = "wheel"` (or a `.whl` path) can be build
    /// requirements; for a source, whether it is one.
    pub is_wheel_source: bool,
    /// What Zig compiles for (`s390x-linux-gnu.2.17`: the target's triplet
    /// and the floor's glibc), when the floor is older than the image's
    /// glibc; `REFINE_CC_TARGET` in the build.
    #[serde(default)]
    pub cc_target: Option<String>,
    /// Wheels of a foreign target: the host's Python (of the target's
    /// version, kept in the hybrid image) that runs the PEP 517 hooks,
    /// set up for the target; `REFINE_HOST_PYTHON` in the build. None:
    /// the target's own interpreter runs them.
    #[serde(default)]
    pub host_python: Option<String>,
}

/// Where a hybrid image keeps the host's programs of `cross.host`.
pub const HOST_BIN: &str = "/usr/lib/refine/host/bin";

impl Derivation {
    pub fn kind(&self) -> Kind {
        self.label.kind
    }

    /// The sha256 a source is pinned to.
    pub fn pinned_sha256(&self) -> Option<Digest> {
        match &self.action {
            Action::Fetch { sha256, .. } => Digest::parse(sha256).ok(),
            Action::OciImage { digest, .. } => Digest::parse(digest).ok(),
            _ => None,
        }
    }

    /// A fixed-output node's output digest is known from its rule alone.
    pub fn fixed_output(&self) -> Option<Digest> {
        self.pinned_sha256()
    }

    /// The key's preimage, given the digest each dependency contributes
    /// (its output digest; for fixed-output nodes, the pin).
    pub fn preimage(&self, dep: &dyn Fn(&Label) -> Option<Digest>) -> Preimage {
        let mut p = Preimage::new();
        p.set("key_version", i64::from(KEY_VERSION));
        p.set("kind", self.label.kind.singular());
        p.set("name", &*self.label.name);
        if let Some(v) = &self.version {
            p.set("version", v.as_str());
        }
        match &self.action {
            // A source is its bytes: the pin is the whole identity.
            Action::Fetch { fetch, sha256 } => {
                p.set("sha256", sha256.as_str());
                if let Some(name) = fetch_file_name(fetch) {
                    p.set("file", name);
                }
                return p;
            }
            Action::OciImage { digest, .. } => {
                p.set("digest", digest.as_str());
                return p;
            }
            _ => {}
        }
        let mut platform = BTreeMap::new();
        platform.insert(
            "arch".to_string(),
            PValue::from(self.platform.arch.as_str()),
        );
        // Images and packs are C-level artifacts: a Python change must not
        // rebuild them.
        if !matches!(self.label.kind, Kind::Image | Kind::Pack) {
            platform.insert("python_tag".into(), self.platform.python_tag().into());
            platform.insert("platform_tag".into(), self.platform.platform_tag().into());
        }
        p.set("platform", PValue::Map(platform));
        p.set("source_date_epoch", self.source_date_epoch);
        p.set("action", action_value(&self.action));

        let digest_of = |l: &Label| -> PValue {
            dep(l).map_or(PValue::Str("<unknown>".into()), |d| d.to_string().into())
        };
        let map_of = |ls: &[Label]| -> PValue {
            PValue::Map(ls.iter().map(|l| (l.to_string(), digest_of(l))).collect())
        };
        let i = &self.inputs;
        if let Some(l) = &i.image {
            p.set("image", map_of(std::slice::from_ref(l)));
        }
        if let Some(l) = &i.runtime {
            p.set("runtime", map_of(std::slice::from_ref(l)));
        }
        if !i.sources.is_empty() {
            // Order matters to a recipe only through names; keep it anyway:
            // it is the order the rule gives.
            p.set(
                "sources",
                PValue::List(
                    i.sources
                        .iter()
                        .map(|l| PValue::List(vec![l.to_string().into(), digest_of(l)]))
                        .collect(),
                ),
            );
        }
        if !i.packs.is_empty() {
            // DEPS_PREFIXES order is visible to the build, so it is keyed.
            p.set(
                "packs",
                PValue::List(
                    i.packs
                        .iter()
                        .map(|l| PValue::List(vec![l.to_string().into(), digest_of(l)]))
                        .collect(),
                ),
            );
        }
        if !i.wheels.is_empty() {
            p.set("wheels", map_of(&i.wheels));
        }
        // Which of them are installed (their outputs are keyed above), in
        // no order: the build sees their names sorted.
        if !i.install.is_empty() {
            let mut names: Vec<String> = i.install.iter().map(|l| l.to_string()).collect();
            names.sort();
            p.set(
                "install",
                PValue::List(names.into_iter().map(PValue::from).collect()),
            );
        }
        if !i.tools.is_empty() {
            p.set("tools", map_of(&i.tools));
        }
        if let Some(l) = &i.wheel {
            p.set("wheel", map_of(std::slice::from_ref(l)));
        }
        if !i.members.is_empty() {
            p.set("members", map_of(&i.members));
        }
        if let Some(l) = &i.frontend {
            p.set("frontend", map_of(std::slice::from_ref(l)));
        }
        // Only where set, so that keys of builds at their image's own glibc
        // are what they were before floors.
        if let Some(l) = &i.zig {
            p.set("zig", map_of(std::slice::from_ref(l)));
        }
        if let Some(t) = &self.cc_target {
            p.set("cc_target", t.as_str());
        }
        if let Some(py) = &self.host_python {
            p.set("host_python", py.as_str());
        }
        p.set("env", &self.env);
        p
    }
}

fn fetch_file_name(f: &Fetch) -> Option<String> {
    match f {
        Fetch::Pypi { .. } => None,
        Fetch::Debian { file, .. } => Some(file.clone()),
        Fetch::Url { urls } => urls
            .first()
            .and_then(|u| u.rsplit('/').next())
            .map(|s| s.split(['?', '#']).next().unwrap_or(s).to_string()),
        Fetch::Path { path } => path.rsplit('/').next().map(str::to_string),
        Fetch::Cargo { .. } => None,
    }
}

fn action_value(a: &Action) -> PValue {
    let mut m: BTreeMap<String, PValue> = BTreeMap::new();
    match a {
        Action::Fetch { .. } | Action::OciImage { .. } => {}
        Action::Mmdebstrap {
            suite,
            variant,
            components,
            packages,
            cross,
        } => {
            m.insert("builder".into(), "mmdebstrap".into());
            m.insert("suite".into(), suite.into());
            m.insert("variant".into(), variant.into());
            m.insert("components".into(), components.clone().into());
            m.insert("packages".into(), packages.clone().into());
            if let Some(c) = cross {
                let mut x: BTreeMap<String, PValue> = BTreeMap::new();
                x.insert("host".into(), c.host.as_str().into());
                x.insert("triplet".into(), c.triplet.as_str().into());
                x.insert("gcc".into(), c.gcc.as_str().into());
                x.insert("unpack".into(), c.unpack.clone().into());
                if !c.native.is_empty() {
                    x.insert("native".into(), c.native.clone().into());
                }
                if !c.keep_host.is_empty() {
                    x.insert("host".into(), c.keep_host.clone().into());
                }
                if !c.stand_in.is_empty() {
                    x.insert("stand_in".into(), c.stand_in.clone().into());
                }
                if !c.suites.is_empty() {
                    x.insert("suites".into(), c.suites.clone().into());
                }
                x.insert(
                    "hook".into(),
                    PValue::Map(
                        c.hook
                            .files
                            .iter()
                            .map(|(p, d)| (p.clone(), d.to_string().into()))
                            .collect(),
                    ),
                );
                m.insert("cross".into(), PValue::Map(x));
            }
        }
        Action::Set => {
            m.insert("builder".into(), "set".into());
        }
        Action::SystemRuntime { python } => {
            m.insert("builder".into(), "system-python".into());
            m.insert("python".into(), python.into());
        }
        Action::Recipe {
            recipe,
            config_settings,
            policy,
        } => {
            m.insert("builder".into(), "recipe".into());
            m.insert("script".into(), recipe.script.as_str().into());
            m.insert(
                "files".into(),
                PValue::Map(
                    recipe
                        .files
                        .iter()
                        .map(|(p, d)| (p.clone(), d.to_string().into()))
                        .collect(),
                ),
            );
            if !config_settings.is_empty() {
                m.insert("config_settings".into(), config_settings.into());
            }
            if let Some(policy) = policy {
                m.insert("policy".into(), policy.into());
            }
        }
    }
    PValue::Map(m)
}

impl Dist {
    pub fn as_str(self) -> &'static str {
        match self {
            Dist::Sdist => "sdist",
            Dist::Wheel => "wheel",
        }
    }
}
