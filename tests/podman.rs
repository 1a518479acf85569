//! The shipped workspace, for real: podman containers, a builder image made
//! with mmdebstrap, sdists fetched with pip's index configuration. Native
//! (host architecture) builds; s390x is in tests/s390x.rs.
//!
//! These tests need podman, runc, mmdebstrap and the network to the package
//! registries; `bash .ci/setup` installs and configures them. They do not
//! skip when a tool is missing: they fail.

mod common;
use common::{Run, Ws, sha256_hex, shipped};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One store shared by the tests of this file (built from empty once per
/// test run), so the builder image is made once.
fn shared_store() -> &'static Path {
    static STORE: OnceLock<tempfile::TempDir> = OnceLock::new();
    STORE.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fn host(ws: &Ws, store: &Path, args: &[&str]) -> Run {
    let mut c = ws.cmd_in(store);
    c.args(["--arch", "host"]).args(args);
    c.output().unwrap().into()
}

fn wheel_sha(run: &Run, label: &str) -> (String, String) {
    let m = run
        .events()
        .into_iter()
        .find(|e| e["event"] == "summary")
        .expect("summary");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(m["manifest"].as_str().unwrap()).unwrap())
            .unwrap();
    let w = manifest["wheels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["label"] == label)
        .unwrap_or_else(|| panic!("{label} not in {manifest:#}"));
    (
        w["wheel"].as_str().unwrap().to_string(),
        w["sha256"].as_str().unwrap().to_string(),
    )
}

const HOST_WHEELS: &[&str] = &["build", "--json", "//wheels:markupsafe", "//wheels:six"];

#[test]
fn markupsafe_and_six_build_then_hit_and_rebuild_exactly_what_changed() {
    let ws = shipped();
    let store = shared_store();
    let first = host(&ws, store, HOST_WHEELS);
    first.ok();
    let v = first.verdicts();
    assert_eq!(v["//wheels:markupsafe"], "built", "{v:?}");
    assert_eq!(v["//wheels:six"], "built");

    let (name, sha) = wheel_sha(&first, "//wheels:markupsafe");
    let arch = std::env::consts::ARCH;
    assert_eq!(
        name,
        format!("MarkupSafe-2.1.5-cp311-cp311-linux_{arch}.whl")
    );
    let (six, _) = wheel_sha(&first, "//wheels:six");
    assert_eq!(six, "six-1.16.0-py2.py3-none-any.whl");
    let dist = ws.root().join("dist");
    assert_eq!(sha256_hex(&std::fs::read(dist.join(&name)).unwrap()), sha);

    // The C extension was really compiled, for this machine.
    let files = refine::wheel::read_wheel(&dist.join(&name)).unwrap();
    let so = files
        .iter()
        .find(|f| f.name.starts_with("markupsafe/_speedups") && f.name.ends_with(".so"))
        .expect("compiled extension");
    let machine = refine::rules::Arch::host().elf_machine();
    assert_eq!(refine::wheel::elf_machine(&so.data), Some(machine));
    assert!(
        refine::wheel::check_record(&dist.join(&name))
            .unwrap()
            .is_empty()
    );

    // Built, then all hits.
    let second = host(&ws, store, HOST_WHEELS);
    second.ok();
    assert!(second.with("built").is_empty(), "{:?}", second.verdicts());
    assert_eq!(second.verdicts()["//wheels:markupsafe"], "hit:local");

    // An env change rebuilds that wheel and nothing else.
    ws.edit(
        "rules/wheels.toml",
        "\nrepair = true\n",
        "\nrepair = true\nenv = { MARKUPSAFE_EXTRA = \"1\" }\n",
    );
    let third = host(&ws, store, HOST_WHEELS);
    third.ok();
    assert_eq!(
        third.with("built"),
        ["//wheels:markupsafe"],
        "{:?}",
        third.verdicts()
    );

    // A comment rebuilds nothing.
    ws.edit("rules/wheels.toml", "# Tier 0", "# Tier zero");
    let fourth = host(&ws, store, HOST_WHEELS);
    fourth.ok();
    assert!(fourth.with("built").is_empty(), "{:?}", fourth.verdicts());

    // The wheel works: install it in a clean container and use the C code.
    let image = first
        .events()
        .into_iter()
        .find(|e| e["label"] == "//images:bookworm" && e["event"] == "finished")
        .unwrap()["output"]
        .as_str()
        .unwrap()
        .to_string();
    let tag = format!("localhost/refine-image/bookworm:{}", &image[7..39]);
    let out = std::process::Command::new("podman")
        .args(["run", "--rm", "--network=none", "-v"])
        .arg(format!("{}:/dist:ro", dist.display()))
        .arg(&tag)
        .args([
            "sh",
            "-c",
            "python3 -m venv /tmp/v && /tmp/v/bin/pip install -q --no-index /dist/MarkupSafe-*.whl && \
             /tmp/v/bin/python -c 'from markupsafe import _speedups, escape; print(escape(\"<a>\"))'",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "&lt;a&gt;");
}

#[test]
fn two_clean_stores_give_the_same_wheel() {
    let a = shipped();
    let b = shipped();
    let (sa, sb) = (a.root().join("store-a"), b.root().join("store-b"));
    let ra = host(&a, &sa, &["build", "--json", "//wheels:markupsafe"]);
    ra.ok();
    let rb = host(&b, &sb, &["build", "--json", "//wheels:markupsafe"]);
    rb.ok();
    assert_eq!(ra.verdicts()["//images:bookworm"], "built");
    assert_eq!(rb.verdicts()["//images:bookworm"], "built");
    assert_eq!(
        wheel_sha(&ra, "//wheels:markupsafe"),
        wheel_sha(&rb, "//wheels:markupsafe")
    );
    // mmdebstrap with SOURCE_DATE_EPOCH: the same image, bit for bit.
    let out = |r: &Run, l: &str| {
        r.events()
            .into_iter()
            .find(|e| e["label"] == l && e["event"] == "finished")
            .unwrap()["output"]
            .clone()
    };
    assert_eq!(out(&ra, "//images:bookworm"), out(&rb, "//images:bookworm"));
}

#[test]
fn a_wrong_pin_shows_both_digests() {
    let ws = shipped();
    let good = "1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926";
    let bad = "0".repeat(64);
    ws.edit("rules/wheels.toml", good, &bad);
    let store = tempfile::tempdir().unwrap();
    let r = host(&ws, store.path(), &["build", "//sources:wheel-six"]);
    assert_eq!(r.code, 2, "a wrong pin is the rule's problem: {}", r.all());
    assert!(r.stderr.contains(&bad), "{}", r.stderr);
    assert!(r.stderr.contains("hint: "), "{}", r.stderr);
    // pip's index lists the real file with its digest: the message names it.
    assert!(
        r.stderr.contains(good),
        "the real digest is shown: {}",
        r.stderr
    );
    // Nothing unverified entered the store.
    let cas: Vec<PathBuf> = common::files_under(&store.path().join("cas"));
    assert!(cas.is_empty(), "{cas:?}");
}

#[test]
fn a_failing_recipe_shows_its_last_lines_and_log() {
    let ws = shipped();
    ws.write(
        "recipes/broken.sh",
        "#!/bin/sh\necho 'compiling things'\necho 'fatal: the frobnicator is missing' >&2\nexit 3\n",
    );
    ws.edit(
        "rules/wheels.toml",
        "[wheels.six]\n",
        "[wheels.six]\nrecipe = \"recipes/broken.sh\"\n",
    );
    let r = host(&ws, shared_store(), &["build", "//wheels:six"]);
    assert_eq!(r.code, 1, "a recipe failure is a build error: {}", r.all());
    assert!(
        r.stderr.contains("FAILED //wheels:six (build error)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("(exit status 3)"), "{}", r.stderr);
    assert!(
        r.stderr.contains("| fatal: the frobnicator is missing"),
        "{}",
        r.stderr
    );
    let log = r.log_path();
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("compiling things")
    );
    // `refine log` finds the same log.
    let l = host(&ws, shared_store(), &["log", "--path", "//wheels:six"]);
    assert_eq!(l.stdout.trim(), log);
}

/// Build requirements come only from the rule: the image's Python carries
/// Debian's setuptools, and a wheel that declares none must not find it.
#[test]
fn undeclared_build_requirements_are_not_there() {
    let ws = shipped();
    ws.edit(
        "rules/wheels.toml",
        "[wheels.six]\n",
        "[wheels.six]\ndefault_build_requires = false\n",
    );
    let r = host(&ws, shared_store(), &["build", "//wheels:six"]);
    assert_eq!(r.code, 1, "{}", r.all());
    // The log of this run (the store is shared with other tests of six).
    let log = r.log_path();
    let log = std::fs::read_to_string(log).unwrap();
    assert!(
        log.contains("setuptools") && log.contains("No matching distribution"),
        "pip looked for setuptools among the declared wheels only:\n{log}"
    );
}

#[test]
fn missing_tools_are_environment_errors_with_hints() {
    let ws = shipped();
    let store = tempfile::tempdir().unwrap();
    // No mmdebstrap: the image cannot be made.
    let mut c = ws.cmd_in(store.path());
    c.args(["--arch", "host", "build", "//images:bookworm"]);
    c.env("REFINE_MMDEBSTRAP", "/nonexistent/mmdebstrap");
    let r: Run = c.output().unwrap().into();
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stderr.contains("mmdebstrap"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("hint: install it (`apt-get install -y mmdebstrap`)"),
        "{}",
        r.stderr
    );

    // No podman: nothing can run in a container.
    let mut c = ws.cmd_in(shared_store());
    c.args(["--arch", "host", "build", "--keep-going", "//wheels:six"]);
    c.env("REFINE_PODMAN", "/nonexistent/podman");
    // Make sure something needs a container: a fresh env value.
    ws.edit(
        "rules/wheels.toml",
        "[wheels.six]\n",
        "[wheels.six]\nenv = { NO_PODMAN_TEST = \"1\" }\n",
    );
    let r: Run = c.output().unwrap().into();
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("/nonexistent/podman` was not found"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint: install podman and runc"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_build_that_runs_too_long_is_stopped() {
    let ws = shipped();
    ws.write("recipes/slow.sh", "#!/bin/sh\necho starting\nsleep 120\n");
    ws.edit(
        "rules/wheels.toml",
        "[wheels.six]\n",
        "[wheels.six]\nrecipe = \"recipes/slow.sh\"\ntimeout = \"3s\"\n",
    );
    let start = std::time::Instant::now();
    let r = host(&ws, shared_store(), &["build", "//wheels:six"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("timed out after 3s"), "{}", r.stderr);
    assert!(r.stderr.contains("raise `timeout`"), "{}", r.stderr);
    // The build's container is gone, well before the recipe would end
    // (the builder image may be built first in this test run).
    assert!(start.elapsed() < std::time::Duration::from_secs(110) || r.stderr.contains("built"));
    let ps = std::process::Command::new("podman")
        .args([
            "ps",
            "--filter",
            "name=refine-wheel-six",
            "--format",
            "{{.Names}}",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&ps.stdout).trim().is_empty(),
        "no container left running"
    );
}
