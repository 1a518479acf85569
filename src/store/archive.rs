//! Deterministic archives of trees: tar (sorted, zeroed times and owners,
//! normalized modes) compressed with zstd at a fixed level, single-threaded.
//! The same tree gives the same bytes on every machine with this build of
//! refine; unpacking checks every file against the tree it claims to be.

use super::error::{IoCtx, StoreError};
use super::local::LocalStore;
use super::tree::{EntryKind, Tree};
use crate::key::Digest;
use std::io::{self, Read, Write};
use std::path::Path;

pub const ZSTD_LEVEL: i32 = 3;
pub const MEDIA_TYPE: &str = "application/vnd.refine.tree.v1.tar+zstd";

/// Write `tree` (whose blobs are in `store`) as tar+zstd to `out`.
pub fn write_tree_archive(
    store: &LocalStore,
    tree: &Tree,
    out: impl Write,
) -> Result<(), StoreError> {
    let enc = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL).ctx(store.root())?;
    let mut tar = tar::Builder::new(enc);
    tar.mode(tar::HeaderMode::Deterministic);
    for e in &tree.entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        match &e.kind {
            EntryKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                tar.append_data(&mut h, format!("{}/", e.path), io::empty())
                    .ctx(store.root())?;
            }
            EntryKind::File {
                executable,
                size,
                digest,
            } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(if *executable { 0o755 } else { 0o644 });
                h.set_size(*size);
                let p = store.cas.blob_path(digest);
                let f = std::fs::File::open(&p).ctx(&p)?;
                tar.append_data(&mut h, &e.path, f).ctx(&p)?;
            }
            EntryKind::Symlink { target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                tar.append_link(&mut h, &e.path, target).ctx(store.root())?;
            }
        }
    }
    let enc = tar.into_inner().ctx(store.root())?;
    enc.finish().ctx(store.root())?;
    Ok(())
}

/// Unpack a tar+zstd archive into the store's CAS, checking entry by entry,
/// as it streams, that it is exactly the tree `expected` (already checked
/// for confinement by `Tree::new`): the same paths in the same order, the
/// same kinds, link targets and sizes, each file's bytes its digest. An
/// archive that says anything else (an extra entry, a hard link, a device,
/// a size that is not the manifest's) is refused at that entry, having
/// stored nothing but blobs that match their names (harmless).
pub fn unpack_tree_archive(
    store: &LocalStore,
    input: impl Read,
    expected: &Tree,
) -> Result<(), StoreError> {
    let dec = zstd::stream::read::Decoder::new(input).ctx(store.root())?;
    let mut ar = tar::Archive::new(dec);
    let bad = |reason: String| StoreError::Corrupt {
        path: store.root().to_path_buf(),
        reason,
    };
    let mut want = expected.entries.iter();
    for entry in ar.entries().ctx(store.root())? {
        let mut entry = entry.ctx(store.root())?;
        let path = entry
            .path()
            .ctx(store.root())?
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let Some(w) = want.next() else {
            return Err(bad(format!(
                "the archive holds {path:?} beyond the {} entries of its tree",
                expected.entries.len()
            )));
        };
        if w.path != path {
            return Err(bad(format!(
                "the archive holds {path:?} where its tree has {:?}",
                w.path
            )));
        }
        let ty = entry.header().entry_type();
        match (&w.kind, ty) {
            (EntryKind::Dir, tar::EntryType::Directory) => {}
            (EntryKind::Symlink { target }, tar::EntryType::Symlink) => {
                let got = entry
                    .link_name()
                    .ctx(store.root())?
                    .map(|t| t.to_string_lossy().into_owned());
                if got.as_deref() != Some(target.as_str()) {
                    return Err(bad(format!(
                        "symlink {path:?} points at {got:?}, its tree says {target:?}"
                    )));
                }
            }
            (EntryKind::File { size, digest, .. }, tar::EntryType::Regular) => {
                let declared = entry.header().size().ctx(store.root())?;
                if declared != *size {
                    return Err(bad(format!(
                        "{path:?} is {declared} bytes in the archive, {size} in its tree"
                    )));
                }
                store
                    .cas
                    .put_reader((&mut entry).take(*size), Some(digest))
                    .map_err(|e| bad(format!("{path:?}: {e}")))?;
            }
            (_, other) => {
                return Err(bad(format!(
                    "{path:?} is a {other:?} entry in the archive, not what its tree says"
                )));
            }
        }
    }
    if let Some(w) = want.next() {
        return Err(bad(format!("the archive ends before {:?}", w.path)));
    }
    store.cas.put_bytes(expected.encode().as_bytes())?;
    Ok(())
}

/// Archive a tree to a file; returns (sha256 of the archive, size).
pub fn archive_to_file(
    store: &LocalStore,
    tree: &Tree,
    dest: &Path,
) -> Result<(Digest, u64), StoreError> {
    let f = std::fs::File::create(dest).ctx(dest)?;
    let mut w = crate::key::Sha256Writer::new(io::BufWriter::new(f));
    write_tree_archive(store, tree, &mut w)?;
    w.flush().ctx(dest)?;
    let (d, n, _) = w.finish();
    Ok((d, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TreeEntry;

    #[test]
    fn archives_are_deterministic_and_verified() {
        let d = tempfile::tempdir().unwrap();
        let s = LocalStore::open(&d.path().join("s")).unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("lib")).unwrap();
        std::fs::write(src.join("lib/a"), b"aaa").unwrap();
        std::os::unix::fs::symlink("a", src.join("lib/b")).unwrap();
        let tree = s.cas.put_tree(&src).unwrap();
        let mut one = Vec::new();
        write_tree_archive(&s, &tree, &mut one).unwrap();
        let mut two = Vec::new();
        write_tree_archive(&s, &tree, &mut two).unwrap();
        assert_eq!(one, two);

        let s2 = LocalStore::open(&d.path().join("s2")).unwrap();
        unpack_tree_archive(&s2, &one[..], &tree).unwrap();
        assert_eq!(s2.cas.tree(&tree.digest()).unwrap(), tree);
        // An archive that is not the tree it claims to be is refused.
        let other = Tree::new(vec![TreeEntry {
            path: "lib".into(),
            kind: EntryKind::Dir,
        }])
        .unwrap();
        assert!(unpack_tree_archive(&s2, &one[..], &other).is_err());
    }
}
