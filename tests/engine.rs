//! The engine end to end with the fake executor: verdicts, incrementality,
//! early cutoff, failures, concurrency, store corruption, output delivery.

mod common;
use common::{Run, Ws, fake_workspace, output_of};
use std::collections::BTreeMap;

const ALL: &[&str] = &["build", "--json", "//wheels:...", "//repairs:..."];

fn fake_log(ws: &Ws) -> String {
    ws.root().join("fake.log").display().to_string()
}

#[test]
fn second_build_is_all_hits_and_delivers_wheels() {
    let ws = fake_workspace();
    let first = ws.fake(ALL);
    first.ok();
    let built = first.with("built");
    assert!(built.contains(&"//wheels:alpha".to_string()), "{built:?}");
    assert!(built.contains(&"//packs:zlib".to_string()));
    assert!(first.with("hit:local").is_empty());
    // Every node has one verdict.
    let n = first.verdicts().len();
    assert_eq!(n, 18, "{:?}", first.verdicts());

    let second = ws.fake(ALL);
    second.ok();
    assert!(second.with("built").is_empty(), "{:?}", second.verdicts());
    assert_eq!(second.with("hit:local").len(), n);

    // Wheels of requested wheel and repair targets, and the manifest.
    let dist = ws.root().join("dist");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dist.join("manifest.json")).unwrap())
            .unwrap();
    let wheels = manifest["wheels"].as_array().unwrap();
    assert_eq!(wheels.len(), 4, "{manifest:#}");
    for w in wheels {
        let f = dist.join(w["wheel"].as_str().unwrap());
        let bytes = std::fs::read(&f).unwrap();
        assert_eq!(common::sha256_hex(&bytes), w["sha256"].as_str().unwrap());
        assert_eq!(w["verdict"], "hit:local");
        assert!(w["key"].as_str().unwrap().len() == 64);
    }
    assert!(wheels.iter().any(|w| {
        w["wheel"]
            .as_str()
            .unwrap()
            .contains("manylinux2014_x86_64")
    }));

    // A third run says the same as the second: its manifest is left as it
    // is (the same file, not rewritten); a run that says something else
    // (one wheel rebuilt) writes it anew.
    use std::os::unix::fs::MetadataExt;
    let stat = || std::fs::metadata(dist.join("manifest.json")).unwrap();
    let before = stat();
    ws.fake(ALL).ok();
    assert_eq!(
        (stat().ino(), stat().mtime_nsec()),
        (before.ino(), before.mtime_nsec())
    );
    ws.edit("rules/wheels.toml", "CFLAGS = \"-O2\"", "CFLAGS = \"-O3\"");
    ws.fake(ALL).ok();
    assert_ne!(stat().ino(), before.ino());
}

