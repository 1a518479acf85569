//! Finding a workspace, listing its rule files, reading its files.
//!
//! A workspace is the directory holding `WORKSPACE.toml`, found by walking
//! up from the current directory (or given with `--workspace`). Rule files
//! are the `*.toml` files under `rules/`, `packs/` and `runtimes/`, listed
//! in sorted order so evaluation never depends on directory order. Behind
//! the workspace's own files stands the built-in base ([`base`]), unless
//! the workspace opts out.

pub mod base;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

pub const RULE_DIRS: [&str; 3] = ["rules", "packs", "runtimes"];
/// What the built-in base holds besides `WORKSPACE.toml`.
pub const BASE_DIRS: [&str; 4] = ["rules", "packs", "runtimes", "recipes"];

/// The files a workspace's rules can name: its own, then the built-in
/// base's (when it uses the base). `builtin:<path>` names a base file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Files {
    pub root: PathBuf,
    pub builtin: bool,
}

impl Files {
    pub fn new(root: &Path, builtin: bool) -> Files {
        Files {
            root: root.to_path_buf(),
            builtin,
        }
    }

    /// A file's bytes: the workspace's, else the base's. A path that
    /// leads out of the workspace (through a symlink) reads as nothing:
    /// never the host's file, never the base's in its place
    /// ([`Files::problem`] says why).
    pub fn read(&self, rel: &str) -> Option<Cow<'static, [u8]>> {
        if let Some(b) = rel.strip_prefix(base::PREFIX) {
            return base::Base::get().file(b).map(|x| Cow::Owned(x.to_vec()));
        }
        match confined(&self.root, rel) {
            Ok(p) => std::fs::read(p).ok().map(Cow::Owned),
            Err(WorkspaceError::Escapes { .. }) => None,
            Err(_) if self.builtin => base::Base::get().file(rel).map(|x| Cow::Owned(x.to_vec())),
            Err(_) => None,
        }
    }

    /// Why [`Files::read`] finds nothing at `rel`.
    pub fn problem(&self, rel: &str) -> String {
        match confined(&self.root, rel) {
            Err(e @ WorkspaceError::Escapes { .. }) => e.to_string(),
            _ => format!("`{rel}` does not exist"),
        }
    }

    pub fn read_text(&self, rel: &str) -> Option<String> {
        self.read(rel)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// The sha256 of a file, as [`Files::read`] finds it.
    pub fn digest(&self, rel: &str) -> Option<crate::key::Digest> {
        self.read(rel).map(|b| crate::key::sha256_bytes(&b))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("no WORKSPACE.toml in {0} or any parent directory")]
    NotFound(PathBuf),
    #[error("--workspace {0}: no WORKSPACE.toml there")]
    NotAWorkspace(PathBuf),
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{rel}` leads out of the workspace (to {target})")]
    Escapes { rel: String, target: PathBuf },
}

impl WorkspaceError {
    pub fn hint(&self) -> &'static str {
        match self {
            WorkspaceError::NotFound(_) | WorkspaceError::NotAWorkspace(_) => {
                "run refine inside a workspace, or pass --workspace DIR"
            }
            WorkspaceError::Io { .. } => "check the file's permissions",
            WorkspaceError::Escapes { .. } => {
                "workspace files are read inside the workspace only: copy the file in instead of linking to it"
            }
        }
    }
}

/// A workspace that cannot be found or read is the user's to fix.
impl From<WorkspaceError> for crate::error::Error {
    fn from(e: WorkspaceError) -> Self {
        let hint = e.hint();
        crate::error::Error::user(e.to_string()).hint(hint)
    }
}

/// Walk up from `start` to the first directory with a `WORKSPACE.toml`.
pub fn find_root(start: &Path) -> Result<PathBuf, WorkspaceError> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        if d.join(crate::rules::config::CONFIG_FILE).is_file() {
            return Ok(d.to_path_buf());
        }
        dir = d.parent();
    }
    Err(WorkspaceError::NotFound(start.to_path_buf()))
}

/// `--workspace DIR` or a walk up from the current directory.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, WorkspaceError> {
    match explicit {
        Some(p) => {
            let p = std::path::absolute(p).map_err(|source| WorkspaceError::Io {
                path: p.to_path_buf(),
                source,
            })?;
            if p.join(crate::rules::config::CONFIG_FILE).is_file() {
                Ok(p)
            } else {
                Err(WorkspaceError::NotAWorkspace(p))
            }
        }
        None => {
            let cwd = std::env::current_dir().map_err(|source| WorkspaceError::Io {
                path: PathBuf::from("."),
                source,
            })?;
            find_root(&cwd)
        }
    }
}

/// Workspace-relative paths of every rule file, sorted.
pub fn rule_files(root: &Path) -> Result<Vec<String>, WorkspaceError> {
    let mut out = Vec::new();
    for dir in RULE_DIRS {
        let base = root.join(dir);
        if !base.is_dir() {
            continue;
        }
        for entry in walkdir::WalkDir::new(&base).sort_by_file_name() {
            let entry = entry.map_err(|e| WorkspaceError::Io {
                path: base.clone(),
                source: e.into(),
            })?;
            let p = entry.path();
            // A linked rule file is listed too, so reading it says where
            // it leads if that is outside ([`confined`]).
            let ft = entry.file_type();
            if (ft.is_file() || ft.is_symlink()) && p.extension().is_some_and(|e| e == "toml") {
                let rel = p.strip_prefix(root).unwrap_or(p);
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

pub fn read(root: &Path, rel: &str) -> Result<String, WorkspaceError> {
    let path = confined(root, rel)?;
    std::fs::read_to_string(&path).map_err(|source| WorkspaceError::Io { path, source })
}

/// The real path of a workspace file, if it lies inside the workspace once
/// every symlink is resolved. A workspace is untrusted (contributors, a
/// cloned repository): a link in it to `/etc/passwd` or `../../secret`
/// must never bring a host file into a build, a log or a pushed result.
/// Lexical `..` and absolute paths are refused earlier, by the rules.
pub fn confined(root: &Path, rel: &str) -> Result<PathBuf, WorkspaceError> {
    let io = |path: PathBuf| move |source| WorkspaceError::Io { path, source };
    let real_root = root.canonicalize().map_err(io(root.to_path_buf()))?;
    let path = root.join(rel);
    let real = path.canonicalize().map_err(io(path))?;
    if real.starts_with(&real_root) {
        Ok(real)
    } else {
        Err(WorkspaceError::Escapes {
            rel: rel.to_string(),
            target: real,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hostile workspace: rule files, recipes and includes that are links
    /// to files outside it are never read; links inside it are fine.
    #[test]
    fn links_out_of_the_workspace_read_as_nothing() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host secret\n").unwrap();
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("recipes/lib")).unwrap();
        std::fs::create_dir_all(root.join("rules")).unwrap();
        std::fs::write(root.join("recipes/real.sh"), "echo hi\n").unwrap();
        symlink("real.sh", root.join("recipes/inside.sh")).unwrap();
        symlink(outside.path().join("secret"), root.join("recipes/evil.sh")).unwrap();
        symlink("/etc/passwd", root.join("recipes/passwd.sh")).unwrap();
        symlink(
            "../../../../../../etc/passwd",
            root.join("recipes/lib/up.sh"),
        )
        .unwrap();
        symlink(outside.path().join("secret"), root.join("rules/evil.toml")).unwrap();
        symlink(outside.path(), root.join("recipes/outdir")).unwrap();
        let files = Files::new(root, true);
        assert_eq!(files.read_text("recipes/inside.sh").unwrap(), "echo hi\n");
        for rel in [
            "recipes/evil.sh",
            "recipes/passwd.sh",
            "recipes/lib/up.sh",
            "rules/evil.toml",
            "recipes/outdir/secret",
        ] {
            assert!(files.read(rel).is_none(), "{rel} was read");
            assert!(
                files.problem(rel).contains("leads out of the workspace"),
                "{rel}"
            );
            let e = read(root, rel).unwrap_err();
            assert!(matches!(e, WorkspaceError::Escapes { .. }), "{rel}: {e}");
        }
        // A linked rule file is listed, so that reading it fails loudly.
        assert_eq!(rule_files(root).unwrap(), ["rules/evil.toml"]);
    }

    #[test]
    fn finds_root_and_lists_sorted_rule_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("WORKSPACE.toml"), "").unwrap();
        for f in [
            "rules/b.toml",
            "rules/a.toml",
            "packs/z.toml",
            "rules/notes.md",
        ] {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        let sub = d.path().join("rules");
        assert_eq!(find_root(&sub).unwrap(), d.path());
        assert_eq!(
            rule_files(d.path()).unwrap(),
            ["packs/z.toml", "rules/a.toml", "rules/b.toml"]
        );
        assert!(find_root(Path::new("/proc/self")).is_err());
    }
}
