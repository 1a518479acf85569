//! A spanned TOML tree and a checked reader over it.
//!
//! Parsing keeps spans and does no logic (the "stage 0" of rattler-build):
//! [`parse`] turns a file into an owned tree where every key and value
//! carries its byte span. [`Reader`] is how lowering reads a table: it
//! reports wrong types and unknown keys with their spans, and keeps going so
//! that one run reports every error of a file.

use crate::diag::{Diagnostic, Loc, Span, suggest};
use crate::rules::label::Label;
use std::collections::BTreeMap;
use toml::de::{DeTable, DeValue};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    pub span: Span,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(String),
    Bool(bool),
    Datetime(String),
    Array(Vec<Node>),
    Table(Table),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a boolean",
            Value::Datetime(_) => "a datetime",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Entry {
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            span: Span::default(),
            value: Value::Bool(false),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Table {
    /// Entries in file order.
    pub entries: Vec<Entry>,
}

impl Table {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// Parse a TOML file into a spanned tree. Syntax errors come back as
/// diagnostics; the tree is `None` when there were any.
pub fn parse(file: &str, text: &str) -> (Option<Node>, Vec<Diagnostic>) {
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        let diags = errors
            .iter()
            .map(|e| {
                let span = e.span().map(Span::from).unwrap_or_default();
                Diagnostic::error(format!("invalid TOML: {}", e.message().trim_end()))
                    .at(Loc::new(file, span))
                    .hint("fix the syntax; see the TOML specification for tables and inline tables")
            })
            .collect();
        return (None, diags);
    }
    let span = root.span().into();
    let table = convert_table(root.get_ref());
    (
        Some(Node {
            span,
            value: Value::Table(table),
        }),
        Vec::new(),
    )
}

fn convert_table(t: &DeTable<'_>) -> Table {
    Table {
        entries: t
            .iter()
            .map(|(k, v)| Entry {
                key: k.get_ref().to_string(),
                key_span: k.span().into(),
                value: convert(v.get_ref(), v.span().into()),
            })
            .collect(),
    }
}

fn convert(v: &DeValue<'_>, span: Span) -> Node {
    let value = match v {
        DeValue::String(s) => Value::Str(s.to_string()),
        DeValue::Integer(i) => match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
            Ok(n) => Value::Int(n),
            Err(_) => Value::Float(i.as_str().to_string()),
        },
        DeValue::Float(f) => Value::Float(f.as_str().to_string()),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::Datetime(d.to_string()),
        DeValue::Array(a) => Value::Array(
            a.iter()
                .map(|n| convert(n.get_ref(), n.span().into()))
                .collect(),
        ),
        DeValue::Table(t) => Value::Table(convert_table(t)),
    };
    Node { span, value }
}

/// A value with the place it came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Spanned<T> {
    pub value: T,
    pub loc: Loc,
}

/// Reads one table of a rule, checking types and collecting errors.
pub struct Reader<'t, 'd> {
    pub file: &'t str,
    pub table: &'t Table,
    /// The span of the table itself (its header or inline table).
    pub span: Span,
    /// What the table is, for messages: "//wheels:six", "[platform]".
    pub what: String,
    used: Vec<bool>,
    pub diags: &'d mut Vec<Diagnostic>,
}

impl<'t, 'd> Reader<'t, 'd> {
    pub fn new(
        file: &'t str,
        table: &'t Table,
        span: Span,
        what: impl Into<String>,
        diags: &'d mut Vec<Diagnostic>,
    ) -> Self {
        Reader {
            file,
            table,
            span,
            what: what.into(),
            used: vec![false; table.entries.len()],
            diags,
        }
    }

    pub fn loc(&self, span: Span) -> Loc {
        Loc::new(self.file, span)
    }

    /// The loc of the table itself.
    pub fn table_loc(&self) -> Loc {
        self.loc(self.span)
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.get(key).is_some()
    }

