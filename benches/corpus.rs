//! Benchmark (opt-in, hours): the real-package corpus of
//! benches/corpus.toml, each package imported on its own (`refine import
//! --name c-NAME`: the set is the package and its dependencies), its
//! smoke line written as the wheel rule's test (`[[import.fixes]] test`),
//! built for s390x with `--keep-going --auto-apply`, tested in a clean
//! s390x container (`refine test`: install, `pip check`, import, smoke),
//! and the verdicts written to docs/COVERAGE.md.
//!
//! `cargo bench --bench corpus`; `REFINE_CORPUS_SLICE=K/N` runs the K-th of
//! N slices (1-based), `REFINE_CORPUS_ONLY=a,b` names packages. The
//! workspace, the store and each package's result stay in
//! `REFINE_CORPUS_DIR` (default target/corpus), so slices accumulate:
//! docs/COVERAGE.md is written from every result there, and says how many
//! of the corpus's packages have been measured. `REFINE_CORPUS_REPORT=1`
//! only writes the report again from the results there (failures are
//! classified again from their errors and logs). A package with no result
//! there keeps its row of the report before, marked "earlier" (the results
//! directory is one machine's, the report the repository's);
//! `REFINE_CORPUS_FRESH=1` leaves such rows out.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[derive(serde::Deserialize)]
struct Corpus {
    package: Vec<Package>,
}

#[derive(serde::Deserialize, Clone)]
struct Package {
    name: String,
    version: String,
    kinds: String,
    smoke: String,
    /// Requirements installed beside it for its smoke test (pinned), when
    /// the package needs one it does not declare (ruamel.yaml.clib is
    /// imported through ruamel.yaml, which depends on it, not the reverse).
    #[serde(default)]
    with: Vec<String>,
    /// What stands in its way when it fails for a reason outside refine
    /// (a library newer than the mirror's, a registry that lacks crates):
    /// said in the report's "What blocks the rest".
    #[serde(default)]
    blocked: Option<String>,
}

