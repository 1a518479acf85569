//! A run's record in the store's history ([`crate::history`]): a sink
//! that writes each node's start (with its log) and end as the run goes,
//! beside the sink that prints; and `refine history`'s queries.
//!
//! A run records what it did, and counts the rest: what built, failed,
//! was pulled or was not run gets a row as it happens (for whoever
//! watches); a hit from the local store gets a row only when it says
//! something the history does not already hold, i.e. a target the run
//! named whose output is not the newest recorded for it (named for the
//! first time, or an older output back). Every other hit is counted in
//! the run's `hits`. A no-op of a large graph then writes one row, not
//! one per node (it was 20,000 a no-op, and the history grew by that
//! much every time). Rows are written in batches ([`HIT_BATCH`]).
//!
//! The newest good output of each named target (`deliverables`) is what
//! the package index of `refine serve` reads; a run updates it at its end.
//!
//! Recording never fails a build: errors are said once, as a warning.

use crate::history::{Filter, Finished, History, ResultRow, RunRow};
use crate::rules::Label;
use crate::sched::{Event, EventSink, NodeResult};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Records a run while passing every event on.
pub struct Recorder<'a> {
    inner: &'a dyn EventSink,
    db: std::sync::Arc<Mutex<History>>,
    pub run: i64,
    /// Arch and toolchain name of each label's platform, and whether the
    /// run named it.
    toolchain: &'a (dyn Fn(&Label) -> (String, String, bool) + Sync),
    warned: AtomicBool,
    /// Hits not written yet.
    hits: Mutex<Vec<Finished>>,
    /// The newest good output of each named target, as recorded before
    /// this run: `(arch, label) -> output`. Read on a thread of its own
    /// while the run starts (10,000 rows are ~10 ms; the run's first
    /// named target is usually settled well after that), taken when the
    /// first named target finishes.
    delivered: std::sync::OnceLock<Delivered>,
    reading: Mutex<Option<std::thread::JoinHandle<Delivered>>>,
    /// What this run changes of it.
    delivering: Mutex<Vec<(String, String, String)>>,
    /// When the nodes the scheduler ran started and finished (the no-op
    /// pass's hits are left out: they take no time), for the critical
    /// path the run page draws.
    spans: super::profile::Spans,
}

/// `(arch, label) -> output` of the named targets' newest good outputs.
type Delivered = std::collections::HashMap<(String, String), String>;

/// Hits written per transaction.
pub const HIT_BATCH: usize = 4096;

