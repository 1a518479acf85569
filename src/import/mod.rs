//! `refine import` and `refine add`: from requirements (or a folder of
//! wheels) to generated rules, with no rule written by hand.
//!
//! ```text
//! requirements files ─► reqfile (PEP 508) ─► resolve (uv, universally; markers
//!   evaluated here for the target) ─► index (a pure wheel reused, a target
//!   wheel reused, else the sdist, by sha256, through pip's configuration)
//!   ─► sdist + backend (PEP 517 build requirements: [build-system] and
//!   get_requires_for_build_wheel, resolved and pinned in turn: pure ones as
//!   prebuilt wheels, compiled ones as wheel targets built for the target)
//!   ─► write (rules/imported/NAME.toml and //sets:NAME, deterministic)
//! ```
//!
//! This module decides and renders; [`crate::ops::import`] reads the
//! workspace, writes the file atomically and checks that it evaluates.

pub mod backend;
pub mod index;
pub mod reqfile;
pub mod resolve;
pub mod sdist;
pub mod uv;
pub mod write;

use crate::error::{Error, Result};
use crate::fetch::IndexFile;
use crate::platform::Platform;
use crate::rules::{Label, normalize_name};
use index::Choice;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};

/// Where generated rules go, relative to the workspace root.
pub const IMPORTED_DIR: &str = "rules/imported";

/// What the user asked for.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The import's name: `rules/imported/NAME.toml`, `//sets:NAME`.
    pub name: String,
    /// Requirements files, relative to the workspace root (or absolute).
    pub requirements: Vec<PathBuf>,
    pub constraints: Vec<PathBuf>,
    /// Requirements given on the command line (`refine add`).
    pub specs: Vec<String>,
    /// `--wheels DIR`.
    pub wheels: Option<PathBuf>,
    pub resolve: resolve::Options,
    pub build_pure: bool,
    /// Fixes recorded in the import's file (by `refine build --auto-apply`
    /// or by hand): applied again on every regeneration.
    pub fixes: Vec<Fix>,
}

/// A recorded change to one generated wheel rule: the schema is the rules'
/// (`[[import.fixes]]`, [`crate::rules::ImportFix`]).
pub use crate::rules::ImportFix as Fix;

/// What the workspace already has, as far as the import cares.
#[derive(Clone, Debug, Default)]
pub struct Known {
    /// Wheel targets of the workspace's own files (not generated):
    /// label → (where, version, has a repair target).
    pub hand_written: BTreeMap<Label, (String, Option<String>, bool)>,
    /// Wheel targets of the built-in base: label → (version, has a repair).
    pub builtin: BTreeMap<Label, (Option<String>, bool)>,
    /// Labels of other imports' files: label → file.
    pub other_imports: BTreeMap<Label, String>,
    /// Every pypi wheel source: (normalized name, version, sha256) → label.
    pub wheel_sources: BTreeMap<(String, String, String), Label>,
    /// Every label there is (to keep generated ones apart).
    pub labels: BTreeSet<Label>,
    /// `[catalog]`: normalized package name → packs.
    pub catalog: BTreeMap<String, Vec<Label>>,
    /// `[catalog]`'s floors: normalized package name → `policy`.
    pub catalog_policies: BTreeMap<String, String>,
    /// `[catalog]`'s environments: normalized package name → `env`.
    pub catalog_env: BTreeMap<String, BTreeMap<String, String>>,
    /// `[catalog]`'s PEP 517 config settings: normalized name → settings.
    pub catalog_config_settings: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

/// How one package was decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub name: String,
    pub version: String,
    /// Named in the input or needed at run time (not only to build).
    pub runtime: bool,
    /// What is done, in words: "reused pure wheel six-1.16.0-py2.py3-none-any.whl".
    pub what: String,
    /// The label that stands for it in the set (or in build requirements).
    pub label: Option<Label>,
}

/// A package that cannot be built from what the index has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unbuildable {
    pub name: String,
    pub version: String,
    pub why: String,
    pub hint: String,
}

/// The import's outcome: the file's text and what was decided.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub text: String,
    pub decisions: Vec<Decision>,
    pub unbuildable: Vec<Unbuildable>,
    pub notes: Vec<String>,
    /// The set's members.
    pub set: Vec<Label>,
    /// Wheels to copy into the workspace: (from, to relative to the root).
    pub copies: Vec<(PathBuf, String)>,
}

