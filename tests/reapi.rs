//! Many machines: refine on the Remote Execution API, against a real
//! BuildGrid (with PostgreSQL) started on loopback, and real `refine
//! worker`s running the actions in podman.
//!
//! One test, in the order a user meets it: CI's s390x set built through
//! an s390x worker (whose store starts empty: it fetches the image and
//! every input from the server's CAS) and found to be the same bytes as a
//! build on this machine (`refine verify` rebuilds it locally and
//! compares); the host pair through an x86-64 worker; a build whose ISA no
//! worker serves fails after the bounded wait; a worker killed mid-action
//! and the action run again on another; the server stopped mid-run and the
//! run finishing on this machine, said once. `.ci/setup` installs
//! PostgreSQL and BuildGrid (tests/reapi/venv); without them this fails.

mod common;
use common::reapi::{BuildGrid, Worker};
use common::{Run, shipped};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const SET: &[&str] = &[
    "//repairs:markupsafe",
    "//repairs:pyyaml",
    "//repairs:cffi",
    "//wheels:six",
];

fn build(ws: &common::Ws, store: &Path, args: &[&str]) -> Run {
    let mut c = ws.cmd_in(store);
    c.args(["build", "--json"]).args(args);
    c.output().unwrap().into()
}

/// The workers each node was built by (`worker` of its result).
fn workers_of(run: &Run) -> std::collections::BTreeMap<String, String> {
    run.events()
        .into_iter()
        .filter(|e| e["event"] == "finished" && e["verdict"] == "built")
        .filter_map(|e| {
            Some((
                e["label"].as_str()?.to_string(),
                e["worker"].as_str()?.to_string(),
            ))
        })
        .collect()
}

