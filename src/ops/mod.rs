//! One function per verb; the only place that wires the parts together.
//!
//! A [`Session`] is a loaded workspace: its files read into a salsa
//! database, `WORKSPACE.toml` evaluated, every rule checked. Verbs take a
//! session and return data for the printer; they never print.

pub mod build;
pub mod plan;
pub mod remote;

use crate::diag::{Diagnostic, render_all};
use crate::error::{Error, ErrorClass, Result};
use crate::eval::{
    Database, Graph, Overrides, SourceFile, Workspace, load_graph, resolve_patterns,
    workspace_diagnostics,
};
use crate::rules::config::{CONFIG_FILE, Config};
use crate::rules::{Arch, Label, Pattern, Platform};
use crate::store::LocalStore;
use std::path::{Path, PathBuf};

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
    pub db: Database,
    pub ws: Workspace,
    pub config: Config,
    pub platform: Platform,
    pub store_path: PathBuf,
}

impl Session {
    pub fn load(opts: &GlobalOpts) -> Result<Session> {
        let root = crate::workspace::locate(opts.workspace.as_deref())?;
        let db = Database::new(&root);
        let mut overrides = Overrides::default();
        if let Some(a) = &opts.arch {
            overrides.arch = Some(Arch::parse(a).ok_or_else(|| {
                let d = crate::rules::config::arch_error(a);
                Error::user(format!("--arch: {}", d.message)).hint(d.hint.unwrap_or_default())
            })?);
        }
        overrides.policy = opts.policy.clone();
        let config_text = crate::workspace::read(&root, CONFIG_FILE)?;
        let config = SourceFile::new(&db, CONFIG_FILE.to_string(), config_text);
        let mut files = Vec::new();
        for rel in crate::workspace::rule_files(&root)? {
            let text = crate::workspace::read(&root, &rel)?;
            files.push(SourceFile::new(&db, rel, text));
        }
        let ws = Workspace::new(&db, config, files, overrides);
        let diags: Vec<Diagnostic> = workspace_diagnostics(&db, ws)
            .iter()
            .filter(|d| d.is_error())
            .cloned()
            .collect();
        if !diags.is_empty() {
            return Err(rule_errors(&root, &diags));
        }
        let config = match crate::eval::config(&db, ws) {
            Ok(c) => c.clone(),
            Err(d) => return Err(rule_errors(&root, d)),
        };
        let platform = crate::eval::platform(&db, ws)
            .clone()
            .ok_or_else(|| Error::internal("no platform after a clean evaluation"))?;
        let store_path = store_path(opts.store.as_deref(), &config, &root)?;
        Ok(Session {
            root,
            db,
            ws,
            config,
            platform,
            store_path,
        })
    }

    pub fn open_store(&self) -> Result<LocalStore> {
        Ok(LocalStore::open(&self.store_path)?)
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
        resolve_patterns(&self.db, self.ws, &parsed).map_err(|d| {
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

    pub fn graph(&self, labels: &[Label]) -> Result<Graph> {
        load_graph(&self.db, self.ws, labels).map_err(|d| rule_errors(&self.root, &d))
    }

    pub fn render(&self, diags: &[Diagnostic]) -> String {
        render_diags(&self.root, diags)
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
