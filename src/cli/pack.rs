//! `refine pack new`

use super::printer::Printer;
use crate::error::{Exit, Result};
use crate::ops::pack::{NewPack, Shape, new_pack};
use crate::ops::{GlobalOpts, Session};
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum PackCmd {
    /// Write a pack rule (packs/NAME.toml) and its recipe for a C library,
    /// from Debian's source package.
    New(NewCmd),
}

#[derive(Args, Debug)]
pub struct NewCmd {
    /// The pack's name: //packs:NAME.
    pub name: String,
    /// The Debian source package (a failed build's hint names it).
    #[arg(long, value_name = "SRC")]
    pub debian: String,
    /// Its exact Debian version (default: the one apt would pick).
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
    /// Another suite of the machine's Debian mirror than its own release,
    /// e.g. trixie, for a library newer than the release has.
    #[arg(long, value_name = "SUITE")]
    pub suite: Option<String>,
    /// How it builds (default: read from its tarball).
    #[arg(long, value_enum)]
    pub shape: Option<Shape>,
    /// A C header it provides, for the hint catalog (repeatable).
    #[arg(long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// A pack it links, e.g. //packs:zlib (repeatable).
    #[arg(long = "deps", value_name = "LABEL")]
    pub deps: Vec<String>,
}

pub fn run(c: &PackCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    let PackCmd::New(c) = c;
    let s = Session::load(opts)?;
    let w = new_pack(
        &s,
        opts,
        &NewPack {
            name: c.name.clone(),
            debian: c.debian.clone(),
            version: c.version.clone(),
            suite: c.suite.clone(),
            shape: c.shape,
            headers: c.headers.clone(),
            deps: c.deps.clone(),
        },
    )?;
    for f in &w.files {
        let rel = f.strip_prefix(&s.root).unwrap_or(f);
        p.data(&format!("wrote {}", rel.display()));
    }
    p.info(&format!(
        "pack new: {} {} from Debian's {}={} ({}, built with {}, stored); next: `refine build {}`, then `packs = [\"{}\"]` on the wheels that need it",
        w.label,
        w.upstream_version,
        w.source.package,
        w.source.version,
        w.tarball,
        w.shape.as_str(),
        w.label,
        w.label
    ));
    Ok(Exit::Success)
}
