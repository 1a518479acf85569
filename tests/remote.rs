//! The remote store against a real registry on loopback: sharing between
//! machines, auth, faults, integrity, interoperability, and the store
//! commands. The engine runs with the fake executor here (fast), except in
//! the two-machines test with real podman builds.

mod common;
use common::registry::{Fault, Proxy, Registry};
use common::{Run, Ws, fake_workspace, output_of, shipped};
use std::path::Path;

const ALL: &[&str] = &["//wheels:...", "//repairs:..."];

/// A fake-executor build of ALL in `store`, with extra flags and env.
fn build(ws: &Ws, store: &Path, flags: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = ws.cmd_in(store);
    c.env("REFINE_EXECUTOR", "fake")
        .env("REFINE_REMOTE_TIMEOUT", "5");
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(["build", "--json", "--insecure"])
        .args(flags)
        .args(ALL);
    c.output().unwrap().into()
}

fn outputs(r: &Run) -> std::collections::BTreeMap<String, String> {
    r.events()
        .into_iter()
        .filter(|e| e["event"] == "finished")
        .map(|e| {
            (
                e["label"].as_str().unwrap().to_string(),
                e["output"].to_string(),
            )
        })
        .collect()
}

fn notes(r: &Run) -> Vec<String> {
    r.events()
        .into_iter()
        .filter(|e| e["event"] == "warning")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

fn tmp_is_empty(store: &Path) -> bool {
    std::fs::read_dir(store.join("tmp"))
        .map(|d| d.count() == 0)
        .unwrap_or(true)
}

#[test]
fn two_stores_share_results_through_the_registry() {
    let reg = Registry::start(None);
    let ws = fake_workspace();
    let url = reg.url("refine/ci");
    let a = build(
        &ws,
        &ws.root().join("a"),
        &["--remote", &url, "--push"],
        &[],
    );
    a.ok();
    assert!(a.with("hit:remote").is_empty());
    let pushed = a
        .events()
        .into_iter()
        .filter(|e| e["event"] == "finished" && e["push"] == "pushed")
        .count();
    assert_eq!(pushed, a.with("built").len(), "everything built was pushed");

    let b = build(&ws, &ws.root().join("b"), &["--remote", &url], &[]);
    b.ok();
    assert!(
        b.with("built").is_empty(),
        "machine B builds nothing: {:?}",
        b.verdicts()
    );
    assert_eq!(b.with("hit:remote").len(), a.verdicts().len());
    assert_eq!(outputs(&a), outputs(&b), "identical outputs");
    // B delivered byte-identical wheels.
    let wheels = |d: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".whl"))
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(wheels(&ws.root().join("dist")).len(), 4);
    // What was pulled is kept: a third run is all local.
    let c = build(&ws, &ws.root().join("b"), &["--remote", &url], &[]);
    assert_eq!(c.with("hit:local").len(), a.verdicts().len());
    // --offline does not look.
    let d = build(
        &ws,
        &ws.root().join("d"),
        &["--remote", &url, "--offline"],
        &[],
    );
    d.ok();
    assert!(d.with("hit:remote").is_empty());
}

#[test]
fn basic_auth_from_the_environment_and_a_docker_auth_file() {
    let reg = Registry::start(Some(("alice", "wonderland")));
    let ws = fake_workspace();
    let url = reg.url("refine");
    let env = [
        ("REFINE_REGISTRY_USERNAME", "alice"),
        ("REFINE_REGISTRY_PASSWORD", "wonderland"),
    ];
    let a = build(
        &ws,
        &ws.root().join("a"),
        &["--remote", &url, "--push"],
        &env,
    );
    a.ok();
    assert!(notes(&a).is_empty(), "{:?}", notes(&a));
    // Credentials from a REGISTRY_AUTH_FILE, as docker/podman/skopeo write it.
    let auth = base64_std("alice:wonderland");
    let file = ws.root().join("auth.json");
    std::fs::write(
        &file,
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.addr()),
    )
    .unwrap();
    let b = build(
        &ws,
        &ws.root().join("b"),
        &["--remote", &url],
        &[("REGISTRY_AUTH_FILE", file.to_str().unwrap())],
    );
    b.ok();
    assert!(b.with("built").is_empty(), "{:?}", b.verdicts());
    // Wrong credentials: every push fails, is said once per node, the build succeeds.
    let bad = [
        ("REFINE_REGISTRY_USERNAME", "alice"),
        ("REFINE_REGISTRY_PASSWORD", "nope"),
    ];
    ws.edit("rules/wheels.toml", "CFLAGS = \"-O2\"", "CFLAGS = \"-O1\"");
    let c = build(
        &ws,
        &ws.root().join("a"),
        &["--remote", &url, "--push"],
        &bad,
    );
    c.ok();
    let failed: Vec<_> = c
        .events()
        .into_iter()
        .filter(|e| {
            e["event"] == "finished"
                && e["push"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("push-failed"))
        })
        .collect();
    assert_eq!(failed.len(), 1, "{}", c.stdout);
    let n = notes(&c);
    assert!(
        n.iter().any(|m| m.contains("refused the credentials")),
        "{n:?}"
    );
    assert!(
        !c.stdout.contains("nope") && !c.stderr.contains("nope"),
        "the secret is never printed"
    );
}

