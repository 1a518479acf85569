//! Benchmark: a synthetic workspace of 10,000 wheels over 200 packs.
//!
//! Measures, with the fake executor (no containers):
//! - cold evaluation: read and parse every rule file, check the workspace,
//!   compute every derivation (in-process, a fresh salsa database);
//! - the first build (everything built by the fake executor);
//! - the no-op build: `refine build //...` again, as a CLI process, where
//!   everything is a local hit. Target (issue 32): under 0.2 s median on
//!   a 2-core machine; beside it the peak memory of the CLI processes and
//!   the system calls of one no-op (`strace -c -f`, when strace is there).
//!
//! `cargo bench --bench noop` prints the figures; docs/BENCHMARKS.md keeps
//! them. `REFINE_BENCH_WHEELS` and `REFINE_BENCH_PACKS` scale it.

use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn sha(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A deterministic pseudo-random sequence (no dependency, same every run).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

pub fn generate(root: &Path, wheels: usize, packs: usize) {
    let mut rng = Lcg(42);
    write(
        root,
        "WORKSPACE.toml",
        "[platform]\narch = \"x86_64\"\n\n[defaults]\nimage = \"//images:base\"\nruntime = \"//runtimes:system\"\n\
         wheel_recipe = \"recipes/wheel.sh\"\nbuild_requires = [\"//sources:setuptools\"]\n",
    );
    write(root, "recipes/wheel.sh", "#!/bin/sh\npip wheel .\n");
    write(root, "recipes/pack.sh", "#!/bin/sh\nmake install\n");
    write(
        root,
        "runtimes/base.toml",
        "[images.base]\nsuite = \"bookworm\"\npackages = [\"python3\"]\n\n[runtimes.system]\nsystem = true\n",
    );
    let st = "setuptools wheel";
    write(root, "vendor/setuptools-1.0-py3-none-any.whl", st);
    write(
        root,
        "rules/tools.toml",
        &format!(
            "[sources.setuptools]\npath = \"vendor/setuptools-1.0-py3-none-any.whl\"\nsha256 = \"{}\"\n",
            sha(st)
        ),
    );
    // Packs: 10 files of 20; each depends on up to 3 earlier packs.
    for f in 0..packs.div_ceil(20) {
        let mut text = String::new();
        for i in f * 20..((f + 1) * 20).min(packs) {
            let content = format!("pack source {i}\n");
            write(root, &format!("vendor/packs/p{i}.tar.gz"), &content);
            let ndeps = if i == 0 { 0 } else { rng.next(4) as usize };
            let deps: Vec<String> = (0..ndeps)
                .map(|_| format!("\"//packs:p{}\"", rng.next(i as u64)))
                .collect();
            let _ = write!(
                text,
                "[packs.p{i}]\nversion = \"1.{i}\"\nsource = {{ path = \"vendor/packs/p{i}.tar.gz\", sha256 = \"{}\" }}\n\
                 recipe = \"recipes/pack.sh\"\ndeps = [{}]\n\n",
                sha(&content),
                deps.join(", ")
            );
        }
        write(root, &format!("packs/group{f:02}.toml"), &text);
    }
    // Wheels: 100 files of 100; each needs up to 3 packs.
    for f in 0..wheels.div_ceil(100) {
        let mut text = String::new();
        for i in f * 100..((f + 1) * 100).min(wheels) {
            let content = format!("sdist {i}\n");
            write(root, &format!("vendor/sdists/w{i}-1.0.tar.gz"), &content);
            let np = rng.next(4) as usize;
            let ps: Vec<String> = (0..np)
                .map(|_| format!("\"//packs:p{}\"", rng.next(packs as u64)))
                .collect();
            let _ = write!(
                text,
                "[wheels.w{i}]\nversion = \"1.0\"\nsource = {{ path = \"vendor/sdists/w{i}-1.0.tar.gz\", sha256 = \"{}\" }}\n\
                 packs = [{}]\nenv = {{ N = \"{i}\" }}\n\n",
                sha(&content),
                ps.join(", ")
            );
        }
        write(root, &format!("rules/wheels/w{f:03}.toml"), &text);
    }
}

fn refine(root: &Path, store: &Path, args: &[&str]) -> Duration {
    refine_with(Path::new(env!("CARGO_BIN_EXE_refine")), root, store, args)
}

fn refine_with(bin: &Path, root: &Path, store: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = Command::new(bin)
        .arg("--workspace")
        .arg(root)
        .arg("--store")
        .arg(store)
        .arg("--quiet")
        .args(args)
        .env("REFINE_EXECUTOR", "fake")
        .output()
        .unwrap();
    let t = start.elapsed();
    assert!(
        out.status.success(),
        "refine {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t
}

/// The arguments and environment of one no-op `build //...` of the bench's
/// workspace (fake executor), after the program.
fn noop_args<'a>(c: &'a mut Command, root: &Path, store: &Path) -> &'a mut Command {
    c.arg("--workspace")
        .arg(root)
        .arg("--store")
        .arg(store)
        .args(["--quiet", "build", "//..."])
        .env("REFINE_EXECUTOR", "fake")
}

/// The peak memory of one no-op, as refine says it (`REFINE_TIMINGS`).
fn peak_memory(root: &Path, store: &Path) -> String {
    let out = noop_args(&mut Command::new(env!("CARGO_BIN_EXE_refine")), root, store)
        .env("REFINE_TIMINGS", "1")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.strip_prefix("timing: peak memory ").map(str::to_string))
        .unwrap_or_else(|| "not said".to_string())
}

