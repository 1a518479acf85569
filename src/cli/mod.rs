//! The command line: clap types, one file per verb, and the printer.
//!
//! Each verb file parses its flags and makes one call into `ops`.

mod build;
mod doctor;
mod history;
mod import;
mod index;
mod init;
mod inspect;
mod key;
mod pack;
mod plan;
pub mod printer;
mod serve;
mod store;
mod test;
mod worker;

use crate::error::{Exit, Result};
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
    /// The floor wheels meet, overriding [platform] policy (e.g.
    /// manylinux2014, manylinux_2_28); a rule's own `policy` still wins.
    #[arg(long, global = true, value_name = "POLICY")]
    pub platform: Option<String>,
    /// For a foreign target: compile with the host's cross compilers
    /// ("cross", the default) or the target's own, emulated ("emulated").
    #[arg(long, global = true, value_name = "TOOLCHAIN")]
    pub toolchain: Option<String>,
    /// For a foreign target: run wheels' PEP 517 hooks in the host's Python
    /// set up for the target ("host", the default where the image has it)
    /// or the target's own, emulated ("target"); a rule's own wins.
    #[arg(long, global = true, value_name = "PYTHON")]
    pub frontend_python: Option<String>,
    /// Stream events and results as JSON lines on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only failures and the summary.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// A public key (NAME:BASE64) whose results pulled from the remote are
    /// used, beside [store] trusted_keys. Repeatable.
    #[arg(
        long = "trusted-key",
        global = true,
        value_name = "KEY",
        env = "REFINE_TRUSTED_KEYS",
        value_delimiter = ','
    )]
    pub trusted_keys: Vec<String>,
    /// The key pushes are signed with (default: <store>/keys/signing.key).
    #[arg(long, global = true, value_name = "FILE", env = "REFINE_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// refine's own tests only: "fake" records build steps instead of
    /// running them. Not in a shipped binary (the `fake-executor` feature).
    #[cfg(feature = "fake-executor")]
    #[arg(
        long,
        global = true,
        hide = true,
        env = "REFINE_EXECUTOR",
        default_value = "podman"
    )]
    pub executor: String,
}

impl Global {
    fn opts(&self) -> Result<GlobalOpts> {
        Ok(GlobalOpts {
            workspace: self.workspace.clone(),
            store: self.store.clone(),
            arch: self.arch.clone(),
            policy: self.platform.clone(),
            toolchain: self.toolchain.clone(),
            frontend_python: self.frontend_python.clone(),
            executor: self.executor()?,
            trusted_keys: self.trusted_keys.clone(),
            signing_key: self.signing_key.clone(),
            without: None,
            read_ahead: false,
        })
    }

    #[cfg(feature = "fake-executor")]
    fn executor(&self) -> Result<crate::ops::ExecutorKind> {
        crate::ops::ExecutorKind::parse(&self.executor).ok_or_else(|| {
            crate::error::Error::user(format!("--executor: unknown executor `{}`", self.executor))
                .hint("use podman (the default) or fake")
        })
    }

