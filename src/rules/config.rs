//! `WORKSPACE.toml`: the target platform, the store, the sandbox, defaults.
//!
//! ```toml
//! [workspace]
//! name = "refine-s390x"
//! [platform]
//! arch = "s390x"          # or x86_64, aarch64, ppc64le
//! python = "3.11"
//! policy = "manylinux2014"  # the floor every wheel meets (glibc 2.17)
//! [store]
//! remote = "oci://127.0.0.1:5000/refine"
//! [sandbox]
//! cpus = 2
//! memory = "8g"
//! timeout = "2h"
//! source_date_epoch = 1700000000
//! [defaults]
//! image = "//images:bookworm"
//! runtime = "//runtimes:system"
//! [remote]
//! execution = "grpc://127.0.0.1:50051"   # an REAPI server's workers
//! log_stream = "grpc://127.0.0.1:50052"  # where running steps' logs are read
//! ```

use crate::diag::{Diagnostic, Loc, Span};
use crate::platform::{Arch, DEFAULT_POLICY, Platform, Toolchain, arch_error, check_policy};
use crate::rules::label::{Label, Pattern};
use crate::rules::model::{Recipe, WithoutLocs};
use crate::rules::toml::{Node, Reader, Spanned, Value};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct StoreConfig {
    /// `~/…` or workspace-relative; `None` for the default location.
    pub path: Option<String>,
    /// `oci://host[:port]/prefix`
    pub remote: Option<String>,
    pub push: bool,
    /// Plain HTTP to the remote (loopback registries in tests).
    pub insecure: bool,
    /// Public keys (`NAME:BASE64`) whose signed results may be pulled.
    pub trusted_keys: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SandboxConfig {
    /// `podman --cpus`; not part of keys.
    pub cpus: Option<String>,
    /// `podman --memory`; not part of keys.
    pub memory: Option<String>,
    /// Seconds a build step may take; not part of keys.
    pub timeout: u64,
    /// Given to every build as SOURCE_DATE_EPOCH; part of every key.
    pub source_date_epoch: i64,
    /// Parallel builds by default.
    pub jobs: Option<usize>,
    /// At most this many processes per build step; not part of keys.
    pub pids_limit: u32,
    /// What one build may hand back (`max_output_size`, `max_output_files`,
    /// `max_compression_ratio`); not part of keys.
    pub output: crate::store::limits::OutputLimits,
    /// Bytes of the private scratch (`/tmp` and `/dev/shm`, memory-backed)
    /// of a build step (`scratch`); not part of keys.
    pub scratch: u64,
    /// Whether builds may make user namespaces of their own (`nested_userns`,
    /// per rule too); off by default. Not part of keys.
    pub nested_userns: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            cpus: None,
            memory: None,
            timeout: 2 * 3600,
            source_date_epoch: 1_700_000_000,
            jobs: None,
            pids_limit: 4096,
            output: Default::default(),
            scratch: 4 << 30,
            nested_userns: false,
        }
    }
}

/// Which `[defaults]` keys the file wrote (those the base may not fill).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Defaults {
    /// Keys written in the file, so the base fills only the others.
    pub written: Vec<String>,
    pub image: Option<Spanned<Label>>,
    pub runtime: Option<Spanned<Label>>,
    pub wheel_recipe: Option<Recipe>,
    pub repair_recipe: Option<Recipe>,
    /// What `refine test` runs in a clean container for a set.
    pub test_recipe: Option<Recipe>,
    pub build_requires: Vec<Spanned<Label>>,
    pub repair_tools: Vec<Spanned<Label>>,
    /// The frontend the wheel, repair and test recipes run (uv), one
    /// pinned wheel per architecture: a build gets the one for the machine
    /// whose programs run natively in its image.
    pub frontend: PerArch,
    /// Zig (its `ziglang` wheel), one per architecture: the C compiler and
    /// linker of builds whose floor ([platform] or a rule's `policy`) is
    /// older than their image's glibc. A build always runs the host's (one
    /// static program, native in any image).
    pub zig: PerArch,
    /// What `refine build` with no labels builds.
    pub targets: Vec<Spanned<String>>,
}