/// `--profile FILE`: a Chrome trace with every node of the run on a slot
/// (no more slots than jobs), and the critical path, which ends with the
/// node that finished last and follows dependencies back.
#[test]
fn a_profile_is_a_chrome_trace_of_every_node_and_the_critical_path() {
    let ws = fake_workspace();
    let trace = ws.root().join("out/profile.json");
    std::fs::create_dir_all(trace.parent().unwrap()).unwrap();
    let r = ws.fake(&[
        "build",
        "--json",
        "-j",
        "2",
        "--profile",
        trace.to_str().unwrap(),
        "//wheels:...",
        "//repairs:...",
    ]);
    r.ok();
    let t: serde_json::Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
    let events = t["traceEvents"].as_array().unwrap();
    let bars: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["tid"] != 1_000_000)
        .collect();
    let verdicts = r.verdicts();
    assert_eq!(bars.len(), verdicts.len(), "{events:?}");
    for b in &bars {
        let label = b["name"].as_str().unwrap();
        assert_eq!(b["cat"].as_str().unwrap(), verdicts[label], "{b}");
        assert!(b["tid"].as_u64().unwrap() < 2, "more slots than jobs: {b}");
    }
    // Bars on one slot never overlap.
    for slot in 0..2 {
        let mut on: Vec<(u64, u64)> = bars
            .iter()
            .filter(|b| b["tid"] == slot)
            .map(|b| {
                let ts = b["ts"].as_u64().unwrap();
                (ts, ts + b["dur"].as_u64().unwrap())
            })
            .collect();
        on.sort();
        assert!(
            on.windows(2).all(|w| w[0].1 <= w[1].0),
            "slot {slot}: {on:?}"
        );
    }
    let path: Vec<&str> = t["otherData"]["critical_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(path.len() >= 2, "{path:?}");
    let end = |l: &str| {
        bars.iter()
            .find(|b| b["name"] == l)
            .map(|b| b["ts"].as_u64().unwrap() + b["dur"].as_u64().unwrap())
            .unwrap()
    };
    let last = bars
        .iter()
        .map(|b| b["ts"].as_u64().unwrap() + b["dur"].as_u64().unwrap())
        .max()
        .unwrap();
    assert_eq!(end(path.last().unwrap()), last);
    assert!(path.windows(2).all(|w| end(w[0]) <= end(w[1])), "{path:?}");
    // The history marks the same path on the run's rows (the dashboard's
    // run page outlines it).
    let (h, _) = refine::history::History::open(&ws.store).unwrap();
    let run = h.runs(1).unwrap()[0].id;
    let mut marked: Vec<String> = h
        .results(&refine::history::Filter {
            run: Some(run),
            limit: 1000,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .filter(|r| r.critical)
        .map(|r| r.label)
        .collect();
    marked.sort();
    let mut want: Vec<String> = path.iter().map(|l| l.to_string()).collect();
    want.sort();
    assert_eq!(marked, want);
    // A file it cannot write is an error that names the flag.
    let bad = ws.fake(&[
        "build",
        "--profile",
        "/proc/refine-no/such.json",
        "//wheels:...",
    ]);
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("--profile /proc/refine-no/such.json"),
        "{}",
        bad.stderr
    );
}

#[test]
fn env_change_rebuilds_that_wheel_only_and_comments_rebuild_nothing() {
    let ws = fake_workspace();
    ws.fake(ALL).ok();

    ws.edit("rules/wheels.toml", "CFLAGS = \"-O2\"", "CFLAGS = \"-O3\"");
    let r = ws.fake(ALL);
    r.ok();
    assert_eq!(r.with("built"), ["//wheels:alpha"]);

    ws.edit(
        "rules/wheels.toml",
        "# wheels for the engine tests",
        "# a comment that says something else",
    );
    ws.edit(
        "rules/wheels.toml",
        "[wheels.gamma]",
        "# gamma, the third\n[wheels.gamma]",
    );
    let r = ws.fake(ALL);
    r.ok();
    assert!(r.with("built").is_empty(), "{:?}", r.verdicts());

    // Moving a target to another file changes nothing either.
    let text = ws.read("rules/wheels.toml");
    let (head, gamma) = text.split_at(text.find("# gamma").unwrap());
    ws.write("rules/wheels.toml", head);
    ws.write("rules/more/gamma.toml", gamma);
    let r = ws.fake(ALL);
    r.ok();
    assert!(r.with("built").is_empty(), "{:?}", r.verdicts());
}

#[test]
fn a_pack_recipe_change_rebuilds_exactly_its_dependents() {
    let ws = fake_workspace();
    ws.fake(ALL).ok();
    let plan = ws.fake(&["plan", "//wheels:...", "//repairs:..."]);
    plan.ok();
    assert_eq!(plan.stdout.trim(), "", "nothing to build: {}", plan.stdout);

    // A recipe only zlib uses (openssl and curl use pack.sh without includes).
    ws.edit("recipes/lib/common.sh", "log()", "# changed\nlog()");
    let plan = ws.fake(&["plan", "//wheels:...", "//repairs:..."]);
    plan.ok();
    let lines: Vec<&str> = plan.stdout.lines().collect();
    assert!(
        lines[0].starts_with("build    //packs:zlib"),
        "{}",
        plan.stdout
    );
    assert!(
        lines[0].contains("action.files.recipes/lib/common.sh"),
        "{}",
        plan.stdout
    );
    for l in [
        "//packs:openssl",
        "//packs:curl",
        "//wheels:beta",
        "//wheels:gamma",
        "//repairs:beta",
    ] {
        assert!(
            lines.iter().any(|x| x.starts_with("pending")
                && x.contains(l)
                && x.contains("after //packs:zlib")),
            "{l} should wait for zlib:\n{}",
            plan.stdout
        );
    }
    assert!(!plan.stdout.contains("//wheels:alpha"), "{}", plan.stdout);

    // The fake's outputs depend on input contents, so zlib's output changes
    // and everything above it rebuilds; nothing else does.
    let r = ws.fake(ALL);
    r.ok();
    let mut built = r.with("built");
    built.sort();
    assert_eq!(
        built,
        [
            "//packs:curl",
            "//packs:openssl",
            "//packs:zlib",
            "//repairs:beta",
            "//wheels:beta",
            "//wheels:gamma"
        ]
    );
}

#[test]
fn fields_outside_the_key_rebuild_nothing_and_image_changes_rebuild_above_it() {
    let ws = fake_workspace();
    ws.fake(ALL).ok();
    // A timeout changes how long a build may take, not what it makes.
    ws.edit(
        "packs/zlib.toml",
        "version = \"1.3\"",
        "version = \"1.3\"\ntimeout = \"5m\"",
    );
    // The package list is a set: order does not matter.
    ws.edit(
        "runtimes/base.toml",
        "packages = [\"python3\", \"gcc\"]",
        "packages = [\"gcc\", \"python3\"]",
    );
    let r = ws.fake(ALL);
    r.ok();
    assert!(r.with("built").is_empty(), "{:?}", r.verdicts());

    // A new package rebuilds the image and what runs in it, never sources.
    ws.edit(
        "runtimes/base.toml",
        "packages = [\"gcc\", \"python3\"]",
        "packages = [\"gcc\", \"python3\", \"make\"]",
    );
    let r = ws.fake(ALL);
    r.ok();
    let built = r.with("built");
    assert!(built.contains(&"//images:base".to_string()));
    assert!(built.contains(&"//wheels:alpha".to_string()));
    assert!(
        built.iter().all(|l| !l.starts_with("//sources:")),
        "{built:?}"
    );
}

#[test]
fn early_cutoff_when_a_dependency_rebuilds_to_identical_bytes() {
    let ws = fake_workspace();
    ws.fake(ALL).ok();
    // Drop zlib's action-cache entry: it rebuilds, to the very same bytes,
    // so nothing above it needs to.
    let key = ws.key("//packs:zlib");
    std::fs::remove_file(
        ws.store
            .join("ac")
            .join(&key[..2])
            .join(format!("{key}.json")),
    )
    .unwrap();
    // ...and the label index, which would answer for it.
    std::fs::remove_file(ws.store.join("labels/x86_64.jsonl")).unwrap();
    let p = ws.fake(&["plan", "//wheels:...", "//repairs:..."]);
    assert!(p.stdout.contains("build    //packs:zlib"), "{}", p.stdout);
    assert!(
        p.stdout.contains("pending  //packs:openssl"),
        "{}",
        p.stdout
    );
    let r = ws.fake(ALL);
    r.ok();
    assert_eq!(r.with("built"), ["//packs:zlib"], "{:?}", r.verdicts());
    assert!(r.with("hit:local").contains(&"//packs:openssl".to_string()));
}

#[test]
fn failures_block_dependents_keep_going_builds_the_rest_and_nothing_failed_is_cached() {
    let ws = fake_workspace();
    let r = ws.fake_env(
        &[
            "build",
            "--json",
            "--keep-going",
            "//wheels:...",
            "//repairs:...",
        ],
        &[("REFINE_FAKE_FAIL", "//packs:openssl")],
    );
    assert_eq!(r.code, 1, "a build failure exits 1: {}", r.all());
    assert_eq!(r.with("failed"), ["//packs:openssl"]);
    let mut blocked = r.with("blocked");
    blocked.sort();
    assert_eq!(
        blocked,
        [
            "//packs:curl",
            "//repairs:beta",
            "//wheels:beta",
            "//wheels:gamma"
        ]
    );
    assert!(r.with("built").contains(&"//wheels:alpha".to_string()));
    let failed = r
        .events()
        .into_iter()
        .find(|e| e["verdict"] == "failed")
        .unwrap();
    assert_eq!(failed["error"]["class"], "build");
    let log = failed["log"].as_str().unwrap();
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("failing //packs:openssl")
    );

    // Nothing failed was cached: without the fault it builds now.
    let r = ws.fake(ALL);
    r.ok();
    assert!(r.with("built").contains(&"//packs:openssl".to_string()));
    assert!(r.with("hit:local").contains(&"//wheels:alpha".to_string()));
}

/// `refine test --keep-going` over several sets, one of them partial: the
/// partial set is tested again with the members that built, and the sets
/// that built whole keep their results (they were dropped from the report
/// when the partial set was retested).
#[test]
fn test_keep_going_reports_every_set_when_one_of_them_is_partial() {
    let ws = fake_workspace();
    ws.write(
        "WORKSPACE.toml",
        &ws.read("WORKSPACE.toml").replace(
            "[defaults]\n",
            "[defaults]\ntest_recipe = \"recipes/test.sh\"\n",
        ),
    );
    ws.write(
        "recipes/test.sh",
        "#!/bin/sh\npip install /refine/wheels/*\n",
    );
    ws.write(
        "rules/sets.toml",
        "[sets.whole]\ntargets = [\"//wheels:alpha\"]\n\n[sets.partial]\ntargets = [\"//wheels:alpha\", \"//wheels:gamma\"]\n",
    );
    let r = ws.fake_env(
        &[
            "--json",
            "test",
            "--keep-going",
            "//sets:whole",
            "//sets:partial",
        ],
        &[("REFINE_FAKE_FAIL", "//wheels:gamma")],
    );
    assert_eq!(r.code, 1, "a member left out fails the run: {}", r.all());
    let tests: BTreeMap<String, serde_json::Value> = r
        .events()
        .into_iter()
        .filter(|e| e["event"] == "test")
        .map(|e| (e["label"].as_str().unwrap().to_string(), e))
        .collect();
    assert_eq!(
        tests.keys().collect::<Vec<_>>(),
        ["//tests:partial", "//tests:whole"],
        "{}",
        r.all()
    );
    let whole = &tests["//tests:whole"];
    assert_eq!(whole["verdict"], "built", "{whole}");
    assert_eq!(whole["left_out"], serde_json::json!([]));
    let partial = &tests["//tests:partial"];
    assert_eq!(partial["verdict"], "built", "{partial}");
    assert_eq!(partial["left_out"], serde_json::json!(["//wheels:gamma"]));
    for t in [whole, partial] {
        let checks = t["checks"].as_array().unwrap();
        let alpha: Vec<_> = checks
            .iter()
            .filter(|c| c["label"] == "//wheels:alpha")
            .collect();
        assert_eq!(alpha.len(), 1, "alpha's wheel is checked once: {t}");
        assert_eq!(alpha[0]["ok"], true);
        assert!(checks.iter().all(|c| c["label"] != "//wheels:gamma"), "{t}");
    }
}

