//! From label patterns to a plain, acyclic build graph.
//!
//! The graph leaves salsa here: [`Graph`] holds cloned derivations in
//! topological order, ready for the scheduler, with no database attached.

use super::db::{Db, Workspace};
use super::drv::Derivation;
use super::queries::{LabelId, derivation, index, target};
use crate::diag::{Diagnostic, Loc};
use crate::key::Digest;
use crate::rules::{Label, Pattern};
use std::collections::HashMap;
use std::sync::Arc;

/// One node of the graph. What the no-op path needs of it (its label,
/// arch, toolchain, pin, dependencies, memo identity) is plain fields; the
/// rest (the derivation, where the rule is declared, its fields' places)
/// is its [`Detail`], decoded from the evaluation cache only when a
/// stage asks for it (see [`crate::ops::snapshot`]): a no-op of 10,000
/// wheels then never decodes a derivation.
#[derive(Clone, Debug)]
pub struct GraphNode {
    label: Label,
    arch: crate::platform::Arch,
    toolchain: &'static str,
    /// The pin of a fixed-output node ([`Derivation::fixed_output`]).
    fixed: Option<Digest>,
    is_wheel_source: bool,
    /// Declared by the built-in base, not the workspace.
    builtin: bool,
    /// Indices of dependencies (always smaller than this node's index).
    pub deps: Vec<usize>,
    /// Named on the command line (or by a pattern), not only needed.
    pub requested: bool,
    pub owner: Option<Label>,
    /// The derivation's identity for key memos ([`crate::sched::memo`]):
    /// a hash of its serialized bytes and of the refine binary, set when
    /// the evaluation is saved (None: the key is computed from the
    /// preimage).
    pub drv_id: Option<[u8; 32]>,
    detail: Arc<LazyDetail>,
}

/// What a node holds beyond what a hit needs.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Detail {
    pub derivation: Arc<Derivation>,
    pub decl: Loc,
    /// `key = value` locations of the rule's fields, for `explain`.
    pub fields: Vec<(String, Loc)>,
}

/// A [`Detail`], decoded or still the evaluation cache's bytes.
#[derive(Debug)]
struct LazyDetail {
    cell: std::sync::OnceLock<Detail>,
    /// The snapshot's bytes and this detail's range in them.
    bytes: Option<(Arc<Vec<u8>>, std::ops::Range<usize>)>,
}

impl GraphNode {
    pub fn new(detail: Detail, deps: Vec<usize>, requested: bool, owner: Option<Label>) -> Self {
        let d = &detail.derivation;
        GraphNode {
            label: d.label.clone(),
            arch: d.platform.arch,
            toolchain: d.platform.toolchain_name(),
            fixed: d.fixed_output(),
            is_wheel_source: d.is_wheel_source,
            builtin: super::queries::is_builtin(&detail.decl.file),
            deps,
            requested,
            owner,
            drv_id: None,
            detail: Arc::new(LazyDetail {
                cell: std::sync::OnceLock::from(detail),
                bytes: None,
            }),
        }
    }

