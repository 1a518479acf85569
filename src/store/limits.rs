//! Limits on what a build may hand back, and the check of an output
//! directory against them before anything of it is stored.
//!
//! Build code is untrusted: an output directory, and every size a wheel's
//! zip headers declare, are claims. The check walks the directory without
//! following links, counts what is really there, and refuses:
//! - more files (or bytes) than `[sandbox] max_output_files` /
//!   `max_output_size` allow;
//! - anything that is not a file, a directory or a symlink;
//! - a symlink whose target is absolute or climbs out of the output (a
//!   pack's `libz.so -> libz.so.1` is fine; `x -> /etc/passwd` or
//!   `x -> ../../secret` are not): checkouts never write through links,
//!   but a link that names a host path is a trap for whatever reads the
//!   checkout later.
//!
//! The zip side of the same limits (declared sizes, compression ratio,
//! entry counts) is in [`crate::wheel`], which reads with these numbers.

use std::path::{Component, Path};

/// What one build may produce. Not part of any key: a limit decides
/// whether an output is stored, never what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OutputLimits {
    /// Bytes of all files of an output together, and of all entries of
    /// one wheel once uncompressed.
    pub max_bytes: u64,
    /// Files (and directories and links) of an output; entries of a wheel.
    pub max_files: u64,
    /// How many times its own size a wheel may grow when uncompressed
    /// (a zip bomb by ratio); checked against the real file size.
    pub max_ratio: u64,
}

impl Default for OutputLimits {
    /// Sized for the largest outputs refine makes: a builder image is one
    /// tar of about 550 MB, numpy's wheel about 20 MB (70 MB unpacked),
    /// a CPython runtime about 5,000 files.
    fn default() -> Self {
        OutputLimits {
            max_bytes: 4 << 30,
            max_files: 200_000,
            max_ratio: 100,
        }
    }
}

/// Why an output was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LimitError {
    #[error("the output holds more than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the output holds more than {limit} files")]
    TooManyFiles { limit: u64 },
    #[error("{path} is a {what}; outputs hold files, directories and relative links only")]
    Special { path: String, what: &'static str },
    #[error("{path} links to {target:?}, outside the output")]
    EscapingLink { path: String, target: String },
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
}

impl LimitError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            LimitError::TooLarge { .. } => {
                "the recipe wrote more than an output may hold; if that is right, raise `max_output_size` in [sandbox] of WORKSPACE.toml"
            }
            LimitError::TooManyFiles { .. } => {
                "the recipe wrote more files than an output may hold; if that is right, raise `max_output_files` in [sandbox] of WORKSPACE.toml"
            }
            LimitError::Special { .. } | LimitError::EscapingLink { .. } => {
                "make the recipe write plain files, or links relative to a file of the output"
            }
            LimitError::Io { .. } => "check the permissions of the store's tmp directory",
        }
    }
}

/// Whether a link at `rel` (relative to the output's root) with `target`
/// stays inside the output, judged lexically (nothing is resolved on the
/// host: the link is never followed here).
pub fn link_stays_inside(rel: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = rel.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// Check an output directory against `limits` (see the module header).
pub fn check_output_dir(dir: &Path, limits: &OutputLimits) -> Result<(), LimitError> {
    use std::os::unix::fs::FileTypeExt;
    let mut files = 0u64;
    let mut bytes = 0u64;
    for entry in walkdir::WalkDir::new(dir).min_depth(1) {
        let entry = entry.map_err(|e| LimitError::Io {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        let shown = rel.display().to_string();
        files += 1;
        if files > limits.max_files {
            return Err(LimitError::TooManyFiles {
                limit: limits.max_files,
            });
        }
        let ft = entry.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(entry.path()).map_err(|e| LimitError::Io {
                path: shown.clone(),
                message: e.to_string(),
            })?;
            if !link_stays_inside(rel, &target) {
                return Err(LimitError::EscapingLink {
                    path: shown,
                    target: target.display().to_string(),
                });
            }
        } else if ft.is_file() {
            let meta = entry.metadata().map_err(|e| LimitError::Io {
                path: shown.clone(),
                message: e.to_string(),
            })?;
            bytes = bytes.saturating_add(meta.len());
            if bytes > limits.max_bytes {
                return Err(LimitError::TooLarge {
                    limit: limits.max_bytes,
                });
            }
        } else if !ft.is_dir() {
            let what = if ft.is_fifo() {
                "fifo"
            } else if ft.is_socket() {
                "socket"
            } else if ft.is_block_device() || ft.is_char_device() {
                "device"
            } else {
                "special file"
            };
            return Err(LimitError::Special { path: shown, what });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_inside_pass_links_out_do_not() {
        let ok = [
            ("lib/libz.so", "libz.so.1"),
            ("lib/x", "../include/zlib.h"),
            ("a/b/c", "../../top"),
            ("a", "./b"),
        ];
        for (rel, target) in ok {
            assert!(
                link_stays_inside(Path::new(rel), Path::new(target)),
                "{rel} -> {target}"
            );
        }
        let bad = [
            ("x", "/etc/passwd"),
            ("x", "../secret"),
            ("lib/x", "../../etc"),
            ("a/b", "c/../../../d"),
        ];
        for (rel, target) in bad {
            assert!(
                !link_stays_inside(Path::new(rel), Path::new(target)),
                "{rel} -> {target}"
            );
        }
    }

    #[test]
    fn outputs_over_the_limits_or_with_escaping_links_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path();
        fs::create_dir(out.join("lib")).unwrap();
        fs::write(out.join("lib/libz.so.1"), vec![0u8; 1000]).unwrap();
        symlink("libz.so.1", out.join("lib/libz.so")).unwrap();
        let limits = OutputLimits {
            max_bytes: 1000,
            max_files: 3,
            max_ratio: 100,
        };
        check_output_dir(out, &limits).unwrap();

        let small = OutputLimits {
            max_bytes: 999,
            ..limits
        };
        assert_eq!(
            check_output_dir(out, &small),
            Err(LimitError::TooLarge { limit: 999 })
        );
        fs::write(out.join("extra"), b"").unwrap();
        assert_eq!(
            check_output_dir(out, &limits),
            Err(LimitError::TooManyFiles { limit: 3 })
        );
        fs::remove_file(out.join("extra")).unwrap();

        symlink("/etc/passwd", out.join("lib/evil")).unwrap();
        let big = OutputLimits {
            max_files: 10,
            ..limits
        };
        let e = check_output_dir(out, &big).unwrap_err();
        assert!(matches!(e, LimitError::EscapingLink { .. }), "{e}");
        fs::remove_file(out.join("lib/evil")).unwrap();
        symlink("../../root", out.join("lib/up")).unwrap();
        assert!(matches!(
            check_output_dir(out, &big),
            Err(LimitError::EscapingLink { .. })
        ));
        fs::remove_file(out.join("lib/up")).unwrap();

        rustix::fs::mknodat(
            rustix::fs::CWD,
            out.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let e = check_output_dir(out, &big).unwrap_err();
        assert!(matches!(e, LimitError::Special { what: "fifo", .. }), "{e}");
    }
}
