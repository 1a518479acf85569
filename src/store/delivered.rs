//! What refine delivered into an out directory, and how each wheel there
//! looked on disk when its bytes were last checked.
//!
//! A delivered wheel is the user's file: before it is left as it is, its
//! bytes must be the output's. Hashing every wheel of a large set on every
//! no-op costs more than the rest of the run, so, as git's index does for a
//! work tree, each check leaves a stamp (device, inode, size, mtime and
//! ctime, with the digest it matched); a file whose stamp still matches is
//! the same file, untouched. Nothing a user does to a file keeps its ctime
//! (only the kernel sets it), and a rename onto it changes the inode.
//!
//! "Racy clean", as git calls it: a write in the same timestamp tick as the
//! check would keep the stamp. So a stamp is taken only of a file whose
//! ctime was already [`SETTLED`] old when it was checked; a file written by
//! this run is hashed once more by the next, then stamped.
//!
//! The stamps live in the store (`deliveries/<hash of the out dir>`), not in
//! the user's directory; they are a cache: a stamp file that cannot be read
//! is no stamps, and one that cannot be written costs the next run a hash.

use super::BlobCheck;
use super::error::write_atomic;
use crate::key::Digest;
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How old a file's ctime must be at a check for the check to be stamped.
pub const SETTLED: Duration = Duration::from_secs(2);

/// What identifies a file's state without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        }
    }

    /// The same, from a `stat` made through the out directory's handle.
    // `stat`'s field types differ by architecture (s390x among them).
    #[allow(clippy::unnecessary_cast)]
    fn of_stat(st: &rustix::fs::Stat) -> Stamp {
        Stamp {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: st.st_size as u64,
            mtime_ns: i128::from(st.st_mtime as i64) * 1_000_000_000
                + i128::from(st.st_mtime_nsec as i64),
            ctime_ns: i128::from(st.st_ctime as i64) * 1_000_000_000
                + i128::from(st.st_ctime_nsec as i64),
        }
    }
}

/// The stamps of one out directory.
pub struct Delivered {
    file: PathBuf,
    dir: PathBuf,
    /// Wheel file name → (digest hex, stamp): read at open, then updated.
    stamps: Mutex<HashMap<String, (String, Stamp)>>,
    dirty: Mutex<bool>,
    /// The out directory, opened once for [`Delivered::holds`]: a stat of
    /// one name instead of a walk of the whole path per wheel.
    handle: super::dirhandle::DirHandle,
    /// The wheels this run found holding their bytes (a hit's lookup
    /// checks; the delivery that follows need not stat them again).
    held: Mutex<rustc_hash::FxHashSet<String>>,
    /// The out directory's names, listed once at the first
    /// [`Delivered::has`]: one directory read instead of a stat per name.
    listing: std::sync::OnceLock<rustc_hash::FxHashSet<String>>,
}

impl Delivered {
    /// The stamps of `out_dir`, kept under `store_root`.
    pub fn open(store_root: &Path, out_dir: &Path) -> Delivered {
        let dir = std::path::absolute(out_dir).unwrap_or_else(|_| out_dir.to_path_buf());
        let name = crate::key::sha256_bytes(dir.as_os_str().as_encoded_bytes());
        let file = store_root.join("deliveries").join(&name.hex()[..32]);
        let stamps = fs::read_to_string(&file)
            .map(|t| parse(&t))
            .unwrap_or_default();
        Delivered {
            file,
            handle: super::dirhandle::DirHandle::new(dir.clone()),
            dir,
            stamps: Mutex::new(stamps),
            dirty: Mutex::new(false),
            held: Mutex::default(),
            listing: std::sync::OnceLock::new(),
        }
    }

