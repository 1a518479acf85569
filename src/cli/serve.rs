//! `refine serve`

use super::printer::Printer;
use crate::error::{Error, Exit, Result};
use crate::ops::GlobalOpts;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ServeCmd {
    /// Where to listen (loopback unless you say otherwise).
    #[arg(long, default_value = "127.0.0.1:8472")]
    pub addr: String,
    /// A file holding the token that actions need (else REFINE_SERVE_TOKEN,
    /// else one is made and kept in <store>/serve.token, mode 0600).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Who may read: "open" (default on loopback) or "token" (default on
    /// any other address).
    #[arg(long, value_parser = ["open", "token"])]
    pub reads: Option<String>,
}

pub fn run(c: &ServeCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    let addr: std::net::SocketAddr = c.addr.parse().map_err(|e| {
        Error::user(format!("--addr: `{}` is not an address: {e}", c.addr))
            .hint("write HOST:PORT, e.g. --addr 127.0.0.1:8472")
    })?;
    crate::serve::start(
        opts,
        addr,
        c.token_file.as_deref(),
        c.reads.as_deref(),
        &|s| p.info(s),
    )?;
    Ok(Exit::Success)
}
