//! uv, the resolver refine imports with: installed (pinned) from the
//! package index with the host's pip into the store on first use, and
//! pointed at the index pip is configured with. `REFINE_UV` names another
//! uv binary.

use crate::error::{Error, Result};
use crate::store::LocalStore;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The uv refine resolves with.
pub const UV_VERSION: &str = "0.13.9";

/// The uv binary: `REFINE_UV`, else the pinned one in the store (installed
/// there now if it is not yet).
pub fn uv(store: &LocalStore) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("REFINE_UV").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let dir = store.root().join("tools").join(format!("uv-{UV_VERSION}"));
    let bin = dir.join("bin/uv");
    if bin.is_file() {
        return Ok(bin);
    }
    let tmp = store.tmp_dir()?;
    let python = std::env::var("REFINE_HOST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--no-deps", "--only-binary", ":all:", "--target"])
        .arg(tmp.path())
        .arg(format!("uv=={UV_VERSION}"))
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Error::env(format!("cannot run `{python} -m pip`: {e}"))
                .hint("apt-get install -y python3-pip (refine installs its resolver, uv, with pip)")
        })?;
    if !out.status.success() {
        return Err(Error::env(format!(
            "pip could not install uv {UV_VERSION}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .hint("check pip's index (refine doctor), or install uv yourself and set REFINE_UV"));
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::rename(tmp.path(), &dir) {
        Ok(()) => {}
        // Another refine installed it meanwhile.
        Err(_) if bin.is_file() => {}
        Err(e) => return Err(e.into()),
    }
    // The TempDir's path is gone now; nothing to clean up.
    std::mem::forget(tmp);
    Ok(bin)
}

/// A uv command with the index flags of pip's configuration and the
/// system's trust roots.
pub fn command(uv: &PathBuf) -> Command {
    let mut c = Command::new(uv);
    c.env("UV_NATIVE_TLS", "1")
        .env("UV_NO_PROGRESS", "1")
        .stdin(Stdio::null());
    c
}

/// uv's flags that point it at pip's index.
pub fn index_flags() -> Vec<String> {
    crate::fetch::index_flags()
}
