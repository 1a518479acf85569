//! Fetching sources: the only steps that may use the network.
//!
//! Each kind of source is fetched by the ordinary client for it, so that
//! the machine's own configuration (index, mirror, proxy, credentials) is
//! honoured; no registry host name is written here.
//!
//! - `pypi`: the index configuration is read from pip itself (pip.conf,
//!   `PIP_*`), then the file with the pinned sha256 is found through the
//!   index's simple API or in pip's find-links directories. (`pip download`
//!   would prepare the package's metadata first, which for meson-python
//!   projects means building the whole package on the host.) If pip's
//!   configuration cannot be read, `pip download` is used as it is.
//! - `debian`: `apt-get source --download-only` with a private copy of the
//!   machine's apt sources turned into `deb-src` entries.
//! - `url`: HTTP(S) with the system's trust roots, mirrors in order.
//! - `path`: a file of the workspace.
//!
//! Every file is checked against its pin before it enters the store; a
//! mismatch shows both digests and stores nothing.

pub mod cargo;
mod debian;
mod http;
mod pypi;
pub mod unpack;

pub use debian::check_sources as check_debian_sources;
pub use debian::{SourcePackage, download_package as download_debian_package};
pub use http::client;
pub use pypi::check_index as check_pip_index;
pub use pypi::{IndexFile, download_file, index_flags, list_project};

use crate::key::{Digest, Sha256Writer};
use crate::rules::Fetch;
use crate::store::LocalStore;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Fetched {
    pub name: String,
    pub digest: Digest,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("sha256 mismatch for {what}:\n  expected {expected}\n       got {got}")]
    Mismatch {
        what: String,
        expected: Digest,
        got: Digest,
    },
    #[error("{message}")]
    NotFound { message: String, hint: String },
    #[error("{message}")]
    Network { message: String, hint: String },
    #[error("{message}")]
    Tool { message: String, hint: String },
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl FetchError {
    pub fn hint(&self) -> String {
        match self {
            FetchError::Mismatch { got, .. } => format!(
                "if the new file is the one you want, pin it: sha256 = \"{}\"; otherwise the source or a mirror changed under you",
                got.hex()
            ),
            FetchError::NotFound { hint, .. }
            | FetchError::Network { hint, .. }
            | FetchError::Tool { hint, .. } => hint.clone(),
            FetchError::Store(_) | FetchError::Io(_) => {
                "check disk space and permissions of the store".into()
            }
        }
    }

    /// A wrong pin or a missing file is the rule's problem; the rest is the
    /// machine's.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            FetchError::Mismatch { .. } | FetchError::NotFound { .. }
        )
    }
}

/// Fetch `fetch`, check it against `pin`, and put it in the store.
pub fn fetch(
    fetch: &Fetch,
    pin: &Digest,
    what: &str,
    ws_root: &Path,
    store: &LocalStore,
    input: Option<(&Path, &str)>,
    log: &mut File,
) -> Result<Fetched, FetchError> {
    // A Debian file already in the store under its pin (`refine pack new`
    // put it there) is not downloaded again; the caller verifies the blob.
    if let Fetch::Debian { file, .. } = fetch
        && store.cas.has_blob(pin)
    {
        store.actions.set_source_name(pin, file)?;
        writeln!(log, "fetch: {file} is in the store as {pin}")?;
        return Ok(Fetched {
            name: file.clone(),
            digest: pin.clone(),
        });
    }
    let tmp = store.tmp_dir()?;
    let (path, name) = match fetch {
        Fetch::Cargo { of, lock } => {
            let Some((sdist, name)) = input else {
                return Err(FetchError::NotFound {
                    message: format!("{what}: {of} has no file to vendor the crates of"),
                    hint: "`cargo = …` names the sdist source whose Cargo.lock to vendor".into(),
                });
            };
            let v = cargo::vendor(sdist, name, lock.as_deref(), tmp.path(), log)?;
            (v.archive, v.name)
        }
        Fetch::Path { path } => {
            let src = match crate::workspace::confined(ws_root, path) {
                Err(e @ crate::workspace::WorkspaceError::Escapes { .. }) => {
                    return Err(FetchError::NotFound {
                        message: format!("{what}: {e}"),
                        hint: e.hint().into(),
                    });
                }
                _ => ws_root.join(path),
            };
            if !src.is_file() {
                return Err(FetchError::NotFound {
                    message: format!("{what}: `{path}` does not exist in the workspace"),
                    hint: "path sources are relative to the directory of WORKSPACE.toml".into(),
                });
            }
            let name = file_name(path);
            (src, name)
        }
        Fetch::Url { urls } => {
            let mut last = None;
            let mut got = None;
            for url in urls {
                let name = file_name(url.split(['?', '#']).next().unwrap_or(url));
                let dest = tmp.path().join(&name);
                writeln!(log, "fetch: GET {url}")?;
                match http::download(url, &dest) {
                    Ok(d) if &d == pin => {
                        got = Some((dest, name));
                        break;
                    }
                    Ok(d) => {
                        writeln!(log, "fetch: {url} has sha256 {d}, not {pin}")?;
                        last = Some(FetchError::Mismatch {
                            what: format!("{what} from {url}"),
                            expected: pin.clone(),
                            got: d,
                        });
                    }
                    Err(e) => {
                        writeln!(log, "fetch: {url}: {e}")?;
                        last = Some(e);
                    }
                }
            }
            match got {
                Some(g) => g,
                None => {
                    return Err(last.unwrap_or(FetchError::NotFound {
                        message: format!("{what} has no URL"),
                        hint: "give `url = …`".into(),
                    }));
                }
            }
        }
        Fetch::Pypi {
            name,
            version,
            dist,
        } => pypi::fetch(name, version, *dist, pin, tmp.path(), log)?,
        Fetch::Debian {
            package,
            version,
            file,
            suite,
        } => debian::fetch(
            package,
            version,
            file,
            suite.as_deref(),
            store,
            tmp.path(),
            log,
        )?,
    };
    // Hash while copying into the store; refuse anything but the pin.
    let (got, _) = crate::key::sha256_file(&path)?;
    if &got != pin {
        return Err(FetchError::Mismatch {
            what: what.to_string(),
            expected: pin.clone(),
            got,
        });
    }
    let f = File::open(&path)?;
    store.cas.put_reader(f, Some(pin))?;
    store.actions.set_source_name(pin, &name)?;
    writeln!(log, "fetch: stored {name} as {pin}")?;
    Ok(Fetched {
        name,
        digest: pin.clone(),
    })
}

pub fn file_name(p: &str) -> String {
    p.rsplit('/').next().unwrap_or(p).to_string()
}

/// Copy a reader to a file, returning the sha256 of what was written.
pub(crate) fn write_hashed(mut r: impl std::io::Read, dest: &PathBuf) -> std::io::Result<Digest> {
    let f = File::create(dest)?;
    let mut w = Sha256Writer::new(std::io::BufWriter::new(f));
    std::io::copy(&mut r, &mut w)?;
    w.flush()?;
    let (d, _, _) = w.finish();
    Ok(d)
}
