//! Where mmdebstrap makes an image's root: in memory when the machine has
//! room for it, else beside the output in the store.
//!
//! An image's root is some 15,000 files that apt and dpkg write, rename and
//! read back (dpkg's database, every package's file list), then read once
//! into the tarball that is the image. None of it outlives the build, so
//! the disk only slows it down: the hybrid `//images:bookworm` took 64.6 s
//! made on this machine's disk and 45.7 s made on /dev/shm, the same bytes
//! (docs/BENCHMARKS.md). The tarball itself is still written to the store's
//! staging directory, as before.
//!
//! A tmpfs holds memory, so a root left there by a refine that was killed
//! would hold it until the next boot: each root is named for the process
//! that made it (`refine-t<pid>-<start>.…`, as the store's staging entries
//! are), and each image build first releases the roots of processes that
//! are gone (unmounting what a killed mmdebstrap left mounted in them).
//!
//! `REFINE_IMAGE_SCRATCH` overrides the choice: `store` keeps the root
//! beside the output; a directory puts it there.

use crate::runid::RunId;
use std::path::{Path, PathBuf};

/// The tmpfs tried first.
const MEMORY: &str = "/dev/shm";
/// What a tmpfs must have free to hold an image's root (the largest
/// shipped image's root is about 1.5 GiB with its packages' files).
const MIN_FREE: u64 = 4 << 30;
/// What the machine must still have available besides (builds run beside
/// an image build; a tmpfs's pages are memory).
const MIN_AVAILABLE: u64 = 6 << 30;
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// An image build's scratch directory and the sentence that says why it is
/// there (for the image's log).
pub struct Scratch {
    pub dir: PathBuf,
    pub note: String,
}

/// The scratch directory for an image whose output goes to `beside`/…:
/// made (and the stale roots of gone processes released) here.
pub fn image_scratch(beside: &Path) -> std::io::Result<Scratch> {
    scratch_for(beside, std::env::var("REFINE_IMAGE_SCRATCH").ok())
}

/// Where an image's root goes, decided once for the build and for
/// `refine doctor`.
enum Place {
    /// Beside the output in the store.
    Store,
    /// A directory `REFINE_IMAGE_SCRATCH` names.
    Dir(PathBuf),
    /// The tmpfs, with this many bytes free.
    Memory(u64),
}

fn place(choice: Option<&str>) -> Place {
    match choice {
        Some("store") => Place::Store,
        Some(v) if !v.is_empty() => Place::Dir(PathBuf::from(v)),
        _ => memory_room(Path::new(MEMORY)).map_or(Place::Store, Place::Memory),
    }
}

/// [`image_scratch`] with `REFINE_IMAGE_SCRATCH`'s value.
fn scratch_for(beside: &Path, choice: Option<String>) -> std::io::Result<Scratch> {
    let in_store = || -> std::io::Result<Scratch> {
        let dir = beside.join("mmdebstrap-tmp");
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch {
            dir,
            note: String::new(),
        })
    };
    match place(choice.as_deref()) {
        Place::Store => in_store(),
        Place::Memory(free) => {
            let m = Path::new(MEMORY);
            sweep(m);
            match make_in(m) {
                Ok(dir) => Ok(Scratch {
                    note: format!(
                        "refine: the image's root is made in {} (a tmpfs, {} free; REFINE_IMAGE_SCRATCH=store keeps it on disk)\n",
                        dir.display(),
                        bytesize::ByteSize(free)
                    ),
                    dir,
                }),
                Err(_) => in_store(),
            }
        }
        Place::Dir(chosen) => {
            sweep(&chosen);
            let dir = make_in(&chosen)?;
            Ok(Scratch {
                note: format!(
                    "refine: the image's root is made in {} (REFINE_IMAGE_SCRATCH)\n",
                    dir.display()
                ),
                dir,
            })
        }
    }
}

