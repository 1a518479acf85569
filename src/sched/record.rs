//! What is written after a node: its result in the action cache, its line
//! in the label index, and (with `--push`) its result on the remote.
//! Failures are recorded in the label index only, never cached.

use super::cx::NodeCx;
use super::result::{NodeResult, PushStatus, Verdict};
use crate::error::Error;
use crate::store::{ActionResult, LabelRecord, Recorded, Tree, now_secs};
use std::path::{Path, PathBuf};

/// The label index line for this node's result.
pub(super) fn label(cx: &NodeCx<'_>, res: &NodeResult) {
    let verdict = match res.verdict {
        Verdict::HitLocal | Verdict::HitRemote => Recorded::Hit,
        Verdict::Built => Recorded::Built,
        Verdict::Failed | Verdict::Blocked | Verdict::Skipped => Recorded::Failed,
    };
    let store = cx.cfg.store;
    let arch = cx.node.arch();
    let prev = store.labels.get(arch, cx.label());
    let rec = LabelRecord {
        label: cx.label().clone(),
        key: res.key.as_ref().map(|k| k.0.clone()).unwrap_or_default(),
        verdict,
        output: res.output.clone(),
        log: res
            .log
            .clone()
            .or_else(|| prev.as_ref().and_then(|p| p.log.clone())),
        time: now_secs(),
        duration_ms: if res.verdict == Verdict::Built {
            Some(res.duration.as_millis() as u64)
        } else {
            prev.and_then(|p| p.duration_ms)
        },
        tree: res.tree.as_ref().map(Tree::encode),
        executor: cx.cfg.exec.name().to_string(),
        // Only a key computed for this very node is remembered.
        memo: cx
            .memo
            .clone()
            .filter(|_| res.key.as_ref() == Some(&cx.key)),
    };
    store.labels.set(arch, &rec);
}

/// For a hit: the log of the build that made it, and whether the label
/// index already says exactly this (then nothing is written: a no-op run
/// writes nothing).
pub(super) fn hit_state(cx: &NodeCx<'_>, res: &NodeResult) -> (Option<PathBuf>, bool) {
    cx.cfg
        .store
        .labels
        .check(cx.node.arch(), cx.label(), |p| {
            let same = res.key.as_ref().is_some_and(|k| p.key == k.0)
                && p.verdict == Recorded::Hit
                && p.output == res.output
                && (cx.memo.is_none() || p.memo == cx.memo);
            (p.log.clone(), same)
        })
        .unwrap_or((None, false))
}

/// A successful build's result into the action cache (unless forced).
/// A full disk is the host's, and every other node would meet it: the
/// node fails and the run stops (its output stays unrecorded). Any other
/// failure to record is a note; the next run builds it again.
pub(super) fn action(cx: &NodeCx<'_>, tree: &Tree, log: Option<&Path>) -> Result<(), Error> {
    if cx.forced {
        return Ok(());
    }
    let store = cx.cfg.store;
    let log_digest = log
        .and_then(|p| store.cas.put_file(p).ok())
        .map(|(dg, _)| dg);
    let result = ActionResult {
        key: cx.key.0.clone(),
        label: cx.label().clone(),
        output: tree.digest(),
        log: log_digest,
        duration_ms: cx.start.elapsed().as_millis() as u64,
        created: now_secs(),
        refine_version: env!("CARGO_PKG_VERSION").to_string(),
        arch: cx.node.arch(),
        executor: cx.cfg.exec.name().to_string(),
    };
    match store.actions.put(&cx.key, &result, cx.pre()) {
        Ok(()) => Ok(()),
        Err(e) if e.is_disk_full() => Err(Error::from(e).context(format!(
            "could not record the result of {} in the action cache",
            cx.label()
        ))),
        Err(e) => {
            cx.note(format!(
                "could not record the result in the action cache: {e}"
            ));
            Ok(())
        }
    }
}

/// Push a built result, if this run pushes. Only what the sandbox built is
/// ever pushed: a result of another executor stays on this machine.
pub(super) fn push(cx: &NodeCx<'_>, tree: &Tree, remote_noted: bool) -> Option<PushStatus> {
    let (true, Some(remote)) = (cx.cfg.push, cx.cfg.remote) else {
        return None;
    };
    if !crate::exec::pushable(cx.cfg.exec.name()) {
        return Some(PushStatus::Failed(format!(
            "not pushed: built by the {} executor, not in the sandbox",
            cx.cfg.exec.name()
        )));
    }
    let store = cx.cfg.store;
    let result = store.actions.get(&cx.key)?;
    Some(
        match remote.push(cx.label(), &cx.key, &result, tree, cx.pre(), store) {
            Ok(()) => PushStatus::Pushed,
            Err(e) => {
                if !remote_noted {
                    cx.note(format!("push to {} failed: {e}", remote.describe()));
                }
                PushStatus::Failed(e.to_string())
            }
        },
    )
}
