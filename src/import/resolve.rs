//! Resolution for the target, not the host.
//!
//! uv resolves universally (for every platform at once: it has no s390x
//! value for `--python-platform`), writing each pin with the markers under
//! which it applies; refine then evaluates those markers itself for the
//! workspace's platform (s390x, Linux, CPython 3.11) and keeps what
//! applies. Requirements whose own markers exclude the target are left out
//! before resolving, and said.

use super::reqfile::Entry;
use crate::error::{Error, Result};
use crate::platform::Platform;
use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder, Requirement};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

/// How pins in the input are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Pins are kept; only what is unpinned is chosen (newest that fits).
    #[default]
    Pinned,
    /// Pins are minimums: everything is the newest that fits.
    Eager,
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    pub strategy: Strategy,
    /// A pin that does not exist becomes the newest version that does.
    pub fallback_latest: bool,
    /// At most this many runtime dependencies beyond the named packages.
    pub max_deps: Option<usize>,
    /// Only the named packages.
    pub no_deps: bool,
    /// Directories of wheels to resolve from too (`--wheels DIR`).
    pub find_links: Vec<std::path::PathBuf>,
}

/// One resolved package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    /// Normalized (PEP 503) name.
    pub name: String,
    pub version: String,
    /// Named in the input (not only needed by something).
    pub root: bool,
    /// The input's `--hash` values for this exact version.
    pub hashes: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Resolved {
    pub pins: Vec<Pin>,
    /// What is worth saying: fallbacks, exclusions by markers, omissions.
    pub notes: Vec<String>,
}

/// The marker environment of the target platform.
pub fn target_env(platform: &Platform) -> MarkerEnvironment {
    let full = format!("{}.0", platform.python);
    MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
        implementation_name: "cpython",
        implementation_version: &full,
        os_name: "posix",
        platform_machine: platform.arch.as_str(),
        platform_python_implementation: "CPython",
        platform_release: "",
        platform_system: "Linux",
        platform_version: "",
        python_full_version: &full,
        python_version: &platform.python,
        sys_platform: "linux",
    })
    .unwrap_or_else(|_| {
        MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: "3.11.0",
            os_name: "posix",
            platform_machine: platform.arch.as_str(),
            platform_python_implementation: "CPython",
            platform_release: "",
            platform_system: "Linux",
            platform_version: "",
            python_full_version: "3.11.0",
            python_version: "3.11",
            sys_platform: "linux",
        })
        .expect("a valid fixed marker environment")
    })
}

/// The version of a sdist or wheel file name.
pub fn file_version(filename: &str) -> Option<String> {
    if let Some(stem) = filename.strip_suffix(".whl") {
        return stem.split('-').nth(1).map(str::to_string);
    }
    let stem = [".tar.gz", ".zip", ".tar.bz2", ".tar.xz"]
        .iter()
        .find_map(|e| filename.strip_suffix(e))?;
    stem.rsplit_once('-').map(|(_, v)| v.to_string())
}

/// The versions the index has of a project (not yanked).
fn index_versions(name: &str) -> Result<BTreeSet<String>> {
    let files = crate::fetch::list_project(name)
        .map_err(|e| Error::env(format!("the index: {e}")).hint(e.hint()))?;
    Ok(files
        .iter()
        .filter(|f| !f.yanked)
        .filter_map(|f| file_version(&f.filename))
        .collect())
}

