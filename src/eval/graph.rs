//! From label patterns to a plain, acyclic build graph.
//!
//! The graph leaves salsa here: [`Graph`] holds cloned derivations in
//! topological order, ready for the scheduler, with no database attached.

use super::db::{Db, Workspace};
use super::drv::Derivation;
use super::queries::{LabelId, derivation, index, lookup};
use crate::diag::{Diagnostic, Loc};
use crate::rules::{Label, Pattern, Target};
use std::collections::HashMap;

#[derive(Clone, Debug)]
pub struct GraphNode {
    pub derivation: Derivation,
    /// Indices of dependencies (always smaller than this node's index).
    pub deps: Vec<usize>,
    /// Named on the command line (or by a pattern), not only needed.
    pub requested: bool,
    pub decl: Loc,
    /// `key = value` locations of the rule's fields, for `explain`.
    pub fields: Vec<(String, Loc)>,
    pub owner: Option<Label>,
}

impl GraphNode {
    pub fn label(&self) -> &Label {
        &self.derivation.label
    }
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Topological order: dependencies first.
    pub nodes: Vec<GraphNode>,
    pub by_label: HashMap<Label, usize>,
}

impl Graph {
    pub fn get(&self, l: &Label) -> Option<&GraphNode> {
        self.by_label.get(l).map(|&i| &self.nodes[i])
    }

    /// Indices of nodes that depend on each node.
    pub fn dependents(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &d in &n.deps {
                out[d].push(i);
            }
        }
        out
    }
}

