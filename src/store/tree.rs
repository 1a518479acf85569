//! Trees: the output of a node as a sorted manifest of files by digest.
//!
//! A tree is written as text, one entry per line, sorted by path, fields
//! separated by tabs (shown as `→` here):
//!
//! ```text
//! refine-tree 1
//! d→lib
//! f→644→1234→<sha256 hex>→lib/libz.a
//! x→755→99→<sha256 hex>→bin/tool
//! l→lib/libz.so→libz.so.1
//! ```
//!
//! The tree's digest is the sha256 of that text, and the text itself is a
//! CAS blob. Modes are normalized to 644/755, ownership and times are not
//! recorded: what a build produced is its bytes, names and exec bits.
//!
//! A tree is confined to its own root, whoever made it (a local build, a
//! registry, someone between refine and the registry): no path is absolute
//! or has `..`, no path is listed twice, none lies under a symlink or a
//! file, and no symlink points outside the tree (absolute, or `..` climbing
//! above the root). Trees that break this are refused when they are made
//! or read, so a checkout never writes outside its directory.

use crate::key::{Digest, sha256_bytes};
use std::fmt::Write as _;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    Dir,
    File {
        executable: bool,
        size: u64,
        digest: Digest,
    },
    Symlink {
        target: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TreeEntry {
    pub path: String,
    pub kind: EntryKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    pub entries: Vec<TreeEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("path {0:?} cannot be stored (tabs, newlines and `..` are not allowed)")]
    BadPath(String),
    #[error("{0:?} is listed more than once")]
    Duplicate(String),
    #[error("{path:?} lies under {under:?}, which is a {what}, not a directory")]
    Under {
        path: String,
        under: String,
        what: &'static str,
    },
    #[error("symlink {path:?} points outside the tree ({target:?})")]
    Escape { path: String, target: String },
    #[error("tree manifest line {line}: {message}")]
    Parse { line: usize, message: String },
}

const HEADER: &str = "refine-tree 1";

fn check_path(p: &str) -> Result<(), TreeError> {
    if p.is_empty()
        || p.contains(['\t', '\n', '\r'])
        || p.starts_with('/')
        || p.split('/').any(|c| c == ".." || c == "." || c.is_empty())
    {
        return Err(TreeError::BadPath(p.to_string()));
    }
    Ok(())
}

