//! Store maintenance: listing, verifying everything, garbage collection.
//!
//! GC works like a tracing collector. Roots are the action-cache entries
//! that survive the age and size limits (oldest dropped first); everything
//! they reach — output trees, their blobs, build logs — is live; every other
//! blob, materialized tree, preimage and label record goes. It holds the
//! store's exclusive lock, so it waits for running builds (which hold it
//! shared) and they wait for it.

use super::action::ActionResult;
use super::error::StoreError;
use super::local::LocalStore;
use super::tree::Tree;
use crate::key::{Digest, Key};
use std::collections::HashSet;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Entry {
    pub key: Key,
    pub result: ActionResult,
    /// Bytes of the output's files (shared blobs counted in each entry).
    pub size: u64,
    pub age_secs: u64,
}

/// Every action-cache entry, oldest first.
pub fn entries(store: &LocalStore) -> Vec<Entry> {
    let now = super::now_secs();
    let mut out: Vec<Entry> = store
        .actions
        .keys()
        .into_iter()
        .filter_map(|k| {
            let result = store.actions.get(&k)?;
            let size = store
                .cas
                .tree(&result.output)
                .map(|t| t.total_size())
                .unwrap_or(0);
            let age_secs = now.saturating_sub(result.created);
            Some(Entry {
                key: k,
                result,
                size,
                age_secs,
            })
        })
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.age_secs));
    out
}

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub blobs: usize,
    pub bad_blobs: Vec<(Digest, String)>,
    pub entries: usize,
    pub bad_entries: Vec<(Key, String)>,
    /// Checkouts kept for mounts (`trees/`, `unpacked/`).
    pub checkouts: usize,
    pub bad_checkouts: Vec<(PathBuf, String)>,
}

/// Rehash every blob (ignoring the stat cache) and check every action
/// entry's output; remove what is damaged.
pub fn verify(store: &LocalStore) -> Result<VerifyReport, StoreError> {
    let _lock = store.locks.store(true)?;
    let mut r = VerifyReport::default();
    for d in store.cas.digests() {
        r.blobs += 1;
        let p = store.cas.blob_path(&d);
        match crate::key::sha256_file(&p) {
            Ok((got, _)) if got == d => {}
            Ok((got, _)) => {
                store.cas.discard_blob(&d);
                r.bad_blobs
                    .push((d, format!("content hashes to {got}; removed")));
            }
            Err(e) => r.bad_blobs.push((d, e.to_string())),
        }
    }
    for k in store.actions.keys() {
        r.entries += 1;
        match store.lookup(&k) {
            super::Lookup::Hit(..) => {}
            super::Lookup::Corrupt(why) => r.bad_entries.push((k, format!("{why}; removed"))),
            super::Lookup::Miss => r.bad_entries.push((k, "unreadable; removed".into())),
        }
    }
    (r.checkouts, r.bad_checkouts) = store.checkouts.verify();
    drop_stale_labels(store);
    Ok(r)
}

#[derive(Debug, Default)]
pub struct GcReport {
    pub removed_entries: Vec<Entry>,
    pub removed_blobs: usize,
    pub freed_bytes: u64,
    pub kept_entries: usize,
    pub kept_bytes: u64,
    pub dry_run: bool,
}

