//! What is written after a node: its result in the action cache, its line
//! in the label index, and (with `--push`) its result on the remote.
//! Failures are recorded in the label index only, never cached.

use super::node::NodeCx;
use super::result::{NodeResult, PushStatus, Verdict};
use crate::store::{ActionResult, LabelRecord, Tree, now_secs};

/// The label index line for this node's result.
pub(super) fn label(cx: &NodeCx<'_>, res: &NodeResult) {
    let verdict = match res.verdict {
        Verdict::HitLocal | Verdict::HitRemote => "hit",
        v => v.as_str(),
    };
    let store = cx.cfg.store;
    let prev = store.label_record(cx.arch(), &cx.d.label.to_string());
    let rec = LabelRecord {
        label: cx.d.label.to_string(),
        key: res.key.as_ref().map(|k| k.0.clone()).unwrap_or_default(),
        verdict: verdict.to_string(),
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
    };
    store.set_label_record(cx.arch(), &rec);
}

/// A successful build: the result into the action cache (unless forced)
/// and the label index.
pub(super) fn built(cx: &NodeCx<'_>, res: &mut NodeResult, tree: Tree) {
    let store = cx.cfg.store;
    let log_digest = res
        .log
        .as_ref()
        .and_then(|p| store.put_file(p).ok())
        .map(|(dg, _)| dg);
    let output = tree.digest();
    res.verdict = Verdict::Built;
    res.preimage = Some(cx.pre.clone());
    res.output = Some(output.clone());
    res.tree = Some(tree);
    if cx.forced {
        return;
    }
    let result = ActionResult {
        key: cx.key.0.clone(),
        label: cx.d.label.to_string(),
        output,
        log: log_digest,
        duration_ms: res.duration.as_millis() as u64,
        created: now_secs(),
        refine_version: env!("CARGO_PKG_VERSION").to_string(),
        arch: cx.arch().to_string(),
        executor: cx.cfg.exec.name().to_string(),
    };
    if let Err(e) = store.put_action(&cx.key, &result, &cx.pre) {
        // A full disk is the host's, and every other node would meet it:
        // the node fails and the run stops (its output stays unrecorded).
        if e.is_disk_full() {
            res.verdict = Verdict::Failed;
            res.failure = Some(crate::error::Error::from(e).context(format!(
                "could not record the result of {} in the action cache",
                cx.d.label
            )));
            label(cx, res);
            return;
        }
        cx.note(
            res,
            format!("could not record the result in the action cache: {e}"),
        );
    }
    label(cx, res);
}

/// Push a built result, if this run pushes. Only what the sandbox built is
/// ever pushed: a result of another executor stays on this machine.
pub(super) fn push(cx: &NodeCx<'_>, res: &mut NodeResult, remote_noted: bool) {
    let (true, Some(remote), Some(tree)) = (cx.cfg.push, cx.cfg.remote, res.tree.clone()) else {
        return;
    };
    if !crate::exec::pushable(cx.cfg.exec.name()) {
        res.push = Some(PushStatus::Failed(format!(
            "not pushed: built by the {} executor, not in the sandbox",
            cx.cfg.exec.name()
        )));
        return;
    }
    let store = cx.cfg.store;
    let Some(result) = store.action(&cx.key) else {
        return;
    };
    res.push = Some(
        match remote.push(&cx.d.label, &cx.key, &result, &tree, &cx.pre, store) {
            Ok(()) => PushStatus::Pushed,
            Err(e) => {
                if !remote_noted {
                    cx.note(res, format!("push to {} failed: {e}", remote.describe()));
                }
                PushStatus::Failed(e.to_string())
            }
        },
    );
}
