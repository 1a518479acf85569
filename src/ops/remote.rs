//! Opening the remote store of a run, if there is one.

use super::Session;
use crate::error::{Error, Result};
use crate::remote::oci::{OciRemote, OciUrl};

/// The remote for a run: `--remote`, else `[store] remote`; none with
/// `--offline`.
pub fn open(
    s: &Session,
    flag: Option<&str>,
    offline: bool,
    insecure: bool,
) -> Result<Option<OciRemote>> {
    if offline {
        return Ok(None);
    }
    let Some(url) = flag.or(s.config.store.remote.as_deref()) else {
        return Ok(None);
    };
    Ok(Some(open_oci(url, insecure || s.config.store.insecure)?))
}

/// An OCI remote from its URL, or a user error naming the flag.
pub fn open_oci(url: &str, insecure: bool) -> Result<OciRemote> {
    let u = OciUrl::parse(url).map_err(|e| {
        Error::user(format!("--remote: {e}")).hint("write the remote as oci://HOST[:PORT]/PREFIX")
    })?;
    OciRemote::new(u, insecure).map_err(|e| Error::env(e.0))
}
