//! `refine plan`, `refine hash`, `refine log`: what the store knows, without
//! building anything.
//!
//! Keys are computed in topological order from what is known: the pins of
//! fixed-output nodes and the outputs the local action cache records. A node
//! whose dependency must be rebuilt has no key yet: it is `pending`, and
//! whether it rebuilds depends on whether that dependency's output changes.

use super::Session;
use crate::error::{Error, Result};
use crate::eval::Graph;
use crate::key::{Digest, FieldChange, Key, Preimage, diff};
use crate::rules::Label;
use crate::store::{LocalStore, Lookup};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanStatus {
    /// In the local action cache.
    Cached,
    /// Its key is known and not cached: it will build.
    Build,
    /// Waits for dependencies that will rebuild; its key is not known yet.
    Pending { after: Vec<Label> },
    /// Not local, but the remote store has it.
    Remote,
}

impl PlanStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            PlanStatus::Cached => "hit",
            PlanStatus::Build => "build",
            PlanStatus::Pending { .. } => "pending",
            PlanStatus::Remote => "hit:remote",
        }
    }
}

#[derive(Clone, Debug)]
pub struct PlanEntry {
    pub label: Label,
    pub status: PlanStatus,
    pub key: Option<Key>,
    pub preimage: Option<Preimage>,
    pub output: Option<Digest>,
    /// Why it builds: the fields that differ from the label's last build.
    pub changes: Vec<FieldChange>,
    /// The key of the label's last build, when there was one.
    pub previous: Option<Key>,
    pub requested: bool,
}

/// Compute what is knowable of every node's key and cache state.
/// What a build of `graph` with `executor` would do, node by node.
pub fn plan_graph(graph: &Graph, store: &LocalStore, executor: &str) -> Vec<PlanEntry> {
    use rayon::prelude::*;
    // Level by level (a node after all its dependencies), every level on
    // every core: what a node's entry needs of its dependencies is settled
    // in the levels before it.
    let mut outputs: rustc_hash::FxHashMap<&Label, Digest> = Default::default();
    let mut entries: Vec<Option<PlanEntry>> = (0..graph.nodes.len()).map(|_| None).collect();
    for level in graph.levels() {
        let planned: Vec<(usize, PlanEntry)> = level
            .par_iter()
            .map(|&i| (i, plan_node(graph, store, executor, i, &entries, &outputs)))
            .collect();
        for (i, e) in planned {
            if let Some(o) = &e.output {
                outputs.insert(graph.nodes[i].label(), o.clone());
            }
            entries[i] = Some(e);
        }
    }
    entries.into_iter().flatten().collect()
}

/// One node's entry, its dependencies' entries and outputs known.
fn plan_node(
    graph: &Graph,
    store: &LocalStore,
    executor: &str,
    i: usize,
    entries: &[Option<PlanEntry>],
    outputs: &rustc_hash::FxHashMap<&Label, Digest>,
) -> PlanEntry {
    let node = &graph.nodes[i];
    {
        let label = node.label();
        let mut waiting: Vec<Label> = Vec::new();
        for &di in &node.deps {
            let dep = &graph.nodes[di];
            if dep.fixed_output().is_none() && !outputs.contains_key(dep.label()) {
                let Some(e) = &entries[di] else { continue };
                match &e.status {
                    PlanStatus::Pending { after } => {
                        for a in after {
                            if !waiting.contains(a) {
                                waiting.push(a.clone());
                            }
                        }
                    }
                    _ => waiting.push(dep.label().clone()),
                }
            }
        }
        let previous = store
            .labels
            .check(node.arch(), label, |r| Key::parse(&r.key))
            .flatten();
        if !waiting.is_empty() {
            return PlanEntry {
                label: label.clone(),
                status: PlanStatus::Pending { after: waiting },
                key: None,
                preimage: None,
                output: None,
                changes: Vec::new(),
                previous,
                requested: node.requested,
            };
        }
        // The key by its memo where the label index remembers it (as a
        // build finds it: `sched::memo`), else from the preimage.
        let digest_of = |l: &Label| graph.digest_for(l, |x| outputs.get(x).cloned());
        let deps: Vec<(&Label, Digest)> = node
            .deps
            .iter()
            .map(|&di| graph.nodes[di].label())
            .filter_map(|l| Some((l, digest_of(l)?)))
            .collect();
        let remembered = node
            .drv_id
            .as_ref()
            .map(|id| crate::sched::memo::memo(id, &deps))
            .and_then(|m| store.labels.memo_key(node.arch(), label, &m));
        let (key, pre) = match remembered {
            Some(k) => {
                if cfg!(debug_assertions) {
                    assert_eq!(
                        node.derivation_to_check().preimage(&digest_of).key(),
                        k,
                        "{label}: the key remembered by its memo is not its preimage's"
                    );
                }
                (k, None)
            }
            None => {
                let p = node.derivation().preimage(&digest_of);
                (p.key(), Some(p))
            }
        };
        // Another executor's result would not answer the build.
        let trusts = |e: &str| crate::exec::trusts(executor, e, node.fixed_output().is_some());
        let cached = store
            .indexed_hit(
                node.arch(),
                label,
                &key,
                crate::store::BlobCheck::Exists,
                None,
                &trusts,
            )
            .map(|(o, _)| o)
            .or_else(|| match store.lookup(&key) {
                Lookup::Hit(r, _) if trusts(&r.executor) => Some(r.output),
                _ => None,
            });
        let (status, output) = match cached {
            Some(o) => (PlanStatus::Cached, Some(o)),
            None => (PlanStatus::Build, None),
        };
        let (changes, pre) = match (&status, &previous) {
            (PlanStatus::Build, Some(prev)) if *prev != key => {
                let pre = pre.unwrap_or_else(|| node.derivation().preimage(&digest_of));
                let changes = store
                    .actions
                    .preimage(prev)
                    .map(|old| diff(&old, &pre))
                    .unwrap_or_default();
                (changes, Some(pre))
            }
            _ => (Vec::new(), pre),
        };
        PlanEntry {
            label: label.clone(),
            status,
            key: Some(key),
            preimage: pre,
            output,
            changes,
            previous,
            requested: node.requested,
        }
    }
}

