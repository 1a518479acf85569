//! Explaining rebuilds, queries, graphs, provenance and verification.
//! Fast cases run with the fake executor; the planted non-determinism runs
//! real recipes in podman.

mod common;
use common::{Run, Ws, fake_workspace, shipped};

const ALL: &[&str] = &["build", "//wheels:...", "//repairs:..."];

fn explain(ws: &Ws, label: &str, against: &[&str]) -> (Run, serde_json::Value) {
    let mut args = vec!["--json", "explain", label];
    args.extend_from_slice(against);
    let r = ws.fake(&args);
    r.ok();
    let v = serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    (r, v)
}

/// The root causes' last labels, and every change under them with its place.
fn causes(v: &serde_json::Value) -> Vec<String> {
    v["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c.as_array()
                .unwrap()
                .last()
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn change_of<'a>(v: &'a serde_json::Value, label: &str) -> &'a serde_json::Value {
    let step = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["label"] == label)
        .unwrap_or_else(|| panic!("no step for {label}: {v:#}"));
    &step["changes"][0]
}

#[test]
fn explain_names_the_root_cause_and_where_it_is_written() {
    let ws = fake_workspace();
    ws.fake(ALL).ok();

    // Nothing changed.
    let (r, v) = explain(&ws, "//wheels:alpha", &[]);
    assert_eq!(v["unchanged"], true, "{}", r.stdout);

    // An env change, in the wheel's own rule.
    ws.edit("rules/wheels.toml", "CFLAGS = \"-O2\"", "CFLAGS = \"-O3\"");
    let (_, v) = explain(&ws, "//wheels:alpha", &[]);
    assert_eq!(causes(&v), ["//wheels:alpha"]);
    let c = change_of(&v, "//wheels:alpha");
    assert_eq!(c["field"], "env.CFLAGS");
    assert_eq!(c["change"], "env.CFLAGS: \"-O2\" -> \"-O3\"");
    assert_eq!(c["at"], "rules/wheels.toml:5:1");
    ws.fake(ALL).ok();

    // A recipe change.
    ws.edit("recipes/wheel.sh", "pip wheel .", "pip wheel --no-deps .");
    let (_, v) = explain(&ws, "//wheels:alpha", &[]);
    assert_eq!(causes(&v), ["//wheels:alpha"]);
    let c = change_of(&v, "//wheels:alpha");
    assert_eq!(c["field"], "action.files.recipes/wheel.sh");
    assert!(c["note"].as_str().unwrap().contains("recipes/wheel.sh"));
    ws.fake(ALL).ok();

    // A source's sha256: the root cause is the source rule's pin.
    let pin = common::sha256_hex(b"contents of vendor/alpha-1.0.tar.gz\n");
    let new = "contents of vendor/alpha-1.0.tar.gz, release 2\n";
    ws.write("vendor/alpha-1.0.tar.gz", new);
    ws.edit(
        "rules/sources.toml",
        &pin,
        &common::sha256_hex(new.as_bytes()),
    );
    let (_, v) = explain(&ws, "//wheels:alpha", &[]);
    assert_eq!(causes(&v), ["//sources:alpha-src"]);
    let c = change_of(&v, "//sources:alpha-src");
    assert_eq!(c["field"], "sha256");
    assert!(
        c["at"].as_str().unwrap().starts_with("rules/sources.toml:"),
        "{c}"
    );
    ws.fake(ALL).ok();

    // A pack three levels down: gamma needs curl, which needs openssl,
    // which needs zlib.
    ws.edit(
        "packs/zlib.toml",
        "version = \"1.3\"",
        "version = \"1.3\"\nenv = { ZLIB_OPT = \"1\" }",
    );
    ws.fake(&["build", "//packs:zlib"]).ok();
    ws.fake(&["build", "//packs:openssl", "//packs:curl"]).ok();
    let (r, v) = explain(&ws, "//wheels:gamma", &[]);
    assert_eq!(causes(&v), ["//packs:zlib"], "{}", r.stdout);
    let chain: Vec<String> = v["causes"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        chain,
        [
            "//wheels:gamma",
            "//packs:curl",
            "//packs:openssl",
            "//packs:zlib"
        ]
    );
    let c = change_of(&v, "//packs:zlib");
    assert_eq!(c["field"], "env.ZLIB_OPT");
    assert_eq!(c["at"], "packs/zlib.toml:3:1");
    let human = ws.fake(&["explain", "//wheels:gamma"]);
    assert!(
        human.stdout.contains("root cause: //packs:zlib (via //wheels:gamma <- //packs:curl <- //packs:openssl <- //packs:zlib)"),
        "{}",
        human.stdout
    );
    ws.fake(ALL).ok();

    // The builder image: a new package changes its digest; everything
    // built in it follows it down to the image's package list.
    ws.edit("runtimes/base.toml", "\"gcc\"]", "\"gcc\", \"make\"]");
    ws.fake(&["build", "//images:base"]).ok();
    let (_, v) = explain(&ws, "//wheels:alpha", &[]);
    assert!(causes(&v).contains(&"//images:base".to_string()), "{v:#}");
    let c = change_of(&v, "//images:base");
    assert_eq!(c["field"], "action.packages");
    assert!(c["at"].as_str().unwrap().starts_with("runtimes/base.toml:"));
}

