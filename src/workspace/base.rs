//! The built-in base: the rule set refine ships (builder images, runtimes,
//! packs, recipes and their includes, the catalog, tool pins, the example
//! wheels, and the `[defaults]` of the repository's `WORKSPACE.toml`),
//! embedded at build time from the repository itself (`build.rs`).
//!
//! Every workspace sees it under its usual labels unless its
//! `WORKSPACE.toml` says `base = "none"`: a target the workspace declares
//! under the same label replaces the built-in one, and a workspace file at
//! the same path as a built-in recipe replaces it. Built-in files are named
//! `builtin:<path>` in messages. They enter keys by content, exactly like
//! workspace files, so a refine upgrade that changes a recipe rebuilds what
//! that recipe builds and nothing else.
//!
//! `REFINE_BUILTIN_BASE=DIR` reads the base from a directory instead (to
//! try a change of the base before it ships; refine's tests use it to play
//! an upgrade).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

include!(concat!(env!("OUT_DIR"), "/base.rs"));

/// How messages name a built-in file: `builtin:packs/openssl.toml`.
pub const PREFIX: &str = "builtin:";

pub struct Base {
    files: BTreeMap<String, Cow<'static, [u8]>>,
}

impl Base {
    /// The base this process uses.
    pub fn get() -> &'static Base {
        static BASE: OnceLock<Base> = OnceLock::new();
        BASE.get_or_init(|| match std::env::var_os("REFINE_BUILTIN_BASE") {
            Some(dir) if !dir.is_empty() => Base::from_dir(Path::new(&dir)),
            _ => Base::embedded(),
        })
    }

    fn embedded() -> Base {
        Base {
            files: FILES
                .iter()
                .map(|(p, b)| (p.to_string(), Cow::Borrowed(*b)))
                .collect(),
        }
    }

    fn from_dir(dir: &Path) -> Base {
        let mut files = BTreeMap::new();
        for e in walkdir::WalkDir::new(dir)
            .sort_by_file_name()
            .into_iter()
            .flatten()
        {
            if !e.file_type().is_file() {
                continue;
            }
            let Ok(rel) = e.path().strip_prefix(dir) else {
                continue;
            };
            let rel = rel.to_string_lossy().into_owned();
            let top = rel.split('/').next().unwrap_or("");
            if (rel == "WORKSPACE.toml" || super::BASE_DIRS.contains(&top))
                && let Ok(bytes) = std::fs::read(e.path())
            {
                files.insert(rel, Cow::Owned(bytes));
            }
        }
        Base { files }
    }

    /// A file of the base, by workspace-relative path.
    pub fn file(&self, rel: &str) -> Option<&[u8]> {
        self.files.get(rel).map(|b| &**b)
    }

    /// The base's rule files (`*.toml` under rules/, packs/, runtimes/),
    /// as `(builtin:path, text)`, sorted.
    pub fn rule_files(&self) -> Vec<(String, String)> {
        self.files
            .iter()
            .filter(|(p, _)| {
                p.ends_with(".toml")
                    && super::RULE_DIRS
                        .iter()
                        .any(|d| p.starts_with(&format!("{d}/")))
            })
            .map(|(p, b)| {
                (
                    format!("{PREFIX}{p}"),
                    String::from_utf8_lossy(b).into_owned(),
                )
            })
            .collect()
    }

    /// The base's `WORKSPACE.toml` (its `[defaults]` fill in the ones a
    /// workspace leaves out).
    pub fn config_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.file("WORKSPACE.toml").unwrap_or_default())
    }

    /// Every file, by workspace-relative path.
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().map(|(p, b)| (p.as_str(), &**b))
    }
}
