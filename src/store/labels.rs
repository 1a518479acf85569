//! The label index: per arch, the last result of every label (its key,
//! verdict, output tree and log), loaded once per process and written once
//! at the end, merged with what other processes wrote meanwhile. The no-op
//! path answers hits from it without opening an action-cache entry.
//!
//! A concept of its own ([`Labels`]): it knows its directory and how to
//! write a file atomically, nothing else of the store.

use super::error::write_atomic;
use crate::key::Digest;
use crate::platform::Arch;
use crate::rules::Label;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// What a label's last result was, as the index records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recorded {
    /// Answered by a cache.
    Hit,
    Built,
    /// Failed: never a hit, whatever its key.
    Failed,
}

/// A label in the index's lines, as its text.
mod label_text {
    use crate::rules::Label;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(l: &Label, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(l)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Label, D::Error> {
        // Borrowed from the line where it can be: no copy before the check.
        Label::deserialize(d)
    }
}

/// The last result recorded for a label (for `refine log` and `explain`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelRecord {
    #[serde(with = "label_text")]
    pub label: Label,
    pub key: String,
    pub verdict: Recorded,
    #[serde(default)]
    pub output: Option<Digest>,
    #[serde(default)]
    pub log: Option<PathBuf>,
    pub time: u64,
    /// How long the last build took.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// The output tree (its manifest text), so a hit needs no other file.
    #[serde(default)]
    pub tree: Option<String>,
    /// The executor that produced the output (see `ActionResult::executor`).
    #[serde(default)]
    pub executor: String,
    /// The key's memo ([`crate::sched::memo`]): what determined `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
}

/// Label → its record (FxHash: filled and read 20,000 times a no-op).
type Records = rustc_hash::FxHashMap<Label, LabelRecord>;

/// Read and parse one label index file: its lines on every core (a
/// no-op's first hit waits for it; 20,000 lines are tens of milliseconds
/// on one). A line that does not parse is left out, as a missing record.
pub(super) fn parse_file(root: &Path, path: &Path) -> Records {
    let Ok(text) = fs::read_to_string(path) else {
        return Records::default();
    };
    super::readahead::parse_lines(
        &text,
        |n| Records::with_capacity_and_hasher(n, Default::default()),
        |l| {
            let mut r = serde_json::from_str::<LabelRecord>(l).ok()?;
            r.log = r.log.map(|p| super::logs::rebase_log(root, p));
            Some((r.label.clone(), r))
        },
    )
}

#[derive(Default)]
struct LabelIndex {
    records: Records,
    dirty: std::collections::HashSet<Label>,
    removed: std::collections::HashSet<Label>,
}

/// The store's label index (`<root>/labels/<arch>.jsonl`).
pub struct Labels {
    root: PathBuf,
    /// Per arch: label → last result, loaded once, written once; read by
    /// every core at once on the no-op path.
    indexes: RwLock<HashMap<Arch, LabelIndex>>,
}

impl Labels {
    pub fn new(store_root: &Path) -> Labels {
        Labels {
            root: store_root.to_path_buf(),
            indexes: RwLock::new(HashMap::new()),
        }
    }

    fn label_index_path(&self, arch: Arch) -> PathBuf {
        self.root.join("labels").join(format!("{arch}.jsonl"))
    }

    fn read_label_index(&self, arch: Arch) -> Records {
        let path = self.label_index_path(arch);
        if let Some(read) = super::readahead::take(&path) {
            return read;
        }
        parse_file(&self.root, &path)
    }

    fn with_labels<T>(&self, arch: Arch, f: impl FnOnce(&mut LabelIndex) -> T) -> T {
        let mut all = self.indexes.write().unwrap_or_else(|e| e.into_inner());
        let idx = all.entry(arch).or_insert_with(|| LabelIndex {
            records: self.read_label_index(arch),
            ..LabelIndex::default()
        });
        f(idx)
    }

