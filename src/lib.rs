//! refine: an incremental, content-addressed build engine for Python wheels.
pub mod cli;
pub mod diag;
pub mod error;
pub mod eval;
pub mod exec;
pub mod fetch;
pub mod history;
pub mod import;
pub mod index;
pub mod key;
pub mod ops;
pub mod platform;
pub mod reapi;
pub mod remote;
pub mod rules;
pub mod runid;
pub mod sched;
pub mod serve;
pub mod store;
#[cfg(feature = "fake-executor")]
pub mod testing;
pub mod wheel;
pub mod workspace;

/// Free `value` on a thread of its own. What a run leaves behind (the
/// store's indexes, every node's result: tens of megabytes for a large
/// workspace) takes tens of milliseconds to free; a one-shot command exits
/// without waiting for it, a long-lived one frees it beside its next work.
/// Only for values whose drop writes nothing that must be on disk first
/// (flush them before).
pub fn drop_in_background<T: Send + 'static>(value: T) {
    if let Err(e) = std::thread::Builder::new()
        .name("refine-free".into())
        .spawn(move || drop(value))
    {
        // No thread to be had: freed here, as any value would be.
        drop(e);
    }
}
