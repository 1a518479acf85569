//! Writing a tree under a directory without ever following a symlink: the
//! last line of defence behind [`Tree`](super::Tree)'s own checks.
//!
//! Every directory is opened relative to its parent's descriptor with
//! `O_NOFOLLOW | O_DIRECTORY` (`openat`, `mkdirat`), files are created with
//! `O_CREAT | O_EXCL | O_NOFOLLOW`, links with `symlinkat`. A symlink met on
//! the way (one the tree made, or one planted in the directory) is refused
//! with `ELOOP`/`ENOTDIR`, never followed; an existing file is never
//! overwritten. `std::fs` has no `*at` calls, hence rustix.

use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, Mode, OFlags};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// A directory to write a tree into.
pub struct ConfinedDir {
    root: OwnedFd,
    path: PathBuf,
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

impl ConfinedDir {
    /// Make `path` (it must not exist; its parent must) and open it.
    pub fn create(path: &Path) -> io::Result<ConfinedDir> {
        std::fs::create_dir(path)?;
        let root = rustix::fs::open(path, dir_flags(), Mode::empty())?;
        Ok(ConfinedDir {
            root,
            path: path.to_path_buf(),
        })
    }

    /// The directory holding `rel` (made on the way if `create`), and the
    /// last component of `rel`.
    fn parent<'r>(&self, rel: &'r str) -> io::Result<(OwnedFd, &'r str)> {
        let (dirs, name) = match rel.rsplit_once('/') {
            Some((d, n)) => (Some(d), n),
            None => (None, rel),
        };
        if name.is_empty() || name == "." || name == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{rel:?} is not a plain path"),
            ));
        }
        let mut fd = rustix::io::dup(&self.root)?;
        for c in dirs.into_iter().flat_map(|d| d.split('/')) {
            if c.is_empty() || c == "." || c == ".." {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{rel:?} is not a plain path"),
                ));
            }
            fd = match rustix::fs::openat(&fd, c, dir_flags(), Mode::empty()) {
                Ok(next) => next,
                Err(rustix::io::Errno::NOENT) => {
                    rustix::fs::mkdirat(&fd, c, Mode::from_raw_mode(0o755))?;
                    rustix::fs::openat(&fd, c, dir_flags(), Mode::empty())?
                }
                Err(e) => return Err(e.into()),
            };
        }
        Ok((fd, name))
    }

    /// A directory at `rel` (an existing one is fine, a link is refused).
    pub fn mkdir(&self, rel: &str) -> io::Result<()> {
        let (fd, name) = self.parent(rel)?;
        match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::EXIST) => {
                // Only if it is a directory, and not through a link.
                rustix::fs::openat(&fd, name, dir_flags(), Mode::empty()).map(|_| ())?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A new file at `rel` (never an existing one, never through a link).
    pub fn create_file(&self, rel: &str, executable: bool) -> io::Result<File> {
        let (fd, name) = self.parent(rel)?;
        let mode = if executable { 0o755 } else { 0o644 };
        let f = rustix::fs::openat(
            &fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        let f = File::from(f);
        // The umask may have taken bits away.
        rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))?;
        Ok(f)
    }

    /// A symlink at `rel` pointing at `target` (kept as it is).
    pub fn symlink(&self, rel: &str, target: &str) -> io::Result<()> {
        let (fd, name) = self.parent(rel)?;
        rustix::fs::symlinkat(target, &fd, name)?;
        Ok(())
    }

    /// Whether `rel` exists here, without following links.
    pub fn exists(&self, rel: &str) -> bool {
        self.parent(rel)
            .and_then(|(fd, name)| {
                rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(Into::into)
            })
            .is_ok()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_written_through_a_link() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let c = ConfinedDir::create(&d.path().join("t")).unwrap();
        c.mkdir("lib").unwrap();
        std::io::Write::write_all(&mut c.create_file("lib/a", false).unwrap(), b"a").unwrap();
        c.symlink("lib/b", "a").unwrap();
        // A link to a directory outside, made by the tree or planted.
        c.symlink("evil", outside.to_str().unwrap()).unwrap();
        std::os::unix::fs::symlink(&outside, d.path().join("t/planted")).unwrap();
        for rel in ["evil/owned", "planted/owned", "evil/x/owned"] {
            assert!(c.create_file(rel, false).is_err(), "{rel}");
            assert!(c.mkdir(rel).is_err(), "{rel}");
        }
        assert!(c.mkdir("evil").is_err(), "a link is not a directory");
        // Nothing is overwritten either, not even through the last link.
        assert!(c.create_file("lib/a", false).is_err());
        assert!(c.create_file("lib/b", false).is_err());
        assert!(c.create_file("../escape", false).is_err());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        assert_eq!(std::fs::read(d.path().join("t/lib/a")).unwrap(), b"a");
        assert!(c.exists("lib/b") && !c.exists("lib/c"));
    }
}
