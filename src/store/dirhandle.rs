//! A directory opened once (`O_PATH`) and stat'ed by name relative to it:
//! a no-op stats every blob of every hit and every delivered wheel, and
//! walking the store's or the out directory's whole path each time was a
//! tenth of its time. `std::fs` has no `fstatat`, hence rustix.

use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, Mode, OFlags, Stat};
use std::path::PathBuf;
use std::sync::OnceLock;

pub struct DirHandle {
    path: PathBuf,
    /// Opened at the first stat that finds the directory.
    fd: OnceLock<OwnedFd>,
}

impl DirHandle {
    pub fn new(path: PathBuf) -> DirHandle {
        DirHandle {
            path,
            fd: OnceLock::new(),
        }
    }

    /// `stat` of `rel` under the directory (`follow`: through a final
    /// symlink), or None if the directory cannot be opened (yet).
    pub fn stat(&self, rel: &str, follow: bool) -> Option<rustix::io::Result<Stat>> {
        let fd = match self.fd.get() {
            Some(fd) => fd,
            None => {
                let fd = rustix::fs::open(
                    &self.path,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ok()?;
                self.fd.get_or_init(|| fd)
            }
        };
        let flags = if follow {
            AtFlags::empty()
        } else {
            AtFlags::SYMLINK_NOFOLLOW
        };
        Some(rustix::fs::statat(fd, rel, flags))
    }
}

/// Whether a `stat` says a regular file.
pub fn is_file(st: &Stat) -> bool {
    (st.st_mode & libc::S_IFMT) == libc::S_IFREG
}
