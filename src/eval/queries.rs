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

use super::db::{Db, SourceFile, Workspace};
use super::drv::{Action, CrossAction, Derivation, Inputs, RecipeFiles};
use crate::diag::Diagnostic;
use crate::platform::*;
use crate::rules::config::{BaseMode, Config, parse_config, parse_config_in};
use crate::rules::lower::LoweredFile;
use crate::rules::model::WithoutLocs;
use crate::rules::toml::{Node, Spanned};
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
    let o = ws.overrides(db);
    let mut p = cfg.platform.clone();
    if let Some(a) = o.arch {
        p.arch = a;
    }
    if let Some(pol) = &o.policy {
        p.policy = pol.clone();
    }
    if let Some(py) = &o.python {
        p.python = py.clone();
    }
    if let Some(t) = o.toolchain {
        p.toolchain = t;
    }
    Some(p)
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
    derive(db, ws, t, cfg).map(Arc::new)
}

/// The errors of a target's derivation, with their locations.
pub fn located_errors(db: &dyn Db, ws: Workspace, id: LabelId<'_>) -> Vec<Diagnostic> {
    match (target(db, ws, id), config(db, ws)) {
        (Some(t), Ok(cfg)) => derive(db, ws, t, cfg).err().unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn derive(
    db: &dyn Db,
    ws: Workspace,
    t: &Target,
    cfg: &Config,
) -> Result<Derivation, Vec<Diagnostic>> {
    let label = &t.label;
    let Some(platform) = platform(db, ws).clone() else {
        return Err(Vec::new());
    };
    let mut r = Resolver {
        db,
        ws,
        diags: Vec::new(),
    };
    let mut d = Derivation {
        label: label.clone(),
        version: None,
        platform,
        source_date_epoch: cfg.sandbox.source_date_epoch,
        action: Action::SystemRuntime {
            python: String::new(),
        },
        inputs: Inputs::default(),
        env: BTreeMap::new(),
        timeout: t.timeout.unwrap_or(cfg.sandbox.timeout),
        nested_userns: t.nested_userns.unwrap_or(cfg.sandbox.nested_userns),
        is_wheel_source: false,
        cc_target: None,
    };
    match &t.body {
        Body::Source(s) => {
            d.is_wheel_source = match &s.fetch {
                Fetch::Pypi { dist, .. } => *dist == Dist::Wheel,
                Fetch::Url { urls } => urls[0].ends_with(".whl"),
                Fetch::Path { path } => path.ends_with(".whl"),
                Fetch::Debian { file, .. } => file.ends_with(".whl"),
                Fetch::Cargo { .. } => false,
            };
            if let Fetch::Pypi { version, .. } = &s.fetch {
                d.version = Some(version.clone());
            }
            if let Some(of) = &s.needs {
                d.inputs.sources = r.expect(of, &[Kind::Source]).into_iter().collect();
            }
            d.action = Action::Fetch {
                fetch: s.fetch.clone(),
                sha256: s.sha256.clone(),
            };
        }
        Body::Image(i) => {
            d.action = match &i.spec {
                ImageSpec::Mmdebstrap {
                    suite,
                    variant,
                    components,
                    packages,
                    cross,
                } => {
                    let platform = &d.platform;
                    match cross.as_ref().filter(|_| platform.uses_cross()) {
                        // The target's image, with the host's cross compilers.
                        Some(c) => {
                            let host = Arch::host();
                            let subst = |p: &String| {
                                p.replace("{triplet}", platform.arch.triplet())
                                    .replace("{host}", host.debian())
                            };
                            let mut pkgs: Vec<String> = packages
                                .iter()
                                .filter(|p| !c.replace.contains(p))
                                .cloned()
                                .chain(c.packages.iter().map(subst))
                                .collect();
                            pkgs.sort();
                            pkgs.dedup();
                            let hook = match r.recipe_action(&c.hook, BTreeMap::new(), None) {
                                Action::Recipe { recipe, .. } => recipe,
                                _ => RecipeFiles {
                                    script: c.hook.script.value.clone(),
                                    files: Vec::new(),
                                },
                            };
                            Action::Mmdebstrap {
                                suite: suite.clone(),
                                variant: variant.clone(),
                                components: components.clone(),
                                packages: pkgs,
                                cross: Some(CrossAction {
                                    host: host.debian().to_string(),
                                    triplet: platform.arch.triplet().to_string(),
                                    gcc: c.gcc.clone(),
                                    unpack: c.unpack.iter().map(subst).collect(),
                                    native: c.native.clone(),
                                    stand_in: c.stand_in.clone(),
                                    hook,
                                }),
                            }
                        }
                        None => Action::Mmdebstrap {
                            suite: suite.clone(),
                            variant: variant.clone(),
                            components: components.clone(),
                            packages: packages.clone(),
                            cross: None,
                        },
                    }
                }
                ImageSpec::Oci { reference, digest } => Action::OciImage {
                    reference: reference.clone(),
                    digest: digest.clone(),
                },
            };
        }
        Body::Runtime(rt) => {
            d.inputs.image = r.image(t, rt.image.as_ref(), cfg);
            match &rt.spec {
                RuntimeSpec::System { python } => {
                    d.action = Action::SystemRuntime {
                        python: python.clone(),
                    };
                }
                RuntimeSpec::Build(b) => {
                    d.version = Some(b.version.clone());
                    d.inputs.sources = r.sources(&b.sources);
                    d.inputs.packs = r.packs(&b.packs);
                    d.env = b.env.clone();
                    d.action = r.recipe_action(&b.recipe, BTreeMap::new(), None);
                }
            }
        }
        Body::Pack(p) => {
            d.version = Some(p.version.clone());
            d.inputs.image = r.image(t, p.image.as_ref(), cfg);
            d.inputs.sources = r.sources(&p.sources);
            d.inputs.packs = r.packs(&p.deps);
            // In a cycle the closure comes back to the pack itself; the
            // cycle is reported, the pack never needs itself.
            d.inputs.packs.retain(|l| l != label);
            d.env = p.env.clone();
            d.action = r.recipe_action(&p.recipe, BTreeMap::new(), None);
            if let Some(own) = &p.policy {
                d.platform.policy = own.clone();
            }
            r.floor(t, cfg, &mut d);
        }
        Body::Wheel(w) => {
            if let Some(own) = &w.policy {
                d.platform.policy = own.clone();
            }
            d.version = w.version.clone();
            d.inputs.image = r.image(t, w.image.as_ref(), cfg);
            d.inputs.runtime = r.runtime(t, w.runtime.as_ref(), cfg, d.inputs.image.as_ref());
            d.inputs.sources = r.sources(&w.sources);
            let mut reqs: Vec<&Spanned<Label>> = Vec::new();
            if w.default_build_requires {
                reqs.extend(&cfg.defaults.build_requires);
            }
            reqs.extend(&w.build_requires);
            d.inputs.wheels = r.wheels(&reqs);
            d.inputs.frontend = r.frontend(t, cfg, &d.platform, d.inputs.image.as_ref());
            let mut packs: Vec<Spanned<Label>> = Vec::new();
            if let Some(cat) = catalog(db, ws).get(&normalize_name(&w.package)) {
                packs.extend(cat.iter().map(|l| Spanned {
                    value: l.clone(),
                    loc: t.decl.clone(),
                }));
            }
            packs.extend(w.packs.iter().cloned());
            d.inputs.packs = r.packs(&packs);
            d.env = w.env.clone();
            let recipe = match w.recipe.as_ref().or(cfg.defaults.wheel_recipe.as_ref()) {
                Some(rc) => Some(rc),
                None => {
                    r.diags.push(
                        Diagnostic::error(format!("{label} has no recipe"))
                            .at(t.decl.clone())
                            .hint("set `wheel_recipe` in [defaults] of WORKSPACE.toml or `recipe` in the rule"),
                    );
                    None
                }
            };
            if let Some(rc) = recipe {
                d.action = r.recipe_action(rc, w.config_settings.clone(), None);
            }
            r.floor(t, cfg, &mut d);
        }
        Body::Set(st) => {
            d.action = Action::Set;
            d.inputs.members = st
                .targets
                .iter()
                .filter_map(|l| r.expect(l, &Kind::ALL))
                .collect();
        }
        Body::Test(ts) => {
            // The set's wheels (sets within it expanded), installed together
            // in the default image with no packs, each with its test.
            d.inputs.image = r.image(t, None, cfg);
            d.inputs.runtime = r.runtime(t, None, cfg, d.inputs.image.as_ref());
            let mut members: Vec<Label> = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            let mut work: Vec<Label> = ts
                .targets
                .iter()
                .filter_map(|l| r.expect(l, &[Kind::Set]))
                .collect();
            while let Some(l) = work.pop() {
                if !seen.insert(l.clone()) {
                    continue;
                }
                if l.kind == Kind::Set {
                    if let Ok(sd) = derivation(db, ws, LabelId::new(db, l.clone())) {
                        work.extend(sd.inputs.members.iter().cloned());
                    }
                } else if matches!(l.kind, Kind::Source | Kind::Wheel | Kind::Repair) {
                    members.push(l);
                }
            }
            members.sort();
            let rule = |l: &Label| semantic_target(db, ws, LabelId::new(db, l.clone())).clone();
            let rule_test = |l: &Label| -> Option<String> {
                let wheel = match rule(l)?.body {
                    Body::Repair(rp) => rp.wheel.value,
                    Body::Wheel(_) => l.clone(),
                    _ => return None,
                };
                match rule(&wheel)?.body {
                    Body::Wheel(w) => w.test,
                    _ => None,
                }
            };
            let lines: Vec<String> = members
                .iter()
                .map(|m| format!("{m}\t{}", rule_test(m).unwrap_or_default()))
                .collect();
            d.env.insert("REFINE_TESTS".into(), lines.join("\n"));
            d.inputs.wheels = members;
            d.inputs.frontend = r.frontend(t, cfg, &d.platform, d.inputs.image.as_ref());
            match cfg.defaults.test_recipe.as_ref() {
                Some(rc) => d.action = r.recipe_action(rc, BTreeMap::new(), None),
                None => r.diags.push(
                    Diagnostic::error(format!("{label} has no recipe"))
                        .at(t.decl.clone())
                        .hint("set `test_recipe` in [defaults] of WORKSPACE.toml"),
                ),
            }
        }
        Body::Repair(rp) => {
            d.inputs.image = r.image(t, rp.image.as_ref(), cfg);
            d.inputs.runtime = r.runtime(t, rp.runtime.as_ref(), cfg, d.inputs.image.as_ref());
            d.inputs.wheel = r.expect(&rp.wheel, &[Kind::Wheel]);
            let tools: Vec<&Spanned<Label>> = match &rp.tools {
                Some(t) => t.iter().collect(),
                None => cfg.defaults.repair_tools.iter().collect(),
            };
            if tools.is_empty() {
                r.diags.push(
                    Diagnostic::error(format!("{label} has no repair tools"))
                        .at(t.decl.clone())
                        .hint("set `repair_tools` (auditwheel and its dependencies as wheel sources) in [defaults] of WORKSPACE.toml"),
                );
            }
            d.inputs.tools = r.wheels(&tools);
            d.inputs.frontend = r.frontend(t, cfg, &d.platform, d.inputs.image.as_ref());
            // The wheel's packs are where auditwheel finds the libraries it grafts.
            // The wheel's floor (its own policy or the platform's) is what
            // the repair checks and tags.
            if let Some(w) = &d.inputs.wheel
                && let Ok(wd) = derivation(db, ws, LabelId::new(db, w.clone()))
            {
                d.inputs.packs = wd.inputs.packs.clone();
                d.version = wd.version.clone();
                d.platform.policy = wd.platform.policy.clone();
            }
            let policy = rp
                .policy
                .clone()
                .unwrap_or_else(|| d.platform.platform_tag());
            match rp.recipe.as_ref().or(cfg.defaults.repair_recipe.as_ref()) {
                Some(rc) => d.action = r.recipe_action(rc, BTreeMap::new(), Some(policy)),
                None => r.diags.push(
                    Diagnostic::error(format!("{label} has no recipe"))
                        .at(t.decl.clone())
                        .hint("set `repair_recipe` in [defaults] of WORKSPACE.toml or `recipe` in the rule"),
                ),
            }
        }
    }
    if r.diags.is_empty() {
        Ok(d)
    } else {
        Err(r.diags)
    }
}

struct Resolver<'a> {
    db: &'a dyn Db,
    ws: Workspace,
    diags: Vec<Diagnostic>,
}

impl Resolver<'_> {
    /// Check that a reference names a target of one of the expected kinds.
    fn expect(&mut self, r: &Spanned<Label>, kinds: &[Kind]) -> Option<Label> {
        let l = &r.value;
        if !kinds.contains(&l.kind) {
            let want: Vec<&str> = kinds.iter().map(|k| k.singular()).collect();
            self.diags.push(
                Diagnostic::error(format!("{l} is not a {}", want.join(" or ")))
                    .at(r.loc.clone())
                    .label(format!("expected a {}", want.join(" or ")))
                    .hint(format!(
                        "this field takes {} labels",
                        kinds
                            .iter()
                            .map(|k| format!("//{}:…", k.as_str()))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    )),
            );
            return None;
        }
        let idx = index(self.db, self.ws);
        if !idx.map.contains_key(l) {
            let same_kind = idx
                .labels
                .iter()
                .filter(|c| c.kind == l.kind)
                .map(|c| &*c.name);
            let hint = match crate::diag::suggest(&l.name, same_kind) {
                Some(s) => format!("did you mean `//{}:{s}`?", l.kind),
                None => format!("declare it as `[{}.{}]` in a rule file", l.kind, l.name),
            };
            self.diags.push(
                Diagnostic::error(format!("{l} names no target"))
                    .at(r.loc.clone())
                    .label("unknown label")
                    .hint(hint),
            );
            return None;
        }
        Some(l.clone())
    }

    fn image(&mut self, t: &Target, own: Option<&Spanned<Label>>, cfg: &Config) -> Option<Label> {
        match own.or(cfg.defaults.image.as_ref()) {
            Some(l) => self.expect(l, &[Kind::Image]),
            None => {
                self.diags.push(
                    Diagnostic::error(format!("{} has no builder image", t.label))
                        .at(t.decl.clone())
                        .hint("set `image` in the rule or in [defaults] of WORKSPACE.toml"),
                );
                None
            }
        }
    }

    fn runtime(
        &mut self,
        t: &Target,
        own: Option<&Spanned<Label>>,
        cfg: &Config,
        image: Option<&Label>,
    ) -> Option<Label> {
        let Some(r) = own.or(cfg.defaults.runtime.as_ref()) else {
            self.diags.push(
                Diagnostic::error(format!("{} has no Python runtime", t.label))
                    .at(t.decl.clone())
                    .hint("set `runtime` in the rule or in [defaults] of WORKSPACE.toml"),
            );
            return None;
        };
        let l = self.expect(r, &[Kind::Runtime])?;
        // A system runtime is the python of its image: it only exists there.
        if let Some(Target {
            body: Body::Runtime(rt),
            ..
        }) = semantic_target(self.db, self.ws, LabelId::new(self.db, l.clone()))
            && matches!(rt.spec, RuntimeSpec::System { .. })
        {
            let rt_image = rt
                .image
                .as_ref()
                .or(cfg.defaults.image.as_ref())
                .map(|s| &s.value);
            if let (Some(a), Some(b)) = (rt_image, image)
                && a != b
            {
                self.diags.push(
                    Diagnostic::error(format!(
                        "{} builds in {b} but its runtime {l} is the python of {a}",
                        t.label
                    ))
                    .at(r.loc.clone())
                    .hint("use a runtime of the same image, or build the wheel in the runtime's image"),
                );
            }
        }
        Some(l)
    }

    /// The frontend (uv) for a build in `image`: the wheel for the machine
    /// whose programs run natively there, the host's in a hybrid image (its
    /// host programs run without emulation), the target's otherwise. None
    /// when the workspace names no frontend (its recipes then bring their
    /// own).
    fn frontend(
        &mut self,
        t: &Target,
        cfg: &Config,
        platform: &Platform,
        image: Option<&Label>,
    ) -> Option<Label> {
        let f = &cfg.defaults.frontend;
        if f.by_arch.is_empty() {
            return None;
        }
        let hybrid = image
            .and_then(|l| {
                derivation(self.db, self.ws, LabelId::new(self.db, l.clone()))
                    .as_ref()
                    .ok()
                    .cloned()
            })
            .is_some_and(|d| matches!(d.action, Action::Mmdebstrap { cross: Some(_), .. }));
        let arch = if hybrid { Arch::host() } else { platform.arch };
        let Some(r) = f.by_arch.get(&arch) else {
            let have: Vec<&str> = f.by_arch.keys().map(|a| a.as_str()).collect();
            let why = if hybrid {
                format!(
                    "the host's, whose programs run natively in the hybrid image of {}",
                    t.label
                )
            } else {
                format!("the machine {} runs on", t.label)
            };
            let mut d = Diagnostic::error(format!(
                "[defaults] frontend has no wheel for {arch} ({why}); it has {}",
                have.join(", ")
            ))
            .hint(format!(
                "add `{arch} = \"//sources:uv-{arch}\"` to `frontend`, with a `[sources.uv-{arch}]` that pins uv's {arch} wheel"
            ));
            if let Some(loc) = &f.loc {
                d = d.at(loc.clone());
            }
            self.diags.push(d);
            return None;
        };
        self.wheels(&[r]).into_iter().next()
    }

    /// A wheel's or pack's floor: when its policy stands for an older glibc
    /// than its image declares, it compiles with Zig for the target at the
    /// floor's glibc (`REFINE_CC_TARGET`, e.g. `s390x-linux-gnu.2.17`).
    /// Always the host's Zig: it is one static program, so it runs
    /// natively in a hybrid image and in an emulated one alike, and both
    /// give the same bytes. An image that declares no glibc, or a floor at
    /// or above it, builds with the image's own compilers.
    fn floor(&mut self, t: &Target, cfg: &Config, d: &mut Derivation) {
        let Some(want) = crate::platform::policy_glibc(&d.platform.policy) else {
            return;
        };
        let have = d.inputs.image.as_ref().and_then(|l| {
            match semantic_target(self.db, self.ws, LabelId::new(self.db, l.clone())) {
                Some(Target {
                    body: Body::Image(i),
                    ..
                }) => i
                    .glibc
                    .as_deref()
                    .and_then(crate::platform::parse_glibc)
                    .map(|g| (g, l.clone())),
                _ => None,
            }
        });
        let Some((have, image)) = have else {
            return;
        };
        if want >= have {
            return;
        }
        let host = Arch::host();
        let Some(zig) = cfg.defaults.zig.by_arch.get(&host) else {
            let mut e = Diagnostic::error(format!(
                "{} must meet {} (glibc {}.{}) but its image {image} has glibc {}.{}, and [defaults] zig names no Zig for this {host} machine",
                t.label, d.platform.policy, want.0, want.1, have.0, have.1
            ))
            .at(t.decl.clone())
            .hint(format!(
                "add `zig = {{ {host} = \"//sources:ziglang-{host}\" }}` to [defaults] with a `[sources.ziglang-{host}]` that pins ziglang's {host} wheel, or give the rule a `policy` its image meets"
            ));
            if let Some(loc) = &cfg.defaults.zig.loc {
                e = e.related(loc.clone(), "[defaults] zig is here");
            }
            self.diags.push(e);
            return;
        };
        d.inputs.zig = self.wheels(&[zig]).into_iter().next();
        d.cc_target = Some(format!(
            "{}.{}.{}",
            d.platform.arch.triplet(),
            want.0,
            want.1
        ));
    }

    fn sources(&mut self, refs: &[Spanned<Label>]) -> Vec<Label> {
        refs.iter()
            .filter_map(|r| self.expect(r, &[Kind::Source]))
            .collect()
    }

    fn packs(&mut self, refs: &[Spanned<Label>]) -> Vec<Label> {
        let direct: Vec<Label> = refs
            .iter()
            .filter_map(|r| self.expect(r, &[Kind::Pack]))
            .collect();
        pack_closure(self.db, self.ws, &direct)
    }

    fn wheels(&mut self, refs: &[&Spanned<Label>]) -> Vec<Label> {
        let mut out = Vec::new();
        for r in refs {
            let Some(l) = self.expect(r, &[Kind::Source, Kind::Wheel, Kind::Repair]) else {
                continue;
            };
            if l.kind == Kind::Source
                && let Ok(sd) = derivation(self.db, self.ws, LabelId::new(self.db, l.clone()))
                && !sd.is_wheel_source
            {
                self.diags.push(
                    Diagnostic::error(format!("{l} is not a wheel"))
                        .at(r.loc.clone())
                        .label("build requirements are installed as wheels")
                        .hint(format!(
                            "give {l} `dist = \"wheel\"`, or build it with a `[wheels.…]` target"
                        )),
                );
                continue;
            }
            if !out.contains(&l) {
                out.push(l);
            }
        }
        out
    }

    fn recipe_action(
        &mut self,
        recipe: &Recipe,
        config_settings: BTreeMap<String, Vec<String>>,
        policy: Option<String>,
    ) -> Action {
        let mut files = Vec::new();
        for p in std::iter::once(&recipe.script).chain(&recipe.includes) {
            let f = self.db.aux_file(&p.value);
            match f.digest(self.db) {
                Some(d) => files.push((p.value.clone(), d.clone())),
                None => {
                    let why = self.db.file_problem(&p.value);
                    let hint = if why.contains("leads out of the workspace") {
                        "recipes and their includes are read inside the workspace only: copy the file in instead of linking to it"
                    } else {
                        "recipe paths are relative to the workspace root, e.g. \"recipes/zlib.sh\""
                    };
                    self.diags.push(
                        Diagnostic::error(format!("recipe file {why}"))
                            .at(p.loc.clone())
                            .hint(hint),
                    )
                }
            }
        }
        Action::Recipe {
            recipe: RecipeFiles {
                script: recipe.script.value.clone(),
                files,
            },
            config_settings,
            policy,
        }
    }
}