    /// A node read from the evaluation cache: its detail is decoded from
    /// `bytes[range]` when first asked for. The cache's bytes were checked
    /// whole when it was read (its digest), and were written by this very
    /// binary (its fingerprint names it).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn cached(
        head: NodeHead,
        deps: Vec<usize>,
        requested: bool,
        owner: Option<Label>,
        drv_id: Option<[u8; 32]>,
        bytes: Arc<Vec<u8>>,
        range: std::ops::Range<usize>,
    ) -> Self {
        GraphNode {
            label: head.label,
            arch: head.arch,
            toolchain: if head.foreign {
                head.toolchain.as_str()
            } else {
                "native"
            },
            fixed: head.fixed,
            is_wheel_source: head.is_wheel_source,
            builtin: head.builtin,
            deps,
            requested,
            owner,
            drv_id,
            detail: Arc::new(LazyDetail {
                cell: std::sync::OnceLock::new(),
                bytes: Some((bytes, range)),
            }),
        }
    }

    /// What the evaluation cache keeps of this node beside its detail.
    pub fn head(&self) -> NodeHead {
        let d = self.derivation();
        NodeHead {
            label: self.label.clone(),
            arch: self.arch,
            toolchain: d.platform.toolchain,
            foreign: d.platform.is_foreign(),
            fixed: self.fixed.clone(),
            is_wheel_source: self.is_wheel_source,
            builtin: self.builtin,
        }
    }

    pub fn label(&self) -> &Label {
        &self.label
    }

    pub fn arch(&self) -> crate::platform::Arch {
        self.arch
    }

    /// What compiles: "native" for the host's arch, else the toolchain.
    pub fn toolchain_name(&self) -> &'static str {
        self.toolchain
    }

    /// The pin of a fixed-output node (a source's sha256, an image's
    /// digest): its output digest, known from its rule alone.
    pub fn fixed_output(&self) -> Option<&Digest> {
        self.fixed.as_ref()
    }

    pub fn is_wheel_source(&self) -> bool {
        self.is_wheel_source
    }

    /// Declared by the built-in base (`//...` leaves it out).
    pub fn is_builtin(&self) -> bool {
        self.builtin
    }

    pub fn detail(&self) -> &Detail {
        self.decoded(true)
    }

    /// The derivation for a debug build's cross-check of a key remembered
    /// by its memo: not counted in [`details_decoded`], which says what a
    /// run needed.
    pub fn derivation_to_check(&self) -> &Arc<Derivation> {
        &self.decoded(false).derivation
    }

    fn decoded(&self, count: bool) -> &Detail {
        let lazy = &*self.detail;
        lazy.cell.get_or_init(|| {
            if count {
                DECODED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let (bytes, range) = lazy
                .bytes
                .as_ref()
                .expect("a node's detail is either decoded or cached");
            crate::rules::label::interning(|| postcard::from_bytes(&bytes[range.clone()]))
                .unwrap_or_else(|e| {
                    panic!(
                        "{}: the evaluation cache, checked when read, does not decode: {e}",
                        self.label
                    )
                })
        })
    }

    /// The node's derivation (decoded now if it came from the cache).
    pub fn derivation(&self) -> &Arc<Derivation> {
        &self.detail().derivation
    }

    /// Where the node's rule is declared.
    pub fn decl(&self) -> &Loc {
        &self.detail().decl
    }

    /// `key = value` locations of the rule's fields, for `explain`.
    pub fn fields(&self) -> &[(String, Loc)] {
        &self.detail().fields
    }

    /// The same node with another derivation (of the same label).
    pub fn with_derivation(&self, d: Arc<Derivation>) -> GraphNode {
        let detail = Detail {
            derivation: d,
            decl: self.decl().clone(),
            fields: self.fields().to_vec(),
        };
        GraphNode {
            drv_id: None,
            ..GraphNode::new(
                detail,
                self.deps.clone(),
                self.requested,
                self.owner.clone(),
            )
        }
    }
}

/// How many nodes' details this process decoded from the evaluation cache
/// (a no-op decodes none: `tests/engine.rs` holds it to that).
static DECODED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many nodes' details this process has decoded from the evaluation
/// cache so far.
pub fn details_decoded() -> usize {
    DECODED.load(std::sync::atomic::Ordering::Relaxed)
}

/// What the evaluation cache keeps of a node beside its detail.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NodeHead {
    pub label: Label,
    pub arch: crate::platform::Arch,
    pub toolchain: crate::platform::Toolchain,
    pub foreign: bool,
    pub fixed: Option<Digest>,
    pub is_wheel_source: bool,
    pub builtin: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Topological order: dependencies first.
    pub nodes: Vec<GraphNode>,
    pub by_label: rustc_hash::FxHashMap<Label, usize>,
}

impl Graph {
    /// The nodes by level: a node's level is one more than its deepest
    /// dependency's, so every node comes after all it needs, and the nodes
    /// of one level can be settled at once.
    pub fn levels(&self) -> Vec<Vec<usize>> {
        let mut level = vec![0usize; self.nodes.len()];
        let mut by_level: Vec<Vec<usize>> = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let l = node.deps.iter().map(|&d| level[d] + 1).max().unwrap_or(0);
            level[i] = l;
            if by_level.len() <= l {
                by_level.resize(l + 1, Vec::new());
            }
            by_level[l].push(i);
        }
        by_level
    }

    pub fn get(&self, l: &Label) -> Option<&GraphNode> {
        self.by_label.get(l).map(|&i| &self.nodes[i])
    }

    /// The digest `l` contributes to its dependents' keys: its pin if it is
    /// fixed-output, else its output, if `output` knows it.
    pub fn digest_for(
        &self,
        l: &Label,
        output: impl Fn(&Label) -> Option<Digest>,
    ) -> Option<Digest> {
        self.get(l)
            .and_then(|n| n.fixed_output().cloned())
            .or_else(|| output(l))
    }

    /// Indices of nodes that depend on each node.
    pub fn dependents(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &d in &n.deps {
                out[d].push(i);
            }
        }
        out
    }
}

/// Expand patterns to labels, reporting labels that name nothing.
pub fn resolve_patterns(
    db: &dyn Db,
    ws: Workspace,
    patterns: &[Pattern],
) -> Result<Vec<Label>, Vec<Diagnostic>> {
    resolve_in(&index(db, ws).labels, patterns, &|_| true)
}