/// `[defaults] frontend` and `zig`: a wheel source per architecture, and
/// where the table is written (for the error when an architecture is
/// missing).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct PerArch {
    pub by_arch: BTreeMap<Arch, Spanned<Label>>,
    pub loc: Option<Loc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BaseMode {
    /// The built-in base stands behind the workspace's files (the default).
    #[default]
    Builtin,
    /// Only the workspace's own files.
    None,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    pub name: String,
    pub base: BaseMode,
    pub platform: Platform,
    pub store: StoreConfig,
    pub sandbox: SandboxConfig,
    pub defaults: Defaults,
    pub remote: RemoteConfig,
}

/// `[remote]`: where build steps run besides this machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct RemoteConfig {
    /// An REAPI server (`grpc://host:port[/instance]`, `grpcs://…`); not
    /// part of keys (where a step runs never changes what it makes).
    pub execution: Option<String>,
    /// Where running steps' logs are read from (a LogStream service;
    /// default: the execution server).
    pub log_stream: Option<String>,
}

pub const CONFIG_FILE: &str = "WORKSPACE.toml";

pub fn parse_config(text: &str) -> Result<Config, Vec<Diagnostic>> {
    parse_config_in(CONFIG_FILE, text)
}

/// `WORKSPACE.toml`'s text, reported as `file` (the base's is
/// `builtin:WORKSPACE.toml`).
pub fn parse_config_in(file: &str, text: &str) -> Result<Config, Vec<Diagnostic>> {
    let (node, mut diags) = crate::rules::toml::parse(file, text);
    let Some(Node {
        value: Value::Table(root),
        span,
    }) = node
    else {
        return Err(diags);
    };
    let mut top = Reader::new(file, &root, span, file, &mut diags);
    const TABLES: [&str; 6] = [
        "workspace",
        "platform",
        "store",
        "sandbox",
        "defaults",
        "remote",
    ];
    let tables: Vec<_> = TABLES.iter().map(|key| top.entry(key)).collect();
    top.finish(&TABLES);

    let empty = crate::rules::toml::Table::default();
    let table_of = |e, diags: &mut Vec<Diagnostic>| table_of(file, e, &empty, diags);

    // [workspace]
    let (t, s) = table_of(tables[0], &mut diags);
    let mut r = Reader::new(file, t, s, "[workspace]", &mut diags);
    let name = r
        .str("name")
        .map_or_else(|| "refine".to_string(), |s| s.value);
    let base = match r.str("base") {
        None => BaseMode::Builtin,
        Some(b) if b.value == "builtin" => BaseMode::Builtin,
        Some(b) if b.value == "none" => BaseMode::None,
        Some(b) => {
            r.diags.push(
                Diagnostic::error(format!("unknown base `{}`", b.value))
                    .at(b.loc)
                    .hint(
                        "base is \"builtin\" (refine's rule set behind this workspace) or \"none\"",
                    ),
            );
            BaseMode::Builtin
        }
    };
    r.finish(&["name", "base"]);

    // [platform]
    let (t, s) = table_of(tables[1], &mut diags);
    let mut r = Reader::new(file, t, s, "[platform]", &mut diags);
    let arch = match r.str("arch") {
        None => Arch::host(),
        Some(a) => match Arch::parse(&a.value) {
            Some(arch) => arch,
            None => {
                r.diags.push(arch_error(&a.value).at(a.loc));
                Arch::host()
            }
        },
    };
    let python = r
        .str("python")
        .map_or_else(|| "3.11".to_string(), |s| s.value);
    let policy = match r.str("policy") {
        None => DEFAULT_POLICY.to_string(),
        Some(p) => {
            if let Err(d) = check_policy(&p.value) {
                r.diags.push(d.at(p.loc));
            }
            p.value
        }
    };
    let toolchain = match r.str("toolchain") {
        None => Toolchain::default(),
        Some(t) => Toolchain::parse(&t.value).unwrap_or_else(|| {
            r.diags.push(
                Diagnostic::error(format!("unknown toolchain `{}`", t.value))
                    .at(t.loc)
                    .hint("toolchain is \"cross\" (the host's compilers for the target, the default) or \"emulated\""),
            );
            Toolchain::default()
        }),
    };
    let frontend_python = r.str("frontend_python").and_then(|s| {
        let v = crate::platform::FrontendPython::parse(&s.value);
        if v.is_none() {
            r.diags.push(
                Diagnostic::error(format!("unknown frontend_python `{}`", s.value))
                    .at(s.loc)
                    .hint(crate::platform::FrontendPython::HINT),
            );
        }
        v
    });
    r.finish(&["arch", "python", "policy", "toolchain", "frontend_python"]);
    if !python
        .split('.')
        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        || python.split('.').count() != 2
    {
        diags.push(
            Diagnostic::error(format!("`{python}` is not a Python version like \"3.11\""))
                .at(Loc::new(file, s))
                .hint("give major.minor: `python = \"3.11\"`"),
        );
    }

    // [store]
    let (t, s) = table_of(tables[2], &mut diags);
    let mut r = Reader::new(file, t, s, "[store]", &mut diags);
    let path = r.str("path").map(|s| s.value);
    let remote = r.str("remote");
    let push = r.bool("push").unwrap_or(false);
    let insecure = r.bool("insecure").unwrap_or(false);
    let trusted = r.str_list("trusted_keys").unwrap_or_default();
    for k in &trusted {
        if let Err(e) = crate::key::sign::PublicKey::parse(&k.value) {
            r.diags.push(
                Diagnostic::error(e)
                    .at(k.loc.clone())
                    .hint("list public keys as `refine key generate` prints them: \"NAME:BASE64\""),
            );
        }
    }
    r.finish(&["path", "remote", "push", "insecure", "trusted_keys"]);
    if let Some(p) = &path
        && p.starts_with('/')
    {
        diags.push(
            Diagnostic::error(format!("store path `{p}` is an absolute host path"))
                .at(Loc::new(file, s))
                .hint("use `~/…` or a workspace-relative path here, or pass --store / REFINE_STORE for a machine-specific location"),
        );
    }
    if let Some(rem) = &remote
        && !rem.value.starts_with("oci://")
    {
        diags.push(
            Diagnostic::error(format!(
                "`{}` is not an oci:// URL",
                crate::remote::oci::redact_url(&rem.value)
            ))
            .at(rem.loc.clone())
            .hint("write `remote = \"oci://host[:port]/prefix\"`"),
        );
    }

    // [sandbox]
    let (t, s) = table_of(tables[3], &mut diags);
    let mut r = Reader::new(file, t, s, "[sandbox]", &mut diags);
    let mut sandbox = SandboxConfig::default();
    if let Some(e) = r.entry("cpus") {
        match &e.value.value {
            Value::Int(n) if *n > 0 => sandbox.cpus = Some(n.to_string()),
            Value::Float(f) => sandbox.cpus = Some(f.clone()),
            Value::Str(s) => sandbox.cpus = Some(s.clone()),
            _ => r.error_at(e.value.span, "`cpus` must be a positive number", None),
        }
    }
    sandbox.memory = r.str("memory").map(|s| s.value);
    if let Some(t) = r.str("timeout") {
        match crate::rules::units::parse_duration(&t.value) {
            Ok(d) => sandbox.timeout = d,
            Err(e) => r.diags.push(
                Diagnostic::error(format!("invalid duration: {e}"))
                    .at(t.loc)
                    .hint("write durations like \"90s\", \"30m\" or \"2h\", at most a year"),
            ),
        }
    }
    if let Some(n) = r.int("source_date_epoch") {
        sandbox.source_date_epoch = n.value;
    }
    if let Some(n) = r.int("jobs") {
        sandbox.jobs = Some(n.value.max(1) as usize);
    }
    if let Some(n) = r.int("pids_limit") {
        match u32::try_from(n.value) {
            Ok(p) if p >= 16 => sandbox.pids_limit = p,
            _ => r.diags.push(
                Diagnostic::error(format!("`pids_limit = {}` is out of range", n.value))
                    .at(n.loc)
                    .hint("a build needs a few processes: give a number from 16 up (default 4096)"),
            ),
        }
    }
    fn size(r: &mut Reader<'_, '_>, key: &str, what: &str) -> Option<u64> {
        let s = r.str(key)?;
        match crate::rules::units::parse_size(&s.value) {
            Ok(n) if n > 0 => Some(n),
            Ok(_) => {
                r.diags.push(
                    Diagnostic::error(format!("`{key}` must be more than nothing"))
                        .at(s.loc)
                        .hint(format!("give {what} as a size, like \"4GiB\" or \"500M\"")),
                );
                None
            }
            Err(e) => {
                r.diags.push(
                    Diagnostic::error(format!("invalid size: {e}"))
                        .at(s.loc)
                        .hint(format!("give {what} as a size, like \"4GiB\" or \"500M\"")),
                );
                None
            }
        }
    }
    if let Some(n) = size(&mut r, "max_output_size", "the most one build may write") {
        sandbox.output.max_bytes = n;
    }
    if let Some(n) = size(&mut r, "scratch", "the size of a build's /tmp") {
        sandbox.scratch = n;
    }
    for (key, field, least) in [
        ("max_output_files", 0usize, 16i64),
        ("max_compression_ratio", 1, 2),
    ] {
        if let Some(n) = r.int(key) {
            if n.value < least {
                r.diags.push(
                    Diagnostic::error(format!("`{key} = {}` is out of range", n.value))
                        .at(n.loc)
                        .hint(format!("give a number from {least} up")),
                );
            } else if field == 0 {
                sandbox.output.max_files = n.value as u64;
            } else {
                sandbox.output.max_ratio = n.value as u64;
            }
        }
    }
    if let Some(b) = r.bool("nested_userns") {
        sandbox.nested_userns = b;
    }
    r.finish(&[
        "cpus",
        "memory",
        "timeout",
        "source_date_epoch",
        "jobs",
        "pids_limit",
        "max_output_size",
        "max_output_files",
        "max_compression_ratio",
        "scratch",
        "nested_userns",
    ]);

    // [defaults]
    let (t, s) = table_of(tables[4], &mut diags);
    let mut r = Reader::new(file, t, s, "[defaults]", &mut diags);
    let written: Vec<String> = t.entries.iter().map(|e| e.key.clone()).collect();
    let mut defaults = Defaults {
        written,
        image: r.label("image"),
        runtime: r.label("runtime"),
        build_requires: r.labels("build_requires").unwrap_or_default(),
        repair_tools: r.labels("repair_tools").unwrap_or_default(),
        targets: r.str_list("targets").unwrap_or_default(),
        ..Defaults::default()
    };
    defaults.frontend = read_per_arch(&mut r, "frontend", "uv");
    defaults.zig = read_per_arch(&mut r, "zig", "ziglang");
    let recipe_includes = r.str_list("recipe_includes").unwrap_or_default();
    defaults.wheel_recipe = r.str("wheel_recipe").map(|s| Recipe {
        script: s,
        includes: recipe_includes.clone(),
    });
    defaults.repair_recipe = r.str("repair_recipe").map(|s| Recipe {
        script: s,
        includes: recipe_includes.clone(),
    });
    defaults.test_recipe = r.str("test_recipe").map(|s| Recipe {
        script: s,
        includes: recipe_includes.clone(),
    });
    for t in &defaults.targets {
        if let Err(e) = t.value.parse::<Pattern>() {
            r.diags.push(
                Diagnostic::error(e.to_string())
                    .at(t.loc.clone())
                    .hint(e.hint()),
            );
        }
    }
    r.finish(&[
        "image",
        "runtime",
        "wheel_recipe",
        "repair_recipe",
        "test_recipe",
        "recipe_includes",
        "build_requires",
        "repair_tools",
        "frontend",
        "zig",
        "targets",
    ]);

    // [remote]
    let (t, s) = table_of(tables[5], &mut diags);
    let mut r = Reader::new(file, t, s, "[remote]", &mut diags);
    // Server addresses, checked where they are written.
    let mut url = |key: &str, hint: &str| {
        let v = r.str(key);
        if let Some(e) = &v
            && let Err(m) = crate::reapi::ServerUrl::parse(&e.value)
        {
            r.diags.push(
                Diagnostic::error(m)
                    .at(e.loc.clone())
                    .hint(hint.to_string()),
            );
        }
        v
    };
    let execution = url(
        "execution",
        "write `execution = \"grpc://host:port\"` (an REAPI server: BuildGrid, Buildbarn, BuildBuddy…)",
    );
    let log_stream = url(
        "log_stream",
        "write `log_stream = \"grpc://host:port\"` (a `refine logstream` service)",
    );
    let remote_cfg = RemoteConfig {
        execution: execution.map(|e| e.value),
        log_stream: log_stream.map(|e| e.value),
    };
    r.finish(&["execution", "log_stream"]);

    if diags.iter().any(|d| d.is_error()) {
        return Err(diags);
    }
    Ok(Config {
        remote: remote_cfg,
        name,
        base,
        platform: Platform {
            arch,
            python,
            policy,
            toolchain,
            frontend_python,
        },
        store: StoreConfig {
            path,
            remote: remote.map(|r| r.value),
            push,
            insecure,
            trusted_keys: trusted.into_iter().map(|k| k.value).collect(),
        },
        sandbox,
        defaults,
    })
}

