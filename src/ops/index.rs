//! `refine index DIR [TARGETS]`: build the targets (hits, mostly), then lay
//! their wheels out as a static package index in DIR ([`crate::index`]):
//! `pip install --index-url file://DIR/simple NAME`, or `--find-links
//! DIR/files`.

use super::Session;
use super::build::{BuildArgs, BuildReport, build};
use crate::error::{Error, Result};
use crate::sched::EventSink;
use std::path::{Path, PathBuf};

pub struct IndexReport {
    pub build: BuildReport,
    pub dir: PathBuf,
    pub entries: Vec<crate::index::Entry>,
}

pub fn index(
    s: &Session,
    dir: &Path,
    args: &BuildArgs,
    sink: &dyn EventSink,
) -> Result<IndexReport> {
    let store = s.open_store()?;
    let out = store.tmp_dir()?;
    let args = BuildArgs {
        out_dir: Some(out.path().to_path_buf()),
        verb: Some("index"),
        ..args.clone()
    };
    let report = build(s, &args, sink)?;
    if let Some(e) = report.error() {
        return Err(
            Error::new(e.class, format!("{}: the index was not written", e.message)).hint(
                "fix the failures above (or name only the targets that build), then index again",
            ),
        );
    }
    let mut wheels: Vec<PathBuf> = std::fs::read_dir(out.path())
        .map_err(|e| Error::internal(format!("the delivered wheels: {e}")))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    wheels.sort();
    if wheels.is_empty() {
        return Err(Error::user("no wheels to index: the targets make none")
            .hint("name wheels, repairs or sets: `refine index DIR //sets:NAME`"));
    }
    let entries = crate::index::write_static(dir, &wheels).map_err(|e| {
        Error::env(format!("writing the index: {e}")).hint("choose a directory you can write")
    })?;
    Ok(IndexReport {
        build: report,
        dir: dir.to_path_buf(),
        entries,
    })
}
