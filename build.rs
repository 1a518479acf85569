//! Embeds the shipped rule set (the repository's `WORKSPACE.toml`,
//! `rules/`, `packs/`, `runtimes/` and `recipes/`) in the binary as the
//! built-in base: one copy of each file, the same bytes the repository
//! holds, so the rules users get can't drift from what the binary carries.
//! Cargo reruns this when any file under those directories changes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const DIRS: [&str; 4] = ["rules", "packs", "runtimes", "recipes"];

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(root, &p, out);
        } else if p.is_file() {
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let mut files = vec![PathBuf::from("WORKSPACE.toml")];
    println!("cargo:rerun-if-changed=WORKSPACE.toml");
    for d in DIRS {
        println!("cargo:rerun-if-changed={d}");
        walk(&root, &root.join(d), &mut files);
    }
    let mut src = String::from(
        "/// The built-in base: (workspace-relative path, bytes).\npub static FILES: &[(&str, &[u8])] = &[\n",
    );
    for f in &files {
        let rel = f.to_str().expect("UTF-8 paths in the base");
        writeln!(
            src,
            "    ({rel:?}, include_bytes!({:?})),",
            root.join(f).to_str().unwrap()
        )
        .unwrap();
    }
    src.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("base.rs");
    std::fs::write(out, src).unwrap();
}
