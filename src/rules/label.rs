//! Labels (`//kind:name`) and label patterns (`//...`, `//kind:...`).
//!
//! The kind is a namespace, not a directory: `//wheels:six` may be declared
//! in any rule file. Names are restricted to a portable character set so a
//! label can become a path component, an OCI repository name and a podman
//! container name without escaping.

use std::fmt;
use std::str::FromStr;

/// What a target produces. The order is the order of evaluation and of
/// listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Source,
    Image,
    Runtime,
    Pack,
    Wheel,
    Repair,
    /// A named group of targets (`refine import` makes one per import).
    Set,
    /// The wheels of a set installed together in a clean container of the
    /// target and tested (`refine test //sets:NAME`); one per set.
    Test,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Source,
        Kind::Image,
        Kind::Runtime,
        Kind::Pack,
        Kind::Wheel,
        Kind::Repair,
        Kind::Set,
        Kind::Test,
    ];

    /// The namespace in labels and the table name in rule files.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Source => "sources",
            Kind::Image => "images",
            Kind::Runtime => "runtimes",
            Kind::Pack => "packs",
            Kind::Wheel => "wheels",
            Kind::Repair => "repairs",
            Kind::Set => "sets",
            Kind::Test => "tests",
        }
    }

    /// The singular noun, for messages and `kind(...)` queries.
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Source => "source",
            Kind::Image => "image",
            Kind::Runtime => "runtime",
            Kind::Pack => "pack",
            Kind::Wheel => "wheel",
            Kind::Repair => "repair",
            Kind::Set => "set",
            Kind::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s || k.singular() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A target's name. Shared, not copied: labels are cloned into every map
/// and list of a large graph. Serialized as its `//kind:name` text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(into = "String")]
pub struct Label {
    pub kind: Kind,
    pub name: std::sync::Arc<str>,
}

impl Label {
    pub fn new(kind: Kind, name: impl Into<std::sync::Arc<str>>) -> Self {
        Label {
            kind,
            name: name.into(),
        }
    }

    /// A filesystem- and registry-safe rendering: `wheels/markupsafe`.
    pub fn path(&self) -> String {
        format!("{}/{}", self.kind.as_str(), self.name)
    }
}

impl From<Label> for String {
    fn from(l: Label) -> String {
        l.to_string()
    }
}

impl TryFrom<String> for Label {
    type Error = LabelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// Read from its text, borrowed where the format allows (no copy of the
/// text before it is checked), and shared within [`interning`].
impl<'de> serde::Deserialize<'de> for Label {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Label, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Label;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a label like `//wheels:markupsafe`")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Label, E> {
                parse_shared(s).map_err(E::custom)
            }
        }
        d.deserialize_str(Text)
    }
}

thread_local! {
    /// The labels read so far by [`interning`] on this thread, by text.
    static SHARED: std::cell::RefCell<Option<rustc_hash::FxHashMap<Box<str>, Label>>> =
        const { std::cell::RefCell::new(None) };
}

/// Run `f` with every label it deserializes on this thread shared: the
/// same text gives clones of one label (one name allocated, not one per
/// mention). The evaluation snapshot names each label in every derivation
/// that depends on it: tens of thousands of mentions for a large workspace.
pub fn interning<T>(f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            SHARED.with(|c| *c.borrow_mut() = None);
        }
    }
    SHARED.with(|c| *c.borrow_mut() = Some(Default::default()));
    let _reset = Reset;
    f()
}

fn parse_shared(s: &str) -> Result<Label, LabelError> {
    SHARED.with(|c| {
        let mut c = c.borrow_mut();
        let Some(seen) = c.as_mut() else {
            return s.parse();
        };
        if let Some(l) = seen.get(s) {
            return Ok(l.clone());
        }
        let l: Label = s.parse()?;
        seen.insert(s.into(), l.clone());
        Ok(l)
    })
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "//{}:{}", self.kind.as_str(), self.name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("`{0}` is not a label: labels look like `//wheels:markupsafe`")]
    NoSlashes(String),
    #[error("`{0}` has no `:` between kind and name")]
    NoColon(String),
    #[error("unknown kind `{kind}` in `{label}`")]
    UnknownKind { label: String, kind: String },
    #[error(
        "invalid target name `{0}`: use letters, digits, `.`, `_`, `-` and `+`, starting with a letter or digit"
    )]
    BadName(String),
}

impl LabelError {
    pub fn hint(&self) -> String {
        match self {
            LabelError::UnknownKind { kind, .. } => {
                let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                match crate::diag::suggest(kind, kinds.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? kinds are {}", kinds.join(", ")),
                    None => format!("kinds are {}", kinds.join(", ")),
                }
            }
            _ => "write labels as `//<kind>:<name>`, e.g. `//packs:zlib`".to_string(),
        }
    }
}

pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
}

impl FromStr for Label {
    type Err = LabelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix("//")
            .ok_or_else(|| LabelError::NoSlashes(s.to_string()))?;
        let (kind, name) = rest
            .split_once(':')
            .ok_or_else(|| LabelError::NoColon(s.to_string()))?;
        let kind = Kind::parse(kind).ok_or_else(|| LabelError::UnknownKind {
            label: s.to_string(),
            kind: kind.to_string(),
        })?;
        if !valid_name(name) {
            return Err(LabelError::BadName(name.to_string()));
        }
        Ok(Label::new(kind, name))
    }
}

/// What a command-line target argument selects.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// `//...`
    All,
    /// `//wheels:...` (also `//wheels:*` and `//wheels:all`)
    Kind(Kind),
    Exact(Label),
}

impl Pattern {
    pub fn matches(&self, label: &Label) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Kind(k) => label.kind == *k,
            Pattern::Exact(l) => l == label,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::All => f.write_str("//..."),
            Pattern::Kind(k) => write!(f, "//{k}:..."),
            Pattern::Exact(l) => l.fmt(f),
        }
    }
}

impl FromStr for Pattern {
    type Err = LabelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "//..." || s == "//" {
            return Ok(Pattern::All);
        }
        if let Some(rest) = s.strip_prefix("//")
            && let Some((kind, name)) = rest.split_once(':')
            && matches!(name, "..." | "*" | "all")
        {
            return Kind::parse(kind)
                .map(Pattern::Kind)
                .ok_or_else(|| LabelError::UnknownKind {
                    label: s.to_string(),
                    kind: kind.to_string(),
                });
        }
        s.parse().map(Pattern::Exact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_and_patterns() {
        let l: Label = "//wheels:markupsafe".parse().unwrap();
        assert_eq!(l, Label::new(Kind::Wheel, "markupsafe"));
        assert_eq!(l.to_string(), "//wheels:markupsafe");
        assert_eq!("//pack:zlib".parse::<Label>().unwrap().kind, Kind::Pack);
        assert_eq!("//...".parse::<Pattern>().unwrap(), Pattern::All);
        assert_eq!(
            "//packs:...".parse::<Pattern>().unwrap(),
            Pattern::Kind(Kind::Pack)
        );
        assert!(matches!(
            "//wheel:".parse::<Label>(),
            Err(LabelError::BadName(_))
        ));
        assert!(matches!(
            "wheels:six".parse::<Label>(),
            Err(LabelError::NoSlashes(_))
        ));
        let err = "//wheelz:six".parse::<Label>().unwrap_err();
        assert!(
            err.hint().contains("did you mean `wheels`"),
            "{}",
            err.hint()
        );
        assert!(valid_name("cpython-3.11"));
        assert!(!valid_name("../x"));
    }
}
