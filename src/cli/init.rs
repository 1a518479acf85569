//! `refine init`, `refine base export`

use super::printer::Printer;
use crate::error::{Exit, Result};
use crate::ops::init::{InitArgs, export_base, init};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct InitCmd {
    /// Where (default: the current directory).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Python version of the builder image (default: 3.11).
    #[arg(long, value_name = "X.Y")]
    pub python: Option<String>,
    /// The floor the wheels meet, an auditwheel policy (default:
    /// manylinux2014, glibc 2.17).
    #[arg(long, value_name = "POLICY")]
    pub policy: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum BaseCmd {
    /// Write the built-in rule set (rules, packs, runtimes, recipes) to DIR.
    Export { dir: PathBuf },
}

pub fn run_init(c: &InitCmd, arch: Option<&str>, p: &Printer) -> Result<Exit> {
    let r = init(&InitArgs {
        dir: c.dir.clone(),
        // The global --arch: the workspace's target (default s390x).
        arch: arch.map(str::to_string),
        python: c.python.clone(),
        policy: c.policy.clone(),
    })?;
    for f in &r.wrote {
        p.data(&format!("wrote {}", f.display()));
    }
    p.info(&format!(
        "init: a workspace in {}; next: `refine import requirements.txt` (or a [wheels.NAME] rule in rules/), then `refine build`",
        r.root.display()
    ));
    Ok(Exit::Success)
}

pub fn run_base(c: &BaseCmd, p: &Printer) -> Result<Exit> {
    match c {
        BaseCmd::Export { dir } => {
            let files = export_base(dir)?;
            p.info(&format!(
                "base: wrote {} files to {}; a workspace's own files replace the base's, and `base = \"none\"` in [workspace] leaves only them",
                files.len(),
                dir.display()
            ));
            Ok(Exit::Success)
        }
    }
}
