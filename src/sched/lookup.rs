//! The cache layers in front of a build: the local store (its label index,
//! then its action cache) and the remote. Each answers with a [`Hit`] or
//! passes; damage and faults are notes, never failures, but for a full disk
//! under a pull, which stops the run as it would a build.

use super::cx::NodeCx;
use crate::key::Digest;
use crate::remote::RemoteError;
use crate::store::{BlobCheck, Lookup, Tree, delivered};

/// `--skip-known-failures`: the label index says this label's last build
/// had this very key and failed. Failures are never cached, so this is
/// only a record of one: the node fails at once, pointing at that log.
pub(super) fn known_failure(cx: &NodeCx<'_>) -> Option<super::node::Outcome> {
    let rec = cx.cfg.store.labels.get(cx.node.arch(), cx.label())?;
    if rec.verdict != crate::store::Recorded::Failed || rec.key != cx.key.0 {
        return None;
    }
    let log = rec.log.map(|p| cx.cfg.store.logs.rebase(p));
    let when = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(rec.time),
    );
    let error = crate::error::Error::build(format!(
        "{} failed at this key ({when}); not built again (--skip-known-failures)",
        cx.label()
    ))
    .hint("its inputs are what they were when it failed: change the rule (or what it depends on), or build without --skip-known-failures to try again");
    Some(super::node::Outcome::KnownFailure { error, log })
}

/// An output found in a cache: its digest and tree.
pub(super) type Hit = (Digest, Tree);

/// The label index alone (the no-op path): no file opened per node.
pub(super) fn indexed(cx: &NodeCx<'_>, check: BlobCheck) -> Option<Hit> {
    cx.cfg.store.indexed_hit(
        cx.node.arch(),
        cx.label(),
        &cx.key,
        check,
        cx.cfg.delivered,
        &|e| cx.trusts(e),
    )
}

/// The local store: the label index, then the action cache, with every
/// blob of the output checked (hashed, for what is delivered: `check`).
pub(super) fn local(cx: &NodeCx<'_>, check: BlobCheck) -> Option<Hit> {
    if let Some(hit) = indexed(cx, check) {
        return Some(hit);
    }
    let store = cx.cfg.store;
    match store.lookup(&cx.key) {
        Lookup::Hit(r, t) => {
            if !cx.trusts(&r.executor) {
                // Another executor's result (a test's fake one, or one from
                // before executors were recorded) never answers this run.
                return None;
            }
            // Check the bytes too (cheap for blobs checked before: the store
            // remembers their inode, size and mtime).
            let checked = t.files().try_for_each(|(name, dg, _)| {
                let check = delivered::check_for(check, cx.cfg.delivered, name, dg);
                store.cas.check_blob(dg, check)
            });
            match checked {
                Ok(()) => Some((r.output, t)),
                Err(e) => {
                    store.actions.remove(&cx.key);
                    cx.note(format!(
                        "{}: corrupt cache entry treated as a miss: {e}",
                        cx.label()
                    ));
                    None
                }
            }
        }
        Lookup::Miss => None,
        Lookup::Corrupt(why) => {
            cx.note(format!(
                "{}: corrupt cache entry treated as a miss: {why}",
                cx.label()
            ));
            None
        }
    }
}

/// The remote: a verified pull, a miss, a fault (said once as a note), or
/// this machine's store failing under the pull.
pub(super) fn remote(cx: &NodeCx<'_>) -> Pulled {
    let Some(remote) = cx.cfg.remote else {
        return Pulled::Miss;
    };
    match remote.pull(cx.label(), &cx.key, cx.cfg.store) {
        Ok(Some((result, tree))) => {
            let _ = cx.cfg.store.actions.put_preimage(&cx.key, cx.pre());
            Pulled::Hit((result.output, tree))
        }
        Ok(None) => Pulled::Miss,
        Err(RemoteError::Remote(e)) => {
            cx.note(format!("remote {}: {e}", remote.describe()));
            Pulled::Noted
        }
        // This machine's store failed under the pull: the store's failure,
        // not the remote's. A full disk stops the run; anything else is
        // said as the store's and the node is built.
        Err(RemoteError::Store(e)) => {
            let err =
                crate::error::Error::from(e).context(format!("pulling from {}", remote.describe()));
            if err.is_run_wide() {
                return Pulled::Failed(err);
            }
            cx.note(format!("{}: {}", err.message, err.causes.join(": ")));
            Pulled::Noted
        }
    }
}

/// What asking the remote for a node's result came to.
pub(super) enum Pulled {
    Hit(Hit),
    Miss,
    /// A problem said once as a note; the node is built.
    Noted,
    /// A failure of this machine that ends the node (and the run).
    Failed(crate::error::Error),
}
