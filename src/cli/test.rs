//! `refine test`

use super::printer::Printer;
use crate::error::{ErrorClass, Exit, Result};
use crate::ops::build::BuildArgs;
use crate::ops::{GlobalOpts, Session};
use clap::Args;

#[derive(Args, Debug)]
pub struct TestCmd {
    /// Sets to test: //sets:NAME (or //sets:... for every set).
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// Builds to run at once (default: [sandbox] jobs, or the number of CPUs).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Build and test everything that does not depend on a failure.
    #[arg(long, short)]
    pub keep_going: bool,
    /// Use the local store only.
    #[arg(long)]
    pub offline: bool,
}

pub fn run(c: &TestCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    crate::exec::interrupt::install();
    let s = Session::load(opts)?;
    let args = BuildArgs {
        verb: Some("test"),
        jobs: c.jobs,
        keep_going: c.keep_going,
        offline: c.offline,
        ..Default::default()
    };
    let r = crate::ops::test::test(&s, &c.targets, &args, p)?;
    if let Some(first) = &r.first {
        p.summary(first);
        p.suggestions(&first.suggestions);
        p.info("test: testing the members that built");
    }
    let sugg = r.build.suggestions.clone();
    s.leak();
    p.summary(&r.build);
    p.suggestions(&sugg);
    for (label, verdict, checks) in &r.tests {
        if p.json {
            p.data(
                &serde_json::json!({
                    "event": "test", "label": label.to_string(), "verdict": verdict.as_str(),
                    "checks": checks,
                    "left_out": r.left_out.iter().find(|(l, _)| l == label)
                        .map(|(_, o)| o.iter().map(|x| x.to_string()).collect::<Vec<_>>())
                        .unwrap_or_default(),
                })
                .to_string(),
            );
            continue;
        }
        if checks.is_empty() {
            p.info(&format!(
                "{label}: {} (no report: the set's wheels were not built)",
                verdict.as_str()
            ));
            continue;
        }
        for ch in checks {
            let who = ch
                .label
                .as_ref()
                .map(|l| l.to_string())
                .unwrap_or_else(|| label.to_string());
            let wheel = ch
                .wheel
                .as_deref()
                .map(|w| format!(" {w}"))
                .unwrap_or_default();
            p.data(&format!(
                "{} {who}{wheel}: {}",
                if ch.ok { "PASS" } else { "FAIL" },
                ch.what
            ));
            for l in ch
                .output
                .lines()
                .rev()
                .take(12)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                p.data(&format!("     | {l}"));
            }
        }
        if let Some((_, out)) = r.left_out.iter().find(|(l, _)| l == label)
            && !out.is_empty()
        {
            let names: Vec<String> = out.iter().map(|l| l.to_string()).collect();
            p.info(&format!(
                "{label}: tested without {} ({} did not build: see the failures above)",
                names.join(", "),
                if out.len() == 1 { "it" } else { "they" }
            ));
        }
        let failed = checks.iter().filter(|c| !c.ok).count();
        p.info(&format!(
            "{label}: {} of {} checks passed{}",
            checks.len() - failed,
            checks.len(),
            match verdict {
                crate::sched::Verdict::HitLocal | crate::sched::Verdict::HitRemote =>
                    " (cached: nothing it covers changed)",
                _ => "",
            }
        ));
    }
    Ok(Exit::unless(r.failed(), ErrorClass::Build))
}