    /// The out directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `name` in the out directory holds `digest`'s bytes, by its stamp
    /// (a file as it was when it was last found to hold them).
    pub fn holds(&self, name: &str, digest: &Digest) -> bool {
        if self.path_of(name).is_none() {
            return false;
        }
        let Some(Ok(st)) = self.handle.stat(name, false) else {
            return false;
        };
        let held =
            super::dirhandle::is_file(&st) && self.matches(name, digest, &Stamp::of_stat(&st));
        if held {
            self.held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.to_string());
        }
        held
    }

    /// [`Delivered::holds`], answered without a second stat for a wheel
    /// this run already found holding `digest`'s bytes (the lookup of its
    /// hit checked it moments before the delivery asks).
    pub fn still_holds(&self, name: &str, digest: &Digest) -> bool {
        let seen = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name);
        if seen {
            let stamps = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
            if stamps.get(name).is_some_and(|(hex, _)| hex == digest.hex()) {
                return true;
            }
        }
        self.holds(name, digest)
    }

    /// Whether the out directory had an entry `name` (a plain file name)
    /// when it was first asked: its names are read once, not stat'ed one
    /// by one (a delivery asks this of every wheel's provenance file).
    pub fn has(&self, name: &str) -> bool {
        self.path_of(name).is_some()
            && self
                .listing
                .get_or_init(|| {
                    fs::read_dir(&self.dir)
                        .map(|rd| {
                            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .contains(name)
    }

    fn matches(&self, name: &str, digest: &Digest, stamp: &Stamp) -> bool {
        let stamps = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
        stamps
            .get(name)
            .is_some_and(|(hex, st)| hex == digest.hex() && st == stamp)
    }

    /// `name` was just found (hashed, or written through a hashing copy)
    /// to hold `digest`'s bytes: stamp it, unless its ctime is too recent
    /// for a stamp to tell a later write apart.
    pub fn checked(&self, name: &str, digest: &Digest) {
        let Some(path) = self.path_of(name) else {
            return;
        };
        let mut stamps = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
        let settled = fs::symlink_metadata(&path)
            .ok()
            .filter(|m| m.is_file())
            .filter(|m| {
                let ctime = UNIX_EPOCH
                    + Duration::new(m.ctime().max(0) as u64, m.ctime_nsec().max(0) as u32);
                SystemTime::now()
                    .duration_since(ctime)
                    .is_ok_and(|age| age >= SETTLED)
            });
        let changed = match settled {
            Some(m) => {
                let new = (digest.hex().to_string(), Stamp::of(&m));
                stamps.insert(name.to_string(), new.clone()) != Some(new)
            }
            None => stamps.remove(name).is_some(),
        };
        if changed {
            *self.dirty.lock().unwrap_or_else(|e| e.into_inner()) = true;
        }
    }

    /// Write the stamps out (best effort: they are a cache), keeping only
    /// the files still there.
    pub fn save(&self) {
        if !std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner())) {
            return;
        }
        let stamps = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
        let mut lines: Vec<String> = stamps
            .iter()
            .filter(|(name, _)| self.dir.join(name).exists())
            .map(|(name, (hex, s))| {
                format!(
                    "{hex} {} {} {} {} {} {name}",
                    s.dev, s.ino, s.size, s.mtime_ns, s.ctime_ns
                )
            })
            .collect();
        lines.sort();
        let mut text = lines.join("\n");
        text.push('\n');
        if let Some(parent) = self.file.parent()
            && fs::create_dir_all(parent).is_ok()
        {
            let _ = write_atomic(parent, &self.file, text.as_bytes());
        }
    }

    /// A wheel's path in the out directory; None for a name that is not a
    /// plain file name (a tree's names are checked when it is read; this
    /// keeps a stamp from ever naming anything outside the directory).
    fn path_of(&self, name: &str) -> Option<PathBuf> {
        let plain = !name.is_empty()
            && !name.contains('/')
            && name != "."
            && name != ".."
            && !name.contains('\0');
        plain.then(|| self.dir.join(name))
    }
}

/// How a hit's blob is checked: a wheel to be delivered is hashed
/// ([`BlobCheck::Hash`]) unless the out directory already holds its bytes,
/// by its stamp; then nothing is copied from the blob, and the stat cache's
/// check is enough.
pub fn check_for(
    check: BlobCheck,
    delivered: Option<&Delivered>,
    name: &str,
    digest: &Digest,
) -> BlobCheck {
    match delivered {
        Some(dv) if check == BlobCheck::Hash && dv.holds(name, digest) => BlobCheck::Stat,
        _ => check,
    }
}

fn parse(text: &str) -> HashMap<String, (String, Stamp)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(7, ' ');
            let hex = it.next()?.to_string();
            let stamp = Stamp {
                dev: it.next()?.parse().ok()?,
                ino: it.next()?.parse().ok()?,
                size: it.next()?.parse().ok()?,
                mtime_ns: it.next()?.parse().ok()?,
                ctime_ns: it.next()?.parse().ok()?,
            };
            Some((it.next()?.to_string(), (hex, stamp)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(b: &[u8]) -> Digest {
        crate::key::sha256_bytes(b)
    }

    /// A file checked long after it was written is stamped; the stamp
    /// holds across opens; any write (same size, mtime put back) breaks it.
    #[test]
    fn a_stamp_vouches_only_for_the_file_as_it_was() {
        let store = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let w = out.path().join("w-1.0-py3-none-any.whl");
        fs::write(&w, b"the wheel").unwrap();
        let d = digest(b"the wheel");
        // Written just now: too recent to stamp.
        let dv = Delivered::open(store.path(), out.path());
        dv.checked("w-1.0-py3-none-any.whl", &d);
        assert!(!dv.holds("w-1.0-py3-none-any.whl", &d));
        std::thread::sleep(SETTLED + Duration::from_millis(100));
        dv.checked("w-1.0-py3-none-any.whl", &d);
        assert!(dv.holds("w-1.0-py3-none-any.whl", &d));
        assert!(!dv.holds("w-1.0-py3-none-any.whl", &digest(b"other")));
        dv.save();
        let again = Delivered::open(store.path(), out.path());
        assert!(
            again.holds("w-1.0-py3-none-any.whl", &d),
            "kept in the store"
        );
        assert!(
            !Delivered::open(store.path(), store.path()).holds("w-1.0-py3-none-any.whl", &d),
            "another out dir has stamps of its own"
        );
        // Same size, mtime restored: the ctime moved.
        let mtime = fs::metadata(&w).unwrap().modified().unwrap();
        fs::write(&w, b"the whelk").unwrap();
        fs::File::options()
            .write(true)
            .open(&w)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert!(!again.holds("w-1.0-py3-none-any.whl", &d));
        // Gone: nothing holds.
        fs::remove_file(&w).unwrap();
        assert!(!again.holds("w-1.0-py3-none-any.whl", &d));
        assert!(!again.holds("../escape.whl", &d));
    }

    /// The delivery's questions: a wheel this run's lookup found holding
    /// its digest is taken as holding it, any other is stat'ed as ever
    /// (another digest, or never checked: a changed file is not vouched
    /// for); provenance files are looked up in one listing.
    #[test]
    fn the_delivery_asks_again_only_what_this_run_has_not_checked() {
        let store = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let (a, b) = ("a-1.0-py3-none-any.whl", "b-1.0-py3-none-any.whl");
        fs::write(out.path().join(a), b"wheel a").unwrap();
        fs::write(out.path().join(b), b"wheel b").unwrap();
        fs::write(
            out.path().join("a-1.0-py3-none-any.whl.provenance.json"),
            b"{}",
        )
        .unwrap();
        let (da, db) = (digest(b"wheel a"), digest(b"wheel b"));
        std::thread::sleep(SETTLED + Duration::from_millis(100));
        let first = Delivered::open(store.path(), out.path());
        first.checked(a, &da);
        first.checked(b, &db);
        first.save();
        let dv = Delivered::open(store.path(), out.path());
        assert!(dv.holds(a, &da));
        // b is changed after the open and was never asked about: stat'ed.
        fs::write(out.path().join(b), b"wheel B").unwrap();
        assert!(!dv.still_holds(b, &db));
        assert!(dv.still_holds(a, &da));
        assert!(!dv.still_holds(a, &db), "another digest is checked");
        assert!(!dv.still_holds("../a-1.0-py3-none-any.whl", &da));
        assert!(dv.has("a-1.0-py3-none-any.whl.provenance.json"));
        assert!(!dv.has("b-1.0-py3-none-any.whl.provenance.json"));
        assert!(!dv.has("../a-1.0-py3-none-any.whl.provenance.json"));
        assert!(dv.has(b));
    }
}
