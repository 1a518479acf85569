//! The remote store against a real registry on loopback: sharing between
//! machines, auth, faults, integrity, interoperability, and the store
//! commands. The engine runs with the fake executor here (fast), except in
//! the two-machines test with real podman builds. refine never pushes a
//! fake result, so machine A's store is stamped as sandbox-built before it
//! pushes (`common::adopt_as_sandbox_built`); one test checks that without
//! the stamp nothing is pushed.

mod common;
use common::registry::{Fault, Proxy, Registry};
use common::{Run, Ws, fake_workspace, output_of, shipped};
use std::path::Path;

const ALL: &[&str] = &["//wheels:...", "//repairs:..."];

/// The workspace's machine-A signing key (made on first use) and its
/// public line, which every machine of the test trusts.
fn signer(ws: &Ws) -> (std::path::PathBuf, String) {
    let path = ws.root().join("signing.key");
    let k = if path.exists() {
        refine::key::sign::SigningKeyFile::load(&path).unwrap()
    } else {
        refine::key::sign::SigningKeyFile::generate(&path, "machine-a").unwrap()
    };
    (path, k.public().line())
}

/// A fake-executor build of ALL in `store`, with extra flags and env,
/// trusting machine A's key.
fn build(ws: &Ws, store: &Path, flags: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = ws.cmd_in(store);
    c.env("REFINE_EXECUTOR", "fake")
        .env("REFINE_REMOTE_TIMEOUT", "5")
        .env("REFINE_TRUSTED_KEYS", signer(ws).1);
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(["build", "--json", "--insecure"])
        .args(flags)
        .args(ALL);
    c.output().unwrap().into()
}

/// Machine A: a fake-executor build of ALL into `store`, stamped as the
/// sandbox's, then `refine push ALL` with `flags` (the remote) and `env`.
/// Returns the build and the push.
fn build_and_push(ws: &Ws, store: &Path, flags: &[&str], env: &[(&str, &str)]) -> (Run, Run) {
    let b = build(ws, store, &[], env);
    common::adopt_as_sandbox_built(store);
    let mut c = ws.cmd_in(store);
    c.env("REFINE_EXECUTOR", "fake")
        .env("REFINE_REMOTE_TIMEOUT", "5")
        .env("REFINE_SIGNING_KEY", signer(ws).0);
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(["--json", "push", "--insecure"])
        .args(flags)
        .args(ALL);
    (b, c.output().unwrap().into())
}

/// A registry behind a fault-injecting proxy, and a workspace whose
/// results machine A built and pushed through it (the build is returned).
fn pushed_through_a_proxy() -> (Registry, Proxy, Ws, Run) {
    let reg = Registry::start(None);
    let proxy = Proxy::start(reg.port);
    let ws = fake_workspace();
    let (a, push) = build_and_push(
        &ws,
        &ws.root().join("a"),
        &["--remote", &proxy.url("refine")],
        &[],
    );
    a.ok();
    push.ok();
    (reg, proxy, ws, a)
}

/// A test's world: a registry on loopback (with basic auth if asked), a
/// fake-executor workspace, and machines, each a store under the
/// workspace (`a`, `b`…), that build, push and pull through the registry.
struct Fixture {
    reg: Registry,
    ws: Ws,
    url: String,
    env: Vec<(String, String)>,
}

#[derive(Default)]
struct FixtureBuilder {
    auth: Option<(&'static str, &'static str)>,
    prefix: Option<&'static str>,
    env: Vec<(String, String)>,
}

impl FixtureBuilder {
    /// The registry asks for this user and password.
    fn auth(mut self, user: &'static str, password: &'static str) -> Self {
        self.auth = Some((user, password));
        self
    }

    /// Repositories under this prefix (default `refine`).
    fn prefix(mut self, p: &'static str) -> Self {
        self.prefix = Some(p);
        self
    }

    /// An environment variable for every refine the machines run.
    fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    fn start(self) -> Fixture {
        let reg = Registry::start(self.auth);
        let url = reg.url(self.prefix.unwrap_or("refine"));
        Fixture {
            reg,
            ws: fake_workspace(),
            url,
            env: self.env,
        }
    }

    /// Started, with machine `a` having built everything and pushed it
    /// (both checked); returns machine a's build.
    fn pushed(self) -> (Fixture, Run) {
        let f = self.start();
        let (a, push) = f.push_from("a");
        a.ok();
        push.ok();
        (f, a)
    }
}