/// One package's measured outcome.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Outcome {
    name: String,
    version: String,
    passed: bool,
    /// import, build, test, or passed.
    stage: String,
    /// Seconds of the package's own nodes (build, repair, test).
    secs: f64,
    fixes: Vec<String>,
    /// The oldest glibc its repaired wheel installs on (its manylinux tag).
    glibc: Option<String>,
    /// The failure class, and the evidence.
    class: Option<String>,
    evidence: Option<String>,
    /// The failed node's log in the store, read again when the report is
    /// written (so a better classifier reclassifies old runs).
    #[serde(default)]
    log: Option<String>,
    /// The failed node's error: its message and hint.
    #[serde(default)]
    error: Option<String>,
}

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus: Corpus =
        toml::from_str(&std::fs::read_to_string(repo.join("benches/corpus.toml")).unwrap())
            .unwrap();
    let dir = std::env::var_os("REFINE_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target/corpus"));
    let report = repo.join("docs/COVERAGE.md");
    if std::env::var_os("REFINE_CORPUS_REPORT").is_some() {
        // Only the report, from the results (and logs) already there.
        let earlier = carry(&report);
        std::fs::write(
            &report,
            render_with(&corpus.package, &dir.join("results"), &earlier),
        )
        .unwrap();
        eprintln!("corpus: wrote {}", report.display());
        return;
    }
    let chosen = choose(&corpus.package);
    let ws = dir.join("ws");
    let store = dir.join("store");
    let results = dir.join("results");
    std::fs::create_dir_all(&results).unwrap();
    if !ws.join("WORKSPACE.toml").exists() {
        let r = refine(&dir, &store, &["init", "ws"]);
        assert!(r.0, "refine init: {}", r.2);
    }
    std::fs::create_dir_all(ws.join("corpus")).unwrap();
    let t = Instant::now();
    let mut sets = Vec::new();
    let mut out: BTreeMap<String, Outcome> = BTreeMap::new();
    for p in &chosen {
        eprintln!("corpus: importing {}=={}", p.name, p.version);
        match import(&ws, &store, p) {
            Ok(set) => sets.push((p.name.clone(), set)),
            Err(e) => {
                let o = Outcome {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    stage: "import".into(),
                    class: Some(classify(&e)),
                    evidence: Some(first_lines(&e)),
                    ..Outcome::default()
                };
                out.insert(p.name.clone(), o);
            }
        }
    }
    let labels: Vec<String> = sets.iter().map(|(_, s)| s.clone()).collect();
    let wheels = dir.join("wheels");
    if !labels.is_empty() {
        eprintln!("corpus: building {} sets", labels.len());
        let mut args = vec!["--json", "build", "--keep-going", "--auto-apply", "--out"];
        let w = wheels.to_string_lossy().into_owned();
        args.push(&w);
        args.extend(labels.iter().map(String::as_str));
        let build = refine(&ws, &store, &args);
        let mut targs = vec!["--json", "test", "--keep-going"];
        targs.extend(labels.iter().map(String::as_str));
        eprintln!("corpus: testing");
        let test = refine(&ws, &store, &targs);
        let (finished, errors) = finished(&build.1);
        let tests = test_events(&test.1);
        for (name, set) in &sets {
            let p = chosen.iter().find(|p| &p.name == name).unwrap();
            out.insert(
                name.clone(),
                outcome(&ws, p, set, &finished, &errors, &tests, &wheels),
            );
        }
    }
    for o in out.values() {
        let f = results.join(format!("{}.json", o.name));
        std::fs::write(&f, serde_json::to_string_pretty(o).unwrap()).unwrap();
        eprintln!(
            "corpus: {} {}: {}{}",
            o.name,
            o.version,
            if o.passed { "passed" } else { "FAILED at " },
            if o.passed { "" } else { &o.stage }
        );
    }
    eprintln!(
        "corpus: {} packages in {:.0}s",
        chosen.len(),
        t.elapsed().as_secs_f64()
    );
    let earlier = carry(&report);
    std::fs::write(&report, render_with(&corpus.package, &results, &earlier)).unwrap();
    eprintln!("corpus: wrote {}", report.display());
}

fn choose(all: &[Package]) -> Vec<Package> {
    if let Ok(only) = std::env::var("REFINE_CORPUS_ONLY") {
        let names: Vec<&str> = only.split(',').collect();
        return all
            .iter()
            .filter(|p| names.contains(&p.name.as_str()))
            .cloned()
            .collect();
    }
    if let Ok(s) = std::env::var("REFINE_CORPUS_SLICE") {
        let (k, n) = s
            .split_once('/')
            .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
            .filter(|(k, n)| *k >= 1 && k <= n)
            .expect("REFINE_CORPUS_SLICE=K/N, 1 <= K <= N");
        let size = all.len().div_ceil(n);
        return all
            .iter()
            .skip((k - 1) * size)
            .take(size)
            .cloned()
            .collect();
    }
    all.to_vec()
}