/// How a package's wheel is made.
#[derive(Clone, Debug)]
pub(crate) enum Made {
    /// A prebuilt wheel from the index.
    Wheel { file: IndexFile, pure: bool },
    /// Built from the sdist for the target.
    Sdist {
        file: IndexFile,
        display: String,
        /// (normalized name, version) of each build requirement.
        build: Vec<(String, String)>,
        /// Where the build requirements were read.
        origin: String,
        /// A Rust extension: the sha256 of its vendored crates (a `cargo`
        /// source), built in the Rust image.
        crates: Option<String>,
    },
    /// A hand-written or built-in rule stands for it.
    Existing { label: Label, what: String },
    /// A wheel of `--wheels DIR` that fits the target and that the index
    /// does not have: copied into the workspace.
    Local { path: PathBuf, sha256: String },
}

#[derive(Clone, Debug)]
pub(crate) struct Pkg {
    pub name: String,
    pub version: String,
    pub runtime: bool,
    pub made: Option<Made>,
}

/// Where the import says what it is doing.
pub type Progress<'a> = Box<dyn Fn(&str) + 'a>;

/// The wheels of a folder, sorted: kept (name, version, path), rebuilt
/// (`name==version` specs), and a note per wheel.
pub struct Classified {
    pub kept: Vec<(String, String, PathBuf)>,
    pub rebuild: Vec<String>,
    pub notes: Vec<String>,
}

/// The import's work, with what it learned memoized.
pub struct Importer<'a> {
    pub uv: PathBuf,
    /// The workspace root: the request's paths are relative to it.
    pub root: PathBuf,
    pub store: PathBuf,
    pub platform: &'a Platform,
    pub known: &'a Known,
    pub scratch: PathBuf,
    files: HashMap<String, Vec<IndexFile>>,
    build_sets: HashMap<Vec<String>, Vec<resolve::Pin>>,
    /// Say what is slow as it happens (stderr), when set.
    pub progress: Option<Progress<'a>>,
}

impl<'a> Importer<'a> {
    pub fn new(
        uv: PathBuf,
        root: PathBuf,
        store: PathBuf,
        platform: &'a Platform,
        known: &'a Known,
        scratch: PathBuf,
    ) -> Self {
        Importer {
            uv,
            root,
            store,
            platform,
            known,
            scratch,
            files: HashMap::new(),
            build_sets: HashMap::new(),
            progress: None,
        }
    }

    fn say(&self, s: &str) {
        if let Some(p) = &self.progress {
            p(s);
        }
    }

    fn index_files(&mut self, name: &str) -> Result<Vec<IndexFile>> {
        let key = normalize_name(name);
        if let Some(f) = self.files.get(&key) {
            return Ok(f.clone());
        }
        let f = crate::fetch::list_project(name).map_err(|e| {
            let hint = e.hint();
            Error::env(format!("the package index, for {name}: {e}")).hint(hint)
        })?;
        self.files.insert(key, f.clone());
        Ok(f)
    }

    /// Resolve one build environment's requirements for the target.
    fn resolve_build(&mut self, reqs: &[String]) -> Result<Vec<resolve::Pin>> {
        let mut key = reqs.to_vec();
        key.sort();
        key.dedup();
        if let Some(p) = self.build_sets.get(&key) {
            return Ok(p.clone());
        }
        let entries = reqfile::parse_specs(&key).map_err(|e| {
            Error::build(format!("a build requirement is not PEP 508: {}", e.message))
        })?;
        let dir = self
            .scratch
            .join(format!("build-{}", self.build_sets.len()));
        std::fs::create_dir_all(&dir)?;
        let r = resolve::resolve(
            &self.uv,
            &entries,
            self.platform,
            &resolve::Options::default(),
            &dir,
        )?;
        self.build_sets.insert(key, r.pins.clone());
        Ok(r.pins)
    }

