//! refine: an incremental, content-addressed build engine for Python wheels.
pub mod cli;
pub mod diag;
pub mod error;
pub mod eval;
pub mod exec;
pub mod fetch;
pub mod key;
pub mod ops;
pub mod remote;
pub mod rules;
pub mod sched;
pub mod store;
pub mod wheel;
pub mod workspace;
