//! One node of a run, as a chain of small stages (after buck2's action
//! execution, where each cache is a layer that answers or passes the
//! command on):
//!
//! ```text
//! key ─► local store ─► remote ─► lock ─► local store again ─► build ─► record ─► push
//!            │             │                    │
//!            └── hit ──────┴────── hit ─────────┘
//! ```
//!
//! [`lookup`](super::lookup) holds the cache layers, [`execute`](super::execute)
//! the build, [`record`](super::record) what is written after it.

use super::lookup::{self, Hit, Pulled};
use super::result::{NodeResult, Verdict, dep_digest};
use super::{Event, RunConfig, execute, record};
use crate::eval::{Derivation, Graph};
use crate::key::{Digest, Key, Preimage};
use crate::rules::Label;
use crate::store::BlobCheck;
use std::collections::HashMap;
use std::time::Instant;

/// Everything the stages of one node share.
pub(super) struct NodeCx<'a> {
    pub graph: &'a Graph,
    pub i: usize,
    pub d: &'a Derivation,
    pub cfg: &'a RunConfig<'a>,
    pub pre: Preimage,
    pub key: Key,
    pub start: Instant,
    /// Rebuilt even when cached (`refine verify`), and not recorded.
    pub forced: bool,
}

impl<'a> NodeCx<'a> {
    pub fn new(
        graph: &'a Graph,
        i: usize,
        deps: &[&NodeResult],
        cfg: &'a RunConfig<'a>,
    ) -> NodeCx<'a> {
        let start = Instant::now();
        let d = &graph.nodes[i].derivation;
        let digests = dep_digests(graph, deps);
        let pre = d.preimage(&|l| digests.get(l).cloned());
        let key = pre.key();
        NodeCx {
            graph,
            i,
            d,
            cfg,
            pre,
            key,
            start,
            forced: cfg.force.contains(&i),
        }
    }

    pub fn arch(&self) -> &'static str {
        self.d.platform.arch.as_str()
    }

    /// Say something about this node that does not fail it.
    pub fn note(&self, res: &mut NodeResult, msg: String) {
        self.cfg.sink.event(&Event::Warning {
            label: Some(&self.d.label),
            message: msg.clone(),
        });
        res.notes.push(msg);
    }

    /// Whether a result made by `executor` may answer this node: a
    /// sandbox build's always, another executor's only for a run of that
    /// same executor (a test's fake results never answer a podman build);
    /// a fixed-output node's whatever made it (its bytes are its pin).
    pub fn trusts(&self, executor: &str) -> bool {
        crate::exec::trusts(
            self.cfg.exec.name(),
            executor,
            self.d.fixed_output().is_some(),
        )
    }
}

pub(super) fn dep_digests<'g>(
    graph: &'g Graph,
    deps: &[&NodeResult],
) -> HashMap<&'g Label, Digest> {
    let mut digests = HashMap::with_capacity(deps.len());
    for r in deps {
        if let Some(node) = graph.get(&r.label)
            && let Some(dg) = dep_digest(&node.derivation, r)
        {
            digests.insert(node.label(), dg);
        }
    }
    digests
}

pub fn process(graph: &Graph, i: usize, deps: &[&NodeResult], cfg: &RunConfig<'_>) -> NodeResult {
    let cx = NodeCx::new(graph, i, deps, cfg);
    let mut res = NodeResult::new(&cx.d.label, Verdict::Failed, Some(cx.key.clone()));
    // A remote fault is said once per node: a failed push after a failed
    // pull shows in the verdict line only.
    let mut remote_noted = false;
    let check = must_verify(graph, i, BlobCheck::Stat);
    if !cx.forced {
        if let Some(hit) = lookup::local(&cx, &mut res, check) {
            return lookup::finish(&cx, hit, res, Verdict::HitLocal);
        }
        match lookup::remote(&cx, &mut res) {
            Pulled::Hit(hit) => return lookup::finish(&cx, hit, res, Verdict::HitRemote),
            Pulled::Miss => {}
            Pulled::Noted => remote_noted = true,
            Pulled::Failed(e) => {
                res.failure = Some(e);
                res.duration = cx.start.elapsed();
                return res;
            }
        }
    }
    // Build, holding the key's lock so a concurrent refine waits for us and
    // then finds our result.
    let _lock = match cfg.store.lock(&cx.key) {
        Ok(l) => l,
        Err(e) => {
            res.failure = Some(e.into());
            res.duration = cx.start.elapsed();
            return res;
        }
    };
    if !cx.forced
        && let Some(hit) = lookup::local(&cx, &mut res, check)
    {
        return lookup::finish(&cx, hit, res, Verdict::HitLocal);
    }
    let built = execute::build(&cx, deps, &mut res);
    res.duration = cx.start.elapsed();
    match built {
        Err(f) => {
            res.failure = Some(f);
            if !cx.forced {
                record::label(&cx, &res);
            }
        }
        Ok(tree) => {
            record::built(&cx, &mut res, tree);
            if !cx.forced {
                record::push(&cx, &mut res, remote_noted);
            }
        }
    }
    res
}

/// The no-op path: a hit answered by the store's label index alone, or
/// `None` (then [`process`] does the full lookup, reporting what it finds).
pub fn indexed_hit(
    graph: &Graph,
    i: usize,
    deps: &[&NodeResult],
    cfg: &RunConfig<'_>,
) -> Option<NodeResult> {
    let cx = NodeCx::new(graph, i, deps, cfg);
    let hit: Hit = lookup::indexed(&cx, must_verify(graph, i, BlobCheck::Exists))?;
    let res = NodeResult::new(&cx.d.label, Verdict::HitLocal, Some(cx.key.clone()));
    Some(lookup::finish(&cx, hit, res, Verdict::HitLocal))
}

/// How a hit's blobs are checked at lookup (so damage is a miss): the
/// wheels that will be delivered are hashed; the no-op path leaves the
/// rest to whatever reads them (every read checks its digest), the full
/// lookup checks them against the stat cache.
pub(super) fn must_verify(graph: &Graph, i: usize, otherwise: BlobCheck) -> BlobCheck {
    let n = &graph.nodes[i];
    if n.requested && super::sandbox::makes_wheels(n.derivation.label.kind) {
        BlobCheck::Hash
    } else {
        otherwise
    }
}