#[test]
fn explain_shows_a_refine_version_change() {
    let ws = fake_workspace();
    ws.fake(&["build", "//wheels:alpha"]).ok();
    // A result recorded by an older refine (KEY_VERSION 0): its preimage
    // differs in key_version, and explain says what that means.
    let (_, v) = explain(&ws, "//wheels:alpha", &[]);
    let key = v["old_key"].as_str().unwrap().to_string();
    let path = ws
        .store
        .join("preimages")
        .join(&key[..2])
        .join(format!("{key}.json"));
    let mut pre: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    pre["key_version"] = 0.into();
    let old = refine::key::Preimage::from_json(&pre).unwrap();
    let old_key = old.key();
    let p = ws
        .store
        .join("preimages")
        .join(&old_key.0[..2])
        .join(format!("{}.json", old_key.0));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, serde_json::to_vec(&pre).unwrap()).unwrap();
    let (_, v) = explain(&ws, "//wheels:alpha", &["--against", &old_key.0]);
    let c = change_of(&v, "//wheels:alpha");
    assert_eq!(c["field"], "key_version");
    assert!(c["note"].as_str().unwrap().contains("KEY_VERSION"), "{c}");
    // A key that is nowhere is a user error with a hint.
    let r = ws.fake(&["explain", "//wheels:alpha", "--against", &"0".repeat(64)]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("hint:"));
}

#[test]
fn queries_and_graphs() {
    let ws = fake_workspace();
    let q = |e: &str| {
        let r = ws.fake(&["query", e]);
        r.ok();
        r.stdout.lines().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(
        q("kind(pack, deps(//wheels:gamma))"),
        ["//packs:curl", "//packs:openssl", "//packs:zlib"]
    );
    assert_eq!(
        q("kind(wheel, rdeps(//packs:zlib))"),
        ["//wheels:beta", "//wheels:gamma"]
    );
    let rd = q("rdeps(//packs:zlib)");
    assert!(
        rd.contains(&"//repairs:beta".to_string()) && !rd.contains(&"//wheels:alpha".to_string()),
        "{rd:?}"
    );
    assert_eq!(q("kind(pack, //...)").len(), 3);
    let bad = ws.fake(&["query", "deps(wheels)"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("hint:"), "{}", bad.stderr);

    let dot = ws.fake(&["graph", "--format", "dot", "//wheels:gamma"]);
    dot.ok();
    assert!(dot.stdout.starts_with("digraph refine {"));
    assert!(
        dot.stdout
            .contains("\"//packs:curl\" -> \"//packs:openssl\";"),
        "{}",
        dot.stdout
    );
    // Graphviz renders it.
    let mut child = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("graphviz's dot is needed; bash .ci/setup installs it");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), dot.stdout.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));

    let json = ws.fake(&["graph", "--format", "json", "//wheels:gamma"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["nodes"].as_array().unwrap().len(), 12);
    assert!(
        v["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["from"] == "//wheels:gamma" && e["to"] == "//packs:curl")
    );
}

#[test]
fn provenance_beside_each_wheel_and_verify_from_manifest() {
    let ws = fake_workspace();
    ws.fake(ALL).ok();
    let dist = ws.root().join("dist");
    let prov: Vec<_> = std::fs::read_dir(&dist)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".provenance.json"))
        .collect();
    assert_eq!(prov.len(), 4);
    let alpha = prov
        .iter()
        .find(|p| p.to_string_lossy().contains("alpha-1.0"))
        .unwrap();
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(alpha).unwrap()).unwrap();
    for k in [
        "label", "key", "preimage", "image", "sources", "runtime", "refine", "tree", "sha256",
    ] {
        assert!(!m[k].is_null(), "{k} in {m:#}");
    }
    assert_eq!(m["label"], "//wheels:alpha");
    assert!(
        m["image"]["//images:base"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let ok = ws.fake(&["verify", "--from-manifest", alpha.to_str().unwrap()]);
    ok.ok();
    assert!(ok.stdout.contains("re-derived"), "{}", ok.stdout);
    // A wheel that is not the one described.
    let wheel = dist.join(m["wheel"].as_str().unwrap());
    let other = ws.root().join("other.whl");
    std::fs::copy(&wheel, &other).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&other)
        .unwrap();
    std::io::Write::write_all(&mut f, b"x").unwrap();
    let bad = ws.fake(&[
        "verify",
        "--from-manifest",
        alpha.to_str().unwrap(),
        "--wheel",
        other.to_str().unwrap(),
    ]);
    assert_eq!(bad.code, 1, "{}", bad.all());
    assert!(bad.stderr.contains("provenance says"), "{}", bad.stderr);
    // An edited preimage no longer hashes to the key.
    let mut m2 = m.clone();
    m2["preimage"]["env"]["CFLAGS"] = "-O0".into();
    let edited = ws.root().join("edited.json");
    std::fs::write(&edited, serde_json::to_vec(&m2).unwrap()).unwrap();
    let bad = ws.fake(&[
        "verify",
        "--from-manifest",
        edited.to_str().unwrap(),
        "--wheel",
        wheel.to_str().unwrap(),
    ]);
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains("not to the recorded key"),
        "{}",
        bad.stderr
    );
}

