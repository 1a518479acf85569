//! `refine build`

use super::printer::Printer;
use crate::error::{Exit, Result};
use crate::ops::build::{BuildArgs, build};
use crate::ops::{GlobalOpts, Session};
use clap::Args;

#[derive(Args, Debug)]
pub struct BuildCmd {
    /// What to build and how: the options the dashboard's queue fills too.
    #[command(flatten)]
    pub args: BuildArgs,
    /// When a generated wheel (`refine import`) fails and the hint catalog
    /// knows the fix, record it in its import, regenerate, and build again;
    /// at most N times (`--auto-apply=N`; default 3).
    #[arg(long, value_name = "N", num_args = 0..=1, require_equals = true, default_missing_value = "3")]
    pub auto_apply: Option<u32>,
    /// Write where the run's time went as a Chrome trace (Perfetto and
    /// chrome://tracing open it): each node a bar on its slot, the
    /// critical path marked. With --auto-apply, the last round's.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<std::path::PathBuf>,
}

pub fn run(c: &BuildCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    crate::exec::interrupt::install();
    let args = &c.args;
    let mut round = 0;
    let mut rounds = crate::ops::hints::Rounds::default();
    // The fixes of the last round, in the history: settled by the next.
    let mut pending: Vec<(i64, String)> = Vec::new();
    loop {
        let s = Session::load(&GlobalOpts {
            read_ahead: true,
            ..opts.clone()
        })?;
        let store = s.store_path.clone();
        // Not freed: the process exits next (or after a few rounds of
        // --auto-apply), and freeing every node's result costs time.
        let profiler = c
            .profile
            .as_ref()
            .map(|_| crate::ops::profile::Profiler::new(p));
        let sink: &dyn crate::sched::EventSink = match &profiler {
            Some(pr) => pr,
            None => p,
        };
        let report = std::mem::ManuallyDrop::new(build(&s, args, sink)?);
        if let (Some(pr), Some(path)) = (&profiler, &c.profile) {
            pr.write(path, &report.graph, &report.results)?;
            p.info(&format!("profile: {}", path.display()));
        }
        let sugg = report.suggestions.clone();
        s.leak();
        p.summary(&report);
        p.suggestions(&sugg);
        // Once: an interrupt between two reads would make them differ.
        let error = report.error();
        let next = match (&error, c.auto_apply) {
            (Some(_), Some(_)) => rounds.next(round + 1, &sugg),
            _ => (Vec::new(), Vec::new()),
        };
        let (to_apply, futile) = next;
        crate::ops::hints::settle_fixes(&store, &pending, &report, &futile);
        let Some(e) = error else {
            return Ok(Exit::Success);
        };
        let Some(max) = c.auto_apply else {
            return Ok(Exit::Failed(e.class));
        };
        for f in &futile {
            p.info(&format!("auto-apply: {f}"));
        }
        if round >= max || crate::exec::interrupt::requested() {
            return Ok(Exit::Failed(e.class));
        }
        let applied = crate::ops::hints::apply(opts, &to_apply)?;
        if applied.is_empty() {
            if futile.is_empty() {
                p.info("auto-apply: the hint catalog has no fix to apply for these failures");
            } else {
                p.info("auto-apply: no other fix to apply; stopping");
            }
            return Ok(Exit::Failed(e.class));
        }
        round += 1;
        pending = crate::ops::hints::record_fixes(&store, report.run, round, &to_apply);
        for a in &applied {
            p.info(&format!("auto-apply: {a}"));
        }
        p.info(&format!(
            "auto-apply: building again (round {round} of at most {max})"
        ));
    }
}