impl Fixture {
    fn builder() -> FixtureBuilder {
        FixtureBuilder::default()
    }

    fn store(&self, machine: &str) -> std::path::PathBuf {
        self.ws.root().join(machine)
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// Machine `machine` builds ALL with the remote (and `flags`).
    fn build(&self, machine: &str, flags: &[&str]) -> Run {
        let flags = [&["--remote", self.url.as_str()][..], flags].concat();
        build(&self.ws, &self.store(machine), &flags, &self.env())
    }

    /// Machine `machine` builds ALL and pushes it: (build, push).
    fn push_from(&self, machine: &str) -> (Run, Run) {
        build_and_push(
            &self.ws,
            &self.store(machine),
            &["--remote", &self.url],
            &self.env(),
        )
    }

    /// The key `label` has in machine `machine`'s store.
    fn key(&self, machine: &str, label: &str) -> String {
        self.ws
            .key_with(label, |o| o.store = Some(self.store(machine)))
    }
}

/// Labels a `refine --json push|pull` moved with `result`.
fn moved(r: &Run, result: &str) -> Vec<String> {
    r.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["result"] == result)
        .map(|e| e["label"].as_str().unwrap().to_string())
        .collect()
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
    let f = Fixture::builder().prefix("refine/ci").start();
    let ws = &f.ws;
    let (a, push) = f.push_from("a");
    a.ok();
    push.ok();
    assert!(a.with("hit:remote").is_empty());
    let mut built = a.with("built");
    let mut pushed = moved(&push, "pushed");
    built.sort();
    pushed.sort();
    assert_eq!(pushed, built, "everything built was pushed");

    let b = f.build("b", &[]);
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
    let c = f.build("b", &[]);
    assert_eq!(c.with("hit:local").len(), a.verdicts().len());
    // --offline does not look.
    let d = f.build("d", &["--offline"]);
    d.ok();
    assert!(d.with("hit:remote").is_empty());
}