#[test]
fn verify_passes_on_deterministic_builds_and_counts_rounds() {
    let ws = fake_workspace();
    ws.fake(ALL).ok();
    let v = ws.fake(&[
        "verify",
        "--rounds",
        "2",
        "//wheels:alpha",
        "//packs:openssl",
    ]);
    v.ok();
    assert!(
        v.stdout.contains("reproduced //wheels:alpha (2 rounds)"),
        "{}",
        v.stdout
    );
    assert!(
        v.stdout.contains("reproduced //packs:openssl (2 rounds)"),
        "{}",
        v.stdout
    );
    // The cache was bypassed but not replaced, and the result recorded.
    let h = ws.fake(&["hash", "//wheels:alpha"]);
    assert!(h.stdout.contains("verified 2 times"), "{}", h.stdout);
    let again = ws.fake(&["build", "--json", "//wheels:alpha"]);
    assert!(again.with("built").is_empty());
}

/// A recipe that writes the time into its wheel is caught, and the file
/// named; one that does not passes. Real podman builds.
#[test]
fn planted_non_determinism_is_caught_and_named() {
    let ws = shipped();
    // Two tiny wheels built by a recipe from the source of six: one stamps
    // the time into a module, the other does not.
    let recipe = r#"#!/bin/sh
set -eu
. "$REFINE_WS/recipes/lib/common.sh"
cd "$(unpack "$(source_file)")"
if [ "${STAMP:-}" = 1 ]; then
    date +%s%N > stamp.txt
else
    echo fixed > stamp.txt
fi
"$PYTHON" - <<'PY'
import os, zipfile
name = os.environ["REFINE_NAME"].replace("-", "_")
out = os.path.join(os.environ["REFINE_OUT"], f"{name}-1.0-py3-none-any.whl")
with zipfile.ZipFile(out, "w") as z:
    z.write("stamp.txt", f"{name}/stamp.txt")
    z.writestr(f"{name}-1.0.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    z.writestr(f"{name}-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr(f"{name}-1.0.dist-info/RECORD", "")
PY
"#;
    ws.write("recipes/fixtures/stamp.sh", recipe);
    ws.write(
        "rules/fixtures.toml",
        r#"[wheels.stamped]
source = "//sources:wheel-six"
recipe = "recipes/fixtures/stamp.sh"
includes = ["recipes/lib/common.sh"]
default_build_requires = false
env = { STAMP = "1" }

[wheels.steady]
source = "//sources:wheel-six"
recipe = "recipes/fixtures/stamp.sh"
includes = ["recipes/lib/common.sh"]
default_build_requires = false
"#,
    );
    let store = ws.root().join("store");
    let run = |args: &[&str]| -> Run {
        let mut c = ws.cmd_in(&store);
        c.args(["--arch", "host"]).args(args);
        c.output().unwrap().into()
    };
    run(&["build", "//wheels:stamped", "//wheels:steady"]).ok();
    let good = run(&["verify", "--rounds", "2", "//wheels:steady"]);
    good.ok();
    assert!(
        good.stdout
            .contains("reproduced //wheels:steady (2 rounds)"),
        "{}",
        good.stdout
    );
    let bad = run(&["verify", "--rounds", "2", "//wheels:stamped"]);
    assert_eq!(bad.code, 1, "{}", bad.all());
    assert!(
        bad.stdout.contains("NOT REPRODUCIBLE //wheels:stamped"),
        "{}",
        bad.stdout
    );
    assert!(
        bad.stdout.contains("stamped-1.0-py3-none-any.whl:"),
        "the wheel is named: {}",
        bad.stdout
    );
    assert!(
        bad.stdout.contains("stamped/stamp.txt:"),
        "the file inside is named: {}",
        bad.stdout
    );
    assert!(
        bad.stdout.contains("--- stored/stamped/stamp.txt"),
        "a unified diff: {}",
        bad.stdout
    );
    assert!(bad.stderr.contains("did not reproduce"), "{}", bad.stderr);
}

/// A command that only prints ends quietly when its reader goes away
/// (`refine graph … | head`), killed by SIGPIPE as a Unix tool is, not
/// with a panic about a broken pipe.
#[test]
fn a_printing_command_whose_reader_is_gone_ends_without_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    let ws = shipped();
    let store = ws.root().join("store");
    for args in [
        &["graph", "--format", "json", "//..."][..],
        &["query", "deps(//...)"][..],
    ] {
        let mut c = ws.cmd_in(&store);
        c.args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        // No reader from the start: its first write finds the pipe closed.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{args:?}: {err}");
    }
}
