//! `cargo` sources: the crates a Rust project's `Cargo.lock` names, for a
//! build that has no network. They are vendored on the host, where the
//! network is allowed, by the host's own `cargo vendor --locked` (cargo
//! reaches the registry as the machine configures it and checks every
//! crate against the checksum in `Cargo.lock`), then packed into one
//! deterministic tar (entries sorted, times and owners zeroed, modes 0644
//! or 0755), whose sha256 is the source's pin like any other file's. The
//! wheel's recipe unpacks it and points cargo at it, offline. An sdist
//! without a Cargo.lock gets one from `cargo generate-lockfile` (the
//! registry as it is when the import pins it), packed with the crates;
//! offline, cargo resolves the same versions from the vendored ones.

use super::FetchError;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The name of the vendored archive of an sdist: `NAME-VERSION.crates.tar`.
pub fn archive_name(sdist: &str) -> String {
    let stem = [".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz"]
        .iter()
        .find_map(|e| sdist.strip_suffix(e))
        .unwrap_or(sdist);
    format!("{stem}.crates.tar")
}

/// The file called `name` nearest the top of `top` (by depth, then name).
fn shallowest(top: &Path, name: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = walkdir::WalkDir::new(top)
        .sort_by_file_name()
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.file_name() == name)
        .map(|e| e.into_path())
        .collect();
    found.sort_by_key(|p| p.components().count());
    found.into_iter().next()
}

/// The `Cargo.lock` of a project tree: `lock` if given, else the shallowest.
fn find_lock(top: &Path, lock: Option<&str>) -> Result<PathBuf, FetchError> {
    if let Some(l) = lock {
        let p = top.join(l);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(FetchError::NotFound {
                message: format!("the sdist has no {l}"),
                hint: "give `lock = \"PATH/Cargo.lock\"` as the sdist lays it out".into(),
            })
        };
    }
    shallowest(top, "Cargo.lock").ok_or_else(|| FetchError::NotFound {
        message: "the sdist has no Cargo.lock: its crates cannot be pinned".into(),
        hint:
            "a Rust extension must ship its Cargo.lock in the sdist; or vendor its crates by hand"
                .into(),
    })
}

