//! `refine build`

use super::printer::Printer;
use crate::error::Result;
use crate::ops::build::{BuildArgs, build};
use crate::ops::{ExecutorKind, GlobalOpts, Session};
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
    /// Testing only: "fake" records build steps instead of running them.
    #[arg(long, hide = true, env = "REFINE_EXECUTOR", default_value = "podman")]
    pub executor: String,
}

pub fn executor_kind(s: &str) -> Result<ExecutorKind> {
    match s {
        "podman" => Ok(ExecutorKind::Podman),
        "fake" => Ok(ExecutorKind::Fake),
        other => Err(
            crate::error::Error::user(format!("--executor: unknown executor `{other}`"))
                .hint("use podman (the default) or fake"),
        ),
    }
}

pub fn run(c: &BuildCmd, opts: &GlobalOpts, p: &Printer) -> Result<i32> {
    let s = Session::load(opts)?;
    let args = BuildArgs {
        patterns: c.targets.clone(),
        jobs: c.jobs,
        keep_going: c.keep_going,
        out_dir: c.out.clone(),
        executor: executor_kind(&c.executor)?,
        remote: c.remote.clone(),
        push: c.push,
        offline: c.offline,
        insecure: c.insecure,
    };
    let report = build(&s, &args, p)?;
    s.leak();
    p.summary(&report);
    Ok(match report.error() {
        Some(e) => e.class.exit_code(),
        None => 0,
    })
}
