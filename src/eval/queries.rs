//! The tracked queries, from file text to derivations.
//!
//! ```text
//! parse_file ─► lower_file ─► declared ─► index ─┐
//!                    │                           ├─► target ─► derivation
//! config ─► platform │         catalog ──────────┘       pack_deps ┘
//! ```
//!
//! Each query is small on purpose: editing one rule re-runs `parse_file`
//! and `lower_file` for its file and `target`/`derivation` for the targets
//! that file declares; everything else is reused, and derivations that come
//! out equal stop the change from travelling further (backdating).
//!
//! What a derivation is made of is decided in [`super::derive`], a plain
//! function; `derivation` here only hands it the database as its `Rules`.

use super::db::{Db, SourceFile, Workspace};
use super::derive::{Rules, derive};
use super::drv::Derivation;
use crate::diag::Diagnostic;
use crate::platform::*;
use crate::rules::config::{BaseMode, Config, parse_config, parse_config_in};
use crate::rules::lower::LoweredFile;
use crate::rules::model::WithoutLocs;
use crate::rules::toml::Node;
use crate::rules::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

#[salsa::interned(debug)]
pub struct LabelId<'db> {
    #[returns(ref)]
    pub label: Label,
}

#[salsa::tracked(returns(ref))]
pub fn config(db: &dyn Db, ws: Workspace) -> Result<Config, Vec<Diagnostic>> {
    let file = ws.config(db);
    db.log_query("config", file.path(db));
    let cfg = parse_config(file.text(db))?;
    if cfg.base != BaseMode::Builtin {
        return Ok(cfg);
    }
    // The base's [defaults] fill in what this workspace leaves out.
    let base_text = crate::workspace::base::Base::get().config_text();
    match parse_config_in("builtin:WORKSPACE.toml", &base_text) {
        Ok(base) => Ok(cfg.with_base_defaults(&base)),
        Err(_) => Ok(cfg),
    }
}

/// The platform of this run: `WORKSPACE.toml` with command-line overrides.
#[salsa::tracked(returns(ref))]
pub fn platform(db: &dyn Db, ws: Workspace) -> Option<Platform> {
    db.log_query("platform", &"workspace");
    let cfg = config(db, ws).as_ref().ok()?;
    Some(ws.overrides(db).apply(cfg.platform.clone()))
}

#[salsa::tracked(returns(ref))]
pub fn parse_file(db: &dyn Db, file: SourceFile) -> (Option<Node>, Vec<Diagnostic>) {
    db.log_query("parse_file", file.path(db));
    crate::rules::toml::parse(file.path(db), file.text(db))
}

#[salsa::tracked(returns(ref))]
pub fn lower_file(db: &dyn Db, file: SourceFile) -> LoweredFile {
    db.log_query("lower_file", file.path(db));
    let (node, diags) = parse_file(db, file);
    match node {
        Some(n) => crate::rules::lower::lower_file(file.path(db), n),
        None => LoweredFile {
            diags: diags.clone(),
            ..LoweredFile::default()
        },
    }
}