/// `--skip-known-failures`: what failed at the same key is not built
/// again (it fails at once, with the failure's log, and the summary counts
/// it); a changed key, or a run without the flag, builds it.
#[test]
fn known_failures_are_skipped_at_the_same_key_only() {
    let ws = fake_workspace();
    let targets = ["build", "--json", "--keep-going", "//packs:curl"];
    let first = ws.fake_env(&targets, &[("REFINE_FAKE_FAIL", "//packs:openssl")]);
    assert_eq!(first.code, 1, "{}", first.all());
    assert_eq!(first.with("failed"), ["//packs:openssl"]);
    let first_log = first
        .events()
        .into_iter()
        .find(|e| e["verdict"] == "failed")
        .unwrap()["log"]
        .clone();

    // The fault is gone, so a build would pass: with the flag it is not
    // tried.
    let mut with_flag = targets.to_vec();
    with_flag.push("--skip-known-failures");
    let r = ws.fake(&with_flag);
    assert_eq!(r.code, 1, "{}", r.all());
    assert_eq!(r.with("failed"), ["//packs:openssl"]);
    assert_eq!(r.with("blocked"), ["//packs:curl"]);
    let failed = r
        .events()
        .into_iter()
        .find(|e| e["verdict"] == "failed")
        .unwrap();
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("failed at this key ("),
        "{failed}"
    );
    assert_eq!(failed["log"], first_log, "the failure's own log");
    let summary = r
        .events()
        .into_iter()
        .find(|e| e["event"] == "summary")
        .unwrap();
    assert_eq!(summary["known_failures"], 1, "{summary}");
    let human = ws.fake(&[
        "build",
        "--keep-going",
        "--skip-known-failures",
        "//packs:curl",
    ]);
    assert!(
        human
            .stderr
            .contains("1 of the failed not built again (known failures, --skip-known-failures)"),
        "{}",
        human.stderr
    );

    // Another key: built (and it passes now).
    ws.edit(
        "packs/openssl.toml",
        "version = \"3.0\"",
        "version = \"3.0.1\"",
    );
    let r = ws.fake(&with_flag);
    r.ok();
    assert!(r.with("built").contains(&"//packs:openssl".to_string()));

    // Back at the failed key, without the flag: built.
    ws.edit(
        "packs/openssl.toml",
        "version = \"3.0.1\"",
        "version = \"3.0\"",
    );
    let r = ws.fake(&targets);
    r.ok();
    assert!(r.with("built").contains(&"//packs:openssl".to_string()));
}

/// A wheel whose build names another version than its source's (pyemd
/// 1.1.0's meson.build says 0.0.0) fails, saying both, and is not cached:
/// no `NAME==VERSION` would ever find it.
#[test]
fn a_wheel_that_names_another_version_than_its_source_fails_and_is_not_cached() {
    let ws = fake_workspace();
    let r = ws.fake_env(
        &["build", "--json", "//wheels:alpha"],
        &[("REFINE_FAKE_VERSION", "//wheels:alpha=0.0.0")],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    let all = r.all();
    assert!(
        all.contains("alpha-0.0.0-")
            && all.contains("version 0.0.0, but its source is version 1.0"),
        "{all}"
    );
    assert!(all.contains("does not know its own version"), "{all}");
    // Nothing of it was kept: the next run builds it, and it is right.
    let r = ws.fake(&["build", "--json", "//wheels:alpha"]);
    r.ok();
    assert_eq!(r.with("built"), ["//wheels:alpha"], "{:?}", r.verdicts());
}

#[test]
fn without_keep_going_the_run_stops_after_the_first_failure() {
    let ws = fake_workspace();
    let r = ws.fake_env(
        &[
            "build",
            "--json",
            "-j",
            "1",
            "//wheels:...",
            "//repairs:...",
        ],
        &[("REFINE_FAKE_FAIL", "//images:base")],
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.with("failed"), ["//images:base"]);
    // Sources may have run first; no wheel was built.
    assert!(
        r.with("built").iter().all(|l| l.starts_with("//sources:")),
        "{:?}",
        r.verdicts()
    );
    let human = ws.fake_env(
        &["build", "//wheels:alpha"],
        &[("REFINE_FAKE_FAIL", "//images:base")],
    );
    assert_eq!(human.code, 1);
    assert!(
        human.stderr.contains("FAILED //images:base"),
        "{}",
        human.stderr
    );
    assert!(human.stderr.contains("log: "), "{}", human.stderr);
    assert!(
        human.stderr.contains("| error: the recipe failed"),
        "last log lines shown: {}",
        human.stderr
    );
    assert!(human.stderr.contains("hint: "), "{}", human.stderr);
}

/// The pids waiting on a file lock (a `->` line of /proc/locks) of the
/// file at `path`.
fn lock_waiters(path: &std::path::Path) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Vec::new();
    };
    let inode = format!(":{}", meta.ino());
    std::fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("->"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // N: -> FLOCK ADVISORY WRITE PID MAJ:MIN:INODE START END
            let dev = f.get(6)?;
            (dev.ends_with(&inode)).then(|| f.get(5)?.parse().ok())?
        })
        .collect()
}

