//! Benchmark: CI's s390x set built on this machine and through an REAPI
//! server (BuildGrid with PostgreSQL on loopback) with one and with two
//! `refine worker`s, side by side in one run. Every mode starts from a copy
//! of the same seed store (the hybrid image and the sources, nothing else)
//! and runs `refine build -j 2`, the remote ones each against a BuildGrid
//! of their own (no cache shared); the workers' stores start empty, so
//! each mode's first actions include fetching the image from the server's
//! CAS and loading it into podman. Then, with the worker warm, one step
//! rebuilt here, on the worker, and on a worker whose log is streamed to
//! the client while it runs (`refine logstream`), in turns, gives the
//! overhead per action and what streaming the log adds.
//!
//! `cargo bench --bench reapi` (what `bash .ci/setup` installs: podman,
//! mmdebstrap, qemu-s390x, PostgreSQL, BuildGrid in tests/reapi/venv).
//! Prints per-node times, the wall time of each mode, and the overhead a
//! remote action adds to a local one, for docs/BENCHMARKS.md.

#[path = "../tests/common/reapi.rs"]
mod reapi;

use reapi::{BuildGrid, LogStreams, Worker};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const SET: &[&str] = &[
    "//repairs:markupsafe",
    "//repairs:pyyaml",
    "//repairs:cffi",
    "//wheels:six",
];

