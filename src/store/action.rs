//! The action cache (key → output tree digest), the preimage of each key,
//! `refine verify`'s records, and the file names of fetched sources.
//!
//! Only successful builds enter the action cache. A hit is an entry whose
//! output tree and every blob of it are present; anything else is a miss
//! (a damaged entry is removed and reported as `Corrupt`).

use super::error::{StoreError, write_atomic};
use super::tree::Tree;
use crate::key::{Digest, Key, Preimage};
use crate::platform::Arch;
use crate::rules::Label;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::Path;
use std::path::PathBuf;

/// What the action cache remembers of a successful build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    pub key: String,
    pub label: Label,
    /// Digest of the output tree.
    pub output: Digest,
    /// Digest of the build log, kept in the CAS.
    #[serde(default)]
    pub log: Option<Digest>,
    pub duration_ms: u64,
    /// Seconds since the epoch.
    pub created: u64,
    pub refine_version: String,
    #[serde(with = "crate::platform::arch_name")]
    pub arch: Arch,
    /// What produced the output: `podman` for a sandboxed build (or a
    /// verified fetch). A result is only ever a hit for a run of the same
    /// executor, and only podman's are pushed; entries written before this
    /// was recorded have none and are rebuilt.
    #[serde(default)]
    pub executor: String,
}

/// The outcome of an action-cache lookup.
#[derive(Debug)]
pub enum Lookup {
    Hit(ActionResult, Tree),
    Miss,
    /// There was an entry but it (or its output) is damaged; it has been
    /// removed and the caller should rebuild.
    Corrupt(String),
}

/// What `refine verify` found for a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Verification {
    pub key: String,
    pub label: String,
    /// Rebuilds whose output equalled the stored output, over all runs.
    pub agreeing_rounds: usize,
    /// Rebuilds that differed.
    pub disagreeing_rounds: usize,
    pub last: u64,
}

/// The action cache (`<root>/ac/`), the preimages, `refine verify`'s
/// records and the names of fetched sources: files under the store's
/// root, nothing else of the store.
pub struct ActionCache {
    root: PathBuf,
}

/// An action-cache entry as read, before its output is checked.
pub enum Entry {
    Missing,
    Found(ActionResult),
    /// Unreadable or for another key: removed, and why.
    Damaged(String),
}

impl ActionCache {
    pub fn new(store_root: &Path) -> ActionCache {
        ActionCache {
            root: store_root.to_path_buf(),
        }
    }

    fn ac_path(&self, key: &Key) -> PathBuf {
        self.root
            .join("ac")
            .join(&key.0[..2])
            .join(format!("{}.json", key.0))
    }

    fn preimage_path(&self, key: &Key) -> PathBuf {
        self.root
            .join("preimages")
            .join(&key.0[..2])
            .join(format!("{}.json", key.0))
    }

