//! The local store: a CAS of blobs, an action cache, preimages, logs.
//!
//! ```text
//! <root>/VERSION
//! <root>/cas/sha256/ab/<hex>        blobs, named by their sha256, read-only
//! <root>/ac/ab/<key>.json           action cache: key → output tree digest
//! <root>/preimages/ab/<key>.json    what each key was computed from
//! <root>/names/<sha256>             file name of a fetched source
//! <root>/labels/<arch>/<kind>/<name>.json   last result per label
//! <root>/trees/<hex>/               materialized trees (for mounts)
//! <root>/logs/<arch>/<kind>/<name>/ build logs
//! <root>/locks/<key>.lock           one builder per key across processes
//! <root>/tmp/                       staging; same filesystem as the rest
//! ```
//!
//! Invariants: every write is a temp file (or directory) in `tmp/` renamed
//! into place, so a reader sees a whole entry or none; a blob's bytes
//! match its name, checked whenever it is read (a mismatch deletes the blob
//! and is reported as corruption, which callers treat as a miss); only
//! successful builds enter the action cache.

use super::tree::{EntryKind, Tree, TreeEntry};
use crate::key::{Digest, Key, Preimage, Sha256Writer, sha256_bytes};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub const STORE_VERSION: &str = "refine-store 1";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("corrupt store entry {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("blob {0} is not in the store")]
    Missing(Digest),
    #[error("{path} is a refine store of another version ({found:?})")]
    Version { path: PathBuf, found: String },
}

impl StoreError {
    pub fn is_corrupt(&self) -> bool {
        matches!(self, StoreError::Corrupt { .. } | StoreError::Missing(_))
    }
}

pub(crate) trait IoCtx<T> {
    fn ctx(self, path: &Path) -> Result<T, StoreError>;
}