/// Resolve `entries` for `platform` with uv.
pub fn resolve(
    uv: &Path,
    entries: &[Entry],
    platform: &Platform,
    opts: &Options,
    scratch: &Path,
) -> Result<Resolved> {
    let env = target_env(platform);
    let mut notes = Vec::new();
    let mut reqs: Vec<Requirement> = Vec::new();
    let mut constraints: Vec<Requirement> = Vec::new();
    let mut hashes: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut roots: BTreeSet<String> = BTreeSet::new();
    for e in entries {
        if !e.requirement.marker.evaluate(&env, &[]) {
            notes.push(format!(
                "{}: {} is not for {} (its markers exclude it)",
                e.at(),
                e.requirement,
                platform.arch
            ));
            continue;
        }
        let mut r = e.requirement.clone();
        let name = r.name.to_string();
        if let Some(v) = e.pinned() {
            hashes.insert((name.clone(), v.clone()), e.hashes.clone());
            if opts.fallback_latest && !e.constraint && !index_versions(&name)?.contains(&v) {
                notes.push(format!(
                    "{}: {name}=={v} is not on the index: the newest version that is will do",
                    e.at()
                ));
                r.version_or_url = None;
            } else if opts.strategy == Strategy::Eager && !e.constraint {
                r = format!("{name}>={v}")
                    .parse()
                    .map_err(|e: pep508_rs::Pep508Error| Error::internal(e.to_string()))?;
                r.extras = e.requirement.extras.clone();
            }
        }
        if e.constraint {
            constraints.push(r);
        } else {
            roots.insert(name);
            reqs.push(r);
        }
    }
    if reqs.is_empty() {
        return Ok(Resolved {
            pins: Vec::new(),
            notes,
        });
    }
    let input = scratch.join("requirements.in");
    let text: String = reqs.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&input, text)?;
    let mut cmd = super::uv::command(&uv.to_path_buf());
    cmd.args(["pip", "compile", "--universal", "--no-header", "--quiet"])
        .args(["--annotation-style", "line"])
        .arg(format!("--python-version={}", platform.python))
        .args(super::uv::index_flags())
        .arg(&input);
    if !constraints.is_empty() {
        let c = scratch.join("constraints.txt");
        std::fs::write(
            &c,
            constraints
                .iter()
                .map(|r| format!("{r}\n"))
                .collect::<String>(),
        )?;
        cmd.arg("--constraint").arg(&c);
    }
    if opts.no_deps {
        cmd.arg("--no-deps");
    }
    for d in &opts.find_links {
        cmd.arg("--find-links").arg(d);
    }
    if opts.strategy == Strategy::Eager {
        cmd.arg("--upgrade");
    }
    let out = cmd.output().map_err(|e| {
        Error::env(format!("cannot run uv: {e}"))
            .hint("set REFINE_UV to a uv binary, or let refine install it with pip")
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::user(format!(
            "the requirements have no solution:\n{}",
            err.trim()
        ))
        .hint("loosen a pin, or use --fallback-latest for pins the index does not have"));
    }
    let mut pins = Vec::new();
    let mut via: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (req, comment) = match line.split_once("  #") {
            Some((r, c)) => (r.trim(), c.trim()),
            None => (line.split('#').next().unwrap_or("").trim(), ""),
        };
        if req.is_empty() {
            continue;
        }
        let r: Requirement = req.parse().map_err(|e: pep508_rs::Pep508Error| {
            Error::internal(format!("uv wrote `{req}`: {e}"))
        })?;
        if !r.marker.evaluate(&env, &[]) {
            continue;
        }
        let name = r.name.to_string();
        let version = match &r.version_or_url {
            Some(pep508_rs::VersionOrUrl::VersionSpecifier(s)) => s
                .iter()
                .next()
                .map(|s| s.version().to_string())
                .unwrap_or_default(),
            _ => continue,
        };
        let parents: Vec<String> = comment
            .strip_prefix("via ")
            .unwrap_or("")
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty() && !p.starts_with("-r") && !p.starts_with("-c"))
            .collect();
        via.insert(name.clone(), parents);
        pins.push(Pin {
            hashes: hashes
                .get(&(name.clone(), version.clone()))
                .cloned()
                .unwrap_or_default(),
            root: roots.contains(&name),
            name,
            version,
        });
    }
    // --max-deps: the named packages, then their dependencies breadth
    // first, at most N of them.
    if let Some(max) = opts.max_deps {
        let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (child, parents) in &via {
            for p in parents {
                children.entry(p.as_str()).or_default().push(child.as_str());
            }
        }
        let mut keep: BTreeSet<String> = roots.clone();
        let mut queue: VecDeque<&str> = roots.iter().map(String::as_str).collect();
        let mut added = 0;
        while let Some(n) = queue.pop_front() {
            for c in children.get(n).into_iter().flatten() {
                if added < max && keep.insert(c.to_string()) {
                    added += 1;
                    queue.push_back(c);
                }
            }
        }
        let dropped: Vec<String> = pins
            .iter()
            .filter(|p| !keep.contains(&p.name))
            .map(|p| format!("{}=={}", p.name, p.version))
            .collect();
        if !dropped.is_empty() {
            notes.push(format!(
                "--max-deps {max}: left out {} dependencies: {}",
                dropped.len(),
                dropped.join(", ")
            ));
        }
        pins.retain(|p| keep.contains(&p.name));
    }
    Ok(Resolved { pins, notes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::{Arch, Platform};

    #[test]
    fn markers_are_evaluated_for_the_target() {
        let p = Platform {
            arch: Arch::S390x,
            python: "3.11".into(),
            policy: "manylinux_2_36".into(),
            toolchain: Default::default(),
            frontend_python: None,
        };
        let env = target_env(&p);
        for (req, applies) in [
            ("a ; platform_machine == 's390x'", true),
            ("a ; platform_machine == 'x86_64'", false),
            ("a ; sys_platform == 'win32'", false),
            ("a ; python_version < '3.11'", false),
            (
                "a ; python_version >= '3.8' and implementation_name == 'cpython'",
                true,
            ),
            ("a ; platform_system == 'Linux'", true),
        ] {
            let r: Requirement = req.parse().unwrap();
            assert_eq!(r.marker.evaluate(&env, &[]), applies, "{req}");
        }
    }

    #[test]
    fn versions_of_file_names() {
        assert_eq!(
            file_version("MarkupSafe-2.1.5.tar.gz").as_deref(),
            Some("2.1.5")
        );
        assert_eq!(
            file_version("six-1.16.0-py2.py3-none-any.whl").as_deref(),
            Some("1.16.0")
        );
        assert_eq!(
            file_version("zope.interface-6.0.zip").as_deref(),
            Some("6.0")
        );
        assert_eq!(file_version("README"), None);
    }
}