    /// The entry for a key, checked to be for that key (a damaged one is
    /// removed).
    pub fn entry(&self, key: &Key) -> Entry {
        let p = self.ac_path(key);
        let bytes = match fs::read(&p) {
            Ok(b) => b,
            Err(_) => return Entry::Missing,
        };
        let result: ActionResult = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => {
                let _ = fs::remove_file(&p);
                return Entry::Damaged(format!("action cache entry {}: {e}", p.display()));
            }
        };
        if result.key != key.0 {
            let _ = fs::remove_file(&p);
            return Entry::Damaged(format!(
                "action cache entry {} is for another key",
                p.display()
            ));
        }
        Entry::Found(result)
    }

    /// The action result for a key, without checking its output.
    pub fn get(&self, key: &Key) -> Option<ActionResult> {
        let bytes = fs::read(self.ac_path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn put(
        &self,
        key: &Key,
        result: &ActionResult,
        preimage: &Preimage,
    ) -> Result<(), StoreError> {
        let pp = self.preimage_path(key);
        let pre = serde_json::to_vec_pretty(&preimage.to_json()).unwrap_or_default();
        write_atomic(&self.root, &pp, &pre)?;
        let ap = self.ac_path(key);
        let bytes = serde_json::to_vec_pretty(result).unwrap_or_default();
        write_atomic(&self.root, &ap, &bytes)
    }

    /// Store a preimage alone (for keys that are looked up but not built).
    pub fn put_preimage(&self, key: &Key, preimage: &Preimage) -> Result<(), StoreError> {
        let pp = self.preimage_path(key);
        if pp.exists() {
            return Ok(());
        }
        let pre = serde_json::to_vec_pretty(&preimage.to_json()).unwrap_or_default();
        write_atomic(&self.root, &pp, &pre)
    }

    pub fn preimage(&self, key: &Key) -> Option<Preimage> {
        let bytes = fs::read(self.preimage_path(key)).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let p = Preimage::from_json(&v)?;
        // A preimage that does not hash to its key is worthless.
        (p.key() == *key).then_some(p)
    }

    /// Every key in the action cache.
    pub fn keys(&self) -> Vec<Key> {
        let mut out = Vec::new();
        for e in walkdir::WalkDir::new(self.root.join("ac"))
            .min_depth(2)
            .max_depth(2)
            .into_iter()
            .flatten()
        {
            if let Some(k) = e
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(Key::parse)
            {
                out.push(k);
            }
        }
        out.sort();
        out
    }

    /// Remove the entry alone (its output is damaged; its preimage still
    /// explains the key).
    pub fn remove_entry(&self, key: &Key) {
        let _ = fs::remove_file(self.ac_path(key));
    }

    pub fn remove(&self, key: &Key) {
        let _ = fs::remove_file(self.ac_path(key));
        let _ = fs::remove_file(self.preimage_path(key));
    }

    pub fn entry_path(&self, key: &Key) -> PathBuf {
        self.ac_path(key)
    }

    // ---- verification records -----------------------------------------

    fn verification_path(&self, key: &Key) -> PathBuf {
        self.root.join("verified").join(format!("{}.json", key.0))
    }

    pub fn verification(&self, key: &Key) -> Option<Verification> {
        serde_json::from_slice(&fs::read(self.verification_path(key)).ok()?).ok()
    }

    pub fn set_verification(&self, key: &Key, v: &Verification) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(v).unwrap_or_default();
        write_atomic(&self.root, &self.verification_path(key), &bytes)
    }

    // ---- source names -------------------------------------------------

    pub fn source_name(&self, d: &Digest) -> Option<String> {
        fs::read_to_string(self.root.join("names").join(d.hex()))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && !s.contains('/'))
    }

    pub fn set_source_name(&self, d: &Digest, name: &str) -> Result<(), StoreError> {
        write_atomic(
            &self.root,
            &self.root.join("names").join(d.hex()),
            name.as_bytes(),
        )
    }
}

/// A podman build's result of `label` with output `output`, for the
/// store's tests.
#[cfg(test)]
impl ActionResult {
    pub(crate) fn podman_for_tests(key: &Key, label: &str, output: Digest) -> ActionResult {
        ActionResult {
            key: key.0.clone(),
            label: label.parse().expect("a label"),
            output,
            log: None,
            duration_ms: 1,
            created: 0,
            refine_version: "t".into(),
            arch: Arch::X86_64,
            executor: "podman".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::sha256_bytes;
    use crate::store::temp_store as store;

    #[test]
    fn action_cache_hit_miss_and_corrupt() {
        let (d, s) = store();
        let src = d.path().join("o");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("a.whl"), b"wheel").unwrap();
        let tree = s.cas.put_tree(&src).unwrap();
        let mut pre = Preimage::new();
        pre.set("name", "x");
        let key = pre.key();
        assert!(matches!(s.lookup(&key), Lookup::Miss));
        let r = ActionResult::podman_for_tests(&key, "//wheels:x", tree.digest());
        s.actions.put(&key, &r, &pre).unwrap();
        assert!(matches!(s.lookup(&key), Lookup::Hit(..)));
        assert_eq!(s.actions.preimage(&key).unwrap(), pre);
        // Lose the output blob: the entry is corrupt, reported, removed.
        s.cas.discard_blob(&sha256_bytes(b"wheel"));
        assert!(matches!(s.lookup(&key), Lookup::Corrupt(_)));
        assert!(matches!(s.lookup(&key), Lookup::Miss));
    }

    /// The label and arch are typed in memory and written as they always
    /// were (`"label": "//wheels:x"`, `"arch": "x86_64"`): entries and
    /// pushed results of earlier versions still read. An entry naming an
    /// arch refine does not know is damaged, not a hit.
    #[test]
    fn a_result_reads_and_writes_its_label_and_arch_as_text() {
        let (d, s) = store();
        let mut pre = Preimage::new();
        pre.set("name", "y");
        let key = pre.key();
        let r = ActionResult::podman_for_tests(&key, "//wheels:x", sha256_bytes(b""));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["label"], "//wheels:x");
        assert_eq!(v["arch"], "x86_64");
        assert_eq!(
            serde_json::from_value::<ActionResult>(v.clone()).unwrap(),
            r
        );

        s.actions.put(&key, &r, &pre).unwrap();
        assert!(matches!(s.actions.entry(&key), Entry::Found(_)));
        let path = s.actions.entry_path(&key);
        let mut bad = v;
        bad["arch"] = "sparc".into();
        fs::write(&path, serde_json::to_vec(&bad).unwrap()).unwrap();
        assert!(matches!(s.actions.entry(&key), Entry::Damaged(_)));
        drop(d);
    }
}
