//! `refine build`

use super::printer::Printer;
use crate::error::{Exit, Result};
use crate::ops::build::{BuildArgs, build};
use crate::ops::{GlobalOpts, Session};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct BuildCmd {
    /// Labels or patterns: //wheels:markupsafe, //packs:..., //...
    pub targets: Vec<String>,
    /// Builds to run at once (default: [sandbox] jobs, or the number of CPUs).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Build everything that does not depend on a failure.
    #[arg(long, short)]
    pub keep_going: bool,
    /// Where to copy the wheels (default: <workspace>/dist).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// A remote store, overriding [store] remote: oci://HOST[:PORT]/PREFIX.
    #[arg(long, value_name = "URL")]
    pub remote: Option<String>,
    /// Push what this run builds to the remote.
    #[arg(long)]
    pub push: bool,
    /// Use the local store only.
    #[arg(long)]
    pub offline: bool,
    /// Talk plain HTTP to the remote (loopback registries).
    #[arg(long)]
    pub insecure: bool,
    /// When a generated wheel (`refine import`) fails and the hint catalog
    /// knows the fix, record it in its import, regenerate, and build again;
    /// at most N times (`--auto-apply=N`; default 3).
    #[arg(long, value_name = "N", num_args = 0..=1, require_equals = true, default_missing_value = "3")]
    pub auto_apply: Option<u32>,
}

pub fn run(c: &BuildCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    crate::exec::interrupt::install();
    let args = BuildArgs {
        verb: None,
        patterns: c.targets.clone(),
        jobs: c.jobs,
        keep_going: c.keep_going,
        out_dir: c.out.clone(),
        remote: c.remote.clone(),
        push: c.push,
        offline: c.offline,
        insecure: c.insecure,
    };
    let mut round = 0;
    loop {
        let s = Session::load(opts)?;
        let report = build(&s, &args, p)?;
        let sugg = report.suggestions.clone();
        s.leak();
        p.summary(&report);
        p.suggestions(&sugg);
        let Some(e) = report.error() else {
            return Ok(Exit::Success);
        };
        let Some(max) = c.auto_apply else {
            return Ok(Exit::Failed(e.class));
        };
        if round >= max || crate::exec::interrupt::requested() {
            return Ok(Exit::Failed(e.class));
        }
        let applied = crate::ops::hints::apply(opts, &sugg)?;
        if applied.is_empty() {
            p.info("auto-apply: the hint catalog has no fix to apply for these failures");
            return Ok(Exit::Failed(e.class));
        }
        round += 1;
        for a in &applied {
            p.info(&format!("auto-apply: {a}"));
        }
        p.info(&format!(
            "auto-apply: building again (round {round} of at most {max})"
        ));
    }
}
