//! `debian` sources: one file of an exact Debian source package version,
//! downloaded by apt from the mirrors this machine is configured with.
//!
//! apt needs `deb-src` entries, which machines often lack. refine keeps a
//! private copy of the machine's apt sources, with every `deb` entry turned
//! into `deb-src`, and its own package lists, under `<store>/apt/`; the
//! system's apt configuration is never changed.
//!
//! A source may name another Debian suite than the machine's (`suite =
//! "trixie"`: a library newer than the machine's release has). Its lists
//! are kept apart, under `<store>/apt-SUITE/`, made from the machine's own
//! release entries (not its -updates or -security ones) with the suite's
//! name in their place: the same mirror, another release. The version and
//! the file's sha256 are pinned as for any source.

use super::FetchError;
use crate::store::LocalStore;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

static APT: Mutex<()> = Mutex::new(());

/// Whether a suite name is a release's own (`bookworm`, `stable`), not
/// one of its -updates, -security or -backports suites.
fn is_release(suite: &str) -> bool {
    !suite.is_empty() && !suite.contains('-') && !suite.contains('/')
}

/// One-line apt sources (`deb [opts] URI SUITE COMPONENTS…`) as deb-src;
/// with `suite`, only the lines of a release, for that suite instead.
fn convert_list(text: &str, suite: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for l in text.lines() {
        let Some(rest) = l.trim_start().strip_prefix("deb ") else {
            continue;
        };
        let Some(s) = suite else {
            out.push(format!("deb-src {rest}"));
            continue;
        };
        // The options, then the URI, then the suite.
        let rest = rest.trim_start();
        let (opts, after) = match rest.strip_prefix('[') {
            Some(r) => match r.split_once(']') {
                Some((o, a)) => (format!("[{o}] "), a.trim_start()),
                None => continue,
            },
            None => (String::new(), rest),
        };
        let mut words = after.split_whitespace();
        let (Some(uri), Some(release)) = (words.next(), words.next()) else {
            continue;
        };
        if !is_release(release) {
            continue;
        }
        let components: Vec<&str> = words.collect();
        out.push(format!("deb-src {opts}{uri} {s} {}", components.join(" ")));
    }
    out
}

/// deb822 apt sources (`Types:`, `URIs:`, `Suites:` … stanzas) as deb-src;
/// with `suite`, only the stanzas that carry a release, for that suite
/// instead.
fn convert_sources(text: &str, suite: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut keep = suite.is_none();
        let mut lines = Vec::new();
        for l in stanza.lines() {
            let t = l.trim_start();
            if t.starts_with("Types:") {
                lines.push("Types: deb-src".to_string());
            } else if let (Some(rel), Some(s)) = (t.strip_prefix("Suites:"), suite) {
                keep = rel.split_whitespace().any(is_release);
                lines.push(format!("Suites: {s}"));
            } else {
                lines.push(l.to_string());
            }
        }
        if keep && lines.iter().any(|l| !l.trim().is_empty()) {
            out.push(lines.join("\n"));
        }
    }
    if out.is_empty() {
        Vec::new()
    } else {
        vec![out.join("\n\n")]
    }
}

/// Where refine keeps the apt lists of `suite` (the machine's own: None).
fn apt_dir(store: &LocalStore, suite: Option<&str>) -> PathBuf {
    match suite {
        None => store.root().join("apt"),
        Some(s) => store.root().join(format!("apt-{s}")),
    }
}

/// Turn the machine's apt sources into deb-src sources under `dir` (with
/// `suite`: those of its release, for that suite).
fn write_src_lists(dir: &Path, suite: Option<&str>) -> std::io::Result<usize> {
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
            convert_sources(&text, suite)
        } else if name.ends_with(".list") {
            convert_list(&text, suite)
        } else {
            continue;
        };
        if converted.is_empty() {
            continue;
        }
        let converted = converted.join("\n");
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
    let dir = apt_dir(store, None);
    fs::create_dir_all(dir.join("lists/partial"))?;
    let lock = File::create(dir.join("lock"))?;
    lock.lock()?;
    let n = write_src_lists(&dir, None)?;
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

