//! The server's build queue: jobs (targets to build) drained one at a time
//! by one worker thread, so that the server runs one build at a time per
//! store. Each build is an ordinary `refine build --keep-going` (or, for
//! an import's "build and test", `refine test --keep-going` of its set),
//! recorded in the history like any other.

use super::Shared;
use std::sync::{Condvar, Mutex};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Running,
    Done,
    Failed,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Job {
    pub id: u64,
    pub targets: Vec<String>,
    /// Why it was asked for ("rebuild", "retry of run 7").
    pub reason: String,
    /// Build the sets and test them (`refine test --keep-going`).
    pub test: bool,
    pub state: State,
    pub submitted_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// The history's run of it, once it ran.
    pub run: Option<i64>,
    pub message: Option<String>,
}

#[derive(Default)]
pub struct Queue {
    jobs: Mutex<Vec<Job>>,
    cv: Condvar,
}

impl Queue {
    pub fn submit_job(&self, targets: Vec<String>, reason: String, test: bool) -> Job {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let job = Job {
            id: jobs.len() as u64 + 1,
            targets,
            reason,
            test,
            state: State::Queued,
            submitted_ms: crate::history::now_ms(),
            started_ms: None,
            finished_ms: None,
            run: None,
            message: None,
        };
        jobs.push(job.clone());
        self.cv.notify_all();
        job
    }

    pub fn jobs(&self) -> Vec<Job> {
        let mut v = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        v.reverse();
        v
    }

    /// Jobs not done yet.
    pub fn depth(&self) -> usize {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|j| matches!(j.state, State::Queued | State::Running))
            .count()
    }

    fn next(&self) -> Option<Job> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if crate::exec::interrupt::requested() {
                return None;
            }
            if let Some(j) = jobs.iter_mut().find(|j| j.state == State::Queued) {
                j.state = State::Running;
                j.started_ms = Some(crate::history::now_ms());
                return Some(j.clone());
            }
            jobs = self
                .cv
                .wait_timeout(jobs, std::time::Duration::from_millis(300))
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// The job's run, as soon as it begins (a job that builds and tests
    /// has two: the set's build, then its test).
    fn set_run(&self, id: u64, run: i64) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(j) = jobs.iter_mut().find(|j| j.id == id) {
            j.run = Some(run);
        }
    }

    fn finish(&self, id: u64, state: State, run: Option<i64>, message: Option<String>) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(j) = jobs.iter_mut().find(|j| j.id == id) {
            j.state = state;
            j.run = run.or(j.run);
            j.message = message;
            j.finished_ms = Some(crate::history::now_ms());
        }
    }
}

/// The worker: one build at a time, until the server stops. The server
/// joins it before it exits, so a build it runs (and the mmdebstrap or
/// container under it) is stopped and cleaned up, never left behind.
pub fn start(app: Shared) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while let Some(job) = app.queue.next() {
            let (state, run, message) = run_job(&app, &job);
            app.queue.finish(job.id, state, run, message);
        }
    })
}

fn run_job(app: &Shared, job: &Job) -> (State, Option<i64>, Option<String>) {
    let session = match crate::ops::Session::load(&app.global) {
        Ok(s) => s,
        Err(e) => return (State::Failed, None, Some(e.message)),
    };
    let (a, id) = (app.clone(), job.id);
    let args = crate::ops::build::BuildArgs {
        patterns: job.targets.clone(),
        keep_going: true,
        verb: Some("serve"),
        on_run: crate::ops::build::OnRun::new(move |run| a.queue.set_run(id, run)),
        ..Default::default()
    };
    if job.test {
        // The set's build first (its wheels are what the run delivers, to
        // dist/ and the package index), then its test.
        if let Err(e) = crate::ops::build::build(&session, &args, &crate::sched::NullSink) {
            return (State::Failed, None, Some(e.message));
        }
        let args = crate::ops::build::BuildArgs {
            verb: Some("serve test"),
            ..args
        };
        return match crate::ops::test::test(&session, &job.targets, &args, &crate::sched::NullSink)
        {
            Ok(t) => {
                let run = t.build.run;
                if t.failed() {
                    let message = t
                        .build
                        .error()
                        .map(|e| e.message)
                        .unwrap_or_else(|| "a test failed".into());
                    (State::Failed, run, Some(message))
                } else {
                    (State::Done, run, None)
                }
            }
            Err(e) => (State::Failed, None, Some(e.message)),
        };
    }
    let r = crate::ops::build::build(&session, &args, &crate::sched::NullSink);
    match r {
        Ok(report) => match report.error() {
            None => (State::Done, report.run, None),
            Some(e) => (State::Failed, report.run, Some(e.message)),
        },
        Err(e) => (State::Failed, None, Some(e.message)),
    }
}