/// Whether a symlink at `path` with `target` resolves outside the tree:
/// an absolute target, or `..` climbing above the root (lexically, the
/// way the link would resolve if every component were a directory).
fn escapes(path: &str, target: &str) -> bool {
    if target.is_empty() || target.starts_with('/') {
        return true;
    }
    let mut depth = path.split('/').count() as i64 - 1;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

impl Tree {
    pub fn new(mut entries: Vec<TreeEntry>) -> Result<Tree, TreeError> {
        for e in &entries {
            check_path(&e.path)?;
            if let EntryKind::Symlink { target } = &e.kind {
                if target.contains(['\t', '\n', '\r']) {
                    return Err(TreeError::BadPath(target.clone()));
                }
                if escapes(&e.path, target) {
                    return Err(TreeError::Escape {
                        path: e.path.clone(),
                        target: target.clone(),
                    });
                }
            }
        }
        entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        if let Some(w) = entries.windows(2).find(|w| w[0].path == w[1].path) {
            return Err(TreeError::Duplicate(w[0].path.clone()));
        }
        // Nothing under a symlink or a file: every proper prefix of a path
        // that is listed must be a directory.
        let kinds: std::collections::HashMap<&str, &EntryKind> =
            entries.iter().map(|e| (e.path.as_str(), &e.kind)).collect();
        for e in &entries {
            let mut prefix_end = 0;
            while let Some(i) = e.path[prefix_end..].find('/') {
                let prefix = &e.path[..prefix_end + i];
                let what = match kinds.get(prefix) {
                    Some(EntryKind::Symlink { .. }) => Some("symlink"),
                    Some(EntryKind::File { .. }) => Some("file"),
                    _ => None,
                };
                if let Some(what) = what {
                    return Err(TreeError::Under {
                        path: e.path.clone(),
                        under: prefix.to_string(),
                        what,
                    });
                }
                prefix_end += i + 1;
            }
        }
        Ok(Tree { entries })
    }

    pub fn encode(&self) -> String {
        let mut s = String::from(HEADER);
        s.push('\n');
        for e in &self.entries {
            match &e.kind {
                EntryKind::Dir => {
                    let _ = writeln!(s, "d\t{}", e.path);
                }
                EntryKind::File {
                    executable,
                    size,
                    digest,
                } => {
                    let (t, m) = if *executable { ("x", 755) } else { ("f", 644) };
                    let _ = writeln!(s, "{t}\t{m}\t{size}\t{}\t{}", digest.hex(), e.path);
                }
                EntryKind::Symlink { target } => {
                    let _ = writeln!(s, "l\t{}\t{target}", e.path);
                }
            }
        }
        s
    }

    pub fn digest(&self) -> Digest {
        sha256_bytes(self.encode().as_bytes())
    }

    pub fn decode(text: &str) -> Result<Tree, TreeError> {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(TreeError::Parse {
                line: 1,
                message: format!("expected `{HEADER}`"),
            });
        }
        let mut entries = Vec::new();
        for (i, line) in lines.enumerate() {
            let err = |m: &str| TreeError::Parse {
                line: i + 2,
                message: m.to_string(),
            };
            let parts: Vec<&str> = line.split('\t').collect();
            let entry = match parts.as_slice() {
                ["d", path] => TreeEntry {
                    path: path.to_string(),
                    kind: EntryKind::Dir,
                },
                [t @ ("f" | "x"), _mode, size, hex, path] => TreeEntry {
                    path: path.to_string(),
                    kind: EntryKind::File {
                        executable: *t == "x",
                        size: size.parse().map_err(|_| err("bad size"))?,
                        digest: Digest::from_hex(hex).map_err(|_| err("bad digest"))?,
                    },
                },
                ["l", path, target] => TreeEntry {
                    path: path.to_string(),
                    kind: EntryKind::Symlink {
                        target: target.to_string(),
                    },
                },
                _ => return Err(err("unknown entry")),
            };
            entries.push(entry);
        }
        let t = Tree::new(entries)?;
        Ok(t)
    }

    /// The files of the tree (not directories or links).
    pub fn files(&self) -> impl Iterator<Item = (&str, &Digest, u64)> {
        self.entries.iter().filter_map(|e| match &e.kind {
            EntryKind::File { digest, size, .. } => Some((e.path.as_str(), digest, *size)),
            _ => None,
        })
    }

    pub fn total_size(&self) -> u64 {
        self.files().map(|(_, _, s)| s).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sorts() {
        let d = sha256_bytes(b"x");
        let t = Tree::new(vec![
            TreeEntry {
                path: "lib/libz.so".into(),
                kind: EntryKind::Symlink {
                    target: "libz.so.1".into(),
                },
            },
            TreeEntry {
                path: "lib".into(),
                kind: EntryKind::Dir,
            },
            TreeEntry {
                path: "bin/t".into(),
                kind: EntryKind::File {
                    executable: true,
                    size: 1,
                    digest: d.clone(),
                },
            },
        ])
        .unwrap();
        let text = t.encode();
        assert!(text.starts_with("refine-tree 1\nx\t755\t1\t"));
        let back = Tree::decode(&text).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.digest(), t.digest());
        assert!(
            Tree::new(vec![TreeEntry {
                path: "../x".into(),
                kind: EntryKind::Dir
            }])
            .is_err()
        );
    }

    fn link(path: &str, target: &str) -> TreeEntry {
        TreeEntry {
            path: path.into(),
            kind: EntryKind::Symlink {
                target: target.into(),
            },
        }
    }

    fn file(path: &str) -> TreeEntry {
        TreeEntry {
            path: path.into(),
            kind: EntryKind::File {
                executable: false,
                size: 1,
                digest: sha256_bytes(b"x"),
            },
        }
    }

    #[test]
    fn trees_are_confined_to_their_root() {
        // Fine: links inside the tree.
        for ok in [
            vec![link("lib/libz.so", "libz.so.1"), file("lib/libz.so.1")],
            vec![
                link("bin/python", "../lib/python3.11/x"),
                file("lib/python3.11/x"),
            ],
            vec![link("a", "./b/../c")],
        ] {
            Tree::new(ok).unwrap();
        }
        let refused = |entries: Vec<TreeEntry>| Tree::new(entries).unwrap_err().to_string();
        // A file below a symlink: it would be written through the link.
        let e = refused(vec![link("a", "lib"), file("a/passwd")]);
        assert!(e.contains("under \"a\", which is a symlink"), "{e}");
        let e = refused(vec![file("a"), file("a/b")]);
        assert!(e.contains("which is a file"), "{e}");
        // Links out of the tree.
        for target in ["/etc", "../../../../etc", "..", "a/../../x", ""] {
            let e = refused(vec![link("l", target)]);
            assert!(e.contains("points outside the tree"), "{target}: {e}");
        }
        let e = refused(vec![link("d/l", "../../x")]);
        assert!(e.contains("outside"), "{e}");
        // The same path twice, as two kinds.
        let e = refused(vec![file("x"), link("x", "y")]);
        assert!(e.contains("listed more than once"), "{e}");
        // And through the text form, as a registry would hand it over.
        let text = "refine-tree 1\nl\tevil\t/etc\n";
        assert!(Tree::decode(text).is_err());
    }
}
