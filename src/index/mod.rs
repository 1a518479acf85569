//! A package index of built wheels, as pip and uv read one: PEP 503 HTML
//! (normalized project names, `#sha256=` links, `data-requires-python`),
//! PEP 691 JSON beside it (API 1.1, with PEP 700's versions and sizes),
//! and each wheel's core metadata as a file of its own (PEP 658, named by
//! PEP 714's `data-core-metadata`, with the older
//! `data-dist-info-metadata` too).
//!
//! Rendering is pure and deterministic (sorted, no times): the same wheels
//! give the same bytes. [`write_static`] lays it out in a directory,
//! written to a temporary directory and renamed into place; `refine
//! serve` renders the same pages at `/simple/`.
//!
//! Layout: `simple/index.html`, `simple/index.json`,
//! `simple/<project>/index.html`, `simple/<project>/index.json`,
//! `files/<wheel>`, `files/<wheel>.metadata`.

use crate::rules::normalize_name;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One wheel of the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Normalized (PEP 503).
    pub project: String,
    pub version: String,
    pub filename: String,
    pub sha256: String,
    pub size: u64,
    pub requires_python: Option<String>,
    /// The wheel's `METADATA`.
    pub metadata: Vec<u8>,
    pub metadata_sha256: String,
}

fn sha256_hex(b: &[u8]) -> String {
    crate::key::sha256_bytes(b).hex().to_string()
}

/// Read what the index says of a wheel file.
pub fn entry_of(path: &Path) -> Result<Entry, String> {
    let filename = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or("no file name")?;
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    entry_from(&filename, &bytes)
}

/// What the index says of a wheel named `filename` with these bytes.
pub fn entry_from(filename: &str, bytes: &[u8]) -> Result<Entry, String> {
    let filename = filename.to_string();
    let (name, version, ..) = crate::wheel::parse_filename(&filename)
        .ok_or_else(|| format!("{filename} is not a wheel file name"))?;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("{filename}: not a zip: {e}"))?;
    let meta_name = (0..z.len())
        .filter_map(|i| {
            z.by_index(i)
                .ok()
                .and_then(|e| e.name().ok().map(|n| n.to_string()))
        })
        .find(|n| n.ends_with(".dist-info/METADATA") && n.matches('/').count() == 1)
        .ok_or_else(|| format!("{filename} has no .dist-info/METADATA"))?;
    let mut metadata = Vec::new();
    z.by_name(&meta_name)
        .map_err(|e| format!("{filename}: {e}"))?
        .read_to_end(&mut metadata)
        .map_err(|e| format!("{filename}: {e}"))?;
    let requires_python = String::from_utf8_lossy(&metadata)
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            l.strip_prefix("Requires-Python:")
                .map(|v| v.trim().to_string())
        });
    Ok(Entry {
        project: normalize_name(&name),
        version,
        sha256: sha256_hex(bytes),
        size: bytes.len() as u64,
        metadata_sha256: sha256_hex(&metadata),
        metadata,
        requires_python,
        filename,
    })
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Entries grouped by project, each sorted by file name.
pub fn by_project(entries: &[Entry]) -> BTreeMap<String, Vec<&Entry>> {
    let mut m: BTreeMap<String, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        m.entry(e.project.clone()).or_default().push(e);
    }
    for v in m.values_mut() {
        v.sort_by(|a, b| a.filename.cmp(&b.filename));
        v.dedup_by(|a, b| a.filename == b.filename);
    }
    m
}

/// `simple/index.html`: every project.
pub fn root_html(projects: &[&str]) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html>\n<head><meta name=\"pypi:repository-version\" content=\"1.1\"><title>Simple index</title></head>\n<body>\n",
    );
    for p in projects {
        let _ = writeln!(s, "<a href=\"{0}/\">{0}</a><br>", escape(p));
    }
    s.push_str("</body>\n</html>\n");
    s
}

