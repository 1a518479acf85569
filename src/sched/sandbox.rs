//! The recipe contract: what a build step sees inside its container.
//!
//! ```text
//! /refine/ws/…        the recipe script and its includes (read-only)
//! /refine/src/<file>  the sources (read-only)
//! /refine/wheels/…    build-requirement wheels (read-only); those the rule
//!                     names are also listed by project name in
//!                     `REFINE_BUILD_REQUIRES` (one a line): installed
//! /refine/tools/…     repair tools, as wheels (read-only)
//! /refine/input/…     the wheel being repaired (read-only)
//! /refine/frontend    the frontend's wheel (uv), unpacked (read-only)
//! /refine/zig         the host's Zig wheel, unpacked, for builds below
//!                     their image's glibc (read-only)
//! /opt/packs/<name>   every pack of the closure (read-only)
//! /opt/runtime        a built CPython runtime (read-only)
//! /build              scratch, empty at start (writable)
//! /out                REFINE_OUT, the only output (writable)
//! ```
//!
//! The environment is exactly [`contract_env`] plus the rule's `env`;
//! nothing comes from the host.

use super::config::RunConfig;
use super::result::NodeResult;
use crate::error::{Error, ErrorClass};
use crate::eval::{Action, Derivation, Graph};
use crate::exec::{Limits, Mount, SandboxSpec};
use crate::key::Digest;
use crate::rules::{Kind, Label};
use crate::store::Tree;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Where the frontend's wheel is mounted, unpacked (`REFINE_FRONTEND`).
pub const FRONTEND: &str = "/refine/frontend";
/// Where the Zig wheel is mounted, unpacked; `REFINE_ZIG` is its program.
pub const ZIG: &str = "/refine/zig";
/// The compiler flags every build starts from. Optimized as Debian builds
/// (`-O2`): a configure script that is given CFLAGS adds no `-O` of its
/// own, and without one GCC compiles unoptimized and Zig's clang (the
/// compiler at a floor) in its debug mode, with the undefined-behaviour
/// sanitizer and its runtime linked in (which is what libpq's "calls
/// exit" check found). Compilers map the scratch directory away so it
/// never appears in outputs, and write no `.comment` of their own version:
/// the host's cross compiler and the target's own are the same GCC in
/// different Debian revisions, and with this their outputs are the same
/// bytes. A recipe's or rule's own `-O` comes after and wins.
pub const PREFIX_MAP: &str = "-O2 -ffile-prefix-map=/build=. -fno-ident";

/// How the build finds its Python.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeInfo {
    pub prefix: String,
    pub python: String,
}

