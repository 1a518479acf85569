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
use std::collections::HashMap;

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
/// digests (whatever order the map holds them in).
pub fn memo(drv_id: &[u8; 32], deps: &HashMap<&Label, Digest>) -> String {
    let mut sorted: Vec<(String, &Digest)> = deps.iter().map(|(l, d)| (l.to_string(), d)).collect();
    sorted.sort();
    let mut h = blake3::Hasher::new();
    h.update(b"refine-key-memo\0");
    h.update(drv_id);
    h.update(&(sorted.len() as u64).to_le_bytes());
    for (l, d) in sorted {
        let d = d.hex();
        h.update(&(l.len() as u64).to_le_bytes());
        h.update(l.as_bytes());
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
        let mut deps = HashMap::new();
        deps.insert(&a, digest('a'));
        deps.insert(&b, digest('b'));
        let m = memo(&id, &deps);
        // Order of insertion does not matter.
        let mut again = HashMap::new();
        again.insert(&b, digest('b'));
        again.insert(&a, digest('a'));
        assert_eq!(m, memo(&id, &again));
        // Another derivation, another digest, a missing or swapped
        // dependency: another memo.
        assert_ne!(m, memo(&[2u8; 32], &deps));
        let mut other = deps.clone();
        other.insert(&b, digest('c'));
        assert_ne!(m, memo(&id, &other));
        let mut fewer = deps.clone();
        fewer.remove(&b);
        assert_ne!(m, memo(&id, &fewer));
        let mut swapped = HashMap::new();
        swapped.insert(&a, digest('b'));
        swapped.insert(&b, digest('a'));
        assert_ne!(m, memo(&id, &swapped));
    }
}