#[test]
fn builds_run_on_buildgrid_workers_with_the_same_bytes_and_survive_faults() {
    let bg = BuildGrid::start();
    let url = bg.url();
    let stores = tempfile::Builder::new()
        .prefix("refine-reapi-")
        .tempdir()
        .unwrap();
    let s390x_store = stores.path().join("w-s390x");
    let host_store = stores.path().join("w-x86");
    let w_s390x = Worker::start(&url, "s390x", "w-s390x", &s390x_store);
    let w_host = Worker::start(&url, "x86-64", "w-x86", &host_store);

    // 1. CI's s390x set, every build step on the s390x worker.
    let ws = shipped();
    let client = stores.path().join("client");
    let t = Instant::now();
    let r = build(
        &ws,
        &client,
        &[&["--remote-executor", &url, "--remote-only"][..], SET].concat(),
    );
    r.ok();
    let remote_secs = t.elapsed().as_secs_f64();
    let by = workers_of(&r);
    for l in SET {
        assert_eq!(r.verdicts()[*l], "built", "{l}: {}", r.stdout);
        assert_eq!(
            by.get(*l).map(String::as_str),
            Some("w-s390x"),
            "{l}: {by:?}"
        );
    }
    // Images are made here, never remotely; so are fetches. Packs and the
    // runtime ran on the worker too.
    assert_eq!(r.verdicts()["//images:bookworm"], "built");
    assert!(!by.contains_key("//images:bookworm"), "{by:?}");
    assert!(!by.contains_key("//sources:wheel-six"), "{by:?}");
    assert_eq!(
        by.get("//packs:libyaml").map(String::as_str),
        Some("w-s390x"),
        "{by:?}"
    );
    // The x86-64 worker got none of it (routing by ISA).
    assert!(!w_host.said().contains("running"), "{}", w_host.said());
    // The worker fetched what it ran from the server: its store started empty.
    assert!(
        w_s390x.said().contains("//wheels:pyyaml: exit code 0"),
        "{}",
        w_s390x.said()
    );
    eprintln!("reapi: the s390x set through the worker in {remote_secs:.1} s");

    // The same bytes as a build on this machine: every wheel and repair of
    // the set rebuilt here, in the local sandbox, and compared.
    let mut targets: Vec<&str> = SET.to_vec();
    targets.extend(["//wheels:markupsafe", "//wheels:pyyaml", "//wheels:cffi"]);
    let mut v = ws.cmd_in(&client);
    v.args(["verify", "--json"]).args(&targets);
    let v: Run = v.output().unwrap().into();
    v.ok();
    for l in &targets {
        let e = v
            .events()
            .into_iter()
            .find(|e| e["event"] == "verified" && e["label"] == *l)
            .unwrap_or_else(|| panic!("{l} not verified: {}", v.stdout));
        assert_eq!(e["agree"], true, "{l}: {e}");
    }

    // 2. The host pair through the x86-64 worker.
    let host = build(
        &ws,
        &client,
        &[
            "--arch",
            "x86_64",
            "--remote-executor",
            &url,
            "--remote-only",
            "//wheels:markupsafe",
            "//wheels:six",
        ],
    );
    host.ok();
    let by = workers_of(&host);
    assert_eq!(
        by.get("//wheels:markupsafe").map(String::as_str),
        Some("w-x86"),
        "{by:?}"
    );
    let mut v = ws.cmd_in(&client);
    v.args([
        "--arch",
        "x86_64",
        "verify",
        "--json",
        "//wheels:markupsafe",
    ]);
    let v: Run = v.output().unwrap().into();
    v.ok();
    assert!(v.stdout.contains("\"agree\":true"), "{}", v.stdout);

    // 3. Routing: with no s390x worker, an s390x build step fails after the
    // bounded wait, naming the platform, instead of hanging. (`refine
    // verify` rebuilds on the workers without the server's cache.)
    drop(w_s390x);
    let verify_remote = |extra: &[&str], targets: &[&str]| {
        let mut c = ws.cmd_in(&client);
        c.args(["verify", "--json", "--remote-executor", &url])
            .args(extra)
            .args(targets);
        c
    };
    let t = Instant::now();
    let routed: Run = verify_remote(
        &["--remote-only", "--remote-queue-timeout", "8s"],
        &["//wheels:six"],
    )
    .output()
    .unwrap()
    .into();
    let waited = t.elapsed();
    assert_ne!(routed.code, 0, "{}", routed.stdout);
    assert!(
        routed
            .all()
            .contains("no worker with ISA=s390x took the action within 8 s"),
        "{}",
        routed.all()
    );
    assert!(waited < Duration::from_secs(120), "{waited:?}");

    // 4. A worker killed mid-action: the action runs again on another and
    // the result is the same bytes.
    let mut w1 = Worker::start(&url, "s390x", "w-kill", &stores.path().join("w-kill"));
    let mut c = verify_remote(&["--remote-only"], &["//wheels:markupsafe"]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let handle = c.spawn().unwrap();
    w1.wait_for("//wheels:markupsafe: running", 600);
    w1.signal("-KILL");
    let w2 = Worker::start(&url, "s390x", "w-again", &stores.path().join("w-again"));
    let again: Run = handle.wait_with_output().unwrap().into();
    again.ok();
    assert!(again.stdout.contains("\"agree\":true"), "{}", again.stdout);
    w2.wait_for("//wheels:markupsafe: exit code 0", 60);

    // 5. The server stopped mid-run: said once, the run finishes here.
    let mut c = verify_remote(
        &[],
        &[
            "//wheels:pyyaml",
            "//wheels:cffi",
            "//repairs:pyyaml",
            "//repairs:cffi",
        ],
    );
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let handle = c.spawn().unwrap();
    w2.wait_for("//wheels:pyyaml: running", 600);
    let port = bg.port;
    let dir = bg.stop();
    let down: Run = handle.wait_with_output().unwrap().into();
    down.ok();
    assert!(
        down.stdout.matches("\"agree\":true").count() == 4,
        "{}",
        down.stdout
    );
    // Said once, as a warning (the node that met it keeps it in its notes).
    let said = down
        .events()
        .into_iter()
        .filter(|e| {
            e["event"] == "warning"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("cannot be reached"))
        })
        .count();
    assert_eq!(said, 1, "{}", down.all());
    w2.wait_for("the server does not answer", 60);

    // 6. The server back (same database, same port): the worker says so,
    // opens a new session and runs the next action.
    let bg = BuildGrid::start_in(dir, port);
    w2.wait_for("the server is back", 120);
    let back: Run = verify_remote(&["--remote-only"], &["//wheels:six"])
        .output()
        .unwrap()
        .into();
    back.ok();
    assert!(back.stdout.contains("\"agree\":true"), "{}", back.stdout);
    w2.wait_for("//wheels:six: exit code 0", 60);
    drop(bg);
    eprintln!(
        "reapi: routing refused in {:.1} s; the run went on here after the server stopped; the worker came back with it",
        waited.as_secs_f64()
    );
    drop(w_host);
}
