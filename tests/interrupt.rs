//! Interrupts and kills, with real podman containers: SIGINT and SIGTERM
//! stop the running container and store nothing; after a SIGKILL (no
//! chance to clean up) the next refine run stops the orphaned container of
//! the dead run and says so. Needs what tests/podman.rs needs.

mod common;
use common::{Run, Ws, shared_store, shipped};
use std::path::Path;

fn host(ws: &Ws, store: &Path, args: &[&str]) -> Run {
    let mut c = ws.cmd_in(store);
    c.args(["--arch", "host"]).args(args);
    c.output().unwrap().into()
}

/// A workspace with a wheel whose recipe runs for minutes.
fn sleepy(ws: &Ws, name: &str) {
    ws.write("recipes/sleepy.sh", "#!/bin/sh\necho sleeping\nsleep 600\n");
    ws.write(
        &format!("rules/{name}.toml"),
        &format!(
            "[wheels.{name}]\nsource = \"//sources:wheel-six\"\nrecipe = \"recipes/sleepy.sh\"\n"
        ),
    );
}

/// Names of the containers a refine process owns for `label` (not those of
/// the image's runtime probe, which may run first).
fn containers_of(pid: u32, label: &str) -> Vec<String> {
    let Some(owner) = refine::runid::RunId::of(pid) else {
        return Vec::new();
    };
    let out = std::process::Command::new("podman")
        .args([
            "ps",
            "--all",
            "--filter",
            &format!("label=dev.refine.run={}", owner.tag()),
            "--filter",
            &format!("label=dev.refine.label={label}"),
            "--format",
            "{{.Names}}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn running(name: &str) -> bool {
    let out = std::process::Command::new("podman")
        .args([
            "ps",
            "--filter",
            &format!("name=^{name}$"),
            "--format",
            "{{.Names}}",
        ])
        .output()
        .unwrap();
    !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

fn wait_until(what: &str, secs: u64, ok: &mut dyn FnMut() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !ok() {
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// One test, run alone in this binary: another refine running at the same
/// time would (rightly) stop the orphan of the SIGKILL case before the test
/// sees it.
#[test]
fn interrupts_and_kills() {
    sigint_and_sigterm_stop_the_running_container_and_store_nothing();
    after_a_sigkill_the_next_run_stops_the_orphaned_container();
    sigterm_during_an_image_build_leaves_nothing_mounted_or_running();
    sigterm_to_serve_during_an_image_build_leaves_nothing_behind();
}

/// The same under `refine serve`: a build queued from the API is making an
/// image when the server gets SIGTERM. The server waits for the build to
/// stop; no mmdebstrap outlives it, nothing stays mounted.
fn sigterm_to_serve_during_an_image_build_leaves_nothing_behind() {
    let ws = shipped();
    let store = tempfile::tempdir().unwrap();
    let secret = tempfile::tempdir().unwrap();
    let token = "interrupt-test-token-0123456789abcdef";
    std::fs::write(secret.path().join("token"), token).unwrap();
    let mut c = ws.cmd_in(store.path());
    c.args([
        "--arch",
        "host",
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--token-file",
    ])
    .arg(secret.path().join("token"));
    let server = common::Server::start(c);
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/api/builds", server.url))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .body(r#"{"targets": ["//images:bookworm"]}"#)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let real = store.path().canonicalize().unwrap();
    let roots = ImageRoots::of(&real, server.pid());
    wait_until("mmdebstrap's mounts under serve", 600, &mut || {
        !roots.mounts().is_empty()
    });
    let (ended, said) = server.terminate(60);
    assert!(ended, "serve ended by itself after SIGTERM: {said}");
    assert!(
        said.contains("waiting for the running build to stop"),
        "{said}"
    );
    roots.all_gone();
}

/// Where one refine process makes an image's root: in memory when the
/// machine has room (`/dev/shm/refine-t<pid>-<start>.…`), else beside the
/// output in the store.
struct ImageRoots {
    store: std::path::PathBuf,
    /// The name every root in memory of this process starts with.
    name: String,
}

impl ImageRoots {
    fn of(store: &Path, pid: u32) -> ImageRoots {
        ImageRoots {
            store: store.to_path_buf(),
            name: format!("refine-t{pid}-"),
        }
    }

    fn in_memory(&self) -> String {
        format!("/dev/shm/{}", self.name)
    }

    /// What is mounted in either place.
    fn mounts(&self) -> Vec<std::path::PathBuf> {
        let prefix = self.in_memory();
        let mut all = refine::store::mounts::mounts_under(&self.store);
        all.extend(
            refine::store::mounts::mounts_under(Path::new("/dev/shm"))
                .into_iter()
                .filter(|m| m.to_string_lossy().starts_with(&prefix)),
        );
        all
    }

    /// Nothing mounted, running or left in either place.
    fn all_gone(&self) {
        assert_eq!(self.mounts(), Vec::<std::path::PathBuf>::new());
        nothing_mounted_or_running_under(&self.store);
        assert_eq!(
            processes_naming(&self.in_memory()),
            Vec::<String>::new(),
            "nothing still runs in a root in memory"
        );
        let left: Vec<String> = std::fs::read_dir("/dev/shm")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&self.name))
            .collect();
        assert!(left.is_empty(), "nothing left in /dev/shm: {left:?}");
    }
}

/// Nothing mounted under `store`, and no process naming it (mmdebstrap
/// and what it runs name its root there).
fn nothing_mounted_or_running_under(store: &Path) {
    assert_eq!(
        refine::store::mounts::mounts_under(store),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        processes_naming(&store.display().to_string()),
        Vec::<String>::new(),
        "nothing still runs"
    );
}

/// Processes whose command line names `needle`.
fn processes_naming(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                out.push(format!("{name}: {cmd}"));
            }
        }
    }
    out
}

