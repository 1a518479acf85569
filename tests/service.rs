//! The front door on a real lock: a Flask service's 30 pins
//! (tests/data/service-requirements.txt, `uv pip compile --universal
//! --generate-hashes` of service-requirements.in: requests, PyYAML,
//! SQLAlchemy, lxml, cryptography, msgpack, simplejson, ujson, psutil…),
//! imported, built for s390x with --keep-going and tested there, with no
//! rule written by hand. Every package either builds and passes in the
//! clean container, or is reported with a hint. Long (tens of minutes
//! under emulation), so opt-in:
//!
//! ```sh
//! cargo test --release --test service -- --ignored --nocapture
//! ```
//!
//! It prints the figures docs/BENCHMARKS.md gives.

mod common;
use common::Run;
use std::path::Path;
use std::time::Instant;

#[test]
#[ignore = "long build (see docs/BENCHMARKS.md): run with `cargo test --test service -- --ignored`"]
fn a_service_lock_builds_and_tests_for_s390x() {
    let d = tempfile::tempdir().unwrap();
    let store = std::env::var_os("REFINE_SERVICE_STORE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| d.path().join("store"));
    let run = |dir: &Path, args: &[&str]| -> Run { common::refine_in(dir, &store, args) };
    run(d.path(), &["init", "ws"]).ok();
    let ws = d.path().join("ws");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/service-requirements.txt"),
        ws.join("requirements.txt"),
    )
    .unwrap();

    let t = Instant::now();
    let imp = run(
        &ws,
        &["--json", "import", "requirements.txt", "--name", "service"],
    );
    imp.ok();
    let cold = t.elapsed();
    std::fs::remove_file(ws.join("rules/imported/service.toml")).unwrap();
    let t = Instant::now();
    run(&ws, &["import", "requirements.txt", "--name", "service"]).ok();
    let warm = t.elapsed();
    let runtime: Vec<serde_json::Value> = imp
        .events()
        .into_iter()
        .filter(|e| e["event"] == "decision" && e["runtime"] == true)
        .collect();
    assert_eq!(runtime.len(), 30, "{}", imp.stdout);
    let built_from_sdist = runtime
        .iter()
        .filter(|e| e["what"].as_str().unwrap_or("").starts_with("built from"))
        .count();
    eprintln!(
        "import of 30 pins: {:.1} s cold, {:.1} s warm (downloads and backend answers cached); {built_from_sdist} to build from sdists",
        cold.as_secs_f64(),
        warm.as_secs_f64()
    );

    let t = Instant::now();
    let b = run(&ws, &["--json", "build", "--keep-going", "//sets:service"]);
    let build = t.elapsed();
    let events = b.events();
    let verdicts = b.verdicts();
    let failed: Vec<&str> = verdicts
        .iter()
        .filter(|(_, v)| *v == "failed")
        .map(|(l, _)| l.as_str())
        .collect();
    // What failed is said with a hint from the catalog.
    let suggestions: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "suggestion")
        .collect();
    for f in &failed {
        assert!(
            suggestions.iter().any(|s| s["label"] == *f),
            "{f} failed with no hint: {}",
            b.stdout
        );
    }
    let wheels = std::fs::read_dir(ws.join("dist"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".whl"))
        .count();
    eprintln!(
        "build of the set for s390x: {:.0} s; {wheels} wheels; failed: {failed:?}",
        build.as_secs_f64()
    );
    for s in &suggestions {
        eprintln!("  hint for {}: {}", s["label"], s["message"]);
    }

    let t = Instant::now();
    let tr = run(&ws, &["--json", "test", "--keep-going", "//sets:service"]);
    let test = t.elapsed();
    let report = tr
        .events()
        .into_iter()
        .find(|e| e["event"] == "test")
        .unwrap_or_else(|| panic!("{}", tr.all()));
    let checks = report["checks"].as_array().unwrap();
    for c in checks {
        assert_eq!(c["ok"], true, "{c}");
    }
    assert!(checks.iter().any(|c| c["what"] == "pip check"));
    let left_out = report["left_out"].as_array().unwrap();
    eprintln!(
        "test in a clean s390x container: {:.0} s; {} checks passed; left out (not built): {left_out:?}",
        test.as_secs_f64(),
        checks.len()
    );
    // Only what did not build is left out of the test.
    for l in left_out {
        let v = verdicts.get(l.as_str().unwrap()).map(String::as_str);
        assert!(matches!(v, Some("failed" | "blocked")), "{l}: {v:?}");
    }
}
