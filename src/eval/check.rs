//! The whole-workspace check: every problem, in file order.

use super::db::{Db, Workspace};
use super::queries::{LabelId, config, derivation, index, located_errors, lower_file};
use crate::diag::{Diagnostic, Loc};

/// Every problem in the workspace, in file order: syntax and schema errors,
/// duplicate labels, unresolved references, cycles.
#[salsa::tracked(returns(ref))]
pub fn workspace_diagnostics(db: &dyn Db, ws: Workspace) -> Vec<Diagnostic> {
    db.log_query("workspace_diagnostics", &"workspace");
    let mut out = Vec::new();
    if let Err(d) = config(db, ws) {
        out.extend(d.iter().cloned());
        return out;
    }
    let mut catalog_files: Vec<Loc> = Vec::new();
    for &file in ws.files(db) {
        let lowered = lower_file(db, file);
        out.extend(lowered.diags.iter().cloned());
        // One catalog in the workspace (the base's stands behind it).
        if let Some(l) = &lowered.catalog_loc
            && !super::queries::is_builtin(file.path(db))
        {
            catalog_files.push(l.clone());
        }
    }
    if catalog_files.len() > 1 {
        let mut d = Diagnostic::error("more than one `[catalog]` table")
            .at(catalog_files[1].clone())
            .hint("the package → packs catalog lives in one place: merge the tables");
        d = d.related(catalog_files[0].clone(), "first `[catalog]` here");
        out.push(d);
    }
    let idx = index(db, ws);
    for (label, files) in &idx.duplicates {
        let locs: Vec<Loc> = files
            .iter()
            .flat_map(|f| {
                lower_file(db, *f)
                    .targets
                    .iter()
                    .filter(|t| &t.label == label)
                    .map(|t| t.decl.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut d = Diagnostic::error(format!("{label} is declared {} times", locs.len()))
            .at_opt(locs.get(1).cloned())
            .label("declared again here")
            .hint("labels are unique across the workspace: rename or remove one");
        if let Some(first) = locs.first() {
            d = d.related(first.clone(), "first declared here");
        }
        out.push(d);
    }
    // Unresolved references in WORKSPACE.toml's defaults.
    if let Ok(cfg) = config(db, ws) {
        let defaults = &cfg.defaults;
        for r in defaults
            .image
            .iter()
            .chain(&defaults.runtime)
            .chain(&defaults.build_requires)
            .chain(&defaults.repair_tools)
        {
            if !idx.map.contains_key(&r.value) {
                out.push(
                    Diagnostic::error(format!("{} names no target", r.value))
                        .at(r.loc.clone())
                        .label("unknown label")
                        .hint("declare it in a rule file or fix the label"),
                );
            }
        }
    }
    for label in &idx.labels {
        let id = LabelId::new(db, label.clone());
        if derivation(db, ws, id).is_err() {
            for diag in located_errors(db, ws, id) {
                if !out.contains(&diag) {
                    out.push(diag);
                }
            }
        }
    }
    out.extend(super::cycles::cycles(db, ws));
    // File order, then position: the order a reader goes through the files.
    out.sort_by(|a, b| match (&a.loc, &b.loc) {
        (Some(x), Some(y)) => (&x.file, x.span.start).cmp(&(&y.file, y.span.start)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    out
}