fn refine(store: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_refine"))
        .arg("--workspace")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("REFINE_EXECUTOR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "refine {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Each built node's time (ms) and where it ran, by label.
type Times = BTreeMap<String, (u64, String)>;

/// Each built node's time (ms) and where it ran.
fn times(out: &std::process::Output) -> Times {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "finished" && e["verdict"] == "built")
        .filter_map(|e| {
            Some((
                e["label"].as_str()?.to_string(),
                (
                    e["duration_ms"].as_u64()?,
                    e["worker"].as_str().unwrap_or("here").to_string(),
                ),
            ))
        })
        .collect()
}

fn main() {
    let dir = tempfile::Builder::new()
        .prefix("refine-bench-reapi-")
        .tempdir()
        .unwrap();
    let seed = dir.path().join("seed");
    // The seed: the image and every source of the set.
    let mut sources: Vec<String> = Vec::new();
    for t in SET {
        let q = refine(&seed, &["query", &format!("kind(source, deps({t}))")]);
        for l in String::from_utf8_lossy(&q.stdout).lines() {
            if l.starts_with("//") && !sources.iter().any(|s| s == l) {
                sources.push(l.to_string());
            }
        }
    }
    let mut seed_args: Vec<&str> = vec!["build", "-q", "//images:bookworm"];
    seed_args.extend(sources.iter().map(String::as_str));
    let t = Instant::now();
    refine(&seed, &seed_args);
    eprintln!(
        "seed (image and {} sources): {:.1} s",
        sources.len(),
        t.elapsed().as_secs_f64()
    );

    let modes: [(&str, usize, usize); 3] =
        [("here", 0, 0), ("1 worker", 1, 2), ("2 workers", 2, 1)];
    let mut table: Vec<(&str, f64, Times)> = Vec::new();
    let mut warm: Option<(f64, f64, f64)> = None;
    for (name, workers, jobs) in modes {
        // A server of its own: no mode is answered from another's cache.
        let bg = (workers > 0).then(BuildGrid::start);
        let url = bg.as_ref().map(|b| b.url()).unwrap_or_default();
        let store = dir.path().join(name.replace(' ', "-"));
        let cp = Command::new("cp")
            .arg("-a")
            .arg(&seed)
            .arg(&store)
            .status()
            .unwrap();
        assert!(cp.success());
        let ws: Vec<Worker> = (0..workers)
            .map(|i| {
                let s = dir.path().join(format!("{}-w{i}", name.replace(' ', "-")));
                Worker::start_with(&url, "s390x", &format!("w{i}"), &s, jobs)
            })
            .collect();
        let mut args = vec!["build", "--json", "-j", "2"];
        if workers > 0 {
            args.extend(["--remote-executor", url.as_str(), "--remote-only"]);
        }
        args.extend(SET);
        let t = Instant::now();
        let out = refine(&store, &args);
        let wall = t.elapsed().as_secs_f64();
        eprintln!("{name}: {wall:.1} s");
        table.push((name, wall, times(&out)));
        if workers == 1 {
            // Warm: the worker has the image; the same step rebuilt here
            // and there in turns (`refine verify`, no cache), three times.
            let step = "//wheels:markupsafe";
            // The same worker's store (the image loaded) under a server
            // that streams logs through a `refine logstream`.
            let streams = LogStreams::start();
            let lbg = BuildGrid::start_with_logstream(&streams);
            let lurl = lbg.url();
            let w_store = dir.path().join(format!("{}-w0", name.replace(' ', "-")));
            let w_log = Worker::start_env(
                &lurl,
                &["ISA=s390x"],
                "w-log",
                &w_store,
                1,
                &[],
                &["--log-stream", &streams.url()],
            );
            let timed = |args: &[&str]| {
                let t = Instant::now();
                refine(&store, args);
                t.elapsed().as_secs_f64()
            };
            let (mut here, mut there, mut streamed) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..3 {
                here.push(timed(&["verify", "-q", step]));
                there.push(timed(&[
                    "verify",
                    "-q",
                    "--remote-executor",
                    &url,
                    "--remote-only",
                    step,
                ]));
                streamed.push(timed(&[
                    "verify",
                    "-q",
                    "--remote-executor",
                    &lurl,
                    "--remote-log-stream",
                    &streams.url(),
                    "--remote-only",
                    step,
                ]));
            }
            assert!(
                w_log.said().contains("bytes of log streamed"),
                "{}",
                w_log.said()
            );
            drop(w_log);
            drop(lbg);
            drop(streams);
            here.sort_by(f64::total_cmp);
            there.sort_by(f64::total_cmp);
            streamed.sort_by(f64::total_cmp);
            warm = Some((here[1], there[1], streamed[1]));
        }
        drop(ws);
        drop(bg);
    }
    let labels: Vec<String> = table[0]
        .2
        .keys()
        .filter(|l| !l.starts_with("//sources:"))
        .cloned()
        .collect();
    println!("| node | here | 1 worker | 2 workers |");
    println!("|---|---|---|---|");
    for l in &labels {
        let cell = |m: &Times| {
            m.get(l).map_or("-".to_string(), |(ms, w)| {
                format!(
                    "{:.1} s{}",
                    *ms as f64 / 1000.0,
                    if w == "here" {
                        String::new()
                    } else {
                        format!(" ({w})")
                    }
                )
            })
        };
        println!(
            "| {l} | {} | {} | {} |",
            cell(&table[0].2),
            cell(&table[1].2),
            cell(&table[2].2)
        );
    }
    println!(
        "| **wall** | **{:.1} s** | **{:.1} s** | **{:.1} s** |",
        table[0].1, table[1].1, table[2].1
    );
    // What an action costs beyond its build: remote minus local, per node.
    for (name, _, m) in &table[1..] {
        let mut d: Vec<i64> = labels
            .iter()
            .filter_map(|l| Some(m.get(l)?.0 as i64 - table[0].2.get(l)?.0 as i64))
            .collect();
        d.sort();
        if d.is_empty() {
            continue;
        }
        let median = d[d.len() / 2];
        let mean = d.iter().sum::<i64>() as f64 / d.len() as f64;
        println!(
            "{name}: overhead per action (remote − here) median {:.1} s, mean {:.1} s, over {} actions",
            median as f64 / 1000.0,
            mean / 1000.0,
            d.len()
        );
    }
    if let Some((here, there, streamed)) = warm {
        println!(
            "warm worker, //wheels:markupsafe rebuilt (`refine verify`, median of 3): here {here:.2} s, on the worker {there:.2} s: {:.2} s per action; with its log streamed {streamed:.2} s: {:.2} s more",
            there - here,
            streamed - there
        );
    }
}