/// Vendor the crates of the project in `sdist` into `dest_dir`; the
/// archive's path and file name.
pub fn vendor(
    sdist: &Path,
    sdist_name: &str,
    lock: Option<&str>,
    dest_dir: &Path,
    log: &mut File,
) -> Result<Vendored, FetchError> {
    let cargo = crate::exec::host::which("cargo").ok_or_else(|| FetchError::Tool {
        message:
            "cargo is not installed on this host; refine vendors a Rust extension's crates with it"
                .into(),
        hint: "install Rust (rustup, or apt-get install -y cargo)".into(),
    })?;
    let work = dest_dir.join("cargo-vendor");
    let src = work.join("src");
    std::fs::create_dir_all(&src)?;
    // The sdist's own name, so the unpacker knows its format.
    let named = work.join(sdist_name);
    std::fs::copy(sdist, &named)?;
    let top = super::unpack::unpack(&named, &src).map_err(|e| FetchError::Tool {
        message: e,
        hint: "check the sdist".into(),
    })?;
    let (lock, generated) = match find_lock(&top, lock) {
        Ok(l) => (l, false),
        // No Cargo.lock in the sdist (tiktoken's): one resolved now from
        // the registry, as `cargo build` would on a user's machine, and
        // packed with the crates, so the archive's pin pins the versions.
        Err(FetchError::NotFound { .. }) if lock.is_none() => {
            (generate_lock(&cargo, &top, &work, log)?, true)
        }
        Err(e) => return Err(e),
    };
    let manifest = lock.with_file_name("Cargo.toml");
    let out = work.join("out");
    writeln!(
        log,
        "fetch: cargo vendor --locked of {}",
        lock.strip_prefix(&src).unwrap_or(&lock).display()
    )?;
    let o = Command::new(&cargo)
        .args([
            "vendor",
            "--locked",
            "--versioned-dirs",
            "--quiet",
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg(out.join("vendor"))
        .current_dir(&work)
        .stdin(Stdio::null())
        .output()?;
    log.write_all(&o.stderr)?;
    if !o.status.success() {
        return Err(cargo_failed("cargo vendor failed", &o.stderr));
    }
    if generated {
        std::fs::copy(&lock, out.join("Cargo.lock"))?;
    }
    let name = archive_name(sdist_name);
    let archive = dest_dir.join(&name);
    pack(&out, &archive)?;
    Ok(Vendored {
        archive,
        name,
        generated_lock: generated,
    })
}

/// What `vendor` made.
pub struct Vendored {
    pub archive: PathBuf,
    pub name: String,
    /// The sdist had no Cargo.lock: the one in the archive was resolved
    /// from the registry when it was vendored.
    pub generated_lock: bool,
}

/// A Cargo.lock for a project that ships none: the shallowest Cargo.toml's,
/// resolved by `cargo generate-lockfile` against the registry.
fn generate_lock(
    cargo: &Path,
    top: &Path,
    work: &Path,
    log: &mut File,
) -> Result<PathBuf, FetchError> {
    let Some(manifest) = shallowest(top, "Cargo.toml") else {
        return Err(FetchError::NotFound {
            message:
                "the sdist has neither Cargo.lock nor Cargo.toml: there are no crates to vendor"
                    .into(),
            hint: "check that the package compiles Rust; give its rule `cargo` only if it does"
                .into(),
        });
    };
    writeln!(
        log,
        "fetch: the sdist has no Cargo.lock: cargo generate-lockfile for {}",
        manifest.strip_prefix(top).unwrap_or(&manifest).display()
    )?;
    let o = Command::new(cargo)
        .args(["generate-lockfile", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .current_dir(work)
        .stdin(Stdio::null())
        .output()?;
    log.write_all(&o.stderr)?;
    if !o.status.success() {
        return Err(cargo_failed(
            "the sdist has no Cargo.lock, and cargo generate-lockfile failed",
            &o.stderr,
        ));
    }
    Ok(manifest.with_file_name("Cargo.lock"))
}

/// A cargo command that failed: `what`, its last lines, and the hint.
fn cargo_failed(what: &str, stderr: &[u8]) -> FetchError {
    let err = String::from_utf8_lossy(stderr);
    let tail: Vec<&str> = err.lines().rev().take(6).collect();
    FetchError::Tool {
        message: format!(
            "{what}: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ),
        hint: vendor_hint(&err),
    }
}

/// What to do when `cargo vendor --locked` fails: a locked crate the
/// registry does not have (a mirror behind the package) is answered with
/// an older release of the package; anything else is the registry's reach.
fn vendor_hint(stderr: &str) -> String {
    let locked = regex::Regex::new(
        r"failed to select a version for the requirement `(?P<crate>[A-Za-z0-9_-]+) = [^`]*` \(locked to (?P<v>[^)]+)\)",
    )
    .expect("a valid pattern");
    match locked.captures(stderr) {
        Some(c) => format!(
            "the registry this host's cargo reaches has no {} {} (the package's Cargo.lock asks for it): it is behind the package; pin an older release of the package, whose crates it has, or point cargo at a registry that has it",
            &c["crate"], &c["v"]
        ),
        None => "the crates are fetched with this host's cargo and its registry configuration; check that cargo can reach the registry (`cargo search serde`)".into(),
    }
}

/// A deterministic tar of `dir`'s files (their paths relative to `dir`).
pub fn pack(dir: &Path, dest: &Path) -> std::io::Result<()> {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for e in walkdir::WalkDir::new(dir).into_iter() {
        let e = e.map_err(std::io::Error::other)?;
        if e.file_type().is_file() {
            let rel = e
                .path()
                .strip_prefix(dir)
                .map_err(std::io::Error::other)?
                .to_string_lossy()
                .into_owned();
            files.push((rel, e.path().to_path_buf()));
        }
    }
    files.sort();
    let mut b = tar::Builder::new(std::io::BufWriter::new(File::create(dest)?));
    for (rel, path) in files {
        let data = std::fs::read(&path)?;
        let exec = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(&path)?.permissions().mode() & 0o111 != 0
        };
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(data.len() as u64);
        h.set_mode(if exec { 0o755 } else { 0o644 });
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, &rel, data.as_slice())?;
    }
    b.into_inner()?.flush()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_locked_crate_the_registry_lacks_asks_for_an_older_pin() {
        let err = "error: failed to select a version for the requirement `asn1 = \"^0.25.0\"` (locked to 0.25.1)\ncandidate versions found which didn't match: 0.24.1, 0.24.0";
        let h = super::vendor_hint(err);
        assert!(
            h.starts_with("the registry this host's cargo reaches has no asn1 0.25.1"),
            "{h}"
        );
        assert!(h.contains("pin an older release of the package"), "{h}");
        assert!(super::vendor_hint("error: network unreachable").contains("cargo search serde"));
    }
    use super::*;

    #[test]
    fn packs_the_same_bytes_whatever_the_times() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::fs::create_dir_all(a.join("vendor/itoa-1.0.0/src")).unwrap();
        std::fs::write(a.join("vendor/itoa-1.0.0/src/lib.rs"), "pub fn f() {}\n").unwrap();
        std::fs::write(a.join("vendor/itoa-1.0.0/.cargo-checksum.json"), "{}").unwrap();
        pack(&a, &d.path().join("1.tar")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let t = std::fs::read(a.join("vendor/itoa-1.0.0/src/lib.rs")).unwrap();
        std::fs::write(a.join("vendor/itoa-1.0.0/src/lib.rs"), t).unwrap();
        pack(&a, &d.path().join("2.tar")).unwrap();
        assert_eq!(
            std::fs::read(d.path().join("1.tar")).unwrap(),
            std::fs::read(d.path().join("2.tar")).unwrap()
        );
        assert_eq!(
            archive_name("cryptography-46.0.3.tar.gz"),
            "cryptography-46.0.3.crates.tar"
        );
    }
}
