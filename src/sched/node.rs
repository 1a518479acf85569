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
//! Each stage returns what it came to: [`lookup`](super::lookup) a hit or
//! nothing, [`execute`](super::execute) a tree or a failure (and its log),
//! [`record`](super::record) what could not be written. [`process`] folds
//! them into one [`Outcome`], and the node's [`NodeResult`] is made from it
//! once, in [`settle`].

use super::config::RunConfig;
use super::cx::NodeCx;
use super::lookup::{self, Hit, Pulled};
use super::result::{NodeResult, Verdict};
use super::{execute, record};
use crate::error::Error;
use crate::eval::Graph;
use crate::store::BlobCheck;
use std::path::PathBuf;

/// What a node's stages came to.
pub(super) enum Outcome {
    /// Answered by a cache (`hit:local` or `hit:remote`).
    Hit(Verdict, Hit),
    /// Built, its output stored.
    Built { hit: Hit, log: PathBuf },
    /// Failed, with its log when a build started.
    Failed { error: Error, log: Option<PathBuf> },
    /// Not built: its last build at this key failed, with this log.
    KnownFailure { error: Error, log: Option<PathBuf> },
}

pub fn process(graph: &Graph, i: usize, deps: &[&NodeResult], cfg: &RunConfig<'_>) -> NodeResult {
    let cx = NodeCx::new(graph, i, deps, cfg);
    let (outcome, remote_noted) = run(&cx, deps);
    settle(&cx, outcome, remote_noted)
}

/// The stages, up to what they came to. The second value says a remote
/// fault was already noted (then a failed push says no more).
fn run(cx: &NodeCx<'_>, deps: &[&NodeResult]) -> (Outcome, bool) {
    let check = must_verify(cx.graph, cx.i, BlobCheck::Stat);
    let mut remote_noted = false;
    if !cx.forced {
        if let Some(hit) = lookup::local(cx, check) {
            return (Outcome::Hit(Verdict::HitLocal, hit), false);
        }
        match lookup::remote(cx) {
            Pulled::Hit(hit) => return (Outcome::Hit(Verdict::HitRemote, hit), false),
            Pulled::Miss => {}
            Pulled::Noted => remote_noted = true,
            Pulled::Failed(error) => return (Outcome::Failed { error, log: None }, true),
        }
    }
    if cx.cfg.skip_known_failures
        && !cx.forced
        && let Some(known) = lookup::known_failure(cx)
    {
        return (known, remote_noted);
    }
    // Build, holding the key's lock so a concurrent refine waits for us and
    // then finds our result.
    let _lock = match cx.cfg.store.locks.key(&cx.key) {
        Ok(l) => l,
        Err(e) => {
            let outcome = Outcome::Failed {
                error: e.into(),
                log: None,
            };
            return (outcome, remote_noted);
        }
    };
    if !cx.forced
        && let Some(hit) = lookup::local(cx, check)
    {
        return (Outcome::Hit(Verdict::HitLocal, hit), remote_noted);
    }
    let (log, built) = execute::build(cx, deps);
    let outcome = match built {
        Err(error) => Outcome::Failed { error, log },
        Ok(tree) => {
            let hit = (tree.digest(), tree);
            match record::action(cx, &hit.1, log.as_deref()) {
                Ok(()) => Outcome::Built {
                    hit,
                    log: log.unwrap_or_default(),
                },
                Err(error) => Outcome::Failed { error, log },
            }
        }
    };
    (outcome, remote_noted)
}

/// Make the node's result from its outcome, and write what follows from
/// it: its line in the label index, and (with `--push`) its push.
fn settle(cx: &NodeCx<'_>, outcome: Outcome, remote_noted: bool) -> NodeResult {
    let mut res = NodeResult::new(cx.label(), Verdict::Failed, Some(cx.key.clone()));
    res.duration = cx.start.elapsed();
    match outcome {
        Outcome::Hit(verdict, (output, tree)) => {
            res.verdict = verdict;
            res.output = Some(output);
            res.tree = Some(tree);
            let (log, same) = record::hit_state(cx, &res);
            res.log = log;
            if !same {
                record::label(cx, &res);
            }
        }
        Outcome::Built {
            hit: (output, tree),
            log,
        } => {
            res.verdict = Verdict::Built;
            res.worker = cx.worker();
            res.preimage = Some(cx.pre().clone());
            res.output = Some(output);
            res.log = Some(log);
            res.tree = Some(tree);
            if !cx.forced {
                record::label(cx, &res);
                res.push = res
                    .tree
                    .as_ref()
                    .and_then(|t| record::push(cx, t, remote_noted));
            }
        }
        Outcome::Failed { error, log } => {
            res.failure = Some(error);
            res.log = log;
            if !cx.forced {
                record::label(cx, &res);
            }
        }
        // The label index already says it (with the failure's own time).
        Outcome::KnownFailure { error, log } => {
            res.failure = Some(error);
            res.log = log;
            res.known_failure = true;
        }
    }
    res.notes = cx.take_notes();
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
    Some(settle(&cx, Outcome::Hit(Verdict::HitLocal, hit), false))
}

/// How a hit's blobs are checked at lookup (so damage is a miss): the
/// wheels that will be delivered are hashed; the no-op path leaves the
/// rest to whatever reads them (every read checks its digest), the full
/// lookup checks them against the stat cache.
pub(super) fn must_verify(graph: &Graph, i: usize, otherwise: BlobCheck) -> BlobCheck {
    let n = &graph.nodes[i];
    if n.requested && super::sandbox::makes_wheels(n.label().kind) {
        BlobCheck::Hash
    } else {
        otherwise
    }
}