/// Drop entries older than `max_age` (seconds), then the oldest until the
/// live blobs fit in `max_size` bytes; then sweep what nothing reaches.
pub fn gc(
    store: &LocalStore,
    max_size: Option<u64>,
    max_age: Option<u64>,
    dry_run: bool,
) -> Result<GcReport, StoreError> {
    let _lock = store.locks.store(true)?;
    let all = entries(store);
    let mut keep: Vec<Entry> = Vec::new();
    let mut report = GcReport {
        dry_run,
        ..GcReport::default()
    };
    for e in all {
        if max_age.is_some_and(|a| e.age_secs > a) {
            report.removed_entries.push(e);
        } else {
            keep.push(e);
        }
    }
    // Live blobs and their sizes, recomputed as entries are dropped.
    let live_of = |entries: &[Entry]| -> (HashSet<Digest>, u64) {
        let mut live = HashSet::new();
        let mut bytes = 0u64;
        for e in entries {
            let mut add = |d: &Digest| {
                if live.insert(d.clone()) {
                    bytes += std::fs::metadata(store.cas.blob_path(d))
                        .map(|m| m.len())
                        .unwrap_or(0);
                }
            };
            add(&e.result.output);
            if let Some(l) = &e.result.log {
                add(l);
            }
            if let Ok(t) = store.cas.tree(&e.result.output) {
                for (_, d, _) in t.files() {
                    add(d);
                }
            }
        }
        (live, bytes)
    };
    let (mut live, mut bytes) = live_of(&keep);
    if let Some(max) = max_size {
        // Oldest first; recompute once per batch of tenths for large stores.
        while bytes > max && !keep.is_empty() {
            let n = (keep.len() / 10).max(1);
            report.removed_entries.extend(keep.drain(..n));
            (live, bytes) = live_of(&keep);
        }
    }
    report.kept_entries = keep.len();
    report.kept_bytes = bytes;
    let dead: Vec<(Digest, u64)> = store
        .cas
        .digests()
        .into_iter()
        .filter(|d| !live.contains(d))
        .map(|d| {
            let size = std::fs::metadata(store.cas.blob_path(&d))
                .map(|m| m.len())
                .unwrap_or(0);
            (d, size)
        })
        .collect();
    report.removed_blobs = dead.len();
    report.freed_bytes = dead.iter().map(|(_, s)| s).sum();
    if dry_run {
        return Ok(report);
    }
    for e in &report.removed_entries {
        store.actions.remove(&e.key);
    }
    for (d, _) in &dead {
        store.cas.discard_blob(d);
    }
    // Materialized trees and unpacked wheels that are no longer live, and
    // stale label records.
    for dir in store
        .checkouts
        .trees()
        .into_iter()
        .chain(store.checkouts.unpacked_wheels())
    {
        let live_tree = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|h| Digest::from_hex(h).ok())
            .is_some_and(|d| live.contains(&d));
        if !live_tree {
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_file(dir.with_extension("tree"));
        }
    }
    drop_stale_labels(store);
    // Build logs older than the age limit (the action cache keeps the logs
    // of what remains as blobs).
    if let Some(age) = max_age {
        let now = std::time::SystemTime::now();
        for e in walkdir::WalkDir::new(store.root().join("logs"))
            .into_iter()
            .flatten()
        {
            let old = e
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|d| d.as_secs() > age);
            if e.file_type().is_file() && old {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    store.flush();
    Ok(report)
}

/// Drop label records whose output is no longer in the store.
fn drop_stale_labels(store: &LocalStore) {
    store.labels.retain(|r| {
        r.output.as_ref().is_none_or(|o| {
            store.cas.has_blob(o)
                && store
                    .cas
                    .tree(o)
                    .is_ok_and(|t: Tree| store.cas.tree_complete(&t).is_ok())
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Preimage;
    use crate::store::temp_store as store;

    /// A wheel with one file, stored as a source's output (a tree holding
    /// it) in the action cache under `name`; the wheel's digest.
    fn stored_wheel(s: &LocalStore, dir: &std::path::Path, name: &str) -> Digest {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let o = zip::write::SimpleFileOptions::default();
        z.start_file(format!("{name}.data/scripts/{name}"), o)
            .unwrap();
        z.write_all(name.as_bytes()).unwrap();
        let bytes = z.finish().unwrap().into_inner();
        let out = dir.join(name);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join(format!("{name}-1-py3-none-any.whl")), &bytes).unwrap();
        let tree = s.cas.put_tree(&out).unwrap();
        let mut pre = Preimage::new();
        pre.set("name", name);
        let key = pre.key();
        let r = ActionResult::podman_for_tests(&key, &format!("//sources:{name}"), tree.digest());
        s.actions.put(&key, &r, &pre).unwrap();
        crate::key::sha256_bytes(&bytes)
    }

    #[test]
    fn gc_keeps_the_unpacked_wheels_of_live_results_only() {
        let (d, s) = store();
        let kept = stored_wheel(&s, d.path(), "uv");
        let kept_dir = s.checkouts.unpacked_wheel(&kept).unwrap();
        // A wheel no result holds (its entry is gone): its blob and its
        // unpacked files are swept.
        let orphan = s.cas.put_bytes(b"PK").unwrap();
        let orphan_dir = s.root().join("unpacked").join(orphan.hex());
        std::fs::create_dir_all(&orphan_dir).unwrap();
        assert_eq!(s.checkouts.unpacked_wheels().len(), 2);
        gc(&s, None, None, false).unwrap();
        assert!(kept_dir.join("uv.data/scripts/uv").is_file());
        assert!(!orphan_dir.exists());
        assert!(!s.cas.has_blob(&orphan));
    }
}
