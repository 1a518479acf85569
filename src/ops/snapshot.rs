//! The evaluation cache: the last clean evaluation of a workspace, reused by
//! the next one-shot run when not one input has changed.
//!
//! Within a process salsa memoizes; across processes refine keeps, per
//! workspace and platform, the whole graph (every derivation) of the last
//! evaluation that had no errors, under a *fingerprint* of everything
//! evaluation reads: the text of `WORKSPACE.toml` and of every rule file
//! (and which files there are), the digest of every recipe file it read,
//! the command-line platform overrides, and the identity of the refine
//! binary itself (version, key version, executable size, mtime, inode), so a
//! rebuilt refine never trusts an older one's evaluation. If anything
//! differs, the snapshot is ignored and the workspace is evaluated afresh.
//!
//! This is what keeps `refine build //...` on 10,000 targets a no-op of a
//! few hundred milliseconds (docs/BENCHMARKS.md); like Nix's evaluation
//! cache, it is keyed by content, never by time alone.

use crate::eval::{Graph, GraphNode};
use crate::key::Digest;
use crate::rules::Label;
use std::path::{Path, PathBuf};

const FORMAT: u32 = 3;

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    format: u32,
    fingerprint: String,
    /// Recipe files evaluation read, with their digests then.
    pub aux: Vec<(String, Option<Digest>)>,
    /// Every label of the workspace, sorted.
    pub labels: Vec<Label>,
    /// The graph of every label.
    nodes: Vec<GraphNode>,
}

impl Snapshot {
    pub fn new(
        fingerprint: String,
        aux: Vec<(String, Option<Digest>)>,
        labels: Vec<Label>,
        graph: &Graph,
    ) -> Self {
        Snapshot {
            format: FORMAT,
            fingerprint,
            aux,
            labels,
            nodes: graph
                .nodes
                .iter()
                .map(|n| {
                    let mut n = n.clone();
                    n.drv_id = crate::sched::memo::drv_id(&n.derivation, exe_identity());
                    n
                })
                .collect(),
        }
    }

    /// The labels and the graph of every label.
    pub fn into_parts(self) -> (Vec<Label>, Graph) {
        let mut g = Graph::default();
        g.by_label.reserve(self.nodes.len());
        for (i, n) in self.nodes.iter().enumerate() {
            g.by_label.insert(n.label().clone(), i);
        }
        g.nodes = self.nodes;
        (self.labels, g)
    }
}

/// What identifies this build of refine (computed once per process).
pub fn exe_identity() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(exe_identity_now)
}

fn exe_identity_now() -> String {
    use std::os::unix::fs::MetadataExt;
    let meta = std::env::current_exe().and_then(std::fs::metadata);
    match meta {
        Ok(m) => format!(
            "{} {} {} {} {}.{}",
            env!("CARGO_PKG_VERSION"),
            crate::key::KEY_VERSION,
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec()
        ),
        // Without an identity there is no safe reuse.
        Err(_) => format!("unknown {}", std::process::id()),
    }
}

/// A fingerprint of everything evaluation reads but recipe files.
pub fn fingerprint(config_text: &str, files: &[(String, String)], overrides: &str) -> String {
    let mut h = blake3::Hasher::new();
    let mut field = |b: &[u8]| {
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(exe_identity().as_bytes());
    field(overrides.as_bytes());
    field(config_text.as_bytes());
    for (path, text) in files {
        field(path.as_bytes());
        field(text.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// Where the snapshot of a workspace (and override set) lives.
pub fn path(store: &Path, root: &Path, overrides: &str) -> PathBuf {
    let id = blake3::hash(format!("{}\n{overrides}", root.display()).as_bytes());
    store
        .join("eval")
        .join(format!("{}.bin", &id.to_hex()[..32]))
}

/// The snapshot at `path`, if it was made from exactly these inputs.
pub fn load(path: &Path, fingerprint: &str, sources: &crate::workspace::Files) -> Option<Snapshot> {
    let bytes = std::fs::read(path).ok()?;
    let s: Snapshot = crate::rules::label::interning(|| postcard::from_bytes(&bytes)).ok()?;
    if s.format != FORMAT || s.fingerprint != fingerprint {
        return None;
    }
    for (rel, digest) in &s.aux {
        if &sources.digest(rel) != digest {
            return None;
        }
    }
    Some(s)
}

/// Save a snapshot (best effort: it is only a cache).
pub fn save(path: &Path, s: &Snapshot) {
    let Ok(bytes) = postcard::to_stdvec(s) else {
        return;
    };
    if let Some(dir) = path.parent() {
        let _ = crate::store::local::write_atomic(dir, path, &bytes);
    }
}
