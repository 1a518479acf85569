//! `refine build --profile FILE`: where a run's time went, as a Chrome
//! trace (the JSON of the Trace Event Format that Perfetto,
//! `chrome://tracing` and speedscope open; Bazel's `--profile` writes the
//! same kind of file).
//!
//! Every node of the run is a complete event (`"ph": "X"`) on a lane: the
//! lanes are the run's slots, found by packing the nodes' intervals into as
//! few lanes as the run's concurrency needs (the first lane free when a
//! node starts). The critical path, the chain of dependencies that ends
//! last (each node's dependency that finished last, back from the node
//! that finished last), is marked on its events (`args.critical`) and drawn
//! again on a lane of its own, as Bazel's profile does. A node's interval
//! is from its start (when the scheduler started it; for a hit settled by
//! the no-op pass, its finish less its duration) to its finish.

use crate::eval::Graph;
use crate::rules::Label;
use crate::sched::{Event, EventSink, NodeResult};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// When a node started and finished, in microseconds since the run began.
type Times = HashMap<Label, (Option<u64>, Option<u64>)>;

/// When each node of a run started and finished, as the events say.
pub struct Spans {
    origin: Instant,
    times: Mutex<Times>,
}

impl Default for Spans {
    fn default() -> Self {
        Spans {
            origin: Instant::now(),
            times: Mutex::new(HashMap::new()),
        }
    }
}

impl Spans {
    fn now_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }

    pub fn started(&self, label: &Label) {
        let t = self.now_us();
        let mut times = self.times.lock().unwrap_or_else(|e| e.into_inner());
        times.entry(label.clone()).or_default().0 = Some(t);
    }

    pub fn finished(&self, label: &Label) {
        let t = self.now_us();
        let mut times = self.times.lock().unwrap_or_else(|e| e.into_inner());
        times.entry(label.clone()).or_default().1 = Some(t);
    }

    /// Each result's interval: from its start (or, for a node that never
    /// said it started, its finish less its duration) to its finish; None
    /// for a node whose finish was not noted.
    pub fn of(&self, results: &[NodeResult]) -> Vec<Option<(u64, u64)>> {
        let times = self.times.lock().unwrap_or_else(|e| e.into_inner());
        results
            .iter()
            .map(|r| {
                let (start, end) = times.get(&r.label).copied().unwrap_or((None, None));
                let end = end?;
                let dur = r.duration.as_micros() as u64;
                Some((start.unwrap_or(end.saturating_sub(dur)).min(end), end))
            })
            .collect()
    }

    /// The labels on the run's critical path.
    pub fn critical_path(&self, graph: &Graph, results: &[NodeResult]) -> Vec<Label> {
        let spans = self.of(results);
        let deps: Vec<&[usize]> = graph.nodes.iter().map(|n| n.deps.as_slice()).collect();
        critical_path(&spans, &deps)
            .into_iter()
            .map(|i| results[i].label.clone())
            .collect()
    }
}

/// An [`EventSink`] that passes every event on and notes when each node
/// started and finished.
pub struct Profiler<'a> {
    inner: &'a dyn EventSink,
    spans: Spans,
}

impl<'a> Profiler<'a> {
    pub fn new(inner: &'a dyn EventSink) -> Profiler<'a> {
        Profiler {
            inner,
            spans: Spans::default(),
        }
    }

    /// The trace of a run that reported `results` over `graph`.
    pub fn trace(&self, graph: &Graph, results: &[NodeResult]) -> serde_json::Value {
        let spans = self.spans.of(results);
        let deps: Vec<&[usize]> = graph.nodes.iter().map(|n| n.deps.as_slice()).collect();
        trace_of(&results.iter().collect::<Vec<_>>(), &spans, &deps)
    }

    /// Write the trace to `path` (atomically: a file that is there is whole).
    pub fn write(
        &self,
        path: &Path,
        graph: &Graph,
        results: &[NodeResult],
    ) -> crate::error::Result<()> {
        let doc = self.trace(graph, results);
        let bytes = serde_json::to_vec(&doc).unwrap_or_default();
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let dir = abs.parent().unwrap_or(Path::new("."));
        crate::store::local::write_atomic(dir, &abs, &bytes).map_err(|e| {
            crate::error::Error::user(format!("--profile {}: {e}", path.display()))
                .hint("give --profile a file in a directory you can write")
        })
    }
}

impl EventSink for Profiler<'_> {
    fn event(&self, e: &Event<'_>) {
        match e {
            Event::Started { label } => self.spans.started(label),
            Event::Finished { result, .. } => self.spans.finished(&result.label),
            _ => {}
        }
        self.inner.event(e);
    }
}

