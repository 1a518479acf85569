//! Key memos: a node's key remembered against what determines it, so the
//! no-op path reads the key instead of building the preimage.
//!
//! A key is `blake3(preimage)`, and the preimage is a pure function of the
//! node's derivation and of the digests its dependencies contribute
//! ([`crate::eval::Derivation::preimage`]). So the pair (derivation,
//! dependency digests) determines the key, given the code that computes
//! it. The memo is a hash of exactly that: the derivation's serialized
//! bytes (postcard; equal bytes decode to an equal derivation), the
//! identity of the refine binary (version, key version, and the
//! executable's inode, size and mtime, as the evaluation cache uses: a
//! rebuilt refine computes every key afresh once), and every dependency's
//! label and digest, sorted. The label index keeps each label's memo beside
//! its key; a node whose memo matches takes the recorded key.
//!
//! Debug builds (every test) compute the preimage anyway and panic when a
//! remembered key differs from it: the whole test suite is the proof that
//! a memo never answers with a key its preimage would not give.

use crate::eval::Derivation;
use crate::key::Digest;
use crate::rules::Label;

/// The derivation's identity for memos, or None if it cannot be
/// serialized (then its key is always computed).
pub fn drv_id(d: &Derivation, exe: &str) -> Option<[u8; 32]> {
    let bytes = postcard::to_stdvec(d).ok()?;
    let mut h = blake3::Hasher::new();
    h.update(b"refine-drv\0");
    h.update(&(exe.len() as u64).to_le_bytes());
    h.update(exe.as_bytes());
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(&bytes);
    Some(*h.finalize().as_bytes())
}

/// The memo of a node: its derivation's identity and its dependencies'
/// digests (whatever order they come in: sorted by label here).
pub fn memo(drv_id: &[u8; 32], deps: &[(&Label, Digest)]) -> String {
    let mut sorted: Vec<(&Label, &Digest)> = deps.iter().map(|(l, d)| (*l, d)).collect();
    sorted.sort_unstable_by(|a, b| {
        (a.0.kind.as_str(), &*a.0.name, a.1).cmp(&(b.0.kind.as_str(), &*b.0.name, b.1))
    });
    let mut h = blake3::Hasher::new();
    h.update(b"refine-key-memo\0");
    h.update(drv_id);
    h.update(&(sorted.len() as u64).to_le_bytes());
    for (l, d) in sorted {
        // The label as its text (`//kind:name`), length first; fed in
        // parts: nothing is allocated per dependency.
        let (kind, name) = (l.kind.as_str(), &*l.name);
        h.update(&((kind.len() + name.len() + 3) as u64).to_le_bytes());
        h.update(b"//");
        h.update(kind.as_bytes());
        h.update(b":");
        h.update(name.as_bytes());
        let d = d.hex();
        h.update(&(d.len() as u64).to_le_bytes());
        h.update(d.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    #[test]
    fn a_memo_moves_with_the_derivation_and_every_dependency_digest() {
        let a: Label = "//packs:zlib".parse().unwrap();
        let b: Label = "//sources:x".parse().unwrap();
        let id = [1u8; 32];
        let deps = vec![(&a, digest('a')), (&b, digest('b'))];
        let m = memo(&id, &deps);
        // Order does not matter.
        let again = vec![(&b, digest('b')), (&a, digest('a'))];
        assert_eq!(m, memo(&id, &again));
        // The label's text is what is hashed: the memo of a known input
        // stays what it was computed as (`//packs:zlib`, then `//sources:x`).
        let mut h = blake3::Hasher::new();
        h.update(b"refine-key-memo\0");
        h.update(&id);
        h.update(&2u64.to_le_bytes());
        for (l, d) in [("//packs:zlib", 'a'), ("//sources:x", 'b')] {
            h.update(&(l.len() as u64).to_le_bytes());
            h.update(l.as_bytes());
            let hex = d.to_string().repeat(64);
            h.update(&(hex.len() as u64).to_le_bytes());
            h.update(hex.as_bytes());
        }
        assert_eq!(m, h.finalize().to_hex().to_string());
        // Another derivation, another digest, a missing or swapped
        // dependency: another memo.
        assert_ne!(m, memo(&[2u8; 32], &deps));
        let other = vec![(&a, digest('a')), (&b, digest('c'))];
        assert_ne!(m, memo(&id, &other));
        let fewer = vec![(&a, digest('a'))];
        assert_ne!(m, memo(&id, &fewer));
        let swapped = vec![(&a, digest('b')), (&b, digest('a'))];
        assert_ne!(m, memo(&id, &swapped));
    }
}