fn base64_std(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn bearer_token_auth() {
    let reg = Registry::start(None);
    let proxy = Proxy::start(reg.port);
    proxy.set(Fault::Bearer);
    let ws = fake_workspace();
    let url = proxy.url("refine");
    let env = [
        ("REFINE_REGISTRY_USERNAME", "user"),
        ("REFINE_REGISTRY_PASSWORD", "secret"),
    ];
    let a = build(
        &ws,
        &ws.root().join("a"),
        &["--remote", &url, "--push"],
        &env,
    );
    a.ok();
    assert!(notes(&a).is_empty(), "{:?}", notes(&a));
    let b = build(&ws, &ws.root().join("b"), &["--remote", &url], &env);
    b.ok();
    assert!(
        b.with("built").is_empty(),
        "pulled with a bearer token: {:?}",
        b.verdicts()
    );
}

#[test]
fn a_stopped_registry_does_not_fail_the_build() {
    let mut reg = Registry::start(None);
    let url = reg.url("refine");
    reg.stop();
    let ws = fake_workspace();
    let r = build(&ws, &ws.store, &["--remote", &url, "--push"], &[]);
    r.ok();
    assert!(r.with("hit:remote").is_empty());
    assert!(!r.with("built").is_empty());
    let n = notes(&r);
    assert!(n.iter().any(|m| m.contains("cannot connect")), "{n:?}");
    // Once per node at most.
    let labels: Vec<_> = r
        .events()
        .into_iter()
        .filter(|e| e["event"] == "warning")
        .map(|e| e["label"].to_string())
        .collect();
    let unique: std::collections::HashSet<_> = labels.iter().collect();
    assert_eq!(labels.len(), unique.len(), "{labels:?}");
    // The human summary says it too.
    let human = {
        let mut c = ws.cmd_in(&ws.root().join("h"));
        c.env("REFINE_EXECUTOR", "fake").args([
            "build",
            "--insecure",
            "--remote",
            &url,
            "//wheels:alpha",
        ]);
        let r: Run = c.output().unwrap().into();
        r.ok();
        r.stderr
    };
    assert!(
        human.contains("unreachable") || human.contains("cannot connect"),
        "{human}"
    );
}

#[test]
fn server_errors_and_timeouts_are_retried_then_reported() {
    let reg = Registry::start(None);
    let proxy = Proxy::start(reg.port);
    let ws = fake_workspace();
    proxy.set(Fault::ServerError);
    let r = build(&ws, &ws.store, &["--remote", &proxy.url("refine")], &[]);
    r.ok();
    let n = notes(&r);
    assert!(n.iter().any(|m| m.contains("500")), "{n:?}");
    assert!(
        n.iter().any(|m| m.contains("after 3 attempts")),
        "bounded retries: {n:?}"
    );

    proxy.set(Fault::Stall);
    let ws = fake_workspace();
    let start = std::time::Instant::now();
    let r = build(
        &ws,
        &ws.store,
        &["--remote", &proxy.url("refine")],
        &[("REFINE_REMOTE_TIMEOUT", "1")],
    );
    r.ok();
    assert!(
        notes(&r).iter().any(|m| m.contains("timed out")),
        "{:?}",
        notes(&r)
    );
    assert!(
        start.elapsed() < std::time::Duration::from_secs(60),
        "the registry is given up on"
    );
    assert!(tmp_is_empty(&ws.store));
}

#[test]
fn broken_downloads_and_wrong_bytes_are_discarded_and_rebuilt() {
    let reg = Registry::start(None);
    let proxy = Proxy::start(reg.port);
    let ws = fake_workspace();
    let a = build(
        &ws,
        &ws.root().join("a"),
        &["--remote", &proxy.url("refine"), "--push"],
        &[],
    );
    a.ok();
    for (fault, words) in [
        (Fault::DropMidBlob, "broke off"),
        (Fault::CorruptBlob, "other bytes"),
    ] {
        proxy.set(fault);
        let store = ws.root().join(format!("b-{fault:?}"));
        let b = build(&ws, &store, &["--remote", &proxy.url("refine")], &[]);
        b.ok();
        assert!(
            b.with("hit:remote").is_empty(),
            "{fault:?}: nothing damaged is used"
        );
        assert_eq!(
            outputs(&a),
            outputs(&b),
            "{fault:?}: rebuilt to the same outputs"
        );
        let n = notes(&b);
        assert!(n.iter().any(|m| m.contains(words)), "{fault:?}: {n:?}");
        assert!(tmp_is_empty(&store), "{fault:?}: no partial file left");
    }
}

#[test]
fn a_missing_blob_behind_a_tag_is_a_miss() {
    let reg = Registry::start(None);
    let ws = fake_workspace();
    let url = reg.url("refine");
    build(
        &ws,
        &ws.root().join("a"),
        &["--remote", &url, "--push"],
        &[],
    )
    .ok();
    // Delete every blob the registry stores (manifests stay, by their links).
    let blobs = reg.data().join("docker/registry/v2/blobs/sha256");
    for e in common::files_under(&blobs) {
        if e.file_name().is_some_and(|n| n == "data") {
            let bytes = std::fs::read(&e).unwrap();
            // Keep manifests (JSON with schemaVersion), drop layer and config blobs.
            if !String::from_utf8_lossy(&bytes).contains("\"schemaVersion\"") {
                std::fs::remove_file(&e).unwrap();
            }
        }
    }
    let b = build(&ws, &ws.root().join("b"), &["--remote", &url], &[]);
    b.ok();
    assert!(b.with("hit:remote").is_empty(), "{:?}", b.verdicts());
    assert!(
        notes(&b).iter().any(|m| m.contains("missing")),
        "{:?}",
        notes(&b)
    );
}

#[test]
fn nothing_failed_is_pushed() {
    let reg = Registry::start(None);
    let ws = fake_workspace();
    let url = reg.url("refine");
    let mut c = ws.cmd_in(&ws.store);
    c.env("REFINE_EXECUTOR", "fake")
        .env("REFINE_FAKE_FAIL", "//packs:openssl");
    c.args([
        "build",
        "--json",
        "--insecure",
        "-k",
        "--remote",
        &url,
        "--push",
    ])
    .args(ALL);
    let r: Run = c.output().unwrap().into();
    assert_eq!(r.code, 1);
    let ls = ws.run(&["store", "ls", "--insecure", "--remote", &url]);
    ls.ok();
    assert!(!ls.stdout.contains("packs/openssl"), "{}", ls.stdout);
    assert!(
        !ls.stdout.contains("wheels/beta"),
        "blocked nodes are not pushed either"
    );
    assert!(ls.stdout.contains("refine/packs/zlib:"), "{}", ls.stdout);
}

#[test]
fn what_refine_pushes_is_an_oci_artifact_skopeo_can_read() {
    let reg = Registry::start(None);
    let ws = fake_workspace();
    let url = reg.url("refine");
    let a = build(&ws, &ws.store, &["--remote", &url, "--push"], &[]);
    a.ok();
    let key = a
        .events()
        .into_iter()
        .find(|e| e["event"] == "finished" && e["label"] == "//wheels:alpha")
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{}/refine/wheels/alpha:{key}", reg.addr()))
        .output()
        .expect("skopeo is needed for the interoperability test; bash .ci/setup installs it");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.refine.result.v1+json"
    );
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.refine.file.v1"
    );
    assert!(
        m["layers"][0]["annotations"]["org.opencontainers.image.title"]
            .as_str()
            .unwrap()
            .ends_with(".whl")
    );
    let ann = &m["annotations"];
    assert_eq!(ann["dev.refine.key"], key);
    assert_eq!(ann["dev.refine.label"], "//wheels:alpha");
    assert_eq!(
        ann["dev.refine.output"].as_str().unwrap(),
        output_of(&a, "//wheels:alpha")
    );
    assert!(
        ann["org.opencontainers.image.created"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    // The layer skopeo copies is the wheel itself, byte for byte.
    let dir = ws.root().join("copied");
    let st = std::process::Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{}/refine/wheels/alpha:{key}", reg.addr()))
        .arg(format!("dir:{}", dir.display()))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let layer = m["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let bytes = std::fs::read(dir.join(layer)).unwrap();
    assert_eq!(common::sha256_hex(&bytes), layer);
    assert!(bytes.starts_with(b"PK"), "a wheel is a zip");
    // Multi-file trees travel as tar+zstd.
    let ls = ws.run(&["store", "ls", "--insecure", "--remote", &url]);
    assert!(ls.stdout.contains("refine/packs/zlib:"), "{}", ls.stdout);
}

#[test]
fn push_pull_ls_verify_and_gc() {
    let reg = Registry::start(None);
    let ws = fake_workspace();
    let url = reg.url("refine");
    ws.fake(&["build", "//wheels:alpha"]).ok();
    // push: the target and its closure.
    let p = ws.fake(&["push", "--insecure", "--remote", &url, "//wheels:alpha"]);
    p.ok();
    assert!(p.stdout.contains("pushed   //wheels:alpha"), "{}", p.stdout);
    assert!(p.stdout.contains("pushed   //images:base"), "{}", p.stdout);
    let again = ws.fake(&["push", "--insecure", "--remote", &url, "//wheels:alpha"]);
    assert!(
        again.stdout.contains("present  //wheels:alpha"),
        "{}",
        again.stdout
    );
    // pull into another store.
    let other = ws.root().join("other");
    let mut c = ws.cmd_in(&other);
    c.env("REFINE_EXECUTOR", "fake").args([
        "pull",
        "--insecure",
        "--remote",
        &url,
        "//wheels:alpha",
    ]);
    let pulled: Run = c.output().unwrap().into();
    pulled.ok();
    assert!(
        pulled.stdout.contains("pulled   //wheels:alpha"),
        "{}",
        pulled.stdout
    );
    let mut c = ws.cmd_in(&other);
    c.env("REFINE_EXECUTOR", "fake")
        .args(["build", "--json", "//wheels:alpha"]);
    let b: Run = c.output().unwrap().into();
    assert!(b.with("built").is_empty(), "{:?}", b.verdicts());

    // store ls, local.
    let ls = ws.fake(&["store", "ls"]);
    ls.ok();
    assert!(ls.stdout.contains("//wheels:alpha"), "{}", ls.stdout);

    // store verify finds and removes a damaged blob.
    let v = ws.fake(&["store", "verify"]);
    assert_eq!(v.code, 0, "{}", v.all());
    let blobs = common::files_under(&ws.store.join("cas"));
    let victim = &blobs[0];
    let mut perm = std::fs::metadata(victim).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o644);
    std::fs::set_permissions(victim, perm).unwrap();
    std::fs::write(victim, b"bit rot").unwrap();
    let v = ws.fake(&["store", "verify"]);
    assert_eq!(v.code, 1, "{}", v.all());
    assert!(v.stdout.contains("bad blob"), "{}", v.stdout);
    assert!(!victim.exists());
    ws.fake(&["build", "//wheels:alpha"]).ok();

    // gc: a dry run removes nothing; a real one keeps the store under a size.
    let before = common::files_under(&ws.store.join("cas")).len();
    let dry = ws.fake(&["gc", "--max-size", "1", "--dry-run"]);
    dry.ok();
    assert!(dry.stdout.contains("would remove"), "{}", dry.stdout);
    assert_eq!(common::files_under(&ws.store.join("cas")).len(), before);
    let gc = ws.fake(&["gc", "--max-size", "1"]);
    gc.ok();
    assert!(common::files_under(&ws.store.join("cas")).len() < before);
    let r = ws.fake(&["build", "--json", "//wheels:alpha"]);
    r.ok();
    assert!(
        r.with("built").contains(&"//wheels:alpha".to_string()),
        "collected results rebuild"
    );
    let bad = ws.fake(&["gc", "--max-size", "lots"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("--max-size"), "{}", bad.stderr);
}

/// The acceptance scenario, for real: machine A builds markupsafe in podman
/// (and its builder image with mmdebstrap) and pushes; machine B, with an
/// empty store, builds nothing and gets byte-identical wheels.
#[test]
fn two_machines_markupsafe_for_real() {
    let reg = Registry::start(None);
    let ws = shipped();
    let url = reg.url("refine");
    let run = |store: &str, push: bool| -> Run {
        let mut c = ws.cmd_in(&ws.root().join(store));
        c.args([
            "--arch",
            "host",
            "build",
            "--json",
            "--insecure",
            "--remote",
            &url,
        ]);
        if push {
            c.arg("--push");
        }
        c.args([
            "--out",
            ws.root().join(format!("dist-{store}")).to_str().unwrap(),
            "//wheels:markupsafe",
        ]);
        c.output().unwrap().into()
    };
    let a = run("a", true);
    a.ok();
    assert_eq!(a.verdicts()["//images:bookworm"], "built");
    let b = run("b", false);
    b.ok();
    assert!(
        b.with("built").is_empty(),
        "machine B builds nothing: {:?}",
        b.verdicts()
    );
    assert_eq!(
        b.verdicts()["//images:bookworm"],
        "hit:remote",
        "the image comes from the registry"
    );
    let wheel = |d: &str| {
        let dir = ws.root().join(d);
        let f = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("MarkupSafe"))
            .unwrap();
        std::fs::read(f.path()).unwrap()
    };
    assert_eq!(wheel("dist-a"), wheel("dist-b"));
}