/// `simple/index.json` (PEP 691).
pub fn root_json(projects: &[&str]) -> String {
    let v = serde_json::json!({
        "meta": {"api-version": "1.1"},
        "projects": projects.iter().map(|p| serde_json::json!({"name": p})).collect::<Vec<_>>(),
    });
    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
}

/// `simple/<project>/index.html`; `files` is the URL of the files
/// directory as seen from the project page (`../../files` statically).
pub fn project_html(project: &str, entries: &[&Entry], files: &str) -> String {
    let mut s = format!(
        "<!DOCTYPE html>\n<html>\n<head><meta name=\"pypi:repository-version\" content=\"1.1\"><title>Links for {0}</title></head>\n<body>\n<h1>Links for {0}</h1>\n",
        escape(project)
    );
    for e in entries {
        let mut attrs = String::new();
        if let Some(rp) = &e.requires_python {
            let _ = write!(attrs, " data-requires-python=\"{}\"", escape(rp));
        }
        let _ = write!(
            attrs,
            " data-dist-info-metadata=\"sha256={0}\" data-core-metadata=\"sha256={0}\"",
            e.metadata_sha256
        );
        let _ = writeln!(
            s,
            "<a href=\"{files}/{}#sha256={}\"{attrs}>{}</a><br>",
            escape(&e.filename),
            e.sha256,
            escape(&e.filename)
        );
    }
    s.push_str("</body>\n</html>\n");
    s
}

/// `simple/<project>/index.json` (PEP 691, with PEP 700's fields).
pub fn project_json(project: &str, entries: &[&Entry], files: &str) -> String {
    let mut versions: Vec<&str> = entries.iter().map(|e| e.version.as_str()).collect();
    versions.sort();
    versions.dedup();
    let files: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            let mut f = serde_json::json!({
                "filename": e.filename,
                "url": format!("{files}/{}", e.filename),
                "hashes": {"sha256": e.sha256},
                "size": e.size,
                "core-metadata": {"sha256": e.metadata_sha256},
                "data-dist-info-metadata": {"sha256": e.metadata_sha256},
                "yanked": false,
            });
            if let Some(rp) = &e.requires_python {
                f["requires-python"] = rp.clone().into();
            }
            f
        })
        .collect();
    let v = serde_json::json!({
        "meta": {"api-version": "1.1"},
        "name": project,
        "versions": versions,
        "files": files,
    });
    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
}

