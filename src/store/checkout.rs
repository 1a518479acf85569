//! Trees in the store: storing a directory as a tree, reading a tree back,
//! and checking it out (`materialize` keeps one read-only checkout per
//! tree, for mounts). A wheel that holds a program (uv, the builds'
//! frontend) is laid out the same way, once per wheel (`unpacked_wheel`).

use super::cas::Cas;
use super::confined::ConfinedDir;
use super::error::{IoCtx, StoreError};
use super::tree::{EntryKind, Tree, TreeEntry};
use crate::key::Digest;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The checkouts the store keeps for mounts: `trees/<hex>` (a tree's
/// files, read-only) and `unpacked/<hex>` (a wheel's files). Each is a
/// function of the digest it is named by, made once from verified blobs,
/// checked by stat at every use and by hash in `refine store verify`.
pub struct Checkouts {
    root: PathBuf,
    cas: Arc<Cas>,
}

impl Checkouts {
    pub fn new(store_root: &Path, cas: Arc<Cas>) -> Checkouts {
        Checkouts {
            root: store_root.to_path_buf(),
            cas,
        }
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
                    self.cas.copy_blob_into(digest, f, &p)?;
                }
                EntryKind::Symlink { target } => dir.symlink(&e.path, target).ctx(&p)?,
            }
        }
        Ok(())
    }

    /// A read-only checkout of a tree at `trees/<hex>`, made once. A
    /// checkout found damaged (a file missing, added, truncated or grown,
    /// an exec bit or a link changed: what a stat shows) is removed and
    /// made again from the verified blobs; `refine store verify` hashes
    /// every file.
    pub fn materialize(&self, d: &Digest) -> Result<PathBuf, StoreError> {
        let dest = self.root.join("trees").join(d.hex());
        let tree = self.cas.tree(d)?;
        if dest.is_dir() {
            if check_checkout(&dest, &tree, false).is_ok() {
                return Ok(dest);
            }
            remove_damaged(&dest).ctx(&dest)?;
        }
        let tmp = super::error::staging_dir(&self.root)?;
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
    ///
    /// Beside the directory, `unpacked/<hex>.tree` lists what was laid out
    /// (a tree's encoding, digests of the files as written): a directory
    /// found damaged against it (by stat at every use, by hash in `refine
    /// store verify`) is laid out again.
    pub fn unpacked_wheel(&self, d: &Digest) -> Result<PathBuf, StoreError> {
        let dest = self.root.join("unpacked").join(d.hex());
        let listing = unpacked_listing(&dest);
        if dest.is_dir() {
            let intact = fs::read_to_string(&listing)
                .ok()
                .and_then(|t| Tree::decode(&t).ok())
                .is_some_and(|t| check_checkout(&dest, &t, false).is_ok());
            if intact {
                return Ok(dest);
            }
            remove_damaged(&dest).ctx(&dest)?;
        }
        self.cas.verify_blob(d)?;
        let src = self.cas.blob_path(d);
        let corrupt = |reason: String| StoreError::Corrupt {
            path: src.clone(),
            reason,
        };
        let f = fs::File::open(&src).ctx(&src)?;
        let mut zip = zip::ZipArchive::new(f).map_err(|e| corrupt(format!("not a wheel: {e}")))?;
        let tmp = super::error::staging_dir(&self.root)?;
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
        let described = describe(&stage).map_err(|e| corrupt(e.to_string()))?;
        super::error::write_atomic(&self.root, &listing, described.encode().as_bytes())?;
        match fs::rename(&stage, &dest) {
            Ok(()) => {}
            // Another process unpacked it meanwhile: theirs is as good.
            Err(_) if dest.is_dir() => {}
            Err(e) => return Err(e).ctx(&dest),
        }
        Ok(dest)
    }

    /// The tree checkouts (`trees/<hex>`).
    pub fn trees(&self) -> Vec<PathBuf> {
        self.dirs_in("trees")
    }

    /// Wheels laid out for mounts (`unpacked/<wheel hex>`; each with its
    /// listing `unpacked/<wheel hex>.tree` beside it).
    pub fn unpacked_wheels(&self) -> Vec<PathBuf> {
        self.dirs_in("unpacked")
            .into_iter()
            .filter(|p| p.extension().is_none())
            .collect()
    }

    fn dirs_in(&self, name: &str) -> Vec<PathBuf> {
        fs::read_dir(self.root.join(name))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    }

    /// Check every checkout the store keeps for mounts (`trees/`,
    /// `unpacked/`) against what it must hold, hashing every file; remove
    /// what is damaged (the next use lays it out again from verified
    /// blobs). Returns how many were checked and the damaged ones.
    pub fn verify(&self) -> (usize, Vec<(PathBuf, String)>) {
        let mut checked = 0;
        let mut bad = Vec::new();
        let mut judge = |dir: PathBuf, tree: Result<Tree, String>, extra: Option<PathBuf>| {
            checked += 1;
            let verdict = tree.and_then(|t| check_checkout(&dir, &t, true));
            if let Err(why) = verdict {
                let _ = remove_damaged(&dir);
                if let Some(x) = extra {
                    let _ = fs::remove_file(x);
                }
                bad.push((dir, format!("{why}; removed")));
            }
        };
        for dir in self.trees() {
            let tree = dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|h| Digest::from_hex(h).ok())
                .ok_or_else(|| "not named by a tree digest".to_string())
                .and_then(|d| self.cas.tree(&d).map_err(|e| e.to_string()));
            judge(dir, tree, None);
        }
        for dir in self.unpacked_wheels() {
            let listing = unpacked_listing(&dir);
            let tree = fs::read_to_string(&listing)
                .map_err(|e| format!("no listing of what it holds ({e})"))
                .and_then(|t| Tree::decode(&t).map_err(|e| e.to_string()));
            judge(dir, tree, Some(listing));
        }
        (checked, bad)
    }
}