/// The labels a file declares: changes only when a target is added,
/// removed or renamed, so the index survives every other edit.
#[salsa::tracked(returns(ref))]
pub fn declared(db: &dyn Db, file: SourceFile) -> Vec<Label> {
    db.log_query("declared", file.path(db));
    lower_file(db, file)
        .targets
        .iter()
        .map(|t| t.label.clone())
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Index {
    /// Label → (file, position in the file's target list).
    pub map: HashMap<Label, (SourceFile, usize)>,
    /// Labels declared more than once, with every declaring file.
    pub duplicates: Vec<(Label, Vec<SourceFile>)>,
    /// Every label, sorted.
    pub labels: Vec<Label>,
}

/// Whether a rule file is the built-in base's.
pub fn is_builtin(path: &str) -> bool {
    path.starts_with(crate::workspace::base::PREFIX)
}

/// Every label and where it is declared. A label the workspace declares
/// and the built-in base too is the workspace's (it replaces the base's);
/// declared twice within the workspace (or within the base) it is an error.
/// Workspace files come before base files in `ws.files`.
#[salsa::tracked(returns(ref))]
pub fn index(db: &dyn Db, ws: Workspace) -> Index {
    db.log_query("index", &"workspace");
    let mut idx = Index::default();
    let mut seen: HashMap<Label, Vec<SourceFile>> = HashMap::new();
    for &file in ws.files(db) {
        for (i, label) in declared(db, file).iter().enumerate() {
            seen.entry(label.clone()).or_default().push(file);
            idx.map.entry(label.clone()).or_insert((file, i));
        }
    }
    let mut dups: Vec<(Label, Vec<SourceFile>)> = seen
        .into_iter()
        .filter_map(|(l, files)| {
            let (base, own): (Vec<SourceFile>, Vec<SourceFile>) =
                files.into_iter().partition(|f| is_builtin(f.path(db)));
            match (own.len(), base.len()) {
                (0, n) if n > 1 => Some((l, base)),
                (n, _) if n > 1 => Some((l, own)),
                _ => None,
            }
        })
        .collect();
    dups.sort_by(|a, b| a.0.cmp(&b.0));
    idx.duplicates = dups;
    idx.labels = idx.map.keys().cloned().collect();
    idx.labels.sort();
    idx
}

/// `[catalog]`: normalized package name → packs. At most one file may hold it.
#[salsa::tracked(returns(ref))]
pub fn catalog(db: &dyn Db, ws: Workspace) -> BTreeMap<String, Vec<Label>> {
    db.log_query("catalog", &"workspace");
    let mut out = BTreeMap::new();
    // The base's catalog first: the workspace's entries replace its.
    let (base, own): (Vec<SourceFile>, Vec<SourceFile>) =
        ws.files(db).iter().partition(|f| is_builtin(f.path(db)));
    for file in base.into_iter().chain(own) {
        for e in &lower_file(db, file).catalog {
            out.insert(
                e.package.clone(),
                e.packs.iter().map(|p| p.value.clone()).collect(),
            );
        }
    }
    out
}

/// `[catalog]`'s floors: normalized package name → the `policy` its
/// imported wheel rules get (the import writes it into the rule; the
/// evaluation of a rule never reads it from here).
pub fn catalog_policies(db: &dyn Db, ws: Workspace) -> BTreeMap<String, String> {
    catalog_extras(db, ws, |e| e.policy.clone())
}

/// `[catalog]`'s environments: normalized package name → the `env` its
/// imported wheel rules get (written into the rule by the import, as
/// `policy` is).
pub fn catalog_env(db: &dyn Db, ws: Workspace) -> BTreeMap<String, BTreeMap<String, String>> {
    catalog_extras(db, ws, |e| Some(e.env.clone()).filter(|m| !m.is_empty()))
}

/// `[catalog]`'s PEP 517 config settings: normalized package name → the
/// `config_settings` its imported wheel rules get (written by the import).
pub fn catalog_config_settings(
    db: &dyn Db,
    ws: Workspace,
) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    catalog_extras(db, ws, |e| {
        Some(e.config_settings.clone()).filter(|m| !m.is_empty())
    })
}

fn catalog_extras<T>(
    db: &dyn Db,
    ws: Workspace,
    of: impl Fn(&crate::rules::model::CatalogEntry) -> Option<T>,
) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    let (base, own): (Vec<SourceFile>, Vec<SourceFile>) =
        ws.files(db).iter().partition(|f| is_builtin(f.path(db)));
    for file in base.into_iter().chain(own) {
        for e in &lower_file(db, file).catalog {
            // The workspace's entry replaces the base's, with all it says.
            match of(e) {
                Some(v) => out.insert(e.package.clone(), v),
                None => out.remove(&e.package),
            };
        }
    }
    out
}

#[salsa::tracked(returns(ref))]
pub fn target<'db>(db: &'db dyn Db, ws: Workspace, id: LabelId<'db>) -> Option<Target> {
    let label = id.label(db);
    db.log_query("target", label);
    let (file, i) = index(db, ws).map.get(label)?;
    lower_file(db, *file).targets.get(*i).cloned()
}

/// The target without source locations: what it means, not where it is.
#[salsa::tracked(returns(ref))]
pub fn semantic_target<'db>(db: &'db dyn Db, ws: Workspace, id: LabelId<'db>) -> Option<Target> {
    target(db, ws, id).as_ref().map(WithoutLocs::without_locs)
}

/// `WORKSPACE.toml` without source locations.
#[salsa::tracked(returns(ref))]
pub fn semantic_config(db: &dyn Db, ws: Workspace) -> Option<Config> {
    config(db, ws).as_ref().ok().map(WithoutLocs::without_locs)
}

pub fn lookup(db: &dyn Db, ws: Workspace, label: &Label) -> Option<Target> {
    target(db, ws, LabelId::new(db, label.clone())).clone()
}

/// The packs a pack names directly, for closures computed without recursion
/// (so a cycle in the rules is reported, never a salsa cycle panic).
#[salsa::tracked(returns(ref))]
pub fn pack_deps<'db>(db: &'db dyn Db, ws: Workspace, id: LabelId<'db>) -> Vec<Label> {
    db.log_query("pack_deps", id.label(db));
    match target(db, ws, id) {
        Some(Target {
            body: Body::Pack(p),
            ..
        }) => p.deps.iter().map(|d| d.value.clone()).collect(),
        _ => Vec::new(),
    }
}

