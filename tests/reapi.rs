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
use common::reapi::{BuildGrid, LogStreams, Worker};
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

/// A field of a label's `finished` event.
fn field(run: &Run, label: &str, f: &str) -> String {
    run.events()
        .into_iter()
        .find(|e| e["event"] == "finished" && e["label"] == label)
        .and_then(|e| e[f].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no {f} for {label}: {}", run.stdout))
}

/// A second client store: `from`, hard-linked (blobs are never written in
/// place), at `to`.
fn copy_store(from: &Path, to: &Path) {
    let cp = std::process::Command::new("cp")
        .arg("-al")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(cp.success());
}

/// Make a store forget the result at `key` (its action-cache entry, and
/// the label index, a cache of those entries); its path.
fn forget(store: &Path, key: &str) -> std::path::PathBuf {
    let entry = store.join(format!("ac/{}/{key}.json", &key[..2]));
    std::fs::remove_file(&entry).unwrap();
    for f in std::fs::read_dir(store.join("labels")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    entry
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

    // 0. `refine doctor` asks the server under `[remote] execution` what
    // it can do; a server that is not there fails the check with a fix.
    let doctor = |url: &str| -> String {
        let d = shipped();
        let file = d.root().join("WORKSPACE.toml");
        let mut t = std::fs::read_to_string(&file).unwrap();
        t.push_str(&format!("\n[remote]\nexecution = \"{url}\"\n"));
        std::fs::write(&file, t).unwrap();
        let out = d
            .cmd_in(&stores.path().join("doctor"))
            .arg("doctor")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let at = text
            .find("remote-execution")
            .unwrap_or_else(|| panic!("no remote-execution check:\n{text}"));
        text[at.saturating_sub(6)..]
            .lines()
            .take(2)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let up = doctor(&url);
    assert!(
        up.starts_with("ok") && up.contains("executes, SHA-256"),
        "{up}"
    );
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("grpc://{}", dead.local_addr().unwrap());
    drop(dead);
    let down = doctor(&dead_url);
    assert!(
        down.starts_with("FAIL") && down.contains("fix: start the server"),
        "{down}"
    );

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

    // 2b. The server lost the blobs its Action Cache names (its CAS
    // evicted or wiped): the cached result is not used, the action runs
    // again on a worker and the node is the same bytes. The asking
    // client is a second store: the first one, hard-linked, without its
    // entry for //wheels:six.
    let client2 = stores.path().join("client2");
    copy_store(&client, &client2);
    let first = |run: &Run, f: &str| field(run, "//wheels:six", f);
    let six_key = first(&r, "key");
    let six_entry = forget(&client2, &six_key);
    // Every blob file goes; the storage's directories stay.
    fn wipe_files(dir: &Path) -> usize {
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                n += wipe_files(&p);
            } else {
                std::fs::remove_file(&p).unwrap();
                n += 1;
            }
        }
        n
    }
    assert!(wipe_files(&bg.cas_dir()) > 0);
    let ran = |w: &Worker| w.said().matches("//wheels:six: exit code 0").count();
    let ran_before = ran(&w_s390x);
    let lost = build(
        &ws,
        &client2,
        &["--remote-executor", &url, "--remote-only", "//wheels:six"],
    );
    lost.ok();
    assert_eq!(lost.verdicts()["//wheels:six"], "built", "{}", lost.stdout);
    assert_eq!(first(&lost, "output"), first(&r, "output"));
    // BuildGrid's Action Cache checks that the blobs a result names are
    // still there and answers "not found" when they are not (the client's
    // own fallback, for servers that do not check, is the same: execute).
    let log = std::fs::read_to_string(first(&lost, "log")).unwrap();
    assert!(
        log.contains("remote: executing") && !log.contains("remote: cached"),
        "{log}"
    );
    assert_eq!(ran(&w_s390x), ran_before + 1, "{}", w_s390x.said());

    // A blob the server holds damaged (same name, other bytes: here the
    // output's REAPI Tree, emptied, which BuildGrid's cache check still
    // parses): the client finds it does not match its digest, does not take
    // the cached result and executes again; the worker's output names that
    // same blob, which the server says it has, so the result is refused
    // again and the node fails, naming the blob, with nothing stored.
    let tree = log
        .lines()
        .find_map(|l| l.split("REAPI tree ").nth(1))
        .and_then(|t| t.split('/').next())
        .unwrap_or_else(|| panic!("no REAPI tree in the log:\n{log}"))
        .to_string();
    let blob = bg
        .cas_dir()
        .join("cas/objects")
        .join(&tree[..2])
        .join(&tree[2..]);
    std::fs::write(&blob, b"").unwrap();
    forget(&client2, &six_key);
    let damaged = build(
        &ws,
        &client2,
        &["--remote-executor", &url, "--remote-only", "//wheels:six"],
    );
    assert_ne!(damaged.code, 0, "{}", damaged.stdout);
    assert_eq!(damaged.verdicts()["//wheels:six"], "failed");
    assert!(
        damaged.all().contains("does not match its digest") && damaged.all().contains(&tree),
        "{}",
        damaged.all()
    );
    let dlog = std::fs::read_to_string(first(&damaged, "log")).unwrap();
    assert!(
        dlog.contains("the cached result's outputs cannot be fetched")
            && dlog.contains("executing again"),
        "{dlog}"
    );
    assert!(!six_entry.exists());
    assert_eq!(ran(&w_s390x), ran_before + 2, "{}", w_s390x.said());
    // The damaged blob goes (the next upload of that output sends it again).
    std::fs::remove_file(&blob).unwrap();

    // 2c. A server that speaks only TLS and takes only requests bearing a
    // token (BuildGrid's JWT check): the client and a worker reach it with
    // `grpcs://`, the authority in SSL_CERT_FILE and REFINE_REMOTE_TOKEN;
    // without either, the run fails saying which.
    let (sbg, sec) = BuildGrid::start_secured();
    let surl = sbg.url();
    assert!(surl.starts_with("grpcs://"), "{surl}");
    let ca = sec.ca.display().to_string();
    let w_tls = Worker::start_env(
        &surl,
        &["ISA=x86-64"],
        "w-tls",
        &stores.path().join("w-tls"),
        1,
        &[("SSL_CERT_FILE", &ca), ("REFINE_REMOTE_TOKEN", &sec.token)],
        &[],
    );
    let secure = |env: &[(&str, &str)]| -> Run {
        let mut c = ws.cmd_in(&client);
        c.args(["--arch", "x86_64", "verify", "--json"])
            .args(["--remote-executor", &surl, "--remote-only"])
            .arg("//wheels:six")
            .env_remove("SSL_CERT_FILE")
            .env_remove("REFINE_REMOTE_TOKEN")
            .envs(env.iter().copied());
        c.output().unwrap().into()
    };
    let good = secure(&[("SSL_CERT_FILE", &ca), ("REFINE_REMOTE_TOKEN", &sec.token)]);
    good.ok();
    assert!(good.stdout.contains("\"agree\":true"), "{}", good.stdout);
    w_tls.wait_for("//wheels:six: exit code 0", 60);
    let no_token = secure(&[("SSL_CERT_FILE", &ca)]);
    assert_ne!(no_token.code, 0, "{}", no_token.stdout);
    assert!(
        no_token.all().contains("Unauthenticated")
            && no_token.all().contains("REFINE_REMOTE_TOKEN"),
        "{}",
        no_token.all()
    );
    let no_ca = secure(&[("REFINE_REMOTE_TOKEN", &sec.token)]);
    assert_ne!(no_ca.code, 0, "{}", no_ca.stdout);
    assert!(
        no_ca.all().contains("certificate") && no_ca.all().contains("SSL_CERT_FILE"),
        "{}",
        no_ca.all()
    );
    assert_eq!(
        w_tls.said().matches("//wheels:six: exit code 0").count(),
        1,
        "{}",
        w_tls.said()
    );
    // A worker without the token stops at once, saying what to set.
    let mut w_bad = Worker::start_env(
        &surl,
        &["ISA=x86-64"],
        "w-bad",
        &stores.path().join("w-bad"),
        1,
        &[("SSL_CERT_FILE", &ca)],
        &[],
    );
    assert!(!w_bad.wait_exit(60), "{}", w_bad.said());
    assert!(
        w_bad.said().contains("refuses this worker")
            && w_bad.said().contains("REFINE_REMOTE_TOKEN"),
        "{}",
        w_bad.said()
    );
    drop(w_tls);
    drop(sbg);

    // 2d. The log streamed while the step runs: a `refine logstream`
    // beside a BuildGrid whose scheduler makes a stream per action there;
    // the worker writes the step's log into it as it runs, the client reads
    // it into the node's log (the file the dashboard's live log follows)
    // before the step ends, and the log holds it once.
    let streams = LogStreams::start();
    let lbg = BuildGrid::start_with_logstream(&streams);
    let lurl = lbg.url();
    let w_log = Worker::start_env(
        &lurl,
        &["ISA=x86-64"],
        "w-log",
        &host_store,
        1,
        &[],
        &["--log-stream", &streams.url()],
    );
    let mut c = ws.cmd_in(&client);
    c.args(["--arch", "x86_64", "verify", "--json"])
        .args(["--remote-executor", &lurl, "--remote-only"])
        .args(["--remote-log-stream", &streams.url()])
        .arg("//wheels:markupsafe")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let (log_tx, log_rx) = std::sync::mpsc::channel::<String>();
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(e) = serde_json::from_str::<serde_json::Value>(&l)
                && e["event"] == "building"
                && let Some(p) = e["log"].as_str()
            {
                let _ = log_tx.send(p.to_string());
            }
            all.push_str(&l);
            all.push('\n');
        }
        all
    });
    let node_log = log_rx.recv_timeout(Duration::from_secs(300)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut seen_while_running = false;
    while Instant::now() < deadline {
        let ran = w_log.said().contains("//wheels:markupsafe: exit code");
        let text = std::fs::read_to_string(&node_log).unwrap_or_default();
        if text.contains("==> building //wheels:markupsafe") {
            seen_while_running = !ran;
            break;
        }
        if ran {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = child.wait().unwrap();
    let stdout = lines.join().unwrap();
    assert!(status.success(), "{stdout}");
    assert!(stdout.contains("\"agree\":true"), "{stdout}");
    let text = std::fs::read_to_string(&node_log).unwrap();
    assert!(
        seen_while_running,
        "the log did not show the step's output before it ended:\n{text}"
    );
    assert!(text.contains("remote: the log, streamed from"), "{text}");
    assert_eq!(
        text.matches("==> building //wheels:markupsafe").count(),
        1,
        "{text}"
    );
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?}:\n{text}"))
    };
    assert!(
        at("==> building //wheels:markupsafe") < at("remote: completed"),
        "{text}"
    );
    w_log.wait_for("bytes of log streamed", 30);
    drop(w_log);
    drop(lbg);
    drop(streams);

    // 3. Routing: with no s390x worker that can run it, an s390x build
    // step fails after the bounded wait, naming the platform, instead of
    // hanging. (`refine verify` rebuilds on the workers without the
    // server's cache.) The set's plans are hybrid: their image holds this
    // x86-64 machine's cross compilers, so they ask for `host-ISA=x86-64`.
    // A worker that runs only s390x programs (a native Z machine; here, a
    // stand-in advertising `host-ISA=s390x`, whose s390x programs qemu
    // runs) is not given them.
    drop(w_s390x);
    let w_z = Worker::start_props(
        &url,
        &["ISA=s390x", "host-ISA=s390x"],
        "w-z",
        &stores.path().join("w-z"),
        1,
    );
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
            .contains("no worker with ISA=s390x, host-ISA=x86-64 took the action within 8 s"),
        "{}",
        routed.all()
    );
    assert!(waited < Duration::from_secs(120), "{waited:?}");
    assert!(
        routed.all().contains("--toolchain emulated"),
        "{}",
        routed.all()
    );
    assert!(!w_z.said().contains("running"), "{}", w_z.said());

    // 4. A worker killed mid-action: the action runs again on another, and
    // the node is built once into the store, the same bytes as before. The
    // asking client is a third store (the first, hard-linked, without its
    // entry for //wheels:markupsafe); the server's cached result is gone
    // with the CAS wiped in 2b, so the action runs.
    let client3 = stores.path().join("client3");
    copy_store(&client, &client3);
    let ms_entry = forget(&client3, &field(&r, "//wheels:markupsafe", "key"));
    let mut w1 = Worker::start(&url, "s390x", "w-kill", &stores.path().join("w-kill"));
    let mut c = ws.cmd_in(&client3);
    c.args([
        "build",
        "--json",
        "--remote-executor",
        &url,
        "--remote-only",
    ])
    .arg("//wheels:markupsafe")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let handle = c.spawn().unwrap();
    w1.wait_for("//wheels:markupsafe: running", 600);
    w1.signal("-KILL");
    let w2 = Worker::start(&url, "s390x", "w-again", &stores.path().join("w-again"));
    let again: Run = handle.wait_with_output().unwrap().into();
    again.ok();
    let finished: Vec<_> = again
        .events()
        .into_iter()
        .filter(|e| e["event"] == "finished" && e["label"] == "//wheels:markupsafe")
        .collect();
    assert_eq!(finished.len(), 1, "{}", again.stdout);
    assert_eq!(finished[0]["verdict"], "built", "{}", again.stdout);
    assert_eq!(finished[0]["worker"], "w-again", "{}", again.stdout);
    assert_eq!(
        field(&again, "//wheels:markupsafe", "output"),
        field(&r, "//wheels:markupsafe", "output")
    );
    let entry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&ms_entry).unwrap()).unwrap();
    assert_eq!(
        entry["output"].as_str(),
        Some(field(&r, "//wheels:markupsafe", "output").as_str())
    );
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
    // The stand-in for a native Z worker never got a hybrid plan.
    assert!(!w_z.said().contains("running"), "{}", w_z.said());
    drop(w_z);
    drop(bg);
    eprintln!(
        "reapi: routing refused in {:.1} s; the run went on here after the server stopped; the worker came back with it",
        waited.as_secs_f64()
    );
    drop(w_host);
}