/// `unpacked/<hex>.tree`, the listing of `unpacked/<hex>`.
fn unpacked_listing(dir: &Path) -> PathBuf {
    let mut name = dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tree");
    dir.with_file_name(name)
}

/// Remove a checkout (made read-only for mounts) whatever its modes.
fn remove_damaged(dir: &Path) -> std::io::Result<()> {
    for e in walkdir::WalkDir::new(dir).into_iter().flatten() {
        if e.file_type().is_dir() {
            let _ = fs::set_permissions(e.path(), fs::Permissions::from_mode(0o755));
        }
    }
    fs::remove_dir_all(dir)
}

/// A tree describing a directory as it is (files hashed, nothing stored).
fn describe(dir: &Path) -> Result<Tree, StoreError> {
    let mut entries = Vec::new();
    for e in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let e = e.map_err(|err| StoreError::Io {
            path: dir.to_path_buf(),
            source: err.into(),
        })?;
        let rel = e.path().strip_prefix(dir).unwrap_or(e.path());
        let rel = rel.to_string_lossy().into_owned();
        let kind = if e.file_type().is_symlink() {
            let target = fs::read_link(e.path()).ctx(e.path())?;
            EntryKind::Symlink {
                target: target.to_string_lossy().into_owned(),
            }
        } else if e.file_type().is_dir() {
            EntryKind::Dir
        } else {
            let meta = fs::metadata(e.path()).ctx(e.path())?;
            let (digest, size) = crate::key::sha256_file(e.path()).ctx(e.path())?;
            EntryKind::File {
                executable: meta.permissions().mode() & 0o111 != 0,
                size,
                digest,
            }
        };
        entries.push(TreeEntry { path: rel, kind });
    }
    Tree::new(entries).map_err(|e| StoreError::Corrupt {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Whether the checkout at `dir` holds exactly `tree`: the same entries
/// of the same kinds, files of the same size and exec bit (and, `deep`,
/// the same sha256), links with the same target. Never follows a link.
pub fn check_checkout(dir: &Path, tree: &Tree, deep: bool) -> Result<(), String> {
    use std::collections::BTreeMap;
    let mut want: BTreeMap<&str, &EntryKind> = tree
        .entries
        .iter()
        .map(|e| (e.path.as_str(), &e.kind))
        .collect();
    for e in walkdir::WalkDir::new(dir).min_depth(1) {
        let e = e.map_err(|err| format!("cannot read it: {err}"))?;
        let rel = e.path().strip_prefix(dir).unwrap_or(e.path());
        let rel = rel.to_string_lossy();
        let Some(kind) = want.remove(rel.as_ref()) else {
            return Err(format!("{rel} should not be there"));
        };
        let ft = e.file_type();
        match kind {
            EntryKind::Dir if ft.is_dir() => {}
            EntryKind::Symlink { target } if ft.is_symlink() => {
                let got = fs::read_link(e.path()).map_err(|err| format!("{rel}: {err}"))?;
                if got.to_string_lossy() != target.as_str() {
                    return Err(format!("{rel} links elsewhere"));
                }
            }
            EntryKind::File {
                executable,
                size,
                digest,
            } if ft.is_file() => {
                let meta = e.metadata().map_err(|err| format!("{rel}: {err}"))?;
                if meta.len() != *size {
                    return Err(format!("{rel} is {} bytes, not {size}", meta.len()));
                }
                if (meta.permissions().mode() & 0o111 != 0) != *executable {
                    return Err(format!("{rel} has another exec bit"));
                }
                if deep {
                    let (got, _) =
                        crate::key::sha256_file(e.path()).map_err(|err| format!("{rel}: {err}"))?;
                    if &got != digest {
                        return Err(format!("{rel} hashes to {got}, not {digest}"));
                    }
                }
            }
            _ => return Err(format!("{rel} is another kind of entry")),
        }
    }
    match want.keys().next() {
        Some(missing) => Err(format!("{missing} is missing")),
        None => Ok(()),
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
        let t = s.cas.put_tree(&src).unwrap();
        let out = s.checkouts.materialize(&t.digest()).unwrap();
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
        let again = s.cas.put_tree(&out).unwrap();
        assert_eq!(again.digest(), t.digest());
    }

    /// A wheel written with `files` (name, Unix mode, bytes), as a blob.
    fn wheel_blob(s: &crate::store::LocalStore, files: &[(&str, u32, &[u8])]) -> Digest {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, mode, bytes) in files {
            let o = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
            z.start_file(*name, o).unwrap();
            z.write_all(bytes).unwrap();
        }
        let bytes = z.finish().unwrap().into_inner();
        s.cas.put_bytes(&bytes).unwrap()
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
        let dir = s.checkouts.unpacked_wheel(&w).unwrap();
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
        // Made once: a second call finds it (the same file, not a new one).
        use std::os::unix::fs::MetadataExt;
        let ino = fs::metadata(&uv).unwrap().ino();
        assert_eq!(s.checkouts.unpacked_wheel(&w).unwrap(), dir);
        assert_eq!(fs::metadata(&uv).unwrap().ino(), ino);
    }

    /// Damage outside the CAS: a truncated file of the unpacked frontend
    /// (every build segfaulted, and `store verify` said 0 damaged), a
    /// changed byte of a materialized tree.
    #[test]
    fn damaged_checkouts_are_found_and_laid_out_again() {
        let (d, s) = store();
        let w = wheel_blob(&s, &[("uv-1.0.data/scripts/uv", 0o755, b"\x7fELF program")]);
        let dir = s.checkouts.unpacked_wheel(&w).unwrap();
        let uv = dir.join("uv-1.0.data/scripts/uv");
        // Truncated: a stat at the next use sees it, and it is laid out again.
        fs::File::options()
            .write(true)
            .open(&uv)
            .unwrap()
            .set_len(4)
            .unwrap();
        assert_eq!(s.checkouts.unpacked_wheel(&w).unwrap(), dir);
        assert_eq!(fs::read(&uv).unwrap(), b"\x7fELF program");

        let src = d.path().join("src");
        fs::create_dir_all(src.join("lib")).unwrap();
        fs::write(src.join("lib/libz.so.1"), b"elf bytes").unwrap();
        let t = s.cas.put_tree(&src).unwrap();
        let out = s.checkouts.materialize(&t.digest()).unwrap();
        assert_eq!(s.checkouts.verify(), (2, vec![]));

        // A byte changed, same size: only a hash sees it.
        fs::write(dir.join("uv-1.0.data/scripts/uv"), b"\x7fELF PROGRAM").unwrap();
        fs::write(out.join("lib/libz.so.1"), b"elf BYTES").unwrap();
        let (checked, bad) = s.checkouts.verify();
        assert_eq!(checked, 2);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(
            bad.iter().all(|(_, why)| why.contains("hashes to")),
            "{bad:?}"
        );
        assert!(
            !dir.exists() && !out.exists(),
            "damaged checkouts are removed"
        );
        // And the next use lays them out again, whole.
        assert_eq!(
            fs::read(
                s.checkouts
                    .unpacked_wheel(&w)
                    .unwrap()
                    .join("uv-1.0.data/scripts/uv")
            )
            .unwrap(),
            b"\x7fELF program"
        );
        assert_eq!(
            fs::read(
                s.checkouts
                    .materialize(&t.digest())
                    .unwrap()
                    .join("lib/libz.so.1")
            )
            .unwrap(),
            b"elf bytes"
        );

        // Something added to a checkout is damage too.
        fs::write(
            s.checkouts.materialize(&t.digest()).unwrap().join("extra"),
            b"",
        )
        .unwrap();
        assert!(
            s.checkouts
                .materialize(&t.digest())
                .unwrap()
                .join("lib/libz.so.1")
                .exists()
        );
        assert!(!out.join("extra").exists());
    }

    #[test]
    fn wheels_that_climb_out_or_are_not_wheels_are_refused() {
        let (_d, s) = store();
        let w = wheel_blob(&s, &[("../escape", 0o644, b"x")]);
        let e = s.checkouts.unpacked_wheel(&w).unwrap_err();
        assert!(e.to_string().contains("not a plain path"), "{e}");
        assert!(!s.root().join("unpacked").join(w.hex()).exists());
        assert!(!s.root().join("escape").exists());
        let not_zip = s.cas.put_bytes(b"not a zip").unwrap();
        let e = s.checkouts.unpacked_wheel(&not_zip).unwrap_err();
        assert!(e.to_string().contains("not a wheel"), "{e}");
    }
}
