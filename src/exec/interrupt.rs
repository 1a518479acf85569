//! SIGINT and SIGTERM during a build. The first asks the run to stop: no
//! new node starts, running containers and image builds are stopped, the
//! interrupted nodes are not cached, staging directories are removed, and
//! refine exits with 130. A second signal ends refine at once.
//!
//! Only verbs that run builds install this; the others keep the default
//! (die at once), which loses nothing since they write atomically.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

fn flag() -> &'static Arc<AtomicBool> {
    static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// Catch SIGINT and SIGTERM for the rest of the process.
pub fn install() {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The order matters: the shutdown check sees the flag as it was
        // before this signal, so only a second one exits.
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, flag().clone());
        let _ = signal_hook::flag::register(sig, flag().clone());
    }
}

/// Whether the user asked the run to stop.
pub fn requested() -> bool {
    flag().load(Ordering::SeqCst)
}
