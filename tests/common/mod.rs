//! Helpers for integration tests: temporary workspaces and the real binary.
#![allow(dead_code)]

pub mod reapi;
pub mod registry;

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// A `.tar.gz` sdist of `files` (path in the archive, text), every entry
/// a regular file of mode 0644 and mtime 1.
pub fn sdist(files: &[(&str, &str)]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    {
        let mut t = tar::Builder::new(&mut gz);
        for (path, text) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(1);
            h.set_cksum();
            t.append_data(&mut h, path, text.as_bytes()).unwrap();
        }
        t.finish().unwrap();
    }
    gz.finish().unwrap()
}

/// Every regular file under `p` (symbolic links are not followed).
pub fn files_under(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                out.extend(files_under(&e.path()));
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// One store for all the tests of a test binary (built from empty once per
/// run, so the builder image is made once; a test that needs a node another
/// is building waits for it), removed when the process exits. A `static` is
/// never dropped, so a `TempDir` kept in one left a store of up to a
/// gigabyte in the temp directory after every run; the test harness exits
/// through `exit`, which runs `atexit` handlers, pass or fail. (`atexit`
/// is the one unsafe call in the tests: Rust runs no destructor of a
/// static, and no safe API runs code at process exit.)
#[allow(unsafe_code)]
pub fn shared_store() -> &'static Path {
    static STORE: OnceLock<PathBuf> = OnceLock::new();
    extern "C" fn remove_store() {
        if let Some(p) = STORE.get() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
    STORE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("refine-test-store-")
            .tempdir()
            .unwrap()
            .keep();
        // SAFETY: registers a plain function with no captured state; it
        // runs once, at exit, after every test thread has finished.
        let registered = unsafe { libc::atexit(remove_store) };
        assert_eq!(registered, 0, "atexit failed");
        dir
    })
}

/// A workspace in a temp directory, with its own store.
pub struct Ws {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
}