/// The system calls of one no-op, by `strace -c -f` (None without strace).
fn syscalls(root: &Path, store: &Path) -> Option<String> {
    let out = std::env::temp_dir().join(format!("refine-noop-strace-{}", std::process::id()));
    let mut c = Command::new("strace");
    c.args(["-f", "-c", "-o"])
        .arg(&out)
        .arg(env!("CARGO_BIN_EXE_refine"));
    let st = noop_args(&mut c, root, store).status().ok()?;
    let text = std::fs::read_to_string(&out).ok()?;
    let _ = std::fs::remove_file(&out);
    if !st.success() {
        return None;
    }
    // The total line, and the five commonest calls.
    let total = text.lines().find(|l| l.contains("total"))?.to_string();
    let mut rows: Vec<(u64, String)> = text
        .lines()
        .filter(|l| !l.contains("total"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let calls = f.get(3)?.parse().ok()?;
            Some((calls, f.last()?.to_string()))
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let top: Vec<String> = rows
        .iter()
        .take(5)
        .map(|(n, name)| format!("{n} {name}"))
        .collect();
    Some(format!(
        "{} | {}",
        total.split_whitespace().collect::<Vec<_>>().join(" "),
        top.join(", ")
    ))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let wheels: usize = std::env::var("REFINE_BENCH_WHEELS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let packs: usize = std::env::var("REFINE_BENCH_PACKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    // REFINE_BENCH_DIR keeps the workspace and store (for profiling).
    let dir = tempfile::tempdir().unwrap();
    let base = std::env::var_os("REFINE_BENCH_DIR")
        .map_or_else(|| dir.path().to_path_buf(), std::path::PathBuf::from);
    let root = base.join("ws");
    let store = base.join("store");
    let t = Instant::now();
    generate(&root, wheels, packs);
    println!(
        "generated {wheels} wheels over {packs} packs in {:.2?}",
        t.elapsed()
    );

    // Cold evaluation, in-process: a fresh store each time, so nothing is
    // reused (the evaluation cache lives in the store).
    let eval = |store: &Path| {
        let t = Instant::now();
        let s = refine::ops::Session::load(&refine::ops::GlobalOpts {
            workspace: Some(root.clone()),
            store: Some(store.to_path_buf()),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{}", e.rendered.unwrap_or(e.message)));
        let labels = s.resolve(&["//...".to_string()]).unwrap();
        let g = s.graph(&labels).unwrap();
        let took = t.elapsed();
        assert_eq!(
            g.nodes
                .iter()
                .filter(|n| n.label().kind == refine::rules::Kind::Wheel)
                .count(),
            wheels
        );
        (took, s.from_snapshot)
    };
    let mut cold = Vec::new();
    for i in 0..3 {
        let (t, reused) = eval(&base.join(format!("cold-store-{i}")));
        assert!(!reused);
        cold.push(t);
    }
    println!(
        "cold evaluation (parse, check, derive all, save): median {:.3?} of {cold:.3?}",
        median(cold.clone())
    );
    let mut warm = Vec::new();
    for _ in 0..3 {
        let (t, reused) = eval(&base.join("cold-store-0"));
        assert!(reused);
        warm.push(t);
    }
    println!(
        "evaluation reused from the cache: median {:.3?} of {warm:.3?}",
        median(warm.clone())
    );

    let first = refine(&root, &store, &["build", "//..."]);
    println!("first build, fake executor: {first:.2?}");
    // REFINE_BENCH_BASELINE=/path/to/an/older/refine: its no-op on a copy
    // of the same store, interleaved with this one's (side by side, in
    // one run: these machines are noisy).
    let baseline = std::env::var_os("REFINE_BENCH_BASELINE").map(std::path::PathBuf::from);
    let base_store = base.join("store-baseline");
    if let Some(bin) = &baseline {
        let ok = Command::new("cp")
            .arg("-a")
            .arg(&store)
            .arg(&base_store)
            .status()
            .unwrap();
        assert!(ok.success());
        refine_with(bin, &root, &base_store, &["build", "//..."]);
    }
    let mut noops = Vec::new();
    let mut base_noops = Vec::new();
    for _ in 0..5 {
        noops.push(refine(&root, &store, &["build", "//..."]));
        if let Some(bin) = &baseline {
            base_noops.push(refine_with(bin, &root, &base_store, &["build", "//..."]));
        }
    }
    let m = median(noops.clone());
    println!("no-op build //... (CLI process): median {m:.3?} of {noops:.3?}");
    println!("peak memory of one no-op: {}", peak_memory(&root, &store));
    match syscalls(&root, &store) {
        Some(s) => println!("system calls of one no-op (strace -c -f): {s}"),
        None => println!("system calls: strace is not installed here"),
    }
    if !base_noops.is_empty() {
        println!(
            "no-op build //... with the baseline binary: median {:.3?} of {base_noops:.3?}",
            median(base_noops.clone())
        );
    }
    let mut plans = Vec::new();
    for _ in 0..3 {
        plans.push(refine(&root, &store, &["plan", "//..."]));
    }
    println!(
        "no-op plan //... (CLI process): median {:.3?}",
        median(plans)
    );
    println!(
        "target: no-op build under 0.2 s: {}",
        if m < Duration::from_millis(200) {
            "met"
        } else {
            "NOT met"
        }
    );
}
