//! `refine store ls|verify` and `refine gc`: looking after the local store
//! (and listing the remote's).

use super::Session;
use crate::error::{Error, Result};
use crate::store::maint;

pub use maint::{Entry, GcReport, VerifyReport};

/// Every result of the local store, oldest first, with the store's root.
pub fn list(s: &Session) -> Result<(Vec<Entry>, std::path::PathBuf)> {
    let store = s.open_store()?;
    Ok((maint::entries(&store), store.root().to_path_buf()))
}

/// Each repository under the remote's prefix with its tags.
pub type RemoteListing = Vec<(String, Vec<String>)>;

/// Every `repository:tag` under the remote's prefix, and the remote's host.
pub fn list_remote(
    s: &Session,
    url: Option<&str>,
    insecure: bool,
) -> Result<(String, RemoteListing)> {
    let r = super::remote::open(s, url, false, insecure)?.ok_or_else(|| {
        Error::user("no remote store is configured").hint("pass --remote oci://HOST[:PORT]/PREFIX")
    })?;
    let list = r
        .list()
        .map_err(|e| Error::env(format!("remote {}: {e}", r.url)))?;
    Ok((r.url.host.clone(), list))
}

/// Recheck every digest of the local store; drop what is damaged.
pub fn verify(s: &Session) -> Result<VerifyReport> {
    let store = s.open_store()?;
    Ok(maint::verify(&store)?)
}

/// What `refine gc` keeps: at most `max_size` bytes, nothing older than
/// `max_age` seconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct GcLimits {
    pub max_size: Option<u64>,
    pub max_age: Option<u64>,
}

/// Parse `--max-size` and `--max-age` (user errors name the flag).
pub fn gc_limits(max_size: Option<&str>, max_age: Option<&str>) -> Result<GcLimits> {
    let max_size = max_size
        .map(|v| {
            crate::rules::units::parse_size(v).map_err(|e| {
                Error::user(format!("--max-size: {e}"))
                    .hint("write sizes like 500M, 20G (10⁹ bytes) or 20GiB (2³⁰ bytes)")
            })
        })
        .transpose()?;
    let max_age = max_age
        .map(|v| {
            crate::rules::units::parse_duration(v).map_err(|e| {
                Error::user(format!("--max-age: {e}")).hint("write ages like 12h or 30d")
            })
        })
        .transpose()?;
    if max_size.is_none() && max_age.is_none() {
        return Err(Error::user("gc needs --max-size or --max-age")
            .hint("e.g. `refine gc --max-size 20G --max-age 30d --dry-run`"));
    }
    Ok(GcLimits { max_size, max_age })
}

pub fn gc(s: &Session, limits: GcLimits, dry_run: bool) -> Result<GcReport> {
    let store = s.open_store()?;
    Ok(maint::gc(&store, limits.max_size, limits.max_age, dry_run)?)
}