impl<T> IoCtx<T> for io::Result<T> {
    fn ctx(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// What the action cache remembers of a successful build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    pub key: String,
    pub label: String,
    /// Digest of the output tree.
    pub output: Digest,
    /// Digest of the build log, kept in the CAS.
    #[serde(default)]
    pub log: Option<Digest>,
    pub duration_ms: u64,
    /// Seconds since the epoch.
    pub created: u64,
    pub refine_version: String,
    pub arch: String,
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

/// The last result recorded for a label (for `refine log` and `explain`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelRecord {
    pub label: String,
    pub key: String,
    pub verdict: String,
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

/// Blob hex → (inode, size, mtime ns) at its last successful check.
type StatCache = HashMap<String, (u64, u64, i64)>;

/// What identifies a file's bytes without reading them.
fn stamp(meta: &fs::Metadata) -> (u64, u64, i64) {
    (
        meta.ino(),
        meta.size(),
        meta.mtime_nsec() + meta.mtime() * 1_000_000_000,
    )
}

/// A missing blob is `Missing`; other failures are I/O errors on its path.
fn blob_io(e: io::Error, d: &Digest, p: &Path) -> StoreError {
    if e.kind() == io::ErrorKind::NotFound {
        StoreError::Missing(d.clone())
    } else {
        StoreError::Io {
            path: p.to_path_buf(),
            source: e,
        }
    }
}

#[derive(Default)]
struct LabelIndex {
    records: HashMap<String, LabelRecord>,
    dirty: std::collections::HashSet<String>,
    removed: std::collections::HashSet<String>,
}

pub struct LocalStore {
    root: PathBuf,
    /// Per arch: label → last result, loaded once, written once.
    labels: Mutex<HashMap<String, LabelIndex>>,
    /// (path of a blob) → (inode, size, mtime ns) when its bytes were last
    /// verified; lets unchanged large blobs skip rehashing.
    stat_cache: Mutex<Option<StatCache>>,
    stat_dirty: Mutex<bool>,
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl LocalStore {
    pub fn open(root: &Path) -> Result<LocalStore, StoreError> {
        for d in [
            "cas/sha256",
            "ac",
            "preimages",
            "names",
            "labels",
            "trees",
            "logs",
            "locks",
            "tmp",
            "verified",
        ] {
            let p = root.join(d);
            fs::create_dir_all(&p).ctx(&p)?;
        }
        let vpath = root.join("VERSION");
        match fs::read_to_string(&vpath) {
            Ok(v) if v.trim() == STORE_VERSION => {}
            Ok(v) => {
                return Err(StoreError::Version {
                    path: root.to_path_buf(),
                    found: v.trim().to_string(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                write_atomic(root, &vpath, format!("{STORE_VERSION}\n").as_bytes())?;
            }
            Err(e) => return Err(e).ctx(&vpath),
        }
        Ok(LocalStore {
            root: root.to_path_buf(),
            labels: Mutex::new(HashMap::new()),
            stat_cache: Mutex::new(None),
            stat_dirty: Mutex::new(false),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn tmp_dir(&self) -> Result<tempfile::TempDir, StoreError> {
        let p = self.root.join("tmp");
        tempfile::Builder::new().prefix("t").tempdir_in(&p).ctx(&p)
    }

    // ---- CAS ----------------------------------------------------------

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        let h = d.hex();
        self.root.join("cas/sha256").join(&h[..2]).join(h)
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Store bytes from a reader; with `expected`, refuse (and discard)
    /// anything else.
    pub fn put_reader(
        &self,
        mut r: impl Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), StoreError> {
        let tmp_root = self.root.join("tmp");
        let tmp = tempfile::NamedTempFile::new_in(&tmp_root).ctx(&tmp_root)?;
        let mut w = Sha256Writer::new(io::BufWriter::new(tmp));
        io::copy(&mut r, &mut w).ctx(&tmp_root)?;
        let (digest, size, buf) = w.finish();
        let tmp = buf
            .into_inner()
            .map_err(|e| e.into_error())
            .ctx(&tmp_root)?;
        if let Some(exp) = expected
            && exp != &digest
        {
            return Err(StoreError::Corrupt {
                path: tmp.path().to_path_buf(),
                reason: format!("expected {exp}, got {digest}"),
            });
        }
        self.commit_blob(tmp, &digest)?;
        Ok((digest, size))
    }

    pub fn put_file(&self, src: &Path) -> Result<(Digest, u64), StoreError> {
        let f = File::open(src).ctx(src)?;
        self.put_reader(f, None)
    }

    pub fn put_bytes(&self, b: &[u8]) -> Result<Digest, StoreError> {
        let d = sha256_bytes(b);
        if self.has_blob(&d) {
            return Ok(d);
        }
        self.put_reader(b, Some(&d)).map(|(d, _)| d)
    }

    /// A temp file in the store, for [`LocalStore::commit_verified`].
    pub fn new_temp(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        let tmp_root = self.root.join("tmp");
        tempfile::NamedTempFile::new_in(&tmp_root).ctx(&tmp_root)
    }

    /// Move a temp file whose bytes the caller checked against `d` into the
    /// CAS (a download hashed while it streamed).
    pub fn commit_verified(
        &self,
        tmp: tempfile::NamedTempFile,
        d: &Digest,
    ) -> Result<(), StoreError> {
        self.commit_blob(tmp, d)
    }

    fn commit_blob(&self, tmp: tempfile::NamedTempFile, d: &Digest) -> Result<(), StoreError> {
        let dest = self.blob_path(d);
        if dest.is_file() {
            return Ok(()); // same name, same bytes: someone else got here first
        }
        let parent = dest.parent().unwrap_or(&self.root);
        fs::create_dir_all(parent).ctx(parent)?;
        // No fsync: a blob torn by a crash fails its digest check on read
        // and is treated as missing.
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o444)).ctx(tmp.path())?;
        tmp.persist(&dest).map_err(|e| StoreError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        // Its bytes were hashed on the way in: no need to hash them again.
        self.remember_verified(d);
        Ok(())
    }

    fn remember_verified(&self, d: &Digest) {
        if let Ok(meta) = fs::metadata(self.blob_path(d)) {
            let stamp = stamp(&meta);
            let mut cache = self.stat_cache.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .get_or_insert_with(|| self.load_stat_cache())
                .insert(d.hex().to_string(), stamp);
            *self.stat_dirty.lock().unwrap_or_else(|e| e.into_inner()) = true;
        }
    }

    /// Read a whole blob, checking its digest.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>, StoreError> {
        let p = self.blob_path(d);
        let bytes = fs::read(&p).map_err(|e| blob_io(e, d, &p))?;
        let got = sha256_bytes(&bytes);
        if &got != d {
            self.discard_blob(d);
            return Err(StoreError::Corrupt {
                path: p,
                reason: format!("content hashes to {got}"),
            });
        }
        Ok(bytes)
    }

    /// Check a blob's bytes, skipping the hash when its inode, size and
    /// mtime match the last successful check.
    pub fn verify_blob(&self, d: &Digest) -> Result<u64, StoreError> {
        let p = self.blob_path(d);
        let meta = fs::metadata(&p).map_err(|e| blob_io(e, d, &p))?;
        let stamp = stamp(&meta);
        {
            let mut cache = self.stat_cache.lock().unwrap_or_else(|e| e.into_inner());
            let map = cache.get_or_insert_with(|| self.load_stat_cache());
            if map.get(d.hex()) == Some(&stamp) {
                return Ok(meta.size());
            }
        }
        let rel = d.hex().to_string();
        let (got, size) = crate::key::sha256_file(&p).ctx(&p)?;
        if &got != d {
            self.discard_blob(d);
            return Err(StoreError::Corrupt {
                path: p,
                reason: format!("content hashes to {got}"),
            });
        }
        let mut cache = self.stat_cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get_or_insert_with(HashMap::new).insert(rel, stamp);
        *self.stat_dirty.lock().unwrap_or_else(|e| e.into_inner()) = true;
        Ok(size)
    }

    fn load_stat_cache(&self) -> StatCache {
        let p = self.root.join("statcache");
        let Ok(text) = fs::read_to_string(&p) else {
            return HashMap::new();
        };
        text.lines()
            .filter_map(|l| {
                let mut it = l.split(' ');
                let hex = it.next()?.to_string();
                let ino = it.next()?.parse().ok()?;
                let size = it.next()?.parse().ok()?;
                let mtime = it.next()?.parse().ok()?;
                Some((hex, (ino, size, mtime)))
            })
            .collect()
    }

    /// Persist the stat cache (best effort: it is only a cache).
    pub fn flush(&self) {
        self.flush_labels();
        let dirty = std::mem::take(&mut *self.stat_dirty.lock().unwrap_or_else(|e| e.into_inner()));
        if !dirty {
            return;
        }
        let cache = self.stat_cache.lock().unwrap_or_else(|e| e.into_inner());
        let Some(map) = cache.as_ref() else {
            return;
        };
        let mut merged = self.load_stat_cache();
        merged.extend(map.iter().map(|(k, v)| (k.clone(), *v)));
        let mut text = String::new();
        for (k, (ino, size, mtime)) in &merged {
            if self.root.join("cas/sha256").join(&k[..2]).join(k).exists() {
                text.push_str(&format!("{k} {ino} {size} {mtime}\n"));
            }
        }
        let _ = write_atomic(&self.root, &self.root.join("statcache"), text.as_bytes());
    }

    pub fn discard_blob(&self, d: &Digest) {
        let _ = fs::remove_file(self.blob_path(d));
    }

    /// Copy a blob to `dest` (atomically), checking its digest on the way.
    pub fn copy_blob_to(
        &self,
        d: &Digest,
        dest: &Path,
        executable: bool,
    ) -> Result<(), StoreError> {
        let src = self.blob_path(d);
        let f = File::open(&src).map_err(|e| blob_io(e, d, &src))?;
        let dir = dest.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).ctx(dir)?;
        let tmp = tempfile::NamedTempFile::new_in(dir).ctx(dir)?;
        let mut w = Sha256Writer::new(io::BufWriter::new(tmp));
        io::copy(&mut io::BufReader::new(f), &mut w).ctx(&src)?;
        let (got, _, buf) = w.finish();
        let tmp = buf.into_inner().map_err(|e| e.into_error()).ctx(dir)?;
        if &got != d {
            self.discard_blob(d);
            return Err(StoreError::Corrupt {
                path: src,
                reason: format!("content hashes to {got}"),
            });
        }
        let mode = if executable { 0o755 } else { 0o644 };
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode)).ctx(tmp.path())?;
        tmp.persist(dest).map_err(|e| StoreError::Io {
            path: dest.to_path_buf(),
            source: e.error,
        })?;
        Ok(())
    }

    /// Put a blob at `dest` as a hard link when the filesystem allows (a
    /// read-only file sharing the store's bytes), else as a verified copy.
    /// A `dest` that already is this blob is left alone.
    /// Returns whether `dest` changed.
    pub fn deliver_blob(&self, d: &Digest, dest: &Path) -> Result<bool, StoreError> {
        let src = self.blob_path(d);
        if let (Ok(a), Ok(b)) = (fs::metadata(&src), fs::metadata(dest))
            && a.ino() == b.ino()
            && a.dev() == b.dev()
        {
            return Ok(false);
        }
        let dir = dest.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).ctx(dir)?;
        // Unique per destination: equal blobs may be delivered in parallel.
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".refine-{}-{name}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        match fs::hard_link(&src, &tmp) {
            Ok(()) => fs::rename(&tmp, dest).ctx(dest)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Missing(d.clone()));
            }
            Err(_) => {
                if fs::metadata(dest)
                    .is_ok_and(|m| m.len() == fs::metadata(&src).map(|s| s.len()).unwrap_or(0))
                    && crate::key::sha256_file(dest).is_ok_and(|(got, _)| &got == d)
                {
                    return Ok(false);
                }
                self.copy_blob_to(d, dest, false)?
            }
        }
        Ok(true)
    }