/// Expand patterns against a sorted list of every label. An exact label
/// may name any target; a wildcard (`//...`, `//packs:...`) expands only
/// over the labels `wild` accepts (the workspace's own, not the built-in
/// base's, as Bazel's `//...` stays in the main repository).
pub fn resolve_in(
    all: &[Label],
    patterns: &[Pattern],
    wild: &dyn Fn(&Label) -> bool,
) -> Result<Vec<Label>, Vec<Diagnostic>> {
    let mut out: Vec<Label> = Vec::new();
    let mut seen: rustc_hash::FxHashSet<&Label> = Default::default();
    let mut errors = Vec::new();
    for p in patterns {
        match p {
            Pattern::Exact(l) if all.binary_search(l).is_err() => {
                let same = all.iter().filter(|c| c.kind == l.kind).map(|c| &*c.name);
                let hint = match crate::diag::suggest(&l.name, same) {
                    Some(s) => format!("did you mean //{}:{s}?", l.kind),
                    None => format!(
                        "`refine query '//{}:...'` lists the {} targets",
                        l.kind,
                        l.kind.singular()
                    ),
                };
                errors.push(Diagnostic::error(format!("{l} names no target")).hint(hint));
            }
            Pattern::Exact(l) => {
                if seen.insert(l) {
                    out.push(l.clone());
                }
            }
            _ => {
                for l in all.iter().filter(|l| p.matches(l) && wild(l)) {
                    if seen.insert(l) {
                        out.push(l.clone());
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

impl Graph {
    /// The part of this graph that `roots` need, still in topological
    /// order, with `roots` marked as requested.
    pub fn subgraph(&self, roots: &[Label]) -> Graph {
        let mut keep = vec![false; self.nodes.len()];
        let mut work: Vec<usize> = roots
            .iter()
            .filter_map(|l| self.by_label.get(l).copied())
            .collect();
        while let Some(i) = work.pop() {
            if !keep[i] {
                keep[i] = true;
                work.extend(self.nodes[i].deps.iter().copied());
            }
        }
        let mut requested = vec![false; self.nodes.len()];
        for l in roots {
            if let Some(&i) = self.by_label.get(l) {
                requested[i] = true;
            }
        }
        let kept = keep.iter().filter(|&&k| k).count();
        let mut map = vec![usize::MAX; self.nodes.len()];
        let mut g = Graph::default();
        g.nodes.reserve(kept);
        g.by_label.reserve(kept);
        for (i, n) in self.nodes.iter().enumerate() {
            if !keep[i] {
                continue;
            }
            map[i] = g.nodes.len();
            let mut node = n.clone();
            node.deps = n.deps.iter().map(|&d| map[d]).collect();
            node.requested = requested[i];
            g.by_label.insert(n.label().clone(), g.nodes.len());
            g.nodes.push(node);
        }
        g
    }
}

/// The graph of `roots` and everything they need, in topological order.
/// Call only on a workspace without diagnostics (so there are no cycles).
pub fn load_graph(db: &dyn Db, ws: Workspace, roots: &[Label]) -> Result<Graph, Vec<Diagnostic>> {
    // Every reachable derivation, fetched once, with its dependencies.
    let mut found: HashMap<Label, (Arc<Derivation>, Vec<Label>)> = HashMap::new();
    let mut errors = Vec::new();
    let mut work: Vec<Label> = roots.to_vec();
    while let Some(l) = work.pop() {
        if found.contains_key(&l) {
            continue;
        }
        match derivation(db, ws, LabelId::new(db, l.clone())) {
            Ok(d) => {
                let deps = d.inputs.all();
                work.extend(deps.iter().filter(|x| !found.contains_key(*x)).cloned());
                found.insert(l, (d.clone(), deps));
            }
            Err(e) => errors.extend(e.iter().cloned()),
        }
    }
    if !errors.is_empty() {
        errors.dedup();
        return Err(errors);
    }
    // Post-order DFS from the roots, in order: dependencies first.
    let requested: std::collections::HashSet<&Label> = roots.iter().collect();
    let mut g = Graph::default();
    let mut on_stack: std::collections::HashSet<&Label> = std::collections::HashSet::new();
    let mut stack: Vec<(&Label, usize)> = Vec::new();
    for root in roots {
        if g.by_label.contains_key(root) {
            continue;
        }
        stack.push((root, 0));
        on_stack.insert(root);
        while let Some((l, i)) = stack.pop() {
            let (d, deps) = &found[l];
            if let Some(next) = deps.get(i) {
                stack.push((l, i + 1));
                if !g.by_label.contains_key(next) && on_stack.insert(next) {
                    stack.push((next, 0));
                }
                continue;
            }
            on_stack.remove(l);
            // A dependency still on the stack would be a cycle (reported by
            // `cycles`); leave it out.
            let dep_idx: Vec<usize> = deps
                .iter()
                .filter_map(|x| g.by_label.get(x).copied())
                .collect();
            let (decl, fields, owner) = match target(db, ws, LabelId::new(db, l.clone())) {
                Some(t) => (t.decl.clone(), t.fields.clone(), t.owner.clone()),
                None => (Loc::new("", crate::diag::Span::default()), Vec::new(), None),
            };
            g.by_label.insert(l.clone(), g.nodes.len());
            let detail = Detail {
                derivation: d.clone(),
                decl,
                fields,
            };
            g.nodes.push(GraphNode::new(
                detail,
                dep_idx,
                requested.contains(l),
                owner,
            ));
        }
    }
    Ok(g)
}