/// Lock refine's apt directory under the store (`suite`'s, for another
/// suite than the machine's) and write its deb-src lists.
fn open_apt(store: &LocalStore, suite: Option<&str>) -> Result<(PathBuf, File), FetchError> {
    let dir = apt_dir(store, suite);
    fs::create_dir_all(dir.join("lists/partial"))?;
    let lock = File::create(dir.join("lock"))?;
    lock.lock()?;
    if write_src_lists(&dir, suite)? == 0 {
        return Err(match suite {
            None => FetchError::Tool {
                message: "this machine has no apt sources to download Debian source packages from"
                    .into(),
                hint: "configure apt (/etc/apt/sources.list.d), or use a `url` source".into(),
            },
            Some(s) => FetchError::Tool {
                message: format!(
                    "this machine's apt sources have no release entry to read suite `{s}` from"
                ),
                hint: "configure apt with the release's own entry (not only -updates or -security), or leave out `suite`".into(),
            },
        });
    }
    Ok((dir, lock))
}

/// `apt-get source --download-only SPEC` into `dl`, refreshing the lists
/// first when there are none, and once more when apt does not find it.
/// Whether apt succeeded; `missing` is set when the mirror listed the
/// package but answered 404 for a file of it (a partial mirror).
fn download_source(
    dir: &Path,
    spec: &str,
    dl: &Path,
    log: &mut File,
    missing: &mut bool,
) -> Result<bool, FetchError> {
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
                .args(apt_opts(dir))
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
            .args(apt_opts(dir))
            .args(["source", "--download-only", spec])
            .current_dir(dl)
            .stdin(Stdio::null())
            .output()
            .map_err(apt_tool_error)?;
        log.write_all(&out.stdout)?;
        log.write_all(&out.stderr)?;
        if out.status.success() {
            return Ok(true);
        }
        if String::from_utf8_lossy(&out.stderr).contains(" 404 ") {
            *missing = true;
        }
    }
    Ok(false)
}

/// The error when apt could not download `spec`: the mirror's 404s said as
/// such (the package is in its lists, its files are not on it).
fn not_downloaded(spec: &str, package: &str, missing: bool) -> FetchError {
    if missing {
        FetchError::NotFound {
            message: format!(
                "the mirror lists source package {spec} but answers 404 for its files"
            ),
            hint: "the mirror is incomplete: try another `--version` or `--suite` (another rule `suite`), or a `url` source for the upstream tarball".into(),
        }
    } else {
        FetchError::NotFound {
            message: format!("apt finds no source package {spec}"),
            hint: format!(
                "`apt-cache showsrc {package}` lists what the mirrors have; the hint of a failed build names the source package of the header it missed"
            ),
        }
    }
}

