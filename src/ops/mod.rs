//! One function per verb; the only place that wires the parts together.
//!
//! A [`Session`] is a loaded workspace: its files read into a salsa
//! database, `WORKSPACE.toml` evaluated, every rule checked. Verbs take a
//! session and return data for the printer; they never print.

pub mod build;
pub mod explain;
pub mod plan;
pub mod query;
pub mod remote;
pub mod share;
pub mod snapshot;
pub mod verify;

use crate::diag::{Diagnostic, render_all};
use crate::error::{Error, ErrorClass, Result};
use crate::eval::{
    Database, Graph, Overrides, SourceFile, Workspace, load_graph, resolve_in,
    workspace_diagnostics,
};
use crate::rules::config::{CONFIG_FILE, Config};
use crate::rules::{Arch, Label, Pattern, Platform};
use crate::store::LocalStore;
use std::path::{Path, PathBuf};

/// Phase timings on stderr when `REFINE_TIMINGS` is set (for profiling a
/// large workspace; like cargo's `--timings`, without the HTML).
pub struct Timings {
    on: bool,
    last: std::time::Instant,
}

impl Timings {
    pub fn start() -> Timings {
        Timings {
            on: std::env::var_os("REFINE_TIMINGS").is_some(),
            last: std::time::Instant::now(),
        }
    }

    pub fn mark(&mut self, phase: &str) {
        if self.on {
            eprintln!(
                "timing: {phase:<24} {:>8.1} ms",
                self.last.elapsed().as_secs_f64() * 1000.0
            );
        }
        self.last = std::time::Instant::now();
    }
}

/// Options every verb shares.
#[derive(Clone, Debug, Default)]
pub struct GlobalOpts {
    pub workspace: Option<PathBuf>,
    pub store: Option<PathBuf>,
    pub arch: Option<String>,
    pub policy: Option<String>,
}

pub struct Session {
    pub root: PathBuf,
    pub config: Config,
    pub platform: Platform,
    pub store_path: PathBuf,
    config_text: String,
    files: Vec<(String, String)>,
    overrides: Overrides,
    /// The salsa database, made when a verb needs it (and always when the
    /// evaluation cache could not be used).
    eval: std::sync::OnceLock<Evaluated>,
    /// Every label, sorted.
    labels: Vec<Label>,
    /// The graph of every label.
    full: Graph,
    /// Whether this session reused a snapshot (see [`snapshot`]).
    pub from_snapshot: bool,
}

/// A workspace evaluated by salsa.
pub struct Evaluated {
    pub db: Database,
    pub ws: Workspace,
}

fn evaluate(
    config_text: &str,
    files: &[(String, String)],
    overrides: &Overrides,
    root: &Path,
) -> Evaluated {
    let db = Database::new(root);
    let config = SourceFile::new(&db, CONFIG_FILE.to_string(), config_text.to_string());
    let inputs: Vec<SourceFile> = files
        .iter()
        .map(|(p, t)| SourceFile::new(&db, p.clone(), t.clone()))
        .collect();
    let ws = Workspace::new(&db, config, inputs, overrides.clone());
    Evaluated { db, ws }
}

