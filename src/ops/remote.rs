//! Opening the remote store of a run, if there is one.

use super::Session;
use crate::error::{Error, Result};
use crate::remote::Remote;
use crate::sched::EventSink;

/// The remote for a run: `--remote`, else `[store] remote`; none with `--offline`.
pub fn open(
    s: &Session,
    flag: Option<&str>,
    offline: bool,
    _insecure: bool,
    _sink: &dyn EventSink,
) -> Result<Option<Box<dyn Remote>>> {
    if offline {
        return Ok(None);
    }
    match flag.or(s.config.store.remote.as_deref()) {
        None => Ok(None),
        Some(url) => Err(Error::user(format!(
            "remote {url}: OCI remotes are not built into this version"
        ))),
    }
}