    /// Download a file of the index into the store's download cache
    /// (by sha256) and return its path.
    fn download(&self, f: &IndexFile) -> Result<PathBuf> {
        let sha = f.sha256.as_deref().unwrap_or_default();
        let dir = self.store.join("cache/downloads").join(sha);
        let dest = dir.join(crate::fetch::file_name(&f.filename));
        if dest.is_file() && crate::key::sha256_file(&dest).is_ok_and(|(d, _)| d.hex() == sha) {
            return Ok(dest);
        }
        std::fs::create_dir_all(&dir)?;
        let tmp = tempfile::NamedTempFile::new_in(&dir)?;
        let got = crate::fetch::download_file(f, tmp.path()).map_err(|e| {
            let hint = e.hint();
            Error::env(format!("downloading {}: {e}", f.filename)).hint(hint)
        })?;
        if got.hex() != sha {
            return Err(Error::env(format!(
                "{} downloaded with sha256 {}, the index said {sha}",
                f.filename,
                got.hex()
            ))
            .hint("the index or a proxy changed the file; try again, and check pip's index configuration"));
        }
        tmp.persist(&dest).map_err(|e| Error::from(e.error))?;
        Ok(dest)
    }

    /// The build requirements of an sdist, for the target: declared, then
    /// what the backend's hook adds, markers evaluated for the target.
    fn build_requirements(
        &mut self,
        file: &IndexFile,
        extra: &[String],
    ) -> Result<(Vec<String>, String, Option<String>)> {
        let path = self.download(file)?;
        let dir = tempfile::tempdir_in(&self.scratch)?;
        let top = sdist::unpack(&path, dir.path())
            .map_err(|e| Error::build(e).hint("check the sdist; refine reads .tar.gz and .zip"))?;
        let pyproject = std::fs::read_to_string(top.join("pyproject.toml")).ok();
        let bs = sdist::build_system(pyproject.as_deref())
            .map_err(|e| Error::build(format!("{}: {e}", file.filename)))?;
        let sha = file.sha256.clone().unwrap_or_default();
        if backend::cached_answer(&self.store, &sha, &bs).is_none() {
            self.say(&format!(
                "asking {}'s build backend ({})",
                file.filename, bs.backend
            ));
        }
        let hook_dir = tempfile::tempdir_in(&self.scratch)?;
        let answer = backend::requires_for_build_wheel(
            &self.uv,
            &self.store,
            &sha,
            &bs,
            &top,
            &self.platform.python,
            hook_dir.path(),
        )?;
        let env = resolve::target_env(self.platform);
        let mut reqs: Vec<String> = Vec::new();
        let mut from_hook: Vec<String> = Vec::new();
        let declared: Vec<String> = bs
            .requires
            .iter()
            .filter_map(|r| r.parse::<pep508_rs::Requirement>().ok())
            .map(|r| r.name.to_string())
            .collect();
        for r in bs.requires.iter().chain(&answer.requires).chain(extra) {
            let parsed: pep508_rs::Requirement =
                r.parse().map_err(|e: pep508_rs::Pep508Error| {
                    Error::build(format!(
                        "{}: build requirement `{r}`: {}",
                        file.filename, e.message
                    ))
                })?;
            if !parsed.marker.evaluate(&env, &[]) {
                continue;
            }
            let name = parsed.name.to_string();
            if answer.requires.contains(r)
                && !declared.contains(&name)
                && !from_hook.contains(&name)
            {
                from_hook.push(name);
            }
            reqs.push(r.clone());
        }
        let mut origin = bs.origin.to_string();
        if !from_hook.is_empty() {
            origin.push_str(&format!(
                "; the backend's get_requires_for_build_wheel added {}",
                from_hook.join(", ")
            ));
        }
        if !answer.offline {
            origin.push_str(" (its hook ran with the network: no network namespace here)");
        }
        if let Some(why) = &answer.failed {
            self.say(&format!(
                "{}: the backend's get_requires_for_build_wheel failed on this host ({why}); \
                 going on with the declared build requirements",
                file.filename
            ));
            origin.push_str(&format!(
                "; its get_requires_for_build_wheel failed on this host ({why}): the declared \
                 requirements only, the build asks it again (give the rule the packs it needs)"
            ));
        }
        // A Rust extension: its crates vendored and pinned now, as the
        // build will vendor them (cargo vendor --locked on this host).
        let rusty = reqs.iter().any(|r| {
            r.parse::<pep508_rs::Requirement>()
                .is_ok_and(|p| matches!(p.name.as_ref(), "maturin" | "setuptools-rust"))
        });
        let crates = if rusty {
            self.say(&format!("vendoring the crates of {}", file.filename));
            let work = tempfile::tempdir_in(&self.scratch)?;
            let mut log = tempfile::tempfile_in(&self.scratch)?;
            let v = crate::fetch::cargo::vendor(&path, &file.filename, None, work.path(), &mut log)
                .map_err(|e| {
                    let hint = e.hint();
                    Error::build(format!("{}: its Rust crates: {e}", file.filename)).hint(hint)
                })?;
            let (d, _) = crate::key::sha256_file(&v.archive)?;
            origin.push_str(if v.generated_lock {
                "; Rust, with its crates vendored (the sdist has no Cargo.lock: one resolved \
                 from the registry now, pinned with them)"
            } else {
                "; Rust, with its crates vendored"
            });
            Some(d.hex().to_string())
        } else {
            None
        };
        Ok((reqs, origin, crates))
    }

