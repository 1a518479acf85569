//! A workspace of one's own: `refine init` outside the repository, the
//! built-in base behind it (overrides, keys by content, errors named
//! `builtin:`), `base = "none"`, `refine base export`. The engine runs with
//! the fake executor here; tests/podman.rs builds a real wheel in such a
//! workspace.

mod common;
use common::Run;
use std::path::Path;
use std::process::Command;

fn refine(dir: &Path, store: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_refine"));
    c.current_dir(dir)
        .arg("--store")
        .arg(store)
        .env_remove("REFINE_STORE")
        .env_remove("REFINE_BUILTIN_BASE")
        .env("REFINE_EXECUTOR", "fake")
        .args(args)
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap().into()
}

/// A fresh workspace made by `refine init` for the host.
fn init() -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("store");
    let ws = d.path().join("ws");
    let r = refine(d.path(), &store, &["--arch", "host", "init", "ws"], &[]);
    r.ok();
    (d, ws)
}

fn store(d: &tempfile::TempDir) -> std::path::PathBuf {
    d.path().join("store")
}

#[test]
fn init_writes_a_workspace_and_never_overwrites_one() {
    let (d, ws) = init();
    let text = std::fs::read_to_string(ws.join("WORKSPACE.toml")).unwrap();
    assert!(text.contains("base = \"builtin\""), "{text}");
    assert!(
        text.contains(&format!("arch = \"{}\"", std::env::consts::ARCH)),
        "{text}"
    );
    assert!(ws.join("rules").is_dir());
    assert!(
        std::fs::read_to_string(ws.join("README.md"))
            .unwrap()
            .contains("refine import requirements.txt")
    );
    let again = refine(&ws, &store(&d), &["init"], &[]);
    assert_eq!(again.code, 2, "{}", again.all());
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);
    assert_eq!(
        std::fs::read_to_string(ws.join("WORKSPACE.toml")).unwrap(),
        text
    );
    let bad = refine(
        d.path(),
        &store(&d),
        &["--arch", "sparc", "init", "other"],
        &[],
    );
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("--arch"), "{}", bad.stderr);
    assert!(!d.path().join("other/WORKSPACE.toml").exists());
    // The built-in rule set is there, under its usual labels, and says so.
    let q = refine(
        &ws,
        &store(&d),
        &["query", "--origin", "deps(//repairs:pyyaml)"],
        &[],
    );
    q.ok();
    assert!(q.stdout.contains("//packs:libyaml"), "{}", q.stdout);
    assert!(
        q.stdout.contains("builtin:packs/libyaml.toml:"),
        "{}",
        q.stdout
    );
    assert!(
        q.stdout.contains("builtin:runtimes/images.toml:"),
        "{}",
        q.stdout
    );
    // Patterns stay in the workspace (like Bazel's //...): it has no targets yet.
    let all = refine(&ws, &store(&d), &["query", "//..."], &[]);
    all.ok();
    assert!(all.stdout.trim().is_empty(), "{}", all.stdout);
}

#[test]
fn a_target_of_the_workspace_replaces_the_builtin_one() {
    let (d, ws) = init();
    std::fs::write(ws.join("vendor-yaml.tar.gz"), "my libyaml\n").unwrap();
    std::fs::write(
        ws.join("rules/libyaml.toml"),
        format!(
            "[packs.libyaml]\nversion = \"9.9\"\nsource = {{ path = \"vendor-yaml.tar.gz\", sha256 = \"{}\" }}\nrecipe = \"recipes/mine.sh\"\n",
            common::sha256_hex(b"my libyaml\n")
        ),
    )
    .unwrap();
    std::fs::create_dir_all(ws.join("recipes")).unwrap();
    std::fs::write(ws.join("recipes/mine.sh"), "#!/bin/sh\nmake install\n").unwrap();
    let q = refine(
        &ws,
        &store(&d),
        &["query", "--origin", "//packs:libyaml"],
        &[],
    );
    q.ok();
    assert!(q.stdout.contains("rules/libyaml.toml:1"), "{}", q.stdout);
    assert!(!q.stdout.contains("builtin:"), "{}", q.stdout);
    let log = d.path().join("fake.log");
    let b = refine(
        &ws,
        &store(&d),
        &["build", "--json", "//repairs:pyyaml"],
        &[("REFINE_FAKE_LOG", log.to_str().unwrap())],
    );
    b.ok();
    // The built-in pyyaml builds against the workspace's libyaml.
    let plan = refine(&ws, &store(&d), &["--json", "plan", "//wheels:pyyaml"], &[]);
    let pre = plan
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["label"] == "//packs:libyaml")
        .unwrap();
    assert_eq!(pre["origin"], "rules/libyaml.toml:1", "{pre}");
    let store_dir = store(&d);
    let s = refine::store::LocalStore::open(&store_dir).unwrap();
    let key = refine::testing::key_of(
        &refine::ops::GlobalOpts {
            workspace: Some(ws.clone()),
            store: Some(store_dir.clone()),
            executor: refine::ops::ExecutorKind::Fake,
            ..Default::default()
        },
        "//packs:libyaml",
    )
    .unwrap();
    let p = s.actions.preimage(&key).unwrap().to_json();
    assert_eq!(p["version"], "9.9", "{p}");
    assert!(p["action"]["files"]["recipes/mine.sh"].is_string(), "{p}");
}