pub fn fetch(
    package: &str,
    version: &str,
    file: &str,
    suite: Option<&str>,
    store: &LocalStore,
    tmp: &Path,
    log: &mut File,
) -> Result<(PathBuf, String), FetchError> {
    let _guard = APT.lock().unwrap_or_else(|e| e.into_inner());
    let (dir, _lock) = open_apt(store, suite)?;
    let dl = tmp.join("apt");
    fs::create_dir_all(&dl)?;
    let spec = format!("{package}={version}");
    let mut missing = false;
    let ok = download_source(&dir, &spec, &dl, log, &mut missing)?;
    let found = dl.join(file);
    if found.is_file() {
        if !ok {
            // apt gave up on another file of the package (a mirror that
            // lacks its Debian patches): the one the rule names arrived,
            // checked by apt against the signed lists, and the rule's
            // sha256 checks it again.
            writeln!(
                log,
                "fetch: apt did not get all of {spec}, but {file} arrived: using it"
            )?;
        }
        return Ok((found, file.to_string()));
    }
    if ok {
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
    if missing {
        return Err(not_downloaded(&spec, package, true));
    }
    Err(FetchError::NotFound {
        message: format!("apt cannot find source package {spec} (see the log)"),
        hint: format!(
            "check the version: `apt-cache showsrc {package}` lists what the mirrors have"
        ),
    })
}

/// A Debian source package as apt downloaded it: its version, and the
/// files its `.dsc` lists with their sha256 (the `.dsc` itself is checked
/// by apt against the signed lists; each file here is checked against it).
#[derive(Debug)]
pub struct SourcePackage {
    pub package: String,
    pub version: String,
    /// (file name, lowercase hex sha256), as the `.dsc` lists them.
    pub files: Vec<(String, String)>,
    /// Where they are.
    pub dir: PathBuf,
}

impl SourcePackage {
    /// The upstream tarball: `*.orig.tar.*`, or a native package's `*.tar.*`.
    pub fn tarball(&self) -> Option<&(String, String)> {
        let tar = |f: &&(String, String)| f.0.contains(".tar.");
        self.files
            .iter()
            .filter(tar)
            .find(|f| f.0.contains(".orig.tar.") && !f.0.contains(".orig-"))
            .or_else(|| {
                self.files
                    .iter()
                    .filter(tar)
                    .find(|f| !f.0.contains(".debian.tar.") && !f.0.contains(".orig-"))
            })
    }
}

/// Download `package` (at `version`, or the version apt would pick) into
/// `dest`, and read its `.dsc`.
pub fn download_package(
    package: &str,
    version: Option<&str>,
    suite: Option<&str>,
    store: &LocalStore,
    dest: &Path,
    log: &mut File,
) -> Result<SourcePackage, FetchError> {
    let _guard = APT.lock().unwrap_or_else(|e| e.into_inner());
    let (dir, _lock) = open_apt(store, suite)?;
    fs::create_dir_all(dest)?;
    let spec = match version {
        Some(v) => format!("{package}={v}"),
        None => package.to_string(),
    };
    let mut missing = false;
    let mut ok = download_source(&dir, &spec, dest, log, &mut missing)? || upstream_arrived(dest);
    if !ok && version.is_none() {
        // The candidate's mirror may not serve sources (a security mirror
        // often does not): the other versions apt knows, newest first.
        for v in other_versions(&dir, package)? {
            let _ = fs::remove_dir_all(dest);
            fs::create_dir_all(dest)?;
            writeln!(log, "fetch: trying {package}={v}")?;
            if download_source(&dir, &format!("{package}={v}"), dest, log, &mut missing)?
                || upstream_arrived(dest)
            {
                ok = true;
                break;
            }
        }
    }
    if !ok {
        return Err(not_downloaded(&spec, package, missing));
    }
    let dsc = fs::read_dir(dest)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "dsc"))
        .ok_or_else(|| FetchError::NotFound {
            message: format!("apt downloaded {spec} without its .dsc"),
            hint: "check the machine's apt sources (deb-src)".into(),
        })?;
    let text = fs::read_to_string(&dsc)?;
    let mut sp = parse_dsc(&text).ok_or_else(|| FetchError::NotFound {
        message: format!("{}: no Source, Version or Checksums-Sha256", dsc.display()),
        hint: "check the machine's apt sources (deb-src)".into(),
    })?;
    sp.dir = dest.to_path_buf();
    match sp.tarball() {
        Some((t, _)) if dest.join(t).is_file() => {}
        _ => {
            return Err(FetchError::NotFound {
                message: format!("apt downloaded {spec} without its upstream tarball"),
                hint: format!(
                    "`apt-get source --download-only {spec}` shows what the mirror lacks; try another version (--version)"
                ),
            });
        }
    }
    // A file apt could not get (the mirror lacks the Debian patches, say)
    // is left out: a pack builds from the upstream tarball alone.
    let missing: Vec<String> = sp
        .files
        .iter()
        .filter(|(name, _)| !dest.join(name).is_file())
        .map(|(name, _)| name.clone())
        .collect();
    if !missing.is_empty() {
        writeln!(
            log,
            "fetch: the mirror did not serve {} of {spec}; the upstream tarball arrived",
            missing.join(", ")
        )?;
        sp.files.retain(|(name, _)| !missing.contains(name));
    }
    for (name, sha) in &sp.files {
        let (got, _) = crate::key::sha256_file(&dest.join(name))?;
        if got.hex() != *sha {
            return Err(FetchError::NotFound {
                message: format!("{name} does not match the sha256 its .dsc gives ({sha})"),
                hint: "a mirror served a damaged file: try again".into(),
            });
        }
    }
    Ok(sp)
}