/// The environment every recipe gets, before the rule's own `env`.
pub fn contract_env(
    d: &Derivation,
    packs: &[String],
    runtime: Option<&RuntimeInfo>,
    jobs: usize,
) -> BTreeMap<String, String> {
    let mut e = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        e.insert(k.to_string(), v);
    };
    let prefixes: Vec<String> = packs.iter().map(|p| format!("/opt/packs/{p}")).collect();
    let mut path = String::from(PATH);
    if let Some(rt) = runtime {
        set("RUNTIME_PREFIX", rt.prefix.clone());
        set("PYTHON", rt.python.clone());
        if rt.prefix != "/usr" {
            path = format!("{}/bin:{PATH}", rt.prefix);
        }
    }
    set("PATH", path);
    set("HOME", "/build/home".into());
    set("TMPDIR", "/tmp".into());
    set("REFINE_OUT", "/out".into());
    set("REFINE_SRC", "/refine/src".into());
    set("REFINE_WS", "/refine/ws".into());
    set("REFINE_WHEELS", "/refine/wheels".into());
    set("REFINE_TOOLS", "/refine/tools".into());
    set("REFINE_INPUT", "/refine/input".into());
    if d.inputs.frontend.is_some() {
        set("REFINE_FRONTEND", FRONTEND.into());
    }
    if let (Some(_), Some(target)) = (&d.inputs.zig, &d.cc_target) {
        set("REFINE_ZIG", format!("{ZIG}/ziglang/zig"));
        set("REFINE_CC_TARGET", target.clone());
    }
    set("REFINE_ARCH", d.platform.arch.as_str().into());
    set("REFINE_JOBS", jobs.to_string());
    set("REFINE_LABEL", d.label.to_string());
    set("REFINE_KIND", d.label.kind.singular().into());
    set("REFINE_NAME", d.label.name.to_string());
    set("REFINE_VERSION", d.version.clone().unwrap_or_default());
    set("REFINE_PYTHON_VERSION", d.platform.python.clone());
    set("REFINE_PYTHON_TAG", d.platform.python_tag());
    set("REFINE_PLATFORM_TAG", d.platform.platform_tag());
    if let Action::Recipe {
        config_settings,
        policy,
        ..
    } = &d.action
    {
        if !config_settings.is_empty() {
            let lines: Vec<String> = config_settings
                .iter()
                .flat_map(|(k, vs)| vs.iter().map(move |v| format!("{k}={v}")))
                .collect();
            set("REFINE_CONFIG_SETTINGS", lines.join("\n"));
        }
        if let Some(p) = policy {
            set("REFINE_POLICY", p.clone());
        }
    }
    set("DEPS_PREFIXES", prefixes.join(":"));
    let join = |f: &dyn Fn(&String) -> String, sep: &str| {
        prefixes.iter().map(f).collect::<Vec<_>>().join(sep)
    };
    set(
        "PKG_CONFIG_PATH",
        join(&|p| format!("{p}/lib/pkgconfig:{p}/share/pkgconfig"), ":"),
    );
    set("CPPFLAGS", join(&|p| format!("-I{p}/include"), " "));
    let ldflags = join(&|p| format!("-L{p}/lib"), " ");
    set("LDFLAGS", ldflags);
    set("LD_LIBRARY_PATH", join(&|p| format!("{p}/lib"), ":"));
    set("CFLAGS", PREFIX_MAP.into());
    set("CXXFLAGS", PREFIX_MAP.into());
    set("FFLAGS", PREFIX_MAP.into());
    set("FCFLAGS", PREFIX_MAP.into());
    set("REFINE_TOOLCHAIN", d.platform.toolchain_name().into());
    if let Some(py) = &d.host_python {
        // The host's Python runs the hooks with the target's sysconfig
        // (its EXT_SUFFIX, SOABI, compiler and flags) and platform.
        set("REFINE_HOST_PYTHON", py.clone());
        set(
            "REFINE_HOST_PYTHON_SYSCONFIG",
            format!("_sysconfigdata__linux_{}", d.platform.arch.triplet()),
        );
        set(
            "REFINE_HOST_PYTHON_PLATFORM",
            format!("linux-{}", d.platform.arch.as_str()),
        );
    }
    set("SOURCE_DATE_EPOCH", d.source_date_epoch.to_string());
    set("LC_ALL", "C".into());
    set("LANG", "C".into());
    set("TZ", "UTC".into());
    set("PYTHONHASHSEED", "0".into());
    set("PYTHONDONTWRITEBYTECODE", "1".into());
    set("PIP_NO_INDEX", "1".into());
    set("PIP_NO_CACHE_DIR", "1".into());
    set("PIP_DISABLE_PIP_VERSION_CHECK", "1".into());
    set("PIP_ROOT_USER_ACTION", "ignore".into());
    // The rule's variables last; compiler and linker flags are appended to
    // the contract's rather than replacing them.
    for (k, v) in &d.env {
        match k.as_str() {
            "CFLAGS" | "CXXFLAGS" | "FFLAGS" | "FCFLAGS" | "CPPFLAGS" | "LDFLAGS" => {
                let cur = e.get(k).cloned().unwrap_or_default();
                e.insert(k.clone(), format!("{cur} {v}").trim().to_string());
            }
            _ => {
                e.insert(k.clone(), v.clone());
            }
        }
    }
    e
}

