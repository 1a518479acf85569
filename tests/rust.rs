//! The Rust flagships, for s390x (hybrid: the host's rustc compiling for
//! s390x) and for x86_64, each from an empty store: cryptography against
//! the openssl pack and rpds-py (PyO3), built offline from their vendored
//! crates, repaired, installed in a clean container of their architecture
//! with no packs mounted, and exercised: a Fernet round trip and the
//! OpenSSL cryptography was linked against (the pack's: OpenSSL 3.0), and
//! rpds' persistent maps. CI builds rpds-py for x86_64 (the host: no
//! emulation), and the same build with a crate missing, which must fail
//! offline; the rest (both flagships for both architectures, and the
//! missing-crate check for s390x) takes tens of minutes, so it is opt-in:
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
        // plain image, not the Rust one the builds used. six builds in it,
        // which loads it into podman (an image no step runs in stays in
        // the store only).
        "//images:bookworm",
        "//wheels:six",
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
    let machine = refine::platform::Arch::parse(arch).unwrap().elf_machine();
    for prefix in ["cryptography-", "rpds_py-"] {
        let w = names
            .iter()
            .find(|n| n.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix}: {names:?}"));
        // At the shipped floor: Rust's std and the extension linked by
        // Zig against glibc 2.17's symbols.
        assert!(
            w.contains(&format!("manylinux_2_17_{arch}")) && w.ends_with(&format!("_{arch}.whl")),
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

/// A Rust extension, rpds-py (PyO3), built offline in the Rust image from
/// its vendored crates (for s390x: the hybrid image, the host's rustc
/// compiling for s390x, build scripts run natively), repaired, and used in
/// a clean container of `arch`. The same build with one crate missing
/// from the vendored set fails offline, naming the crate, and never
/// reaches for the network.
fn rpds_offline(arch: &str) {
    let ws = shipped();
    let store = ws.root().join("store");
    let mut c = ws.cmd_in(&store);
    // The plain image too: the clean container that installs the wheel is
    // the target's own, without the Rust toolchain the build used.
    c.args([
        "--arch",
        arch,
        "build",
        "--json",
        "//repairs:rpds-py",
        "//images:bookworm",
        // Built in that image, so that podman has it (a stored image no
        // step runs in is not loaded).
        "//wheels:six",
    ]);
    let r: Run = c.output().unwrap().into();
    r.ok();
    let dist = ws.root().join("dist");
    let wheel = std::fs::read_dir(&dist)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("rpds_py-") && n.ends_with(".whl"))
        .unwrap();
    // At the shipped floor (manylinux2014): linked through Zig.
    assert!(
        wheel.contains(&format!("manylinux_2_17_{arch}"))
            && wheel.ends_with(&format!("_{arch}.whl")),
        "{wheel}"
    );
    let files = refine::wheel::read_wheel(&dist.join(&wheel)).unwrap();
    let so = files
        .iter()
        .find(|f| f.name.ends_with(".so"))
        .expect("a compiled extension");
    assert_eq!(
        refine::wheel::elf_machine(&so.data),
        Some(refine::platform::Arch::parse(arch).unwrap().elf_machine())
    );
    let mut c = ws.cmd_in(&store);
    c.args(["--arch", arch, "log", "//wheels:rpds-py"]);
    let log: Run = c.output().unwrap().into();
    // (rustc-web is whatever the machine's Debian mirrors carry: 1.85 in
    // bookworm, newer from its security updates.)
    assert!(
        log.stdout.contains("rust: rustc 1.")
            && log
                .stdout
                .contains("crates vendored from rpds_py-2026.9.1.crates.tar"),
        "{}",
        log.stdout
    );
    assert!(!log.stdout.contains("Downloading"), "{}", log.stdout);
    let image = image_tag(&r, "//images:bookworm");
    let (ok, out, err) = in_container(
        &image,
        arch,
        &[(&dist, "/dist")],
        &format!(
            "set -e\npython3 -m venv /tmp/v\n/tmp/v/bin/pip install -q --no-index /dist/{wheel}\n\
             /tmp/v/bin/python -c 'import platform, rpds; m = rpds.HashTrieMap({{\"a\": 1}}).insert(\"b\", 2); assert m[\"b\"] == 2; print(platform.machine(), sorted(m.keys()))'\n"
        ),
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(&format!("{arch} ['a', 'b']")), "{out}");

    // The same crates less one: an error, offline.
    let pin = "40699e7789b037bf9572be6f7b9a1321fa56f6b229b1e69f69645c9ff6753f1e";
    let full = store.join(format!("cas/sha256/{}/{pin}", &pin[..2]));
    let unpacked = tempfile::tempdir().unwrap();
    tar::Archive::new(std::fs::File::open(&full).unwrap())
        .unpack(unpacked.path())
        .unwrap();
    let vendor = unpacked.path().join("vendor");
    let gone = std::fs::read_dir(&vendor)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("archery-"))
        .expect("rpds-py needs archery");
    std::fs::remove_dir_all(vendor.join(&gone)).unwrap();
    std::fs::create_dir_all(ws.root().join("vendor")).unwrap();
    let broken = ws.root().join("vendor/rpds-broken.crates.tar");
    refine::fetch::cargo::pack(unpacked.path(), &broken).unwrap();
    let sha = common::sha256_hex(&std::fs::read(&broken).unwrap());
    ws.write(
        "rules/broken.toml",
        &format!(
            "[sources.rpds-broken-crates]\npath = \"vendor/rpds-broken.crates.tar\"\nsha256 = \"{sha}\"\n\n\
             [wheels.rpds-broken]\npackage = \"rpds-py\"\nsource = \"//sources:wheel-rpds-py\"\n\
             crates = \"//sources:rpds-broken-crates\"\nimage = \"//images:bookworm-rust\"\nruntime = \"//runtimes:system-rust\"\n\
             default_build_requires = false\nbuild_requires = [\"//sources:maturin-s390x\", \"//sources:maturin-x86_64\"]\n"
        ),
    );
    let mut c = ws.cmd_in(&store);
    c.args(["--arch", arch, "build", "//wheels:rpds-broken"]);
    let b: Run = c.output().unwrap().into();
    assert_eq!(b.code, 1, "{}", b.all());
    let mut c = ws.cmd_in(&store);
    c.args(["--arch", arch, "log", "//wheels:rpds-broken"]);
    let log: Run = c.output().unwrap().into();
    let name = gone.rsplit_once('-').unwrap().0;
    assert!(
        log.stdout.contains(&format!("`{name}`")) && log.stdout.contains("offline"),
        "the missing crate is named and cargo stays offline:\n{}",
        log.stdout
    );
    assert!(!log.stdout.contains("Downloading"), "{}", log.stdout);
}