    /// [`Labels::with_labels`] for reading: shared with other readers once
    /// the arch's index is loaded.
    fn read_labels<T>(&self, arch: Arch, f: impl FnOnce(&LabelIndex) -> T) -> T {
        {
            let all = self.indexes.read().unwrap_or_else(|e| e.into_inner());
            if let Some(idx) = all.get(&arch) {
                return f(idx);
            }
        }
        self.with_labels(arch, |i| f(i))
    }

    /// The last result recorded for a label on `arch`.
    pub fn get(&self, arch: Arch, label: &Label) -> Option<LabelRecord> {
        self.read_labels(arch, |i| i.records.get(label).cloned())
    }

    /// Record a label's result; written out by [`Labels::flush`].
    pub fn set(&self, arch: Arch, rec: &LabelRecord) {
        self.with_labels(arch, |i| {
            i.dirty.insert(rec.label.clone());
            i.records.insert(rec.label.clone(), rec.clone());
        });
    }

    /// The output and tree the label's last result gives for `key`, if it
    /// was not a failure and `trusts` accepts its executor (the store then
    /// checks the blobs: [`super::LocalStore::indexed_hit`]).
    pub fn hit(
        &self,
        arch: Arch,
        label: &Label,
        key: &crate::key::Key,
        trusts: &dyn Fn(&str) -> bool,
    ) -> Option<(Digest, super::tree::Tree)> {
        let (output, tree) = self.read_labels(arch, |i| {
            let rec = i.records.get(label)?;
            if rec.key != key.0 || rec.verdict == Recorded::Failed || !trusts(&rec.executor) {
                return None;
            }
            Some((rec.output.clone()?, rec.tree.clone()?))
        })?;
        // Decoded outside the lock: every core answers hits at once.
        Some((output, super::tree::Tree::decode(&tree).ok()?))
    }

    /// The key recorded for `label` if it was computed from what `memo`
    /// stands for ([`crate::sched::memo`]).
    pub fn memo_key(&self, arch: Arch, label: &Label, memo: &str) -> Option<crate::key::Key> {
        self.read_labels(arch, |i| {
            let rec = i.records.get(label)?;
            if rec.memo.as_deref() != Some(memo) {
                return None;
            }
            crate::key::Key::parse(&rec.key)
        })
    }

