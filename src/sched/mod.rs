//! The graph run: keys, cache lookups, builds in parallel, verdicts.
//!
//! Nodes become ready when all their dependencies have an output; ready
//! nodes run on `jobs` workers, longest remaining path first (estimated
//! from each label's last build time, or its kind). A node's key is computed
//! only when its dependencies are done, from their *output* digests, so a
//! dependency that rebuilt to identical bytes leaves its dependents' keys
//! unchanged (early cutoff).
//!
//! Every node ends with exactly one [`Verdict`]. A failure blocks the nodes
//! that need it; without `keep_going` nothing new starts after the first
//! failure. Failures are never cached.

mod config;
mod cx;
mod events;
mod execute;
mod lookup;
pub mod memo;
mod node;
mod record;
mod result;
pub mod sandbox;

pub use config::{Durations, RunConfig, no_durations};
pub use events::{Event, EventSink, NullSink};
pub use result::{NodeResult, PushStatus, Verdict, dep_digest};
pub use sandbox::{
    DepView, ImagePlan, MountSource, PlanSettings, PlannedMount, RuntimeInfo, SandboxPlan,
    contract_env, image_tag, plan as plan_sandbox,
};

use crate::eval::Graph;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

struct State {
    remaining: Vec<usize>,
    ready: BinaryHeap<(u64, std::cmp::Reverse<usize>)>,
    results: Vec<Option<std::sync::Arc<NodeResult>>>,
    running: usize,
    stop: bool,
}

/// Estimated seconds of a node, for ordering only.
fn estimate(cfg: &RunConfig<'_>, durations: &Durations, graph: &Graph, i: usize) -> u64 {
    let n = &graph.nodes[i];
    let store = cfg.store;
    if let Some(ms) = durations.get(&(n.arch().as_str().to_string(), n.label().to_string())) {
        return ms / 1000 + 1;
    }
    if let Some(rec) = store.labels.get(n.arch(), n.label())
        && let Some(ms) = rec.duration_ms
    {
        return ms / 1000 + 1;
    }
    match n.label().kind {
        crate::rules::Kind::Source => 2,
        crate::rules::Kind::Image => 60,
        crate::rules::Kind::Runtime => 120,
        crate::rules::Kind::Pack => 60,
        crate::rules::Kind::Wheel => 30,
        crate::rules::Kind::Repair => 10,
        crate::rules::Kind::Set => 0,
        crate::rules::Kind::Test => 30,
    }
}

/// Priority of each node: its cost plus the costliest path above it.
fn priorities(cfg: &RunConfig<'_>, graph: &Graph, dependents: &[Vec<usize>]) -> Vec<u64> {
    let durations = (cfg.durations)();
    let mut prio = vec![0u64; graph.nodes.len()];
    for i in (0..graph.nodes.len()).rev() {
        let above = dependents[i].iter().map(|&d| prio[d]).max().unwrap_or(0);
        prio[i] = estimate(cfg, &durations, graph, i) + above;
    }
    prio
}

/// Run the graph; results are indexed like `graph.nodes`.
pub fn run(graph: &Graph, cfg: &RunConfig<'_>) -> Vec<NodeResult> {
    let n = graph.nodes.len();
    cfg.sink.event(&Event::Planned { total: n });
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results = fast_hits(graph, cfg, &done);
    if results.iter().all(Option::is_some) {
        // All answered by the label index (a no-op): nothing to schedule.
        let mut out = Vec::with_capacity(n);
        out.extend(
            results
                .into_iter()
                .flatten()
                .map(|r| std::sync::Arc::try_unwrap(r).unwrap_or_else(|r| (*r).clone())),
        );
        return out;
    }
    let dependents = graph.dependents();
    let prio = priorities(cfg, graph, &dependents);
    // What the fast pass left goes through the scheduler.
    let mut ready = BinaryHeap::new();
    let remaining: Vec<usize> = graph
        .nodes
        .iter()
        .map(|g| g.deps.iter().filter(|&&d| results[d].is_none()).count())
        .collect();
    for (i, r) in remaining.iter().enumerate() {
        if *r == 0 && results[i].is_none() {
            ready.push((prio[i], std::cmp::Reverse(i)));
        }
    }
    let state = Mutex::new(State {
        remaining,
        ready,
        results,
        running: 0,
        stop: false,
    });
    let cv = Condvar::new();
    let workers = cfg.jobs.max(1).min(n.max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| worker(graph, cfg, &dependents, &prio, &state, &cv, &done));
        }
    });
    let st = state.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut k = done.load(std::sync::atomic::Ordering::SeqCst);
    st.results
        .into_iter()
        .enumerate()
        .map(|(i, r)| match r {
            // Every snapshot is gone by now: unwrapping does not copy.
            Some(r) => std::sync::Arc::try_unwrap(r).unwrap_or_else(|r| (*r).clone()),
            None => {
                let res = NodeResult::not_run(
                    graph.nodes[i].label(),
                    Verdict::Skipped,
                    not_started_reason(),
                );
                k += 1;
                cfg.sink.event(&Event::Finished {
                    result: &res,
                    done: k,
                    total: n,
                });
                res
            }
        })
        .collect()
}

