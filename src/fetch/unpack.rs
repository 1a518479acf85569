//! Unpacking an untrusted archive (an sdist): regular files and
//! directories only, every path inside the destination, a size limit.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// A relative path with no `..`, root or prefix: safe to join.
fn confined(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Most bytes an unpacked sdist may take (a zip bomb stops here).
const MAX_UNPACKED: u64 = 2 << 30;

/// Unpack `archive` (`.tar.gz`, `.tar.bz2`, `.tar.xz`, `.tar` or `.zip`)
/// into `dest`: regular files and directories only; links and devices are
/// left out. Returns the project directory (the single top directory).
pub fn unpack(archive: &Path, dest: &Path) -> Result<PathBuf, String> {
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let io = |e: std::io::Error| format!("cannot unpack {name}: {e}");
    let mut total = 0u64;
    let mut write = |rel: &Path, r: &mut dyn Read| -> Result<(), String> {
        let Some(rel) = confined(rel) else {
            return Ok(());
        };
        let path = dest.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut f = std::fs::File::create(&path).map_err(io)?;
        let n = std::io::copy(&mut r.take(MAX_UNPACKED - total + 1), &mut f).map_err(io)?;
        total += n;
        if total > MAX_UNPACKED {
            return Err(format!("{name} unpacks to more than 2 GiB"));
        }
        Ok(())
    };
    if name.ends_with(".zip") {
        let f = std::fs::File::open(archive).map_err(io)?;
        let mut z = zip::ZipArchive::new(f).map_err(|e| format!("{name} is not a zip: {e}"))?;
        for i in 0..z.len() {
            let mut e = z.by_index(i).map_err(|e| format!("{name}: {e}"))?;
            if e.is_file() && !e.is_symlink() {
                let Some(p) = e.enclosed_name() else { continue };
                write(&p, &mut e)?;
            }
        }
    } else {
        let f = std::fs::File::open(archive).map_err(io)?;
        let r: Box<dyn Read> = if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Box::new(flate2::read::GzDecoder::new(f))
        } else if name.ends_with(".tar.bz2") || name.ends_with(".tar.xz") {
            return Err(format!(
                "{name}: refine reads .tar.gz and .zip sdists (PEP 625); this one needs unpacking by hand"
            ));
        } else {
            Box::new(f)
        };
        let mut t = tar::Archive::new(r);
        for e in t.entries().map_err(io)? {
            let mut e = e.map_err(io)?;
            if !e.header().entry_type().is_file() {
                continue;
            }
            let p = e.path().map_err(io)?.into_owned();
            write(&p, &mut e)?;
        }
    }
    let tops: Vec<PathBuf> = std::fs::read_dir(dest)
        .map_err(io)?
        .flatten()
        .map(|e| e.path())
        .collect();
    Ok(match tops.as_slice() {
        [one] if one.is_dir() => one.clone(),
        _ => dest.to_path_buf(),
    })
}