impl<'a> Recorder<'a> {
    /// Open the history and begin a run; None (after a warning) if the
    /// history cannot be had at all.
    pub fn begin(
        store: &Path,
        command: &str,
        workspace: &Path,
        arch: &str,
        toolchain_name: &str,
        inner: &'a dyn EventSink,
        toolchain: &'a (dyn Fn(&Label) -> (String, String, bool) + Sync),
    ) -> Option<Recorder<'a>> {
        let warn = |m: String| {
            inner.event(&Event::Warning {
                label: None,
                message: m,
            })
        };
        let (db, note) = match History::open(store) {
            Ok(x) => x,
            Err(e) => {
                warn(format!("history: {e}; this run is not recorded"));
                return None;
            }
        };
        if let Some(n) = note {
            warn(format!("history: {n}"));
        }
        if let Ok(n) = db.settle_dead_runs()
            && n > 0
        {
            warn(format!(
                "history: {n} build(s) of refine processes that are gone are recorded as interrupted"
            ));
        }
        match db.begin_run(command, workspace, arch, toolchain_name) {
            Ok(run) => {
                let db = std::sync::Arc::new(Mutex::new(db));
                let shared = db.clone();
                let read = move || -> Delivered {
                    let db = shared.lock().unwrap_or_else(|e| e.into_inner());
                    db.deliverables()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, (output, _))| (k, output))
                        .collect()
                };
                // No thread to be had: read here.
                let (delivered, reading) = match std::thread::Builder::new()
                    .name("refine-history".into())
                    .spawn(read.clone())
                {
                    Ok(h) => (std::sync::OnceLock::new(), Some(h)),
                    Err(_) => (std::sync::OnceLock::from(read()), None),
                };
                Some(Recorder {
                    inner,
                    db,
                    run,
                    toolchain,
                    warned: AtomicBool::new(false),
                    hits: Mutex::new(Vec::new()),
                    delivered,
                    reading: Mutex::new(reading),
                    delivering: Mutex::new(Vec::new()),
                    spans: super::profile::Spans::default(),
                })
            }
            Err(e) => {
                warn(format!("history: {e}; this run is not recorded"));
                None
            }
        }
    }

    fn say(&self, what: rusqlite::Result<()>) {
        if let Err(e) = &what {
            let _ = self.with(|db| {
                db.note_error(e);
                Ok(())
            });
        }
        if let Err(e) = what
            && !self.warned.swap(true, Ordering::SeqCst)
        {
            self.inner.event(&Event::Warning {
                label: None,
                message: format!("history: {e}; the rest of this run may not be recorded"),
            });
        }
    }

    /// The newest good outputs recorded before this run (waiting for
    /// their reading if it is not done).
    fn delivered(&self) -> &Delivered {
        self.delivered.get_or_init(|| {
            let h = self
                .reading
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            h.and_then(|h| h.join().ok()).unwrap_or_default()
        })
    }

    fn with<T>(&self, f: impl FnOnce(&History) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        f(&db)
    }

    fn finished(&self, r: &NodeResult) {
        use crate::sched::Verdict;
        let (arch, tc, requested) = (self.toolchain)(&r.label);
        // A named target's good output that is not the newest recorded
        // for it: the package index's to know, and a hit's row to write.
        let news = match (&r.output, requested, r.verdict.is_ok()) {
            (Some(o), true, true) => {
                let o = o.to_string();
                let key = (arch.clone(), r.label.to_string());
                let new = self.delivered().get(&key) != Some(&o);
                if new {
                    self.delivering
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((key.0, key.1, o));
                }
                new
            }
            _ => false,
        };
        if r.verdict == Verdict::HitLocal && !news {
            // Counted in the run's hits; nothing new to say of it.
            return;
        }
        if matches!(r.verdict, Verdict::HitLocal | Verdict::HitRemote) {
            let full = {
                let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
                hits.push(Finished {
                    label: r.label.to_string(),
                    arch,
                    toolchain: tc,
                    key: r.key.as_ref().map(|k| k.0.clone()),
                    output: r.output.as_ref().map(|o| o.to_string()),
                    verdict: r.verdict.as_str(),
                    duration_ms: r.duration.as_millis() as i64,
                    log: r.log.as_ref().map(|p| p.display().to_string()),
                    error: None,
                    requested,
                });
                hits.len() >= HIT_BATCH
            };
            if full {
                self.flush_hits();
            }
            return;
        }
        let res = self.with(|db| {
            db.finished_as(
                self.run,
                &r.label,
                &arch,
                &tc,
                r.key.as_ref().map(|k| k.0.as_str()),
                r.output.as_ref().map(|o| o.to_string()).as_deref(),
                r.verdict.as_str(),
                r.duration.as_millis() as i64,
                r.log.as_deref(),
                r.failure.as_ref().map(|f| f.message.as_str()),
                requested,
            )?;
            match &r.worker {
                Some(w) => db.set_worker(self.run, &r.label, w),
                None => Ok(()),
            }
        });
        self.say(res);
    }

    /// The recorded durations, for the scheduler's estimates (empty if
    /// the history cannot say).
    pub fn durations(&self) -> crate::sched::Durations {
        self.with(|db| db.durations()).unwrap_or_default()
    }

    /// Record the named targets' new outputs.
    fn flush_delivering(&self) {
        let delivering =
            std::mem::take(&mut *self.delivering.lock().unwrap_or_else(|e| e.into_inner()));
        let res = self.with(|db| db.set_deliverables(self.run, &delivering));
        self.say(res);
    }

    /// Write the hits held back.
    fn flush_hits(&self) {
        let batch = std::mem::take(&mut *self.hits.lock().unwrap_or_else(|e| e.into_inner()));
        if batch.is_empty() {
            return;
        }
        let res = self.with(|db| db.finished_batch(self.run, &batch));
        self.say(res);
    }

    /// End the run with its counts, each failure's hints and its critical
    /// path (`results` are `graph`'s nodes').
    pub fn end(
        &self,
        graph: &crate::eval::Graph,
        results: &[NodeResult],
        hints: &[(Label, String)],
    ) {
        self.flush_hits();
        self.flush_delivering();
        use crate::sched::Verdict;
        let count = |v: Verdict| results.iter().filter(|r| r.verdict == v).count() as i64;
        let counts = [
            count(Verdict::Built),
            count(Verdict::HitLocal) + count(Verdict::HitRemote),
            count(Verdict::Failed),
            count(Verdict::Blocked),
            count(Verdict::Skipped),
        ];
        let mut by: std::collections::BTreeMap<&Label, Vec<String>> = Default::default();
        for (l, h) in hints {
            by.entry(l).or_default().push(h.clone());
        }
        let critical = self.spans.critical_path(graph, results);
        let res = self.with(|db| {
            for (l, h) in &by {
                db.set_hints(self.run, l, h)?;
            }
            if !critical.is_empty() {
                db.set_critical(self.run, &critical)?;
            }
            db.end_run(self.run, counts)
        });
        self.say(res);
    }
}

