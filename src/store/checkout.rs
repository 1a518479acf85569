//! Trees in the store: storing a directory as a tree, reading a tree back,
//! and checking it out (`materialize` keeps one read-only checkout per
//! tree, for mounts). A wheel that holds a program (uv, the builds'
//! frontend) is laid out the same way, once per wheel (`unpacked_wheel`).

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

    /// The files of the wheel blob `d`, laid out at `unpacked/<hex>`, made
    /// once, for a read-only mount. A build's frontend (uv) is such a
    /// wheel: the program itself is one of its files, and unpacking it in
    /// every container would cost an emulated build seconds. The wheel is
    /// verified first; its paths go through `enclosed_name` and
    /// [`ConfinedDir`], so nothing lands outside the directory; the exec
    /// bit is the zip's Unix mode, as an installer sets it. A wheel holds
    /// no links, and one with a link is refused. The directory is a
    /// function of the wheel's bytes alone: the wheel's pin keys what runs
    /// it, as a tree's digest keys what mounts its checkout.
    pub fn unpacked_wheel(&self, d: &Digest) -> Result<PathBuf, StoreError> {
        let dest = self.root.join("unpacked").join(d.hex());
        if dest.is_dir() {
            return Ok(dest);
        }
        self.verify_blob(d)?;
        let src = self.blob_path(d);
        let corrupt = |reason: String| StoreError::Corrupt {
            path: src.clone(),
            reason,
        };
        let f = fs::File::open(&src).ctx(&src)?;
        let mut zip = zip::ZipArchive::new(f).map_err(|e| corrupt(format!("not a wheel: {e}")))?;
        let tmp = self.tmp_dir()?;
        let stage = tmp.path().join("w");
        let dir = ConfinedDir::create(&stage).ctx(&stage)?;
        for i in 0..zip.len() {
            let mut entry = zip
                .by_index(i)
                .map_err(|e| corrupt(format!("entry {i}: {e}")))?;
            let rel = entry
                .enclosed_name()
                .and_then(|p| p.to_str().map(|s| s.trim_end_matches('/').to_string()))
                .filter(|s| !s.is_empty())
                .ok_or_else(|| corrupt(format!("entry {:?} is not a plain path", entry.name())))?;
            let p = stage.join(&rel);
            if entry.is_dir() {
                dir.mkdir(&rel).ctx(&p)?;
            } else if entry.is_symlink() {
                return Err(corrupt(format!("{rel} is a link; wheels hold files")));
            } else {
                let executable = entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
                let out = dir.create_file(&rel, executable).ctx(&p)?;
                let mut w = std::io::BufWriter::new(out);
                std::io::copy(&mut entry, &mut w).map_err(|e| corrupt(format!("{rel}: {e}")))?;
                w.into_inner().map_err(|e| e.into_error()).ctx(&p)?;
            }
        }
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).ctx(parent)?;
        }
        match fs::rename(&stage, &dest) {
            Ok(()) => {}
            // Another process unpacked it meanwhile: theirs is as good.
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

    /// A wheel written with `files` (name, Unix mode, bytes), as a blob.
    fn wheel_blob(s: &LocalStore, files: &[(&str, u32, &[u8])]) -> Digest {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, mode, bytes) in files {
            let o = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
            z.start_file(*name, o).unwrap();
            z.write_all(bytes).unwrap();
        }
        let bytes = z.finish().unwrap().into_inner();
        s.put_bytes(&bytes).unwrap()
    }

    #[test]
    fn wheels_unpack_once_with_their_exec_bits() {
        let (_d, s) = store();
        let w = wheel_blob(
            &s,
            &[
                ("uv-1.0.data/scripts/uv", 0o755, b"\x7fELF"),
                ("uv/__init__.py", 0o644, b"pass\n"),
            ],
        );
        let dir = s.unpacked_wheel(&w).unwrap();
        assert_eq!(dir, s.root().join("unpacked").join(w.hex()));
        let uv = dir.join("uv-1.0.data/scripts/uv");
        assert_eq!(fs::read(&uv).unwrap(), b"\x7fELF");
        assert_eq!(
            fs::metadata(&uv).unwrap().permissions().mode() & 0o777,
            0o755
        );
        let py = dir.join("uv/__init__.py");
        assert_eq!(
            fs::metadata(&py).unwrap().permissions().mode() & 0o777,
            0o644
        );
        // Made once: a second call finds it.
        fs::write(dir.join("marker"), b"").unwrap();
        assert!(s.unpacked_wheel(&w).unwrap().join("marker").exists());
    }

    #[test]
    fn wheels_that_climb_out_or_are_not_wheels_are_refused() {
        let (_d, s) = store();
        let w = wheel_blob(&s, &[("../escape", 0o644, b"x")]);
        let e = s.unpacked_wheel(&w).unwrap_err();
        assert!(e.to_string().contains("not a plain path"), "{e}");
        assert!(!s.root().join("unpacked").join(w.hex()).exists());
        assert!(!s.root().join("escape").exists());
        let not_zip = s.put_bytes(b"not a zip").unwrap();
        let e = s.unpacked_wheel(&not_zip).unwrap_err();
        assert!(e.to_string().contains("not a wheel"), "{e}");
    }
}