    /// Take an entry, marking it used.
    pub fn entry(&mut self, key: &str) -> Option<&'t Entry> {
        let i = self.table.entries.iter().position(|e| e.key == key)?;
        self.used[i] = true;
        Some(&self.table.entries[i])
    }

    /// The loc of the whole `key = value` for a key, if present.
    pub fn key_loc(&self, key: &str) -> Option<Loc> {
        self.table.get(key).map(|e| {
            self.loc(Span::new(
                e.key_span.start,
                e.value.span.end.max(e.key_span.end),
            ))
        })
    }

    pub fn error_at(&mut self, span: Span, message: impl Into<String>, hint: Option<String>) {
        let mut d = Diagnostic::error(message).at(self.loc(span));
        if let Some(h) = hint {
            d = d.hint(h);
        }
        self.diags.push(d);
    }

    fn type_error(&mut self, e: &Entry, expected: &str) {
        let msg = format!(
            "`{}` in {} must be {expected}, found {}",
            e.key,
            self.what,
            e.value.value.type_name()
        );
        self.error_at(e.value.span, msg, None);
    }

    /// Report a missing required key (unless it is present with a wrong
    /// type, which was reported already).
    pub fn missing(&mut self, key: &str, hint: &str) {
        if self.has(key) {
            return;
        }
        let msg = format!("{} is missing required key `{key}`", self.what);
        let span = self.span;
        self.error_at(span, msg, Some(hint.to_string()));
    }

    pub fn str(&mut self, key: &str) -> Option<Spanned<String>> {
        let e = self.entry(key)?;
        match &e.value.value {
            Value::Str(s) => Some(Spanned {
                value: s.clone(),
                loc: self.loc(e.value.span),
            }),
            _ => {
                self.type_error(e, "a string");
                None
            }
        }
    }

    pub fn bool(&mut self, key: &str) -> Option<bool> {
        let e = self.entry(key)?;
        match &e.value.value {
            Value::Bool(b) => Some(*b),
            _ => {
                self.type_error(e, "a boolean (true or false)");
                None
            }
        }
    }

    pub fn int(&mut self, key: &str) -> Option<Spanned<i64>> {
        let e = self.entry(key)?;
        match &e.value.value {
            Value::Int(n) => Some(Spanned {
                value: *n,
                loc: self.loc(e.value.span),
            }),
            _ => {
                self.type_error(e, "an integer");
                None
            }
        }
    }

    /// An array of strings; a single string is accepted as a one-element list.
    pub fn str_list(&mut self, key: &str) -> Option<Vec<Spanned<String>>> {
        let e = self.entry(key)?;
        match &e.value.value {
            Value::Str(s) => Some(vec![Spanned {
                value: s.clone(),
                loc: self.loc(e.value.span),
            }]),
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    match &item.value {
                        Value::Str(s) => out.push(Spanned {
                            value: s.clone(),
                            loc: self.loc(item.span),
                        }),
                        other => {
                            let msg = format!(
                                "items of `{}` in {} must be strings, found {}",
                                e.key,
                                self.what,
                                other.type_name()
                            );
                            self.error_at(item.span, msg, None);
                        }
                    }
                }
                Some(out)
            }
            _ => {
                self.type_error(e, "an array of strings");
                None
            }
        }
    }

    /// A table of string values (`env = { CFLAGS = "-O2" }`).
    pub fn str_map(&mut self, key: &str) -> Option<BTreeMap<String, Spanned<String>>> {
        let e = self.entry(key)?;
        let Value::Table(t) = &e.value.value else {
            self.type_error(e, "a table of strings");
            return None;
        };
        let mut out = BTreeMap::new();
        for item in &t.entries {
            match &item.value.value {
                Value::Str(s) => {
                    out.insert(
                        item.key.clone(),
                        Spanned {
                            value: s.clone(),
                            loc: self.loc(item.value.span),
                        },
                    );
                }
                Value::Int(n) => {
                    out.insert(
                        item.key.clone(),
                        Spanned {
                            value: n.to_string(),
                            loc: self.loc(item.value.span),
                        },
                    );
                }
                other => {
                    let msg = format!(
                        "`{}.{}` in {} must be a string, found {}",
                        e.key,
                        item.key,
                        self.what,
                        other.type_name()
                    );
                    self.error_at(item.value.span, msg, None);
                }
            }
        }
        Some(out)
    }

    /// A table whose values are strings or arrays of strings.
    pub fn str_list_map(&mut self, key: &str) -> Option<BTreeMap<String, Vec<String>>> {
        let e = self.entry(key)?;
        let Value::Table(t) = &e.value.value else {
            self.type_error(e, "a table of strings or arrays of strings");
            return None;
        };
        let mut out = BTreeMap::new();
        for item in &t.entries {
            let values = match &item.value.value {
                Value::Str(s) => vec![s.clone()],
                Value::Array(a) if a.iter().all(|n| matches!(n.value, Value::Str(_))) => a
                    .iter()
                    .filter_map(|n| match &n.value {
                        Value::Str(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect(),
                other => {
                    let msg = format!(
                        "`{}.{}` in {} must be a string or an array of strings, found {}",
                        e.key,
                        item.key,
                        self.what,
                        other.type_name()
                    );
                    self.error_at(item.value.span, msg, None);
                    continue;
                }
            };
            out.insert(item.key.clone(), values);
        }
        Some(out)
    }

    pub fn label(&mut self, key: &str) -> Option<Spanned<Label>> {
        let s = self.str(key)?;
        self.parse_label(s)
    }

    pub fn labels(&mut self, key: &str) -> Option<Vec<Spanned<Label>>> {
        let list = self.str_list(key)?;
        Some(
            list.into_iter()
                .filter_map(|s| self.parse_label(s))
                .collect(),
        )
    }

    pub fn parse_label(&mut self, s: Spanned<String>) -> Option<Spanned<Label>> {
        match s.value.parse::<Label>() {
            Ok(l) => Some(Spanned {
                value: l,
                loc: s.loc,
            }),
            Err(e) => {
                self.diags
                    .push(Diagnostic::error(e.to_string()).at(s.loc).hint(e.hint()));
                None
            }
        }
    }

    /// Report every key that was not read, with a suggestion.
    pub fn finish(self, known: &[&str]) {
        for (i, e) in self.table.entries.iter().enumerate() {
            if self.used[i] {
                continue;
            }
            let hint = match suggest(&e.key, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? known keys: {}", known.join(", ")),
                None => format!("known keys: {}", known.join(", ")),
            };
            self.diags.push(
                Diagnostic::error(format!("unknown key `{}` in {}", e.key, self.what))
                    .at(Loc::new(self.file, e.key_span))
                    .label("unknown key")
                    .hint(hint),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_spans_of_keys_and_values() {
        let text = "[wheels.six]\nversion = \"1.16.0\"\n";
        let (node, diags) = parse("f.toml", text);
        assert!(diags.is_empty());
        let Value::Table(root) = node.unwrap().value else {
            panic!()
        };
        let Value::Table(wheels) = &root.get("wheels").unwrap().value.value else {
            panic!()
        };
        let six = wheels.get("six").unwrap();
        assert_eq!(&text[six.key_span.start..six.key_span.end], "six");
        let Value::Table(t) = &six.value.value else {
            panic!()
        };
        let v = t.get("version").unwrap();
        assert_eq!(&text[v.value.span.start..v.value.span.end], "\"1.16.0\"");
    }

    #[test]
    fn syntax_errors_have_locations() {
        let (node, diags) = parse("f.toml", "[a]\nb = \n");
        assert!(node.is_none());
        assert_eq!(diags.len(), 1);
        assert!(diags[0].loc.is_some());
    }

    #[test]
    fn reader_reports_unknown_keys_and_types() {
        let text = "envv = 1\nversion = 3\nname = \"x\"\n";
        let (node, _) = parse("f.toml", text);
        let Value::Table(t) = node.unwrap().value else {
            panic!()
        };
        let mut diags = Vec::new();
        let mut r = Reader::new("f.toml", &t, Span::default(), "//wheels:x", &mut diags);
        assert_eq!(r.str("name").unwrap().value, "x");
        assert!(r.str("version").is_none());
        r.finish(&["env", "name", "version"]);
        assert_eq!(diags.len(), 2);
        assert!(diags[0].message.contains("must be a string"));
        assert!(diags[1].message.contains("unknown key `envv`"));
        assert!(
            diags[1]
                .hint
                .as_deref()
                .unwrap()
                .contains("did you mean `env`")
        );
    }
}