impl WithoutLocs for Config {
    fn without_locs(&self) -> Self {
        let d = &self.defaults;
        let mut c = self.clone();
        c.defaults = Defaults {
            written: d.written.clone(),
            image: d.image.without_locs(),
            runtime: d.runtime.without_locs(),
            wheel_recipe: d.wheel_recipe.without_locs(),
            repair_recipe: d.repair_recipe.without_locs(),
            test_recipe: d.test_recipe.without_locs(),
            build_requires: d.build_requires.without_locs(),
            repair_tools: d.repair_tools.without_locs(),
            frontend: d.frontend.without_locs(),
            zig: d.zig.without_locs(),
            targets: d.targets.without_locs(),
        };
        c
    }
}

impl WithoutLocs for PerArch {
    fn without_locs(&self) -> Self {
        PerArch {
            by_arch: self
                .by_arch
                .iter()
                .map(|(a, l)| (*a, l.without_locs()))
                .collect(),
            loc: None,
        }
    }
}

/// `frontend = { x86_64 = "//sources:uv-x86_64", s390x = … }` (or `zig`):
/// each key an architecture, each value a label; `stem` names the sources
/// in the hint.
fn read_per_arch(r: &mut Reader<'_, '_>, key: &str, stem: &str) -> PerArch {
    let mut f = PerArch {
        loc: r.key_loc(key),
        ..PerArch::default()
    };
    let Some(e) = r.entry(key) else {
        return f;
    };
    let Value::Table(t) = &e.value.value else {
        let msg = format!(
            "`{key}` in [defaults] must be a table of architectures to labels, found {}",
            e.value.value.type_name()
        );
        r.error_at(
            e.value.span,
            msg,
            Some(format!(
                "write `{key} = {{ x86_64 = \"//sources:{stem}-x86_64\", s390x = \"//sources:{stem}-s390x\" }}`"
            )),
        );
        return f;
    };
    for item in &t.entries {
        let Some(arch) = Arch::parse(&item.key).filter(|_| item.key != "host") else {
            r.diags
                .push(arch_error(&item.key).at(Loc::new(r.file, item.key_span)));
            continue;
        };
        let Value::Str(s) = &item.value.value else {
            let msg = format!(
                "`{key}.{}` in [defaults] must be a label, found {}",
                item.key,
                item.value.value.type_name()
            );
            r.error_at(item.value.span, msg, None);
            continue;
        };
        let spanned = Spanned {
            value: s.clone(),
            loc: Loc::new(r.file, item.value.span),
        };
        if let Some(l) = r.parse_label(spanned) {
            f.by_arch.insert(arch, l);
        }
    }
    f
}