    /// The architectures the label index has records for.
    pub fn arches(&self) -> Vec<Arch> {
        fs::read_dir(self.root.join("labels"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Arch::parse(e.file_name().to_str()?.strip_suffix(".jsonl")?))
            .collect()
    }

    /// Every label record of `arch`, by label.
    pub fn all(&self, arch: Arch) -> Vec<LabelRecord> {
        self.read_labels(arch, |i| i.records.values().cloned().collect())
    }

    /// Keep only the label records (of every arch) that `keep` accepts.
    pub fn retain(&self, keep: impl Fn(&LabelRecord) -> bool) {
        for arch in self.arches() {
            self.with_labels(arch, |i| {
                let gone: Vec<Label> = i
                    .records
                    .iter()
                    .filter(|(_, r)| !keep(r))
                    .map(|(l, _)| l.clone())
                    .collect();
                for l in gone {
                    i.records.remove(&l);
                    i.dirty.remove(&l);
                    i.removed.insert(l);
                }
            });
        }
    }

    /// Look at a label's record in place.
    pub fn check<T>(
        &self,
        arch: Arch,
        label: &Label,
        f: impl FnOnce(&LabelRecord) -> T,
    ) -> Option<T> {
        self.read_labels(arch, |i| i.records.get(label).map(f))
    }

    /// Write what changed, merged with what other processes wrote.
    pub fn flush(&self) {
        let mut all = self.indexes.write().unwrap_or_else(|e| e.into_inner());
        for (&arch, idx) in all.iter_mut() {
            if idx.dirty.is_empty() && idx.removed.is_empty() {
                continue;
            }
            // Merge with what other processes wrote meanwhile; ours win.
            let lock = self.root.join("locks").join(format!("labels-{arch}.lock"));
            let guard = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock)
                .and_then(|f| f.lock().map(|()| f));
            // Afresh: never a read-ahead.
            let mut merged = parse_file(&self.root, &self.label_index_path(arch));
            for l in idx.removed.drain() {
                merged.remove(&l);
            }
            for l in idx.dirty.drain() {
                if let Some(r) = idx.records.get(&l) {
                    merged.insert(l, r.clone());
                }
            }
            let mut lines: Vec<String> = merged
                .values()
                .filter_map(|r| serde_json::to_string(r).ok())
                .collect();
            lines.sort();
            let mut text = lines.join("\n");
            text.push('\n');
            let _ = write_atomic(&self.root, &self.label_index_path(arch), text.as_bytes());
            drop(guard);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index's lines keep their text form: a line an earlier refine
    /// wrote reads as typed values, and a record written now reads back
    /// the same, with the same text.
    #[test]
    fn lines_on_disk_read_as_typed_records() {
        let (_d, s) = crate::store::temp_store();
        let line = r#"{"label":"//wheels:six","key":"abc","verdict":"hit","output":null,"log":null,"time":1,"duration_ms":5,"tree":null,"executor":"podman"}"#;
        let dir = s.root().join("labels");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("s390x.jsonl"), format!("{line}\n")).unwrap();
        let six: Label = "//wheels:six".parse().unwrap();
        let r = s.labels.get(Arch::S390x, &six).unwrap();
        assert_eq!((r.verdict, r.key.as_str()), (Recorded::Hit, "abc"));
        assert_eq!(s.labels.arches(), [Arch::S390x]);
        assert!(s.labels.get(Arch::X86_64, &six).is_none());
        let again = serde_json::to_string(&r).unwrap();
        assert!(again.contains(r#""label":"//wheels:six""#), "{again}");
        assert!(again.contains(r#""verdict":"hit""#), "{again}");
        // A line whose verdict refine does not know is left out, not an error.
        fs::write(dir.join("s390x.jsonl"), line.replace("\"hit\"", "\"odd\"")).unwrap();
        let s2 = crate::store::LocalStore::open(s.root()).unwrap();
        assert!(s2.labels.get(Arch::S390x, &six).is_none());
    }

    /// A read-ahead is waited for by whoever first needs the index, and on
    /// a no-op that is a worker of rayon's pool. Every worker of the pool
    /// asks at once, while the read-ahead is still reading: it must finish
    /// without them (a read-ahead that parsed on the pool deadlocked here,
    /// as it did a build right after its evaluation).
    #[test]
    fn a_read_ahead_finishes_while_every_pool_worker_waits_for_it() {
        let (d, s) = crate::store::temp_store();
        let dir = s.root().join("labels");
        fs::create_dir_all(&dir).unwrap();
        let mut text = String::new();
        for i in 0..30_000 {
            text.push_str(&format!(
                r#"{{"label":"//wheels:w{i}","key":"k{i}","verdict":"hit","output":null,"log":null,"time":1,"duration_ms":5,"tree":null,"executor":"podman"}}"#
            ));
            text.push('\n');
        }
        fs::write(dir.join("x86_64.jsonl"), text).unwrap();
        let root = d.path().to_path_buf();
        let store = std::sync::Arc::new(crate::store::LocalStore::open(&root).unwrap());
        let workers = rayon::current_num_threads();
        let gate = std::sync::Arc::new(std::sync::Barrier::new(workers + 1));
        let (tx, rx) = std::sync::mpsc::channel();
        for w in 0..workers {
            let (gate, store, tx) = (gate.clone(), store.clone(), tx.clone());
            rayon::spawn(move || {
                gate.wait();
                let l: Label = format!("//wheels:w{w}").parse().unwrap();
                let _ = tx.send(store.labels.get(Arch::X86_64, &l).is_some());
            });
        }
        // Every worker of the pool is held at the gate: the read-ahead
        // starts with none free, then they all ask for the index.
        crate::store::readahead::store(&root);
        gate.wait();
        let found = (0..workers)
            .map(|_| rx.recv_timeout(std::time::Duration::from_secs(120)))
            .collect::<Result<Vec<bool>, _>>()
            .expect("the read-ahead and the pool's workers waited for each other");
        assert!(found.iter().all(|&f| f), "{found:?}");
        drop(d);
    }
}
