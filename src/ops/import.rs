//! `refine import` and `refine add`: decide with [`crate::import`], then
//! write `rules/imported/NAME.toml` atomically and check that the
//! workspace still evaluates with it (if not, the old file is put back and
//! the errors are a bug of refine's, reported as such).

use super::{GlobalOpts, Session};
use crate::error::{Error, Result};
use crate::eval::{Action, is_builtin};
use crate::import::{self, IMPORTED_DIR, Known, Request, write::ImportMeta};
use crate::rules::{Dist, Fetch, Kind, Label, normalize_name};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default)]
pub struct ImportArgs {
    /// Requirements files (`refine import`); empty for `refine add`.
    pub files: Vec<PathBuf>,
    pub constraints: Vec<PathBuf>,
    /// Specs (`refine add`).
    pub specs: Vec<String>,
    pub name: Option<String>,
    pub wheels: Option<PathBuf>,
    pub strategy: Option<String>,
    pub fallback_latest: bool,
    pub max_deps: Option<usize>,
    pub no_deps: bool,
    pub build_pure: bool,
    /// `refine add`: add to an import's recorded inputs (with no specs:
    /// regenerate it from them).
    pub add: bool,
    /// Fixes to record beside the import's own (`--auto-apply`).
    pub extra_fixes: Vec<import::Fix>,
}

pub struct ImportReport {
    pub name: String,
    /// `rules/imported/NAME.toml`.
    pub file: String,
    pub changed: bool,
    pub outcome: import::Outcome,
    pub set: Label,
    /// The oldest glibc each package of the set installs on (None: a pure
    /// wheel, anywhere), with the policy that says it.
    pub floors: Vec<Floor>,
}

/// Where one package of an import installs.
#[derive(Clone, Debug)]
pub struct Floor {
    pub name: String,
    /// The oldest glibc; None for a pure wheel.
    pub glibc: Option<(u32, u32)>,
    /// What says it: the reused wheel's tags, or the floor its build meets.
    pub from: String,
}

/// Each package's floor: a reused wheel's oldest manylinux tag; a built
/// one's policy (its rule's own, or the platform's).
fn floors(outcome: &import::Outcome, session: &Session) -> Vec<Floor> {
    use crate::platform::policy_glibc;
    let g = session.all();
    outcome
        .decisions
        .iter()
        .filter(|d| d.runtime)
        .map(|d| {
            let wheel = d
                .what
                .split_whitespace()
                .find(|w| w.ends_with(".whl") && crate::wheel::parse_filename(w).is_some());
            let (glibc, from) = match wheel {
                Some(w) => (
                    crate::wheel::policy::wheel_floor(w),
                    format!("the tags of {w}"),
                ),
                None => {
                    // A rule the workspace has (built-in numpy keeps its
                    // own policy), else the platform's floor.
                    let policy = d
                        .label
                        .as_ref()
                        .map(|l| Label::new(Kind::Wheel, l.name.clone()))
                        .and_then(|l| g.get(&l))
                        .map_or(session.platform.policy.clone(), |n| {
                            n.derivation().platform.policy.clone()
                        });
                    (
                        Some(policy_glibc(&policy).unwrap_or((u32::MAX, 0))),
                        format!("its build's floor, {policy}"),
                    )
                }
            };
            Floor {
                name: d.name.clone(),
                glibc,
                from,
            }
        })
        .collect()
}

/// The import's file, relative to the workspace root.
pub fn file_of(name: &str) -> String {
    format!("{IMPORTED_DIR}/{name}.toml")
}

/// An import's name, normalized, if it can be one: letters, digits and
/// `-`, starting with a letter or digit.
pub fn import_name(name: &str) -> Option<String> {
    let n = normalize_name(name);
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    ok.then_some(n)
}

fn check_name(name: &str) -> Result<String> {
    let Some(n) = import_name(name) else {
        return Err(
            Error::user(format!("--name: `{name}` cannot name an import"))
                .hint("use letters, digits and `-`, e.g. `--name web`"),
        );
    };
    Ok(n)
}

/// The imports the workspace has: names of `rules/imported/*.toml`.
fn existing_imports(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join(IMPORTED_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_suffix(".toml").map(str::to_string)
        })
        .collect();
    v.sort();
    v
}

/// A path as the import records it: relative to the workspace root.
fn recorded(root: &Path, p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p)
        .map_err(|e| Error::user(format!("{}: {e}", p.display())).hint("check the path"))?;
    if !abs.is_file() {
        return Err(Error::user(format!("{}: no such file", p.display()))
            .hint("give the requirements file to import"));
    }
    let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    Ok(relative(&root, &abs))
}

fn relative(base: &Path, p: &Path) -> PathBuf {
    let b: Vec<_> = base.components().collect();
    let q: Vec<_> = p.components().collect();
    let common = b.iter().zip(&q).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &q[common..] {
        out.push(c);
    }
    out
}