/// Why a node did not start, for the one line that says so.
pub fn not_started_reason() -> &'static str {
    if crate::exec::interrupt::requested() {
        "not started: refine was interrupted"
    } else {
        "not started: the run stopped at a failure (--keep-going builds everything that does not depend on one)"
    }
}

/// The no-op fast path: level by level (a node after all its dependencies),
/// on every core, settle the nodes whose key the label index answers.
/// Anything else, and everything above it, is left to the scheduler.
fn fast_hits(
    graph: &Graph,
    cfg: &RunConfig<'_>,
    done: &std::sync::atomic::AtomicUsize,
) -> Vec<Option<std::sync::Arc<NodeResult>>> {
    use rayon::prelude::*;
    let n = graph.nodes.len();
    let mut results: Vec<Option<std::sync::Arc<NodeResult>>> = (0..n).map(|_| None).collect();
    for nodes in graph.levels() {
        let found: Vec<(usize, NodeResult)> = nodes
            .par_iter()
            .filter(|&&i| !cfg.force.contains(&i))
            .filter_map(|&i| {
                let deps: Option<Vec<&NodeResult>> = graph.nodes[i]
                    .deps
                    .iter()
                    .map(|&d| results[d].as_deref())
                    .collect();
                let r = node::indexed_hit(graph, i, &deps?, cfg)?;
                let k = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                cfg.sink.event(&Event::Finished {
                    result: &r,
                    done: k,
                    total: n,
                });
                Some((i, r))
            })
            .collect();
        for (i, r) in found {
            results[i] = Some(std::sync::Arc::new(r));
        }
    }
    results
}

fn worker(
    graph: &Graph,
    cfg: &RunConfig<'_>,
    dependents: &[Vec<usize>],
    prio: &[u64],
    state: &Mutex<State>,
    cv: &Condvar,
    done: &std::sync::atomic::AtomicUsize,
) {
    let n = graph.nodes.len();
    loop {
        let i = {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if crate::exec::interrupt::requested() {
                    st.stop = true;
                }
                if st.stop && st.running == 0 {
                    cv.notify_all();
                    return;
                }
                if !st.stop
                    && let Some((_, std::cmp::Reverse(i))) = st.ready.pop()
                {
                    st.running += 1;
                    break i;
                }
                if st.running == 0 {
                    // Nothing ready, nothing running: the run is over.
                    cv.notify_all();
                    return;
                }
                st = cv
                    .wait_timeout(st, Duration::from_millis(500))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
        };
        let snapshot: Vec<std::sync::Arc<NodeResult>> = {
            let st = state.lock().unwrap_or_else(|e| e.into_inner());
            graph.nodes[i]
                .deps
                .iter()
                .filter_map(|&d| st.results[d].clone())
                .collect()
        };
        let deps: Vec<&NodeResult> = snapshot.iter().map(|r| r.as_ref()).collect();
        cfg.sink.event(&Event::Started {
            label: graph.nodes[i].label(),
        });
        let result = node::process(graph, i, &deps, cfg);
        let k = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        cfg.sink.event(&Event::Finished {
            result: &result,
            done: k,
            total: n,
        });
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        let ok = result.verdict.is_ok();
        // Without --keep-going the first failure stops the run; a failure
        // of the host that every build would meet (podman cannot run at
        // all) stops it in any case.
        if (!ok && !cfg.keep_going) || result.stops_the_run() {
            st.stop = true;
        }
        st.results[i] = Some(std::sync::Arc::new(result));
        st.running -= 1;
        // Release dependents; block the ones a failure leaves without input.
        let mut settle: Vec<usize> = vec![i];
        while let Some(j) = settle.pop() {
            let j_ok = st.results[j].as_ref().is_some_and(|r| r.verdict.is_ok());
            for &d in &dependents[j] {
                if st.results[d].is_some() {
                    continue;
                }
                if !j_ok {
                    let res = NodeResult::not_run(
                        graph.nodes[d].label(),
                        Verdict::Blocked,
                        &format!("needs {}, which did not build", graph.nodes[j].label()),
                    );
                    let k = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    cfg.sink.event(&Event::Finished {
                        result: &res,
                        done: k,
                        total: n,
                    });
                    st.results[d] = Some(std::sync::Arc::new(res));
                    settle.push(d);
                    continue;
                }
                st.remaining[d] -= 1;
                if st.remaining[d] == 0 {
                    st.ready.push((prio[d], std::cmp::Reverse(d)));
                }
            }
        }
        cv.notify_all();
    }
}