/// Lay out an index of `wheels` in `dir`: built in a temporary directory
/// beside it, then renamed into place (an old index is replaced whole).
pub fn write_static(dir: &Path, wheels: &[PathBuf]) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    for w in wheels {
        entries.push(entry_of(w)?);
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".refine-index-")
        .tempdir_in(parent)
        .map_err(|e| format!("{}: {e}", parent.display()))?;
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let root = tmp.path();
    let files = root.join("files");
    std::fs::create_dir_all(&files).map_err(|e| io(&files, e))?;
    for (w, e) in wheels.iter().zip(&entries) {
        let dest = files.join(&e.filename);
        std::fs::copy(w, &dest).map_err(|x| io(&dest, x))?;
        let meta = files.join(format!("{}.metadata", e.filename));
        std::fs::write(&meta, &e.metadata).map_err(|x| io(&meta, x))?;
    }
    let groups = by_project(&entries);
    let projects: Vec<&str> = groups.keys().map(String::as_str).collect();
    let simple = root.join("simple");
    std::fs::create_dir_all(&simple).map_err(|e| io(&simple, e))?;
    let write = |p: PathBuf, text: String| std::fs::write(&p, text).map_err(|e| io(&p, e));
    write(simple.join("index.html"), root_html(&projects))?;
    write(simple.join("index.json"), root_json(&projects))?;
    for (project, list) in &groups {
        let d = simple.join(project);
        std::fs::create_dir_all(&d).map_err(|e| io(&d, e))?;
        write(
            d.join("index.html"),
            project_html(project, list, "../../files"),
        )?;
        write(
            d.join("index.json"),
            project_json(project, list, "../../files"),
        )?;
    }
    // Into place: the old index (if any) aside, the new one in, the old gone.
    let old = parent.join(format!(".refine-index-old-{}", std::process::id()));
    let had_old = dir.exists();
    if had_old {
        std::fs::rename(dir, &old).map_err(|e| io(dir, e))?;
    }
    let kept = tmp.keep();
    if let Err(e) = std::fs::rename(&kept, dir) {
        if had_old {
            let _ = std::fs::rename(&old, dir);
        }
        let _ = std::fs::remove_dir_all(&kept);
        return Err(io(dir, e));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn wheel(dir: &Path, name: &str, version: &str, requires: Option<&str>) -> PathBuf {
        let p = dir.join(format!("{name}-{version}-py3-none-any.whl"));
        let f = std::fs::File::create(&p).unwrap();
        let mut z = zip::ZipWriter::new(f);
        let o = zip::write::SimpleFileOptions::default()
            .last_modified_time(zip::DateTime::from_date_and_time(2020, 1, 1, 0, 0, 0).unwrap());
        z.start_file(format!("{name}.py"), o).unwrap();
        z.write_all(b"x = 1\n").unwrap();
        let mut meta = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
        if let Some(r) = requires {
            meta.push_str(&format!("Requires-Python: {r}\n"));
        }
        meta.push_str("\nA description.\nRequires-Python: not this one\n");
        z.start_file(format!("{name}-{version}.dist-info/METADATA"), o)
            .unwrap();
        z.write_all(meta.as_bytes()).unwrap();
        z.finish().unwrap();
        p
    }

    #[test]
    fn a_static_index_pip_can_read_the_same_bytes_twice() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let a = wheel(&src, "Foo_Bar", "1.0", Some(">=3.8"));
        let b = wheel(&src, "six", "1.17.0", None);
        let out = d.path().join("index");
        let entries = write_static(&out, &[a.clone(), b.clone()]).unwrap();
        assert_eq!(entries[0].project, "foo-bar");
        assert_eq!(entries[0].requires_python.as_deref(), Some(">=3.8"));
        let page = std::fs::read_to_string(out.join("simple/foo-bar/index.html")).unwrap();
        assert!(
            page.contains(&format!(
                "<a href=\"../../files/Foo_Bar-1.0-py3-none-any.whl#sha256={}\" data-requires-python=\"&gt;=3.8\" data-dist-info-metadata=\"sha256={m}\" data-core-metadata=\"sha256={m}\">",
                entries[0].sha256,
                m = entries[0].metadata_sha256
            )),
            "{page}"
        );
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("simple/foo-bar/index.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(json["meta"]["api-version"], "1.1");
        assert_eq!(json["files"][0]["hashes"]["sha256"], entries[0].sha256);
        assert_eq!(json["files"][0]["requires-python"], ">=3.8");
        assert_eq!(json["versions"][0], "1.0");
        // The metadata file is the wheel's METADATA, by the hash the page gives.
        let meta = std::fs::read(out.join("files/Foo_Bar-1.0-py3-none-any.whl.metadata")).unwrap();
        assert_eq!(sha256_hex(&meta), entries[0].metadata_sha256);
        let root = std::fs::read_to_string(out.join("simple/index.html")).unwrap();
        assert!(root.contains("<a href=\"foo-bar/\">foo-bar</a>") && root.contains("six/"));
        // Deterministic: written again (in the other order), the same bytes.
        let snapshot = |p: &Path| -> Vec<(String, Vec<u8>)> {
            let mut v: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(p)
                .into_iter()
                .flatten()
                .filter(|e| e.file_type().is_file())
                .map(|e| {
                    (
                        e.path().strip_prefix(p).unwrap().display().to_string(),
                        std::fs::read(e.path()).unwrap(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        let first = snapshot(&out);
        write_static(&out, &[b, a]).unwrap();
        assert_eq!(snapshot(&out), first);
        // Nothing left beside it.
        let left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".refine-index"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