impl Session {
    pub fn load(opts: &GlobalOpts) -> Result<Session> {
        let mut t = Timings::start();
        let root = crate::workspace::locate(opts.workspace.as_deref())?;
        let mut overrides = Overrides::default();
        if let Some(a) = &opts.arch {
            overrides.arch = Some(Arch::parse(a).ok_or_else(|| {
                let d = crate::rules::config::arch_error(a);
                Error::user(format!("--arch: {}", d.message)).hint(d.hint.unwrap_or_default())
            })?);
        }
        overrides.policy = opts.policy.clone();
        let config_text = crate::workspace::read(&root, CONFIG_FILE)?;
        let mut files = Vec::new();
        for rel in crate::workspace::rule_files(&root)? {
            let text = crate::workspace::read(&root, &rel)?;
            files.push((rel, text));
        }
        t.mark("read rule files");
        let ovr = format!("{overrides:?}");
        let fingerprint = snapshot::fingerprint(&config_text, &files, &ovr);

        // The evaluation cache: reuse the last clean evaluation of exactly
        // these inputs.
        if let Ok(config) = crate::rules::config::parse_config(&config_text) {
            let store_path = store_path(opts.store.as_deref(), &config, &root)?;
            let snap_path = snapshot::path(&store_path, &root, &ovr);
            if let Some(snap) = snapshot::load(&snap_path, &fingerprint, &root) {
                let mut platform = config.platform.clone();
                if let Some(a) = overrides.arch {
                    platform.arch = a;
                }
                if let Some(p) = &overrides.policy {
                    platform.policy = p.clone();
                }
                let (labels, full) = snap.into_parts();
                t.mark("reuse evaluation");
                return Ok(Session {
                    root,
                    config,
                    platform,
                    store_path,
                    config_text,
                    files,
                    overrides,
                    eval: std::sync::OnceLock::new(),
                    labels,
                    full,
                    from_snapshot: true,
                });
            }
        }

        let ev = evaluate(&config_text, &files, &overrides, &root);
        warm_up(&ev.db, ev.ws);
        t.mark("evaluate (parallel)");
        let diags: Vec<Diagnostic> = workspace_diagnostics(&ev.db, ev.ws)
            .iter()
            .filter(|d| d.is_error())
            .cloned()
            .collect();
        t.mark("check workspace");
        if !diags.is_empty() {
            return Err(rule_errors(&root, &diags));
        }
        let config = match crate::eval::config(&ev.db, ev.ws) {
            Ok(c) => c.clone(),
            Err(d) => return Err(rule_errors(&root, d)),
        };
        let platform = crate::eval::platform(&ev.db, ev.ws)
            .clone()
            .ok_or_else(|| Error::internal("no platform after a clean evaluation"))?;
        let store_path = store_path(opts.store.as_deref(), &config, &root)?;
        let labels = crate::eval::index(&ev.db, ev.ws).labels.clone();
        let full = load_graph(&ev.db, ev.ws, &labels).map_err(|d| rule_errors(&root, &d))?;
        t.mark("load graph");
        let aux = ev
            .db
            .aux_files()
            .into_iter()
            .map(|f| (f.path(&ev.db).clone(), f.digest(&ev.db).clone()))
            .collect();
        let snap = snapshot::Snapshot::new(fingerprint, aux, labels, &full);
        snapshot::save(&snapshot::path(&store_path, &root, &ovr), &snap);
        let (labels, full) = snap.into_parts();
        t.mark("save evaluation");
        let cell = std::sync::OnceLock::new();
        let _ = cell.set(ev);
        Ok(Session {
            root,
            config,
            platform,
            store_path,
            config_text,
            files,
            overrides,
            eval: cell,
            labels,
            full,
            from_snapshot: false,
        })
    }

    /// The salsa database of this workspace (made on first use).
    pub fn evaluated(&self) -> &Evaluated {
        self.eval
            .get_or_init(|| evaluate(&self.config_text, &self.files, &self.overrides, &self.root))
    }

    pub fn open_store(&self) -> Result<LocalStore> {
        Ok(LocalStore::open(&self.store_path)?)
    }