#[test]
fn a_rust_extension_builds_offline_and_a_missing_crate_fails_offline() {
    rpds_offline("x86_64");
}

#[test]
#[ignore = "long builds (see docs/BENCHMARKS.md): run with `cargo test --test rust -- --ignored`"]
fn a_rust_extension_builds_offline_for_s390x_and_a_missing_crate_fails_offline() {
    rpds_offline("s390x");
}

/// A crate too new for Debian 12's Rust 1.85 (cbor2 6.3: let chains, Rust
/// 1.88), imported from a requirements file in a new workspace and built
/// for s390x with `--auto-apply`: the build fails in //images:bookworm-rust,
/// the hint moves the wheel to //images:bookworm-rust-1.96 (the host's
/// rustc 1.96 from bookworm-security, the target's standard library from
/// trixie: `cross.unpack`, `cross.suites`), and that one fix builds it. The
/// wheel is s390x at the floor and passes `refine test` in a clean s390x
/// container with a CBOR round trip. Opt-in (two Rust images and the
/// builds, several minutes from an empty store).
#[test]
#[ignore = "long builds (see docs/BENCHMARKS.md): run with `cargo test --test rust -- --ignored`"]
fn a_crate_too_new_for_rust_1_85_moves_to_the_1_96_image_and_works_on_s390x() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("store");
    let run = |dir: &Path, args: &[&str]| -> Run { common::refine_in(dir, &store, args) };
    run(d.path(), &["init", "ws"]).ok();
    let ws = d.path().join("ws");
    std::fs::write(ws.join("reqs.txt"), "cbor2==6.3.0\n").unwrap();
    run(&ws, &["import", "reqs.txt", "--name", "c"]).ok();
    let imported = ws.join("rules/imported/c.toml");
    let text = std::fs::read_to_string(&imported).unwrap();
    assert!(
        text.contains("image = \"//images:bookworm-rust\""),
        "{text}"
    );
    std::fs::write(
        &imported,
        format!(
            "{text}\n[[import.fixes]]\ntarget = \"//wheels:cbor2\"\n\
             test = \"python -c 'import cbor2; assert cbor2.loads(cbor2.dumps({{\\\"a\\\": [1, 2.5]}})) == {{\\\"a\\\": [1, 2.5]}}'\"\n"
        ),
    )
    .unwrap();
    run(&ws, &["import", "reqs.txt", "--name", "c"]).ok();
    let b = run(
        &ws,
        &["--arch", "s390x", "build", "--auto-apply", "//sets:c"],
    );
    assert_eq!(b.code, 0, "{}", b.all());
    let text = std::fs::read_to_string(&imported).unwrap();
    assert!(
        text.contains("image = \"//images:bookworm-rust-1.96\"")
            && text.contains("runtime = \"//runtimes:system-rust-1.96\""),
        "the fix is recorded: {text}"
    );
    assert_eq!(
        b.stderr
            .matches("auto-apply: building again (round")
            .count(),
        1,
        "one fix, one round: {}",
        b.stderr
    );
    let log = run(&ws, &["--arch", "s390x", "log", "//wheels:cbor2"]);
    assert!(log.stdout.contains("rust: rustc 1.96."), "{}", log.stdout);
    let dist = ws.join("dist");
    let wheel = std::fs::read_dir(&dist)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("cbor2-6.3.0-") && n.ends_with(".whl"))
        .expect("the cbor2 wheel");
    assert!(wheel.contains("manylinux_2_17_s390x"), "{wheel}");
    let t = run(&ws, &["--arch", "s390x", "test", "//sets:c"]);
    assert_eq!(t.code, 0, "{}", t.all());
}
