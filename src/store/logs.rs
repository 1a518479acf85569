//! Build logs: one file per build, under `logs/<arch>/<kind>/<name>/`.

use super::local::LocalStore;
use crate::key::Key;
use std::path::PathBuf;

impl LocalStore {
    /// A fresh log file path for a build of `label_path` with `key`.
    pub fn new_log_path(&self, arch: &str, label_path: &str, key: &Key) -> PathBuf {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        self.root
            .join("logs")
            .join(arch)
            .join(label_path)
            .join(format!("{t}-{}.log", key.short()))
    }
}
