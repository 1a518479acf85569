//! Typed rules: what lowering produces from a rule file.
//!
//! These types still carry the places they came from (for messages), and
//! nothing here is resolved: labels may name nothing yet, defaults from
//! `WORKSPACE.toml` are not applied. Resolution is evaluation's job.

use crate::diag::Loc;
use crate::rules::label::Label;
use crate::rules::toml::Spanned;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub label: Label,
    /// Where the target's name is declared.
    pub decl: Loc,
    pub body: Body,
    /// `key = value` locations of the rule's fields, for `explain`.
    pub fields: Vec<(String, Loc)>,
    /// For targets made from another rule (an inline source, the repair of
    /// `repair = true`): the rule that made it.
    pub owner: Option<Label>,
    /// Per-target timeout in seconds (not part of any key).
    pub timeout: Option<u64>,
    /// Whether the build may make user namespaces of its own (`nested_userns
    /// = true`; else `[sandbox]`'s). Not part of any key.
    pub nested_userns: Option<bool>,
}

impl Target {
    pub fn field_loc(&self, name: &str) -> Option<&Loc> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, l)| l)
    }

    /// Every label this target names, with where it names it.
    pub fn references(&self) -> Vec<&Spanned<Label>> {
        let mut out: Vec<&Spanned<Label>> = Vec::new();
        match &self.body {
            Body::Source(s) => out.extend(&s.needs),
            Body::Image(_) => {}
            Body::Runtime(r) => {
                out.extend(&r.image);
                if let RuntimeSpec::Build(b) = &r.spec {
                    out.extend(&b.sources);
                    out.extend(&b.packs);
                }
            }
            Body::Pack(p) => {
                out.extend(&p.image);
                out.extend(&p.sources);
                out.extend(&p.deps);
            }
            Body::Wheel(w) => {
                out.extend(&w.image);
                out.extend(&w.runtime);
                out.extend(&w.sources);
                out.extend(&w.build_requires);
                out.extend(&w.packs);
            }
            Body::Set(s) => out.extend(&s.targets),
            Body::Test(s) => out.extend(&s.targets),
            Body::Repair(r) => {
                out.push(&r.wheel);
                out.extend(&r.image);
                out.extend(&r.runtime);
                if let Some(t) = &r.tools {
                    out.extend(t);
                }
            }
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Body {
    Source(SourceRule),
    Image(ImageRule),
    Runtime(RuntimeRule),
    Pack(PackRule),
    Wheel(WheelRule),
    Repair(RepairRule),
    Set(SetRule),
    Test(SetRule),
}

/// `[sets.NAME] targets = [...]`: a name for a group of targets, usable
/// wherever a label is given on the command line or in `[defaults]
/// targets`; building it builds (and delivers) every member.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SetRule {
    pub targets: Vec<Spanned<Label>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SourceRule {
    pub fetch: Fetch,
    /// Lowercase hex sha256 of the file.
    pub sha256: String,
    /// Documentation only: where the file comes from upstream.
    pub upstream: Option<String>,
    /// The source this one is made from (`cargo = "//sources:SDIST"`).
    pub needs: Option<Spanned<Label>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Fetch {
    /// One exact `name==version` from the package index pip is configured with.
    Pypi {
        name: String,
        version: String,
        dist: Dist,
    },
    /// One file of an exact Debian source package version.
    Debian {
        package: String,
        version: String,
        file: String,
        /// Another suite of the machine's mirror than its own release
        /// (`trixie`), for a library newer than the release has. Not in
        /// the source's key (the pin is its identity).
        suite: Option<String>,
    },
    /// HTTP(S) URLs: the first, then mirrors in order.
    Url { urls: Vec<String> },
    /// A file inside the workspace.
    Path { path: String },
    /// The crates the `Cargo.lock` in another source (an sdist) names,
    /// vendored on the host into one deterministic tar.
    Cargo { of: Label, lock: Option<String> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Dist {
    Sdist,
    Wheel,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRule {
    pub spec: ImageSpec,
    /// The glibc the image's C library is ("2.36"), as the rule declares
    /// it: builds whose floor is older compile with Zig. Not verified (the
    /// repair judges what a wheel really needs) and not in the image's key.
    pub glibc: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ImageSpec {
    Mmdebstrap {
        suite: String,
        variant: String,
        components: Vec<String>,
        packages: Vec<String>,
        /// How the image becomes hybrid for a foreign target.
        cross: Option<CrossSpec>,
    },
    /// `name@sha256:<hex>`: pulled by podman, pinned by digest.
    Oci { reference: String, digest: String },
}

/// The hybrid form of an image for a foreign target (`toolchain =
/// "cross"`): host-native cross compilers in place of the target's own.
/// `{triplet}` and `{host}` in package names stand for the target's GNU
/// triplet (`s390x-linux-gnu`) and the host's Debian architecture (`amd64`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CrossSpec {
    /// Packages of `packages` the cross toolchain replaces.
    pub replace: Vec<String>,
    /// Packages to install besides (target ones, and `:{host}` ones).
    pub packages: Vec<String>,
    /// Packages whose files the hook unpacks (not installable as such).
    pub unpack: Vec<String>,
    /// Host packages whose programs replace the target's in place (the
    /// shell, coreutils, sed, grep…), so that configure scripts and
    /// makefiles run natively; the hook keeps the programs that report the
    /// machine (uname, arch) and the byte-order-sensitive od.
    pub native: Vec<String>,
    /// Host programs that stand in for the target's only while the image
    /// is made (`PACKAGE:/ABSOLUTE/PATH`, e.g. dpkg's `dpkg-deb`, which
    /// decompresses every package, and the Python that byte-compiles in
    /// maintainer scripts); the image ends with the target's own.
    pub stand_in: Vec<String>,
    /// Host programs the image keeps beside the target's
    /// (`PACKAGE:/ABSOLUTE/PATH`), in `/usr/lib/refine/host/bin` under
    /// their own names: the host's Python of the target's version, in
    /// which wheels' PEP 517 hooks run (`frontend_python = "host"`).
    pub host: Vec<String>,
    /// Debian suites beside the image's own that its apt may take a
    /// package from only where the package names one (`pkg/suite` in
    /// `packages` or `unpack`): added from the image's own sources line,
    /// pinned below everything else (Rust's standard library for the
    /// target from a newer release, where the image's has an older one).
    pub suites: Vec<String>,
    /// The GCC major version the cross compilers are.
    pub gcc: String,
    /// The mmdebstrap hook (setup, extract, essential and customize) that
    /// wires them in.
    pub hook: Recipe,
}

/// A recipe script and the files it includes, workspace-relative.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Recipe {
    pub script: Spanned<String>,
    pub includes: Vec<Spanned<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RuntimeRule {
    pub image: Option<Spanned<Label>>,
    pub spec: RuntimeSpec,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RuntimeSpec {
    /// The image's own interpreter.
    System { python: String },
    /// An interpreter built by a recipe.
    Build(BuildRuntime),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BuildRuntime {
    pub version: String,
    pub sources: Vec<Spanned<Label>>,
    pub recipe: Recipe,
    pub packs: Vec<Spanned<Label>>,
    pub env: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PackRule {
    pub version: String,
    pub sources: Vec<Spanned<Label>>,
    pub recipe: Recipe,
    pub deps: Vec<Spanned<Label>>,
    pub env: BTreeMap<String, String>,
    pub image: Option<Spanned<Label>>,
    /// Its own floor (a policy name), instead of [platform] policy.
    pub policy: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WheelRule {
    /// The distribution name (defaults to the target name).
    pub package: String,
    pub version: Option<String>,
    pub sources: Vec<Spanned<Label>>,
    pub runtime: Option<Spanned<Label>>,
    pub image: Option<Spanned<Label>>,
    /// Wheels installed for the build: sources of prebuilt wheels or other
    /// wheel targets. Added to `[defaults] build_requires` unless
    /// `default_build_requires = false`.
    pub build_requires: Vec<Spanned<Label>>,
    pub default_build_requires: bool,
    pub packs: Vec<Spanned<Label>>,
    pub env: BTreeMap<String, String>,
    /// PEP 517 config settings, passed as `--config-settings KEY=VALUE`
    /// (once per value: a key may repeat, like meson-python's setup-args).
    pub config_settings: BTreeMap<String, Vec<String>>,
    pub recipe: Option<Recipe>,
    pub repair: bool,
    /// What `refine test` runs for this wheel in a clean container (a shell
    /// command; default: import its top-level modules).
    pub test: Option<String>,
    /// Its own floor (a policy name), instead of [platform] policy: what
    /// it is compiled for and what its repair checks.
    pub policy: Option<String>,
    /// Which interpreter runs its PEP 517 hooks, instead of [platform]
    /// frontend_python.
    pub frontend_python: Option<Spanned<crate::platform::FrontendPython>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RepairRule {
    pub wheel: Spanned<Label>,
    pub tools: Option<Vec<Spanned<Label>>>,
    pub policy: Option<String>,
    pub recipe: Option<Recipe>,
    pub image: Option<Spanned<Label>>,
    pub runtime: Option<Spanned<Label>>,
}

/// One entry of the hint catalog (`[[hints]]` in a rule file): what a
/// failed build's log says, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HintRule {
    /// A regular expression over the log's lines; its named groups feed
    /// `fix` and `say`.
    pub pattern: Spanned<String>,
    pub fix: HintFix,
    /// What to tell the user; `{group}` is replaced by the match.
    pub say: Option<String>,
    /// For `fix = "env"`: the build environment variables to set.
    pub env: BTreeMap<String, String>,
    /// For `fix = "image"`: the builder image (and its runtime) to build in.
    pub image: Option<Spanned<Label>>,
    pub runtime: Option<Spanned<Label>>,
    pub loc: Loc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HintFix {
    /// `(?P<header>…)` is a missing C header: the pack that provides it
    /// (`[headers]`), else the Debian package (missing-headers.tsv).
    Header,
    /// `(?P<tool>…)` (or `tool2`, `tool3`) is a program the build ran and
    /// did not find (a library's config tool): the pack that installs it
    /// (`[tools]`), else `say`.
    Tool,
    /// `(?P<requirement>…)` is a PEP 508 build requirement the build
    /// wanted: pin one that satisfies it.
    BuildRequirement,
    /// Say `say`, nothing to apply.
    Say,
    /// Set the hint's `env` in the wheel rule's build environment.
    Env,
    /// Build in the hint's `image` (and `runtime`): the one with the
    /// compiler the log says is missing.
    Image,
}

/// `[headers]`: a C header → the pack that provides it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HeaderEntry {
    pub header: String,
    pub pack: Spanned<Label>,
}

/// `[catalog]`: Python package → the packs it needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CatalogEntry {
    /// Normalized (PEP 503) package name.
    pub package: String,
    pub packs: Vec<Spanned<Label>>,
    /// The floor its imported wheel rules get (`policy`), when the packs
    /// cannot meet the workspace's: `numpy = { packs = [...], policy =
    /// "manylinux_2_36" }`.
    pub policy: Option<String>,
    /// What its imported wheel rules' environment gets (`env`), for a
    /// build that must be told where a pack is or what it is, when its
    /// own probe cannot say (h5py loads HDF5 to read its version, which a
    /// cross build's host Python cannot): `h5py = { packs = [...], env =
    /// { HDF5_VERSION = "1.10.8" } }`. A fix's `env` wins over it.
    pub env: std::collections::BTreeMap<String, String>,
    /// The PEP 517 config settings its imported wheel rules get
    /// (`config_settings`), for a backend that must be told which packs to
    /// use (scipy's meson: `-Dlapack=lapack`, or it takes LAPACK from the
    /// OpenBLAS pack, which has none).
    pub config_settings: std::collections::BTreeMap<String, Vec<String>>,
    pub loc: Loc,
}

/// PEP 503 name normalization.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut last_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !last_sep {
                out.push('-');
            }
            last_sep = true;
        } else {
            out.push(c.to_ascii_lowercase());
            last_sep = false;
        }
    }
    out
}

/// Dropping source locations: evaluation keys its memoized work on what a
/// rule *means*, so that an edit that only moves text (a comment, a blank
/// line above) re-runs nothing downstream. Diagnostics are computed from
/// the located rules when needed.
pub trait WithoutLocs {
    fn without_locs(&self) -> Self;
}

fn blank() -> Loc {
    static EMPTY: std::sync::OnceLock<std::sync::Arc<str>> = std::sync::OnceLock::new();
    Loc {
        file: EMPTY.get_or_init(|| std::sync::Arc::from("")).clone(),
        span: crate::diag::Span::default(),
    }
}

impl<T: Clone> WithoutLocs for Spanned<T> {
    fn without_locs(&self) -> Self {
        Spanned {
            value: self.value.clone(),
            loc: blank(),
        }
    }
}

impl<T: WithoutLocs> WithoutLocs for Option<T> {
    fn without_locs(&self) -> Self {
        self.as_ref().map(WithoutLocs::without_locs)
    }
}

impl<T: WithoutLocs> WithoutLocs for Vec<T> {
    fn without_locs(&self) -> Self {
        self.iter().map(WithoutLocs::without_locs).collect()
    }
}

impl WithoutLocs for Recipe {
    fn without_locs(&self) -> Self {
        Recipe {
            script: self.script.without_locs(),
            includes: self.includes.without_locs(),
        }
    }
}

impl WithoutLocs for Target {
    fn without_locs(&self) -> Self {
        let body = match &self.body {
            Body::Source(s) => Body::Source(SourceRule {
                needs: s.needs.without_locs(),
                ..s.clone()
            }),
            Body::Image(i) => Body::Image(i.clone()),
            Body::Runtime(r) => Body::Runtime(RuntimeRule {
                image: r.image.without_locs(),
                spec: match &r.spec {
                    RuntimeSpec::System { python } => RuntimeSpec::System {
                        python: python.clone(),
                    },
                    RuntimeSpec::Build(b) => RuntimeSpec::Build(BuildRuntime {
                        version: b.version.clone(),
                        sources: b.sources.without_locs(),
                        recipe: b.recipe.without_locs(),
                        packs: b.packs.without_locs(),
                        env: b.env.clone(),
                    }),
                },
            }),
            Body::Pack(p) => Body::Pack(PackRule {
                version: p.version.clone(),
                sources: p.sources.without_locs(),
                recipe: p.recipe.without_locs(),
                deps: p.deps.without_locs(),
                env: p.env.clone(),
                image: p.image.without_locs(),
                policy: p.policy.clone(),
            }),
            Body::Wheel(w) => Body::Wheel(WheelRule {
                package: w.package.clone(),
                version: w.version.clone(),
                sources: w.sources.without_locs(),
                runtime: w.runtime.without_locs(),
                image: w.image.without_locs(),
                build_requires: w.build_requires.without_locs(),
                default_build_requires: w.default_build_requires,
                packs: w.packs.without_locs(),
                env: w.env.clone(),
                config_settings: w.config_settings.clone(),
                recipe: w.recipe.without_locs(),
                repair: w.repair,
                test: w.test.clone(),
                policy: w.policy.clone(),
                frontend_python: w.frontend_python.without_locs(),
            }),
            Body::Set(s) => Body::Set(SetRule {
                targets: s.targets.without_locs(),
            }),
            Body::Test(s) => Body::Test(SetRule {
                targets: s.targets.without_locs(),
            }),
            Body::Repair(r) => Body::Repair(RepairRule {
                wheel: r.wheel.without_locs(),
                tools: r.tools.without_locs(),
                policy: r.policy.clone(),
                recipe: r.recipe.without_locs(),
                image: r.image.without_locs(),
                runtime: r.runtime.without_locs(),
            }),
        };
        Target {
            label: self.label.clone(),
            decl: blank(),
            body,
            fields: Vec::new(),
            owner: self.owner.clone(),
            timeout: self.timeout,
            nested_userns: self.nested_userns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_pep_503() {
        assert_eq!(normalize_name("MarkupSafe"), "markupsafe");
        assert_eq!(normalize_name("typing_extensions"), "typing-extensions");
        assert_eq!(normalize_name("zope..interface"), "zope-interface");
    }
}

/// `[import]`: how `refine import` made a file (its inputs and options) and
/// the fixes it applies again at every regeneration (`[[import.fixes]]`).
/// Nothing here enters a build. The one schema of that table: the rules'
/// lowering reads it (with located errors), the import writes it
/// (`import::write`), and a round-trip test holds the two together.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ImportMeta {
    pub name: String,
    /// The target it was resolved for: regenerations keep it.
    pub arch: Option<String>,
    pub python: Option<String>,
    pub requirements: Vec<String>,
    pub constraints: Vec<String>,
    pub specs: Vec<String>,
    pub wheels: Option<String>,
    pub strategy: Option<String>,
    pub fallback_latest: bool,
    pub max_deps: Option<usize>,
    pub no_deps: bool,
    pub build_pure: bool,
    pub fixes: Vec<ImportFix>,
}

/// A recorded change to one generated wheel rule (`[[import.fixes]]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ImportFix {
    /// The wheel target: `//wheels:NAME`.
    pub target: String,
    /// Packs to mount.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packs: Vec<String>,
    /// Build requirements to add or narrow (PEP 508).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub build_requires: Vec<String>,
    /// Build environment variables.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The wheel's test command (the rule's `test`), e.g. a one-line
    /// smoke test a corpus keeps beside its requirements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
    /// The builder image to build in (`//images:NAME`), and the runtime
    /// of that image (`//runtimes:NAME`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Why (the hint that suggested it).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub why: String,
}