/// A run that ends without [`Recorder::end`] (an error above it) still
/// records its hits.
/// The history closes (and marks itself clean) on this thread, never on
/// the reader of its deliverables, which a process that exits next would
/// cut short.
impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        self.flush_hits();
        self.flush_delivering();
        let h = self
            .reading
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = h {
            let _ = h.join();
        }
    }
}

impl EventSink for Recorder<'_> {
    fn event(&self, e: &Event<'_>) {
        match e {
            Event::Building { label, log } => {
                let (arch, tc, _) = (self.toolchain)(label);
                let res = self.with(|db| db.started(self.run, label, &arch, &tc, log));
                self.say(res);
            }
            Event::Started { label } => self.spans.started(label),
            Event::Finished { result, .. } => {
                if result.verdict != crate::sched::Verdict::HitLocal {
                    self.spans.finished(&result.label);
                }
                self.finished(result)
            }
            _ => {}
        }
        self.inner.event(e);
    }
}

/// What `refine history` asks.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub label: Option<String>,
    pub failures: bool,
    pub slowest: bool,
    pub recent: usize,
}

pub enum Answer {
    Runs(Vec<RunRow>),
    /// The results, and for each, the policy reports of its repaired
    /// wheels (from the store, where the output is still there).
    Results(Vec<ResultRow>, Vec<Vec<crate::wheel::policy::PolicyReport>>),
}

pub fn query(store: &Path, q: &Query) -> crate::error::Result<(Answer, Option<String>)> {
    let (h, note) = History::open(store)?;
    let err = |e: rusqlite::Error| {
        crate::error::Error::env(format!("history: {e}")).hint(
            "the history database may be damaged: run `refine history` again (it is made anew)",
        )
    };
    let limit = if q.recent == 0 { 20 } else { q.recent };
    if q.label.is_none() && !q.failures && !q.slowest {
        return Ok((Answer::Runs(h.runs(limit).map_err(err)?), note));
    }
    let f = Filter {
        label: q.label.clone(),
        verdict: q.failures.then(|| "failed".to_string()),
        slowest: q.slowest,
        limit,
        ..Default::default()
    };
    let rows = h.results(&f).map_err(err)?;
    let local = crate::store::LocalStore::open(store).ok();
    let policies = rows
        .iter()
        .map(|r| {
            let (Some(store), Some(out)) = (&local, &r.output) else {
                return Vec::new();
            };
            crate::key::Digest::parse(out)
                .ok()
                .and_then(|d| store.cas.tree(&d).ok())
                .map(|t| {
                    super::build::policy_reports(store, &t)
                        .into_values()
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    Ok((Answer::Results(rows, policies), note))
}