/// Expand patterns to labels, reporting labels that name nothing.
pub fn resolve_patterns(
    db: &dyn Db,
    ws: Workspace,
    patterns: &[Pattern],
) -> Result<Vec<Label>, Vec<Diagnostic>> {
    let idx = index(db, ws);
    let mut out: Vec<Label> = Vec::new();
    let mut errors = Vec::new();
    for p in patterns {
        match p {
            Pattern::Exact(l) if !idx.map.contains_key(l) => {
                let same = idx
                    .labels
                    .iter()
                    .filter(|c| c.kind == l.kind)
                    .map(|c| c.name.as_str());
                let hint = match crate::diag::suggest(&l.name, same) {
                    Some(s) => format!("did you mean //{}:{s}?", l.kind),
                    None => format!(
                        "`refine query '//{}:...'` lists the {} targets",
                        l.kind,
                        l.kind.singular()
                    ),
                };
                errors.push(Diagnostic::error(format!("{l} names no target")).hint(hint));
            }
            _ => {
                for l in idx.labels.iter().filter(|l| p.matches(l)) {
                    if !out.contains(l) {
                        out.push(l.clone());
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The graph of `roots` and everything they need, in topological order.
/// Call only on a workspace without diagnostics (so there are no cycles).
pub fn load_graph(db: &dyn Db, ws: Workspace, roots: &[Label]) -> Result<Graph, Vec<Diagnostic>> {
    let mut g = Graph::default();
    let mut errors = Vec::new();
    // Iterative post-order DFS: a node is pushed after all its dependencies.
    let mut stack: Vec<(Label, bool)> = roots.iter().rev().map(|l| (l.clone(), false)).collect();
    let mut visiting: HashMap<Label, ()> = HashMap::new();
    while let Some((label, expanded)) = stack.pop() {
        if g.by_label.contains_key(&label) {
            continue;
        }
        let d = match derivation(db, ws, LabelId::new(db, label.clone())) {
            Ok(d) => d,
            Err(e) => {
                errors.extend(e.iter().cloned());
                continue;
            }
        };
        let deps = d.inputs.all();
        if !expanded {
            if visiting.insert(label.clone(), ()).is_some() {
                continue; // a cycle: reported by `cycles`
            }
            stack.push((label.clone(), true));
            for dep in deps.iter().rev() {
                if !g.by_label.contains_key(dep) {
                    stack.push((dep.clone(), false));
                }
            }
            continue;
        }
        let dep_idx: Vec<usize> = deps
            .iter()
            .filter_map(|l| g.by_label.get(l).copied())
            .collect();
        if dep_idx.len() != deps.len() {
            continue; // a dependency failed to evaluate; its errors are reported
        }
        let t = lookup(db, ws, &label);
        let (decl, fields, owner) = match t {
            Some(Target {
                decl,
                fields,
                owner,
                ..
            }) => (decl, fields, owner),
            None => (Loc::new("", crate::diag::Span::default()), Vec::new(), None),
        };
        g.by_label.insert(label.clone(), g.nodes.len());
        g.nodes.push(GraphNode {
            derivation: d.clone(),
            deps: dep_idx,
            requested: roots.contains(&label),
            decl,
            fields,
            owner,
        });
    }
    if errors.is_empty() {
        Ok(g)
    } else {
        errors.dedup();
        Err(errors)
    }
}

/// Dependency cycles among all targets, each reported once with the whole
/// cycle and where each edge is written.
pub fn cycles(db: &dyn Db, ws: Workspace) -> Vec<Diagnostic> {
    let idx = index(db, ws);
    let deps_of = |l: &Label| -> Vec<Label> {
        match derivation(db, ws, LabelId::new(db, l.clone())) {
            Ok(d) => d.inputs.all(),
            Err(_) => Vec::new(),
        }
    };
    // 0 = unvisited, 1 = on stack, 2 = done
    let mut state: HashMap<Label, u8> = HashMap::new();
    let mut out = Vec::new();
    let mut reported: Vec<Vec<Label>> = Vec::new();
    for start in &idx.labels {
        if state.get(start).copied().unwrap_or(0) != 0 {
            continue;
        }
        // Explicit DFS with the path kept for reporting.
        let mut path: Vec<(Label, Vec<Label>, usize)> = vec![(start.clone(), deps_of(start), 0)];
        state.insert(start.clone(), 1);
        while let Some((node, deps, i)) = path.last_mut() {
            if *i >= deps.len() {
                state.insert(node.clone(), 2);
                path.pop();
                continue;
            }
            let next = deps[*i].clone();
            *i += 1;
            match state.get(&next).copied().unwrap_or(0) {
                0 => {
                    state.insert(next.clone(), 1);
                    let nd = deps_of(&next);
                    path.push((next, nd, 0));
                }
                1 => {
                    let pos = path.iter().position(|(l, _, _)| *l == next).unwrap_or(0);
                    let mut cycle: Vec<Label> =
                        path[pos..].iter().map(|(l, _, _)| l.clone()).collect();
                    // Report each cycle once, whatever node it was entered from.
                    let mut canon = cycle.clone();
                    canon.sort();
                    if !reported.contains(&canon) {
                        reported.push(canon);
                        cycle.push(next.clone());
                        out.push(cycle_diagnostic(db, ws, &cycle));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn cycle_diagnostic(db: &dyn Db, ws: Workspace, cycle: &[Label]) -> Diagnostic {
    let text: Vec<String> = cycle.iter().map(|l| l.to_string()).collect();
    let mut d = Diagnostic::error(format!("dependency cycle: {}", text.join(" -> "))).hint(
        "a target cannot need itself, directly or through others: remove one of these dependencies",
    );
    for pair in cycle.windows(2) {
        let (from, to) = (&pair[0], &pair[1]);
        let Some(t) = lookup(db, ws, from) else {
            continue;
        };
        let loc = t
            .references()
            .into_iter()
            .find(|r| &r.value == to)
            .map(|r| r.loc.clone())
            .unwrap_or(t.decl.clone());
        if d.loc.is_none() {
            d = d.at(loc).label(format!("{from} needs {to}"));
        } else {
            d = d.related(loc, format!("{from} needs {to}"));
        }
    }
    d
}
