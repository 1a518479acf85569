//! Bad rules: every error at once, each with file:line:col and a hint.

mod common;
use common::{Ws, fake_workspace};

fn broken() -> Ws {
    let ws = fake_workspace();
    ws.write(
        "rules/broken.toml",
        r#"[wheels.delta]
source = "//sources:alpha-src"
envv = { X = "1" }
packs = ["//packs:zlibb"]

[packs.loop-a]
version = "1"
recipe = "recipes/pack.sh"
deps = ["//packs:loop-b"]

[packs.loop-b]
version = "1"
recipe = "recipes/pack.sh"
deps = ["//packs:loop-a"]

[sources.bad]
url = "https://example.invalid/x.tar.gz"
sha256 = "1234"

[wheels.alpha]
source = "//sources:alpha-src"

[wheels.epsilon]
source = "//sources:alpha-src"
recipe = "/home/me/build.sh"

[gadgets.x]
"#,
    );
    ws
}

#[test]
fn reports_every_error_with_locations() {
    let ws = broken();
    let r = ws.fake(&["plan", "//..."]);
    assert_eq!(r.code, 2, "rule errors are user errors: {}", r.all());
    insta::assert_snapshot!(r.stderr);
}

#[test]
fn json_mode_carries_the_rendered_errors() {
    let ws = broken();
    let r = ws.fake(&["--json", "build", "//..."]);
    assert_eq!(r.code, 2);
    let ev = r.events();
    assert_eq!(ev[0]["event"], "error");
    assert_eq!(ev[0]["class"], "user");
    assert!(
        ev[0]["details"]
            .as_str()
            .unwrap()
            .contains("rules/broken.toml:3:1")
    );
    // The same places as data: a tool need not parse the rendering.
    let locs = ev[0]["locations"].as_array().unwrap();
    assert!(
        locs.iter().any(|l| l["file"] == "rules/broken.toml"
            && l["line"] == 3
            && l["col"] == 1
            && l["message"].as_str().is_some_and(|m| !m.is_empty())),
        "{locs:?}"
    );
    assert!(
        locs.iter().all(|l| l["line"].as_u64().unwrap() >= 1),
        "{locs:?}"
    );
    assert_eq!(ev[0]["scope"], "node");
}

#[test]
fn unknown_command_line_labels_suggest() {
    let ws = fake_workspace();
    let r = ws.fake(&["build", "//wheels:alpah"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("//wheels:alpah names no target"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("did you mean //wheels:alpha?"),
        "{}",
        r.stderr
    );
    let r = ws.fake(&["build", "wheels:alpha"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("labels look like `//wheels:markupsafe`"),
        "{}",
        r.stderr
    );
    let r = ws.fake(&["--arch", "sparc", "plan"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--arch: unknown architecture `sparc`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("hint: architectures are"), "{}", r.stderr);
}

#[test]
fn a_missing_workspace_is_a_user_error() {
    let d = tempfile::tempdir().unwrap();
    let r: common::Run = std::process::Command::new(env!("CARGO_BIN_EXE_refine"))
        .current_dir(d.path())
        .args(["plan"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no WORKSPACE.toml"), "{}", r.stderr);
    assert!(r.stderr.contains("hint: "), "{}", r.stderr);
}

#[test]
fn toml_syntax_errors_point_at_the_spot() {
    let ws = fake_workspace();
    ws.write(
        "rules/syntax.toml",
        "[wheels.x]\nsource = \"//sources:alpha-src\"\nenv = { A = }\n",
    );
    let r = ws.fake(&["plan"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("invalid TOML"), "{}", r.stderr);
    assert!(
        r.stderr.contains("--> rules/syntax.toml:3:"),
        "{}",
        r.stderr
    );
}

#[test]
fn workspace_defaults_are_checked_too() {
    let ws = fake_workspace();
    ws.edit(
        "WORKSPACE.toml",
        "image = \"//images:base\"",
        "image = \"//images:nope\"\ntypo = 1",
    );
    let r = ws.fake(&["plan"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("unknown key `typo` in [defaults]"),
        "{}",
        r.stderr
    );
    ws.edit("WORKSPACE.toml", "\ntypo = 1", "");
    let r = ws.fake(&["plan"]);
    assert!(
        r.stderr.contains("//images:nope names no target"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--> WORKSPACE.toml:"), "{}", r.stderr);
}

/// The shipped hint catalog explains the two ways a floor shows up in a
/// failed log: the repair's line naming what keeps a wheel above its floor,
/// and clang's (Zig's) words for a missing header.
#[test]
fn the_shipped_catalog_explains_floor_failures() {
    let ws = common::shipped();
    let s = refine::ops::Session::load(&refine::ops::GlobalOpts {
        workspace: Some(ws.root().to_path_buf()),
        store: Some(ws.store.clone()),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{}", e.message));
    let l: refine::rules::Label = "//repairs:cffi".parse().unwrap();
    let g = s.graph(std::slice::from_ref(&l)).unwrap();
    let n = g.get(&l).unwrap();
    let catalog = refine::ops::hints::Catalog::load(&s);
    let said = catalog.suggest(
        &s,
        n,
        "refine: /opt/packs/libffi/lib/libffi.so.8 (//packs:libffi) does not meet manylinux2014_s390x: it needs libc.so.6: GLIBC_2.27\n",
    );
    assert!(
        said.iter().any(|x| x.message.contains(
            "/opt/packs/libffi/lib/libffi.so.8 (//packs:libffi) needs libc.so.6: GLIBC_2.27, newer than manylinux2014_s390x allows"
        ) && x.message.contains("policy")),
        "{said:?}"
    );
    // A wheel without libffi's pack, told so by clang.
    let l: refine::rules::Label = "//wheels:markupsafe".parse().unwrap();
    let g = s.graph(std::slice::from_ref(&l)).unwrap();
    let said = catalog.suggest(
        &s,
        g.get(&l).unwrap(),
        "src/x.c:15:10: fatal error: 'ffi.h' file not found\n",
    );
    assert!(
        said.iter().any(|x| x
            .edit
            .as_deref()
            .is_some_and(|e| e.contains("//packs:libffi"))),
        "{said:?}"
    );
}

/// README.md is a front page: short, and every document it sends the
/// reader to is there.
#[test]
fn the_readme_is_a_front_page_whose_links_hold() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let n = readme.lines().count();
    assert!(n <= 120, "README.md has {n} lines; move detail to docs/");
    let named: Vec<&str> = readme
        .split(|c: char| c.is_whitespace() || "|()`".contains(c))
        .filter(|w| w.ends_with(".md") && (w.starts_with("docs/") || w.starts_with("ARCH")))
        .collect();
    assert!(named.len() >= 8, "{named:?}");
    for f in named {
        assert!(
            root.join(f).is_file(),
            "README.md names {f}, which is missing"
        );
    }
    // The test command CI reads is still there.
    assert!(readme.contains("\nbash .ci/test\n"), "the test command");
    assert!(readme.contains("\nbash .ci/main\n"), "the main command");
}