#[test]
fn two_processes_share_a_store_safely() {
    let ws = fake_workspace();
    let log = fake_log(&ws);
    // Everything below the wheel first, so the two processes meet on it.
    ws.fake(&[
        "build",
        "//images:base",
        "//runtimes:system",
        "//sources:...",
    ])
    .ok();
    let gate = tempfile::tempdir().unwrap();
    let hold = format!("//wheels:alpha={}", gate.path().display());
    let spawn = || {
        let mut c = ws.cmd();
        c.env("REFINE_EXECUTOR", "fake")
            .env("REFINE_FAKE_LOG", &log)
            .env("REFINE_FAKE_HOLD", &hold)
            .args(["build", "--json", "//wheels:alpha"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let wait_for = |what: &str, ok: &dyn Fn() -> bool| {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !ok() {
            assert!(
                std::time::Instant::now() < until,
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    // A is inside the build of //wheels:alpha, holding its key's lock.
    let a = spawn();
    wait_for("A to start building", &|| {
        gate.path().join("started").exists()
    });
    let locks: Vec<std::path::PathBuf> = std::fs::read_dir(ws.store.join("locks"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.ends_with(".lock") && !n.starts_with("store") && !n.starts_with("labels")
        })
        .collect();
    // B is blocked on that same lock: the kernel says so.
    let b = spawn();
    let b_pid = b.id();
    wait_for("B to wait on A's key lock", &|| {
        locks.iter().any(|l| lock_waiters(l).contains(&b_pid))
    });
    assert!(
        !gate.path().join("release").exists()
            && std::fs::read_to_string(&log)
                .unwrap()
                .matches("//wheels:alpha")
                .count()
                == 1,
        "B waits while A builds, and has not built"
    );
    std::fs::write(gate.path().join("release"), "").unwrap();
    let a: common::Run = a.wait_with_output().unwrap().into();
    let b: common::Run = b.wait_with_output().unwrap().into();
    a.ok();
    b.ok();
    // One build, one hit.
    assert_eq!(a.verdicts()["//wheels:alpha"], "built", "{}", a.stdout);
    assert_eq!(b.verdicts()["//wheels:alpha"], "hit:local", "{}", b.stdout);
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls
            .lines()
            .filter(|l| l.contains("\"run\"") && l.contains("//wheels:alpha"))
            .count(),
        1,
        "{calls}"
    );
    assert_eq!(
        output_of(&a, "//wheels:alpha"),
        output_of(&b, "//wheels:alpha")
    );
    // No stray temp files.
    assert_eq!(std::fs::read_dir(ws.store.join("tmp")).unwrap().count(), 0);
}

#[test]
fn a_corrupt_store_entry_is_a_reported_miss() {
    let ws = fake_workspace();
    ws.fake(ALL).ok();
    let plan = ws.fake(&["--json", "hash", "//wheels:alpha"]);
    let v: serde_json::Value = serde_json::from_str(plan.stdout.lines().next().unwrap()).unwrap();
    let wheel_sha = v["wheels"][0]["sha256"].as_str().unwrap().to_string();
    let blob = ws
        .store
        .join("cas/sha256")
        .join(&wheel_sha[..2])
        .join(&wheel_sha);
    let mut perms = std::fs::metadata(&blob).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(&blob, perms).unwrap();
    std::fs::write(&blob, b"garbage").unwrap();
    // The wheel blob is damaged: the lookup checks it, drops it, reports
    // it, and rebuilds.
    let r = ws.fake(&["build", "--json", "//wheels:alpha"]);
    r.ok();
    assert_eq!(r.with("built"), ["//wheels:alpha"], "{}", r.all());
    let warn = r
        .events()
        .into_iter()
        .find(|e| e["event"] == "warning")
        .unwrap();
    assert!(
        warn["message"]
            .as_str()
            .unwrap()
            .contains("treated as a miss"),
        "{warn}"
    );
    assert!(
        warn["message"].as_str().unwrap().contains("corrupt"),
        "{warn}"
    );

    // A garbled action-cache entry is also a reported miss.
    let key = ws.key("//wheels:alpha");
    std::fs::write(
        ws.store
            .join("ac")
            .join(&key[..2])
            .join(format!("{key}.json")),
        "{not json",
    )
    .unwrap();
    // (The label index would answer without reading the entry.)
    std::fs::remove_file(ws.store.join("labels/x86_64.jsonl")).unwrap();
    let r = ws.fake(&["build", "--json", "//wheels:alpha"]);
    r.ok();
    assert_eq!(r.with("built"), ["//wheels:alpha"]);
    assert!(r.stdout.contains("corrupt cache entry"), "{}", r.stdout);
}

/// A delivered wheel is hashed on each build until a check finds it
/// settled (ctime two seconds old); then its stamp stands for it and the
/// store's blob is not read. A user's write of the same size breaks the
/// stamp, and the next no-op puts the wheel's bytes back.
#[test]
fn a_delivered_wheel_is_stamped_once_settled_and_any_write_breaks_the_stamp() {
    let ws = fake_workspace();
    ws.fake(&["build", "--json", "//wheels:alpha"]).ok();
    let dist = ws.root().join("dist");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dist.join("manifest.json")).unwrap())
            .unwrap();
    let name = m["wheels"][0]["wheel"].as_str().unwrap().to_string();
    let sha = m["wheels"][0]["sha256"].as_str().unwrap().to_string();
    let wheel = dist.join(&name);
    let stamps = || -> String {
        std::fs::read_dir(ws.store.join("deliveries"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect()
    };
    assert!(
        !stamps().contains(&name),
        "just written: not stamped: {}",
        stamps()
    );
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let r = ws.fake(&["build", "--json", "//wheels:alpha"]);
    r.ok();
    assert!(r.with("built").is_empty(), "{}", r.all());
    assert!(stamps().contains(&format!("{sha} ")), "{}", stamps());

    // Stamped: the blob's bytes are not what vouches for the wheel now. A
    // blob gone from the store would have to be fetched or rebuilt to be
    // hashed; with the stamp, the stat cache's check of it is the lookup's.
    let before = std::fs::metadata(&wheel).unwrap();
    let r = ws.fake(&["build", "--json", "//wheels:alpha"]);
    r.ok();
    assert!(r.with("built").is_empty(), "{}", r.all());
    let after = std::fs::metadata(&wheel).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (before.ino(), before.ctime(), before.ctime_nsec()),
        (after.ino(), after.ctime(), after.ctime_nsec()),
        "left alone"
    );

    // The user writes to it, same size, mtime put back: delivered again.
    let bytes = std::fs::read(&wheel).unwrap();
    let mut other = bytes.clone();
    let at = other.len() / 2;
    other[at] ^= 0x20;
    std::fs::write(&wheel, &other).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&wheel)
        .unwrap()
        .set_modified(before.modified().unwrap())
        .unwrap();
    let r = ws.fake(&["build", "--json", "//wheels:alpha"]);
    r.ok();
    assert!(r.with("built").is_empty(), "{}", r.all());
    assert_eq!(common::sha256_hex(&std::fs::read(&wheel).unwrap()), sha);
}

/// A byte flipped in a wheel's blob, in place, with its size, inode and
/// mtime kept: the stat cache cannot see it. The delivered wheel is hashed,
/// so it is a miss and a rebuild, never the damaged bytes under the
/// manifest's sha256; and a delivered wheel shares nothing with the store.
#[test]
fn a_blob_damaged_in_place_is_never_delivered() {
    use std::io::{Seek, Write};
    use std::os::unix::fs::MetadataExt;
    let ws = fake_workspace();
    let first = ws.fake(&["build", "--json", "//wheels:alpha"]);
    first.ok();
    let dist = ws.root().join("dist");
    let manifest = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dist.join("manifest.json")).unwrap()).unwrap()
    };
    let m = manifest();
    let name = m["wheels"][0]["wheel"].as_str().unwrap().to_string();
    let sha = m["wheels"][0]["sha256"].as_str().unwrap().to_string();
    let delivered = dist.join(&name);
    assert_eq!(
        std::fs::metadata(&delivered).unwrap().nlink(),
        1,
        "a copy, not a link"
    );

    let blob = ws.store.join("cas/sha256").join(&sha[..2]).join(&sha);
    let before = std::fs::metadata(&blob).unwrap();
    let mut perms = before.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(&blob, perms.clone()).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&blob)
        .unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut bytes).unwrap();
    let at = bytes.len() / 2;
    f.seek(std::io::SeekFrom::Start(at as u64)).unwrap();
    f.write_all(&[bytes[at] ^ 0x20]).unwrap();
    f.set_modified(before.modified().unwrap()).unwrap();
    drop(f);
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o444);
    std::fs::set_permissions(&blob, perms).unwrap();
    let after = std::fs::metadata(&blob).unwrap();
    assert_eq!(
        (after.ino(), after.len(), after.mtime(), after.mtime_nsec()),
        (
            before.ino(),
            before.len(),
            before.mtime(),
            before.mtime_nsec()
        )
    );
    // The user's copy is gone too, so only the store could answer.
    std::fs::remove_file(&delivered).unwrap();

    let r = ws.fake(&["build", "--json", "//wheels:alpha"]);
    r.ok();
    assert_eq!(r.with("built"), ["//wheels:alpha"], "{}", r.all());
    let m = manifest();
    assert_eq!(
        m["wheels"][0]["sha256"],
        sha.as_str(),
        "the fake build is deterministic"
    );
    assert_eq!(common::sha256_hex(&std::fs::read(&delivered).unwrap()), sha);
    assert_eq!(
        common::sha256_hex(&std::fs::read(&blob).unwrap()),
        sha,
        "the blob is whole again"
    );

    // Writing to the delivered wheel leaves the store alone.
    let mut perms = std::fs::metadata(&delivered).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(&delivered, perms).unwrap();
    std::fs::write(&delivered, b"overwritten by a user's tool").unwrap();
    assert_eq!(common::sha256_hex(&std::fs::read(&blob).unwrap()), sha);
    // And the next run puts the right bytes back.
    let r = ws.fake(&["build", "--json", "//wheels:alpha"]);
    r.ok();
    assert_eq!(r.verdicts()["//wheels:alpha"], "hit:local", "{}", r.all());
    assert_eq!(common::sha256_hex(&std::fs::read(&delivered).unwrap()), sha);
}

