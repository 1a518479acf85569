//! refine's trees as REAPI's (`Tree`: a root `Directory` and all its
//! descendants) and back. Going back is where a worker's claim is checked:
//! names are single plain components, every directory a child names is in
//! the message, the walk is bounded in depth and in entries, and the
//! result is a refine [`Tree`], whose own checks (no duplicate, no path
//! under a file or link, no link out of the tree) apply before anything
//! is written.

use super::re;
use crate::store::limits::OutputLimits;
use crate::store::{EntryKind, Tree, TreeEntry};
use std::collections::{BTreeMap, HashMap};

/// Deepest directory nesting accepted from a server.
const MAX_DEPTH: usize = 256;

#[derive(Default)]
struct Dir {
    files: Vec<re::FileNode>,
    dirs: BTreeMap<String, ()>,
    links: Vec<re::SymlinkNode>,
}

/// A refine tree as REAPI's `Tree` message (directories sorted by name,
/// as the API asks, so the same tree gives the same bytes).
pub fn to_reapi(tree: &Tree) -> re::Tree {
    let mut dirs: BTreeMap<String, Dir> = BTreeMap::new();
    dirs.insert(String::new(), Dir::default());
    let split = |p: &str| match p.rsplit_once('/') {
        Some((a, b)) => (a.to_string(), b.to_string()),
        None => (String::new(), p.to_string()),
    };
    // Every directory is linked into its parent, listed or not.
    fn ensure(dirs: &mut BTreeMap<String, Dir>, p: &str) {
        if dirs.contains_key(p) {
            return;
        }
        dirs.insert(p.to_string(), Dir::default());
        let (parent, name) = match p.rsplit_once('/') {
            Some((a, b)) => (a, b),
            None => ("", p),
        };
        ensure(dirs, parent);
        if let Some(d) = dirs.get_mut(parent) {
            d.dirs.insert(name.to_string(), ());
        }
    }
    for e in &tree.entries {
        let (parent, name) = split(&e.path);
        ensure(&mut dirs, &parent);
        match &e.kind {
            EntryKind::Dir => ensure(&mut dirs, &e.path),
            EntryKind::File {
                executable,
                size,
                digest,
            } => {
                if let Some(d) = dirs.get_mut(&parent) {
                    d.files.push(re::FileNode {
                        name,
                        digest: Some(super::digest(digest, *size)),
                        is_executable: *executable,
                        node_properties: None,
                    })
                }
            }
            EntryKind::Symlink { target } => {
                if let Some(d) = dirs.get_mut(&parent) {
                    d.links.push(re::SymlinkNode {
                        name,
                        target: target.clone(),
                        node_properties: None,
                    })
                }
            }
        }
    }
    // Bottom up: a directory's message needs its children's digests.
    let mut done: HashMap<String, re::Directory> = HashMap::new();
    let mut paths: Vec<String> = dirs.keys().cloned().collect();
    paths.sort_by_key(|p| {
        std::cmp::Reverse(if p.is_empty() {
            0
        } else {
            p.split('/').count()
        })
    });
    for p in paths {
        let d = dirs.remove(&p).unwrap_or_default();
        let mut msg = re::Directory {
            files: d.files,
            directories: Vec::new(),
            symlinks: d.links,
            node_properties: None,
        };
        msg.files.sort_by(|a, b| a.name.cmp(&b.name));
        msg.symlinks.sort_by(|a, b| a.name.cmp(&b.name));
        for name in d.dirs.keys() {
            let child = if p.is_empty() {
                name.clone()
            } else {
                format!("{p}/{name}")
            };
            let c = done.get(&child).cloned().unwrap_or_default();
            msg.directories.push(re::DirectoryNode {
                name: name.clone(),
                digest: Some(super::message_digest(&c).0),
            });
        }
        done.insert(p, msg);
    }
    let root = done.remove("").unwrap_or_default();
    let mut children: Vec<re::Directory> = done.into_values().collect();
    children.sort_by_key(|c| super::message_digest(c).0.hash);
    children.dedup();
    re::Tree {
        root: Some(root),
        children,
    }
}

fn plain(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0', '\t', '\n', '\r'])
}

