//! Test support, compiled only with the `fake-executor` feature (refine's
//! own tests and benches; never in a shipped binary).
//!
//! The one way a test learns a node's key: what `refine plan` computes,
//! asked of the library instead of scraped from a command's JSON; and the
//! one way a test makes the fake executor's results count as the sandbox's
//! (through the store's own types, never by editing its files).

use crate::key::Key;
use crate::ops::plan::{PlanStatus, plan};
use crate::ops::{GlobalOpts, Session};

/// The key `label` has now, for a build with `opts` (workspace, store,
/// arch, toolchain, executor): knowable when every dependency is a
/// fixed-output node or already in the store for that executor.
pub fn key_of(opts: &GlobalOpts, label: &str) -> Result<Key, String> {
    let s = Session::load(opts)
        .map_err(|e| format!("{}\n{}", e.message, e.rendered.clone().unwrap_or_default()))?;
    let (_, entries) = plan(&s, &[label.to_string()]).map_err(|e| e.message)?;
    let e = entries
        .into_iter()
        .find(|e| e.label.to_string() == label)
        .ok_or_else(|| format!("{label} is not in the plan"))?;
    match (e.key, e.status) {
        (Some(k), _) => Ok(k),
        (None, PlanStatus::Pending { after }) => Err(format!(
            "the key of {label} is not known until {} are built",
            after
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        (None, _) => Err(format!("{label} has no key")),
    }
}

/// Make every result of the fake executor in `store` look built by the
/// sandbox. refine never pushes a result of the fake executor, and never
/// lets one answer a podman build; the remote tests, which test the
/// transport rather than the builds, make machine A's store look
/// sandbox-built with this. refine itself has no such switch.
pub fn adopt_as_sandbox_built(store: &std::path::Path) -> Result<usize, String> {
    let s = crate::store::LocalStore::open(store).map_err(|e| e.to_string())?;
    let mut n = 0;
    for key in s.actions.keys() {
        let Some(mut r) = s.actions.get(&key) else {
            continue;
        };
        if r.executor != "fake" {
            continue;
        }
        let pre = s
            .actions
            .preimage(&key)
            .ok_or_else(|| format!("the preimage of {} is missing", key.short()))?;
        r.executor = "podman".into();
        s.actions.put(&key, &r, &pre).map_err(|e| e.to_string())?;
        n += 1;
    }
    for arch in s.labels.arches() {
        for mut rec in s.labels.all(arch) {
            if rec.executor == "fake" {
                rec.executor = "podman".into();
                s.labels.set(arch, &rec);
                n += 1;
            }
        }
    }
    s.flush();
    Ok(n)
}