    /// Decide every package of `req` and render the import's file.
    pub fn run(&mut self, req: &Request, command: &str) -> Result<Outcome> {
        let mut out = Outcome::default();
        let mut entries = Vec::new();
        for f in &req.requirements {
            entries.extend(reqfile::read(&self.root.join(f), false).map_err(reqfile_error)?);
        }
        for f in &req.constraints {
            entries.extend(reqfile::read(&self.root.join(f), true).map_err(reqfile_error)?);
        }
        entries.extend(reqfile::parse_specs(&req.specs).map_err(reqfile_error)?);
        // A folder of wheels: what fits the target is kept as it is; the
        // rest is pinned to its version and built from its sdist.
        let mut local: BTreeMap<String, (String, PathBuf, String)> = BTreeMap::new();
        if let Some(dir) = &req.wheels {
            let Classified {
                kept,
                rebuild,
                notes,
            } = classify_wheels(&self.root.join(dir), self.platform)?;
            out.notes.extend(notes);
            for (name, version, path) in kept {
                let sha = crate::key::sha256_file(&path)
                    .map(|(d, _)| d.hex().to_string())
                    .map_err(Error::from)?;
                local.insert(normalize_name(&name), (version, path, sha));
            }
            entries.extend(reqfile::parse_specs(&rebuild).map_err(reqfile_error)?);
            for (name, (version, _, _)) in &local {
                entries.extend(
                    reqfile::parse_specs(&[format!("{name}=={version}")]).map_err(reqfile_error)?,
                );
            }
        }
        if entries.iter().all(|e| e.constraint) {
            return Err(Error::user("nothing to import: no requirements")
                .hint("give a requirements file (`refine import requirements.txt`) or specs (`refine add six`)"));
        }
        self.say(&format!(
            "resolving {} requirements for {}",
            entries.len(),
            self.platform.arch.as_str()
        ));
        let mut ropts = req.resolve.clone();
        if let Some(dir) = &req.wheels {
            ropts.find_links.push(self.root.join(dir));
        }
        let resolved = resolve::resolve(&self.uv, &entries, self.platform, &ropts, &self.scratch)?;
        out.notes.extend(resolved.notes.iter().cloned());
        let fixes: BTreeMap<String, &Fix> = req
            .fixes
            .iter()
            .map(|f| (f.target.trim_start_matches("//wheels:").to_string(), f))
            .collect();

        let mut pkgs: BTreeMap<(String, String), Pkg> = BTreeMap::new();
        let mut queue: VecDeque<(String, String, bool, Vec<String>)> = resolved
            .pins
            .iter()
            .map(|p| (p.name.clone(), p.version.clone(), true, p.hashes.clone()))
            .collect();
        while let Some((name, version, runtime, hashes)) = queue.pop_front() {
            let key = (normalize_name(&name), version.clone());
            if let Some(p) = pkgs.get_mut(&key) {
                p.runtime |= runtime;
                continue;
            }
            let mut pkg = Pkg {
                name: key.0.clone(),
                version: version.clone(),
                runtime,
                made: None,
            };
            // A rule of the workspace's own of the same version wins; a
            // built-in one of the same version is reused (it is tuned). A
            // rule of another version never replaces a pin: the pinned
            // version is built under a label of its own, and a note names
            // both places.
            let wl = Label::new(crate::rules::Kind::Wheel, key.0.as_str());
            let hand = self.known.hand_written.get(&wl);
            if runtime
                && let Some((at, Some(v), _)) = hand
                && !index::same_version(v, &version)
            {
                out.notes.push(format!(
                    "{name}: the hand-written rule at {at} builds {v}, the requirements pin {version}: {version} is built under its own label, the rule is left as it is"
                ));
            }
            let hand = hand.filter(|(_, v, _)| {
                v.as_deref()
                    .is_none_or(|v| index::same_version(v, &version))
            });
            if runtime && let Some((at, v, repair)) = hand {
                let label = if *repair {
                    Label::new(crate::rules::Kind::Repair, key.0.as_str())
                } else {
                    wl.clone()
                };
                pkg.made = Some(Made::Existing {
                    label,
                    what: match v {
                        Some(_) => format!("the hand-written rule at {at} wins (the same version)"),
                        None => format!("the hand-written rule at {at} wins"),
                    },
                });
                pkgs.insert(key, pkg);
                continue;
            }
            if let Some((v, path, sha)) = local.get(&key.0)
                && index::same_version(v, &version)
            {
                // The very file the index has: fetched from there.
                let files = self.index_files(&name).unwrap_or_default();
                pkg.made = Some(
                    match files.into_iter().find(|f| f.sha256.as_deref() == Some(sha)) {
                        Some(file) => {
                            let pure =
                                index::wheel_tags(&file.filename).is_some_and(|t| t.is_pure());
                            Made::Wheel { file, pure }
                        }
                        None => Made::Local {
                            path: path.clone(),
                            sha256: sha.clone(),
                        },
                    },
                );
                pkgs.insert(key, pkg);
                continue;
            }
            self.say(&format!("{name}=={version}"));
            let files = self.index_files(&name)?;
            let want = index::Want {
                build_pure: req.build_pure && runtime,
                for_build: !runtime,
            };
            match index::choose(&version, &files, &hashes, self.platform, want) {
                Err(why) => {
                    out.unbuildable.push(Unbuildable {
                        name: key.0.clone(),
                        version: version.clone(),
                        hint: why.hint().into(),
                        why: why.to_string(),
                    });
                }
                Ok(Choice::Pure(f)) => {
                    pkg.made = Some(Made::Wheel {
                        file: f,
                        pure: true,
                    })
                }
                Ok(Choice::Target(f)) => {
                    pkg.made = Some(Made::Wheel {
                        file: f,
                        pure: false,
                    })
                }
                Ok(Choice::Sdist(_))
                    if runtime
                        && self.known.builtin.get(&wl).is_some_and(|(v, _)| {
                            v.as_deref()
                                .is_some_and(|v| index::same_version(v, &version))
                        }) =>
                {
                    // A built-in rule of the same version is reused (it is tuned).
                    let repair = self.known.builtin.get(&wl).is_some_and(|(_, r)| *r);
                    pkg.made = Some(Made::Existing {
                        label: if repair {
                            Label::new(crate::rules::Kind::Repair, key.0.as_str())
                        } else {
                            wl.clone()
                        },
                        what: "the built-in rule of the same version is used".into(),
                    });
                }
                Ok(Choice::Sdist(f)) => {
                    let extra: Vec<String> = fixes
                        .get(&key.0)
                        .map(|x| x.build_requires.clone())
                        .unwrap_or_default();
                    match self
                        .build_requirements(&f, &extra)
                        .and_then(|(reqs, origin, crates)| {
                            Ok((self.resolve_build(&reqs)?, origin, crates))
                        }) {
                        Err(e) if e.class != crate::error::ErrorClass::Environment => {
                            out.unbuildable.push(Unbuildable {
                                name: key.0.clone(),
                                version: version.clone(),
                                why: e.message.clone(),
                                hint: e.hint.clone().unwrap_or_default(),
                            });
                        }
                        Err(e) => return Err(e),
                        Ok((pins, origin, crates)) => {
                            let build = pins
                                .iter()
                                .map(|p| (normalize_name(&p.name), p.version.clone()))
                                .collect();
                            for p in pins {
                                queue.push_back((p.name, p.version, false, Vec::new()));
                            }
                            pkg.made = Some(Made::Sdist {
                                display: display_name(&f.filename).unwrap_or_else(|| name.clone()),
                                file: f,
                                build,
                                origin,
                                crates,
                            });
                        }
                    }
                }
            }
            pkgs.insert(key, pkg);
        }
        break_cycles(&mut pkgs, &mut out);
        write::render(self.known, self.platform, req, command, &pkgs, &mut out)?;
        Ok(out)
    }
}