/// Lanes for intervals: each goes to the first lane free at its start
/// (intervals taken by start, then by end). As many lanes as the most
/// intervals that overlap.
pub fn lanes(spans: &[Option<(u64, u64)>]) -> Vec<Option<usize>> {
    let mut order: Vec<usize> = (0..spans.len()).filter(|&i| spans[i].is_some()).collect();
    order.sort_by_key(|&i| spans[i]);
    let mut free_at: Vec<u64> = Vec::new();
    let mut out = vec![None; spans.len()];
    for i in order {
        let Some((start, end)) = spans[i] else {
            continue;
        };
        let lane = match free_at.iter().position(|&f| f <= start) {
            Some(l) => l,
            None => {
                free_at.push(0);
                free_at.len() - 1
            }
        };
        free_at[lane] = end.max(start);
        out[i] = Some(lane);
    }
    out
}

/// Lanes for intervals, this machine's first (`slot N`), then each remote
/// worker's (named for it): a lane is one build at a time on one of them.
/// Returns each interval's lane and the lanes' names.
pub fn lanes_by_worker(
    spans: &[Option<(u64, u64)>],
    workers: &[Option<&str>],
) -> (Vec<Option<usize>>, Vec<String>) {
    let mut groups: std::collections::BTreeMap<Option<&str>, Vec<usize>> =
        std::collections::BTreeMap::new();
    for (i, w) in workers.iter().enumerate().take(spans.len()) {
        groups.entry(*w).or_default().push(i);
    }
    let mut out: Vec<Option<usize>> = vec![None; spans.len()];
    let mut names: Vec<String> = Vec::new();
    for (worker, members) in &groups {
        let sub: Vec<Option<(u64, u64)>> = members.iter().map(|&i| spans[i]).collect();
        let packed = lanes(&sub);
        let base = names.len();
        let count = packed.iter().flatten().max().map_or(0, |m| m + 1);
        for (k, &i) in members.iter().enumerate() {
            out[i] = packed[k].map(|l| base + l);
        }
        for l in 0..count {
            names.push(match worker {
                None => format!("slot {}", l + 1),
                Some(w) if count == 1 => w.to_string(),
                Some(w) => format!("{w} #{}", l + 1),
            });
        }
    }
    (out, names)
}

/// The critical path: from the node that finished last, back through each
/// node's dependency that finished last; in the order they ran.
pub fn critical_path(spans: &[Option<(u64, u64)>], deps: &[&[usize]]) -> Vec<usize> {
    let end = |i: usize| spans.get(i).copied().flatten().map(|s| s.1);
    let Some(mut at) = (0..spans.len())
        .filter(|&i| end(i).is_some())
        .max_by_key(|&i| (end(i), std::cmp::Reverse(i)))
    else {
        return Vec::new();
    };
    let mut path = vec![at];
    // (At most one step per node: the graph has no cycles, and a path
    // that met one would stop there.)
    while path.len() <= spans.len()
        && let Some(prev) = deps
            .get(at)
            .into_iter()
            .flat_map(|d| d.iter().copied())
            .filter(|&d| end(d).is_some())
            .max_by_key(|&d| (end(d), std::cmp::Reverse(d)))
    {
        path.push(prev);
        at = prev;
    }
    path.reverse();
    path
}

/// The lane the critical path is drawn again on.
const CRITICAL_LANE: usize = 1_000_000;

