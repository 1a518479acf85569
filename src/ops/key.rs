//! `refine key generate|show`: this machine's signing key.

use super::{GlobalOpts, Session};
use crate::error::{Error, Result};
use crate::key::sign::SigningKeyFile;
use std::path::PathBuf;

/// Where the key goes: `--out`, else `--signing-key`, else the store's.
fn key_path(opts: &GlobalOpts, out: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = out.or_else(|| opts.signing_key.clone()) {
        return Ok(p);
    }
    let store = match Session::load(opts) {
        Ok(s) => s.store_path.clone(),
        Err(_) => super::default_store_path(opts.store.as_deref())?,
    };
    Ok(store.join("keys/signing.key"))
}

/// Make a signing key; returns its file and its public line.
pub fn generate(opts: &GlobalOpts, name: &str, out: Option<PathBuf>) -> Result<(PathBuf, String)> {
    let path = key_path(opts, out)?;
    let k = SigningKeyFile::generate(&path, name).map_err(|e| {
        Error::user(e).hint(
            "choose another file (--out FILE) or use the key that is there (`refine key show`)",
        )
    })?;
    Ok((path, k.public().line()))
}

/// The public line of the signing key.
pub fn show(opts: &GlobalOpts, file: Option<PathBuf>) -> Result<(PathBuf, String)> {
    let path = key_path(opts, file)?;
    let k = SigningKeyFile::load(&path)
        .map_err(|e| Error::user(e).hint("make one with `refine key generate`"))?;
    Ok((path, k.public().line()))
}