#[test]
fn basic_auth_from_the_environment_and_a_docker_auth_file() {
    let f = Fixture::builder()
        .auth("alice", "wonderland")
        .env("REFINE_REGISTRY_USERNAME", "alice")
        .env("REFINE_REGISTRY_PASSWORD", "wonderland")
        .start();
    let (reg, ws, url) = (&f.reg, &f.ws, f.url.clone());
    let (a, push) = f.push_from("a");
    a.ok();
    push.ok();
    assert!(moved(&push, "failed").is_empty(), "{}", push.stdout);
    // Credentials from a REGISTRY_AUTH_FILE, as docker/podman/skopeo write it.
    let auth = base64_std("alice:wonderland");
    let file = ws.root().join("auth.json");
    std::fs::write(
        &file,
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.addr()),
    )
    .unwrap();
    let b = build(
        ws,
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
    let (c, push) = build_and_push(ws, &ws.root().join("a"), &["--remote", &url], &bad);
    c.ok();
    assert_eq!(
        push.code,
        3,
        "a failed push is the environment's: {}",
        push.all()
    );
    // The registry asks for credentials to read as well: every result
    // fails, each saying why, and none is pushed.
    assert!(moved(&push, "pushed").is_empty(), "{}", push.stdout);
    assert!(moved(&push, "failed").contains(&"//wheels:alpha".to_string()));
    for l in push.stdout.lines() {
        assert!(l.contains("refused the credentials (401)"), "{l}");
    }
    assert!(
        !push.all().contains("nope") && !c.all().contains("nope"),
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
    let (a, push) = build_and_push(&ws, &ws.root().join("a"), &["--remote", &url], &env);
    a.ok();
    push.ok();
    assert!(!moved(&push, "pushed").is_empty(), "{}", push.stdout);
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
        c.env("REFINE_EXECUTOR", "fake")
            .env("REFINE_TRUSTED_KEYS", signer(&ws).1)
            .args(["build", "--insecure", "--remote", &url, "//wheels:alpha"]);
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

/// SIGTERM while the registry stalls (before it answers, and in the middle
/// of a blob) ends refine at once, as an interrupt (130), not after the
/// request timeout (the default 600 s here), and leaves no partial file.
#[test]
fn sigterm_during_a_stalled_registry_ends_refine_promptly() {
    let (_reg, proxy, ws, _) = pushed_through_a_proxy();
    for fault in [Fault::Stall, Fault::StallMidBlob] {
        proxy.set(fault);
        let store = ws.root().join(format!("b-{fault:?}"));
        let mut c = ws.cmd_in(&store);
        c.env("REFINE_EXECUTOR", "fake")
            .env("REFINE_REMOTE_TIMEOUT", "600")
            .env("REFINE_TRUSTED_KEYS", signer(&ws).1)
            .args([
                "build",
                "--json",
                "--insecure",
                "--remote",
                &proxy.url("refine"),
            ])
            .args(ALL)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = c.spawn().unwrap();
        // Long enough to be waiting on the registry (the fake builds take
        // milliseconds; the stall holds the first remote lookup).
        std::thread::sleep(std::time::Duration::from_secs(3));
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let start = std::time::Instant::now();
        let r: Run = child.wait_with_output().unwrap().into();
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "{fault:?}: refine took {:?} to stop",
            start.elapsed()
        );
        assert_eq!(r.code, 130, "{fault:?}: {}", r.all());
        assert!(tmp_is_empty(&store), "{fault:?}: no partial file left");
    }
    proxy.set(Fault::None);
}

#[test]
fn broken_downloads_and_wrong_bytes_are_discarded_and_rebuilt() {
    let (_reg, proxy, ws, a) = pushed_through_a_proxy();
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
    let (f, _) = Fixture::builder().pushed();
    // Delete every blob the registry stores (manifests stay, by their links).
    let blobs = f.reg.data().join("docker/registry/v2/blobs/sha256");
    for e in common::files_under(&blobs) {
        if e.file_name().is_some_and(|n| n == "data") {
            let bytes = std::fs::read(&e).unwrap();
            // Keep manifests (JSON with schemaVersion), drop layer and config blobs.
            if !String::from_utf8_lossy(&bytes).contains("\"schemaVersion\"") {
                std::fs::remove_file(&e).unwrap();
            }
        }
    }
    let b = f.build("b", &[]);
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
    let r = build(
        &ws,
        &ws.store,
        &["-k"],
        &[("REFINE_FAKE_FAIL", "//packs:openssl")],
    );
    assert_eq!(r.code, 1);
    common::adopt_as_sandbox_built(&ws.store);
    let key = signer(&ws).0;
    let push = ws.fake_env(
        &[
            "--json",
            "push",
            "--insecure",
            "--remote",
            &url,
            "//wheels:...",
            "//repairs:...",
        ],
        &[("REFINE_SIGNING_KEY", key.to_str().unwrap())],
    );
    assert!(
        moved(&push, "missing").contains(&"//packs:openssl".to_string()),
        "{}",
        push.stdout
    );
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
fn a_fake_result_is_never_pushed() {
    let reg = Registry::start(None);
    let ws = fake_workspace();
    let url = reg.url("refine");
    let r = build(&ws, &ws.store, &["--remote", &url, "--push"], &[]);
    r.ok();
    let built = r.with("built");
    assert!(!built.is_empty());
    for e in r
        .events()
        .into_iter()
        .filter(|e| e["event"] == "finished" && e["verdict"] == "built")
    {
        let push = e["push"].as_str().unwrap_or_default();
        assert!(
            push.starts_with("push-failed: not pushed: built by the fake executor"),
            "{}: {push}",
            e["label"]
        );
    }
    let ls = ws.run(&["store", "ls", "--insecure", "--remote", &url]);
    ls.ok();
    assert!(
        ls.stdout.trim().is_empty(),
        "the registry holds nothing: {}",
        ls.stdout
    );
}

#[test]
fn what_refine_pushes_is_an_oci_artifact_skopeo_can_read() {
    let reg = Registry::start(None);
    let ws = fake_workspace();
    let url = reg.url("refine");
    let (a, push) = build_and_push(&ws, &ws.store, &["--remote", &url], &[]);
    a.ok();
    push.ok();
    let key = ws.key("//wheels:alpha");
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
    // The fake executor's results are not pushed: nothing moves.
    let p = ws.fake(&["push", "--insecure", "--remote", &url, "//wheels:alpha"]);
    assert_eq!(p.code, 3, "{}", p.all());
    assert!(
        p.stdout.contains("failed   //wheels:alpha: //wheels:alpha was built by the fake executor, not in the sandbox: not pushed"),
        "{}",
        p.stdout
    );
    let ls = ws.run(&["store", "ls", "--insecure", "--remote", &url]);
    assert!(
        ls.stdout.trim().is_empty(),
        "nothing reached the registry: {}",
        ls.stdout
    );
    common::adopt_as_sandbox_built(&ws.store);
    // Unsigned results are not pushed either.
    let p = ws.fake(&["push", "--insecure", "--remote", &url, "//wheels:alpha"]);
    assert_eq!(p.code, 3, "{}", p.all());
    assert!(p.stdout.contains("no signing key"), "{}", p.stdout);
    // This machine's key, in its store, signs what it pushes.
    let k = ws.run(&["key", "generate", "--name", "ci"]);
    k.ok();
    let public = k.stdout.trim().to_string();
    assert!(public.starts_with("ci:"), "{public}");
    assert!(ws.store.join("keys/signing.key").is_file());
    let again = ws.run(&["key", "generate"]);
    assert_eq!(again.code, 2, "a key is never overwritten: {}", again.all());
    assert_eq!(ws.run(&["key", "show"]).stdout.trim(), public);
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
    let untrusting: Run = c.output().unwrap().into();
    assert_eq!(untrusting.code, 2, "{}", untrusting.all());
    assert!(
        untrusting.stderr.contains("no key is trusted"),
        "{}",
        untrusting.stderr
    );
    let mut c = ws.cmd_in(&other);
    c.env("REFINE_EXECUTOR", "fake").args([
        "pull",
        "--insecure",
        "--trusted-key",
        &public,
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
        let (key, public) = signer(&ws);
        c.env("REFINE_SIGNING_KEY", &key)
            .env("REFINE_TRUSTED_KEYS", &public);
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

#[test]
fn credentials_from_a_helper_and_from_podmans_auth_file() {
    // Machine a pushes with credentials from the environment; the others
    // find them elsewhere.
    let (f, _) = Fixture::builder()
        .auth("alice", "wonderland")
        .env("REFINE_REGISTRY_USERNAME", "alice")
        .env("REFINE_REGISTRY_PASSWORD", "wonderland")
        .pushed();
    let (reg, ws, url) = (&f.reg, &f.ws, f.url.clone());
    let home = ws.root().join("home");
    // A docker credential helper named in docker's config.json.
    let bin = ws.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-refinetest");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread server\necho \"{\\\"ServerURL\\\":\\\"$server\\\",\\\"Username\\\":\\\"alice\\\",\\\"Secret\\\":\\\"wonderland\\\"}\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let docker = ws.root().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"refinetest"}}}}"#, reg.addr()),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let b = build(
        ws,
        &ws.root().join("b"),
        &["--remote", &url],
        &[
            ("PATH", path.as_str()),
            ("HOME", home.to_str().unwrap()),
            ("DOCKER_CONFIG", docker.to_str().unwrap()),
            ("XDG_RUNTIME_DIR", ws.root().join("run").to_str().unwrap()),
        ],
    );
    b.ok();
    assert!(
        b.with("built").is_empty(),
        "pulled through the helper: {:?}",
        b.verdicts()
    );
    // podman's auth.json under XDG_RUNTIME_DIR.
    let run = ws.root().join("run");
    std::fs::create_dir_all(run.join("containers")).unwrap();
    std::fs::write(
        run.join("containers/auth.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            reg.addr(),
            base64_std("alice:wonderland")
        ),
    )
    .unwrap();
    let c = build(
        ws,
        &ws.root().join("c"),
        &["--remote", &url],
        &[
            ("HOME", home.to_str().unwrap()),
            ("XDG_RUNTIME_DIR", run.to_str().unwrap()),
        ],
    );
    c.ok();
    assert!(
        c.with("built").is_empty(),
        "pulled with podman's auth.json: {:?}",
        c.verdicts()
    );
    // And with neither, nothing is pulled.
    let d = build(
        ws,
        &ws.root().join("d"),
        &["--remote", &url],
        &[
            ("HOME", home.to_str().unwrap()),
            ("XDG_RUNTIME_DIR", home.to_str().unwrap()),
        ],
    );
    d.ok();
    assert!(d.with("hit:remote").is_empty(), "{:?}", d.verdicts());
}

#[test]
fn only_results_signed_by_a_trusted_key_are_used() {
    let (f, _) = Fixture::builder().pushed();
    let (reg, ws, url) = (&f.reg, &f.ws, f.url.clone());
    let mallory = refine::key::sign::SigningKeyFile::generate(&ws.root().join("m.key"), "mallory")
        .unwrap()
        .public()
        .line();
    // Trusting another key: nothing is used, each node says why once.
    let mut c = ws.cmd_in(&ws.root().join("b"));
    c.env("REFINE_EXECUTOR", "fake").args([
        "build",
        "--json",
        "--insecure",
        "--remote",
        &url,
        "--trusted-key",
        &mallory,
        "//wheels:...",
        "//repairs:...",
    ]);
    let b: Run = c.output().unwrap().into();
    b.ok();
    assert!(b.with("hit:remote").is_empty(), "{:?}", b.verdicts());
    let n = notes(&b);
    assert!(
        n.iter()
            .any(|m| m.contains("not used: it is signed by machine-a:")
                && m.contains("a key not trusted here")),
        "{n:?}"
    );
    let labels: Vec<String> = b
        .events()
        .into_iter()
        .filter(|e| e["event"] == "warning")
        .map(|e| e["label"].to_string())
        .collect();
    let unique: std::collections::HashSet<&String> = labels.iter().collect();
    assert_eq!(labels.len(), unique.len(), "said once per node: {labels:?}");
    // Trusting nobody: one warning for the run, nothing pulled.
    let mut c = ws.cmd_in(&ws.root().join("c"));
    c.env("REFINE_EXECUTOR", "fake").args([
        "build",
        "--json",
        "--insecure",
        "--remote",
        &url,
        "//wheels:alpha",
    ]);
    let c: Run = c.output().unwrap().into();
    c.ok();
    assert!(c.with("hit:remote").is_empty());
    assert_eq!(notes(&c).len(), 1, "{:?}", notes(&c));
    assert!(
        notes(&c)[0].contains("no key is trusted here"),
        "{:?}",
        notes(&c)
    );
    // Trusting machine A's key (as [store] trusted_keys): all hits.
    ws.edit(
        "WORKSPACE.toml",
        "[defaults]",
        &format!(
            "[store]\ntrusted_keys = [\"{}\"]\n\n[defaults]",
            signer(ws).1
        ),
    );
    let mut c = ws.cmd_in(&ws.root().join("d"));
    c.env("REFINE_EXECUTOR", "fake").args([
        "build",
        "--json",
        "--insecure",
        "--remote",
        &url,
        "//wheels:...",
        "//repairs:...",
    ]);
    let d: Run = c.output().unwrap().into();
    d.ok();
    assert!(d.with("built").is_empty(), "{:?}", d.verdicts());
    assert!(!d.with("hit:remote").is_empty());
    // skopeo sees who signed it; verify --against remote says so.
    let key = f.key("d", "//wheels:alpha");
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{}/refine/wheels/alpha:{key}", reg.addr()))
        .output()
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["annotations"]["dev.refine.signer"], signer(ws).1.as_str());
    assert!(
        m["annotations"]["dev.refine.signature"]
            .as_str()
            .is_some_and(|s| s.len() == 88)
    );
    let mut c = ws.cmd_in(&ws.root().join("d"));
    c.env("REFINE_EXECUTOR", "fake").args([
        "verify",
        "--against",
        "remote",
        "--insecure",
        "--remote",
        &url,
        "//wheels:alpha",
    ]);
    let v: Run = c.output().unwrap().into();
    v.ok();
    assert!(
        v.stdout
            .contains("remote result signed by machine-a (trusted)"),
        "{}",
        v.stdout
    );
    // A bad key in WORKSPACE.toml is a user error at its place.
    ws.edit(
        "WORKSPACE.toml",
        "trusted_keys = [\"",
        "trusted_keys = [\"x\", \"",
    );
    let bad = ws.fake(&["plan"]);
    assert_eq!(bad.code, 2, "{}", bad.all());
    assert!(bad.stderr.contains("WORKSPACE.toml:"), "{}", bad.stderr);
    assert!(bad.stderr.contains("is not a public key"), "{}", bad.stderr);
}

/// Replace the result under `repo:tag` with one whose config lists
/// `tree_text` (its output that text's digest) and whose layer is
/// `archive` (tar+zstd), signed with `key`: what an attacker with a
/// registry account and the signing key (a stolen one, an insider) can do.
fn craft(reg: &Registry, repo: &str, tag: &str, tree_text: &str, archive: &[u8], key: &Path) {
    use refine::key::sha256_bytes;
    let client = refine::remote::registry::Registry::new(&reg.addr(), true, None).unwrap();
    let (bytes, _) = client
        .get_manifest(repo, tag)
        .unwrap()
        .expect("a manifest to replace");
    let mut m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let cfg_digest = refine::key::Digest::parse(m["config"]["digest"].as_str().unwrap()).unwrap();
    let cfg = refine::remote::registry::read_small(&client, repo, &cfg_digest)
        .unwrap()
        .unwrap();
    let mut cfg: serde_json::Value = serde_json::from_slice(&cfg).unwrap();
    let output = sha256_bytes(tree_text.as_bytes());
    cfg["tree"] = tree_text.into();
    cfg["output"] = output.to_string().into();
    let cfg_bytes = serde_json::to_vec(&cfg).unwrap();
    let cfg_d = sha256_bytes(&cfg_bytes);
    client.upload_bytes(repo, &cfg_d, &cfg_bytes).unwrap();
    let layer_d = sha256_bytes(archive);
    client.upload_bytes(repo, &layer_d, archive).unwrap();
    m["config"]["digest"] = cfg_d.to_string().into();
    m["config"]["size"] = cfg_bytes.len().into();
    m["layers"] = serde_json::json!([{
        "mediaType": "application/vnd.refine.tree.v1.tar+zstd",
        "digest": layer_d, "size": archive.len(),
    }]);
    let signer = refine::key::sign::SigningKeyFile::load(key).unwrap();
    let label = m["annotations"]["dev.refine.label"]
        .as_str()
        .unwrap()
        .to_string();
    let version = m["annotations"]["dev.refine.version"]
        .as_str()
        .unwrap()
        .to_string();
    let out = output.to_string();
    m["annotations"]["dev.refine.output"] = out.clone().into();
    m["annotations"]["dev.refine.signature"] = signer
        .sign(&refine::key::sign::message(
            tag, &out, &out, &label, &version,
        ))
        .into();
    client
        .put_manifest(repo, tag, &serde_json::to_vec(&m).unwrap())
        .unwrap();
}

/// One tar entry, written raw: `kind` is a tar type flag.
fn tar_entry(
    out: &mut Vec<u8>,
    path: &str,
    kind: tar::EntryType,
    link: &str,
    data: &[u8],
    size: u64,
) {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).unwrap_or_else(|_| {
        // tar refuses `..`: write the name bytes ourselves.
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
    });
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(size);
    if !link.is_empty() {
        h.set_link_name(link).unwrap();
    }
    if matches!(kind, tar::EntryType::Char) {
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
    }
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn zst(mut tar: Vec<u8>) -> Vec<u8> {
    tar.resize(tar.len() + 1024, 0);
    zstd::encode_all(&tar[..], 3).unwrap()
}

#[test]
fn crafted_trees_and_archives_are_refused_and_rebuilt() {
    use refine::key::sha256_bytes;
    let (f, a) = Fixture::builder().pushed();
    let (reg, ws, url) = (&f.reg, &f.ws, f.url.clone());
    let zlib_key = f.key("a", "//packs:zlib");
    let legit = output_of(&a, "//packs:zlib");
    let legit_tree = {
        let s = refine::store::LocalStore::open(&ws.root().join("a")).unwrap();
        s.cas
            .tree(&refine::key::Digest::parse(&legit).unwrap())
            .unwrap()
    };
    // A directory outside every store: nothing may ever appear in it.
    let outside = tempfile::tempdir().unwrap();
    let dir = outside.path().to_str().unwrap().to_string();
    let owned = b"owned\n";
    let owned_d = sha256_bytes(owned);
    let file_line = |p: &str| format!("f\t644\t{}\t{}\t{p}\n", owned.len(), owned_d.hex());
    let legit_text = legit_tree.encode();
    let first = legit_tree.entries[0].path.clone();

    let mut cases: Vec<(&str, String, Vec<u8>, &str)> = Vec::new();
    // The reproduction of the report: a link out, then a file below it.
    let mut t = Vec::new();
    tar_entry(&mut t, "evil", tar::EntryType::Symlink, &dir, b"", 0);
    tar_entry(
        &mut t,
        "evil/owned.txt",
        tar::EntryType::Regular,
        "",
        owned,
        owned.len() as u64,
    );
    cases.push((
        "symlink then a file below it",
        format!(
            "refine-tree 1\nl\tevil\t{dir}\n{}",
            file_line("evil/owned.txt")
        ),
        zst(t.clone()),
        "refused its tree",
    ));
    cases.push((
        "a relative link climbing out",
        format!(
            "refine-tree 1\nl\tevil\t../../../../{}\n{}",
            dir.trim_start_matches('/'),
            file_line("evil/owned.txt")
        ),
        zst(t.clone()),
        "refused its tree",
    ));
    cases.push((
        "an absolute link alone",
        format!("refine-tree 1\nl\tevil\t{dir}\n"),
        zst(t.clone()),
        "points outside the tree",
    ));
    cases.push((
        "the same path as two kinds",
        format!("refine-tree 1\nd\tx\n{}", file_line("x")),
        zst(Vec::new()),
        "listed more than once",
    ));
    // The tree is the legitimate one; the archive says something else.
    cases.push((
        "an archive with a link and a file below it",
        legit_text.clone(),
        zst(t),
        "the archive holds",
    ));
    let mut t = Vec::new();
    tar_entry(
        &mut t,
        "../owned.txt",
        tar::EntryType::Regular,
        "",
        owned,
        owned.len() as u64,
    );
    cases.push((
        "`..` in the archive",
        legit_text.clone(),
        zst(t),
        "the archive holds",
    ));
    let mut t = Vec::new();
    tar_entry(&mut t, &first, tar::EntryType::Link, "/etc/passwd", b"", 0);
    cases.push((
        "a hard link",
        legit_text.clone(),
        zst(t),
        "entry in the archive",
    ));
    let mut t = Vec::new();
    tar_entry(&mut t, &first, tar::EntryType::Char, "", b"", 0);
    cases.push((
        "a device file",
        legit_text.clone(),
        zst(t),
        "entry in the archive",
    ));
    let mut t = Vec::new();
    tar_entry(&mut t, &first, tar::EntryType::GNUSparse, "", b"", 10 << 30);
    cases.push((
        "a 10 GB sparse file header",
        legit_text.clone(),
        zst(t),
        "treated as a miss",
    ));
    // 100,000 entries behind the legitimate ones.
    let mut t = Vec::new();
    for i in 0..100_000 {
        tar_entry(
            &mut t,
            &format!("many/{i}"),
            tar::EntryType::Regular,
            "",
            b"x",
            1,
        );
    }
    cases.push((
        "a 100k-entry archive",
        legit_text.clone(),
        zst(t),
        "the archive holds",
    ));
    let mut text = String::from("refine-tree 1\n");
    for i in 0..100_000 {
        text.push_str(&format!("l\tmany/{i:06}\t.\n"));
    }
    cases.push((
        "a 100k-entry tree",
        text,
        zst(Vec::new()),
        "more than the 65536",
    ));

    for (n, (what, tree_text, archive, says)) in cases.into_iter().enumerate() {
        craft(
            reg,
            "refine/packs/zlib",
            &zlib_key,
            &tree_text,
            &archive,
            &signer(ws).0,
        );
        let store = ws.root().join(format!("b{n}"));
        // A dependent of zlib: zlib is materialized for its build.
        let mut c = ws.cmd_in(&store);
        c.env("REFINE_EXECUTOR", "fake")
            .env("REFINE_TRUSTED_KEYS", signer(ws).1)
            .args([
                "build",
                "--json",
                "--insecure",
                "--remote",
                &url,
                "//packs:openssl",
            ]);
        let b: Run = c.output().unwrap().into();
        b.ok();
        assert_eq!(
            b.verdicts()["//packs:zlib"],
            "built",
            "{what}: refused and rebuilt: {}",
            b.stdout
        );
        assert_eq!(
            output_of(&b, "//packs:zlib"),
            legit,
            "{what}: rebuilt to the real output"
        );
        let n = notes(&b);
        assert!(
            n.iter()
                .any(|m| m.contains("//packs:zlib") || m.contains("packs/zlib"))
                && n.iter().any(|m| m.contains(says)),
            "{what}: says why ({says}): {n:?}"
        );
        assert_eq!(
            std::fs::read_dir(outside.path()).unwrap().count(),
            0,
            "{what}: nothing was written outside the store"
        );
        assert!(tmp_is_empty(&store), "{what}: nothing half-written");
    }
}