    // ---- trees --------------------------------------------------------

    /// Store a directory as a tree: every file into the CAS, then the
    /// manifest. Returns the tree (its digest is `tree.digest()`).
    pub fn put_tree(&self, dir: &Path) -> Result<Tree, StoreError> {
        let mut entries = Vec::new();
        for entry in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
            let entry = entry.map_err(|e| StoreError::Io {
                path: dir.to_path_buf(),
                source: e.into(),
            })?;
            let p = entry.path();
            let rel = p
                .strip_prefix(dir)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned();
            let ft = entry.file_type();
            let kind = if ft.is_symlink() {
                let target = fs::read_link(p).ctx(p)?;
                EntryKind::Symlink {
                    target: target.to_string_lossy().into_owned(),
                }
            } else if ft.is_dir() {
                EntryKind::Dir
            } else if ft.is_file() {
                let meta = entry.metadata().map_err(|e| StoreError::Io {
                    path: p.to_path_buf(),
                    source: e.into(),
                })?;
                let (digest, size) = self.put_file(p)?;
                EntryKind::File {
                    executable: meta.permissions().mode() & 0o111 != 0,
                    size,
                    digest,
                }
            } else {
                return Err(StoreError::Corrupt {
                    path: p.to_path_buf(),
                    reason: "outputs may hold files, directories and symlinks only".into(),
                });
            };
            entries.push(TreeEntry { path: rel, kind });
        }
        let tree = Tree::new(entries).map_err(|e| StoreError::Corrupt {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        self.put_bytes(tree.encode().as_bytes())?;
        Ok(tree)
    }

    /// Read a tree manifest by digest.
    pub fn tree(&self, d: &Digest) -> Result<Tree, StoreError> {
        let bytes = self.read_blob(d)?;
        let text = String::from_utf8(bytes).map_err(|_| StoreError::Corrupt {
            path: self.blob_path(d),
            reason: "tree manifest is not UTF-8".into(),
        })?;
        Tree::decode(&text).map_err(|e| StoreError::Corrupt {
            path: self.blob_path(d),
            reason: e.to_string(),
        })
    }

    /// Check that every blob of a tree is present.
    pub fn tree_complete(&self, tree: &Tree) -> Result<(), StoreError> {
        for (_, d, _) in tree.files() {
            if !self.has_blob(d) {
                return Err(StoreError::Missing(d.clone()));
            }
        }
        Ok(())
    }

    /// Write a tree's files under `dest` (which must not exist yet),
    /// verifying every blob.
    pub fn checkout(&self, tree: &Tree, dest: &Path) -> Result<(), StoreError> {
        fs::create_dir_all(dest).ctx(dest)?;
        for e in &tree.entries {
            let p = dest.join(&e.path);
            match &e.kind {
                EntryKind::Dir => fs::create_dir_all(&p).ctx(&p)?,
                EntryKind::File {
                    executable, digest, ..
                } => self.copy_blob_to(digest, &p, *executable)?,
                EntryKind::Symlink { target } => {
                    if let Some(parent) = p.parent() {
                        fs::create_dir_all(parent).ctx(parent)?;
                    }
                    std::os::unix::fs::symlink(target, &p).ctx(&p)?;
                }
            }
        }
        Ok(())
    }

    /// A read-only checkout of a tree at `trees/<hex>`, made once.
    pub fn materialize(&self, d: &Digest) -> Result<PathBuf, StoreError> {
        let dest = self.root.join("trees").join(d.hex());
        if dest.is_dir() {
            return Ok(dest);
        }
        let tree = self.tree(d)?;
        let tmp = self.tmp_dir()?;
        let stage = tmp.path().join("t");
        self.checkout(&tree, &stage)?;
        match fs::rename(&stage, &dest) {
            Ok(()) => {}
            // Another process materialized it meanwhile: theirs is as good.
            Err(_) if dest.is_dir() => {}
            Err(e) => return Err(e).ctx(&dest),
        }
        Ok(dest)
    }

    // ---- action cache -------------------------------------------------

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

    /// Look a key up: a hit has its output tree present and intact.
    pub fn lookup(&self, key: &Key) -> Lookup {
        let p = self.ac_path(key);
        let bytes = match fs::read(&p) {
            Ok(b) => b,
            Err(_) => return Lookup::Miss,
        };
        let result: ActionResult = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => {
                let _ = fs::remove_file(&p);
                return Lookup::Corrupt(format!("action cache entry {}: {e}", p.display()));
            }
        };
        if result.key != key.0 {
            let _ = fs::remove_file(&p);
            return Lookup::Corrupt(format!(
                "action cache entry {} is for another key",
                p.display()
            ));
        }
        match self
            .tree(&result.output)
            .and_then(|t| self.tree_complete(&t).map(|()| t))
        {
            Ok(tree) => Lookup::Hit(result, tree),
            Err(e) => {
                let _ = fs::remove_file(&p);
                Lookup::Corrupt(format!("output of {}: {e}", result.label))
            }
        }
    }

