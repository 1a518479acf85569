//! Evaluation: the salsa database, its inputs, and the tracked queries that
//! turn rule files into derivations.
//!
//! Inputs are file contents: `WORKSPACE.toml`, every rule file, and each
//! recipe file (read lazily, the first time a derivation names it).
//! Tracked queries parse and lower files, index labels, resolve references
//! and compute each target's [`Derivation`]: everything that goes into its
//! key except the output digests of its dependencies, which only a build
//! (or the store) can know.
//!
//! Salsa computes; it never runs builds, touches the store or the network.
//! Errors crossing salsa are plain [`Diagnostic`](crate::diag::Diagnostic)
//! data. Queries log their own execution when asked to, so tests can assert
//! exactly what re-ran after an edit.

mod check;
mod cycles;
mod db;
mod derive;
mod drv;
mod graph;
mod queries;

pub use check::workspace_diagnostics;
pub use db::{AuxFile, Database, Db, Overrides, SourceFile, Workspace};
pub use drv::{Action, CrossAction, Derivation, Inputs, RecipeFiles};
pub use graph::{
    Detail, Graph, GraphNode, NodeHead, details_decoded, load_graph, resolve_in, resolve_patterns,
};
pub use queries::{
    Index, LabelId, catalog, catalog_config_settings, catalog_env, catalog_policies, config,
    declared, derivation, index, is_builtin, lookup, lower_file, pack_closure, pack_deps,
    parse_file, platform, semantic_config, semantic_target, target,
};