/// A hostile workspace: a recipe that is a link to /etc/passwd, an
/// include that is a link out of the workspace, a path source that is one.
/// Nothing of the host is read into a build or a log: each is a user
/// error that names the rule's file and line.
#[test]
fn workspace_links_out_never_bring_host_files_into_builds() {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.sh"), "echo HOST-SECRET\n").unwrap();
    let cases: [(&str, std::path::PathBuf, &str); 3] = [
        ("recipes/pack.sh", "/etc/passwd".into(), "//packs:zlib"),
        (
            "recipes/lib/common.sh",
            outside.path().join("secret.sh"),
            "//packs:zlib",
        ),
        (
            "vendor/alpha-1.0.tar.gz",
            outside.path().join("secret.sh"),
            "//wheels:alpha",
        ),
    ];
    for (rel, target, label) in cases {
        let ws = fake_workspace();
        let p = ws.root().join(rel);
        std::fs::remove_file(&p).unwrap();
        symlink(&target, &p).unwrap();
        let r = ws.fake(&["build", label]);
        assert_ne!(r.code, 0, "{rel}: {}", r.all());
        assert!(
            r.all().contains("leads out of the workspace"),
            "{rel}: {}",
            r.all()
        );
        assert!(!r.all().contains("root:x:0:0"), "{}", r.all());
        assert!(!r.all().contains("HOST-SECRET"), "{}", r.all());
        for f in common::files_under(&ws.store) {
            let bytes = std::fs::read(&f).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("root:x:0:0") && !text.contains("HOST-SECRET"),
                "{}",
                f.display()
            );
        }
        if rel.starts_with("recipes/") {
            assert_eq!(r.code, 2, "a user error: {}", r.all());
            assert!(
                r.stderr.contains("packs/"),
                "names the rule's file: {}",
                r.stderr
            );
        }
    }
}

/// A repair's report of its wheel's policy (`<wheel>.policy.json`) is
/// checked, stored with the output, and carried by the manifest, the
/// provenance and `refine history`; it is never delivered as a wheel.
#[test]
fn a_repaired_wheels_policy_is_in_the_manifest_provenance_and_history() {
    let ws = fake_workspace();
    ws.fake(ALL).ok();
    let dist = ws.root().join("dist");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dist.join("manifest.json")).unwrap())
            .unwrap();
    let repaired: Vec<&serde_json::Value> = manifest["wheels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["label"].as_str().unwrap().starts_with("//repairs:"))
        .collect();
    assert!(!repaired.is_empty(), "{manifest:#}");
    for w in &repaired {
        assert_eq!(w["policy"], "manylinux2014_x86_64", "{w}");
        assert_eq!(w["limited_by"], serde_json::json!([]), "{w}");
        let name = w["wheel"].as_str().unwrap();
        let prov: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dist.join(format!("{name}.provenance.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(prov["policy"]["policy"], "manylinux2014_x86_64", "{prov:#}");
    }
    let plain = manifest["wheels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["label"] == "//wheels:alpha")
        .unwrap();
    assert!(plain.get("policy").is_none(), "{plain}");
    let names: Vec<String> = std::fs::read_dir(&dist)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.ends_with(".policy.json")),
        "{names:?}"
    );
    let label = repaired[0]["label"].as_str().unwrap();
    let h = ws.fake(&["history", label]);
    h.ok();
    assert!(
        h.stdout.contains("meets manylinux2014_x86_64"),
        "{}",
        h.stdout
    );
}

#[test]
fn json_events_stream_and_summarize() {
    let ws = fake_workspace();
    let r = ws.fake(&["build", "--json", "//wheels:alpha"]);
    r.ok();
    let ev = r.events();
    assert_eq!(ev.first().unwrap()["event"], "planned");
    assert_eq!(ev.last().unwrap()["event"], "summary");
    let started = ev.iter().filter(|e| e["event"] == "started").count();
    let finished = ev.iter().filter(|e| e["event"] == "finished").count();
    assert_eq!(started, finished);
    assert_eq!(ev.last().unwrap()["counts"]["built"], finished);
    assert!(
        r.stderr.is_empty(),
        "--json keeps stderr quiet: {}",
        r.stderr
    );
}

#[test]
fn plan_and_hash_say_what_and_why() {
    let ws = fake_workspace();
    let p = ws.fake(&["plan", "//wheels:alpha"]);
    p.ok();
    assert!(p.stdout.contains("build    //images:base"), "{}", p.stdout);
    assert!(p.stdout.contains("never built"));
    assert!(p.stdout.contains("pending  //wheels:alpha"));
    ws.fake(&["build", "//wheels:alpha"]).ok();
    let h = ws.fake(&["hash", "//wheels:alpha"]);
    h.ok();
    assert!(h.stdout.starts_with("//wheels:alpha key="), "{}", h.stdout);
    assert!(h.stdout.contains("output=sha256:"));
    assert!(
        h.stdout
            .contains("alpha-1.0-cp311-cp311-linux_x86_64.whl sha256=")
    );
    ws.edit("rules/wheels.toml", "CFLAGS = \"-O2\"", "CFLAGS = \"-O3\"");
    let p = ws.fake(&["plan", "//wheels:alpha"]);
    assert_eq!(
        p.stdout.trim(),
        "build    //wheels:alpha  env.CFLAGS: \"-O2\" -> \"-O3\""
    );
    let log = ws.fake(&["log", "//wheels:alpha"]);
    log.ok();
    assert!(
        log.stdout.contains("building //wheels:alpha"),
        "{}",
        log.stdout
    );
}

#[test]
fn default_targets_come_from_the_workspace() {
    let ws = fake_workspace();
    let r = ws.fake(&["build", "--json"]);
    r.ok();
    let v = r.verdicts();
    assert!(v.contains_key("//wheels:alpha") && v.contains_key("//wheels:beta"));
    assert!(!v.contains_key("//wheels:gamma"));
}

#[test]
fn keep_going_holds_for_a_host_failure_of_one_node() {
    let ws = fake_workspace();
    // A source whose server is down: an environment failure of that node only.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    ws.edit(
        "rules/sources.toml",
        "[sources.gamma-src]\npath = \"vendor/gamma-3.0.tar.gz\"",
        &format!("[sources.gamma-src]\nurl = \"http://127.0.0.1:{port}/gamma-3.0.tar.gz\""),
    );
    let r = ws.fake(&["build", "--json", "--keep-going", "//wheels:..."]);
    assert_eq!(r.code, 3, "an environment failure exits 3: {}", r.all());
    assert_eq!(r.with("failed"), ["//sources:gamma-src"]);
    assert_eq!(r.with("blocked"), ["//wheels:gamma"]);
    let built = r.with("built");
    for l in ["//wheels:alpha", "//wheels:beta", "//packs:curl"] {
        assert!(
            built.contains(&l.to_string()),
            "{l} built: {:?}",
            r.verdicts()
        );
    }
    let failed = r
        .events()
        .into_iter()
        .find(|e| e["verdict"] == "failed")
        .unwrap();
    assert_eq!(failed["error"]["class"], "environment", "{failed}");
}

#[test]
fn a_host_that_cannot_build_at_all_stops_the_run_at_once_with_one_message() {
    let ws = fake_workspace();
    // The real executor on a host without mmdebstrap: every image build
    // would fail the same way.
    let out = ws
        .cmd()
        .env("REFINE_MMDEBSTRAP", "/nonexistent/mmdebstrap")
        .args([
            "build",
            "--keep-going",
            "-j",
            "1",
            "//wheels:...",
            "//repairs:...",
        ])
        .output()
        .unwrap();
    let r = common::Run::from(out);
    assert_eq!(r.code, 3, "{}", r.all());
    assert_eq!(r.stderr.matches("FAILED").count(), 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("FAILED //images:base (environment error)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint: apt-get install -y mmdebstrap"),
        "the fixing command: {}",
        r.stderr
    );
    // The nodes that never started are one line, not one each.
    assert!(!r.stderr.contains("skipped"), "{}", r.stderr);
    let not_started: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("not started"))
        .collect();
    assert_eq!(not_started.len(), 1, "{}", r.stderr);
    assert!(
        not_started[0].contains("targets not started: the run stopped at a failure"),
        "{}",
        not_started[0]
    );
}