/// Where `refine doctor` says images are made (never a failure: on disk
/// they take longer, nothing more).
pub fn check() -> super::host::Check {
    const NAME: &str = "image-scratch";
    use super::host::Check;
    let choice = std::env::var("REFINE_IMAGE_SCRATCH").ok();
    match place(choice.as_deref()) {
        Place::Store if choice.is_some_and(|c| !c.is_empty()) => Check::ok(
            NAME,
            "images are made on disk, beside the store (REFINE_IMAGE_SCRATCH=store)",
        ),
        Place::Store => Check::ok(
            NAME,
            format!(
                "images are made on disk, beside the store: {MEMORY} is not a tmpfs with {} free and {} of memory available besides (on disk they take about a third longer)",
                bytesize::ByteSize(MIN_FREE),
                bytesize::ByteSize(MIN_AVAILABLE)
            ),
        ),
        Place::Dir(d) => Check::ok(
            NAME,
            format!("images are made in {} (REFINE_IMAGE_SCRATCH)", d.display()),
        ),
        Place::Memory(free) => Check::ok(
            NAME,
            format!(
                "images are made in memory ({MEMORY}, a tmpfs, {} free)",
                bytesize::ByteSize(free)
            ),
        ),
    }
}

/// The free bytes of `dir` if it is a tmpfs with room for an image's root
/// and the machine has memory to spare besides.
fn memory_room(dir: &Path) -> Option<u64> {
    let fs = rustix::fs::statfs(dir).ok()?;
    if fs.f_type as i64 != TMPFS_MAGIC {
        return None;
    }
    let free = (fs.f_bavail as u64).saturating_mul(fs.f_bsize as u64);
    (free >= MIN_FREE && super::host::meminfo("MemAvailable")? >= MIN_AVAILABLE).then_some(free)
}

const PREFIX: &str = "refine-";

fn make_in(parent: &Path) -> std::io::Result<PathBuf> {
    let d = tempfile::Builder::new()
        .prefix(&format!(
            "{PREFIX}{}",
            crate::store::error::staging_prefix()
        ))
        .tempdir_in(parent)?;
    Ok(d.keep())
}

/// Release the roots in `parent` of refine processes that are gone.
fn sweep(parent: &Path) {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(owner) = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.strip_prefix('t'))
            .and_then(|r| r.split_once('.'))
            .and_then(|(tag, _)| RunId::parse(tag))
        else {
            continue;
        };
        if !owner.alive() && e.file_type().is_ok_and(|t| t.is_dir()) {
            crate::store::mounts::release(&e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roots_of_gone_processes_are_released_and_live_ones_kept() {
        let parent = tempfile::tempdir().unwrap();
        let mine = make_in(parent.path()).unwrap();
        std::fs::write(mine.join("f"), "x").unwrap();
        // A process that is gone (no such pid).
        let gone = parent.path().join(format!("{PREFIX}t999999999-1.abc"));
        std::fs::create_dir_all(gone.join("var/lib/dpkg")).unwrap();
        let other = parent.path().join("someone-else");
        std::fs::create_dir(&other).unwrap();
        sweep(parent.path());
        assert!(!gone.exists(), "a gone process's root is kept");
        assert!(mine.join("f").exists(), "a live process's root is released");
        assert!(other.exists(), "a directory refine did not make is touched");
    }

    #[test]
    fn store_keeps_the_root_beside_the_output() {
        let beside = tempfile::tempdir().unwrap();
        let s = scratch_for(beside.path(), Some("store".into())).unwrap();
        assert_eq!(s.dir, beside.path().join("mmdebstrap-tmp"));
        assert!(s.dir.is_dir());
        assert!(s.note.is_empty());
    }

    #[test]
    fn a_directory_named_holds_a_root_named_for_this_process() {
        let beside = tempfile::tempdir().unwrap();
        let there = tempfile::tempdir().unwrap();
        let s = scratch_for(
            beside.path(),
            Some(there.path().to_string_lossy().into_owned()),
        )
        .unwrap();
        assert!(s.dir.starts_with(there.path()) && s.dir.is_dir());
        let name = s.dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(&format!("{PREFIX}t{}.", RunId::current().tag())),
            "{name}"
        );
        assert!(s.note.contains("REFINE_IMAGE_SCRATCH"), "{}", s.note);
        // Not a gone process's: the next build's sweep leaves it.
        sweep(there.path());
        assert!(s.dir.is_dir());
    }
}