    /// Every label of the workspace, sorted.
    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// Labels for command-line patterns; none means `[defaults] targets`.
    pub fn resolve(&self, patterns: &[String]) -> Result<Vec<Label>> {
        let texts: Vec<String> = if patterns.is_empty() {
            if self.config.defaults.targets.is_empty() {
                return Err(Error::user("no targets given and WORKSPACE.toml has no default targets")
                    .hint("name targets (`refine build //wheels:six`, `//...`) or set `targets` in [defaults]"));
            }
            self.config
                .defaults
                .targets
                .iter()
                .map(|t| t.value.clone())
                .collect()
        } else {
            patterns.to_vec()
        };
        let mut parsed = Vec::new();
        for t in &texts {
            let p: Pattern = t.parse().map_err(|e: crate::rules::label::LabelError| {
                Error::user(format!("{e}")).hint(e.hint())
            })?;
            parsed.push(p);
        }
        resolve_in(&self.labels, &parsed).map_err(|d| {
            let mut e = Error::user(match d.as_slice() {
                [one] => one.message.clone(),
                _ => format!("{} targets name nothing", d.len()),
            });
            e.hint = d.iter().find_map(|x| x.hint.clone());
            if d.len() > 1 {
                e.rendered = Some(render_diags(&self.root, &d));
            }
            e
        })
    }

    /// The graph of `labels` and everything they need.
    pub fn graph(&self, labels: &[Label]) -> Result<Graph> {
        Ok(self.full.subgraph(labels))
    }

    pub fn render(&self, diags: &[Diagnostic]) -> String {
        render_diags(&self.root, diags)
    }
}

/// Evaluate every file and derivation on all cores before the (sequential)
/// workspace check reads them from the memo tables. Salsa handles are
/// cloned per thread; nothing is written while they run.
fn warm_up(db: &Database, ws: Workspace) {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if threads < 2 {
        return;
    }
    let files: Vec<SourceFile> = ws.files(db).clone();
    std::thread::scope(|s| {
        for chunk in files.chunks(files.len().div_ceil(threads).max(1)) {
            let db = db.clone();
            s.spawn(move || {
                for f in chunk {
                    crate::eval::lower_file(&db, *f);
                }
            });
        }
    });
    let labels = crate::eval::index(db, ws).labels.clone();
    std::thread::scope(|s| {
        for chunk in labels.chunks(labels.len().div_ceil(threads).max(1)) {
            let db = db.clone();
            s.spawn(move || {
                for l in chunk {
                    let _ =
                        crate::eval::derivation(&db, ws, crate::eval::LabelId::new(&db, l.clone()));
                }
            });
        }
    });
}

impl Session {
    /// End a one-shot command without freeing the evaluation's memory: the
    /// process exits next, and dropping a large salsa database costs time.
    pub fn leak(self) {
        std::mem::forget(self);
    }
}

pub fn render_diags(root: &Path, diags: &[Diagnostic]) -> String {
    render_all(diags, &|f| std::fs::read_to_string(root.join(f)).ok())
}

fn rule_errors(root: &Path, diags: &[Diagnostic]) -> Error {
    let n = diags.iter().filter(|d| d.is_error()).count();
    let mut e = Error::new(
        ErrorClass::User,
        format!("{n} error{} in the rules", if n == 1 { "" } else { "s" }),
    );
    e.rendered = Some(render_diags(root, diags));
    e
}

/// `--store` > `REFINE_STORE` > `[store] path` > `$XDG_CACHE_HOME/refine` > `~/.cache/refine`.
fn store_path(flag: Option<&Path>, config: &Config, root: &Path) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
    }
    if let Some(p) = std::env::var_os("REFINE_STORE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let home = || {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .ok_or_else(|| Error::env("HOME is not set").hint("pass --store DIR"))
    };
    if let Some(p) = &config.store.path {
        return Ok(match p.strip_prefix("~/") {
            Some(rest) => home()?.join(rest),
            None => root.join(p),
        });
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(x).join("refine"));
    }
    Ok(home()?.join(".cache/refine"))
}

/// Which executor runs build steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ExecutorKind {
    #[default]
    Podman,
    /// Records steps and writes plausible outputs; for tests and benchmarks.
    Fake,
}

pub fn executor(kind: ExecutorKind) -> Box<dyn crate::exec::Executor> {
    match kind {
        ExecutorKind::Podman => Box::new(crate::exec::podman::Podman::default()),
        ExecutorKind::Fake => Box::new(crate::exec::fake::Fake::default()),
    }
}