    #[cfg(not(feature = "fake-executor"))]
    fn executor(&self) -> Result<crate::ops::ExecutorKind> {
        Ok(crate::ops::ExecutorKind::Podman)
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build targets (default: [defaults] targets) and copy their wheels to --out.
    Build(build::BuildCmd),
    /// Turn requirements files (or a folder of wheels) into rules: rules/imported/NAME.toml and //sets:NAME.
    Import(import::ImportCmd),
    /// Add requirements to an import (like `refine import` of one more line).
    Add(import::AddCmd),
    /// Write a package index (PEP 503/691/658) of targets' wheels to a directory.
    Index(index::IndexCmd),
    /// The dashboard: runs, targets, live logs, a build queue, the index and metrics, over HTTP.
    Serve(serve::ServeCmd),
    /// Run build steps for an REAPI server (BuildGrid…): a worker on the Remote Workers API.
    Worker(worker::WorkerCmd),
    /// Serve log streams (the LogStream API) for an REAPI server, so that a
    /// build step's log shows while it runs on a worker.
    Logstream(worker::LogstreamCmd),
    /// Install a set's wheels together in a clean container of the target and test each one.
    Test(test::TestCmd),
    /// Make a workspace of your own (WORKSPACE.toml and rules/), with refine's rule set behind it.
    Init(init::InitCmd),
    /// The built-in rule set: `refine base export DIR` writes it out.
    #[command(subcommand)]
    Base(init::BaseCmd),
    /// Check that this machine has what the workspace's builds need, and say how to fix what is missing.
    Doctor(doctor::DoctorCmd),
    /// Packs of your own: `refine pack new NAME --debian SRC` writes a pack rule and its recipe.
    #[command(subcommand)]
    Pack(pack::PackCmd),
    /// Show what a build would do and why, without building.
    Plan(plan::PlanCmd),
    /// What was built, when, how long it took and how it ended (the store's history).
    History(history::HistoryCmd),
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
    /// This machine's signing key for the results it pushes.
    #[command(subcommand)]
    Key(key::KeyCmd),
    /// Say why a target rebuilds: what changed since a previous build, down to the root cause.
    Explain(inspect::ExplainCmd),
    /// Rebuild targets from scratch and compare with the stored results.
    Verify(inspect::VerifyCmd),
    /// Ask the graph: deps(EXPR), rdeps(EXPR), kind(KIND, EXPR).
    Query(inspect::QueryCmd),
    /// Print the build graph as Graphviz dot or JSON.
    Graph(inspect::GraphCmd),
}

/// SIGPIPE back to the system's default (Rust's runtime ignores it). The
/// one use of `unsafe` outside tests: no safe wrapper resets a signal's
/// disposition (cargo does the same, for the same reason).
#[allow(unsafe_code)]
fn default_sigpipe() {
    // SAFETY: signal(2) with SIG_DFL installs no handler; it runs at the
    // start of a command, before any thread that writes to a pipe.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Run a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let p = Printer::new(cli.global.json, cli.global.quiet);
    let opts = match cli.global.opts() {
        Ok(o) => o,
        Err(e) => {
            p.error(&e);
            return e.class.exit_code();
        }
    };
    // Commands that only print (and start no server and feed no child
    // process) end quietly when what reads their output goes away, as a
    // Unix tool does (`refine log //x | head`): SIGPIPE as the system
    // default. Elsewhere it stays ignored, so that a closed pipe to a
    // child is an error refine reports (sockets use MSG_NOSIGNAL anyway).
    if matches!(
        cli.command,
        Command::Log(_)
            | Command::Hash(_)
            | Command::History(_)
            | Command::Plan(_)
            | Command::Query(_)
            | Command::Graph(_)
            | Command::Explain(_)
    ) {
        default_sigpipe();
    }
    let r: Result<Exit> = match &cli.command {
        Command::Build(c) => build::run(c, &opts, &p),
        Command::Doctor(c) => doctor::run(c, &opts, &p),
        Command::Import(c) => import::run_import(c, &opts, &p),
        Command::Add(c) => import::run_add(c, &opts, &p),
        Command::Test(c) => test::run(c, &opts, &p),
        Command::Index(c) => index::run(c, &opts, &p),
        Command::Serve(c) => serve::run(c, &opts, &p),
        Command::Worker(c) => worker::run(c, &opts, &p),
        Command::Logstream(c) => worker::logstream(c, &p),
        Command::Init(c) => init::run_init(c, opts.arch.as_deref(), &p),
        Command::Base(c) => init::run_base(c, &p),
        Command::Pack(c) => pack::run(c, &opts, &p),
        Command::Plan(c) => plan::run_plan(c, &opts, &p),
        Command::Hash(c) => plan::run_hash(c, &opts, &p),
        Command::History(c) => history::run(c, &opts, &p),
        Command::Log(c) => plan::run_log(c, &opts, &p),
        Command::Push(c) => store::run_push(c, &opts, &p),
        Command::Pull(c) => store::run_pull(c, &opts, &p),
        Command::Store(c) => store::run_store(c, &opts, &p),
        Command::Gc(c) => store::run_gc(c, &opts, &p),
        Command::Key(c) => key::run(c, &opts, &p),
        Command::Explain(c) => inspect::run_explain(c, &opts, &p),
        Command::Verify(c) => inspect::run_verify(c, &opts, &p),
        Command::Query(c) => inspect::run_query(c, &opts, &p),
        Command::Graph(c) => inspect::run_graph(c, &opts, &p),
    };
    match r {
        Ok(exit) => exit.code(),
        Err(e) => {
            p.error(&e);
            e.class.exit_code()
        }
    }
}
