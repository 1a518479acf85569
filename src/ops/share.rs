//! `refine push` and `refine pull`: move results between the local store
//! and the remote, for targets and everything they need.

use super::Session;
use super::plan::{PlanStatus, plan_graph};
use crate::error::{Error, Result};
use crate::eval::Graph;
use crate::key::Key;
use crate::remote::Remote;
use crate::remote::oci::OciRemote;
use crate::rules::Label;
use crate::store::{LocalStore, Lookup};
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Moved {
    Pushed,
    Pulled,
    /// The other side already had it.
    Present,
    /// Not built (push) or not on the remote (pull).
    Missing,
    Failed(String),
}

impl Moved {
    pub fn as_str(&self) -> &'static str {
        match self {
            Moved::Pushed => "pushed",
            Moved::Pulled => "pulled",
            Moved::Present => "present",
            Moved::Missing => "missing",
            Moved::Failed(_) => "failed",
        }
    }
}

fn remote_for(s: &Session, flag: Option<&str>, insecure: bool) -> Result<OciRemote> {
    super::remote::open(s, flag, false, insecure)?.ok_or_else(|| {
        Error::user("no remote store is configured").hint(
            "pass --remote oci://HOST[:PORT]/PREFIX or set `remote` in [store] of WORKSPACE.toml",
        )
    })
}

fn closure(s: &Session, patterns: &[String]) -> Result<Graph> {
    let labels = s.resolve(patterns)?;
    s.graph(&labels)
}

/// Push the local results of the targets and their dependencies.
pub fn push(
    s: &Session,
    patterns: &[String],
    remote: Option<&str>,
    insecure: bool,
) -> Result<Vec<(Label, Moved)>> {
    let remote = remote_for(s, remote, insecure)?;
    let graph = closure(s, patterns)?;
    let store = s.open_store()?;
    let plan = plan_graph(&graph, &store, s.executor.name());
    let todo: Vec<(Label, Option<Key>)> = plan
        .iter()
        .map(|e| {
            let key = (e.status == PlanStatus::Cached)
                .then(|| e.key.clone())
                .flatten();
            (e.label.clone(), key)
        })
        .collect();
    let results = parallel(&todo, 4, |(label, key)| {
        let Some(key) = key else {
            return Moved::Missing;
        };
        match push_one(&remote, &store, label, key) {
            Ok(m) => m,
            Err(e) => Moved::Failed(e),
        }
    });
    store.flush();
    Ok(todo.into_iter().map(|(l, _)| l).zip(results).collect())
}

fn push_one(
    remote: &OciRemote,
    store: &LocalStore,
    label: &Label,
    key: &Key,
) -> std::result::Result<Moved, String> {
    let repo = crate::remote::oci::repo_name(&remote.url.prefix, label);
    if remote
        .registry()
        .manifest_exists(&repo, &key.0)
        .map_err(|e| e.to_string())?
    {
        return Ok(Moved::Present);
    }
    let (result, tree) = match store.lookup(key) {
        Lookup::Hit(r, t) => (r, t),
        _ => return Ok(Moved::Missing),
    };
    let pre = store.actions.preimage(key).ok_or_else(|| {
        format!(
            "the preimage of {} is missing from the local store",
            key.short()
        )
    })?;
    remote
        .push(label, key, &result, &tree, &pre, store)
        .map_err(|e| e.to_string())?;
    Ok(Moved::Pushed)
}

/// Pull the remote results of the targets and their dependencies.
pub fn pull(
    s: &Session,
    patterns: &[String],
    remote: Option<&str>,
    insecure: bool,
) -> Result<Vec<(Label, Moved)>> {
    let remote = remote_for(s, remote, insecure)?;
    if !remote.trusts_anyone() {
        return Err(Error::user(format!(
            "no key is trusted here, so nothing from {} would be used",
            remote.url
        ))
        .hint("set `trusted_keys` in [store] of WORKSPACE.toml, or pass --trusted-key NAME:BASE64 (what `refine key show` prints on the pushing machine)"));
    }
    let graph = closure(s, patterns)?;
    let store = s.open_store()?;
    let mut outputs: HashMap<Label, crate::key::Digest> = HashMap::new();
    let mut out = Vec::new();
    for node in &graph.nodes {
        let d = &node.derivation();
        let ready = node.deps.iter().all(|&i| {
            let dep = &graph.nodes[i].derivation();
            dep.fixed_output().is_some() || outputs.contains_key(&dep.label)
        });
        if !ready {
            out.push((d.label.clone(), Moved::Missing));
            continue;
        }
        let pre = d.preimage(&|l| graph.digest_for(l, |x| outputs.get(x).cloned()));
        let key = pre.key();
        let moved = match store.lookup(&key) {
            Lookup::Hit(r, _) => {
                outputs.insert(d.label.clone(), r.output);
                Moved::Present
            }
            _ => match remote.pull(&d.label, &key, &store) {
                Ok(Some((r, _))) => {
                    outputs.insert(d.label.clone(), r.output);
                    Moved::Pulled
                }
                Ok(None) => Moved::Missing,
                Err(e) => Moved::Failed(e.to_string()),
            },
        };
        out.push((d.label.clone(), moved));
    }
    store.flush();
    Ok(out)
}

/// Run `f` over `items`, `n` at a time, keeping the order.
fn parallel<T: Sync, R: Send>(items: &[T], n: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..n.max(1).min(items.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(item) = items.get(i) else { break };
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(f(item));
                }
            });
        }
    });
    slots
        .into_iter()
        .filter_map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect()
}