/// A podman image name that carries the image's output digest.
pub fn image_tag(label: &Label, digest: &Digest) -> String {
    let name: String = label
        .name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("localhost/refine-image/{name}:{}", &digest.hex()[..32])
}

fn fail(class: ErrorClass, message: impl Into<String>, hint: impl Into<String>) -> Error {
    Error::new(class, message).hint(hint)
}

/// What a finished dependency offers a build.
pub struct DepView<'a> {
    pub derivation: &'a Derivation,
    pub tree: &'a Tree,
}

/// Where a mount's host side comes from: decided by the plan, made real
/// by [`materialize`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MountSource {
    /// A blob of the store, as itself (checked against its digest first).
    Blob(Digest),
    /// A tree of the store laid out as a directory (packs, runtimes).
    Tree(Digest),
    /// A wheel's files laid out once in the store (the frontend, Zig).
    UnpackedWheel(Digest),
    /// The recipe and its includes, copied into the scratch directory.
    Recipes,
    /// `/build`, the scratch, writable by the build's uid alone.
    Build,
    /// `/out`, the only output.
    Out,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedMount {
    pub source: MountSource,
    pub container: String,
    pub read_only: bool,
}

/// Which image the container runs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ImagePlan {
    /// Pulled by its digest-pinned reference.
    Oci { reference: String },
    /// The image's root filesystem tarball, loaded under a tag that
    /// carries its digest.
    Tarball {
        tag: String,
        rootfs: Digest,
        /// A hybrid image: it also holds programs of this architecture
        /// (the cross compilers of the machine that made it), so it runs
        /// only where they run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cross_host: Option<crate::platform::Arch>,
    },
}

/// Everything about a build's container that can be decided without
/// touching the host: a pure value of the derivation, its dependencies'
/// outputs and the run's settings (golden-tested in tests/golden.rs).
/// [`materialize`] then makes it real.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SandboxPlan {
    /// Container name (kind, name, key, refine's pid).
    pub name: String,
    pub label: String,
    pub image: ImagePlan,
    pub arch: crate::platform::Arch,
    pub foreign: bool,
    pub mounts: Vec<PlannedMount>,
    /// The workspace files copied to `/refine/ws`, with the digests the
    /// key was computed from (checked again when they are copied).
    pub recipe_files: Vec<(String, Digest)>,
    pub env: BTreeMap<String, String>,
    pub command: Vec<String>,
    pub limits: Limits,
    /// A seccomp profile refuses user namespaces of the build's own
    /// (unless its rule says `nested_userns`).
    pub refuse_nested_userns: bool,
    pub pids_limit: u32,
}

/// The run's settings a plan depends on, resolved by the caller (the
/// machine's defaults included), so that the plan stays a pure value.
#[derive(Clone, Debug)]
pub struct PlanSettings {
    pub cpus: Option<String>,
    pub memory: Option<String>,
    /// Bytes of the private `/tmp`.
    pub scratch: u64,
    pub pids_limit: u32,
    /// `REFINE_JOBS`.
    pub jobs: usize,
    /// The first characters of the node's key (in the container's name).
    pub key_short: String,
    /// refine's process id (in the container's name).
    pub pid: u32,
}

impl PlanSettings {
    /// The settings of this run, on this machine.
    pub fn of_run(cfg: &RunConfig<'_>, key_short: &str) -> PlanSettings {
        PlanSettings {
            cpus: cfg.sandbox.cpus.clone().or_else(default_cpus),
            memory: cfg
                .sandbox
                .memory
                .clone()
                .or_else(|| default_memory(cfg.jobs)),
            scratch: cfg.sandbox.scratch,
            pids_limit: cfg.sandbox.pids_limit,
            jobs: cfg
                .sandbox
                .cpus
                .as_ref()
                .and_then(|c| c.parse::<f64>().ok())
                .map(|c| c.ceil().max(1.0) as usize)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            key_short: key_short.to_string(),
            pid: std::process::id(),
        }
    }
}

