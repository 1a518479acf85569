//! One function per verb; the only place that wires the parts together.
//!
//! A [`Session`] is a loaded workspace: its files read into a salsa
//! database, `WORKSPACE.toml` evaluated, every rule checked. Verbs take a
//! session and return data for the printer; they never print.

pub mod build;
pub mod doctor;
pub mod explain;
pub mod hints;
pub mod history;
pub mod import;
pub mod index;
pub mod init;
pub mod key;
pub mod pack;
pub mod plan;
pub mod profile;
pub mod query;
pub mod remote;
pub mod share;
pub mod snapshot;
pub mod store;
pub mod test;
pub mod verify;

use crate::diag::{Diagnostic, render_all};
use crate::error::{Error, ErrorClass, Result};
use crate::eval::{
    Database, Graph, Overrides, SourceFile, Workspace, load_graph, resolve_in,
    workspace_diagnostics,
};
use crate::platform::{Arch, Platform};
use crate::rules::config::{BaseMode, CONFIG_FILE, Config};
use crate::rules::{Label, Pattern};
use crate::store::LocalStore;
use crate::workspace::Files;
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
            // Beside the time, the resident memory after the phase.
            let rss_mb = std::fs::read_to_string("/proc/self/statm")
                .ok()
                .and_then(|t| t.split_whitespace().nth(1)?.parse::<u64>().ok())
                .map_or(0, |pages| pages * 4096 / 1_000_000);
            eprintln!(
                "timing: {phase:<24} {:>8.1} ms  {rss_mb:>5} MB resident",
                self.last.elapsed().as_secs_f64() * 1000.0
            );
        }
        self.last = std::time::Instant::now();
    }

    /// Say the process's peak resident memory so far (`VmHWM`).
    pub fn peak_memory(&self) {
        if !self.on {
            return;
        }
        let peak = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_string()))
            });
        eprintln!(
            "timing: peak memory {}",
            peak.as_deref().unwrap_or("unknown")
        );
        // What the run needed of the evaluation cache beyond a hit's
        // fields (a no-op needs nothing: tests/engine.rs).
        eprintln!(
            "timing: derivations decoded {}",
            crate::eval::details_decoded()
        );
    }
}

/// Options every verb shares.
#[derive(Clone, Debug, Default)]
pub struct GlobalOpts {
    pub workspace: Option<PathBuf>,
    pub store: Option<PathBuf>,
    pub arch: Option<String>,
    pub policy: Option<String>,
    pub executor: ExecutorKind,
    /// `--toolchain`: cross or emulated, overriding [platform] toolchain.
    pub toolchain: Option<String>,
    /// `--frontend-python`: host or target, overriding [platform]
    /// frontend_python.
    pub frontend_python: Option<String>,
    /// Public keys whose pulled results are used, beside `[store] trusted_keys`.
    pub trusted_keys: Vec<String>,
    /// The key pushes are signed with (default: `<store>/keys/signing.key`).
    pub signing_key: Option<PathBuf>,
    /// A rule file to leave out (`refine import` regenerating its own file,
    /// which may not evaluate any more).
    pub without: Option<String>,
    /// The verb will run the graph (build, plan): read the store's
    /// indexes ahead, while the evaluation loads ([`crate::store::readahead`]).
    pub read_ahead: bool,
}

pub struct Session {
    pub root: PathBuf,
    /// The workspace's files, and the built-in base behind them.
    pub sources: Files,
    /// What runs build steps (podman, but for refine's own tests).
    pub executor: ExecutorKind,
    pub trusted_keys: Vec<String>,
    pub signing_key: Option<PathBuf>,
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
    sources: &Files,
) -> Evaluated {
    let db = Database::new(sources.clone());
    let config = SourceFile::new(&db, CONFIG_FILE.to_string(), config_text.to_string());
    let inputs: Vec<SourceFile> = files
        .iter()
        .map(|(p, t)| SourceFile::new(&db, p.clone(), t.clone()))
        .collect();
    let ws = Workspace::new(&db, config, inputs, overrides.clone());
    Evaluated { db, ws }
}

/// What a session is evaluated from: the workspace's files as read, and
/// the flags that change what they mean.
struct Inputs {
    root: PathBuf,
    sources: Files,
    config_text: String,
    files: Vec<(String, String)>,
    overrides: Overrides,
    /// The overrides as the evaluation cache names them.
    ovr: String,
    fingerprint: String,
}