/// One pack and everything it needs, in dependency order (post-order DFS
/// over `pack_deps`, no recursion through salsa, so a cycle in the rules is
/// reported by `cycles`, never a salsa cycle panic).
#[salsa::tracked(returns(ref))]
pub fn pack_closure_of<'db>(db: &'db dyn Db, ws: Workspace, id: LabelId<'db>) -> Vec<Label> {
    let mut done: HashMap<Label, ()> = HashMap::new();
    let mut out = Vec::new();
    // (label, expanded)
    let mut stack = vec![(id.label(db).clone(), false)];
    let mut on_stack: HashMap<Label, ()> = HashMap::new();
    while let Some((l, expanded)) = stack.pop() {
        if done.contains_key(&l) {
            continue;
        }
        if expanded {
            on_stack.remove(&l);
            done.insert(l.clone(), ());
            out.push(l);
            continue;
        }
        if on_stack.insert(l.clone(), ()).is_some() {
            continue;
        }
        stack.push((l.clone(), true));
        for d in pack_deps(db, ws, LabelId::new(db, l)).iter().rev() {
            if !done.contains_key(d) && !on_stack.contains_key(d) {
                stack.push((d.clone(), false));
            }
        }
    }
    out
}

/// The transitive closure of `roots` over pack dependencies, in dependency
/// order: every pack comes after the packs it needs; ties break by the
/// order the rules name them.
pub fn pack_closure(db: &dyn Db, ws: Workspace, roots: &[Label]) -> Vec<Label> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for r in roots {
        for l in pack_closure_of(db, ws, LabelId::new(db, r.clone())) {
            if seen.insert(l.clone()) {
                out.push(l.clone());
            }
        }
    }
    out
}

/// Everything a target's key needs but its dependencies' outputs.
///
/// Computed from the targets and config *without* locations, so that moving
/// text around re-runs nothing here; its errors carry no locations (see
/// [`located_errors`]).
#[salsa::tracked(returns(ref))]
pub fn derivation<'db>(
    db: &'db dyn Db,
    ws: Workspace,
    id: LabelId<'db>,
) -> Result<Arc<Derivation>, Vec<Diagnostic>> {
    let label = id.label(db);
    db.log_query("derivation", label);
    let Some(t) = semantic_target(db, ws, id) else {
        return Err(vec![
            Diagnostic::error(format!("no target {label}"))
                .hint("`refine query //...` lists every target"),
        ]);
    };
    let Some(cfg) = semantic_config(db, ws) else {
        return Err(Vec::new());
    };
    derive(&SalsaRules { db, ws }, t, cfg).map(Arc::new)
}

/// The errors of a target's derivation, with their locations.
pub fn located_errors(db: &dyn Db, ws: Workspace, id: LabelId<'_>) -> Vec<Diagnostic> {
    match (target(db, ws, id), config(db, ws)) {
        (Some(t), Ok(cfg)) => derive(&SalsaRules { db, ws }, t, cfg)
            .err()
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// [`Rules`] answered by the database: every answer a tracked query, so
/// salsa sees what a derivation read.
struct SalsaRules<'db> {
    db: &'db dyn Db,
    ws: Workspace,
}

impl Rules for SalsaRules<'_> {
    fn platform(&self) -> Option<&Platform> {
        platform(self.db, self.ws).as_ref()
    }

    fn catalog(&self) -> &BTreeMap<String, Vec<Label>> {
        catalog(self.db, self.ws)
    }

    fn is_declared(&self, label: &Label) -> bool {
        index(self.db, self.ws).map.contains_key(label)
    }

    fn labels(&self) -> &[Label] {
        &index(self.db, self.ws).labels
    }

    fn target(&self, label: &Label) -> Option<&Target> {
        semantic_target(self.db, self.ws, LabelId::new(self.db, label.clone())).as_ref()
    }

    fn derivation(&self, label: &Label) -> Option<&Derivation> {
        derivation(self.db, self.ws, LabelId::new(self.db, label.clone()))
            .as_ref()
            .ok()
            .map(|d| &**d)
    }

    fn pack_closure(&self, roots: &[Label]) -> Vec<Label> {
        pack_closure(self.db, self.ws, roots)
    }

    fn recipe_file(&self, path: &str) -> Result<crate::key::Digest, String> {
        let f = self.db.aux_file(path);
        match f.digest(self.db) {
            Some(d) => Ok(d.clone()),
            None => Err(self.db.file_problem(path)),
        }
    }
}