/// What the workspace has (loaded without the import's own file).
fn known(session: &Session) -> Known {
    let mut k = Known::default();
    let g = session.all();
    let has = |l: &Label| g.get(l).is_some();
    for n in &g.nodes {
        let file: &str = n.decl().file.as_ref();
        let d = &n.derivation();
        k.labels.insert(d.label.clone());
        match d.label.kind {
            Kind::Wheel => {
                let repair = has(&Label::new(Kind::Repair, d.label.name.clone()));
                if is_builtin(file) {
                    k.builtin
                        .insert(d.label.clone(), (d.version.clone(), repair));
                } else if file.starts_with(IMPORTED_DIR) {
                    k.other_imports.insert(d.label.clone(), file.to_string());
                } else {
                    let at = session.origin(&d.label).unwrap_or_else(|| file.to_string());
                    k.hand_written
                        .insert(d.label.clone(), (at, d.version.clone(), repair));
                }
            }
            // Pins of other imports are theirs: regenerating one of them
            // must not break this one, so they are not shared.
            Kind::Source if !file.starts_with(IMPORTED_DIR) => {
                if let Action::Fetch {
                    fetch:
                        Fetch::Pypi {
                            name,
                            version,
                            dist: Dist::Wheel,
                        },
                    sha256,
                } = &d.action
                {
                    let sha = sha256.strip_prefix("sha256:").unwrap_or(sha256).to_string();
                    k.wheel_sources
                        .entry((normalize_name(name), version.clone(), sha))
                        .or_insert_with(|| d.label.clone());
                }
            }
            _ => {}
        }
    }
    let ev = session.evaluated();
    k.catalog = crate::eval::catalog(&ev.db, ev.ws).clone();
    k.catalog_policies = crate::eval::catalog_policies(&ev.db, ev.ws);
    k.catalog_env = crate::eval::catalog_env(&ev.db, ev.ws);
    k.catalog_config_settings = crate::eval::catalog_config_settings(&ev.db, ev.ws);
    k
}

