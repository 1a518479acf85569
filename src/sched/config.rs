//! What a run uses and how it behaves: the one value every stage of a
//! node reads (a file of its own, so that the stages need nothing from
//! the scheduler that runs them).

use super::events::EventSink;
use crate::exec::Executor;
use crate::remote::Remote;
use crate::rules::config::SandboxConfig;
use crate::store::LocalStore;
use std::collections::HashSet;

/// What a run uses and how it behaves.
pub struct RunConfig<'a> {
    /// The workspace's files and the built-in base behind them.
    pub sources: &'a crate::workspace::Files,
    pub store: &'a LocalStore,
    pub exec: &'a dyn Executor,
    pub remote: Option<&'a dyn Remote>,
    /// An REAPI server whose workers run the build steps (`[remote]
    /// execution`, `--remote-executor`); images are made here.
    pub remote_exec: Option<&'a crate::reapi::RemoteExecutor>,
    /// Push what was built (or pulled is not pushed back).
    pub push: bool,
    pub sandbox: &'a SandboxConfig,
    pub jobs: usize,
    pub keep_going: bool,
    /// `--skip-known-failures`: a node whose last build at the same key
    /// failed is not built again; it fails at once with that failure's log.
    pub skip_known_failures: bool,
    /// Rebuild these nodes even when the cache has them (`refine verify`),
    /// without recording the result in the action cache.
    pub force: HashSet<usize>,
    pub sink: &'a dyn EventSink,
    /// Recorded build durations (ms) by (arch, label), from the history:
    /// the scheduler's estimates, before the store's last build. Asked
    /// for only when something is left to build (a no-op never reads
    /// them).
    pub durations: &'a (dyn Fn() -> Durations + Sync),
    /// The out directory's stamps: a wheel found there as it was last
    /// checked is not hashed again at lookup (it is not copied from the
    /// store either).
    pub delivered: Option<&'a crate::store::delivered::Delivered>,
}

/// Build durations (ms) by (arch, label).
pub type Durations = std::collections::HashMap<(String, String), u64>;

/// No recorded durations.
pub fn no_durations() -> Durations {
    Durations::new()
}
