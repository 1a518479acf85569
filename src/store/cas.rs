//! The CAS: blobs named by their sha256, read-only, checked when read,
//! and the trees whose manifests are blobs of their own (`put_tree`,
//! `tree`).
//!
//! A blob enters through a temp file in `tmp/` that is hashed while it is
//! written and renamed into place only if it is what it claims to be. A
//! stat cache ((inode, size, mtime) of each blob at its last check) lets
//! unchanged large blobs skip rehashing; any other change rehashes.

use super::error::{IoCtx, StoreError, write_atomic};
use super::tree::{EntryKind, Tree, TreeEntry};
use crate::key::{Digest, Sha256Writer, sha256_bytes};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How closely a cache hit's blobs are checked before the hit is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobCheck {
    /// Present: whatever reads it later checks its digest on the way.
    Exists,
    /// Hashed unless its inode, size and mtime match its last check.
    Stat,
    /// Hashed, whatever the stat cache says: what is delivered to a user
    /// as it is (a wheel), where damage that kept size and mtime must be
    /// a miss, not a delivery.
    Hash,
}

/// Blob digest (its 32 bytes: no allocation per entry; the cache holds
/// every blob the store has checked) → (inode, size, mtime ns) at its last
/// successful check.
type StatCache = rustc_hash::FxHashMap<[u8; 32], (u64, u64, i64)>;

/// A digest's hex as the stat cache's key.
fn cache_key(hex: &str) -> Option<[u8; 32]> {
    let mut k = [0u8; 32];
    hex::decode_to_slice(hex, &mut k).ok()?;
    Some(k)
}

/// Read the stat cache file (`<hex> <inode> <size> <mtime>` per line), its
/// lines on every core; a line that does not parse is left out.
pub(super) fn parse_stat_cache(p: &Path) -> StatCache {
    let Ok(text) = fs::read_to_string(p) else {
        return StatCache::default();
    };
    super::readahead::parse_lines(
        &text,
        |n| StatCache::with_capacity_and_hasher(n, Default::default()),
        |l| {
            let mut it = l.split(' ');
            let hex = cache_key(it.next()?)?;
            let ino = it.next()?.parse().ok()?;
            let size = it.next()?.parse().ok()?;
            let mtime = it.next()?.parse().ok()?;
            Some((hex, (ino, size, mtime)))
        },
    )
}

/// The store's blobs (`<root>/cas/sha256/`), and what it remembers of
/// their last checks.
pub struct Cas {
    root: PathBuf,
    /// (blob) → (inode, size, mtime ns) when its bytes were last verified;
    /// lets unchanged large blobs skip rehashing.
    stat_cache: Mutex<Option<StatCache>>,
    stat_dirty: Mutex<bool>,
    /// `cas/sha256`, opened once: a blob's stat walks two names.
    blobs_dir: super::dirhandle::DirHandle,
}

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

impl Cas {
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

    /// Every blob digest in the CAS.
    pub fn digests(&self) -> Vec<Digest> {
        walkdir::WalkDir::new(self.root.join("cas/sha256"))
            .min_depth(2)
            .max_depth(2)
            .into_iter()
            .flatten()
            .filter_map(|e| Digest::from_hex(e.file_name().to_str()?).ok())
            .collect()
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

    pub fn new(store_root: &Path) -> Cas {
        Cas {
            root: store_root.to_path_buf(),
            stat_cache: Mutex::new(None),
            stat_dirty: Mutex::new(false),
            blobs_dir: super::dirhandle::DirHandle::new(store_root.join("cas/sha256")),
        }
    }

    /// The stamp and size of a blob's file (following links, as
    /// `fs::metadata`), through the open blobs directory when there is
    /// one; a blob not found there is looked for by its path too (the
    /// directory may have been replaced under a long-lived process).
    // `stat`'s field types differ by architecture (s390x among them).
    #[allow(clippy::unnecessary_cast)]
    fn blob_stat(&self, d: &Digest) -> io::Result<(u64, u64, i64)> {
        let h = d.hex();
        match self.blobs_dir.stat(&format!("{}/{h}", &h[..2]), true) {
            Some(Ok(st)) if super::dirhandle::is_file(&st) => {
                let mtime = (st.st_mtime as i64) * 1_000_000_000 + st.st_mtime_nsec as i64;
                return Ok((st.st_ino as u64, st.st_size as u64, mtime));
            }
            Some(Ok(_)) => return Err(io::Error::new(io::ErrorKind::InvalidData, "not a file")),
            Some(Err(e)) if e != rustix::io::Errno::NOENT => return Err(e.into()),
            Some(Err(_)) | None => {}
        }
        let meta = fs::metadata(self.blob_path(d))?;
        if !meta.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not a file"));
        }
        Ok(stamp(&meta))
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        let h = d.hex();
        self.root.join("cas/sha256").join(&h[..2]).join(h)
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_stat(d).is_ok()
    }