/// Run refine; (success, stdout, stderr).
fn refine(cwd: &Path, store: &Path, args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_refine"))
        .current_dir(cwd)
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("REFINE_EXECUTOR")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Import one package as `c-NAME`, with its smoke line as its wheel's
/// test; the set's label, or why the import failed.
fn import(ws: &Path, store: &Path, p: &Package) -> Result<String, String> {
    let name = format!("c-{}", p.name);
    let req = format!("corpus/{}.txt", p.name);
    let mut lines = format!("{}=={}\n", p.name, p.version);
    for w in &p.with {
        lines.push_str(w);
        lines.push('\n');
    }
    std::fs::write(ws.join(&req), lines).unwrap();
    let run = |ws: &Path| {
        let r = refine(ws, store, &["--json", "import", &req, "--name", &name]);
        let ev = events(&r.1);
        if let Some(u) = ev.iter().find(|e| e["event"] == "unbuildable") {
            return Err(format!(
                "{} {}",
                u["why"].as_str().unwrap_or_default(),
                u["hint"]
            ));
        }
        if !r.0 {
            let e = ev.iter().find(|e| e["event"] == "error");
            return Err(e
                .map(|e| format!("{} {}", e["message"], e["hint"]))
                .unwrap_or(r.2));
        }
        Ok(ev)
    };
    let ev = run(ws)?;
    let decision = ev
        .iter()
        .find(|e| {
            e["event"] == "decision"
                && e["runtime"] == true
                && e["name"].as_str().is_some_and(|n| same(n, &p.name))
        })
        .ok_or("the import made no decision for the package")?;
    let file = ws.join(format!("rules/imported/{name}.toml"));
    let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
    let built = decision["what"]
        .as_str()
        .unwrap_or_default()
        .starts_with("built from");
    if built && !text.contains("\n[[import.fixes]]") {
        let label = decision["label"].as_str().unwrap_or_default();
        let wheel = label.rsplit(':').next().unwrap_or_default();
        let fix = format!(
            "\n[[import.fixes]]\ntarget = \"//wheels:{wheel}\"\ntest = {}\n",
            serde_json::to_string(&format!("python -c {}", shell_quote(&p.smoke))).unwrap()
        );
        std::fs::write(&file, format!("{text}{fix}")).unwrap();
        run(ws)?;
    }
    Ok(format!("//sets:{name}"))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn same(a: &str, b: &str) -> bool {
    let n = |s: &str| s.to_ascii_lowercase().replace(['_', '.'], "-");
    n(a) == n(b)
}

/// The last `finished` event per label, its `duration_ms` the sum over
/// every round (`--auto-apply` builds the set again after a fix, where
/// the nodes already built are hits: the last round's time alone would be
/// theirs), and the failed ones' errors.
#[allow(clippy::type_complexity)]
fn finished(stdout: &str) -> (BTreeMap<String, Value>, BTreeMap<String, String>) {
    let mut fin: BTreeMap<String, Value> = BTreeMap::new();
    let mut err = BTreeMap::new();
    for mut e in events(stdout) {
        let label = e["label"].as_str().unwrap_or_default().to_string();
        if e["event"] == "finished" {
            let before = fin
                .get(&label)
                .and_then(|b| b["duration_ms"].as_f64())
                .unwrap_or(0.0);
            let ms = e["duration_ms"].as_f64().unwrap_or(0.0) + before;
            e["duration_ms"] = ms.into();
            fin.insert(label, e);
        } else if e["event"] == "suggestion" {
            err.insert(label, e["message"].as_str().unwrap_or_default().to_string());
        }
    }
    (fin, err)
}

fn test_events(stdout: &str) -> BTreeMap<String, Value> {
    events(stdout)
        .into_iter()
        .filter(|e| e["event"] == "test")
        .map(|e| (e["label"].as_str().unwrap_or_default().to_string(), e))
        .collect()
}

fn outcome(
    ws: &Path,
    p: &Package,
    set: &str,
    fin: &BTreeMap<String, Value>,
    sugg: &BTreeMap<String, String>,
    tests: &BTreeMap<String, Value>,
    wheels: &Path,
) -> Outcome {
    let name = set.trim_start_matches("//sets:");
    let mut o = Outcome {
        name: p.name.clone(),
        version: p.version.clone(),
        ..Outcome::default()
    };
    // The package's own nodes: labels named after it and its version.
    let norm = p.name.to_ascii_lowercase().replace(['_', '.'], "-");
    let own: Vec<(&String, &Value)> = fin
        .iter()
        .filter(|(l, _)| {
            let n = l.rsplit(':').next().unwrap_or_default();
            (l.starts_with("//wheels:") || l.starts_with("//repairs:"))
                && (n == norm || n.starts_with(&format!("{norm}-{}", p.version)))
        })
        .collect();
    o.secs = own
        .iter()
        .map(|(_, e)| e["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0)
        .sum();
    if let Ok(text) = std::fs::read_to_string(ws.join(format!("rules/imported/{name}.toml")))
        && let Ok(doc) = text.parse::<toml::Table>()
        && let Some(fixes) = doc
            .get("import")
            .and_then(|i| i.get("fixes"))
            .and_then(|f| f.as_array())
    {
        for f in fixes {
            let mut parts = Vec::new();
            for k in ["packs", "build_requires", "env", "image"] {
                if let Some(v) = f.get(k) {
                    parts.push(format!("{k} = {v}"));
                }
            }
            if !parts.is_empty() {
                o.fixes.push(parts.join(", "));
            }
        }
    }
    // The package's own failed node, or its own nodes blocked by a
    // dependency that failed.
    let own_failed = own.iter().find(|(_, e)| e["verdict"] == "failed");
    let blocked = own.iter().find(|(_, e)| !ok_verdict(e));
    if let Some((label, e)) = own_failed.or(blocked) {
        let msg =
            sugg.get(*label)
                .cloned()
                .unwrap_or_else(|| match e["error"]["message"].as_str() {
                    Some(m) => m.to_string(),
                    None => format!("a dependency of {label} failed ({})", e["verdict"]),
                });
        o.stage = "build".into();
        let hint = e["error"]["hint"].as_str().unwrap_or_default();
        let error = format!("{msg}\n{hint}");
        o.log = e["log"].as_str().map(str::to_string);
        o.class = Some(classify(&failure_text(&error, o.log.as_deref())));
        o.evidence = Some(
            evidence_line(o.log.as_deref())
                .map(|l| format!("{label}: {l}"))
                .unwrap_or_else(|| format!("{label}: {}", first_lines(&msg))),
        );
        o.error = Some(error);
        return o;
    }
    let test = tests.get(&format!("//tests:{name}"));
    let failed_check = test.and_then(|t| {
        t["checks"]
            .as_array()?
            .iter()
            .find(|c| c["ok"] == false)
            .cloned()
    });
    let ok = test.is_some_and(ok_verdict) && failed_check.is_none();
    // Built, but a wheel of its set failed (`--keep-going` tests the rest):
    // the test's complaint (`pip check`: a requirement not installed) is
    // that dependency's failure, and is classed as such.
    // (Only this set's: the slice's sets are built in one run.)
    let members = set_members(ws, name);
    let dep_failed = fin.iter().find(|(l, e)| {
        let n = l
            .strip_prefix("//wheels:")
            .or_else(|| l.strip_prefix("//repairs:"));
        n.is_some_and(|n| members.contains(n)) && e["verdict"] == "failed"
    });
    if let (false, Some((label, e))) = (ok, dep_failed) {
        o.stage = "build".into();
        let msg = sugg
            .get(label)
            .cloned()
            .or_else(|| e["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_default();
        let log = e["log"].as_str().map(str::to_string);
        let why = classify(&failure_text(&msg, log.as_deref()));
        o.class = Some("a dependency failed".into());
        o.evidence = Some(format!(
            "{label} ({why}): {}",
            evidence_line(log.as_deref()).unwrap_or_else(|| first_lines(&msg))
        ));
        o.error = Some(format!("a dependency failed: {label}: {msg}"));
        o.log = log;
        return o;
    }
    if !ok {
        o.stage = "test".into();
        let what = failed_check
            .as_ref()
            .map(|c| {
                format!(
                    "{}: {}",
                    c["what"].as_str().unwrap_or_default(),
                    c["output"].as_str().unwrap_or_default()
                )
            })
            .unwrap_or_else(|| format!("the test node: {:?}", test.map(|t| &t["verdict"])));
        o.class = Some(classify(&what));
        o.evidence = Some(first_lines(&what));
        return o;
    }
    o.passed = true;
    o.stage = "passed".into();
    o.glibc = glibc(wheels, &norm, &p.version);
    o
}

/// The names of the wheels and repairs of an import's set
/// (`[sets.NAME] targets` of rules/imported/NAME.toml).
fn set_members(ws: &Path, name: &str) -> std::collections::BTreeSet<String> {
    std::fs::read_to_string(ws.join(format!("rules/imported/{name}.toml")))
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|doc| {
            Some(
                doc.get("sets")?
                    .get(name)?
                    .get("targets")?
                    .as_array()?
                    .iter()
                    .filter_map(|v| v.as_str()?.rsplit(':').next().map(str::to_string))
                    .collect(),
            )
        })
        .unwrap_or_default()
}

fn ok_verdict(e: &Value) -> bool {
    matches!(
        e["verdict"].as_str(),
        Some("built" | "hit:local" | "hit:remote")
    )
}

/// The manylinux floor of the package's repaired wheel in `--out`.
fn glibc(wheels: &Path, norm: &str, version: &str) -> Option<String> {
    let prefix = format!("{}-{version}-", norm.replace('-', "_"));
    std::fs::read_dir(wheels).ok()?.flatten().find_map(|e| {
        let f = e.file_name().to_string_lossy().to_ascii_lowercase();
        if !f.starts_with(&prefix) {
            return None;
        }
        let tags = f.trim_end_matches(".whl").rsplit('-').next()?.to_string();
        let mut floors: Vec<(u32, u32)> = tags
            .split('.')
            .filter_map(|t| {
                if t == "manylinux2014_s390x" {
                    return Some((2, 17));
                }
                let rest = t.strip_prefix("manylinux_")?;
                let mut it = rest.split('_');
                Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
            })
            .collect();
        floors.sort();
        floors.first().map(|(a, b)| format!("glibc {a}.{b}"))
    })
}

/// What a failure is classified by: its error and hint, then the last
/// lines of its log (where the compiler or the backend says what broke).
fn failure_text(error: &str, log: Option<&str>) -> String {
    let tail = log
        .and_then(|l| std::fs::read(l).ok())
        .map(|b| {
            let text = String::from_utf8_lossy(&b).into_owned();
            // The sandbox's command line (its --timeout, its mounts) is
            // not what broke.
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| !l.starts_with("podman run"))
                .collect();
            lines[lines.len().saturating_sub(80)..].join("\n")
        })
        .unwrap_or_default();
    format!("{error}\n{tail}")
}

/// The log's line that says what broke: the last one that speaks of an
/// error and is not the frontend's or refine's summary of it.
fn evidence_line(log: Option<&str>) -> Option<String> {
    let text = String::from_utf8_lossy(&std::fs::read(log?).ok()?).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    let summary = [
        "Failed to build",
        "cause:",
        "hint:",
        "refine:",
        "backend returned an error",
        "failed with code",
        "process didn't exit successfully",
        "returned non-zero exit status 1.",
        "For more information about this error",
        "previous error",
        "errors generated",
        "error generated",
        "Traceback",
    ];
    lines[lines.len().saturating_sub(200)..]
        .iter()
        .rev()
        .map(|l| l.trim())
        .filter(|l| !l.starts_with("podman run") && !summary.iter().any(|s| l.contains(s)))
        .find(|l| {
            let t = l.to_ascii_lowercase();
            t.contains("error") || t.contains("not found") || t.contains("exception")
        })
        .map(first_lines)
}

/// A failure's class: what kind of thing went wrong, for the totals.
fn classify(text: &str) -> String {
    let t = text.to_ascii_lowercase();
    let rules: &[(&[&str], &str)] = &[
        (
            &[
                "does not meet manylinux",
                "does not meet musllinux",
                "too-recent versioned symbols",
            ],
            "the wheel needs more than its floor allows",
        ),
        (
            &[
                "undeclared identifier '_py",
                "implicit declaration of function '_py",
                "has no member named 'ob_",
                "undeclared identifier 'py_",
                "'pystrhex.h' file not found",
                "'longintrepr.h' file not found",
            ],
            "the C code predates CPython 3.11",
        ),
        (
            &[
                "e0658",
                "edition2024",
                "requires rustc",
                "is not supported by the current rustc",
                "package requires rust",
            ],
            "the crates need a newer Rust than the image's",
        ),
        (
            &[
                "did not find `",
                "no such file or directory\n#include",
                "' file not found",
            ],
            "a C header is missing (no pack)",
        ),
        (
            &[
                "pkg-config found no",
                "the config tool of a c library",
                "not found (tried pkg-config",
                "was not found in the pkg-config search path",
                "could not find the package",
                "unable to load dependency",
                "is not installed or not in path",
            ],
            "a C library is missing (no pack)",
        ),
        (
            &["cargo vendor", "cargo.lock"],
            "Rust crates cannot be vendored",
        ),
        (
            &["but its source is version"],
            "the build does not know its own version",
        ),
        (
            &["cannot download", "wrap via git", "--wrap-mode"],
            "a subproject is downloaded during the build",
        ),
        // A library the wheel does not carry and the clean container does
        // not have: one the manylinux policy leaves to the system (GLib),
        // or one a ctypes binding looks for (libsodium).
        (
            &["cannot open shared object file", "unable to find lib"],
            "needs a system library at run time",
        ),
        (
            &["no solution found", "unsatisfiable", "not on the index"],
            "build requirements do not resolve",
        ),
        (
            &["failed to say its build requirements"],
            "the backend fails before building",
        ),
        (
            &["modulenotfounderror", "no module named"],
            "a Python module is missing",
        ),
        (&["cmake"], "CMake"),
        (&["meson"], "meson"),
        (&["timed out", "time limit"], "time limit"),
        (&["a dependency of"], "a dependency failed"),
        (&["import "], "the import or smoke test fails on s390x"),
    ];
    for (needles, class) in rules {
        if needles.iter().any(|n| t.contains(n)) {
            return class.to_string();
        }
    }
    "other".into()
}

fn first_lines(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    one.chars().take(240).collect()
}

/// A row of the report before, for a package this results directory has
/// no result of (the results directory is one machine's; the report is
/// the repository's): its verdict and failure class, and the row itself.
struct Earlier {
    passed: bool,
    class: Option<String>,
    row: String,
}

/// The rows of the report at `report` by "name version".
fn earlier_rows(report: &Path) -> BTreeMap<String, Earlier> {
    let text = std::fs::read_to_string(report).unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| package"))
    {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        if cells.len() != 7 {
            continue;
        }
        let class = (cells[6] != "—").then(|| cells[6].split(": ").next().unwrap_or_default());
        let mut row = cells.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        if !row[3].ends_with("(earlier)") {
            row[3] = format!("{} (earlier)", row[3]);
        }
        out.insert(
            cells[0].to_string(),
            Earlier {
                passed: cells[2] == "passed",
                class: class.map(str::to_string),
                row: format!("| {} |\n", row.join(" | ")),
            },
        );
    }
    out
}

/// The rows to carry over from the report before: all of them, unless
/// `REFINE_CORPUS_FRESH=1` (a whole run in one store says only what it
/// measured).
fn carry(report: &Path) -> BTreeMap<String, Earlier> {
    if std::env::var_os("REFINE_CORPUS_FRESH").is_some() {
        return BTreeMap::new();
    }
    earlier_rows(report)
}

/// The report, with the rows of `earlier` for packages that have no
/// result here (said as such: measured on earlier code, in another store).
fn render_with(corpus: &[Package], results: &Path, earlier: &BTreeMap<String, Earlier>) -> String {
    let mut rows = Vec::new();
    let mut carried: Vec<(&Package, &Earlier)> = Vec::new();
    for p in corpus {
        let f = results.join(format!("{}.json", p.name));
        let fresh = std::fs::read_to_string(&f)
            .ok()
            .and_then(|t| serde_json::from_str::<Outcome>(&t).ok())
            .filter(|o| o.version == p.version);
        if fresh.is_none()
            && let Some(e) = earlier.get(&format!("{} {}", p.name, p.version))
        {
            carried.push((p, e));
            continue;
        }
        if let Some(mut o) = fresh {
            // (A dependency's failure keeps its class and evidence: its
            // log is the dependency's.)
            if let Some(e) = o
                .error
                .as_ref()
                .filter(|e| !e.starts_with("a dependency failed: "))
            {
                o.class = Some(classify(&failure_text(e, o.log.as_deref())));
                if let (Some(l), Some(ev)) = (evidence_line(o.log.as_deref()), &o.evidence) {
                    let label = ev.split(": ").next().unwrap_or_default();
                    o.evidence = Some(format!("{label}: {l}"));
                }
            }
            rows.push((p, o));
        }
    }
    let passed = rows.iter().filter(|(_, o)| o.passed).count()
        + carried.iter().filter(|(_, e)| e.passed).count();
    let measured = rows.len() + carried.len();
    let mut s = String::from("# Coverage of the real-package corpus for s390x\n\n");
    s.push_str(&format!("coverage: {passed} of {measured} passed\n\n"));
    s.push_str(&format!(
        "Measured: {measured} of the {} packages of benches/corpus.toml (`cargo bench --bench corpus`, \
         in slices; the rest not run yet). Each package is imported on its own, built for s390x \
         with `--keep-going --auto-apply`, and tested in a clean s390x container (install, \
         `pip check`, import, its smoke line).\n\n",
        corpus.len()
    ));
    if !carried.is_empty() {
        s.push_str(&format!(
            "{} of the rows (time marked \"earlier\") are carried over from the report before: \
             measured on earlier code in another store, not run again in this one; the other {} \
             were measured in this run's store.\n\n",
            carried.len(),
            rows.len()
        ));
    }
    s.push_str(
        "| package | kinds | verdict | time | fix applied | installs on | failure class |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|\n");
    let mut classes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // In the corpus's order, fresh and carried rows alike.
    let mut order: Vec<(&str, String)> = Vec::new();
    // Failed packages whose corpus entry says what blocks them.
    let mut blocked: Vec<(&str, &str)> = Vec::new();
    for (p, e) in &carried {
        if let Some(c) = &e.class {
            classes.entry(c.clone()).or_default().push(p.name.clone());
        }
        if let (false, Some(b)) = (e.passed, &p.blocked) {
            blocked.push((p.name.as_str(), b.as_str()));
        }
        order.push((p.name.as_str(), e.row.clone()));
    }
    for (p, o) in &rows {
        if let (false, Some(b)) = (o.passed, &p.blocked) {
            blocked.push((p.name.as_str(), b.as_str()));
        }
        let verdict = if o.passed {
            "passed".to_string()
        } else {
            format!("failed ({})", o.stage)
        };
        if let Some(c) = &o.class {
            classes.entry(c.clone()).or_default().push(p.name.clone());
        }
        order.push((
            p.name.as_str(),
            format!(
                "| {} {} | {} | {} | {:.0} s | {} | {} | {} |\n",
                p.name,
                p.version,
                p.kinds,
                verdict,
                o.secs,
                if o.fixes.is_empty() {
                    "—".into()
                } else {
                    o.fixes.join("; ").replace('|', "/")
                },
                o.glibc.as_deref().unwrap_or("—"),
                o.class
                    .as_ref()
                    .map(|c| format!("{c}: {}", o.evidence.as_deref().unwrap_or_default()))
                    .unwrap_or_else(|| "—".into())
                    .replace('|', "/"),
            ),
        ));
    }
    let place: BTreeMap<&str, usize> = corpus
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    order.sort_by_key(|(name, _)| place.get(name).copied().unwrap_or(usize::MAX));
    for (_, row) in order {
        s.push_str(&row);
    }
    s.push_str(&format!(
        "\n## Totals\n\n{passed} passed, {} failed, of {measured} measured.\n\n## Top failure causes\n\n",
        measured - passed,
    ));
    let mut by: Vec<(String, Vec<String>)> = classes.into_iter().collect();
    by.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    for (c, names) in by {
        s.push_str(&format!("- {c}: {} ({})\n", names.len(), names.join(", ")));
    }
    if !blocked.is_empty() {
        blocked.sort_by_key(|(name, _)| place.get(name).copied().unwrap_or(usize::MAX));
        s.push_str("\n## What blocks the rest\n\n");
        for (name, b) in blocked {
            s.push_str(&format!("- {name}: {b}\n"));
        }
    }
    s
}