fn trace_of(
    results: &[&NodeResult],
    spans: &[Option<(u64, u64)>],
    deps: &[&[usize]],
) -> serde_json::Value {
    use serde_json::json;
    let workers: Vec<Option<&str>> = results.iter().map(|r| r.worker.as_deref()).collect();
    let (lane, names) = lanes_by_worker(spans, &workers);
    let critical = critical_path(spans, deps);
    let on_path: std::collections::HashSet<usize> = critical.iter().copied().collect();
    let mut events = Vec::new();
    for (l, name) in names.iter().enumerate() {
        events.push(json!({
            "name": "thread_name", "ph": "M", "pid": 1, "tid": l,
            "args": {"name": name},
        }));
    }
    if !critical.is_empty() {
        events.push(json!({
            "name": "thread_name", "ph": "M", "pid": 1, "tid": CRITICAL_LANE,
            "args": {"name": "critical path"},
        }));
    }
    events.push(json!({
        "name": "process_name", "ph": "M", "pid": 1,
        "args": {"name": "refine build"},
    }));
    let event = |i: usize, tid: usize| {
        let r = results[i];
        let (start, end) = spans[i].unwrap_or_default();
        json!({
            "name": r.label.to_string(),
            "cat": r.verdict.as_str(),
            "ph": "X",
            "ts": start,
            "dur": end - start,
            "pid": 1,
            "tid": tid,
            "args": {
                "verdict": r.verdict.as_str(),
                "key": r.key.as_ref().map(|k| k.0.as_str()),
                "output": r.output.as_ref().map(|d| d.to_string()),
                "critical": on_path.contains(&i),
                "worker": r.worker,
            },
        })
    };
    for (i, l) in lane.iter().enumerate() {
        if let Some(l) = l {
            events.push(event(i, *l));
        }
    }
    for &i in &critical {
        events.push(event(i, CRITICAL_LANE));
    }
    let path_us: u64 = critical
        .iter()
        .filter_map(|&i| spans[i].map(|(s, e)| e - s))
        .sum();
    json!({
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "refine": env!("CARGO_PKG_VERSION"),
            "critical_path": critical.iter().map(|&i| results[i].label.to_string()).collect::<Vec<_>>(),
            "critical_path_ms": path_us / 1000,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::Verdict;

    #[test]
    fn intervals_take_the_first_free_lane() {
        let s = |a, b| Some((a, b));
        // a [0,10) and b [0,5) overlap; c [5,8) fits after b; d [10,12)
        // after a; e has no interval.
        let spans = [s(0, 10), s(0, 5), s(5, 8), s(10, 12), None];
        assert_eq!(lanes(&spans), [Some(1), Some(0), Some(0), Some(0), None]);
        // Three at once: three lanes.
        assert_eq!(
            lanes(&[s(0, 3), s(1, 3), s(2, 3)]),
            [Some(0), Some(1), Some(2)]
        );
    }

    #[test]
    fn the_critical_path_follows_the_dependency_that_finished_last() {
        let s = |a, b| Some((a, b));
        // 0 and 1 are leaves; 2 needs both (1 finished later); 3 needs 0
        // only and finished before 2.
        let spans = [s(0, 4), s(0, 9), s(9, 20), s(4, 6)];
        let deps: [&[usize]; 4] = [&[], &[], &[0, 1], &[0]];
        assert_eq!(critical_path(&spans, &deps), [1, 2]);
        assert_eq!(
            critical_path(&[None, None], &[&[], &[]]),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn a_trace_is_what_chrome_and_perfetto_read() {
        let l = |n: &str| -> Label { n.parse().unwrap() };
        let a = NodeResult::new(&l("//packs:zlib"), Verdict::Built, None);
        let b = NodeResult::new(&l("//wheels:w"), Verdict::HitLocal, None);
        let spans = [Some((0, 3_000)), Some((3_000, 5_000))];
        let deps: [&[usize]; 2] = [&[], &[0]];
        let t = trace_of(&[&a, &b], &spans, &deps);
        let ev = t["traceEvents"].as_array().unwrap();
        let x: Vec<&serde_json::Value> = ev.iter().filter(|e| e["ph"] == "X").collect();
        // Each node once on its slot, and again on the critical path's lane.
        assert_eq!(x.len(), 4);
        assert_eq!(x[0]["name"], "//packs:zlib");
        assert_eq!(
            (x[0]["ts"].as_u64(), x[0]["dur"].as_u64()),
            (Some(0), Some(3_000))
        );
        assert_eq!(x[1]["cat"], "hit:local");
        assert_eq!(x[1]["args"]["critical"], true);
        assert!(x[2..].iter().all(|e| e["tid"] == CRITICAL_LANE));
        assert_eq!(t["otherData"]["critical_path"][1], "//wheels:w");
        assert_eq!(t["otherData"]["critical_path_ms"], 5);
        assert!(
            ev.iter()
                .any(|e| e["ph"] == "M" && e["args"]["name"] == "slot 1")
        );
    }

    /// A remote worker's builds get lanes of their own, named for it,
    /// after this machine's slots, packed as the slots are.
    #[test]
    fn each_worker_has_lanes_of_its_own() {
        let spans = [
            Some((0, 10)),
            Some((0, 10)),
            Some((2, 4)),
            Some((5, 6)),
            None,
        ];
        let workers = [None, Some("w1"), Some("w1"), Some("w2"), None];
        let (lanes, names) = lanes_by_worker(&spans, &workers);
        assert_eq!(names, ["slot 1", "w1 #1", "w1 #2", "w2"]);
        assert_eq!(lanes, [Some(0), Some(1), Some(2), Some(3), None]);
    }
}
