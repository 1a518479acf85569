//! Stable hashing: cache keys, their preimages, and content digests.
//!
//! A node's key is BLAKE3 over a canonical, versioned encoding of its
//! *preimage*: a small tree of named fields (strings, integers, booleans,
//! lists, maps) built by hand-written code in `eval::derivation`. The
//! encoding below is fixed by this file alone: every value is tagged and
//! length-prefixed, map entries are sorted by key, and nothing goes through
//! `std::hash` or serde, so a refactor elsewhere cannot change a key.
//!
//! The preimage itself is stored beside each key (as JSON), so `refine
//! explain` can diff two builds field by field, and a key can be re-derived
//! from a stored preimage (`refine verify --from-manifest`).
//!
//! Bump [`KEY_VERSION`] whenever what a build does changes in a way that the
//! preimage does not show (the sandbox layout, the recipe contract, the
//! wheel normalization): every key changes with it.

mod digest;
pub mod sign;

pub use digest::{Digest, DigestError, Sha256Writer, sha256_bytes, sha256_file};

use std::collections::BTreeMap;
use std::fmt;

/// Folded into every key. See the module documentation for when to bump it.
///
/// History: 1, the first; 2, builds run as an unprivileged uid in a user
/// namespace with no capabilities (their outputs were checked to be the
/// same bytes, but what a build can do changed); 3, the recipe contract's
/// CFLAGS (and CXXFLAGS, FFLAGS, FCFLAGS) start with `-O2` (autotools packs
/// had been compiled unoptimized, and at a floor by Zig in its debug mode
/// with the undefined-behaviour sanitizer).
pub const KEY_VERSION: u32 = 3;

/// A preimage value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PValue {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<PValue>),
    Map(BTreeMap<String, PValue>),
}

impl From<&str> for PValue {
    fn from(s: &str) -> Self {
        PValue::Str(s.to_string())
    }
}
impl From<String> for PValue {
    fn from(s: String) -> Self {
        PValue::Str(s)
    }
}
impl From<&String> for PValue {
    fn from(s: &String) -> Self {
        PValue::Str(s.clone())
    }
}
impl From<i64> for PValue {
    fn from(n: i64) -> Self {
        PValue::Int(n)
    }
}
impl From<bool> for PValue {
    fn from(b: bool) -> Self {
        PValue::Bool(b)
    }
}
impl<T: Into<PValue>> From<Vec<T>> for PValue {
    fn from(v: Vec<T>) -> Self {
        PValue::List(v.into_iter().map(Into::into).collect())
    }
}
impl<V: Into<PValue> + Clone> From<&BTreeMap<String, V>> for PValue {
    fn from(m: &BTreeMap<String, V>) -> Self {
        PValue::Map(
            m.iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect(),
        )
    }
}

const TAG_STR: u8 = 1;
const TAG_INT: u8 = 2;
const TAG_BOOL: u8 = 3;
const TAG_LIST: u8 = 4;
const TAG_MAP: u8 = 5;