/// Mounts for every file of `tree` ending in `.whl`, under `dir`.
fn wheel_mounts(tree: &Tree, dir: &str) -> Vec<PlannedMount> {
    tree.files()
        .filter_map(|(name, digest, _)| {
            let base = name.rsplit('/').next().unwrap_or(name);
            base.ends_with(".whl").then(|| PlannedMount {
                source: MountSource::Blob(digest.clone()),
                container: format!("{dir}/{base}"),
                read_only: true,
            })
        })
        .collect()
}

/// Plan the container for derivation `d`, whose dependencies' outputs
/// `deps` holds (by label). Touches nothing.
pub fn plan(
    d: &Derivation,
    deps: &HashMap<&Label, DepView<'_>>,
    settings: &PlanSettings,
) -> Result<SandboxPlan, Error> {
    let get = |l: &Label| {
        deps.get(l).ok_or_else(|| {
            fail(
                ErrorClass::Internal,
                format!("{l} has no output although {} needs it", d.label),
                "this is a bug in refine; please report it",
            )
        })
    };
    let mut mounts = Vec::new();

    // The image.
    let image_label = d.inputs.image.as_ref().ok_or_else(|| {
        fail(
            ErrorClass::Internal,
            format!("{} has no image", d.label),
            "report this bug",
        )
    })?;
    let image = get(image_label)?;
    let image_plan = match &image.derivation.action {
        Action::OciImage { reference, .. } => ImagePlan::Oci {
            reference: reference.clone(),
        },
        _ => {
            let (_, digest, _) = image
                .tree
                .files()
                .find(|(n, _, _)| *n == "rootfs.tar")
                .ok_or_else(|| {
                    fail(
                        ErrorClass::Environment,
                        format!("the output of {image_label} has no rootfs.tar"),
                        "run `refine store verify` (it drops damaged entries), then build again",
                    )
                })?;
            let cross_host = match &image.derivation.action {
                Action::Mmdebstrap { cross: Some(c), .. } => {
                    Some(crate::platform::Arch::parse(&c.host).ok_or_else(|| {
                        fail(
                            ErrorClass::Internal,
                            format!("{image_label}: unknown cross host `{}`", c.host),
                            "report this bug",
                        )
                    })?)
                }
                _ => None,
            };
            ImagePlan::Tarball {
                tag: image_tag(image_label, &image.tree.digest()),
                rootfs: digest.clone(),
                cross_host,
            }
        }
    };

    // The runtime.
    let runtime = match &d.inputs.runtime {
        None => None,
        Some(l) => {
            let rt = get(l)?;
            match &rt.derivation.action {
                Action::SystemRuntime { python } => {
                    let prefix = Path::new(python)
                        .parent()
                        .and_then(|p| p.parent())
                        .map_or_else(|| "/usr".to_string(), |p| p.display().to_string());
                    Some(RuntimeInfo {
                        prefix,
                        python: python.clone(),
                    })
                }
                _ => {
                    mounts.push(PlannedMount {
                        source: MountSource::Tree(rt.tree.digest()),
                        container: "/opt/runtime".into(),
                        read_only: true,
                    });
                    Some(RuntimeInfo {
                        prefix: "/opt/runtime".into(),
                        python: "/opt/runtime/bin/python3".into(),
                    })
                }
            }
        }
    };
    // A system runtime's own probe runs the interpreter it describes.
    let runtime = match (&d.action, runtime) {
        (Action::SystemRuntime { python }, _) => Some(RuntimeInfo {
            prefix: "/usr".into(),
            python: python.clone(),
        }),
        (_, r) => r,
    };

    // Sources.
    for l in &d.inputs.sources {
        let src = get(l)?;
        for (name, digest, _) in src.tree.files() {
            mounts.push(PlannedMount {
                source: MountSource::Blob(digest.clone()),
                container: format!("/refine/src/{name}"),
                read_only: true,
            });
        }
    }
    // Packs, in dependency order.
    let mut pack_names = Vec::new();
    for l in &d.inputs.packs {
        let p = get(l)?;
        mounts.push(PlannedMount {
            source: MountSource::Tree(p.tree.digest()),
            container: format!("/opt/packs/{}", l.name),
            read_only: true,
        });
        pack_names.push(l.name.to_string());
    }
    for l in &d.inputs.wheels {
        mounts.extend(wheel_mounts(get(l)?.tree, "/refine/wheels"));
    }
    for l in &d.inputs.tools {
        mounts.extend(wheel_mounts(get(l)?.tree, "/refine/tools"));
    }
    if let Some(l) = &d.inputs.wheel {
        mounts.extend(wheel_mounts(get(l)?.tree, "/refine/input"));
    }
    // The frontend and Zig: their wheel's files (the program among them),
    // laid out once in the store.
    for (l, container, what) in [
        (&d.inputs.frontend, FRONTEND, "frontend"),
        (&d.inputs.zig, ZIG, "zig"),
    ] {
        let Some(l) = l else { continue };
        let dep = get(l)?;
        let mut wheels = dep
            .tree
            .files()
            .filter(|(n, _, _)| n.ends_with(".whl"))
            .map(|(_, digest, _)| digest);
        let (Some(digest), None) = (wheels.next(), wheels.next()) else {
            return Err(fail(
                ErrorClass::User,
                format!("the {what} {l} of {} is not one wheel", d.label),
                format!(
                    "point [defaults] {what} at sources with `dist = \"wheel\"`, one per architecture"
                ),
            ));
        };
        mounts.push(PlannedMount {
            source: MountSource::UnpackedWheel(digest.clone()),
            container: container.into(),
            read_only: true,
        });
    }

    // The recipe, copied from the workspace when materialized.
    let (command, recipe_files) = match &d.action {
        Action::Recipe { recipe, .. } => {
            mounts.push(PlannedMount {
                source: MountSource::Recipes,
                container: "/refine/ws".into(),
                read_only: true,
            });
            (
                vec![
                    "/bin/sh".to_string(),
                    "-eu".into(),
                    format!("/refine/ws/{}", recipe.script),
                ],
                recipe.files.clone(),
            )
        }
        Action::SystemRuntime { python } => (
            vec![python.clone(), "-c".into(), SYSTEM_RUNTIME_PROBE.into()],
            Vec::new(),
        ),
        _ => {
            return Err(fail(
                ErrorClass::Internal,
                format!("{} is not a sandboxed step", d.label),
                "report this bug",
            ));
        }
    };
    mounts.push(PlannedMount {
        source: MountSource::Build,
        container: "/build".into(),
        read_only: false,
    });
    mounts.push(PlannedMount {
        source: MountSource::Out,
        container: "/out".into(),
        read_only: false,
    });

    let mut env = contract_env(d, &pack_names, runtime.as_ref(), settings.jobs);
    // The build requirements the rule names, by project name (from their
    // wheels' file names: a function of their outputs), sorted: the recipe
    // adds them to what the project declares.
    let mut install = Vec::new();
    for l in &d.inputs.install {
        for (n, _, _) in get(l)?.tree.files() {
            let base = n.rsplit('/').next().unwrap_or(n);
            if let Some((name, ..)) = crate::wheel::parse_filename(base) {
                // A name from a build's output is a claim: it goes into
                // the project's pyproject.toml only if it is one.
                let name = crate::rules::model::normalize_name(&name);
                let valid = !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !name.starts_with('-')
                    && !name.ends_with('-');
                if !valid {
                    return Err(fail(
                        ErrorClass::Build,
                        format!("{l} holds a wheel whose name is not a project name: {base:?}"),
                        format!(
                            "rebuild {l}, or leave it out of the build_requires of {}",
                            d.label
                        ),
                    ));
                }
                install.push(name);
            }
        }
    }
    install.sort();
    install.dedup();
    if !install.is_empty() {
        env.insert("REFINE_BUILD_REQUIRES".into(), install.join("\n"));
    }
    let name = format!(
        "refine-{}-{}-{}-{}",
        d.label.kind.singular(),
        d.label
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            })
            .collect::<String>(),
        settings.key_short,
        settings.pid
    );
    Ok(SandboxPlan {
        name,
        label: d.label.to_string(),
        image: image_plan,
        arch: d.platform.arch,
        foreign: d.platform.is_foreign(),
        mounts,
        recipe_files,
        env,
        command,
        limits: Limits {
            cpus: settings.cpus.clone(),
            memory: settings.memory.clone(),
            timeout: d.timeout,
            scratch: Some(settings.scratch),
        },
        refuse_nested_userns: !d.nested_userns,
        pids_limit: settings.pids_limit,
    })
}

