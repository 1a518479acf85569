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

/// A file an index lists.
#[derive(Debug, Clone)]
struct Listed {
    filename: String,
    url: String,
    sha256: Option<String>,
}

fn parse_json_listing(text: &str) -> Vec<Listed> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    v["files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .filter_map(|f| {
                    Some(Listed {
                        filename: f["filename"].as_str()?.to_string(),
                        url: f["url"].as_str()?.to_string(),
                        sha256: f["hashes"]["sha256"].as_str().map(str::to_string),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// PEP 503 HTML: `<a href="URL#sha256=HEX">FILENAME</a>`.
fn parse_html_listing(text: &str) -> Vec<Listed> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("<a ") {
        rest = &rest[i + 3..];
        let Some(h) = rest.find("href=\"") else { break };
        let after = &rest[h + 6..];
        let Some(end) = after.find('"') else { break };
        let href = after[..end].replace("&amp;", "&");
        // The tag ends at the first `>` outside quotes.
        let mut quote = None;
        let Some(gt) = after[end + 1..]
            .char_indices()
            .find_map(|(i, c)| match (quote, c) {
                (None, '"' | '\'') => {
                    quote = Some(c);
                    None
                }
                (Some(q), c) if c == q => {
                    quote = None;
                    None
                }
                (None, '>') => Some(i + end + 1),
                _ => None,
            })
        else {
            break;
        };
        let Some(close) = after[gt..].find("</a>") else {
            break;
        };
        let filename = after[gt + 1..gt + close].trim().to_string();
        let (url, frag) = href.split_once('#').unwrap_or((href.as_str(), ""));
        let sha256 = frag.strip_prefix("sha256=").map(str::to_string);
        out.push(Listed {
            filename,
            url: url.to_string(),
            sha256,
        });
        rest = &after[gt + close..];
    }
    out
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
    let mut seen: Vec<Listed> = Vec::new();
    // Local find-links directories first: no network at all.
    for fl in &cfg.find_links {
        let dir = Path::new(fl.strip_prefix("file://").unwrap_or(fl));
        if !dir.is_dir() {
            continue;
        }
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let f = e.file_name().to_string_lossy().into_owned();
            if is_dist_of(&f, name, version, dist) {
                let (d, _) = sha256_file(&e.path())?;
                if &d == pin {
                    writeln!(log, "fetch: found {f} in find-links {}", dir.display())?;
                    let dest = tmp.join(&f);
                    std::fs::copy(e.path(), &dest)?;
                    return Ok((dest, f));
                }
            }
        }
    }
    let mut indexes: Vec<String> = Vec::new();
    if !cfg.no_index {
        indexes.push(cfg.index_url.clone());
        indexes.extend(cfg.extra_index_urls.iter().cloned());
    }
    indexes.extend(
        cfg.find_links
            .iter()
            .filter(|f| f.starts_with("http"))
            .cloned(),
    );
    let project = normalize_name(name);
    let mut last_err = None;
    for index in &indexes {
        let page = if cfg.find_links.contains(index) {
            index.clone()
        } else {
            format!("{}/{project}/", index.trim_end_matches('/'))
        };
        writeln!(log, "fetch: listing {}", redact(&page))?;
        let (ctype, text) = match get_text(
            &page,
            "application/vnd.pypi.simple.v1+json, text/html;q=0.1",
        ) {
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
        let hit = listed.iter().find(|l| {
            l.sha256.as_deref() == Some(pin.hex()) && is_dist_of(&l.filename, name, version, dist)
        });
        if let Some(l) = hit {
            let url = reqwest::Url::parse(&page)
                .and_then(|b| b.join(&l.url))
                .map(|u| u.to_string())
                .unwrap_or_else(|_| l.url.clone());
            let dest = tmp.join(file_name(&l.filename));
            writeln!(log, "fetch: downloading {}", l.filename)?;
            download(&url, &dest)?;
            return Ok((dest, l.filename.clone()));
        }
        seen.extend(
            listed
                .into_iter()
                .filter(|l| is_dist_of(&l.filename, name, version, dist)),
        );
    }
    if seen.is_empty()
        && let Some(e) = last_err
    {
        return Err(e);
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
    }

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact("https://u:p@example.invalid/simple/"),
            "https://***@example.invalid/simple/"
        );
    }
}