impl Inputs {
    fn read(opts: &GlobalOpts) -> Result<Inputs> {
        let root = crate::workspace::locate(opts.workspace.as_deref())?;
        let overrides = overrides(opts)?;
        let config_text = crate::workspace::read(&root, CONFIG_FILE)?;
        // The built-in base stands behind the workspace's own files unless
        // it says `base = "none"` (a config that does not parse keeps it:
        // its errors are reported either way).
        let builtin = crate::rules::config::parse_config(&config_text)
            .map_or(true, |c| c.base == BaseMode::Builtin);
        let sources = Files::new(&root, builtin);
        let mut files = Vec::new();
        for rel in crate::workspace::rule_files(&root)? {
            if opts.without.as_deref() == Some(rel.as_str()) {
                continue;
            }
            let text = crate::workspace::read(&root, &rel)?;
            files.push((rel, text));
        }
        if builtin {
            files.extend(crate::workspace::base::Base::get().rule_files());
        }
        let ovr = format!("{overrides:?}");
        let fingerprint = snapshot::fingerprint(&config_text, &files, &ovr);
        Ok(Inputs {
            root,
            sources,
            config_text,
            files,
            overrides,
            ovr,
            fingerprint,
        })
    }
}

/// The flags that override `[platform]`, checked.
fn overrides(opts: &GlobalOpts) -> Result<Overrides> {
    let mut overrides = Overrides::default();
    if let Some(a) = &opts.arch {
        overrides.arch = Some(Arch::parse(a).ok_or_else(|| {
            let d = crate::platform::arch_error(a);
            Error::user(format!("--arch: {}", d.message)).hint(d.hint.unwrap_or_default())
        })?);
    }
    if let Some(p) = &opts.policy {
        crate::platform::check_policy(p).map_err(|d| {
            Error::user(format!("--platform: {}", d.message)).hint(d.hint.unwrap_or_default())
        })?;
    }
    overrides.policy = opts.policy.clone();
    if let Some(t) = &opts.toolchain {
        overrides.toolchain = Some(crate::platform::Toolchain::parse(t).ok_or_else(|| {
            Error::user(format!("--toolchain: unknown toolchain `{t}`"))
                .hint("use cross (the host's compilers for the target) or emulated")
        })?);
    }
    if let Some(f) = &opts.frontend_python {
        overrides.frontend_python =
            Some(crate::platform::FrontendPython::parse(f).ok_or_else(|| {
                Error::user(format!("--frontend-python: unknown value `{f}`"))
                    .hint("use host (the host's Python set up for the target) or target")
            })?);
    }
    Ok(overrides)
}

/// What an evaluation made of the inputs: reused from the evaluation
/// cache, or computed by salsa (which then stays at hand).
struct Loaded {
    config: Config,
    platform: Platform,
    store_path: PathBuf,
    labels: Vec<Label>,
    full: Graph,
    eval: std::sync::OnceLock<Evaluated>,
    from_snapshot: bool,
}

impl Loaded {
    /// The last clean evaluation of exactly these inputs, if the cache
    /// holds it.
    fn reuse(i: &Inputs, opts: &GlobalOpts) -> Result<Option<Loaded>> {
        let Ok(config) = crate::rules::config::parse_config(&i.config_text) else {
            return Ok(None);
        };
        let store_path = store_path(opts.store.as_deref(), &config, &i.root)?;
        if opts.read_ahead {
            crate::store::readahead::store(&store_path);
        }
        let snap_path = snapshot::path(&store_path, &i.root, &i.ovr);
        let Some(snap) = snapshot::load(&snap_path, &i.fingerprint, &i.sources) else {
            return Ok(None);
        };
        let platform = i.overrides.apply(config.platform.clone());
        let snapshot::Loaded {
            labels,
            graph: full,
            ..
        } = snap;
        Ok(Some(Loaded {
            config,
            platform,
            store_path,
            labels,
            full,
            eval: std::sync::OnceLock::new(),
            from_snapshot: true,
        }))
    }

