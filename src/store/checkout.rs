//! Trees in the store: storing a directory as a tree, reading a tree back,
//! and checking it out (`materialize` keeps one read-only checkout per
//! tree, for mounts).

use super::confined::ConfinedDir;
use super::local::{IoCtx, LocalStore, StoreError};
use super::tree::{EntryKind, Tree, TreeEntry};
use crate::key::Digest;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

impl LocalStore {
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

    /// Write a tree's files under `dest` (which must not exist yet; its
    /// parent must), verifying every blob. Nothing is ever written through
    /// a symlink (see [`ConfinedDir`]).
    pub fn checkout(&self, tree: &Tree, dest: &Path) -> Result<(), StoreError> {
        let dir = ConfinedDir::create(dest).ctx(dest)?;
        for e in &tree.entries {
            let p = dest.join(&e.path);
            match &e.kind {
                EntryKind::Dir => dir.mkdir(&e.path).ctx(&p)?,
                EntryKind::File {
                    executable, digest, ..
                } => {
                    let f = dir.create_file(&e.path, *executable).ctx(&p)?;
                    self.copy_blob_into(digest, f, &p)?;
                }
                EntryKind::Symlink { target } => dir.symlink(&e.path, target).ctx(&p)?,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::temp_store as store;

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
}
