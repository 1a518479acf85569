//! Dependency cycles among all targets, each reported once with the whole
//! cycle and where each of its edges is written.

use super::db::{Db, Workspace};
use super::queries::{LabelId, derivation, index, lookup};
use crate::diag::Diagnostic;
use crate::rules::Label;
use std::collections::HashMap;

/// Dependency cycles among all targets, each reported once with the whole
/// cycle and where each edge is written.
pub fn cycles(db: &dyn Db, ws: Workspace) -> Vec<Diagnostic> {
    let idx = index(db, ws);
    let n = idx.labels.len();
    let pos: HashMap<&Label, usize> = idx.labels.iter().enumerate().map(|(i, l)| (l, i)).collect();
    let edges: Vec<Vec<usize>> = idx
        .labels
        .iter()
        .map(|l| match derivation(db, ws, LabelId::new(db, l.clone())) {
            Ok(d) => d
                .inputs
                .all()
                .iter()
                .filter_map(|x| pos.get(x).copied())
                .collect(),
            Err(_) => Vec::new(),
        })
        .collect();
    // 0 = unvisited, 1 = on the stack, 2 = done
    let mut state = vec![0u8; n];
    let mut out = Vec::new();
    let mut reported: Vec<Vec<usize>> = Vec::new();
    for start in 0..n {
        if state[start] != 0 {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (node, ref mut i)) = path.last_mut() {
            let Some(&next) = edges[node].get(*i) else {
                state[node] = 2;
                path.pop();
                continue;
            };
            *i += 1;
            match state[next] {
                0 => {
                    state[next] = 1;
                    path.push((next, 0));
                }
                1 => {
                    let at = path.iter().position(|(x, _)| *x == next).unwrap_or(0);
                    let cycle: Vec<usize> = path[at..].iter().map(|(x, _)| *x).collect();
                    let mut canon = cycle.clone();
                    canon.sort_unstable();
                    if !reported.contains(&canon) {
                        reported.push(canon);
                        let mut labels: Vec<Label> =
                            cycle.iter().map(|&x| idx.labels[x].clone()).collect();
                        labels.push(idx.labels[next].clone());
                        out.push(cycle_diagnostic(db, ws, &labels));
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