    /// Evaluate with salsa; a clean evaluation is saved for the next run.
    fn fresh(i: &Inputs, opts: &GlobalOpts, t: &mut Timings) -> Result<Loaded> {
        let ev = evaluate(&i.config_text, &i.files, &i.overrides, &i.sources);
        warm_up(&ev.db, ev.ws);
        t.mark("evaluate (parallel)");
        let diags: Vec<Diagnostic> = workspace_diagnostics(&ev.db, ev.ws)
            .iter()
            .filter(|d| d.is_error())
            .cloned()
            .collect();
        t.mark("check workspace");
        if !diags.is_empty() {
            return Err(rule_errors(&i.sources, &diags));
        }
        let config = match crate::eval::config(&ev.db, ev.ws) {
            Ok(c) => c.clone(),
            Err(d) => return Err(rule_errors(&i.sources, d)),
        };
        let platform = crate::eval::platform(&ev.db, ev.ws)
            .clone()
            .ok_or_else(|| Error::internal("no platform after a clean evaluation"))?;
        let store_path = store_path(opts.store.as_deref(), &config, &i.root)?;
        let labels = crate::eval::index(&ev.db, ev.ws).labels.clone();
        let mut full =
            load_graph(&ev.db, ev.ws, &labels).map_err(|d| rule_errors(&i.sources, &d))?;
        t.mark("load graph");
        let aux = ev
            .db
            .aux_files()
            .into_iter()
            .map(|f| (f.path(&ev.db).clone(), f.digest(&ev.db).clone()))
            .collect();
        if let Some(bytes) = snapshot::encode(i.fingerprint.clone(), aux, &labels, &mut full) {
            snapshot::save(&snapshot::path(&store_path, &i.root, &i.ovr), &bytes);
        }
        t.mark("save evaluation");
        let eval = std::sync::OnceLock::new();
        let _ = eval.set(ev);
        Ok(Loaded {
            config,
            platform,
            store_path,
            labels,
            full,
            eval,
            from_snapshot: false,
        })
    }
}

impl Session {
    pub fn load(opts: &GlobalOpts) -> Result<Session> {
        let mut t = Timings::start();
        let i = Inputs::read(opts)?;
        t.mark("read rule files");
        let l = match Loaded::reuse(&i, opts)? {
            Some(l) => {
                t.mark("reuse evaluation");
                l
            }
            None => Loaded::fresh(&i, opts, &mut t)?,
        };
        Ok(Session {
            root: i.root,
            sources: i.sources,
            executor: opts.executor,
            trusted_keys: opts.trusted_keys.clone(),
            signing_key: opts.signing_key.clone(),
            config: l.config,
            platform: l.platform,
            store_path: l.store_path,
            config_text: i.config_text,
            files: i.files,
            overrides: i.overrides,
            eval: l.eval,
            labels: l.labels,
            full: l.full,
            from_snapshot: l.from_snapshot,
        })
    }

    /// The salsa database of this workspace (made on first use).
    pub fn evaluated(&self) -> &Evaluated {
        self.eval.get_or_init(|| {
            evaluate(
                &self.config_text,
                &self.files,
                &self.overrides,
                &self.sources,
            )
        })
    }

    pub fn open_store(&self) -> Result<LocalStore> {
        Ok(LocalStore::open(&self.store_path)?)
    }

    /// The graph of every target of the workspace.
    pub fn all(&self) -> &Graph {
        &self.full
    }

    /// Where the target in use under `label` is declared: `file:line` for
    /// the workspace's, `builtin:file:line` for the built-in base's.
    pub fn origin(&self, label: &Label) -> Option<String> {
        let n = self.full.get(label)?;
        let text = self.sources.read_text(&n.decl().file)?;
        let (line, _) = crate::diag::line_col(&text, n.decl().span.start);
        Some(format!("{}:{line}", n.decl().file))
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
        let own = |l: &Label| self.full.get(l).is_none_or(|n| !n.is_builtin());
        let labels = resolve_in(&self.labels, &parsed, &own).map_err(|d| {
            let mut e = Error::user(match d.as_slice() {
                [one] => one.message.clone(),
                _ => format!("{} targets name nothing", d.len()),
            });
            e.hint = d.iter().find_map(|x| x.hint.clone());
            if d.len() > 1 {
                e.rendered = Some(render_diags(&self.sources, &d));
            }
            e.locations = locations(&self.sources, &d);
            e
        })?;
        Ok(self.expand_sets(labels))
    }

    /// A set stands for its members (sets of sets too), in order.
    pub fn expand_sets(&self, labels: Vec<Label>) -> Vec<Label> {
        let mut out: Vec<Label> = Vec::with_capacity(labels.len());
        let mut seen: rustc_hash::FxHashSet<Label> = Default::default();
        seen.reserve(labels.len());
        let mut work: Vec<Label> = labels.into_iter().rev().collect();
        while let Some(l) = work.pop() {
            if !seen.insert(l.clone()) {
                continue;
            }
            match self.full.get(&l) {
                Some(n) if l.kind == crate::rules::Kind::Set => {
                    work.extend(n.derivation().inputs.members.iter().rev().cloned());
                }
                _ => out.push(l),
            }
        }
        out
    }

