//! `pypi` sources: one exact `name==version` file, chosen by its sha256,
//! from the index (and find-links) that pip is configured with.

use super::http::{download, get_text};
use super::{FetchError, file_name};
use crate::key::{Digest, sha256_file};
use crate::rules::{Dist, normalize_name};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, serde::Deserialize)]
struct PipConfig {
    index_url: String,
    #[serde(default)]
    extra_index_urls: Vec<String>,
    #[serde(default)]
    find_links: Vec<String>,
    #[serde(default)]
    no_index: bool,
}

/// Ask pip how it is configured (config files and `PIP_*` variables), the
/// way `pip download` would see it.
const PIP_CONFIG_SCRIPT: &str = r#"
import json
from pip._internal.commands import create_command
cmd = create_command("download")
o, _ = cmd.parse_args([])
print(json.dumps({"index_url": o.index_url, "extra_index_urls": o.extra_index_urls or [],
                  "find_links": o.find_links or [], "no_index": bool(o.no_index)}))
"#;

fn host_python() -> String {
    std::env::var("REFINE_HOST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn pip_config() -> Option<PipConfig> {
    let out = Command::new(host_python())
        .args(["-c", PIP_CONFIG_SCRIPT])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// A file an index lists for a project (PEP 691 JSON, or PEP 503 HTML).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexFile {
    pub filename: String,
    /// Absolute: joined with the page it was listed on (or `file://`).
    pub url: String,
    pub sha256: Option<String>,
    pub requires_python: Option<String>,
    pub yanked: bool,
}

fn parse_json_listing(text: &str) -> Vec<IndexFile> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    v["files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .filter_map(|f| {
                    Some(IndexFile {
                        filename: f["filename"].as_str()?.to_string(),
                        url: f["url"].as_str()?.to_string(),
                        sha256: f["hashes"]["sha256"].as_str().map(str::to_string),
                        requires_python: f["requires-python"].as_str().map(str::to_string),
                        // PEP 691: false, or true / a reason.
                        yanked: f["yanked"].as_bool().unwrap_or(false)
                            || f["yanked"].as_str().is_some(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The value of attribute `name` in an HTML start tag's attribute text,
/// entity-decoded.
fn attribute(attrs: &str, name: &str) -> Option<String> {
    let mut rest = attrs;
    while let Some(i) = rest.find(name) {
        let before_ok = i == 0 || rest.as_bytes()[i - 1].is_ascii_whitespace();
        let after = &rest[i + name.len()..];
        let after_trim = after.trim_start();
        if before_ok && let Some(v) = after_trim.strip_prefix('=') {
            let v = v.trim_start();
            let (q, body) = match v.chars().next() {
                Some(q @ ('"' | '\'')) => (q, &v[1..]),
                _ => {
                    let end = v.find(|c: char| c.is_ascii_whitespace()).unwrap_or(v.len());
                    return Some(unescape(&v[..end]));
                }
            };
            let end = body.find(q)?;
            return Some(unescape(&body[..end]));
        }
        if before_ok
            && !after_trim.starts_with('=')
            && (after.is_empty() || after.starts_with([' ', '/']))
        {
            // A boolean attribute (`data-yanked`).
            return Some(String::new());
        }
        rest = after;
    }
    None
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// PEP 503 HTML: `<a href="URL#sha256=HEX" data-requires-python="…">FILENAME</a>`.
fn parse_html_listing(text: &str) -> Vec<IndexFile> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("<a ") {
        rest = &rest[i + 3..];
        // The tag ends at the first `>` outside quotes.
        let mut quote = None;
        let Some(gt) = rest.char_indices().find_map(|(i, c)| match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                None
            }
            (Some(q), c) if c == q => {
                quote = None;
                None
            }
            (None, '>') => Some(i),
            _ => None,
        }) else {
            break;
        };
        let attrs = &rest[..gt];
        let Some(close) = rest[gt..].find("</a>") else {
            break;
        };
        let filename = unescape(rest[gt + 1..gt + close].trim());
        rest = &rest[gt + close..];
        let Some(href) = attribute(attrs, "href") else {
            continue;
        };
        let (url, frag) = href.split_once('#').unwrap_or((href.as_str(), ""));
        out.push(IndexFile {
            filename,
            url: url.to_string(),
            sha256: frag.strip_prefix("sha256=").map(str::to_string),
            requires_python: attribute(attrs, "data-requires-python"),
            yanked: attribute(attrs, "data-yanked").is_some(),
        });
    }
    out
}

/// Every file that pip's configured find-links directories and indexes
/// list for `name`. Local find-links files are hashed only if `local`
/// accepts their name. The first index error is returned only if nothing
/// at all was listed.
fn list_files(
    cfg: &PipConfig,
    name: &str,
    local: &dyn Fn(&str) -> bool,
    log: &mut dyn FnMut(String),
) -> Result<Vec<IndexFile>, FetchError> {
    let project = normalize_name(name);
    let mut out = Vec::new();
    for fl in &cfg.find_links {
        let dir = Path::new(fl.strip_prefix("file://").unwrap_or(fl));
        if !dir.is_dir() {
            continue;
        }
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        names.sort();
        for path in names {
            let f = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !local(&f) || !is_file_of(&f, &project) {
                continue;
            }
            out.push(IndexFile {
                sha256: Some(sha256_file(&path)?.0.hex().to_string()),
                url: format!("file://{}", path.display()),
                filename: f,
                requires_python: None,
                yanked: false,
            });
        }
    }
    let mut pages: Vec<String> = Vec::new();
    if !cfg.no_index {
        pages.push(format!(
            "{}/{project}/",
            cfg.index_url.trim_end_matches('/')
        ));
        pages.extend(
            cfg.extra_index_urls
                .iter()
                .map(|i| format!("{}/{project}/", i.trim_end_matches('/'))),
        );
    }
    // Remote find-links pages list files of every project.
    pages.extend(
        cfg.find_links
            .iter()
            .filter(|f| f.starts_with("http"))
            .cloned(),
    );
    let mut last_err = None;
    for page in &pages {
        log(format!("fetch: listing {}", redact(page)));
        let (ctype, text) =
            match get_text(page, "application/vnd.pypi.simple.v1+json, text/html;q=0.1") {
                Ok(t) => t,
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
        let listed = if ctype.contains("json") {
            parse_json_listing(&text)
        } else {
            parse_html_listing(&text)
        };
        let base = reqwest::Url::parse(page).ok();
        out.extend(
            listed
                .into_iter()
                .filter(|f| is_file_of(&f.filename, &project))
                .map(|mut f| {
                    if let Some(u) = base.as_ref().and_then(|b| b.join(&f.url).ok()) {
                        f.url = u.to_string();
                    }
                    f
                }),
        );
    }
    if out.is_empty()
        && let Some(e) = last_err
        && !matches!(e, FetchError::NotFound { .. })
    {
        return Err(e);
    }
    Ok(out)
}

/// Whether a sdist or wheel file name is of the (normalized) project.
fn is_file_of(filename: &str, project: &str) -> bool {
    let lower = filename.to_ascii_lowercase();
    let name = if let Some(stem) = lower.strip_suffix(".whl") {
        stem.split('-').next().unwrap_or("").to_string()
    } else if let Some(stem) = [".tar.gz", ".zip", ".tar.bz2", ".tar.xz"]
        .iter()
        .find_map(|ext| lower.strip_suffix(ext))
    {
        stem.rsplit_once('-')
            .map(|(n, _)| n.to_string())
            .unwrap_or_default()
    } else {
        return false;
    };
    normalize_name(&name) == project
}

/// Whether `filename` is a `dist` of `name` at `version`.
fn is_dist_of(filename: &str, name: &str, version: &str, dist: Dist) -> bool {
    let lower = filename.to_ascii_lowercase();
    let (fname, fversion) = match dist {
        Dist::Wheel => {
            let Some(stem) = lower.strip_suffix(".whl") else {
                return false;
            };
            let mut parts = stem.split('-');
            match (parts.next(), parts.next()) {
                (Some(n), Some(v)) => (n.to_string(), v.to_string()),
                _ => return false,
            }
        }
        Dist::Sdist => {
            let Some(stem) = [".tar.gz", ".zip", ".tar.bz2", ".tar.xz"]
                .iter()
                .find_map(|ext| lower.strip_suffix(ext))
            else {
                return false;
            };
            match stem.rsplit_once('-') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => return false,
            }
        }
    };
    normalize_name(&fname) == normalize_name(name) && fversion == version.to_ascii_lowercase()
}

pub fn fetch(
    name: &str,
    version: &str,
    dist: Dist,
    pin: &Digest,
    tmp: &Path,
    log: &mut File,
) -> Result<(PathBuf, String), FetchError> {
    let Some(cfg) = pip_config() else {
        writeln!(
            log,
            "fetch: pip's configuration is not readable; using `pip download`"
        )?;
        return pip_download(name, version, dist, tmp, log);
    };
    let mut lines = Vec::new();
    let listed = list_files(
        &cfg,
        name,
        &|f| is_dist_of(f, name, version, dist),
        &mut |l| lines.push(l),
    );
    for l in lines {
        writeln!(log, "{l}")?;
    }
    let seen: Vec<IndexFile> = listed?
        .into_iter()
        .filter(|l| is_dist_of(&l.filename, name, version, dist))
        .collect();
    if let Some(l) = seen.iter().find(|l| l.sha256.as_deref() == Some(pin.hex())) {
        let dest = tmp.join(file_name(&l.filename));
        writeln!(log, "fetch: downloading {}", redact(&l.url))?;
        download_file(l, &dest)?;
        return Ok((dest, l.filename.clone()));
    }
    let listing: Vec<String> = seen
        .iter()
        .map(|l| {
            format!(
                "{} (sha256 {})",
                l.filename,
                l.sha256.as_deref().unwrap_or("not listed")
            )
        })
        .collect();
    Err(FetchError::NotFound {
        message: if listing.is_empty() {
            format!("no {} of {name}=={version} in the package index", dist.as_str())
        } else {
            format!(
                "no {} of {name}=={version} has sha256 {}; the index has: {}",
                dist.as_str(),
                pin.hex(),
                listing.join(", ")
            )
        },
        hint: "check the name, version and dist, and pin the sha256 of the file you want (`pip download --no-deps` then `sha256sum`)".into(),
    })
}

/// The index settings pip is configured with, as command-line flags of
/// pip and uv (`--index-url`, `--extra-index-url`, `--find-links`,
/// `--no-index`): other tools reach the same index without refine naming
/// one.
pub fn index_flags() -> Vec<String> {
    let Some(cfg) = pip_config() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if cfg.no_index {
        out.push("--no-index".to_string());
    } else {
        out.push(format!("--index-url={}", cfg.index_url));
        for e in &cfg.extra_index_urls {
            out.push(format!("--extra-index-url={e}"));
        }
    }
    for f in &cfg.find_links {
        out.push(format!("--find-links={f}"));
    }
    out
}

/// Every file the configured indexes (and find-links directories) list
/// for a project.
pub fn list_project(name: &str) -> Result<Vec<IndexFile>, FetchError> {
    let cfg = pip_config().ok_or_else(|| FetchError::Tool {
        message: format!(
            "pip's configuration cannot be read with `{} -m pip`",
            host_python()
        ),
        hint: "apt-get install -y python3-pip".into(),
    })?;
    list_files(&cfg, name, &|_| true, &mut |_| {})
}

/// Download (or copy, for `file://`) an index file; its sha256.
pub fn download_file(f: &IndexFile, dest: &Path) -> Result<Digest, FetchError> {
    if let Some(p) = f.url.strip_prefix("file://") {
        std::fs::copy(p, dest)?;
        return Ok(sha256_file(dest)?.0);
    }
    download(&f.url, dest)
}

/// Whether the index pip is configured with answers (for `refine doctor`):
/// what was asked, on success. A 404 for the probe project is an answer.
pub fn check_index() -> Result<String, FetchError> {
    let cfg = pip_config().ok_or_else(|| FetchError::Tool {
        message: format!(
            "pip's configuration cannot be read with `{} -m pip`; refine reaches the package index through pip",
            host_python()
        ),
        hint: "apt-get install -y python3-pip".into(),
    })?;
    if cfg.no_index {
        return Ok(format!(
            "pip uses no index, only find-links: {}",
            cfg.find_links.join(", ")
        ));
    }
    let page = format!("{}/pip/", cfg.index_url.trim_end_matches('/'));
    match get_text(
        &page,
        "application/vnd.pypi.simple.v1+json, text/html;q=0.1",
    ) {
        Ok(_) | Err(FetchError::NotFound { .. }) => {
            Ok(format!("pip's index {} answers", redact(&cfg.index_url)))
        }
        Err(e) => Err(e),
    }
}

/// Hide credentials in an index URL before it is logged.
fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("***");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// The fallback: `pip download` exactly as the machine's pip is set up.
fn pip_download(
    name: &str,
    version: &str,
    dist: Dist,
    tmp: &Path,
    log: &mut File,
) -> Result<(PathBuf, String), FetchError> {
    let dir = tmp.join("pip");
    std::fs::create_dir_all(&dir)?;
    let only = match dist {
        Dist::Wheel => "--only-binary",
        Dist::Sdist => "--no-binary",
    };
    let status = Command::new(host_python())
        .args(["-m", "pip", "download", "--no-deps", only, ":all:", "-d"])
        .arg(&dir)
        .arg(format!("{name}=={version}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?)
        .status()
        .map_err(|e| FetchError::Tool {
            message: format!("cannot run pip: {e}"),
            hint: "install python3 and pip on the host (`apt-get install -y python3-pip`)".into(),
        })?;
    if !status.success() {
        return Err(FetchError::Tool {
            message: format!("`pip download {name}=={version}` failed (see the log)"),
            hint: "check pip's index configuration and the network".into(),
        });
    }
    let f = std::fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|f| is_dist_of(f, name, version, dist))
        .ok_or_else(|| FetchError::NotFound {
            message: format!("pip downloaded no {} of {name}=={version}", dist.as_str()),
            hint: "check the dist (sdist or wheel)".into(),
        })?;
    Ok((dir.join(&f), f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_dist_file_names() {
        assert!(is_dist_of(
            "MarkupSafe-2.1.5.tar.gz",
            "markupsafe",
            "2.1.5",
            Dist::Sdist
        ));
        assert!(is_dist_of(
            "markupsafe-2.1.5.tar.gz",
            "MarkupSafe",
            "2.1.5",
            Dist::Sdist
        ));
        assert!(!is_dist_of(
            "MarkupSafe-2.1.50.tar.gz",
            "markupsafe",
            "2.1.5",
            Dist::Sdist
        ));
        assert!(is_dist_of(
            "zope.interface-6.0.tar.gz",
            "zope-interface",
            "6.0",
            Dist::Sdist
        ));
        assert!(is_dist_of(
            "setuptools-69.5.1-py3-none-any.whl",
            "setuptools",
            "69.5.1",
            Dist::Wheel
        ));
        assert!(!is_dist_of(
            "setuptools-69.5.1.tar.gz",
            "setuptools",
            "69.5.1",
            Dist::Wheel
        ));
        assert!(is_dist_of(
            "typing_extensions-4.12.2-py3-none-any.whl",
            "typing-extensions",
            "4.12.2",
            Dist::Wheel
        ));
    }

    #[test]
    fn parses_html_listings() {
        let html = r#"<html><body><a href="../../packages/aa/six-1.16.0.tar.gz#sha256=1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926" data-requires-python=">=2.7">six-1.16.0.tar.gz</a><br/></body></html>"#;
        let l = parse_html_listing(html);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].filename, "six-1.16.0.tar.gz");
        assert_eq!(l[0].url, "../../packages/aa/six-1.16.0.tar.gz");
        assert!(l[0].sha256.as_deref().unwrap().starts_with("1e61c374"));
        assert_eq!(l[0].requires_python.as_deref(), Some(">=2.7"));
        assert!(!l[0].yanked);
        // PEP 503's attributes, entity-encoded, in any order; a yanked file.
        let html = "<a data-requires-python=\"&gt;=3.8, !=3.9.*\" href='x/a-1.0-py3-none-any.whl#sha256=ab' data-yanked>a-1.0-py3-none-any.whl</a>\n\
                    <a href=\"x/a-1.1.tar.gz\" data-yanked=\"broken &amp; bad\">a-1.1.tar.gz</a>";
        let l = parse_html_listing(html);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].url, "x/a-1.0-py3-none-any.whl");
        assert_eq!(l[0].requires_python.as_deref(), Some(">=3.8, !=3.9.*"));
        assert!(l[0].yanked && l[1].yanked);
        assert_eq!(l[1].sha256, None);
        assert!(is_file_of("A-1.1.tar.gz", "a") && !is_file_of("ab-1.1.tar.gz", "a"));
        assert!(is_file_of(
            "zope.interface-6.0-cp311-cp311-linux_s390x.whl",
            "zope-interface"
        ));
    }

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact("https://u:p@example.invalid/simple/"),
            "https://***@example.invalid/simple/"
        );
    }
}