    /// Store bytes from a reader; with `expected`, refuse (and discard)
    /// anything else.
    pub fn put_reader(
        &self,
        mut r: impl Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), StoreError> {
        let tmp_root = self.root.join("tmp");
        let tmp = self.new_temp()?;
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
        tempfile::Builder::new()
            .prefix(&super::error::staging_prefix())
            .tempfile_in(&tmp_root)
            .ctx(&tmp_root)
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
            if let Some(k) = cache_key(d.hex()) {
                cache
                    .get_or_insert_with(|| self.load_stat_cache())
                    .insert(k, stamp);
            }
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
        let stamp = self
            .blob_stat(d)
            .map_err(|e| blob_io(e, d, &self.blob_path(d)))?;
        let key = cache_key(d.hex());
        if let Some(k) = &key {
            let mut cache = self.stat_cache.lock().unwrap_or_else(|e| e.into_inner());
            let map = cache.get_or_insert_with(|| self.load_stat_cache());
            if map.get(k) == Some(&stamp) {
                return Ok(stamp.1);
            }
        }
        let size = self.rehash_blob(d)?;
        if let Some(k) = key {
            let mut cache = self.stat_cache.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .get_or_insert_with(StatCache::default)
                .insert(k, stamp);
            *self.stat_dirty.lock().unwrap_or_else(|e| e.into_inner()) = true;
        }
        Ok(size)
    }

    /// Check a blob as `check` says; a damaged blob is discarded (so the
    /// hit that named it becomes a miss).
    pub fn check_blob(&self, d: &Digest, check: BlobCheck) -> Result<(), StoreError> {
        match check {
            BlobCheck::Exists if self.has_blob(d) => Ok(()),
            BlobCheck::Exists => Err(StoreError::Missing(d.clone())),
            BlobCheck::Stat => self.verify_blob(d).map(|_| ()),
            BlobCheck::Hash => self.rehash_blob(d).map(|_| ()),
        }
    }

    /// Hash a blob's bytes, whatever the stat cache says.
    pub fn rehash_blob(&self, d: &Digest) -> Result<u64, StoreError> {
        let p = self.blob_path(d);
        let (got, size) = crate::key::sha256_file(&p).map_err(|e| blob_io(e, d, &p))?;
        if &got != d {
            self.discard_blob(d);
            return Err(StoreError::Corrupt {
                path: p,
                reason: format!("content hashes to {got}"),
            });
        }
        Ok(size)
    }

    fn load_stat_cache(&self) -> StatCache {
        let p = self.root.join("statcache");
        super::readahead::take(&p).unwrap_or_else(|| parse_stat_cache(&p))
    }

    /// Persist the stat cache (best effort: it is only a cache).
    /// Write the stat cache out (best effort: it is a cache).
    pub fn flush(&self) {
        let dirty = std::mem::take(&mut *self.stat_dirty.lock().unwrap_or_else(|e| e.into_inner()));
        if !dirty {
            return;
        }
        let cache = self.stat_cache.lock().unwrap_or_else(|e| e.into_inner());
        let Some(map) = cache.as_ref() else {
            return;
        };
        let mut merged = parse_stat_cache(&self.root.join("statcache"));
        merged.extend(map.iter().map(|(k, v)| (*k, *v)));
        let mut text = String::new();
        for (k, (ino, size, mtime)) in &merged {
            let k = hex::encode(k);
            if self.root.join("cas/sha256").join(&k[..2]).join(&k).exists() {
                text.push_str(&format!("{k} {ino} {size} {mtime}\n"));
            }
        }
        let _ = write_atomic(&self.root, &self.root.join("statcache"), text.as_bytes());
    }

    pub fn discard_blob(&self, d: &Digest) {
        let _ = fs::remove_file(self.blob_path(d));
    }