    /// The graph of `labels` and everything they need.
    pub fn graph(&self, labels: &[Label]) -> Result<Graph> {
        Ok(self.full.subgraph(labels))
    }

    pub fn render(&self, diags: &[Diagnostic]) -> String {
        render_diags(&self.sources, diags)
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

pub fn render_diags(sources: &Files, diags: &[Diagnostic]) -> String {
    render_all(diags, &|f| sources.read_text(f))
}

/// The errors among `diags` that have a place, as file, line and column
/// (what `--json` carries, so a tool need not parse the rendering).
pub fn locations(sources: &Files, diags: &[Diagnostic]) -> Vec<crate::error::Location> {
    let mut texts: std::collections::HashMap<&str, Option<String>> = Default::default();
    diags
        .iter()
        .filter(|d| d.is_error())
        .filter_map(|d| {
            let loc = d.loc.as_ref()?;
            let text = texts
                .entry(&loc.file)
                .or_insert_with(|| sources.read_text(&loc.file));
            let (line, col) = text
                .as_deref()
                .map_or((0, 0), |t| crate::diag::line_col(t, loc.span.start));
            Some(crate::error::Location {
                file: loc.file.to_string(),
                line,
                col,
                message: d.message.clone(),
                hint: d.hint.clone(),
            })
        })
        .collect()
}

fn rule_errors(root: &Files, diags: &[Diagnostic]) -> Error {
    let n = diags.iter().filter(|d| d.is_error()).count();
    let mut e = Error::new(
        ErrorClass::User,
        format!("{n} error{} in the rules", if n == 1 { "" } else { "s" }),
    );
    e.rendered = Some(render_diags(root, diags));
    e.locations = locations(root, diags);
    e
}

/// `--store` > `REFINE_STORE` > `[store] path` > `$XDG_CACHE_HOME/refine` > `~/.cache/refine`.
fn store_path(flag: Option<&Path>, config: &Config, root: &Path) -> Result<PathBuf> {
    if flag.is_none()
        && std::env::var_os("REFINE_STORE").is_none_or(|p| p.is_empty())
        && let Some(p) = &config.store.path
    {
        return Ok(match p.strip_prefix("~/") {
            Some(rest) => home()?.join(rest),
            None => root.join(p),
        });
    }
    default_store_path(flag)
}

fn home() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .ok_or_else(|| Error::env("HOME is not set").hint("pass --store DIR"))
}

/// The store whose history to read: the workspace's if there is one,
/// else the default.
pub fn history_store(opts: &GlobalOpts) -> Result<PathBuf> {
    match crate::workspace::locate(opts.workspace.as_deref()) {
        Ok(root) => {
            let text = crate::workspace::read(&root, CONFIG_FILE)?;
            match crate::rules::config::parse_config(&text) {
                Ok(c) => store_path(opts.store.as_deref(), &c, &root),
                Err(_) => default_store_path(opts.store.as_deref()),
            }
        }
        Err(_) => default_store_path(opts.store.as_deref()),
    }
}

/// The store without a workspace: `--store` > `REFINE_STORE` >
/// `$XDG_CACHE_HOME/refine` > `~/.cache/refine`.
pub fn default_store_path(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
    }
    if let Some(p) = std::env::var_os("REFINE_STORE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
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
    /// Records steps and writes plausible outputs; only in builds of
    /// refine's own tests and benchmarks (the `fake-executor` feature).
    #[cfg(feature = "fake-executor")]
    Fake,
}

impl ExecutorKind {
    /// The name results are recorded with (see `ActionResult::executor`).
    pub fn name(self) -> &'static str {
        match self {
            ExecutorKind::Podman => "podman",
            #[cfg(feature = "fake-executor")]
            ExecutorKind::Fake => "fake",
        }
    }

    pub fn parse(s: &str) -> Option<ExecutorKind> {
        match s {
            "podman" => Some(ExecutorKind::Podman),
            #[cfg(feature = "fake-executor")]
            "fake" => Some(ExecutorKind::Fake),
            _ => None,
        }
    }
}

pub fn executor(kind: ExecutorKind) -> Box<dyn crate::exec::Executor> {
    match kind {
        ExecutorKind::Podman => Box::new(crate::exec::podman::Podman::default()),
        #[cfg(feature = "fake-executor")]
        ExecutorKind::Fake => Box::new(crate::exec::fake::Fake::default()),
    }
}
