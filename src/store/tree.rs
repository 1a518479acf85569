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

impl Tree {
    pub fn new(mut entries: Vec<TreeEntry>) -> Result<Tree, TreeError> {
        for e in &entries {
            check_path(&e.path)?;
            if let EntryKind::Symlink { target } = &e.kind
                && target.contains(['\t', '\n', '\r'])
            {
                return Err(TreeError::BadPath(target.clone()));
            }
        }
        entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        entries.dedup_by(|a, b| a.path == b.path);
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
}
