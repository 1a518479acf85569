//! `refine index`

use super::printer::Printer;
use crate::error::{Exit, Result};
use crate::ops::build::BuildArgs;
use crate::ops::{GlobalOpts, Session};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct IndexCmd {
    /// Where the index goes (DIR/simple, DIR/files); replaced whole.
    pub dir: PathBuf,
    /// The wheels to index: labels, patterns or sets (default: [defaults] targets).
    pub targets: Vec<String>,
    /// Use the local store only.
    #[arg(long)]
    pub offline: bool,
}

pub fn run(c: &IndexCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    crate::exec::interrupt::install();
    let s = Session::load(opts)?;
    let args = BuildArgs {
        patterns: c.targets.clone(),
        offline: c.offline,
        ..Default::default()
    };
    let r = crate::ops::index::index(&s, &c.dir, &args, p)?;
    s.leak();
    p.summary(&r.build);
    let projects = crate::index::by_project(&r.entries).len();
    if p.json {
        p.data(
            &serde_json::json!({
                "event": "index", "dir": r.dir, "projects": projects,
                "wheels": r.entries.iter().map(|e| &e.filename).collect::<Vec<_>>(),
            })
            .to_string(),
        );
    } else {
        for e in &r.entries {
            p.data(&format!("{:<24} {}", e.project, e.filename));
        }
        let abs = std::path::absolute(&r.dir).unwrap_or(r.dir.clone());
        p.info(&format!(
            "index: {} wheels of {projects} projects in {}; pip install --index-url file://{}/simple NAME",
            r.entries.len(),
            r.dir.display(),
            abs.display()
        ));
    }
    Ok(Exit::Success)
}
