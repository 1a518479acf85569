//! Benchmark: the same targets built four ways, side by side in one run,
//! each from an empty store: natively for x86_64, for s390x with the hybrid
//! (cross) toolchain and the wheels' PEP 517 hooks in the host's Python
//! (the default), the same with the hooks in the target's Python
//! (`--frontend-python target`), and for s390x fully emulated.
//!
//! `cargo bench --bench toolchains` (podman, mmdebstrap, arch-test and the
//! qemu-s390x handler, as `bash .ci/setup` sets them up; hours: the
//! emulated CPython and OpenSSL dominate). `REFINE_BENCH_TARGETS` narrows
//! the targets (comma-separated); `REFINE_BENCH_TARGETS_NATIVE`,
//! `_HYBRID` and `_EMULATED` narrow one mode's (the emulated CPython runtime
//! alone is hours, with every pack under it). Each mode builds with `-j 1`, so every
//! node's time is its own. `REFINE_BENCH_MODES` (comma-separated: native,
//! hybrid, hybrid-target, emulated) runs only some of them: a change to the hybrid images
//! changes no emulated key, so the emulated column of an earlier run still
//! describes the same derivations. Prints a table for docs/BENCHMARKS.md;
//! a wheel whose hybrid build ran its hooks in the target's Python after
//! all (compiled build requirements: maturin, cffi) is marked †.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

const TARGETS: &[&str] = &[
    "//images:bookworm",
    "//runtimes:system",
    "//wheels:markupsafe",
    "//packs:libyaml",
    "//wheels:pyyaml",
    "//packs:libffi",
    "//wheels:cffi",
    "//packs:openssl",
    "//runtimes:cpython-3.11",
    // The Rust flagships (maturin and PyO3; cryptography against the
    // OpenSSL pack), in //images:bookworm-rust.
    "//wheels:rpds-py",
    "//wheels:cryptography",
];

fn main() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let list = |var: &str| -> Option<Vec<String>> {
        std::env::var(var)
            .ok()
            .map(|v| v.split(',').map(str::to_string).collect())
    };
    let targets: Vec<String> = list("REFINE_BENCH_TARGETS")
        .unwrap_or_else(|| TARGETS.iter().map(|s| s.to_string()).collect());
    let dir = tempfile::tempdir().unwrap();
    let modes = [
        ("native x86_64", vec!["--arch", "x86_64"]),
        (
            "hybrid s390x",
            vec!["--arch", "s390x", "--toolchain", "cross"],
        ),
        (
            "hybrid-target s390x",
            vec![
                "--arch",
                "s390x",
                "--toolchain",
                "cross",
                "--frontend-python",
                "target",
            ],
        ),
        (
            "emulated s390x",
            vec!["--arch", "s390x", "--toolchain", "emulated"],
        ),
    ];
    let only = list("REFINE_BENCH_MODES");
    let mut table: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    let mut totals = vec![f64::NAN; modes.len()];
    let mut fallback = std::collections::BTreeSet::new();
    for (n, (name, flags)) in modes.iter().enumerate() {
        let short = name.split(' ').next().unwrap_or_default();
        if only.as_ref().is_some_and(|o| !o.iter().any(|m| m == short)) {
            continue;
        }
        let targets = list(&format!("REFINE_BENCH_TARGETS_{}", short.to_uppercase()))
            .unwrap_or_else(|| targets.clone());
        eprintln!("{name}: {}", targets.join(" "));
        let store = dir.path().join(format!("store-{n}"));
        let out = dir.path().join(format!("dist-{n}"));
        let t = Instant::now();
        let o = Command::new(env!("CARGO_BIN_EXE_refine"))
            .arg("--workspace")
            .arg(repo)
            .arg("--store")
            .arg(&store)
            .args(flags)
            .args(["build", "--json", "-j", "1", "--keep-going", "--out"])
            .arg(&out)
            .args(&targets)
            .env_remove("REFINE_EXECUTOR")
            .output()
            .unwrap();
        let total = t.elapsed().as_secs_f64();
        totals[n] = total;
        eprintln!("{name}: {total:.0}s, exit {:?}", o.status.code());
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            let Ok(e) = serde_json::from_str::<serde_json::Value>(l) else {
                continue;
            };
            if e["event"] != "finished" {
                continue;
            }
            let label = e["label"].as_str().unwrap_or_default().to_string();
            if label.starts_with("//sources:") {
                continue;
            }
            let secs = (e["verdict"] == "built")
                .then(|| e["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0);
            // Which interpreter ran the wheel's hooks (a hybrid build in
            // the host's falls back to the target's where it must: its
            // log says so).
            if secs.is_some() && label.starts_with("//wheels:") && short == "hybrid" {
                let log = Command::new(env!("CARGO_BIN_EXE_refine"))
                    .arg("--workspace")
                    .arg(repo)
                    .arg("--store")
                    .arg(&store)
                    .args(flags)
                    .args(["log", &label])
                    .env_remove("REFINE_EXECUTOR")
                    .output()
                    .unwrap();
                let log = String::from_utf8_lossy(&log.stdout);
                if log.contains("frontend python: the target's") {
                    fallback.insert(label.clone());
                }
            }
            let row = table
                .entry(label)
                .or_insert_with(|| vec![None; modes.len()]);
            row[n] = secs;
        }
    }
    if !fallback.is_empty() {
        println!(
            "† the hybrid build's hooks fell back to the target's Python (its log says why): {}\n",
            fallback.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    println!(
        "| target | native x86_64 | hybrid s390x (host's Python) | hybrid s390x (target's Python) | emulated s390x | hybrid / native | hybrid, target's Python / native | emulated / hybrid |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let f = |v: Option<f64>| v.map_or("-".to_string(), |s| format!("{s:.1} s"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "-".into(),
    };
    for (label, row) in &table {
        let mark = if fallback.contains(label) { " †" } else { "" };
        println!(
            "| `{label}` | {} | {}{mark} | {} | {} | {} | {} | {} |",
            f(row[0]),
            f(row[1]),
            f(row[2]),
            f(row[3]),
            ratio(row[1], row[0]),
            ratio(row[2], row[0]),
            ratio(row[3], row[1])
        );
    }
    println!(
        "| all, from an empty store | {:.0} s | {:.0} s | {:.0} s | {:.0} s | {:.2}× | {:.2}× | {:.2}× |",
        totals[0],
        totals[1],
        totals[2],
        totals[3],
        totals[1] / totals[0],
        totals[2] / totals[0],
        totals[3] / totals[1]
    );
}
