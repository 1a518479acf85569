//! Rules: the schema of rule files and `WORKSPACE.toml`, lowered to typed
//! targets with the places they came from.
//!
//! Two stages, kept apart: [`toml`] parses text into a spanned tree and does
//! no logic; [`lower`] and [`config`] read that tree into typed rules,
//! collecting every error with its `file:line:col`. Nothing here resolves a
//! label or reads another file: that is evaluation's job.

pub mod config;
pub mod label;
pub mod lower;
pub mod model;
pub mod toml;
pub mod units;

pub use config::Config;
pub use label::{Kind, Label, Pattern};
pub use model::*;