fn reqfile_error(e: reqfile::ReqFileError) -> Error {
    let at = if e.line == 0 {
        e.file.display().to_string()
    } else {
        format!("{}:{}", e.file.display(), e.line)
    };
    Error::user(format!("{at}: {}", e.message)).hint(e.hint)
}

/// The project name as its sdist file spells it (`MarkupSafe-2.1.5.tar.gz`).
fn display_name(filename: &str) -> Option<String> {
    let stem = [".tar.gz", ".zip"]
        .iter()
        .find_map(|e| filename.strip_suffix(e))?;
    stem.rsplit_once('-').map(|(n, _)| n.to_string())
}

/// A build-requirement cycle (a needs b to build, b needs a) cannot be
/// built from sdists alone: the packages on it are reported, not written.
fn break_cycles(pkgs: &mut BTreeMap<(String, String), Pkg>, out: &mut Outcome) {
    fn visit(
        k: &(String, String),
        pkgs: &BTreeMap<(String, String), Pkg>,
        stack: &mut Vec<(String, String)>,
        done: &mut BTreeSet<(String, String)>,
        cyclic: &mut BTreeSet<(String, String)>,
    ) {
        if done.contains(k) {
            return;
        }
        if let Some(i) = stack.iter().position(|s| s == k) {
            cyclic.extend(stack[i..].iter().cloned());
            return;
        }
        stack.push(k.clone());
        if let Some(Pkg {
            made: Some(Made::Sdist { build, .. }),
            ..
        }) = pkgs.get(k)
        {
            for b in build {
                visit(b, pkgs, stack, done, cyclic);
            }
        }
        stack.pop();
        done.insert(k.clone());
    }
    let mut cyclic = BTreeSet::new();
    let mut done = BTreeSet::new();
    for k in pkgs.keys().cloned().collect::<Vec<_>>() {
        visit(&k, pkgs, &mut Vec::new(), &mut done, &mut cyclic);
    }
    for k in cyclic {
        if let Some(p) = pkgs.get_mut(&k) {
            p.made = None;
            out.unbuildable.push(Unbuildable {
                name: k.0.clone(),
                version: k.1.clone(),
                why: "its build requirements need it back (a build-requirement cycle)".into(),
                hint: "pin a prebuilt wheel of one package on the cycle by hand ([sources.X] with dist = \"wheel\")".into(),
            });
        }
    }
}

