//! refine: an incremental, content-addressed build engine for Python wheels.
pub mod diag;
pub mod eval;
pub mod exec;
pub mod fetch;
pub mod key;
pub mod rules;
pub mod store;
pub mod workspace;
