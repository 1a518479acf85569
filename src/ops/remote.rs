//! Opening the remote store of a run, if there is one, with whose results
//! it trusts and what this machine signs its pushes with.

use super::Session;
use crate::error::{Error, Result};
use crate::key::sign::{PublicKey, SigningKeyFile, Trust};
use crate::remote::oci::{OciRemote, OciUrl};
use std::path::PathBuf;

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
    let u = OciUrl::parse(url).map_err(|e| {
        Error::user(format!("--remote: {e}")).hint("write the remote as oci://HOST[:PORT]/PREFIX")
    })?;
    let signer = signing_key(s)?;
    let trust = trust(s, signer.as_ref())?;
    let r = OciRemote::new(u, insecure || s.config.store.insecure, trust, signer)
        .map_err(Error::from)?;
    Ok(Some(r))
}

/// Where this machine's signing key is: `--signing-key` /
/// `REFINE_SIGNING_KEY`, else `<store>/keys/signing.key`.
pub fn signing_key_path(s: &Session) -> PathBuf {
    s.signing_key
        .clone()
        .unwrap_or_else(|| s.store_path.join("keys/signing.key"))
}

/// This machine's signing key, if it has one (a named one must exist).
pub fn signing_key(s: &Session) -> Result<Option<SigningKeyFile>> {
    let path = signing_key_path(s);
    if s.signing_key.is_none() && !path.exists() {
        return Ok(None);
    }
    SigningKeyFile::load(&path).map(Some).map_err(|e| {
        Error::user(format!("--signing-key: {e}"))
            .hint("make one with `refine key generate`, or name an existing key file")
    })
}

/// `[store] trusted_keys`, `--trusted-key`s, and this machine's own key.
fn trust(s: &Session, own: Option<&SigningKeyFile>) -> Result<Trust> {
    let mut keys = Vec::new();
    for k in &s.config.store.trusted_keys {
        keys.push(PublicKey::parse(k).map_err(Error::user)?);
    }
    for k in &s.trusted_keys {
        keys.push(PublicKey::parse(k).map_err(|e| {
            Error::user(format!("--trusted-key: {e}"))
                .hint("give public keys as `refine key generate` prints them: NAME:BASE64")
        })?);
    }
    keys.extend(own.map(SigningKeyFile::public));
    Ok(Trust { keys })
}