/// Make a plan real on this host: the image loaded or pulled, every blob
/// checked against its digest, trees and wheels laid out in the store, the
/// recipe files copied (and checked against the key's digests), the
/// scratch and output directories made and given to the build's uid, the
/// seccomp profile written.
pub fn materialize(
    plan: SandboxPlan,
    cfg: &RunConfig<'_>,
    scratch: &Path,
) -> Result<SandboxSpec, Error> {
    // The workspace's file, or the built-in base's.
    materialize_with(
        plan,
        cfg.store,
        cfg.exec,
        &|rel, _| cfg.sources.read(rel).map(|c| c.into_owned()),
        scratch,
    )
}

/// [`materialize`] with the recipe files read by `recipe` (path, digest):
/// from the workspace for a local build, from the blobs of its input root
/// on a remote worker.
pub fn materialize_with(
    plan: SandboxPlan,
    store: &crate::store::LocalStore,
    exec: &dyn crate::exec::Executor,
    recipe: &dyn Fn(&str, &Digest) -> Option<Vec<u8>>,
    scratch: &Path,
) -> Result<SandboxSpec, Error> {
    let image = match &plan.image {
        ImagePlan::Oci { reference } => {
            exec.pull_image(reference, plan.arch)?;
            reference.clone()
        }
        ImagePlan::Tarball { tag, rootfs, .. } => {
            store.cas.verify_blob(rootfs)?;
            exec.load_image(tag, &store.cas.blob_path(rootfs), plan.arch)?;
            tag.clone()
        }
    };
    let ws_dir = scratch.join("ws");
    for (rel, digest) in &plan.recipe_files {
        let bytes = recipe(rel, digest).ok_or_else(|| {
            fail(
                ErrorClass::User,
                format!("cannot read recipe {rel}"),
                "restore the file",
            )
        })?;
        if &crate::key::sha256_bytes(&bytes) != digest {
            return Err(fail(
                ErrorClass::User,
                format!("recipe {rel} changed while refine was running"),
                "run the build again",
            ));
        }
        let dest = ws_dir.join(rel);
        if let Some(p) = dest.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::write(&dest, &bytes)?;
    }
    let build = scratch.join("build");
    let out = scratch.join("out");
    std::fs::create_dir_all(build.join("home"))?;
    std::fs::create_dir_all(&out)?;
    let seccomp = if plan.refuse_nested_userns {
        let dir = store.root().join("sandbox");
        Some(crate::exec::seccomp::profile_in(&dir).map_err(|e| {
            fail(
                ErrorClass::Environment,
                format!("{}: cannot refuse nested user namespaces: {e}", plan.label),
                crate::exec::seccomp::FIX,
            )
        })?)
    } else {
        None
    };
    let isolation = crate::exec::Isolation {
        userns: crate::exec::host::userns_available(),
        pids_limit: plan.pids_limit,
        seccomp,
    };
    // The scratch and output directories belong to the build's uid alone.
    for dir in [&build, &build.join("home"), &out] {
        give_to(dir, isolation.host_uid())?;
    }
    let mut mounts = Vec::with_capacity(plan.mounts.len());
    for m in &plan.mounts {
        let host = match &m.source {
            MountSource::Blob(d) => {
                store.cas.verify_blob(d)?;
                store.cas.blob_path(d)
            }
            MountSource::Tree(d) => store.checkouts.materialize(d)?,
            MountSource::UnpackedWheel(d) => store.checkouts.unpacked_wheel(d)?,
            MountSource::Recipes => ws_dir.clone(),
            MountSource::Build => build.clone(),
            MountSource::Out => out.clone(),
        };
        mounts.push(Mount {
            host,
            container: m.container.clone(),
            read_only: m.read_only,
        });
    }
    Ok(SandboxSpec {
        name: plan.name,
        owner: crate::runid::RunId::current().tag(),
        label: plan.label,
        image,
        arch: plan.arch,
        foreign: plan.foreign,
        mounts,
        env: plan.env,
        command: plan.command,
        workdir: "/build".into(),
        limits: plan.limits,
        isolation,
        out,
    })
}