impl PValue {
    /// The canonical encoding: tag byte, then a little-endian u64 length or
    /// count where the value has one, then the contents.
    pub fn encode(&self, out: &mut dyn FnMut(&[u8])) {
        match self {
            PValue::Str(s) => {
                out(&[TAG_STR]);
                out(&(s.len() as u64).to_le_bytes());
                out(s.as_bytes());
            }
            PValue::Int(n) => {
                out(&[TAG_INT]);
                out(&n.to_le_bytes());
            }
            PValue::Bool(b) => out(&[TAG_BOOL, u8::from(*b)]),
            PValue::List(items) => {
                out(&[TAG_LIST]);
                out(&(items.len() as u64).to_le_bytes());
                for i in items {
                    i.encode(out);
                }
            }
            PValue::Map(m) => {
                out(&[TAG_MAP]);
                out(&(m.len() as u64).to_le_bytes());
                for (k, v) in m {
                    out(&(k.len() as u64).to_le_bytes());
                    out(k.as_bytes());
                    v.encode(out);
                }
            }
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            PValue::Str(s) => serde_json::Value::String(s.clone()),
            PValue::Int(n) => serde_json::Value::from(*n),
            PValue::Bool(b) => serde_json::Value::Bool(*b),
            PValue::List(l) => serde_json::Value::Array(l.iter().map(|v| v.to_json()).collect()),
            PValue::Map(m) => {
                serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    pub fn from_json(v: &serde_json::Value) -> Option<PValue> {
        Some(match v {
            serde_json::Value::String(s) => PValue::Str(s.clone()),
            serde_json::Value::Number(n) => PValue::Int(n.as_i64()?),
            serde_json::Value::Bool(b) => PValue::Bool(*b),
            serde_json::Value::Array(a) => {
                PValue::List(a.iter().map(PValue::from_json).collect::<Option<_>>()?)
            }
            serde_json::Value::Object(o) => PValue::Map(
                o.iter()
                    .map(|(k, v)| Some((k.clone(), PValue::from_json(v)?)))
                    .collect::<Option<_>>()?,
            ),
            serde_json::Value::Null => return None,
        })
    }

    /// A short one-line rendering for diffs.
    pub fn short(&self) -> String {
        match self {
            PValue::Str(s) => format!("{s:?}"),
            other => other.to_json().to_string(),
        }
    }
}

/// The structured inputs of a key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Preimage {
    pub fields: BTreeMap<String, PValue>,
}

impl Preimage {
    pub fn new() -> Self {
        Preimage::default()
    }

    pub fn set(&mut self, name: &str, value: impl Into<PValue>) -> &mut Self {
        self.fields.insert(name.to_string(), value.into());
        self
    }

    pub fn get(&self, name: &str) -> Option<&PValue> {
        self.fields.get(name)
    }

    pub fn key(&self) -> Key {
        let mut h = blake3::Hasher::new();
        h.update(b"refine-key\0");
        h.update(&KEY_VERSION.to_le_bytes());
        // The same bytes as `PValue::Map(fields).encode`, without a copy.
        let mut out = |b: &[u8]| {
            h.update(b);
        };
        out(&[TAG_MAP]);
        out(&(self.fields.len() as u64).to_le_bytes());
        for (k, v) in &self.fields {
            out(&(k.len() as u64).to_le_bytes());
            out(k.as_bytes());
            v.encode(&mut out);
        }
        Key(h.finalize().to_hex().to_string())
    }

    pub fn to_json(&self) -> serde_json::Value {
        PValue::Map(self.fields.clone()).to_json()
    }

    pub fn from_json(v: &serde_json::Value) -> Option<Preimage> {
        match PValue::from_json(v)? {
            PValue::Map(fields) => Some(Preimage { fields }),
            _ => None,
        }
    }
}

/// A cache key: 64 lowercase hex digits of BLAKE3.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub String);

impl Key {
    pub fn parse(s: &str) -> Option<Key> {
        (s.len() == 64
            && s.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()))
        .then(|| Key(s.to_string()))
    }

    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One difference between two preimages, by dotted field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldChange {
    pub path: String,
    pub old: Option<PValue>,
    pub new: Option<PValue>,
}

/// Field-by-field differences, in path order.
pub fn diff(old: &Preimage, new: &Preimage) -> Vec<FieldChange> {
    let mut out = Vec::new();
    diff_value(
        "",
        Some(&PValue::Map(old.fields.clone())),
        Some(&PValue::Map(new.fields.clone())),
        &mut out,
    );
    out
}

fn diff_value(path: &str, old: Option<&PValue>, new: Option<&PValue>, out: &mut Vec<FieldChange>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (old, new) {
        (Some(PValue::Map(a)), Some(PValue::Map(b))) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                diff_value(&join(k), a.get(k), b.get(k), out);
            }
        }
        (Some(a), Some(b)) if a == b => {}
        (a, b) => out.push(FieldChange {
            path: path.to_string(),
            old: a.cloned(),
            new: b.cloned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pre(pairs: &[(&str, PValue)]) -> Preimage {
        let mut p = Preimage::new();
        for (k, v) in pairs {
            p.set(k, v.clone());
        }
        p
    }

    #[test]
    fn encoding_is_fixed() {
        // A golden value: if this changes, every key in every store changes.
        // That needs a KEY_VERSION bump, not a new golden value.
        let p = pre(&[
            ("kind", "wheel".into()),
            ("n", PValue::Int(3)),
            ("flags", vec!["a", "b"].into()),
        ]);
        let mut bytes = Vec::new();
        PValue::Map(p.fields.clone()).encode(&mut |b| bytes.extend_from_slice(b));
        let expected = [
            "05",
            "0300000000000000", // map of 3
            "0500000000000000",
            "666c616773", // "flags"
            "04",
            "0200000000000000", // list of 2
            "01",
            "0100000000000000",
            "61", // "a"
            "01",
            "0100000000000000",
            "62", // "b"
            "0400000000000000",
            "6b696e64", // "kind"
            "01",
            "0500000000000000",
            "776865656c", // "wheel"
            "0100000000000000",
            "6e", // "n"
            "02",
            "0300000000000000", // 3
        ]
        .concat();
        assert_eq!(hex::encode(&bytes), expected);
        let mut h = blake3::Hasher::new();
        h.update(b"refine-key\0");
        h.update(&KEY_VERSION.to_le_bytes());
        h.update(&bytes);
        assert_eq!(
            p.key().0,
            h.finalize().to_hex().to_string(),
            "key() hashes exactly the encoding"
        );
        assert_eq!(p.key().0.len(), 64);
    }

    #[test]
    fn order_of_insertion_does_not_matter_but_values_do() {
        let a = pre(&[("x", "1".into()), ("y", "2".into())]);
        let b = pre(&[("y", "2".into()), ("x", "1".into())]);
        assert_eq!(a.key(), b.key());
        let c = pre(&[("x", "1".into()), ("y", "3".into())]);
        assert_ne!(a.key(), c.key());
        // Types are tagged: the string "1" is not the integer 1.
        let d = pre(&[("x", PValue::Int(1)), ("y", "2".into())]);
        assert_ne!(a.key(), d.key());
        // Length prefixes keep ["ab"] apart from ["a", "b"].
        let e = pre(&[("x", vec!["ab"].into())]);
        let f = pre(&[("x", vec!["a", "b"].into())]);
        assert_ne!(e.key(), f.key());
    }

    #[test]
    fn json_round_trip_keeps_the_key() {
        let mut env = BTreeMap::new();
        env.insert("CFLAGS".to_string(), "-O2".to_string());
        let mut p = pre(&[("n", PValue::Int(-4)), ("ok", true.into())]);
        p.set("env", &env);
        let back = Preimage::from_json(&p.to_json()).unwrap();
        assert_eq!(back.key(), p.key());
    }

    #[test]
    fn diff_names_dotted_paths() {
        let mut e1 = BTreeMap::new();
        e1.insert("A".to_string(), "1".to_string());
        let mut e2 = e1.clone();
        e2.insert("A".to_string(), "2".to_string());
        e2.insert("B".to_string(), "x".to_string());
        let mut a = Preimage::new();
        a.set("env", &e1).set("kind", "wheel");
        let mut b = Preimage::new();
        b.set("env", &e2).set("kind", "wheel");
        let d = diff(&a, &b);
        let paths: Vec<&str> = d.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["env.A", "env.B"]);
        assert_eq!(d[1].old, None);
    }
}