/// Whether a failed `apt-get source` left the package's `.dsc` and its
/// upstream tarball in `dir` (each file apt keeps has passed its hash
/// check; the `.dsc`'s own list is checked again by the caller).
fn upstream_arrived(dir: &Path) -> bool {
    let Ok(rd) = fs::read_dir(dir) else {
        return false;
    };
    let names: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let Some(dsc) = names.iter().find(|n| n.ends_with(".dsc")) else {
        return false;
    };
    fs::read_to_string(dir.join(dsc))
        .ok()
        .and_then(|t| parse_dsc(&t))
        .and_then(|sp| sp.tarball().map(|(t, _)| names.contains(t)))
        .unwrap_or(false)
}

/// The versions of a source package in refine's deb-src lists, newest
/// first (dpkg orders them), the candidate included.
fn other_versions(dir: &Path, package: &str) -> Result<Vec<String>, FetchError> {
    let out = Command::new("apt-cache")
        .args(apt_opts(dir))
        .args(["showsrc", "--only-source", package])
        .stdin(Stdio::null())
        .output()
        .map_err(apt_tool_error)?;
    let mut versions: Vec<String> = Vec::new();
    let mut name_ok = false;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(p) = line.strip_prefix("Package:") {
            name_ok = p.trim() == package;
        } else if let Some(v) = line.strip_prefix("Version:")
            && name_ok
        {
            let v = v.trim().to_string();
            if !versions.contains(&v) {
                versions.push(v);
            }
        }
    }
    // Insertion sort with dpkg as the comparison: a handful of versions.
    let newer = |a: &str, b: &str| {
        Command::new("dpkg")
            .args(["--compare-versions", a, "gt", b])
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut sorted: Vec<String> = Vec::new();
    for v in versions {
        let at = sorted
            .iter()
            .position(|s| newer(&v, s))
            .unwrap_or(sorted.len());
        sorted.insert(at, v);
    }
    Ok(sorted)
}

