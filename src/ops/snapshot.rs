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
//!
//! Read in two depths: each node's head (label, arch, toolchain, pin,
//! dependencies, memo identity: all a hit needs) is decoded when the file
//! is read; its derivation and the places of its rule stay the file's
//! bytes until a stage asks for them ([`crate::eval::GraphNode::derivation`]).
//! A no-op decodes no derivation at all (decoding every one was half of
//! its memory, docs/BENCHMARKS.md). The whole file is checked against
//! the BLAKE3 digest it starts with before anything of it is used, so a
//! derivation decoded late is one of the bytes that were checked.

use crate::eval::{Graph, GraphNode};
use crate::key::Digest;
use crate::rules::Label;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const FORMAT: u32 = 4;

/// The cache file: a BLAKE3 digest of the rest, then the postcard of a
/// [`Snapshot`]. The digest is checked on every read (a few milliseconds
/// for a workspace of 10,000 wheels), so a node's detail, decoded only
/// when a stage asks for it, is known whole before anything is used.
const DIGEST_LEN: usize = 32;

#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot<'a> {
    format: u32,
    fingerprint: String,
    /// Recipe files evaluation read, with their digests then.
    aux: Vec<(String, Option<Digest>)>,
    /// Every label of the workspace, sorted.
    labels: Vec<Label>,
    /// The graph of every label.
    #[serde(borrow)]
    nodes: Vec<CachedNode<'a>>,
}

/// A node as the cache keeps it: what a hit needs, and the postcard of
/// its [`crate::eval::Detail`] (the derivation, where its rule is), left
/// as bytes until a stage asks for it.
#[derive(serde::Serialize, serde::Deserialize)]
struct CachedNode<'a> {
    head: crate::eval::NodeHead,
    deps: Vec<usize>,
    requested: bool,
    owner: Option<Label>,
    drv_id: Option<[u8; 32]>,
    #[serde(borrow, with = "bytes")]
    detail: std::borrow::Cow<'a, [u8]>,
}

/// Bytes as bytes (serde writes a `[u8]` as a sequence), borrowed from
/// the cache's buffer when read.
mod bytes {
    use serde::{Deserializer, Serializer};
    use std::borrow::Cow;

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cow<'de, [u8]>, D::Error> {
        let b: &'de [u8] = serde::Deserialize::deserialize(d)?;
        Ok(Cow::Borrowed(b))
    }
}

/// A clean evaluation, as the cache gives it back.
pub struct Loaded {
    /// Recipe files evaluation read, with their digests then.
    pub aux: Vec<(String, Option<Digest>)>,
    /// Every label of the workspace, sorted.
    pub labels: Vec<Label>,
    pub graph: Graph,
}

/// The bytes of a cache file for `graph`, every node's detail encoded;
/// each node's memo identity is set as it is.
pub fn encode(
    fingerprint: String,
    aux: Vec<(String, Option<Digest>)>,
    labels: &[Label],
    graph: &mut Graph,
) -> Option<Vec<u8>> {
    let nodes = graph
        .nodes
        .iter_mut()
        .map(|n| {
            n.drv_id = crate::sched::memo::drv_id(n.derivation(), exe_identity());
            Some(CachedNode {
                head: n.head(),
                deps: n.deps.clone(),
                requested: n.requested,
                owner: n.owner.clone(),
                drv_id: n.drv_id,
                detail: std::borrow::Cow::Owned(postcard::to_stdvec(n.detail()).ok()?),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let s = Snapshot {
        format: FORMAT,
        fingerprint,
        aux,
        labels: labels.to_vec(),
        nodes,
    };
    let mut out = vec![0u8; DIGEST_LEN];
    let body = postcard::to_stdvec(&s).ok()?;
    out[..DIGEST_LEN].copy_from_slice(blake3::hash(&body).as_bytes());
    out.extend_from_slice(&body);
    Some(out)
}

/// Decode a cache file's bytes, if they are whole and of this format and
/// fingerprint (nodes' details stay bytes, decoded when asked for).
fn decode(bytes: Arc<Vec<u8>>, fingerprint: &str) -> Option<Loaded> {
    let (digest, body) = bytes.split_at_checked(DIGEST_LEN)?;
    if blake3::hash(body).as_bytes() != digest {
        return None;
    }
    let s: Snapshot<'_> = crate::rules::label::interning(|| postcard::from_bytes(body)).ok()?;
    if s.format != FORMAT || s.fingerprint != fingerprint {
        return None;
    }
    let base = bytes.as_ptr() as usize;
    let mut g = Graph::default();
    g.nodes.reserve(s.nodes.len());
    g.by_label.reserve(s.nodes.len());
    for (i, n) in s.nodes.into_iter().enumerate() {
        // Dependencies come before their dependents.
        if n.deps.iter().any(|&d| d >= i) {
            return None;
        }
        let std::borrow::Cow::Borrowed(detail) = n.detail else {
            return None;
        };
        let start = detail.as_ptr() as usize - base;
        let range = start..start + detail.len();
        g.by_label.insert(n.head.label.clone(), i);
        g.nodes.push(GraphNode::cached(
            n.head,
            n.deps,
            n.requested,
            n.owner,
            n.drv_id,
            bytes.clone(),
            range,
        ));
    }
    Some(Loaded {
        aux: s.aux,
        labels: s.labels,
        graph: g,
    })
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

/// The cached evaluation at `path`, if it was made from exactly these
/// inputs (and is whole).
pub fn load(path: &Path, fingerprint: &str, sources: &crate::workspace::Files) -> Option<Loaded> {
    let bytes = Arc::new(std::fs::read(path).ok()?);
    let s = decode(bytes, fingerprint)?;
    for (rel, digest) in &s.aux {
        if &sources.digest(rel) != digest {
            return None;
        }
    }
    Some(s)
}

/// Save a cached evaluation (best effort: it is only a cache).
pub fn save(path: &Path, bytes: &[u8]) {
    if let Some(dir) = path.parent() {
        let _ = crate::store::local::write_atomic(dir, path, bytes);
    }
}