fn table_of<'t>(
    file: &str,
    e: Option<&'t crate::rules::toml::Entry>,
    empty: &'t crate::rules::toml::Table,
    diags: &mut Vec<Diagnostic>,
) -> (&'t crate::rules::toml::Table, Span) {
    match e {
        None => (empty, Span::default()),
        Some(e) => match &e.value.value {
            Value::Table(t) => (t, e.key_span),
            other => {
                diags.push(
                    Diagnostic::error(format!(
                        "`[{}]` must be a table, found {}",
                        e.key,
                        other.type_name()
                    ))
                    .at(Loc::new(file, e.value.span)),
                );
                (empty, e.key_span)
            }
        },
    }
}

impl Config {
    /// Fill the `[defaults]` this file did not write from the base's (its
    /// image, runtime, recipes, build requirements, repair tools, frontend
    /// and zig; never its default targets).
    pub fn with_base_defaults(mut self, base: &Config) -> Config {
        let d = &mut self.defaults;
        let b = &base.defaults;
        let missing = |k: &str| !d.written.iter().any(|w| w == k);
        if missing("image") {
            d.image = b.image.clone();
        }
        if missing("runtime") {
            d.runtime = b.runtime.clone();
        }
        let recipes = missing("recipe_includes");
        if missing("wheel_recipe") && recipes {
            d.wheel_recipe = b.wheel_recipe.clone();
        }
        if missing("repair_recipe") && recipes {
            d.repair_recipe = b.repair_recipe.clone();
        }
        if missing("test_recipe") && recipes {
            d.test_recipe = b.test_recipe.clone();
        }
        if missing("build_requires") {
            d.build_requires = b.build_requires.clone();
        }
        if missing("repair_tools") {
            d.repair_tools = b.repair_tools.clone();
        }
        if missing("frontend") {
            d.frontend = b.frontend.clone();
        }
        if missing("zig") {
            d.zig = b.zig.clone();
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_that_names_no_policy_builds_to_the_default_floor() {
        assert_eq!(parse_config("").unwrap().platform.policy, DEFAULT_POLICY);
    }

    #[test]
    fn the_remote_table_names_an_executor_and_a_log_stream_each_checked() {
        let c = parse_config(
            "[remote]\nexecution = \"grpc://127.0.0.1:50051\"\nlog_stream = \"grpc://127.0.0.1:50052\"\n",
        )
        .unwrap();
        assert_eq!(
            c.remote.execution.as_deref(),
            Some("grpc://127.0.0.1:50051")
        );
        assert_eq!(
            c.remote.log_stream.as_deref(),
            Some("grpc://127.0.0.1:50052")
        );
        let text = "[remote]\nlog_stream = \"http://x\"\n";
        let e = parse_config(text).unwrap_err();
        let at = e[0]
            .loc
            .as_ref()
            .map(|l| crate::diag::line_col(text, l.span.start));
        assert_eq!(at.map(|(line, _)| line), Some(2), "{e:?}");
        assert!(
            e[0].hint
                .as_deref()
                .unwrap_or_default()
                .contains("log_stream"),
            "{e:?}"
        );
    }

    #[test]
    fn defaults_apply() {
        let c = parse_config("").unwrap();
        assert_eq!(c.platform.arch, Arch::host());
        assert_eq!(c.platform.python_tag(), "cp311");
        assert_eq!(c.sandbox.timeout, 7200);
    }

    /// The hybrid image's hook runs the host's programs through this
    /// loader: it is this machine's, where this machine's programs look.
    #[test]
    fn host_loader_is_the_one_host_programs_use() {
        let loader = Arch::host().loader();
        assert!(
            std::path::Path::new(loader).exists(),
            "{loader} is not on this {} machine",
            Arch::host()
        );
        let sh = std::fs::read("/bin/sh").unwrap();
        let needle = loader.as_bytes();
        assert!(
            sh.windows(needle.len()).any(|w| w == needle),
            "/bin/sh does not name {loader} as its interpreter"
        );
    }

    #[test]
    fn reads_the_frontend_per_architecture() {
        let c = parse_config(
            "[defaults]\nfrontend = { x86_64 = \"//sources:uv-x86_64\", s390x = \"//sources:uv-s390x\" }\n",
        )
        .unwrap();
        let f = &c.defaults.frontend;
        assert_eq!(
            f.by_arch[&Arch::S390x].value.to_string(),
            "//sources:uv-s390x"
        );
        assert_eq!(f.by_arch.len(), 2);
        let loc = f.loc.as_ref().unwrap();
        assert_eq!(&*loc.file, CONFIG_FILE);
        // Written nowhere: the base's stands behind it.
        let mine = parse_config("[defaults]\nimage = \"//images:x\"\n").unwrap();
        assert!(mine.defaults.frontend.by_arch.is_empty());
        let merged = mine.with_base_defaults(&c);
        assert_eq!(merged.defaults.frontend.by_arch.len(), 2);
    }

    #[test]
    fn frontend_errors_name_their_place() {
        let text =
            "[defaults]\nfrontend = { sparc = \"//sources:uv\", s390x = 3, x86_64 = \"uv\" }\n";
        let errs = parse_config(text).unwrap_err();
        let msgs: Vec<String> = errs
            .iter()
            .map(|d| {
                let l = d.loc.as_ref().unwrap();
                format!("{}:{}", &text[l.span.start..l.span.end], d.message)
            })
            .collect();
        assert_eq!(errs.len(), 3, "{msgs:?}");
        assert!(
            msgs[0].starts_with("sparc:unknown architecture `sparc`"),
            "{msgs:?}"
        );
        assert!(
            msgs[1].starts_with("3:`frontend.s390x` in [defaults] must be a label"),
            "{msgs:?}"
        );
        assert!(msgs[2].starts_with("\"uv\":"), "{msgs:?}");
        let errs = parse_config("[defaults]\nfrontend = \"//sources:uv\"\n").unwrap_err();
        assert!(errs[0].message.contains("must be a table of architectures"));
        assert!(errs[0].hint.as_deref().unwrap().contains("x86_64 ="));
    }

    #[test]
    fn reads_platform_and_reports_all_errors() {
        let c = parse_config("[platform]\narch = \"s390x\"\n").unwrap();
        assert_eq!(c.platform.platform_tag(), "manylinux2014_s390x");
        let errs =
            parse_config("[platform]\narch = \"sparc\"\n[sandbox]\ntimeout = \"soon\"\n[stor]\n")
                .unwrap_err();
        let msgs: Vec<&str> = errs.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert!(msgs.iter().any(|m| m.contains("unknown key `stor`")));
        assert!(msgs.iter().any(|m| m.contains("unknown architecture")));
        assert!(msgs.iter().any(|m| m.contains("invalid duration")));
    }
}