/// Plan and materialize the container for node `i` of `graph`.
pub fn prepare(
    graph: &Graph,
    i: usize,
    deps: &[&NodeResult],
    cfg: &RunConfig<'_>,
    scratch: &Path,
    key_short: &str,
) -> Result<SandboxSpec, Error> {
    materialize(plan_node(graph, i, deps, cfg, key_short)?, cfg, scratch)
}

/// The plan of node `i`'s container (for a remote worker to materialize).
pub fn plan_node(
    graph: &Graph,
    i: usize,
    deps: &[&NodeResult],
    cfg: &RunConfig<'_>,
    key_short: &str,
) -> Result<SandboxPlan, Error> {
    let d = &graph.nodes[i].derivation();
    let mut view: HashMap<&Label, DepView<'_>> = HashMap::new();
    for r in deps {
        let (Some(node), Some(tree)) = (graph.get(&r.label), r.tree.as_ref()) else {
            continue;
        };
        view.insert(
            &r.label,
            DepView {
                derivation: node.derivation(),
                tree,
            },
        );
    }
    plan(d, &view, &PlanSettings::of_run(cfg, key_short))
}

/// A build's CPU limit when `[sandbox] cpus` says none: the machine's
/// cores (a limit the cgroup holds, not "unlimited").
fn default_cpus() -> Option<String> {
    std::thread::available_parallelism()
        .ok()
        .map(|n| n.get().to_string())
}

