//! What the stages of one node share: the node, its key, the run's
//! configuration, and the notes it gathers on the way (said as they
//! happen, kept for its result).

use super::config::RunConfig;
use super::events::Event;
use super::result::NodeResult;
use crate::eval::{Derivation, Graph, GraphNode};
use crate::key::{Digest, Key, Preimage};
use crate::rules::Label;
use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::time::Instant;

pub(super) struct NodeCx<'a> {
    pub graph: &'a Graph,
    pub i: usize,
    /// The node (its derivation decoded only when a stage asks: a hit
    /// needs its label, arch and memo, not its derivation).
    pub node: &'a GraphNode,
    pub cfg: &'a RunConfig<'a>,
    /// The preimage, computed when needed: a key found by its memo
    /// needs none ([`super::memo`]).
    pre: OnceCell<Preimage>,
    /// The dependencies' digests, as they come (few, but for sets).
    deps: Vec<(&'a Label, Digest)>,
    /// The same by label, made when the preimage is.
    digests: OnceCell<HashMap<&'a Label, Digest>>,
    pub key: Key,
    /// What determined the key ([`super::memo`]), when the graph says the
    /// derivation's identity.
    pub memo: Option<String>,
    pub start: Instant,
    /// Rebuilt even when cached (`refine verify`), and not recorded.
    pub forced: bool,
    notes: RefCell<Vec<String>>,
    /// The remote worker that ran its build step, if one did.
    worker: RefCell<Option<String>>,
}

impl<'a> NodeCx<'a> {
    pub fn new(
        graph: &'a Graph,
        i: usize,
        deps: &[&NodeResult],
        cfg: &'a RunConfig<'a>,
    ) -> NodeCx<'a> {
        let start = Instant::now();
        let node = &graph.nodes[i];
        let dep_list = dep_digests(graph, i, deps);
        let memo = node
            .drv_id
            .as_ref()
            .map(|id| super::memo::memo(id, &dep_list));
        let digests = OnceCell::new();
        let by_label = || by_label(&digests, &dep_list);
        let remembered = memo
            .as_deref()
            .and_then(|m| cfg.store.labels.memo_key(node.arch(), node.label(), m));
        let pre = OnceCell::new();
        let key = match remembered {
            Some(k) => {
                if cfg!(debug_assertions) {
                    let d = node.derivation_to_check();
                    let computed = d.preimage(&|l| by_label().get(l).cloned()).key();
                    assert_eq!(
                        computed, k,
                        "{}: the key remembered by its memo is not its preimage's",
                        d.label
                    );
                }
                k
            }
            None => {
                let p = node.derivation().preimage(&|l| by_label().get(l).cloned());
                let k = p.key();
                let _ = pre.set(p);
                k
            }
        };
        NodeCx {
            graph,
            i,
            node,
            cfg,
            pre,
            deps: dep_list,
            digests,
            key,
            memo,
            start,
            forced: cfg.force.contains(&i),
            notes: RefCell::new(Vec::new()),
            worker: RefCell::new(None),
        }
    }

    /// The node's derivation (decoded now if the evaluation cache gave
    /// the graph).
    pub fn d(&self) -> &'a Derivation {
        self.node.derivation()
    }

    pub fn label(&self) -> &'a crate::rules::Label {
        self.node.label()
    }

    /// The node's preimage (computed now if its key came from its memo).
    pub fn pre(&self) -> &Preimage {
        let digests = by_label(&self.digests, &self.deps);
        self.pre
            .get_or_init(|| self.d().preimage(&|l| digests.get(l).cloned()))
    }

    pub fn arch(&self) -> &'static str {
        self.node.arch().as_str()
    }

    /// Say something about this node that does not fail it; its result
    /// keeps it.
    pub fn note(&self, msg: String) {
        self.cfg.sink.event(&Event::Warning {
            label: Some(self.label()),
            message: msg.clone(),
        });
        self.notes.borrow_mut().push(msg);
    }

    /// Record that a remote worker ran the build step.
    pub fn set_worker(&self, worker: String) {
        *self.worker.borrow_mut() = Some(if worker.is_empty() {
            "remote".into()
        } else {
            worker
        });
    }

    pub fn worker(&self) -> Option<String> {
        self.worker.borrow().clone()
    }

    /// The notes said so far (for the node's result).
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut self.notes.borrow_mut())
    }

    /// Whether a result made by `executor` may answer this node: a
    /// sandbox build's always, another executor's only for a run of that
    /// same executor (a test's fake results never answer a podman build);
    /// a fixed-output node's whatever made it (its bytes are its pin).
    pub fn trusts(&self, executor: &str) -> bool {
        crate::exec::trusts(
            self.cfg.exec.name(),
            executor,
            self.node.fixed_output().is_some(),
        )
    }
}

/// The dependencies' digests by label, made once (for a preimage).
fn by_label<'c, 'a>(
    made: &'c OnceCell<HashMap<&'a Label, Digest>>,
    deps: &[(&'a Label, Digest)],
) -> &'c HashMap<&'a Label, Digest> {
    made.get_or_init(|| deps.iter().cloned().collect())
}

/// The digests node `i`'s dependencies contribute. `deps` are their
/// results in the order of the node's dependencies (the scheduler passes
/// them so); a result that is not where it should be is found by label.
pub(super) fn dep_digests<'g>(
    graph: &'g Graph,
    i: usize,
    deps: &[&NodeResult],
) -> Vec<(&'g Label, Digest)> {
    let order = &graph.nodes[i].deps;
    let mut digests = Vec::with_capacity(deps.len());
    for (j, r) in deps.iter().enumerate() {
        let node = match order.get(j).map(|&d| &graph.nodes[d]) {
            Some(n) if *n.label() == r.label => Some(n),
            _ => graph.get(&r.label),
        };
        if let Some(node) = node
            && let Some(dg) = super::result::dep_digest(node, r)
        {
            digests.push((node.label(), dg));
        }
    }
    digests
}