#[test]
fn a_changed_builtin_recipe_rebuilds_what_it_builds_and_nothing_else() {
    let (d, ws) = init();
    // Play an upgrade of refine: the base from a directory, then changed.
    let base = d.path().join("base");
    std::fs::create_dir_all(&base).unwrap();
    refine(
        &ws,
        &store(&d),
        &["base", "export", base.to_str().unwrap()],
        &[],
    )
    .ok();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("WORKSPACE.toml"),
        base.join("WORKSPACE.toml"),
    )
    .unwrap();
    let env = [("REFINE_BUILTIN_BASE", base.to_str().unwrap())];
    let targets = [
        "build",
        "--json",
        "//repairs:pyyaml",
        "//repairs:cffi",
        "//repairs:markupsafe",
    ];
    let first = refine(&ws, &store(&d), &targets, &env);
    first.ok();
    // The embedded base and the one in the directory are the same bytes:
    // the same keys.
    let embedded = refine(&ws, &store(&d), &targets, &[]);
    embedded.ok();
    assert!(
        embedded.with("built").is_empty(),
        "{:?}",
        embedded.verdicts()
    );
    let script = base.join("recipes/packs/libyaml.sh");
    let mut text = std::fs::read_to_string(&script).unwrap();
    text.push_str("# refine 0.2 builds libyaml a little differently\n");
    std::fs::write(&script, text).unwrap();
    let upgraded = refine(&ws, &store(&d), &targets, &env);
    upgraded.ok();
    let mut rebuilt = upgraded.with("built");
    rebuilt.sort();
    assert_eq!(
        rebuilt,
        ["//packs:libyaml", "//repairs:pyyaml", "//wheels:pyyaml"],
        "exactly what the recipe builds: {:?}",
        upgraded.verdicts()
    );
}

#[test]
fn errors_in_builtin_rules_are_named_builtin_and_base_none_leaves_them_out() {
    let (d, ws) = init();
    let base = d.path().join("base");
    refine(
        &ws,
        &store(&d),
        &["base", "export", base.to_str().unwrap()],
        &[],
    )
    .ok();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("WORKSPACE.toml"),
        base.join("WORKSPACE.toml"),
    )
    .unwrap();
    let f = base.join("packs/openssl.toml");
    let t = std::fs::read_to_string(&f)
        .unwrap()
        .replacen("version = ", "versoin = ", 1);
    std::fs::write(&f, t).unwrap();
    let r = refine(
        &ws,
        &store(&d),
        &["plan"],
        &[("REFINE_BUILTIN_BASE", base.to_str().unwrap())],
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("--> builtin:packs/openssl.toml:"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("versoin"), "{}", r.stderr);
    // Exported into the workspace, the base's files are the workspace's:
    // the same keys (all cached), now named by their own paths.
    let (d, ws) = init();
    let targets = ["build", "--json", "//repairs:markupsafe"];
    refine(&ws, &store(&d), &targets, &[]).ok();
    let clash = refine(
        &ws,
        &store(&d),
        &["base", "export", ws.to_str().unwrap()],
        &[],
    );
    clash.ok();
    let again = refine(
        &ws,
        &store(&d),
        &["base", "export", ws.to_str().unwrap()],
        &[],
    );
    assert_eq!(again.code, 2, "never overwritten: {}", again.all());
    assert!(
        again.stderr.contains("nothing was written"),
        "{}",
        again.stderr
    );
    let r = refine(&ws, &store(&d), &targets, &[]);
    r.ok();
    assert!(r.with("built").is_empty(), "{:?}", r.verdicts());
    let q = refine(
        &ws,
        &store(&d),
        &["query", "--origin", "//images:bookworm"],
        &[],
    );
    assert!(q.stdout.contains(" runtimes/images.toml:"), "{}", q.stdout);
    // base = "none": only the workspace's own files.
    let (d, ws) = init();
    let cfg = ws.join("WORKSPACE.toml");
    let t = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("base = \"builtin\"", "base = \"none\"");
    std::fs::write(&cfg, t).unwrap();
    let q = refine(&ws, &store(&d), &["query", "//packs:openssl"], &[]);
    assert_eq!(q.code, 2, "{}", q.all());
    assert!(
        q.stderr.contains("//packs:openssl names no target"),
        "{}",
        q.stderr
    );
}
