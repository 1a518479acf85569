//! `refine worker`

use super::printer::Printer;
use crate::error::{Error, Exit, Result};
use crate::ops::GlobalOpts;
use clap::Args;

#[derive(Args, Debug)]
pub struct WorkerCmd {
    /// The REAPI server whose actions this machine runs:
    /// grpc://HOST:PORT[/INSTANCE] or grpcs://… (a bearer token comes from
    /// REFINE_REMOTE_TOKEN).
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// A platform property this worker advertises, KEY=VALUE (repeatable):
    /// ISA=s390x runs s390x actions (natively on Z, by emulation
    /// elsewhere); ISA defaults to this machine's.
    #[arg(long, value_name = "KEY=VALUE")]
    pub platform: Vec<String>,
    /// Actions to run at once.
    #[arg(long, short, default_value_t = 1)]
    pub jobs: usize,
    /// The bot's name (default: the host name and the process id).
    #[arg(long)]
    pub name: Option<String>,
    /// A header sent to the server, NAME:VALUE (repeatable).
    #[arg(long, value_name = "NAME:VALUE")]
    pub remote_header: Vec<String>,
    /// Where the build's log is streamed while it runs (the LogStream
    /// service the server names streams of; default: the server itself).
    #[arg(long, value_name = "URL")]
    pub log_stream: Option<String>,
    /// Stop after running this many actions (for tests and drained machines).
    #[arg(long, value_name = "N", hide = true)]
    pub max_leases: Option<usize>,
}

pub fn run(c: &WorkerCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    let mut platform = Vec::new();
    for kv in &c.platform {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(Error::user(format!("--platform `{kv}` is not KEY=VALUE"))
                .hint("e.g. --platform ISA=s390x"));
        };
        platform.push((k.trim().to_string(), v.trim().to_string()));
    }
    let store = crate::ops::default_store_path(opts.store.as_deref())?;
    crate::reapi::worker::run(
        crate::reapi::worker::WorkerArgs {
            server: c.server.clone(),
            headers: c.remote_header.clone(),
            platform,
            jobs: c.jobs,
            name: c.name.clone(),
            store,
            max_leases: c.max_leases,
            log_stream: c.log_stream.clone(),
        },
        &|s| p.info(s),
    )
}

#[derive(Args, Debug)]
pub struct LogstreamCmd {
    /// The address to listen on, HOST:PORT (e.g. 127.0.0.1:50052; the
    /// service has no authentication of its own: keep it on a private
    /// network). Point the REAPI server's log stream setting at it
    /// (BuildGrid: `logstream: {url: http://HOST:PORT}` under its
    /// scheduler), and workers and clients at it with `--log-stream` /
    /// `--remote-log-stream`.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: String,
}

pub fn logstream(c: &LogstreamCmd, p: &Printer) -> Result<Exit> {
    let addr: std::net::SocketAddr = c.listen.parse().map_err(|e| {
        Error::user(format!("--listen `{}`: {e}", c.listen)).hint("e.g. --listen 127.0.0.1:50052")
    })?;
    crate::reapi::logstream::serve(addr, &|s| p.info(s)).map_err(Error::env)?;
    Ok(Exit::Success)
}
