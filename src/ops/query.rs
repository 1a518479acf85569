//! `refine query` and `refine graph`: the build graph as data.
//!
//! Query expressions, as in Bazel:
//!
//! ```text
//! //wheels:numpy            a label or pattern (//..., //packs:...)
//! deps(EXPR)                EXPR and everything it needs
//! rdeps(EXPR)               EXPR and everything in the workspace that needs it
//! kind(pack, EXPR)          the targets of EXPR of one kind
//! ```

use super::Session;
use crate::error::{Error, Result};
use crate::eval::Graph;
use crate::rules::{Kind, Label};
use std::collections::BTreeSet;

#[derive(Debug, PartialEq, Eq)]
enum Expr {
    Pattern(String),
    Deps(Box<Expr>),
    Rdeps(Box<Expr>),
    Kind(Kind, Box<Expr>),
}

fn parse(s: &str) -> std::result::Result<Expr, String> {
    let s = s.trim();
    let call = |name: &str| -> Option<&str> {
        s.strip_prefix(name)
            .map(str::trim_start)
            .and_then(|r| r.strip_prefix('('))
            .and_then(|r| r.strip_suffix(')'))
    };
    if let Some(inner) = call("deps") {
        return Ok(Expr::Deps(Box::new(parse(inner)?)));
    }
    if let Some(inner) = call("rdeps") {
        return Ok(Expr::Rdeps(Box::new(parse(inner)?)));
    }
    if let Some(inner) = call("kind") {
        let (k, rest) = inner.split_once(',').ok_or_else(|| {
            "kind() takes a kind and an expression: kind(pack, //...)".to_string()
        })?;
        let kind = Kind::parse(k.trim()).ok_or_else(|| format!("`{}` is not a kind", k.trim()))?;
        return Ok(Expr::Kind(kind, Box::new(parse(rest)?)));
    }
    if s.starts_with("//") {
        return Ok(Expr::Pattern(s.to_string()));
    }
    Err(format!(
        "cannot read `{s}`: expected a label, deps(…), rdeps(…) or kind(…, …)"
    ))
}

fn eval(s: &Session, full: &Graph, e: &Expr) -> Result<BTreeSet<Label>> {
    Ok(match e {
        Expr::Pattern(p) => s.resolve(std::slice::from_ref(p))?.into_iter().collect(),
        Expr::Deps(inner) => {
            let roots: Vec<Label> = eval(s, full, inner)?.into_iter().collect();
            full.subgraph(&roots)
                .nodes
                .iter()
                .map(|n| n.label().clone())
                .collect()
        }
        Expr::Rdeps(inner) => {
            let roots = eval(s, full, inner)?;
            let dependents = full.dependents();
            let mut out: BTreeSet<Label> = BTreeSet::new();
            let mut work: Vec<usize> = roots
                .iter()
                .filter_map(|l| full.by_label.get(l).copied())
                .collect();
            while let Some(i) = work.pop() {
                if out.insert(full.nodes[i].label().clone()) {
                    work.extend(dependents[i].iter().copied());
                }
            }
            out
        }
        Expr::Kind(k, inner) => eval(s, full, inner)?
            .into_iter()
            .filter(|l| l.kind == *k)
            .collect(),
    })
}

/// The labels an expression names, sorted.
pub fn query(s: &Session, expr: &str) -> Result<Vec<Label>> {
    let e = parse(expr).map_err(|m| {
        Error::user(format!("query: {m}"))
            .hint("e.g. 'deps(//wheels:numpy)', 'rdeps(//packs:zlib)', 'kind(pack, //...)'")
    })?;
    let full = s.graph(s.labels())?;
    Ok(eval(s, &full, &e)?.into_iter().collect())
}

/// The graph of targets and what they need, as Graphviz dot.
pub fn dot(g: &Graph) -> String {
    let mut out = String::from(
        "digraph refine {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for n in &g.nodes {
        let shape = match n.label().kind {
            Kind::Source => "note",
            Kind::Image => "box3d",
            Kind::Runtime => "component",
            Kind::Pack => "folder",
            Kind::Wheel => "box",
            Kind::Repair => "box",
            Kind::Set => "folder",
            Kind::Test => "note",
        };
        let style = if n.requested { ", style=bold" } else { "" };
        out.push_str(&format!("  \"{}\" [shape={shape}{style}];\n", n.label()));
    }
    for n in &g.nodes {
        for &d in &n.deps {
            out.push_str(&format!(
                "  \"{}\" -> \"{}\";\n",
                n.label(),
                g.nodes[d].label()
            ));
        }
    }
    out.push_str("}\n");
    out
}

/// The graph as JSON: nodes (label, kind, version, requested) and edges.
pub fn json(g: &Graph) -> serde_json::Value {
    serde_json::json!({
        "nodes": g.nodes.iter().map(|n| serde_json::json!({
            "label": n.label().to_string(),
            "kind": n.label().kind.singular(),
            "version": n.derivation().version,
            "requested": n.requested,
            "deps": n.deps.iter().map(|&d| g.nodes[d].label().to_string()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "edges": g.nodes.iter().flat_map(|n| n.deps.iter().map(move |&d| serde_json::json!({
            "from": n.label().to_string(),
            "to": g.nodes[d].label().to_string(),
        }))).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_expressions() {
        assert_eq!(
            parse("kind(pack, deps(//wheels:numpy))").unwrap(),
            Expr::Kind(
                Kind::Pack,
                Box::new(Expr::Deps(Box::new(Expr::Pattern("//wheels:numpy".into()))))
            )
        );
        assert_eq!(
            parse(" rdeps( //packs:zlib ) ").unwrap(),
            Expr::Rdeps(Box::new(Expr::Pattern("//packs:zlib".into())))
        );
        assert!(parse("kind(gadget, //...)").is_err());
        assert!(parse("wheels").is_err());
    }
}