/// A build's memory limit when `[sandbox] memory` says none: three
/// quarters of the machine's memory shared by the builds that run at once,
/// but never under 2 GiB (numpy's build needs about that), nor over three
/// quarters of the machine.
fn default_memory(jobs: usize) -> Option<String> {
    let usable = crate::exec::host::meminfo("MemTotal")? / 4 * 3;
    let each = (usable / jobs.max(1) as u64).max(2 << 30).min(usable);
    Some(format!("{}m", each >> 20))
}

/// Make `dir` the build uid's own: owner `uid`, mode 0700.
fn give_to(dir: &Path, uid: u32) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let id = rustix::fs::Uid::from_raw(uid);
    let gid = rustix::fs::Gid::from_raw(uid);
    rustix::fs::chown(dir, Some(id), Some(gid)).map_err(|e| {
        fail(
            ErrorClass::Environment,
            format!(
                "cannot give {} to the build's uid {uid}: {e}",
                dir.display()
            ),
            "refine runs builds as an unprivileged uid and must own their scratch directories: run refine as root",
        )
    })?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// Describes the image's interpreter and checks its version.
pub const SYSTEM_RUNTIME_PROBE: &str = r#"
import json, os, sys, sysconfig
want = os.environ["REFINE_PYTHON_VERSION"]
have = "%d.%d" % sys.version_info[:2]
info = {"implementation": sys.implementation.name, "version": sys.version.split()[0],
        "soabi": sysconfig.get_config_var("SOABI"), "executable": sys.executable,
        "machine": os.uname().machine}
