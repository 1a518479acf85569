//! The command line: clap types, one file per verb, and the printer.
//!
//! Each verb file parses its flags and makes one call into `ops`.

mod build;
mod inspect;
mod plan;
pub mod printer;
mod store;

use crate::error::Result;
use crate::ops::GlobalOpts;
use clap::{Args, Parser, Subcommand};
use printer::Printer;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "refine",
    version,
    about = "Rebuild Python wheels for other architectures, exactly and incrementally",
    long_about = "refine evaluates the TOML rules of a workspace into content-hashed derivations, \
                  rebuilds only the nodes whose keys changed (each in a sandboxed podman container) \
                  and keeps the results in a local store and, optionally, an OCI registry."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// The workspace root (default: the first directory upwards with a WORKSPACE.toml).
    #[arg(long, global = true, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// The local store (default: REFINE_STORE, [store] path, or ~/.cache/refine).
    #[arg(long, global = true, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Target architecture, overriding [platform] arch (x86_64, s390x, aarch64, ppc64le, host).
    #[arg(long, global = true, value_name = "ARCH")]
    pub arch: Option<String>,
    /// Repair policy, overriding [platform] policy (e.g. manylinux_2_36).
    #[arg(long, global = true, value_name = "POLICY")]
    pub platform: Option<String>,
    /// Stream events and results as JSON lines on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only failures and the summary.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

impl Global {
    fn opts(&self) -> GlobalOpts {
        GlobalOpts {
            workspace: self.workspace.clone(),
            store: self.store.clone(),
            arch: self.arch.clone(),
            policy: self.platform.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build targets (default: [defaults] targets) and copy their wheels to --out.
    Build(build::BuildCmd),
    /// Show what a build would do and why, without building.
    Plan(plan::PlanCmd),
    /// Print the key and output digest of targets.
    Hash(plan::HashCmd),
    /// Print the latest build log of a target.
    Log(plan::LogCmd),
    /// Push the local results of targets (and their dependencies) to the remote store.
    Push(store::ShareCmd),
    /// Pull the results of targets (and their dependencies) from the remote store.
    Pull(store::ShareCmd),
    /// Look after the local store.
    #[command(subcommand)]
    Store(store::StoreCmd),
    /// Trim the local store by size and age.
    Gc(store::GcCmd),
    /// Say why a target rebuilds: what changed since a previous build, down to the root cause.
    Explain(inspect::ExplainCmd),
    /// Rebuild targets from scratch and compare with the stored results.
    Verify(inspect::VerifyCmd),
    /// Ask the graph: deps(EXPR), rdeps(EXPR), kind(KIND, EXPR).
    Query(inspect::QueryCmd),
    /// Print the build graph as Graphviz dot or JSON.
    Graph(inspect::GraphCmd),
}

/// Run a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let p = Printer::new(cli.global.json, cli.global.quiet);
    let opts = cli.global.opts();
    let r: Result<i32> = match &cli.command {
        Command::Build(c) => build::run(c, &opts, &p),
        Command::Plan(c) => plan::run_plan(c, &opts, &p),
        Command::Hash(c) => plan::run_hash(c, &opts, &p),
        Command::Log(c) => plan::run_log(c, &opts, &p),
        Command::Push(c) => store::run_push(c, &opts, &p),
        Command::Pull(c) => store::run_pull(c, &opts, &p),
        Command::Store(c) => store::run_store(c, &opts, &p),
        Command::Gc(c) => store::run_gc(c, &opts, &p),
        Command::Explain(c) => inspect::run_explain(c, &opts, &p),
        Command::Verify(c) => inspect::run_verify(c, &opts, &p),
        Command::Query(c) => inspect::run_query(c, &opts, &p),
        Command::Graph(c) => inspect::run_graph(c, &opts, &p),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            p.error(&e);
            e.class.exit_code()
        }
    }
}