/// A server's `Tree` as a refine tree, checked (see the module's header).
pub fn from_reapi(t: &re::Tree, limits: &OutputLimits) -> Result<Tree, String> {
    let root = t.root.as_ref().ok_or("the output tree has no root")?;
    let by_digest: HashMap<String, &re::Directory> = t
        .children
        .iter()
        .map(|c| (super::message_digest(c).0.hash, c))
        .collect();
    let mut entries = Vec::new();
    let mut bytes = 0u64;
    let mut stack: Vec<(String, &re::Directory, usize)> = vec![(String::new(), root, 0)];
    while let Some((path, dir, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(format!("the output tree is nested deeper than {MAX_DEPTH}"));
        }
        let join = |name: &str| -> Result<String, String> {
            if !plain(name) {
                return Err(format!(
                    "the output tree names {name:?}, not a plain file name"
                ));
            }
            Ok(if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}/{name}")
            })
        };
        for f in &dir.files {
            let p = join(&f.name)?;
            let d = f
                .digest
                .as_ref()
                .ok_or_else(|| format!("{p} has no digest"))?;
            let (digest, size) = super::from_digest(d)?;
            bytes = bytes.saturating_add(size);
            if bytes > limits.max_bytes {
                return Err(format!(
                    "the output holds more than {} bytes",
                    limits.max_bytes
                ));
            }
            entries.push(TreeEntry {
                path: p,
                kind: EntryKind::File {
                    executable: f.is_executable,
                    size,
                    digest,
                },
            });
        }
        for l in &dir.symlinks {
            entries.push(TreeEntry {
                path: join(&l.name)?,
                kind: EntryKind::Symlink {
                    target: l.target.clone(),
                },
            });
        }
        for sub in &dir.directories {
            let p = join(&sub.name)?;
            let d = sub
                .digest
                .as_ref()
                .ok_or_else(|| format!("{p} has no digest"))?;
            let child = by_digest
                .get(&d.hash)
                .ok_or_else(|| format!("the output tree lacks directory {p} ({})", d.hash))?;
            entries.push(TreeEntry {
                path: p.clone(),
                kind: EntryKind::Dir,
            });
            stack.push((p, child, depth + 1));
        }
        if entries.len() as u64 > limits.max_files {
            return Err(format!(
                "the output holds more than {} files",
                limits.max_files
            ));
        }
    }
    Tree::new(entries).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::sha256_bytes;

    fn file(path: &str, content: &[u8], x: bool) -> TreeEntry {
        TreeEntry {
            path: path.into(),
            kind: EntryKind::File {
                executable: x,
                size: content.len() as u64,
                digest: sha256_bytes(content),
            },
        }
    }

    fn dir(path: &str) -> TreeEntry {
        TreeEntry {
            path: path.into(),
            kind: EntryKind::Dir,
        }
    }

    #[test]
    fn a_tree_goes_there_and_back_unchanged() {
        let t = Tree::new(vec![
            dir("lib"),
            dir("lib/python"),
            file("lib/python/a.py", b"a", false),
            file("lib/libz.so.1", b"z", true),
            TreeEntry {
                path: "lib/libz.so".into(),
                kind: EntryKind::Symlink {
                    target: "libz.so.1".into(),
                },
            },
            file("x.whl", b"w", false),
            dir("empty"),
        ])
        .unwrap();
        let r = to_reapi(&t);
        let back = from_reapi(&r, &OutputLimits::default()).unwrap();
        assert_eq!(back.digest(), t.digest());
        // The same tree, the same message.
        assert_eq!(
            super::super::message_digest(&to_reapi(&back)).0,
            super::super::message_digest(&r).0
        );
    }

    #[test]
    fn a_crafted_tree_is_refused() {
        let limits = OutputLimits::default();
        let fnode = |name: &str| re::FileNode {
            name: name.into(),
            digest: Some(super::super::digest(&sha256_bytes(b"x"), 1)),
            is_executable: false,
            node_properties: None,
        };
        let with_files = |files: Vec<re::FileNode>| re::Tree {
            root: Some(re::Directory {
                files,
                ..Default::default()
            }),
            children: vec![],
        };
        for bad in ["..", "a/b", "", "."] {
            let e = from_reapi(&with_files(vec![fnode(bad)]), &limits).unwrap_err();
            assert!(e.contains("plain file name"), "{bad}: {e}");
        }
        // A link out of the tree.
        let out = re::Tree {
            root: Some(re::Directory {
                symlinks: vec![re::SymlinkNode {
                    name: "etc".into(),
                    target: "/etc".into(),
                    node_properties: None,
                }],
                ..Default::default()
            }),
            children: vec![],
        };
        assert!(from_reapi(&out, &limits).unwrap_err().contains("outside"));
        // A child directory the message does not hold.
        let missing = re::Tree {
            root: Some(re::Directory {
                directories: vec![re::DirectoryNode {
                    name: "d".into(),
                    digest: Some(super::super::digest(&sha256_bytes(b"nope"), 4)),
                }],
                ..Default::default()
            }),
            children: vec![],
        };
        assert!(
            from_reapi(&missing, &limits)
                .unwrap_err()
                .contains("lacks directory")
        );
        // More bytes than an output may hold.
        let small = OutputLimits {
            max_bytes: 0,
            ..limits
        };
        assert!(
            from_reapi(&with_files(vec![fnode("a")]), &small)
                .unwrap_err()
                .contains("bytes")
        );
        // The same name twice.
        let e = from_reapi(&with_files(vec![fnode("a"), fnode("a")]), &limits).unwrap_err();
        assert!(e.contains("more than once"), "{e}");
    }
}