/// A store whose disk is full stops the run at once, as a host that
/// cannot start containers does (above): every other node would need the
/// same disk, so `--keep-going` goes no further, and the failure is the
/// environment's (exit 3) with the fixing hint, never the recipe's.
#[test]
fn a_full_store_disk_stops_the_run_like_a_host_failure() {
    let ws = fake_workspace();
    let mnt = common::Tmpfs::mount("16m");
    let store = mnt.path().join("store");
    let run = |args: &[&str]| {
        common::Run::from(
            ws.cmd_in(&store)
                .env("REFINE_EXECUTOR", "fake")
                .args(args)
                .output()
                .unwrap(),
        )
    };
    // Everything below the wheels while there is room.
    run(&[
        "build",
        "//images:base",
        "//runtimes:system",
        "//sources:...",
        "//packs:...",
    ])
    .ok();
    // Then the disk fills up.
    {
        use std::io::Write;
        let mut f = std::fs::File::create(mnt.path().join("filler")).unwrap();
        let chunk = vec![7u8; 64 << 10];
        let mut n = 0;
        while f.write_all(&chunk).is_ok() {
            n += 1;
            assert!(n < 1024, "a 16 MiB disk takes no more than 256 chunks");
        }
    }
    let r = run(&[
        "build",
        "--json",
        "--keep-going",
        "-j",
        "1",
        "//wheels:alpha",
        "//wheels:beta",
        "//wheels:gamma",
    ]);
    assert_eq!(r.code, 3, "{}", r.all());
    let failed = r.with("failed");
    assert_eq!(
        failed.len(),
        1,
        "one node met the full disk: {:?}",
        r.verdicts()
    );
    let built = r.with("built");
    assert!(built.is_empty(), "{:?}", r.verdicts());
    let event = r
        .events()
        .into_iter()
        .find(|e| e["verdict"] == "failed")
        .unwrap();
    assert_eq!(event["error"]["class"], "environment", "{event}");
    assert_eq!(event["error"]["scope"], "run", "{event}");
    assert!(
        event["error"]["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("disk is full"),
        "{event}"
    );
    // The run stopped there: the other two wheels never started (with the
    // store's failure a node's own, each would have failed in turn).
    let skipped = r.with("skipped");
    assert_eq!(skipped.len(), 2, "{:?}\n{}", r.verdicts(), r.all());
}

#[test]
fn on_a_terminal_a_live_line_says_what_runs() {
    let ws = fake_workspace();
    // `script` gives refine a terminal; every step takes a second.
    let cmd = format!(
        "REFINE_EXECUTOR=fake REFINE_FAKE_SLEEP_MS=1200 COLUMNS=120 {} --workspace {} --store {} build -j 1 //wheels:alpha",
        env!("CARGO_BIN_EXE_refine"),
        ws.root().display(),
        ws.store.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("running //images:base"),
        "the status line names the running node: {text:?}"
    );
    assert!(text.contains("built      //wheels:alpha"), "{text:?}");
    // Without a terminal: plain lines only.
    let plain = ws.fake_env(
        &["build", "//wheels:beta"],
        &[("REFINE_FAKE_SLEEP_MS", "600")],
    );
    plain.ok();
    assert!(!plain.stderr.contains("running //"), "{}", plain.stderr);
}

/// Longest path first, by what the history recorded: two wheels ready at
/// once, one build slot; the one the history says is slow starts first.
#[test]
fn recorded_durations_decide_what_starts_first() {
    let ws = fake_workspace();
    let targets = [
        "build",
        "--json",
        "-j",
        "1",
        "//wheels:alpha",
        "//wheels:gamma",
    ];
    ws.fake(&targets).ok();
    let mut round = 0;
    let mut order = || -> Vec<String> {
        // A recipe change rebuilds both wheels; everything below them hits.
        round += 1;
        let t = ws.read("recipes/wheel.sh");
        ws.write("recipes/wheel.sh", &format!("{t}# round {round}\n"));
        let r = ws.fake(&targets);
        r.ok();
        r.events()
            .into_iter()
            .filter(|e| e["event"] == "started")
            .filter_map(|e| e["label"].as_str().map(str::to_string))
            .filter(|l| l.starts_with("//wheels:"))
            .collect()
    };
    let before = order();
    assert_eq!(before.len(), 2, "{before:?}");
    // The history of this store says the one that went second is slow.
    let (slow, quick) = (before[1].clone(), before[0].clone());
    // (Three earlier runs: the estimate is the median of the recent ones.)
    let (h, _) = refine::history::History::open(&ws.store).unwrap();
    for _ in 0..3 {
        let run = h.begin_run("build", ws.root(), "x86_64", "native").unwrap();
        for (label, ms) in [(&slow, 600_000), (&quick, 1_000)] {
            h.finished(
                run,
                &label.parse().unwrap(),
                "x86_64",
                "native",
                None,
                None,
                "built",
                ms,
                None,
                None,
            )
            .unwrap();
        }
        h.end_run(run, [2, 0, 0, 0, 0]).unwrap();
    }
    drop(h);
    let after = order();
    assert_eq!(after, [slow.clone(), quick.clone()], "before: {before:?}");
    // And every run is recorded: the first build, the two of `order`, and
    // the three written above.
    let (h, _) = refine::history::History::open(&ws.store).unwrap();
    let runs = h.runs(10).unwrap();
    assert_eq!(runs.len(), 6, "{runs:?}");
    let rows = h
        .results(&refine::history::Filter {
            label: Some(slow.clone()),
            limit: 50,
            ..Default::default()
        })
        .unwrap();
    assert!(
        rows.iter().any(|r| r.verdict == "built" && r.log.is_some()),
        "{rows:?}"
    );
}

/// A no-op run's hits are written in a batch, not a transaction each:
/// every one of them is still in the history, with its key and output,
/// and the run's counts agree.
/// A no-op counts its hits and writes no row for them: the history holds
/// what runs did. A hit that says something new (a target named for the
/// first time, built before only as another's dependency) gets its row
/// and becomes what the package index serves for it.
#[test]
fn a_no_op_run_counts_its_hits_and_records_only_what_is_new() {
    let ws = fake_workspace();
    let first = ws.fake(ALL);
    first.ok();
    let n = first.verdicts().len();
    ws.fake(ALL).ok();
    let rows_of = |run: i64| {
        let (h, _) = refine::history::History::open(&ws.store).unwrap();
        h.results(&refine::history::Filter {
            run: Some(run),
            limit: 1000,
            ..Default::default()
        })
        .unwrap()
    };
    let last_run = || {
        let (h, _) = refine::history::History::open(&ws.store).unwrap();
        h.runs(1).unwrap().remove(0)
    };
    let noop = last_run();
    assert_eq!(noop.hits, n as i64, "{noop:?}");
    assert_eq!(noop.built, 0, "{noop:?}");
    let rows = rows_of(noop.id);
    assert!(rows.is_empty(), "a no-op wrote rows: {rows:?}");

    // //packs:openssl was built as a dependency, never named: named now,
    // its hit is news.
    let (h, _) = refine::history::History::open(&ws.store).unwrap();
    let key = |d: &std::collections::HashMap<(String, String), (String, i64)>| {
        d.keys().any(|(_, l)| l == "//packs:openssl")
    };
    assert!(!key(&h.deliverables().unwrap()));
    drop(h);
    let named = ws.fake(&["build", "--json", "//packs:openssl"]);
    named.ok();
    assert_eq!(named.verdicts()["//packs:openssl"], "hit:local");
    let run = last_run();
    let rows = rows_of(run.id);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (
            rows[0].label.as_str(),
            rows[0].verdict.as_str(),
            rows[0].requested
        ),
        ("//packs:openssl", "hit:local", true)
    );
    assert!(rows[0].output.is_some() && rows[0].key.is_some());
    let (h, _) = refine::history::History::open(&ws.store).unwrap();
    assert!(key(&h.deliverables().unwrap()));
    drop(h);
    // Named again: nothing new.
    ws.fake(&["build", "--json", "//packs:openssl"]).ok();
    let again = last_run();
    assert_eq!(again.hits, run.hits);
    assert!(rows_of(again.id).is_empty());
}