pub fn import(opts: &GlobalOpts, args: &ImportArgs) -> Result<ImportReport> {
    let root = crate::workspace::locate(opts.workspace.as_deref())?;
    let imports = existing_imports(&root);
    let name = match &args.name {
        Some(n) => check_name(n)?,
        None if args.add => match imports.as_slice() {
            [] => "added".to_string(),
            [one] => one.clone(),
            many => {
                return Err(Error::user(format!(
                    "the workspace has {} imports ({}): which one to add to?",
                    many.len(),
                    many.join(", ")
                ))
                .hint(format!("refine add --name {} SPEC…", many[0])));
            }
        },
        None => {
            let first = args.files.first().or(args.wheels.as_ref());
            let stem = first
                .and_then(|f| f.file_stem())
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "imported".into());
            check_name(&stem)?
        }
    };
    let own = file_of(&name);
    let own_path = root.join(&own);
    let old_text = std::fs::read_to_string(&own_path).ok();
    let old: Option<ImportMeta> = match &old_text {
        None => None,
        Some(t) => Some(import::write::read_meta(&own, t).map_err(|e| {
            Error::user(e).hint(format!(
                "the [import] table records how {own} was made; fix it, or delete the file and import again"
            ))
        })?),
    };
    // A regeneration resolves for the target the import was made for
    // (`refine --arch host build --auto-apply` must not re-resolve an
    // s390x import for the host); a new import, for the session's.
    let mut opts = opts.clone();
    if args.add
        && let Some(a) = old.as_ref().and_then(|o| o.arch.clone())
    {
        opts.arch = Some(a);
    }
    // The workspace as it is without this import's own file (which is
    // about to be replaced, and may not evaluate any more).
    let mut without = opts.clone();
    without.without = Some(own.clone());
    let session = Session::load(&without)?;
    let opts = &opts;

    let mut req = Request {
        name: name.clone(),
        build_pure: args.build_pure,
        ..Default::default()
    };
    req.resolve.fallback_latest = args.fallback_latest;
    req.resolve.max_deps = args.max_deps;
    req.resolve.no_deps = args.no_deps;
    if let Some(s) = &args.strategy {
        req.resolve.strategy = match s.as_str() {
            "pinned" => import::resolve::Strategy::Pinned,
            "eager" => import::resolve::Strategy::Eager,
            other => {
                return Err(
                    Error::user(format!("--strategy: unknown strategy `{other}`"))
                        .hint("pinned keeps the input's pins; eager takes the newest that fits"),
                );
            }
        };
    }
    if let Some(o) = &old {
        req.fixes = o.fixes.clone();
    }
    for f in &args.extra_fixes {
        match req.fixes.iter_mut().find(|x| x.target == f.target) {
            Some(x) => {
                for p in &f.packs {
                    if !x.packs.contains(p) {
                        x.packs.push(p.clone());
                    }
                }
                for b in &f.build_requires {
                    if !x.build_requires.contains(b) {
                        x.build_requires.push(b.clone());
                    }
                }
                x.env.extend(f.env.clone());
                if f.test.is_some() {
                    x.test = f.test.clone();
                }
                if f.image.is_some() {
                    x.image = f.image.clone();
                    x.runtime = f.runtime.clone();
                }
                if !x.why.contains(&f.why) {
                    x.why = if x.why.is_empty() {
                        f.why.clone()
                    } else {
                        format!("{}; {}", x.why, f.why)
                    };
                }
            }
            None => req.fixes.push(f.clone()),
        }
    }
    if args.add {
        // The import's recorded inputs, and the new specs (a spec for a
        // package already given replaces it).
        if let Some(o) = &old {
            req.requirements = o.requirements.iter().map(PathBuf::from).collect();
            req.constraints = o.constraints.iter().map(PathBuf::from).collect();
            req.wheels = o.wheels.as_ref().map(PathBuf::from);
            req.build_pure |= o.build_pure;
            req.resolve.fallback_latest |= o.fallback_latest;
            req.resolve.no_deps |= o.no_deps;
            req.resolve.max_deps = req.resolve.max_deps.or(o.max_deps);
            if args.strategy.is_none() && o.strategy.as_deref() == Some("eager") {
                req.resolve.strategy = import::resolve::Strategy::Eager;
            }
            req.specs = o.specs.clone();
        }
        let new = import::reqfile::parse_specs(&args.specs).map_err(|e| {
            Error::user(format!("{}: {}", e.file.display(), e.message)).hint(e.hint)
        })?;
        for (spec, e) in args.specs.iter().zip(new) {
            let n = e.requirement.name.to_string();
            req.specs.retain(|s| {
                import::reqfile::parse_specs(std::slice::from_ref(s))
                    .map_or(true, |x| x[0].requirement.name.to_string() != n)
            });
            req.specs.push(spec.clone());
        }
    } else {
        for f in &args.files {
            req.requirements.push(recorded(&root, f)?);
        }
        for f in &args.constraints {
            req.constraints.push(recorded(&root, f)?);
        }
        if let Some(w) = &args.wheels {
            let abs = std::path::absolute(w).unwrap_or_else(|_| w.clone());
            req.wheels = Some(relative(
                &std::path::absolute(&root).unwrap_or(root.clone()),
                &abs,
            ));
        }
    }
    let mut command = String::from("refine import");
    for r in &req.requirements {
        command.push_str(&format!(" {}", r.display()));
    }
    for c in &req.constraints {
        command.push_str(&format!(" -c {}", c.display()));
    }
    if let Some(w) = &req.wheels {
        command.push_str(&format!(" --wheels {}", w.display()));
    }
    command.push_str(&format!(" --name {name}"));
    if !req.specs.is_empty() {
        command = format!("refine add --name {name} (the specs in [import] below)");
    }

    let store = session.open_store()?;
    let uv = import::uv::uv(&store)?;
    let k = known(&session);
    let scratch = store.tmp_dir()?;
    let mut imp = import::Importer::new(
        uv,
        root.clone(),
        store.root().to_path_buf(),
        &session.platform,
        &k,
        scratch.path().to_path_buf(),
    );
    imp.progress = Some(Box::new(|s: &str| eprintln!("import: {s}")));
    let outcome = imp.run(&req, &command)?;
    if outcome.set.is_empty() && outcome.unbuildable.is_empty() {
        // Not one requirement is for this platform: nothing to build and
        // nothing that failed, which is the user's input, not a build.
        return Err(Error::user(format!(
            "nothing of the import is for {} with Python {}: the requirements resolve to no package there (every line's marker excludes it, or the files hold no requirement)",
            session.platform.arch, session.platform.python
        ))
        .hint("check the markers (`; platform_machine == ...`, `python_version ...`) and --arch; nothing was written"));
    }
    if outcome.set.is_empty() {
        return Err(Error::build(format!(
            "nothing of the import can be built: {}",
            outcome
                .unbuildable
                .iter()
                .map(|u| format!("{} {} ({})", u.name, u.version, u.why))
                .collect::<Vec<_>>()
                .join("; ")
        ))
        .hint("nothing was written"));
    }
    let changed = old_text.as_deref() != Some(outcome.text.as_str());
    if changed {
        for (from, to) in &outcome.copies {
            let dest = root.join(to);
            if let Some(p) = dest.parent() {
                std::fs::create_dir_all(p)?;
            }
            std::fs::copy(from, &dest)?;
        }
        let dir = root.join(IMPORTED_DIR);
        std::fs::create_dir_all(&dir)?;
        crate::store::local::write_atomic(&dir, &own_path, outcome.text.as_bytes())?;
        // The workspace must still evaluate; if not, put the old file back.
        if let Err(e) = Session::load(opts) {
            match &old_text {
                Some(t) => {
                    let _ = crate::store::local::write_atomic(&dir, &own_path, t.as_bytes());
                }
                None => {
                    let _ = std::fs::remove_file(&own_path);
                }
            }
            let mut err = Error::internal(format!(
                "the rules refine generated for {own} do not evaluate: {}",
                e.message
            ))
            .hint("nothing was kept; please report this with the requirements file");
            err.rendered = e.rendered;
            err.locations = e.locations;
            return Err(err);
        }
    }
    let floors = floors(&outcome, &session);
    Ok(ImportReport {
        set: Label::new(Kind::Set, name.as_str()),
        name,
        file: own,
        changed,
        outcome,
        floors,
    })
}