pub fn plan(s: &Session, patterns: &[String]) -> Result<(Graph, Vec<PlanEntry>)> {
    plan_with_remote(s, patterns, None)
}

/// The plan, with the keys the remote has marked `hit:remote` (checked
/// eight at a time).
pub fn plan_with_remote(
    s: &Session,
    patterns: &[String],
    remote: Option<&crate::remote::oci::OciRemote>,
) -> Result<(Graph, Vec<PlanEntry>)> {
    let labels = s.resolve(patterns)?;
    let graph = s.graph(&labels)?;
    let store = s.open_store()?;
    let mut entries = plan_graph(&graph, &store, s.executor.name());
    if let Some(r) = remote {
        let idx: Vec<usize> = (0..entries.len())
            .filter(|&i| entries[i].status == PlanStatus::Build)
            .collect();
        let items: Vec<(Label, crate::key::Key)> = idx
            .iter()
            .filter_map(|&i| Some((entries[i].label.clone(), entries[i].key.clone()?)))
            .collect();
        for (i, found) in idx.iter().zip(r.exists_many(&items, 8)) {
            if matches!(found, Ok(true)) {
                entries[*i].status = PlanStatus::Remote;
            }
        }
    }
    Ok((graph, entries))
}

/// Why a node builds, in one line.
pub fn reason(e: &PlanEntry) -> String {
    match &e.status {
        PlanStatus::Cached => String::new(),
        PlanStatus::Remote => "in the remote store".to_string(),
        PlanStatus::Pending { after } => {
            let names: Vec<String> = after.iter().map(|l| l.to_string()).collect();
            format!(
                "after {} (rebuilds only if their output changes)",
                names.join(", ")
            )
        }
        PlanStatus::Build => {
            if e.previous.is_none() {
                "never built".to_string()
            } else if e.changes.is_empty() {
                "not in the cache".to_string()
            } else {
                let parts: Vec<String> = e.changes.iter().take(4).map(describe_change).collect();
                let more = e.changes.len().saturating_sub(4);
                if more > 0 {
                    format!("{} (+{more} more)", parts.join("; "))
                } else {
                    parts.join("; ")
                }
            }
        }
    }
}

pub fn describe_change(c: &FieldChange) -> String {
    match (&c.old, &c.new) {
        (Some(o), Some(n)) => format!("{}: {} -> {}", c.path, o.short(), n.short()),
        (None, Some(n)) => format!("{}: added {}", c.path, n.short()),
        (Some(o), None) => format!("{}: removed (was {})", c.path, o.short()),
        (None, None) => c.path.clone(),
    }
}

/// The latest log of a label.
pub fn log_path(s: &Session, label: &str) -> Result<std::path::PathBuf> {
    let labels = s.resolve(&[label.to_string()])?;
    let [label] = labels.as_slice() else {
        return Err(Error::user(format!(
            "`{label}` names {} targets; name one",
            labels.len()
        )));
    };
    let store = s.open_store()?;
    let rec = store.labels.get(s.platform.arch, label);
    let from_record = rec.and_then(|r| r.log).filter(|p| p.is_file());
    let path = from_record.or_else(|| {
        let dir = store
            .root()
            .join("logs")
            .join(s.platform.arch.as_str())
            .join(label.path());
        let mut logs: Vec<_> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .collect();
        logs.sort();
        logs.pop()
    });
    path.ok_or_else(|| {
        Error::user(format!("{label} has no log for {}", s.platform.arch))
            .hint("logs exist for targets that were built on this machine; `refine build` it first")
    })
}

/// How many times `refine verify` reproduced this key's output.
pub fn verified_count(store: &LocalStore, key: &Key) -> usize {
    store
        .actions
        .verification(key)
        .map_or(0, |v| v.agreeing_rounds)
}