/// Sort the wheels of `dir` by what fits the target.
pub fn classify_wheels(dir: &Path, target: &Platform) -> Result<Classified> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        Error::user(format!("--wheels {}: {e}", dir.display()))
            .hint("give a directory that holds .whl files")
    })?;
    let mut names: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(
            Error::user(format!("--wheels {}: no .whl files there", dir.display()))
                .hint("give the directory of the wheels to rebuild for the target"),
        );
    }
    let mut kept = Vec::new();
    let mut rebuild = Vec::new();
    let mut notes = Vec::new();
    for p in names {
        let f = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some((tags, fits)) = index::fits_target(&f, target) else {
            return Err(
                Error::user(format!("--wheels: `{f}` is not a wheel file name"))
                    .hint("wheel names look like NAME-VERSION-PY-ABI-PLATFORM.whl (PEP 427)"),
            );
        };
        let name = normalize_name(&tags.name);
        if tags.is_pure() && fits {
            notes.push(format!("{f}: pure, reused as it is"));
            kept.push((name, tags.version, p));
        } else if fits {
            notes.push(format!(
                "{f}: already built for {}, reused as it is",
                target.arch.as_str()
            ));
            kept.push((name, tags.version, p));
        } else {
            notes.push(format!(
                "{f}: built for {}, rebuilt from the sdist of {} {}",
                tags.platform.join("."),
                tags.name,
                tags.version
            ));
            rebuild.push(format!("{name}=={}", tags.version));
        }
    }
    Ok(Classified {
        kept,
        rebuild,
        notes,
    })
}
