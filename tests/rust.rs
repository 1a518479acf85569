//! The Rust flagships, for s390x (hybrid: the host's rustc compiling for
//! s390x) and for x86_64, each from an empty store: cryptography against
//! the openssl pack and rpds-py (PyO3), built offline from their vendored
//! crates, repaired, installed in a clean container of their architecture
//! with no packs mounted, and exercised: a Fernet round trip and the
//! OpenSSL cryptography was linked against (the pack's: OpenSSL 3.0), and
//! rpds' persistent maps. rpds-py for s390x alone runs in CI
//! (tests/s390x.rs); the rest takes tens of minutes, so it is opt-in:
//!
//! ```sh
//! cargo test --release --test rust -- --ignored --nocapture
//! ```

mod common;
use common::{Run, image_tag, in_container, shipped};
use std::path::Path;

fn flagships(arch: &str) {
    let ws = shipped();
    let store = ws.root().join("store");
    let start = std::time::Instant::now();
    let mut c = ws.cmd_in(&store);
    c.args([
        "--arch",
        arch,
        "build",
        "--json",
        "//repairs:cryptography",
        "//repairs:rpds-py",
        // The clean container the wheels are installed in: the target's
        // plain image, not the Rust one the builds used.
        "//images:bookworm",
    ]);
    // cffi 2 and pycparser for cryptography at run time (prebuilt wheels
    // of the index, as its build uses them).
    c.args(["//sources:pycparser"])
        .arg(format!("//sources:cffi-2-{arch}"));
    let r: Run = c.output().unwrap().into();
    r.ok();
    let took = start.elapsed();
    for (label, v) in r.verdicts() {
        if v == "built" {
            let ms = r
                .events()
                .into_iter()
                .find(|e| e["event"] == "finished" && e["label"] == label.as_str())
                .and_then(|e| e["duration_ms"].as_u64())
                .unwrap_or(0);
            eprintln!("{arch}: {label} built in {:.1} s", ms as f64 / 1000.0);
        }
    }
    eprintln!(
        "{arch}: everything from an empty store in {:.0} s",
        took.as_secs_f64()
    );
    let dist = ws.root().join("dist");
    let names: Vec<String> = std::fs::read_dir(&dist)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".whl"))
        .collect();
    let machine = refine::rules::Arch::parse(arch).unwrap().elf_machine();
    for prefix in ["cryptography-", "rpds_py-"] {
        let w = names
            .iter()
            .find(|n| n.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix}: {names:?}"));
        assert!(
            w.contains("manylinux") && w.ends_with(&format!("_{arch}.whl")),
            "{w}"
        );
        let files = refine::wheel::read_wheel(&dist.join(w)).unwrap();
        let elves: Vec<u16> = files
            .iter()
            .filter_map(|f| refine::wheel::elf_machine(&f.data))
            .collect();
        assert!(
            !elves.is_empty() && elves.iter().all(|m| *m == machine),
            "{w}"
        );
        if prefix == "cryptography-" {
            assert!(
                files.iter().any(|f| f.name.contains(".libs/libssl")),
                "the pack's OpenSSL grafted into {w}"
            );
        }
    }
    let image = image_tag(&r, "//images:bookworm");
    let script = r#"set -e
python3 -m venv /tmp/v
/tmp/v/bin/pip install -q --no-index /dist/*.whl
/tmp/v/bin/pip check
/tmp/v/bin/python - <<'PY'
import platform
from cryptography.fernet import Fernet
f = Fernet(Fernet.generate_key())
assert f.decrypt(f.encrypt(b"refine")) == b"refine"
from cryptography.hazmat.backends.openssl.backend import backend
print("openssl", backend.openssl_version_text())
import rpds
m = rpds.HashTrieMap({"a": 1}).insert("b", 2)
assert m["b"] == 2 and len(m) == 2
print("machine", platform.machine(), "rpds", sorted(m.keys()))
PY
"#;
    let (ok, out, err) = in_container(&image, arch, &[(Path::new(&dist), "/dist")], script);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("openssl OpenSSL 3.0."), "{out}");
    // The pack's providers are in libcrypto (`no-module`): the legacy one
    // loads without a modules directory.
    assert!(!err.contains("legacy provider failed"), "{err}");
    assert!(
        out.contains(&format!("machine {arch} rpds ['a', 'b']")),
        "{out}"
    );
}

#[test]
#[ignore = "long builds (see docs/BENCHMARKS.md): run with `cargo test --test rust -- --ignored`"]
fn cryptography_and_rpds_for_s390x() {
    flagships("s390x");
}

#[test]
#[ignore = "long builds (see docs/BENCHMARKS.md): run with `cargo test --test rust -- --ignored`"]
fn cryptography_and_rpds_for_x86_64() {
    flagships("x86_64");
}
