//! `refine explain`: why a target rebuilds (or missed the cache).
//!
//! The node's current preimage is diffed, field by field, with the preimage
//! of a previous build — the label's last build, the newest result the
//! remote has for it, or a given key. A changed dependency digest is
//! followed down: to the dependency's build that produced the old digest,
//! diffed with the dependency's current preimage, and so on, until a node
//! whose *own* inputs changed: the root cause, with the rule file, line and
//! column of the field that holds the change.

use super::Session;
use super::plan::plan_graph;
use crate::diag::Loc;
use crate::error::{Error, Result};
use crate::eval::{Graph, GraphNode};
use crate::key::{Digest, FieldChange, Key, PValue, Preimage, diff};
use crate::rules::Label;
use crate::store::LocalStore;
use std::collections::HashMap;

/// Preimage fields that hold dependency digests.
const DEP_FIELDS: &[&str] = &[
    "image", "runtime", "sources", "packs", "wheels", "tools", "wheel",
];

#[derive(Clone, Debug)]
pub enum Against {
    Last,
    Remote,
    Key(Key),
}

/// A change with where it is written.
#[derive(Clone, Debug)]
pub struct Located {
    pub change: FieldChange,
    /// Where the changed field is, as `file:line:col`.
    pub at: Option<String>,
    pub note: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Step {
    pub label: Label,
    pub old_key: Key,
    pub new_key: Option<Key>,
    /// Changes of the node's own inputs.
    pub own: Vec<Located>,
    /// Dependencies whose output differs, with old and new digests.
    pub deps: Vec<(Label, String, String)>,
}

#[derive(Debug)]
pub struct Explanation {
    pub label: Label,
    pub old_key: Option<Key>,
    pub new_key: Option<Key>,
    /// The asked node first, then each dependency followed.
    pub steps: Vec<Step>,
    /// The chains from the asked node to each root cause.
    pub causes: Vec<Vec<Label>>,
}

impl Explanation {
    pub fn unchanged(&self) -> bool {
        self.old_key.is_some() && self.old_key == self.new_key
    }
}

fn dep_digests(v: Option<&PValue>) -> Vec<(String, String)> {
    match v {
        Some(PValue::Map(m)) => m.iter().map(|(k, v)| (k.clone(), str_of(v))).collect(),
        Some(PValue::List(items)) => items
            .iter()
            .filter_map(|i| match i {
                PValue::List(pair) if pair.len() == 2 => Some((str_of(&pair[0]), str_of(&pair[1]))),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn str_of(v: &PValue) -> String {
    match v {
        PValue::Str(s) => s.clone(),
        other => other.short(),
    }
}

/// Where a changed preimage path is written in the rules.
fn locate(s: &Session, node: &GraphNode, path: &str) -> (Option<String>, Option<String>) {
    let render = |loc: &Loc| {
        let text = std::fs::read_to_string(s.root.join(&*loc.file)).unwrap_or_default();
        let (l, c) = crate::diag::line_col(&text, loc.span.start);
        format!("{}:{l}:{c}", loc.file)
    };
    let field = |name: &str| {
        node.fields()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, l)| render(l))
    };
    let top = path.split('.').next().unwrap_or(path);
    match top {
        "env" => (field("env"), None),
        "version" => (field("version"), None),
        "sha256" => (field("sha256").or_else(|| Some(render(node.decl()))), None),
        "file" => (
            field("file")
                .or_else(|| field("path"))
                .or_else(|| field("url")),
            None,
        ),
        "digest" => (field("oci"), None),
        "platform" | "source_date_epoch" => {
            let key = match path {
                "source_date_epoch" => "source_date_epoch",
                p if p.ends_with("arch") => "arch",
                p if p.ends_with("python_tag") => "python",
                _ => "policy",
            };
            let text = std::fs::read_to_string(s.root.join("WORKSPACE.toml")).unwrap_or_default();
            let at = text
                .lines()
                .position(|l| l.trim_start().starts_with(key))
                .map(|i| format!("WORKSPACE.toml:{}:1", i + 1));
            (
                at,
                Some("the platform (WORKSPACE.toml, or --arch / --platform)".into()),
            )
        }
        "key_version" => (
            None,
            Some("refine's KEY_VERSION changed: a refine that builds differently".into()),
        ),
        "action" => {
            let rest = path.strip_prefix("action.").unwrap_or("");
            if let Some(file) = rest.strip_prefix("files.") {
                let script = node.fields().iter().any(|(n, _)| n == "recipe");
                let at = if script { field("recipe") } else { None }.or_else(|| field("includes"));
                (
                    at.or_else(|| Some(file.to_string())),
                    Some(format!("the content of {file}")),
                )
            } else if rest.starts_with("config_settings") {
                (field("config_settings"), None)
            } else if rest == "script" {
                (field("recipe"), None)
            } else {
                let f = rest.split('.').next().unwrap_or(rest);
                (field(f), None)
            }
        }
        _ => (None, None),
    }
}

/// The newest preimage the remote holds for a label.
fn remote_latest(s: &Session, label: &Label) -> Result<Option<(Key, Preimage)>> {
    let r = super::remote::open(s, None, false, false)?.ok_or_else(|| {
        Error::user("--against remote needs a remote store")
            .hint("set `remote` in [store] of WORKSPACE.toml")
    })?;
    let repo = crate::remote::oci::repo_name(&r.url.prefix, label);
    let tags = r
        .registry()
        .tags(&repo)
        .map_err(|e| Error::env(format!("remote: {e}")))?;
    let mut best: Option<(u64, Key, Preimage)> = None;
    for t in tags {
        let Some(k) = Key::parse(&t) else { continue };
        let Ok(Some((bytes, _))) = r.registry().get_manifest(&repo, &t) else {
            continue;
        };
        let Ok(m) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        let Some(d) = m["config"]["digest"]
            .as_str()
            .and_then(|d| Digest::parse(d).ok())
        else {
            continue;
        };
        let Ok(Some(cfg)) = crate::remote::registry::read_small(r.registry(), &repo, &d) else {
            continue;
        };
        let Ok(cfg) = serde_json::from_slice::<serde_json::Value>(&cfg) else {
            continue;
        };
        let created = cfg["created"].as_u64().unwrap_or(0);
        if let Some(p) = Preimage::from_json(&cfg["preimage"])
            && p.key() == k
            && best.as_ref().is_none_or(|(c, _, _)| created > *c)
        {
            best = Some((created, k, p));
        }
    }
    Ok(best.map(|(_, k, p)| (k, p)))
}

/// The key of the build of `label` whose output was `output`.
fn key_for_output(store: &LocalStore, label: &Label, output: &str) -> Option<Key> {
    store.actions.keys().into_iter().find(|k| {
        store
            .actions
            .get(k)
            .is_some_and(|r| r.label == *label && r.output.as_str() == output)
    })
}

pub fn explain(s: &Session, target: &str, against: Against) -> Result<Explanation> {
    let labels = s.resolve(&[target.to_string()])?;
    let [label] = labels.as_slice() else {
        return Err(Error::user(format!(
            "`{target}` names {} targets; explain one",
            labels.len()
        )));
    };
    let graph = s.graph(&labels)?;
    let store = s.open_store()?;
    let plan = plan_graph(&graph, &store, s.executor.name());
    // Current preimages: dependency digests from what the store has now
    // (a dependency that must rebuild first shows as "<unknown>").
    let mut outputs: HashMap<&Label, Digest> = HashMap::new();
    for (n, e) in graph.nodes.iter().zip(&plan) {
        if let Some(o) = &e.output {
            outputs.insert(n.label(), o.clone());
        }
    }
    let current = |g: &Graph, l: &Label| -> Option<Preimage> {
        let n = g.get(l)?;
        Some(
            n.derivation()
                .preimage(&|d| g.digest_for(d, |x| outputs.get(x).cloned())),
        )
    };
    let arch = s.platform.arch.as_str();
    let (old_key, old_pre) = match &against {
        Against::Last => {
            let k = store
                .labels
                .get(s.platform.arch, label)
                .and_then(|r| Key::parse(&r.key))
                .ok_or_else(|| {
                    Error::user(format!(
                        "{label} has not been built on this machine for {arch}"
                    ))
                    .hint("build it once, or compare with --against remote or --against KEY")
                })?;
            let p = store.actions.preimage(&k).ok_or_else(|| {
                Error::env(format!("the preimage of {} is not in the store", k.short()))
            })?;
            (k, p)
        }
        Against::Key(k) => {
            let p = store.actions.preimage(k).ok_or_else(|| {
                Error::user(format!(
                    "no preimage for key {} in the local store",
                    k.short()
                ))
                .hint("refine pull it first, or give a key this machine built")
            })?;
            (k.clone(), p)
        }
        Against::Remote => remote_latest(s, label)?.ok_or_else(|| {
            Error::user(format!("the remote has no result for {label}")).hint("push one first")
        })?,
    };
    let new_pre = current(&graph, label);
    let new_key = new_pre.as_ref().map(Preimage::key);
    let mut ex = Explanation {
        label: label.clone(),
        old_key: Some(old_key.clone()),
        new_key: new_key.clone(),
        steps: Vec::new(),
        causes: Vec::new(),
    };
    // Breadth-first down the changed dependencies.
    let mut work: Vec<(Label, Key, Preimage, Vec<Label>)> =
        vec![(label.clone(), old_key, old_pre, vec![label.clone()])];
    let mut seen = std::collections::HashSet::new();
    while let Some((l, ok, old, chain)) = work.pop() {
        if !seen.insert(l.clone()) {
            continue;
        }
        let Some(node) = graph.get(&l) else { continue };
        let Some(new) = current(&graph, &l) else {
            continue;
        };
        let changes = diff(&old, &new);
        let mut step = Step {
            label: l.clone(),
            old_key: ok,
            new_key: Some(new.key()),
            own: Vec::new(),
            deps: Vec::new(),
        };
        for c in changes {
            let top = c.path.split('.').next().unwrap_or(&c.path);
            if DEP_FIELDS.contains(&top) {
                continue;
            }
            let (at, note) = locate(s, node, &c.path);
            step.own.push(Located {
                change: c,
                at,
                note,
            });
        }
        // Dependency digests, compared by label.
        for f in DEP_FIELDS {
            let was: HashMap<String, String> = dep_digests(old.get(f)).into_iter().collect();
            for (dl, now) in dep_digests(new.get(f)) {
                let before = was.get(&dl).cloned().unwrap_or_else(|| "<none>".into());
                if before != now {
                    step.deps
                        .push((dl.parse().unwrap_or_else(|_| l.clone()), before, now));
                }
            }
        }
        if !step.own.is_empty() {
            ex.causes.push(chain.clone());
        }
        for (dl, before, _) in &step.deps {
            let Some(dn) = graph.get(dl) else { continue };
            // The build of the dependency that produced the old digest; for
            // a pinned (fixed-output) dependency, its pin was that digest.
            let old_dep = if dn.derivation().fixed_output().is_some() {
                current(&graph, dl).map(|mut p| {
                    let field = if p.get("digest").is_some() {
                        "digest"
                    } else {
                        "sha256"
                    };
                    let value = if field == "sha256" {
                        before.trim_start_matches("sha256:").to_string()
                    } else {
                        before.clone()
                    };
                    p.set(field, value);
                    (p.key(), p)
                })
            } else {
                key_for_output(&store, dl, before)
                    .and_then(|k| store.actions.preimage(&k).map(|p| (k, p)))
            };
            let mut c = chain.clone();
            c.push(dl.clone());
            match old_dep {
                Some((k, p)) => work.push((dl.clone(), k, p, c)),
                // Nothing to diff against: the dependency itself is the cause.
                None => ex.causes.push(c),
            }
        }
        ex.steps.push(step);
    }
    // A node whose output changed without any input change (not
    // reproducible, or a moving mirror): its chain ends at it.
    if ex.causes.is_empty()
        && !ex.unchanged()
        && let Some(last) = ex.steps.last()
    {
        let mut chain = vec![label.clone()];
        if last.label != *label {
            chain.push(last.label.clone());
        }
        ex.causes.push(chain);
    }
    Ok(ex)
}

pub fn describe(c: &FieldChange) -> String {
    super::plan::describe_change(c)
}