with open(os.path.join(os.environ["REFINE_OUT"], "runtime.json"), "w") as f:
    json.dump(info, f, indent=1, sort_keys=True)
    f.write("\n")
print(json.dumps(info, sort_keys=True))
if have != want:
    sys.exit("the image's python is %s but the platform asks for %s: set `python` in [platform] or use another image" % (have, want))
"#;

/// Kinds whose outputs are wheels.
pub fn makes_wheels(k: Kind) -> bool {
    matches!(k, Kind::Wheel | Kind::Repair)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Inputs;
    use crate::platform::{Arch, Platform};

    fn drv(env: &[(&str, &str)]) -> Derivation {
        Derivation {
            label: Label::new(Kind::Wheel, "markupsafe"),
            version: Some("2.1.5".into()),
            platform: Platform {
                arch: Arch::S390x,
                python: "3.11".into(),
                policy: "manylinux_2_36".into(),
                toolchain: Default::default(),
                frontend_python: None,
            },
            source_date_epoch: 1_700_000_000,
            action: Action::SystemRuntime {
                python: "/usr/bin/python3".into(),
            },
            inputs: Inputs::default(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            timeout: 60,
            nested_userns: false,
            is_wheel_source: false,
            cc_target: None,
            host_python: None,
        }
    }

    #[test]
    fn contract_env_derives_flags_from_packs() {
        let rt = RuntimeInfo {
            prefix: "/usr".into(),
            python: "/usr/bin/python3".into(),
        };
        let e = contract_env(
            &drv(&[("CFLAGS", "-O3"), ("FOO", "1")]),
            &["zlib".into(), "openssl".into()],
            Some(&rt),
            2,
        );
        assert_eq!(e["DEPS_PREFIXES"], "/opt/packs/zlib:/opt/packs/openssl");
        assert_eq!(
            e["CPPFLAGS"],
            "-I/opt/packs/zlib/include -I/opt/packs/openssl/include"
        );
        assert_eq!(
            e["LD_LIBRARY_PATH"],
            "/opt/packs/zlib/lib:/opt/packs/openssl/lib"
        );
        assert!(e["PKG_CONFIG_PATH"].starts_with("/opt/packs/zlib/lib/pkgconfig:"));
        assert_eq!(e["CFLAGS"], "-O2 -ffile-prefix-map=/build=. -fno-ident -O3");
        assert_eq!(e["FOO"], "1");
        assert_eq!(e["SOURCE_DATE_EPOCH"], "1700000000");
        assert_eq!(e["PYTHON"], "/usr/bin/python3");
        assert_eq!(e["REFINE_ARCH"], "s390x");
        assert_eq!(e["REFINE_PLATFORM_TAG"], "manylinux_2_36_s390x");
        assert_eq!(e["PATH"], PATH);
        // Nothing of the host's environment.
        assert!(!e.contains_key("USER"));
        // At the image's own glibc: no Zig.
        assert!(!e.contains_key("REFINE_ZIG") && !e.contains_key("REFINE_CC_TARGET"));
    }

    /// Below the image's glibc, the recipe gets Zig's program and target.
    #[test]
    fn a_floor_below_the_image_gives_zig_and_its_target() {
        let mut d = drv(&[]);
        d.inputs.zig = Some(Label::new(Kind::Source, "ziglang-x86_64"));
        d.cc_target = Some("s390x-linux-gnu.2.17".into());
        let e = contract_env(&d, &[], None, 2);
        assert_eq!(e["REFINE_ZIG"], "/refine/zig/ziglang/zig");
        assert_eq!(e["REFINE_CC_TARGET"], "s390x-linux-gnu.2.17");
    }

    #[test]
    fn image_tags_carry_the_digest() {
        let d = crate::key::sha256_bytes(b"x");
        let t = image_tag(&Label::new(Kind::Image, "Bookworm+dev"), &d);
        assert_eq!(
            t,
            format!("localhost/refine-image/bookworm-dev:{}", &d.hex()[..32])
        );
    }
}
