//! The salsa database and its inputs.

use crate::key::Digest;
use crate::platform::Arch;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A workspace file whose text is an input: `WORKSPACE.toml` or a rule file.
#[salsa::input(debug)]
pub struct SourceFile {
    /// Workspace-relative path.
    #[returns(ref)]
    pub path: String,
    #[returns(ref)]
    pub text: String,
}

/// A file a derivation depends on by content: a recipe or one it includes.
#[salsa::input(debug)]
pub struct AuxFile {
    #[returns(ref)]
    pub path: String,
    /// `None` when the file does not exist.
    #[returns(ref)]
    pub digest: Option<Digest>,
}

/// Settings from the command line that override `WORKSPACE.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Overrides {
    pub arch: Option<Arch>,
    pub policy: Option<String>,
    pub python: Option<String>,
    pub toolchain: Option<crate::platform::Toolchain>,
    pub frontend_python: Option<crate::platform::FrontendPython>,
}

impl Overrides {
    /// The platform of a run: WORKSPACE.toml's, with the command line's
    /// overrides (the one place they are applied).
    pub fn apply(&self, mut p: crate::platform::Platform) -> crate::platform::Platform {
        if let Some(a) = self.arch {
            p.arch = a;
        }
        if let Some(pol) = &self.policy {
            p.policy = pol.clone();
        }
        if let Some(py) = &self.python {
            p.python = py.clone();
        }
        if let Some(t) = self.toolchain {
            p.toolchain = t;
        }
        if let Some(f) = self.frontend_python {
            p.frontend_python = Some(f);
        }
        p
    }
}

#[salsa::input(debug)]
pub struct Workspace {
    pub config: SourceFile,
    #[returns(ref)]
    pub files: Vec<SourceFile>,
    #[returns(ref)]
    pub overrides: Overrides,
}

#[salsa::db]
pub trait Db: salsa::Database {
    /// The input for a workspace-relative file, created (read) on first use.
    fn aux_file(&self, path: &str) -> AuxFile;
    /// Record that a query ran, when logging is on (tests, `--explain-eval`).
    fn log_query(&self, query: &str, arg: &dyn std::fmt::Display);
    /// Why a workspace file reads as nothing (missing, or a link out).
    fn file_problem(&self, path: &str) -> String {
        format!("`{path}` does not exist")
    }
}

#[salsa::db]
#[derive(Clone)]
pub struct Database {
    storage: salsa::Storage<Self>,
    files: crate::workspace::Files,
    aux: Arc<Mutex<HashMap<String, AuxFile>>>,
    log: Option<Arc<Mutex<Vec<String>>>>,
}

impl Database {
    pub fn new(files: crate::workspace::Files) -> Self {
        Database {
            storage: salsa::Storage::default(),
            files,
            aux: Arc::default(),
            log: None,
        }
    }

    /// A database that records every query execution (see [`Database::take_log`]).
    pub fn with_log(files: crate::workspace::Files) -> Self {
        Database {
            log: Some(Arc::default()),
            ..Database::new(files)
        }
    }

    pub fn root(&self) -> &Path {
        &self.files.root
    }

    pub fn files(&self) -> &crate::workspace::Files {
        &self.files
    }

    pub fn take_log(&self) -> Vec<String> {
        match &self.log {
            Some(l) => std::mem::take(&mut *l.lock().unwrap_or_else(|e| e.into_inner())),
            None => Vec::new(),
        }
    }

    /// The recipe inputs read so far, to refresh after an edit.
    pub fn aux_files(&self) -> Vec<AuxFile> {
        self.aux
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .copied()
            .collect()
    }

    /// Re-read an aux file from disk and update its input if it changed.
    pub fn refresh_aux(&mut self, file: AuxFile) {
        use salsa::Setter;
        let path = file.path(self).clone();
        let digest = self.files.digest(&path);
        if file.digest(self) != &digest {
            file.set_digest(self).to(digest);
        }
    }
}

#[salsa::db]
impl salsa::Database for Database {}

#[salsa::db]
impl Db for Database {
    fn aux_file(&self, path: &str) -> AuxFile {
        let mut map = self.aux.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = map.get(path) {
            return *f;
        }
        let digest = self.files.digest(path);
        let f = AuxFile::new(self, path.to_string(), digest);
        map.insert(path.to_string(), f);
        f
    }

    fn file_problem(&self, path: &str) -> String {
        self.files.problem(path)
    }

    fn log_query(&self, query: &str, arg: &dyn std::fmt::Display) {
        if let Some(l) = &self.log {
            l.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{query}({arg})"));
        }
    }
}