/// A no-op takes what it needs of each node (label, arch, pin, memo) from
/// the evaluation cache without decoding a single derivation; a run whose
/// keys cannot come from the label index's memos decodes what it needs.
#[test]
fn a_no_op_decodes_no_derivation_of_the_evaluation_cache() {
    let ws = fake_workspace();
    ws.fake(ALL).ok();
    let decoded = |r: &Run| -> usize {
        r.stderr
            .lines()
            .find_map(|l| l.strip_prefix("timing: derivations decoded "))
            .unwrap_or_else(|| panic!("no count of decoded derivations: {}", r.stderr))
            .trim()
            .parse()
            .unwrap()
    };
    let noop = ws.fake_env(ALL, &[("REFINE_TIMINGS", "1")]);
    noop.ok();
    assert!(noop.verdicts().values().all(|v| v == "hit:local"));
    assert_eq!(decoded(&noop), 0, "{}", noop.stderr);
    // Without the label index, the keys come from preimages: the
    // derivations are decoded (each once), and the run is all hits still.
    std::fs::remove_dir_all(ws.store.join("labels")).unwrap();
    let full = ws.fake_env(ALL, &[("REFINE_TIMINGS", "1")]);
    full.ok();
    let verdicts = full.verdicts();
    assert!(verdicts.values().all(|v| v == "hit:local"));
    let n = decoded(&full);
    assert!(n > 0 && n <= verdicts.len(), "{n} of {}", verdicts.len());
}

/// A build that ran a library's config tool it did not find: the pack
/// whose `[tools]` names it is offered (an edit that says where), and a
/// tool no pack installs gets the catalog's words.
#[test]
fn a_missing_config_tool_is_offered_the_pack_that_installs_it() {
    let ws = fake_workspace();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    ws.write(
        "rules/hints.toml",
        &std::fs::read_to_string(repo.join("rules/hints.toml")).unwrap(),
    );
    ws.write(
        "packs/curl.toml",
        &format!(
            "{}\n[tools]\n\"curl-config\" = \"//packs:curl\"\n",
            ws.read("packs/curl.toml")
        ),
    );
    let fail = |line: &str| {
        let r = ws.fake_env(
            &["build", "//wheels:alpha"],
            &[
                ("REFINE_FAKE_FAIL", "//wheels:alpha"),
                ("REFINE_FAKE_FAIL_SAYS", line),
            ],
        );
        assert_eq!(r.code, 1, "{}", r.all());
        r.stderr
    };
    let said = fail("/bin/sh: 1: curl-config: not found");
    assert!(
        said.contains("the build ran `curl-config`, which //packs:curl installs"),
        "{said}"
    );
    assert!(
        said.contains("add `packs = [\"//packs:curl\"]` to [wheels.alpha]"),
        "{said}"
    );
    let said = fail("FileNotFoundError: [Errno 2] No such file or directory: 'mysql_config'");
    assert!(
        said.contains(
            "the build ran `mysql_config`, the config tool of a C library its environment lacks"
        ),
        "{said}"
    );
}

#[test]
fn a_moved_store_reports_its_own_log_paths() {
    let ws = fake_workspace();
    ws.fake(&["build", "//wheels:alpha"]).ok();
    // The store restored elsewhere, as a CI cache is.
    let moved = ws.root().join("restored-store");
    std::fs::rename(ws.root().join(".store"), &moved).unwrap();
    let mut c = ws.cmd_in(&moved);
    c.env("REFINE_EXECUTOR", "fake");
    let again: common::Run = c
        .args(["build", "--json", "//wheels:alpha"])
        .output()
        .unwrap()
        .into();
    again.ok();
    let hits: Vec<_> = again
        .events()
        .into_iter()
        .filter(|e| e["event"] == "finished" && e["log"].is_string())
        .collect();
    assert!(
        hits.iter().any(|e| e["label"] == "//wheels:alpha"),
        "{}",
        again.all()
    );
    for e in hits {
        assert_eq!(e["verdict"], "hit:local", "{e}");
        let log = std::path::PathBuf::from(e["log"].as_str().unwrap());
        assert!(log.starts_with(&moved) && log.is_file(), "{e}");
    }
}