/// The fields of a `.dsc` that matter here (deb822; a signed `.dsc`
/// carries its fields inside the clear-signed message).
fn parse_dsc(text: &str) -> Option<SourcePackage> {
    let mut package = None;
    let mut version = None;
    let mut files = Vec::new();
    let mut in_sums = false;
    for line in text.lines() {
        if line.starts_with("-----BEGIN PGP SIGNATURE") {
            break;
        }
        if let Some(rest) = line.strip_prefix(' ') {
            if in_sums {
                let f: Vec<&str> = rest.split_whitespace().collect();
                if let [sha, _size, name] = f.as_slice()
                    && sha.len() == 64
                    && !name.contains('/')
                {
                    files.push((name.to_string(), sha.to_ascii_lowercase()));
                }
            }
            continue;
        }
        in_sums = false;
        if let Some(v) = line.strip_prefix("Source:") {
            package = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Version:") {
            version = Some(v.trim().to_string());
        } else if line.starts_with("Checksums-Sha256:") {
            in_sums = true;
        }
    }
    (!files.is_empty()).then_some(())?;
    Some(SourcePackage {
        package: package?,
        version: version?,
        files,
        dir: PathBuf::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The machine's sources as deb-src: all of them; for another suite,
    /// only its release's entries (not -updates or -security), renamed.
    #[test]
    fn another_suite_is_read_from_the_machines_release_entries() {
        let list = "# a comment\n\
                    deb http://m.invalid/debian bookworm main contrib\n\
                    deb [signed-by=/k.gpg arch=amd64] http://m.invalid/debian bookworm-updates main\n\
                    deb http://s.invalid/debian-security bookworm-security main\n";
        assert_eq!(
            convert_list(list, None),
            [
                "deb-src http://m.invalid/debian bookworm main contrib",
                "deb-src [signed-by=/k.gpg arch=amd64] http://m.invalid/debian bookworm-updates main",
                "deb-src http://s.invalid/debian-security bookworm-security main",
            ]
        );
        assert_eq!(
            convert_list(list, Some("trixie")),
            ["deb-src http://m.invalid/debian trixie main contrib"]
        );
        let sources = "Types: deb\nURIs: http://m.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n\
                       Types: deb\nURIs: http://s.invalid/debian-security\nSuites: bookworm-security\nComponents: main\n";
        assert_eq!(
            convert_sources(sources, Some("trixie")),
            ["Types: deb-src\nURIs: http://m.invalid/debian\nSuites: trixie\nComponents: main"]
        );
        let all = convert_sources(sources, None);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].matches("Types: deb-src").count(), 2);
        assert!(all[0].contains("Suites: bookworm-security"));
        // Only -security entries: nothing to read another release from.
        assert!(
            convert_list(
                "deb http://s.invalid/d bookworm-security main\n",
                Some("trixie")
            )
            .is_empty()
        );
    }

    #[test]
    fn a_dsc_names_its_version_and_files() {
        let dsc = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nFormat: 3.0 (quilt)\nSource: lz4\nBinary: liblz4-1, liblz4-dev\nVersion: 1.9.4-1\nChecksums-Sha1:\n 0123456789012345678901234567890123456789 10 lz4_1.9.4.orig.tar.gz\nChecksums-Sha256:\n 0b0e3aa07c8c063ddf40b082bdf7e37a1562bda40a0ff5272957f3e987e0e54b 357878 lz4_1.9.4.orig.tar.gz\n 0b0e3aa07c8c063ddf40b082bdf7e37a1562bda40a0ff5272957f3e987e0e54c 9000 lz4_1.9.4-1.debian.tar.xz\n ab 1 ../evil\nFiles:\n 00 1 lz4_1.9.4.orig.tar.gz\n\n-----BEGIN PGP SIGNATURE-----\n Checksums-Sha256:\n";
        let sp = parse_dsc(dsc).unwrap();
        assert_eq!(sp.package, "lz4");
        assert_eq!(sp.version, "1.9.4-1");
        assert_eq!(sp.files.len(), 2);
        assert_eq!(sp.tarball().unwrap().0, "lz4_1.9.4.orig.tar.gz");
        let native = SourcePackage {
            files: vec![("x_1.0.tar.xz".into(), "00".into())],
            ..sp
        };
        assert_eq!(native.tarball().unwrap().0, "x_1.0.tar.xz");
    }

    /// A mirror without the Debian patches (libmemcached's, here): apt
    /// fails, the .dsc and the upstream tarball are there, and that is
    /// enough for a pack; without the tarball (FreeTDS's) it is not.
    #[test]
    fn a_source_whose_patches_are_missing_still_gives_its_upstream_tarball() {
        let dir = tempfile::tempdir().unwrap();
        let dsc = "Format: 3.0 (quilt)\nSource: libmemcached\nVersion: 1.1.4-1\nChecksums-Sha256:\n 0b0e3aa07c8c063ddf40b082bdf7e37a1562bda40a0ff5272957f3e987e0e54b 5 libmemcached_1.1.4.orig.tar.gz\n 0b0e3aa07c8c063ddf40b082bdf7e37a1562bda40a0ff5272957f3e987e0e54c 9 libmemcached_1.1.4-1.debian.tar.xz\n";
        assert!(!upstream_arrived(dir.path()), "nothing there");
        fs::write(dir.path().join("libmemcached_1.1.4-1.dsc"), dsc).unwrap();
        assert!(!upstream_arrived(dir.path()), "only the .dsc");
        fs::write(dir.path().join("libmemcached_1.1.4-1.debian.tar.xz"), "x").unwrap();
        assert!(
            !upstream_arrived(dir.path()),
            "the patches without the tarball"
        );
        fs::write(dir.path().join("libmemcached_1.1.4.orig.tar.gz"), "x").unwrap();
        assert!(upstream_arrived(dir.path()));
        fs::remove_file(dir.path().join("libmemcached_1.1.4-1.debian.tar.xz")).unwrap();
        assert!(
            upstream_arrived(dir.path()),
            "the tarball without the patches"
        );
    }
}
