//! Mounts under a directory: what a killed mmdebstrap leaves in its root
//! (proc, sys, dev/pts, dev/shm), found in /proc/self/mountinfo and
//! released before anything is removed. Removing a directory with a mount
//! in it would descend into the mount (through a bind mount of /dev, into
//! the host's), so every removal of a build's staging goes through
//! [`release`].

use std::path::{Path, PathBuf};

/// Unmount whatever is mounted under `dir` (deepest first, lazily: a
/// killed mmdebstrap leaves proc, sys, dev/pts and dev/shm mounted in its
/// root), then remove it. Never descends into a mount: removing files
/// through a bind mount of /dev would remove the host's.
pub fn release(dir: &Path) {
    let Ok(real) = dir.canonicalize() else {
        return;
    };
    let mut points = mounts_under(&real);
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for p in &points {
        let _ = rustix::mount::unmount(p, rustix::mount::UnmountFlags::DETACH);
    }
    if mounts_under(&real).is_empty() {
        let _ = std::fs::remove_dir_all(&real);
    }
}

/// Mount points at or under `dir`, from /proc/self/mountinfo.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mountinfo(m)))
        .filter(|m| m.starts_with(dir))
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if b[i] == b'\\'
            && let Some(d) = octal
        {
            out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_read_and_nothing_else() {
        assert_eq!(unescape_mountinfo("/a\\040b/c"), "/a b/c");
        assert_eq!(unescape_mountinfo("/x\\134y"), "/x\\y");
        assert_eq!(unescape_mountinfo("/é\\9z\\"), "/é\\9z\\");
        // What this process sees mounted at / is found; nothing under a
        // fresh directory.
        assert!(mounts_under(Path::new("/")).contains(&PathBuf::from("/")));
        let d = tempfile::tempdir().unwrap();
        assert!(mounts_under(&d.path().canonicalize().unwrap()).is_empty());
        release(d.path());
        assert!(!d.path().exists(), "nothing mounted: removed");
    }
}
