//! `refine init` (a workspace of one's own) and `refine base export` (the
//! built-in base written out, to vendor and edit).

use crate::error::{Error, Result};
use crate::platform::Arch;
use crate::workspace::base::Base;
use std::path::{Path, PathBuf};

pub struct InitArgs {
    pub dir: PathBuf,
    pub arch: Option<String>,
    pub python: Option<String>,
    pub policy: Option<String>,
}

/// What `refine init` wrote.
pub struct Initialized {
    pub root: PathBuf,
    pub wrote: Vec<PathBuf>,
}

pub fn init(args: &InitArgs) -> Result<Initialized> {
    let arch = match &args.arch {
        None => Arch::S390x,
        Some(a) => Arch::parse(a).ok_or_else(|| {
            let d = crate::platform::arch_error(a);
            Error::user(format!("--arch: {}", d.message)).hint(d.hint.unwrap_or_default())
        })?,
    };
    let python = args.python.clone().unwrap_or_else(|| "3.11".into());
    let ok = python.split('.').count() == 2
        && python
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if !ok {
        return Err(
            Error::user(format!("--python: `{python}` is not a version like 3.11"))
                .hint("give major.minor, e.g. --python 3.11"),
        );
    }
    let policy = args
        .policy
        .clone()
        .unwrap_or_else(|| crate::platform::DEFAULT_POLICY.into());
    if let Err(d) = crate::platform::check_policy(&policy) {
        return Err(
            Error::user(format!("--policy: {}", d.message)).hint(d.hint.unwrap_or_default())
        );
    }
    let root = std::path::absolute(&args.dir).unwrap_or_else(|_| args.dir.clone());
    let config = root.join(crate::rules::config::CONFIG_FILE);
    if config.exists() {
        return Err(Error::user(format!("{} exists already", config.display()))
            .hint("refine init never overwrites a workspace; edit it, or init another directory"));
    }
    let io = |p: &Path, e: std::io::Error| {
        Error::env(format!("cannot write {}: {e}", p.display()))
            .hint("check the directory's permissions")
    };
    std::fs::create_dir_all(root.join("rules")).map_err(|e| io(&root, e))?;
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "wheels".into());
    std::fs::write(&config, workspace_toml(&name, arch, &python, &policy))
        .map_err(|e| io(&config, e))?;
    let mut wrote = vec![config, root.join("rules")];
    let readme = root.join("README.md");
    if !readme.exists() {
        std::fs::write(&readme, README).map_err(|e| io(&readme, e))?;
        wrote.push(readme);
    }
    Ok(Initialized { root, wrote })
}

fn workspace_toml(name: &str, arch: Arch, python: &str, policy: &str) -> String {
    format!(
        r#"# A refine workspace: Python wheels for {arch}.
#
# refine's own rule set stands behind this workspace (the built-in base):
# builder images (//images:bookworm), Python runtimes (//runtimes:system,
# //runtimes:cpython-3.11), native library packs (//packs:openssl, zlib,
# libffi, libyaml, …), their recipes, the package → pack catalog and the
# pinned build tools. Declare a target under the same label in rules/ to
# replace one; `refine base export DIR` writes them all out to edit.

[workspace]
name = "{name}"
base = "builtin"             # or "none": only this workspace's own files

[platform]
arch = "{arch}"             # x86_64, aarch64, s390x, ppc64le, or "host"
python = "{python}"              # the Python of the builder image
policy = "{policy}"    # the floor: the oldest glibc the wheels install on
                             # (manylinux2014 = 2.17; manylinux_2_28 = RHEL 8)

[store]
# path = "~/.cache/refine"   # the default; --store and REFINE_STORE override it
# remote = "oci://registry.example:5000/refine"
# push = false
# trusted_keys = ["ci:BASE64…"]   # whose results pulled from the remote are used

[sandbox]
timeout = "3h"               # per build step; rules may set their own
# cpus = 2                   # default: the machine's cores
# memory = "8g"              # default: 3/4 of the memory, shared by the jobs, at least 2 GiB
# pids_limit = 4096
# scratch = "4GiB"           # the private /tmp of a build step
# max_output_size = "4GiB"   # what one build may hand back
# max_output_files = 200000
# max_compression_ratio = 100
# nested_userns = false      # builds may not make user namespaces (rules may say true)

[defaults]
# The builder image, runtime, recipes, build requirements and repair tools
# come from the built-in base unless set here.
targets = []                 # what `refine build` builds when no label is given
"#
    )
}

const README: &str = "# Wheels built with refine\n\nNext: `refine import requirements.txt` (or add `[wheels.NAME]` rules under\n`rules/`), then `refine build` (`refine doctor` checks the machine first).\n";

/// Write the built-in base's rule files and recipes under `dir`; refuses
/// (writing nothing) if any of them exists there already.
pub fn export_base(dir: &Path) -> Result<Vec<PathBuf>> {
    let files: Vec<(&str, &[u8])> = Base::get()
        .files()
        .filter(|(p, _)| *p != crate::rules::config::CONFIG_FILE)
        .collect();
    let clashes: Vec<String> = files
        .iter()
        .filter(|(p, _)| dir.join(p).exists())
        .map(|(p, _)| p.to_string())
        .collect();
    if !clashes.is_empty() {
        return Err(Error::user(format!(
            "{} of the base's files exist in {} already: {}",
            clashes.len(),
            dir.display(),
            clashes.join(", ")
        ))
        .hint(
            "export into another directory, or move those files away first; nothing was written",
        ));
    }
    let mut out = Vec::new();
    for (p, bytes) in files {
        let dest = dir.join(p);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::env(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&dest, bytes)
            .map_err(|e| Error::env(format!("cannot write {}: {e}", dest.display())))?;
        out.push(dest);
    }
    Ok(out)
}
