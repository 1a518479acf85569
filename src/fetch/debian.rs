//! `debian` sources: one file of an exact Debian source package version,
//! downloaded by apt from the mirrors this machine is configured with.
//!
//! apt needs `deb-src` entries, which machines often lack. refine keeps a
//! private copy of the machine's apt sources, with every `deb` entry turned
//! into `deb-src`, and its own package lists, under `<store>/apt/`; the
//! system's apt configuration is never changed.

use super::FetchError;
use crate::store::LocalStore;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

static APT: Mutex<()> = Mutex::new(());

/// Turn the machine's apt sources into deb-src sources under `dir`.
fn write_src_lists(dir: &Path) -> std::io::Result<usize> {
    let parts = dir.join("sources.list.d");
    let _ = fs::remove_dir_all(&parts);
    fs::create_dir_all(&parts)?;
    let mut n = 0;
    let mut sources: Vec<PathBuf> = Vec::new();
    if Path::new("/etc/apt/sources.list").is_file() {
        sources.push(PathBuf::from("/etc/apt/sources.list"));
    }
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut v: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        v.sort();
        sources.extend(v);
    }
    for (i, src) in sources.iter().enumerate() {
        let name = src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = fs::read_to_string(src)?;
        let converted = if name.ends_with(".sources") {
            text.lines()
                .map(|l| {
                    if l.trim_start().starts_with("Types:") {
                        "Types: deb-src".to_string()
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        } else if name.ends_with(".list") {
            text.lines()
                .filter_map(|l| {
                    let t = l.trim_start();
                    t.strip_prefix("deb ").map(|rest| format!("deb-src {rest}"))
                })
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            continue;
        };
        let ext = if name.ends_with(".sources") {
            "sources"
        } else {
            "list"
        };
        fs::write(
            parts.join(format!("{i:02}-refine.{ext}")),
            format!("{converted}\n"),
        )?;
        n += 1;
    }
    Ok(n)
}

fn apt_opts(dir: &Path) -> Vec<String> {
    vec![
        "-o".into(),
        "Dir::Etc::SourceList=/dev/null".into(),
        "-o".into(),
        format!(
            "Dir::Etc::SourceParts={}",
            dir.join("sources.list.d").display()
        ),
        "-o".into(),
        format!("Dir::State::Lists={}", dir.join("lists").display()),
        "-o".into(),
        "APT::Sandbox::User=root".into(),
        "-q".into(),
    ]
}

fn apt_tool_error(e: std::io::Error) -> FetchError {
    FetchError::Tool {
        message: format!("cannot run apt-get: {e}"),
        hint: "debian sources need apt-get (a Debian or Ubuntu host); use `url` or `path` sources elsewhere".into(),
    }
}

/// Refresh refine's private deb-src lists (for `refine doctor`): how many
/// apt sources they were made from, on success.
pub fn check_sources(store: &LocalStore) -> Result<usize, FetchError> {
    let _guard = APT.lock().unwrap_or_else(|e| e.into_inner());
    let dir = store.root().join("apt");
    fs::create_dir_all(dir.join("lists/partial"))?;
    let lock = File::create(dir.join("lock"))?;
    lock.lock()?;
    let n = write_src_lists(&dir)?;
    if n == 0 {
        return Err(FetchError::Tool {
            message: "this machine has no apt sources to download Debian source packages from"
                .into(),
            hint: "configure apt (/etc/apt/sources.list.d), or use `url` sources".into(),
        });
    }
    let out = Command::new("apt-get")
        .args(apt_opts(&dir))
        .arg("update")
        .stdin(Stdio::null())
        .output()
        .map_err(apt_tool_error)?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(FetchError::Network {
            message: format!(
                "`apt-get update` of the deb-src lists failed: {}",
                err.lines().last().unwrap_or("").trim()
            ),
            hint: "check that the machine's apt mirrors are reachable (apt-get update)".into(),
        });
    }
    Ok(n)
}

pub fn fetch(
    package: &str,
    version: &str,
    file: &str,
    store: &LocalStore,
    tmp: &Path,
    log: &mut File,
) -> Result<(PathBuf, String), FetchError> {
    let _guard = APT.lock().unwrap_or_else(|e| e.into_inner());
    let dir = store.root().join("apt");
    fs::create_dir_all(dir.join("lists/partial"))?;
    let lock = File::create(dir.join("lock"))?;
    lock.lock()?;
    if write_src_lists(&dir)? == 0 {
        return Err(FetchError::Tool {
            message: "this machine has no apt sources to download Debian source packages from"
                .into(),
            hint: "configure apt (/etc/apt/sources.list.d), or use a `url` source".into(),
        });
    }
    let dl = tmp.join("apt");
    fs::create_dir_all(&dl)?;
    let spec = format!("{package}={version}");
    let has_lists = fs::read_dir(dir.join("lists"))
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with("Sources"))
        })
        .unwrap_or(false);
    for attempt in 0..2 {
        if attempt == 1 || !has_lists {
            writeln!(log, "fetch: apt-get update (deb-src)")?;
            let st = Command::new("apt-get")
                .args(apt_opts(&dir))
                .arg("update")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log.try_clone()?)
                .status()
                .map_err(apt_tool_error)?;
            if !st.success() {
                return Err(FetchError::Network {
                    message: "`apt-get update` for source lists failed (see the log)".into(),
                    hint: "check that the machine's apt mirrors are reachable".into(),
                });
            }
        }
        writeln!(log, "fetch: apt-get source --download-only {spec}")?;
        let out = Command::new("apt-get")
            .args(apt_opts(&dir))
            .args(["source", "--download-only", &spec])
            .current_dir(&dl)
            .stdin(Stdio::null())
            .output()
            .map_err(apt_tool_error)?;
        log.write_all(&out.stdout)?;
        log.write_all(&out.stderr)?;
        let found = dl.join(file);
        if out.status.success() && found.is_file() {
            return Ok((found, file.to_string()));
        }
        if out.status.success() {
            let got: Vec<String> = fs::read_dir(&dl)?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            return Err(FetchError::NotFound {
                message: format!(
                    "source package {spec} has no file `{file}`; it has {}",
                    got.join(", ")
                ),
                hint: "set `file` to one of the package's files (usually the .orig.tar.*)".into(),
            });
        }
    }
    Err(FetchError::NotFound {
        message: format!("apt cannot find source package {spec} (see the log)"),
        hint: format!(
            "check the version: `apt-cache showsrc {package}` lists what the mirrors have"
        ),
    })
}