/// A disk filled to the last byte under the store: the history database is
/// not "damaged", it is left as it is (a warning says the run is not
/// recorded), and once there is space again every earlier run is there.
/// A real full filesystem: a small tmpfs (root, as CI runs).
#[test]
fn a_full_disk_never_costs_the_history() {
    let ws = fake_workspace();
    let mnt = common::Tmpfs::mount("24m");
    let store = mnt.path().join("store");
    let run = |args: &[&str]| -> common::Run {
        let mut c = ws.cmd_in(&store);
        c.env("REFINE_EXECUTOR", "fake");
        c.args(args).output().unwrap().into()
    };
    run(&["build", "--json", "//wheels:alpha"]).ok();
    let before = run(&["history", "--json"]);
    before.ok();
    let runs = |r: &common::Run| {
        r.stdout
            .lines()
            .filter(|l| l.contains("\"event\":\"run\""))
            .count()
    };
    assert_eq!(runs(&before), 1, "{}", before.all());

    // Fill the disk.
    let filler = mnt.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 << 10];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.write_all(&[0u8; 512]);
        let _ = f.sync_all();
    }
    let full = run(&["build", "--json", "//wheels:beta"]);
    assert_ne!(full.code, 0, "nothing can be stored: {}", full.all());
    assert_eq!(full.code, 3, "a host problem: {}", full.all());
    let names: Vec<String> = std::fs::read_dir(&store)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("damaged")),
        "{names:?}\n{}",
        full.all()
    );

    std::fs::remove_file(&filler).unwrap();
    let after = run(&["history", "--json"]);
    after.ok();
    assert!(
        runs(&after) >= 1,
        "the first run is still there: {}",
        after.all()
    );
    assert!(!after.all().contains("damaged"), "{}", after.all());
}

/// A disk that fills while refine rewrites a build's wheel is the host's
/// problem (disk full, exit 3), never "the recipe wrote a broken wheel".
#[test]
fn a_full_disk_while_normalizing_is_an_environment_error() {
    let mnt = common::Tmpfs::mount("1m");
    // A wheel of 600 kB that does not compress, on a disk of 1 MB: its
    // rewrite needs as much again.
    let wheel = mnt.path().join("demo-1.0-py3-none-any.whl");
    {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        let mut x: u32 = 1;
        let noise: Vec<u8> = (0..600_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        z.start_file("demo/noise.bin", o).unwrap();
        z.write_all(&noise).unwrap();
        z.start_file("demo-1.0.dist-info/METADATA", o).unwrap();
        z.write_all(b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
            .unwrap();
        z.finish().unwrap();
    }
    let e = refine::wheel::normalize(&wheel, 1_700_000_000).unwrap_err();
    assert!(e.is_io(), "the disk's fault, not the wheel's: {e:?}");
    let class = match e {
        refine::wheel::WheelError::Io(io) => refine::error::Error::from(io),
        _ => unreachable!(),
    };
    assert_eq!(class.class.exit_code(), 3, "{}", class.message);
    assert!(class.hint.unwrap_or_default().contains("disk is full"));
    // Nothing half-written: the wheel is as the build left it.
    assert!(refine::wheel::read_wheel(&wheel).is_ok());
}

/// A refine killed while mmdebstrap had its root mounted leaves mounts in
/// its staging directory; the next refine that sweeps the dead run's
/// staging releases them first and never descends into one (a bind mount
/// of /dev would lead into the host's). Here a bind mount of a directory
/// holding a precious file stands in for it.
#[test]
fn sweeping_a_dead_runs_staging_never_removes_through_a_mount() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("store");
    refine::store::LocalStore::open(&store).unwrap();
    let precious = d.path().join("host");
    std::fs::create_dir_all(&precious).unwrap();
    std::fs::write(precious.join("precious"), b"keep me").unwrap();
    let staged = store.join("tmp/t999999999-1.dead/mmdebstrap-tmp/root/dev");
    std::fs::create_dir_all(&staged).unwrap();
    let bound = std::process::Command::new("mount")
        .args(["--bind"])
        .arg(&precious)
        .arg(&staged)
        .status()
        .unwrap();
    assert!(bound.success(), "a bind mount (this test runs as root)");
    let real = staged.canonicalize().unwrap();
    assert_eq!(
        refine::store::mounts::mounts_under(&real),
        vec![real.clone()]
    );
    refine::store::LocalStore::open(&store).unwrap();
    assert!(refine::store::mounts::mounts_under(&real).is_empty());
    assert!(!store.join("tmp/t999999999-1.dead").exists(), "swept");
    assert_eq!(
        std::fs::read(precious.join("precious")).unwrap(),
        b"keep me"
    );
}

/// Key memos (issue 32 item 4): a node's key is remembered in the label
/// index against a hash of its derivation, the refine binary and its
/// dependencies' digests, and a no-op reads it instead of building the
/// preimage. Debug builds (this test's) compute the preimage anyway and
/// stop on any difference: a recorded key that is not the preimage's is
/// caught. An edit of the rule, or of a dependency, moves the memo.
#[test]
fn a_key_is_remembered_by_its_memo_and_what_determines_it_moves_the_memo() {
    let ws = fake_workspace();
    let index = ws.store.join("labels/x86_64.jsonl");
    let rec = |label: &str| -> serde_json::Value {
        std::fs::read_to_string(&index)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|r| r["label"] == label)
            .unwrap_or_else(|| panic!("{label} in the label index"))
    };
    ws.fake(&["build", "--json", "//wheels:alpha", "//wheels:beta"])
        .ok();
    let first = rec("//wheels:beta");
    let memo = first["memo"]
        .as_str()
        .expect("a memo beside the key")
        .to_string();
    let key = first["key"].as_str().unwrap().to_string();

    // No-ops: hits at the same key, answered by the memo.
    for _ in 0..2 {
        let r = ws.fake(&["build", "--json", "//wheels:alpha", "//wheels:beta"]);
        r.ok();
        assert!(r.with("built").is_empty(), "{}", r.all());
        assert_eq!(rec("//wheels:beta")["key"], key.as_str());
        assert_eq!(rec("//wheels:beta")["memo"], memo.as_str());
    }

    // A dependency two steps away changes: beta's memo and key move.
    let zlib = std::fs::read_to_string(ws.root().join("packs/zlib.toml")).unwrap();
    ws.write("packs/zlib.toml", &format!("{zlib}env = {{ X = \"1\" }}\n"));
    let r = ws.fake(&["build", "--json", "//wheels:beta"]);
    r.ok();
    assert!(
        r.with("built").contains(&"//wheels:beta".to_string()),
        "{}",
        r.all()
    );
    let moved = rec("//wheels:beta");
    assert_ne!(moved["memo"], memo.as_str());
    assert_ne!(moved["key"], key.as_str());

    // The recorded key replaced, its memo kept: the preimage disagrees,
    // and the debug build says so instead of answering with that key.
    let text = std::fs::read_to_string(&index).unwrap();
    let alpha = rec("//wheels:alpha");
    let forged = text.replace(alpha["key"].as_str().unwrap(), &"0".repeat(64));
    assert_ne!(forged, text);
    std::fs::write(&index, forged).unwrap();
    let r = ws.fake(&["build", "--json", "//wheels:alpha"]);
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        r.all()
            .contains("the key remembered by its memo is not its preimage's"),
        "{}",
        r.all()
    );
}
