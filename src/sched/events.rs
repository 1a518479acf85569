//! Events of a run, for the printer (`--json` streams them as JSON lines).

use super::result::NodeResult;
use crate::rules::Label;

pub enum Event<'a> {
    Planned {
        total: usize,
    },
    Started {
        label: &'a Label,
    },
    /// A node's build began: its log is being written there.
    Building {
        label: &'a Label,
        log: &'a std::path::Path,
    },
    Finished {
        result: &'a NodeResult,
        done: usize,
        total: usize,
    },
    Warning {
        label: Option<&'a Label>,
        message: String,
    },
}

pub trait EventSink: Sync {
    fn event(&self, e: &Event<'_>);
}

pub struct NullSink;

impl EventSink for NullSink {
    fn event(&self, _e: &Event<'_>) {}
}
