//! Build logs: one file per build, under `logs/<arch>/<kind>/<name>/`.

use crate::key::Key;
use crate::platform::Arch;
use crate::rules::Label;
use std::path::{Path, PathBuf};

/// The build logs (`<root>/logs/`).
pub struct Logs {
    root: PathBuf,
}

impl Logs {
    pub fn new(store_root: &Path) -> Logs {
        Logs {
            root: store_root.to_path_buf(),
        }
    }

    /// A fresh log file path for a build of `label` with `key`.
    pub fn new_path(&self, arch: Arch, label: &Label, key: &Key) -> PathBuf {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        self.root
            .join("logs")
            .join(arch.as_str())
            .join(label.path())
            .join(format!("{t}-{}.log", key.short()))
    }

    /// A recorded log path, found in this store (see [`rebase_log`]).
    pub fn rebase(&self, p: PathBuf) -> PathBuf {
        rebase_log(&self.root, p)
    }
}

/// A recorded log path, in the store at `root` wherever the store now is: a
/// store moved or restored elsewhere (a CI cache) keeps the absolute paths
/// of where it was built, `<old root>/logs/<arch>/<kind>/<name>/<file>`
/// (in its label index and its history).
pub fn rebase_log(root: &Path, p: PathBuf) -> PathBuf {
    if p.starts_with(root) {
        return p;
    }
    let parts: Vec<_> = p.components().collect();
    match parts.len().checked_sub(5).map(|i| &parts[i..]) {
        Some([logs, rest @ ..]) if logs.as_os_str() == "logs" => {
            let mut q = root.join("logs");
            q.extend(rest.iter());
            q
        }
        _ => p,
    }
}

#[cfg(test)]
mod tests {
    use super::rebase_log;
    use std::path::{Path, PathBuf};

    #[test]
    fn a_log_of_a_moved_store_is_found_in_the_store_where_it_now_is() {
        let root = Path::new("/ci/cache/store");
        let old = PathBuf::from("/home/u/.cache/refine/logs/s390x/wheels/six/17-ab.log");
        assert_eq!(
            rebase_log(root, old),
            Path::new("/ci/cache/store/logs/s390x/wheels/six/17-ab.log")
        );
        let here = root.join("logs/s390x/wheels/six/17-ab.log");
        assert_eq!(rebase_log(root, here.clone()), here);
        // Anything not shaped like a store's log is left as it was.
        for p in ["/etc/passwd", "/x/notlogs/s390x/wheels/six/a.log", "a.log"] {
            assert_eq!(rebase_log(root, PathBuf::from(p)), Path::new(p));
        }
    }
}