    /// Copy a blob into an open file, checking its digest on the way
    /// (`dest` names the file in errors).
    pub fn copy_blob_into(&self, d: &Digest, into: File, dest: &Path) -> Result<(), StoreError> {
        let src = self.blob_path(d);
        let f = File::open(&src).map_err(|e| blob_io(e, d, &src))?;
        let mut w = Sha256Writer::new(io::BufWriter::new(into));
        io::copy(&mut io::BufReader::new(f), &mut w).ctx(dest)?;
        let (got, _, buf) = w.finish();
        buf.into_inner().map_err(|e| e.into_error()).ctx(dest)?;
        if &got != d {
            self.discard_blob(d);
            return Err(StoreError::Corrupt {
                path: src,
                reason: format!("content hashes to {got}"),
            });
        }
        Ok(())
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

    /// Put a blob at `dest` as a copy whose bytes were hashed on the way
    /// (never a hard link: a user's tool writing to a delivered wheel must
    /// not reach the store, and a blob damaged in place, same size and
    /// mtime, must not be delivered). A `dest` that already holds exactly
    /// these bytes (hashed, not stat'ed) is left alone; a damaged blob is
    /// discarded and reported as corrupt.
    /// Returns whether `dest` changed.
    pub fn deliver_blob(&self, d: &Digest, dest: &Path) -> Result<bool, StoreError> {
        let src = self.blob_path(d);
        let size = fs::metadata(&src).map_err(|e| blob_io(e, d, &src))?.len();
        if fs::symlink_metadata(dest).is_ok_and(|m| m.is_file() && m.len() == size)
            && crate::key::sha256_file(dest).is_ok_and(|(got, _)| &got == d)
        {
            return Ok(false);
        }
        self.copy_blob_to(d, dest, false)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::temp_store as store;

    #[test]
    fn blobs_round_trip_and_corruption_is_detected() {
        let (_d, s) = store();
        let dg = s.cas.put_bytes(b"hello").unwrap();
        assert_eq!(s.cas.read_blob(&dg).unwrap(), b"hello");
        assert_eq!(s.cas.verify_blob(&dg).unwrap(), 5);
        // Corrupt it behind the store's back.
        let p = s.cas.blob_path(&dg);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&p, b"hellO").unwrap();
        let err = s.cas.verify_blob(&dg).unwrap_err();
        assert!(err.is_corrupt(), "{err}");
        assert!(!p.exists(), "a corrupt blob is discarded");
    }

    /// A byte flipped in place, size and mtime restored: the stat cache
    /// cannot see it, delivery does, and a delivered file is the user's,
    /// not the store's.
    #[test]
    fn delivery_checks_the_bytes_and_shares_none() {
        let (d, s) = store();
        let dg = s.cas.put_bytes(b"the wheel's bytes").unwrap();
        assert_eq!(s.cas.verify_blob(&dg).unwrap(), 17);
        let out = d.path().join("dist/w.whl");
        assert!(s.cas.deliver_blob(&dg, &out).unwrap());
        assert!(
            !s.cas.deliver_blob(&dg, &out).unwrap(),
            "unchanged: left alone"
        );
        let (a, b) = (
            fs::metadata(&out).unwrap(),
            fs::metadata(s.cas.blob_path(&dg)).unwrap(),
        );
        assert_ne!(a.ino(), b.ino(), "a copy, not a link to the store");
        // The user writes to the delivered file: the store keeps its bytes.
        fs::write(&out, b"THE WHEEL'S BYTES").unwrap();
        assert_eq!(s.cas.read_blob(&dg).unwrap(), b"the wheel's bytes");
        // Same size, so only a hash tells: delivered again, the right bytes.
        assert!(s.cas.deliver_blob(&dg, &out).unwrap());
        assert_eq!(fs::read(&out).unwrap(), b"the wheel's bytes");

        let p = s.cas.blob_path(&dg);
        let mtime = fs::metadata(&p).unwrap().modified().unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&p, b"the wheel's bytez").unwrap();
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        fs::remove_file(&out).unwrap();
        let e = s.cas.deliver_blob(&dg, &out).unwrap_err();
        assert!(e.is_corrupt(), "{e}");
        assert!(!out.exists(), "nothing damaged is delivered");
        assert!(!p.exists(), "the damaged blob is discarded");
    }

    #[test]
    fn expected_digest_mismatch_stores_nothing() {
        let (_d, s) = store();
        let wrong = sha256_bytes(b"other");
        assert!(s.cas.put_reader(&b"data"[..], Some(&wrong)).is_err());
        assert!(!s.cas.has_blob(&sha256_bytes(b"data")));
        assert_eq!(fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
    }
}