impl Ws {
    pub fn new(files: &[(&str, &str)]) -> Ws {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join(".store");
        let ws = Ws { dir, store };
        for (p, c) in files {
            ws.write(p, c);
        }
        ws
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(rel)).unwrap()
    }

    /// Replace `from` by `to` in a file, checking it was there.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let t = self.read(rel);
        assert!(t.contains(from), "{rel} has no {from:?}");
        self.write(rel, &t.replacen(from, to, 1));
    }

    /// The refine binary, pointed at this workspace and store.
    pub fn cmd(&self) -> Command {
        self.cmd_in(&self.store)
    }

    /// The refine binary, pointed at this workspace and another store.
    pub fn cmd_in(&self, store: &Path) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_refine"));
        c.arg("--workspace").arg(self.dir.path());
        c.arg("--store").arg(store);
        c.env_remove("REFINE_EXECUTOR");
        c.env_remove("REFINE_STORE");
        c.stdin(Stdio::null());
        c
    }

    /// Options for a library call on this workspace and its store, as the
    /// fake executor's builds see them.
    pub fn opts(&self) -> refine::ops::GlobalOpts {
        refine::ops::GlobalOpts {
            workspace: Some(self.dir.path().to_path_buf()),
            store: Some(self.store.clone()),
            executor: refine::ops::ExecutorKind::Fake,
            ..Default::default()
        }
    }

    /// The key `label` has now for the fake executor's builds in this
    /// workspace's store (the one way tests learn a key).
    pub fn key(&self, label: &str) -> String {
        self.key_with(label, |_| {})
    }

    /// The same with the options changed (another store, `arch`,
    /// `toolchain`, the podman executor).
    pub fn key_with(
        &self,
        label: &str,
        change: impl FnOnce(&mut refine::ops::GlobalOpts),
    ) -> String {
        let mut o = self.opts();
        change(&mut o);
        refine::testing::key_of(&o, label)
            .unwrap_or_else(|e| panic!("no key for {label}: {e}"))
            .0
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd().args(args).output().unwrap())
    }

    /// Run with the fake executor.
    pub fn fake(&self, args: &[&str]) -> Run {
        self.fake_env(args, &[])
    }

    pub fn fake_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = self.cmd();
        c.env("REFINE_EXECUTOR", "fake");
        for (k, v) in env {
            c.env(k, v);
        }
        Run::from(c.args(args).output().unwrap())
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code,
            0,
            "refine failed:\nstdout:\n{}\nstderr:\n{}{}",
            self.stdout,
            self.stderr,
            self.failed_log_tails()
        );
        self
    }

    /// The last lines of each failed node's log (a `--json` run names the
    /// logs; they live in a temporary store that is gone once the test ends).
    fn failed_log_tails(&self) -> String {
        let mut out = String::new();
        for e in self.events() {
            if e["event"] != "finished" || e["verdict"] != "failed" {
                continue;
            }
            let Some(text) = e["log"]
                .as_str()
                .and_then(|p| std::fs::read_to_string(p).ok())
            else {
                continue;
            };
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("\nlast lines of the log of {}:\n", e["label"]));
            for l in &lines[lines.len().saturating_sub(40)..] {
                out.push_str(&format!("| {l}\n"));
            }
        }
        out
    }

    /// The log path a failed human-mode run names on stderr.
    pub fn log_path(&self) -> &str {
        self.stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix("log: "))
            .expect("a log path on stderr")
    }

    /// JSON events from a `--json` run.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// label → verdict, from a `--json` build.
    pub fn verdicts(&self) -> BTreeMap<String, String> {
        self.events()
            .iter()
            .filter(|e| e["event"] == "finished")
            .map(|e| {
                (
                    e["label"].as_str().unwrap().to_string(),
                    e["verdict"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Labels with a given verdict.
    pub fn with(&self, verdict: &str) -> Vec<String> {
        self.verdicts()
            .into_iter()
            .filter(|(_, v)| v == verdict)
            .map(|(l, _)| l)
            .collect()
    }

    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// The first line of stdout that contains `needle` ("" if none).
    pub fn line_with(&self, needle: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_default()
    }
}

/// Stamp the results in a store as built by the sandbox. refine never
/// pushes a result of the fake executor, and never lets one answer a podman
/// build; the remote tests, which test the transport rather than the
/// builds, make machine A's store look sandbox-built with this. Only tests
/// do this (a library call of the test-only feature): refine has no switch
/// for it.
pub fn adopt_as_sandbox_built(store: &Path) {
    let n = refine::testing::adopt_as_sandbox_built(store).unwrap();
    assert!(
        n > 0,
        "no result of the fake executor in {}",
        store.display()
    );
}

/// A workspace for the fake executor: path sources, an image, the system
/// runtime, a chain of packs (zlib <- openssl <- curl) and a few wheels.
pub fn fake_workspace() -> Ws {
    let ws = Ws::new(&[]);
    let mut srcs = String::new();
    for (name, file) in [
        ("setuptools", "vendor/setuptools-1.0-py3-none-any.whl"),
        ("wheel", "vendor/wheel-1.0-py3-none-any.whl"),
        ("auditwheel", "vendor/auditwheel-1.0-py3-none-any.whl"),
        ("zlib-src", "vendor/zlib-1.3.tar.gz"),
        ("openssl-src", "vendor/openssl-3.0.tar.gz"),
        ("curl-src", "vendor/curl-8.0.tar.gz"),
        ("alpha-src", "vendor/alpha-1.0.tar.gz"),
        ("beta-src", "vendor/beta-2.0.tar.gz"),
        ("gamma-src", "vendor/gamma-3.0.tar.gz"),
    ] {
        let content = format!("contents of {file}\n");
        ws.write(file, &content);
        srcs.push_str(&format!(
            "[sources.{name}]\npath = \"{file}\"\nsha256 = \"{}\"\n\n",
            sha256_hex(content.as_bytes())
        ));
    }
    ws.write("rules/sources.toml", &srcs);
    ws.write(
        "WORKSPACE.toml",
        r#"# The engine tests' own world: no built-in base behind it.
[workspace]
base = "none"

[platform]
arch = "x86_64"
python = "3.11"

[defaults]
image = "//images:base"
runtime = "//runtimes:system"
wheel_recipe = "recipes/wheel.sh"
repair_recipe = "recipes/repair.sh"
build_requires = ["//sources:setuptools", "//sources:wheel"]
repair_tools = ["//sources:auditwheel"]
targets = ["//wheels:alpha", "//wheels:beta"]
"#,
    );
    ws.write(
        "runtimes/base.toml",
        "[images.base]\nsuite = \"bookworm\"\npackages = [\"python3\", \"gcc\"]\n\n[runtimes.system]\nsystem = true\n",
    );
    ws.write("recipes/wheel.sh", "#!/bin/sh\npip wheel .\n");
    ws.write("recipes/repair.sh", "#!/bin/sh\nauditwheel repair\n");
    ws.write(
        "recipes/pack.sh",
        "#!/bin/sh\n./configure && make install\n",
    );
    ws.write("recipes/lib/common.sh", "log() { echo \"$@\"; }\n");
    ws.write(
        "packs/zlib.toml",
        "[packs.zlib]\nversion = \"1.3\"\nsource = \"//sources:zlib-src\"\nrecipe = \"recipes/pack.sh\"\nincludes = [\"recipes/lib/common.sh\"]\n",
    );
    ws.write(
        "packs/openssl.toml",
        "[packs.openssl]\nversion = \"3.0\"\nsource = \"//sources:openssl-src\"\nrecipe = \"recipes/pack.sh\"\ndeps = [\"//packs:zlib\"]\n",
    );
    ws.write(
        "packs/curl.toml",
        "[packs.curl]\nversion = \"8.0\"\nsource = \"//sources:curl-src\"\nrecipe = \"recipes/pack.sh\"\ndeps = [\"//packs:openssl\"]\n",
    );
    ws.write(
        "rules/wheels.toml",
        r#"# wheels for the engine tests
[wheels.alpha]
version = "1.0"
source = "//sources:alpha-src"
env = { CFLAGS = "-O2" }

[wheels.beta]
version = "2.0"
source = "//sources:beta-src"
packs = ["//packs:openssl"]
repair = true

[wheels.gamma]
version = "3.0"
source = "//sources:gamma-src"
packs = ["//packs:curl"]
"#,
    );
    ws
}

/// A copy of the repository's own workspace (the shipped rule set).
pub fn shipped() -> Ws {
    let ws = Ws::new(&[]);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for entry in ["WORKSPACE.toml", "rules", "packs", "runtimes", "recipes"] {
        copy(&repo.join(entry), &ws.root().join(entry));
    }
    ws
}

fn copy(from: &Path, to: &Path) {
    if !from.exists() {
        return;
    }
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            copy(&e.path(), &to.join(e.file_name()));
        }
    } else {
        std::fs::copy(from, to).unwrap();
    }
}

/// The output digest a `--json` run reports for a label.
pub fn output_of(run: &Run, label: &str) -> String {
    run.events()
        .into_iter()
        .find(|e| e["event"] == "finished" && e["label"] == label)
        .unwrap_or_else(|| panic!("no result for {label}"))["output"]
        .as_str()
        .unwrap_or_else(|| panic!("{label} has no output"))
        .to_string()
}

/// Run a command in a fresh container of a refine-built image.
pub fn in_container(
    image_tag: &str,
    arch: &str,
    mounts: &[(&Path, &str)],
    script: &str,
) -> (bool, String, String) {
    in_container_on(image_tag, arch, mounts, script, "none")
}

/// [`in_container`] on a network of podman's (`host`: the machine's
/// loopback, to reach a server this test started).
pub fn in_container_on(
    image_tag: &str,
    arch: &str,
    mounts: &[(&Path, &str)],
    script: &str,
    network: &str,
) -> (bool, String, String) {
    let mut c = Command::new("podman");
    c.args([
        "run",
        "--rm",
        &format!("--network={network}"),
        "--pull=never",
    ]);
    if arch != std::env::consts::ARCH {
        c.arg(format!(
            "--arch={}",
            if arch == "x86_64" { "amd64" } else { arch }
        ));
    }
    for (host, target) in mounts {
        c.arg("-v").arg(format!("{}:{target}:ro", host.display()));
    }
    c.arg(image_tag).args(["sh", "-c", script]);
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The podman tag of a built image, from a `--json` run.
pub fn image_tag(run: &Run, label: &str) -> String {
    let out = output_of(run, label);
    let name = label.rsplit(':').next().unwrap();
    format!("localhost/refine-image/{name}:{}", &out[7..39])
}

/// A `refine serve` this test started: its URL (from what it says on
/// stderr), stopped by its pid with SIGTERM.
pub struct Server {
    child: std::process::Child,
    pub url: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// Start `c` (a `refine … serve --addr 127.0.0.1:0 …` command).
    pub fn start(mut c: Command) -> Server {
        use std::io::BufRead;
        c.stderr(Stdio::piped()).stdout(Stdio::null());
        let mut child = c.spawn().unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                keep.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(rest) = line.strip_prefix("serve: http://") {
                    let addr = rest.split('/').next().unwrap_or("").to_string();
                    let _ = tx.send(format!("http://{addr}"));
                }
            }
        });
        let url = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the server did not start: {}", log.lock().unwrap()));
        Server {
            child,
            url,
            stderr: log,
        }
    }

    /// SIGTERM, then wait up to `secs` for it to end by itself: whether it
    /// did (else it is killed), and what it said on stderr.
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn terminate(mut self, secs: u64) -> (bool, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let mut ended = false;
        while std::time::Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                ended = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        (ended, self.stderr.lock().unwrap().clone())
    }

    /// Stop it; what it said on stderr.
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr.lock().unwrap().clone()
    }
}

/// A test that fails before it stops its server still stops it (by its
/// pid; its builds see the same signal the server does).
impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            for _ in 0..100 {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The refine binary run in `dir` (the workspace is found from there, as a
/// user's shell finds it) with `store`.
pub fn refine_in(dir: &Path, store: &Path, args: &[&str]) -> Run {
    Command::new(env!("CARGO_BIN_EXE_refine"))
        .current_dir(dir)
        .arg("--store")
        .arg(store)
        .env_remove("REFINE_EXECUTOR")
        .env_remove("REFINE_BUILTIN_BASE")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into()
}

/// A tmpfs of `size` (mount's `size=` option) on a temporary directory,
/// unmounted when dropped: a real filesystem that fills up (tests run as
/// root, as CI does).
pub struct Tmpfs {
    pub dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "refine-test"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(mounted.success(), "mount a tmpfs (this test runs as root)");
        Tmpfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}
