//! A source distribution, opened for its build system: unpacked (see
//! [`crate::fetch::unpack`]) and its `pyproject.toml`'s `[build-system]`
//! read.

/// `[build-system]` of a project, with PEP 517's defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildSystem {
    /// `requires`, as written (PEP 508 strings).
    pub requires: Vec<String>,
    /// `build-backend` (`module:object`).
    pub backend: String,
    pub backend_path: Vec<String>,
    /// Where this came from, for the import's notes.
    pub origin: &'static str,
}

/// What pip assumes for a project without `[build-system]` (PEP 517's
/// fallback: setuptools' legacy backend).
fn legacy(origin: &'static str, requires: Option<Vec<String>>) -> BuildSystem {
    BuildSystem {
        requires: requires
            .unwrap_or_else(|| vec!["setuptools>=40.8.0".to_string(), "wheel".to_string()]),
        backend: "setuptools.build_meta:__legacy__".into(),
        backend_path: Vec::new(),
        origin,
    }
}

/// Read `[build-system]` from a pyproject.toml's text.
pub fn build_system(pyproject: Option<&str>) -> Result<BuildSystem, String> {
    let Some(text) = pyproject else {
        return Ok(legacy(
            "no pyproject.toml: setuptools' legacy backend",
            None,
        ));
    };
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("pyproject.toml does not parse: {}", e.message()))?;
    let Some(bs) = doc.get("build-system") else {
        return Ok(legacy(
            "pyproject.toml has no [build-system]: setuptools' legacy backend",
            None,
        ));
    };
    let bs = bs
        .as_table()
        .ok_or("pyproject.toml: [build-system] is not a table")?;
    let strings = |key: &str| -> Result<Option<Vec<String>>, String> {
        match bs.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_array()
                .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect())
                .map(Some)
                .ok_or(format!(
                    "pyproject.toml: build-system.{key} is not a list of strings"
                )),
        }
    };
    let requires = strings("requires")?;
    match bs.get("build-backend").and_then(|b| b.as_str()) {
        None => Ok(legacy(
            "pyproject.toml names no build-backend: setuptools' legacy backend",
            requires,
        )),
        Some(backend) => Ok(BuildSystem {
            requires: requires.unwrap_or_default(),
            backend: backend.to_string(),
            backend_path: strings("backend-path")?.unwrap_or_default(),
            origin: "pyproject.toml",
        }),
    }
}

pub use crate::fetch::unpack::unpack;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_systems_with_pep_517_defaults() {
        let b = build_system(None).unwrap();
        assert_eq!(b.backend, "setuptools.build_meta:__legacy__");
        assert_eq!(b.requires, ["setuptools>=40.8.0", "wheel"]);
        let b = build_system(Some("[project]\nname = \"x\"\n")).unwrap();
        assert_eq!(b.backend, "setuptools.build_meta:__legacy__");
        let b = build_system(Some(
            "[build-system]\nrequires = [\"setuptools>=61\", \"cython\"]\n",
        ))
        .unwrap();
        assert_eq!(b.requires, ["setuptools>=61", "cython"]);
        assert_eq!(b.backend, "setuptools.build_meta:__legacy__");
        let b = build_system(Some(
            "[build-system]\nrequires = [\"flit_core >=3.2,<4\"]\nbuild-backend = \"flit_core.buildapi\"\nbackend-path = [\".\"]\n",
        ))
        .unwrap();
        assert_eq!(b.backend, "flit_core.buildapi");
        assert_eq!(b.backend_path, ["."]);
        assert!(build_system(Some("[build-system]\nrequires = \"x\"\n")).is_err());
        assert!(build_system(Some("[build-system\n")).is_err());
    }

    #[test]
    fn unpacks_files_only_and_stays_inside() {
        let d = tempfile::tempdir().unwrap();
        let tgz = d.path().join("x-1.0.tar.gz");
        {
            let f = std::fs::File::create(&tgz).unwrap();
            let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            let mut t = tar::Builder::new(gz);
            let mut add = |path: &str, body: &[u8], kind: tar::EntryType, link: Option<&str>| {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(kind);
                h.set_size(body.len() as u64);
                h.set_mode(0o644);
                if let Some(l) = link {
                    h.set_link_name(l).unwrap();
                }
                // set_path refuses `..`; write the raw name as an attacker would.
                let name = &mut h.as_old_mut().name;
                name[..path.len()].copy_from_slice(path.as_bytes());
                h.set_cksum();
                t.append(&h, body).unwrap();
            };
            add(
                "x-1.0/pyproject.toml",
                b"[build-system]\n",
                tar::EntryType::Regular,
                None,
            );
            add("x-1.0/../../escaped", b"no", tar::EntryType::Regular, None);
            add("x-1.0/link", b"", tar::EntryType::Symlink, Some("/etc"));
            t.into_inner().unwrap().finish().unwrap();
        }
        let out = d.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let top = unpack(&tgz, &out).unwrap();
        assert_eq!(top, out.join("x-1.0"));
        assert!(top.join("pyproject.toml").is_file());
        assert!(!top.join("link").exists());
        assert!(!d.path().join("escaped").exists() && !out.join("escaped").exists());
    }
}