    /// The action result for a key, without checking its output.
    pub fn action(&self, key: &Key) -> Option<ActionResult> {
        let bytes = fs::read(self.ac_path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn put_action(
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

    pub fn remove_action(&self, key: &Key) {
        let _ = fs::remove_file(self.ac_path(key));
        let _ = fs::remove_file(self.preimage_path(key));
    }

    pub fn ac_entry_path(&self, key: &Key) -> PathBuf {
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

    // ---- locks --------------------------------------------------------

    /// Hold this while building a key: a second process waits, then finds
    /// the result in the cache instead of building it again.
    pub fn lock(&self, key: &Key) -> Result<File, StoreError> {
        let p = self.root.join("locks").join(format!("{}.lock", key.0));
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx(&p)?;
        f.lock().ctx(&p)?;
        Ok(f)
    }

    /// A lock for the whole store (gc takes it exclusively).
    pub fn store_lock(&self, exclusive: bool) -> Result<File, StoreError> {
        let p = self.root.join("locks").join("store.lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx(&p)?;
        if exclusive {
            f.lock().ctx(&p)?;
        } else {
            f.lock_shared().ctx(&p)?;
        }
        Ok(f)
    }

    // ---- labels and logs ----------------------------------------------

    fn label_index_path(&self, arch: &str) -> PathBuf {
        self.root.join("labels").join(format!("{arch}.jsonl"))
    }

    fn read_label_index(&self, arch: &str) -> HashMap<String, LabelRecord> {
        let Ok(text) = fs::read_to_string(self.label_index_path(arch)) else {
            return HashMap::new();
        };
        text.lines()
            .filter_map(|l| serde_json::from_str::<LabelRecord>(l).ok())
            .map(|r| (r.label.clone(), r))
            .collect()
    }

    fn with_labels<T>(&self, arch: &str, f: impl FnOnce(&mut LabelIndex) -> T) -> T {
        let mut all = self.labels.lock().unwrap_or_else(|e| e.into_inner());
        let idx = all.entry(arch.to_string()).or_insert_with(|| LabelIndex {
            records: self.read_label_index(arch),
            ..LabelIndex::default()
        });
        f(idx)
    }

    /// The last result recorded for a label on `arch`.
    pub fn label_record(&self, arch: &str, label: &str) -> Option<LabelRecord> {
        self.with_labels(arch, |i| i.records.get(label).cloned())
    }

    /// Record a label's result; written out by [`LocalStore::flush`].
    pub fn set_label_record(&self, arch: &str, rec: &LabelRecord) {
        self.with_labels(arch, |i| {
            i.dirty.insert(rec.label.clone());
            i.records.insert(rec.label.clone(), rec.clone());
        });
    }

    /// A hit from the label index alone: the label's last result has this
    /// key and its output is present and intact. The no-op path runs on
    /// this, without opening an action-cache entry per node.
    ///
    /// With `verify`, every blob of the output is checked (by stat against
    /// the stat cache, rehashing only what changed); without, only a later
    /// read checks them (mounts, copies), which saves a stat per node on a
    /// no-op run of a large graph.
    pub fn indexed_hit(
        &self,
        arch: &str,
        label: &str,
        key: &Key,
        verify: bool,
    ) -> Option<(Digest, Tree)> {
        let (output, tree) = self.with_labels(arch, |i| {
            let rec = i.records.get(label)?;
            if rec.key != key.0 || rec.verdict == "failed" {
                return None;
            }
            Some((
                rec.output.clone()?,
                Tree::decode(rec.tree.as_deref()?).ok()?,
            ))
        })?;
        for (_, d, _) in tree.files() {
            if verify {
                self.verify_blob(d).ok()?;
            } else if !self.has_blob(d) {
                return None;
            }
        }
        Some((output, tree))
    }

    /// Keep only the label records (of every arch) that `keep` accepts.
    pub fn retain_labels(&self, keep: impl Fn(&LabelRecord) -> bool) {
        let arches: Vec<String> = fs::read_dir(self.root.join("labels"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".jsonl")
                    .map(str::to_string)
            })
            .collect();
        for arch in arches {
            self.with_labels(&arch, |i| {
                let gone: Vec<String> = i
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
    pub fn label_check<T>(
        &self,
        arch: &str,
        label: &str,
        f: impl FnOnce(&LabelRecord) -> T,
    ) -> Option<T> {
        self.with_labels(arch, |i| i.records.get(label).map(f))
    }

    fn flush_labels(&self) {
        let mut all = self.labels.lock().unwrap_or_else(|e| e.into_inner());
        for (arch, idx) in all.iter_mut() {
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
            let mut merged = self.read_label_index(arch);
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

    /// A fresh log file path for a build of `label_path` with `key`.
    pub fn new_log_path(&self, arch: &str, label_path: &str, key: &Key) -> PathBuf {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        self.root
            .join("logs")
            .join(arch)
            .join(label_path)
            .join(format!("{t}-{}.log", key.short()))
    }
}

impl Drop for LocalStore {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Write `bytes` to `dest` through a temp file in the store's `tmp/`.
pub fn write_atomic(root: &Path, dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = dest.parent().unwrap_or(root);
    fs::create_dir_all(dir).ctx(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).ctx(dir)?;
    tmp.write_all(bytes).ctx(dest)?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))
        .ctx(dest)?;
    tmp.as_file().sync_all().ctx(dest)?;
    tmp.persist(dest).map_err(|e| StoreError::Io {
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, LocalStore) {
        let d = tempfile::tempdir().unwrap();
        let s = LocalStore::open(d.path()).unwrap();
        (d, s)
    }

    #[test]
    fn blobs_round_trip_and_corruption_is_detected() {
        let (_d, s) = store();
        let dg = s.put_bytes(b"hello").unwrap();
        assert_eq!(s.read_blob(&dg).unwrap(), b"hello");
        assert_eq!(s.verify_blob(&dg).unwrap(), 5);
        // Corrupt it behind the store's back.
        let p = s.blob_path(&dg);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&p, b"hellO").unwrap();
        let err = s.verify_blob(&dg).unwrap_err();
        assert!(err.is_corrupt(), "{err}");
        assert!(!p.exists(), "a corrupt blob is discarded");
    }

    #[test]
    fn expected_digest_mismatch_stores_nothing() {
        let (_d, s) = store();
        let wrong = sha256_bytes(b"other");
        assert!(s.put_reader(&b"data"[..], Some(&wrong)).is_err());
        assert!(!s.has_blob(&sha256_bytes(b"data")));
        assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn trees_keep_links_and_exec_bits() {
        let (d, s) = store();
        let src = d.path().join("src");
        fs::create_dir_all(src.join("lib")).unwrap();
        fs::create_dir_all(src.join("empty")).unwrap();
        fs::write(src.join("lib/libz.so.1"), b"elf").unwrap();
        std::os::unix::fs::symlink("libz.so.1", src.join("lib/libz.so")).unwrap();
        fs::write(src.join("run"), b"#!/bin/sh").unwrap();
        fs::set_permissions(src.join("run"), fs::Permissions::from_mode(0o700)).unwrap();
        let t = s.put_tree(&src).unwrap();
        let out = s.materialize(&t.digest()).unwrap();
        assert_eq!(
            fs::read_link(out.join("lib/libz.so")).unwrap(),
            Path::new("libz.so.1")
        );
        assert_eq!(
            fs::metadata(out.join("run")).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert!(out.join("empty").is_dir());
        // The same content elsewhere gives the same digest.
        let again = s.put_tree(&out).unwrap();
        assert_eq!(again.digest(), t.digest());
    }

    #[test]
    fn action_cache_hit_miss_and_corrupt() {
        let (d, s) = store();
        let src = d.path().join("o");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("a.whl"), b"wheel").unwrap();
        let tree = s.put_tree(&src).unwrap();
        let mut pre = Preimage::new();
        pre.set("name", "x");
        let key = pre.key();
        assert!(matches!(s.lookup(&key), Lookup::Miss));
        let r = ActionResult {
            key: key.0.clone(),
            label: "//wheels:x".into(),
            output: tree.digest(),
            log: None,
            duration_ms: 1,
            created: 0,
            refine_version: "t".into(),
            arch: "x86_64".into(),
        };
        s.put_action(&key, &r, &pre).unwrap();
        assert!(matches!(s.lookup(&key), Lookup::Hit(..)));
        assert_eq!(s.preimage(&key).unwrap(), pre);
        // Lose the output blob: the entry is corrupt, reported, removed.
        s.discard_blob(&sha256_bytes(b"wheel"));
        assert!(matches!(s.lookup(&key), Lookup::Corrupt(_)));
        assert!(matches!(s.lookup(&key), Lookup::Miss));
    }
}