/// SIGTERM while mmdebstrap has its root mounted (proc, sys, dev): refine
/// stops it, and nothing is left mounted, running or on disk.
fn sigterm_during_an_image_build_leaves_nothing_mounted_or_running() {
    let ws = shipped();
    // A store of its own, so that the image is really made.
    let store = tempfile::tempdir().unwrap();
    let child = ws
        .cmd_in(store.path())
        .args(["--arch", "host", "build", "//images:bookworm"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let real = store.path().canonicalize().unwrap();
    let roots = ImageRoots::of(&real, pid);
    wait_until("mmdebstrap's mounts", 600, &mut || {
        !roots.mounts().is_empty()
    });
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let start = std::time::Instant::now();
    let r: Run = child.wait_with_output().unwrap().into();
    assert!(
        start.elapsed() < std::time::Duration::from_secs(60),
        "refine stopped promptly: {:?}",
        start.elapsed()
    );
    assert_eq!(r.code, 130, "{}", r.all());
    roots.all_gone();
    let left: Vec<String> = std::fs::read_dir(real.join("tmp"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing left in the store's tmp: {left:?}");
}

fn sigint_and_sigterm_stop_the_running_container_and_store_nothing() {
    for (sig, name) in [
        (rustix::process::Signal::INT, "sleepy-int"),
        (rustix::process::Signal::TERM, "sleepy-term"),
    ] {
        let ws = shipped();
        sleepy(&ws, name);
        let store = shared_store();
        let label = format!("//wheels:{name}");
        let child = ws
            .cmd_in(store)
            .args(["--arch", "host", "build", &label])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut names = Vec::new();
        // The image may be built first in this test run.
        wait_until("the build's container", 900, &mut || {
            names = containers_of(pid, &label);
            !names.is_empty()
        });
        let container = names[0].clone();
        rustix::process::kill_process(rustix::process::Pid::from_raw(pid as i32).unwrap(), sig)
            .unwrap();
        let start = std::time::Instant::now();
        let r: Run = child.wait_with_output().unwrap().into();
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "refine stopped promptly"
        );
        assert_eq!(r.code, 130, "{sig:?}: {}", r.all());
        assert!(
            r.stderr.contains(&format!("interrupted {label}")),
            "{}",
            r.stderr
        );
        assert!(!running(&container), "{container} was stopped");
        // Nothing of it was stored, and no staging was left behind.
        let plan = host(&ws, store, &["plan", &label]);
        assert!(
            plan.stdout.contains(&format!("build    {label}")),
            "{}",
            plan.stdout
        );
        let staging: Vec<String> = std::fs::read_dir(store.join("tmp"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("t{pid}-")))
            .collect();
        assert!(staging.is_empty(), "{staging:?}");
    }
}

fn after_a_sigkill_the_next_run_stops_the_orphaned_container() {
    let ws = shipped();
    sleepy(&ws, "sleepy-kill");
    let store = shared_store();
    let mut child = ws
        .cmd_in(store)
        .args(["--arch", "host", "build", "//wheels:sleepy-kill"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut names = Vec::new();
    wait_until("the build's container", 900, &mut || {
        names = containers_of(pid, "//wheels:sleepy-kill");
        !names.is_empty()
    });
    let container = names[0].clone();
    child.kill().unwrap(); // SIGKILL: refine cannot clean up
    child.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(running(&container), "the orphan outlives its refine");
    // The next refine run that needs a container stops it, and says so.
    ws.edit(
        "rules/wheels.toml",
        "[wheels.six]\n",
        "[wheels.six]\nenv = { AFTER_A_KILL = \"1\" }\n",
    );
    let r = host(&ws, store, &["build", "//wheels:six"]);
    r.ok();
    assert!(
        r.stderr.contains(&format!(
            "stopped container {container}, left running by a refine run that is gone (pid {pid})"
        )),
        "{}",
        r.stderr
    );
    assert!(!running(&container), "the orphan is gone");
    // The dead run's staging directory went with it.
    let left: Vec<String> = std::fs::read_dir(store.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("t{pid}-")))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
