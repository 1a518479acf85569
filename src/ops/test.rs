//! `refine test //sets:NAME`: build the set's `//tests:NAME` node (its
//! wheels installed together in a clean container of the target, `pip
//! check`, an import of every wheel's modules, each rule's `test`), then
//! say per wheel what passed. The test node is a node like any other: its
//! key covers the wheels, the image and the test commands, so a passing
//! test is a cache hit until one of them changes; a failing one is never
//! cached.

use super::Session;
use super::build::{BuildArgs, BuildReport, build, run_graph};
use crate::error::{Error, Result};
use crate::eval::Graph;
use crate::rules::{Kind, Label, Pattern};
use crate::sched::{EventSink, Verdict};
use crate::store::LocalStore;

/// One check of a test run.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// The member it is about (None: the set as a whole, e.g. `pip check`).
    pub label: Option<Label>,
    /// What was checked: "pip check", "import markupsafe", a command.
    pub what: String,
    /// The wheel file, for imports.
    pub wheel: Option<String>,
    pub ok: bool,
    /// The check's output when it failed.
    pub output: String,
}

/// Per test node, the members it was tested without.
pub type LeftOut = Vec<(Label, Vec<Label>)>;

pub struct TestReport {
    pub build: BuildReport,
    /// Per test node: its label, its verdict, and its checks.
    pub tests: Vec<(Label, Verdict, Vec<Check>)>,
    /// Per test node, the members left out because they did not build
    /// (`--keep-going`: the rest is tested together).
    pub left_out: LeftOut,
    /// The run whose failures left members out, when there was one.
    pub first: Option<BuildReport>,
}

impl TestReport {
    pub fn failed(&self) -> bool {
        self.left_out.iter().any(|(_, l)| !l.is_empty())
            || self
                .tests
                .iter()
                .any(|(_, v, c)| !v.is_ok() || c.iter().any(|c| !c.ok))
    }
}

/// The test labels of `targets` (sets, or tests themselves).
fn test_labels(targets: &[String]) -> Result<Vec<String>> {
    if targets.is_empty() {
        return Err(Error::user("refine test: no set given")
            .hint("name the sets to test: `refine test //sets:NAME` (`refine import` makes one)"));
    }
    let mut out = Vec::new();
    for t in targets {
        let p: Pattern = t.parse().map_err(|e: crate::rules::label::LabelError| {
            Error::user(format!("{e}")).hint(e.hint())
        })?;
        match p {
            Pattern::Exact(l) if matches!(l.kind, Kind::Set | Kind::Test) => {
                out.push(Label::new(Kind::Test, l.name.clone()).to_string());
            }
            Pattern::Kind(Kind::Set) | Pattern::Kind(Kind::Test) => out.push("//tests:...".into()),
            _ => {
                return Err(Error::user(format!("refine test: {t} is not a set"))
                    .hint("refine test installs a set's wheels together: `refine test //sets:NAME`; put single wheels in a [sets.NAME] of their own"));
            }
        }
    }
    Ok(out)
}

pub fn test(
    s: &Session,
    targets: &[String],
    args: &BuildArgs,
    sink: &dyn EventSink,
) -> Result<TestReport> {
    let args = BuildArgs {
        patterns: test_labels(targets)?,
        ..args.clone()
    };
    let mut report = build(s, &args, sink)?;
    // With --keep-going, a set whose members did not all build is tested
    // with the ones that did (a test node of its own: another key).
    let mut left_out = Vec::new();
    let mut first = None;
    if args.keep_going
        && let Some((graph, out)) = partial(&report)
    {
        left_out = out;
        first = Some(std::mem::replace(
            &mut report,
            run_graph(s, graph, &args, sink)?,
        ));
    }
    let store = s.open_store()?;
    let mut tests = tests_of(&store, first.as_ref().unwrap_or(&report));
    if first.is_some() {
        // The retested nodes' results replace their blocked ones; the
        // sets that were whole keep the results of the first run.
        for t in tests_of(&store, &report) {
            match tests.iter_mut().find(|(l, _, _)| *l == t.0) {
                Some(slot) => *slot = t,
                None => tests.push(t),
            }
        }
    }
    Ok(TestReport {
        build: report,
        tests,
        left_out,
        first,
    })
}

/// The requested test nodes of `report`: label, verdict and checks (read
/// from the node's report.json, or from its log when it failed).
fn tests_of(store: &LocalStore, report: &BuildReport) -> Vec<(Label, Verdict, Vec<Check>)> {
    let mut tests = Vec::new();
    for (node, r) in report.graph.nodes.iter().zip(&report.results) {
        if node.label().kind != Kind::Test || !node.requested {
            continue;
        }
        let raw: Option<serde_json::Value> = match (&r.tree, r.verdict.is_ok()) {
            (Some(tree), true) => tree
                .files()
                .find(|(n, _, _)| *n == "report.json")
                .and_then(|(_, d, _)| store.cas.read_blob(d).ok())
                .and_then(|b| serde_json::from_slice(&b).ok()),
            _ => r
                .log
                .as_ref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .and_then(|log| report_in_log(&log)),
        };
        // Which member each wheel file came from.
        let mut owner: std::collections::HashMap<String, Label> = std::collections::HashMap::new();
        for l in &node.derivation().inputs.wheels {
            if let Some(i) = report.graph.by_label.get(l).copied()
                && let Some(t) = &report.results[i].tree
            {
                for (name, _, _) in t.files() {
                    owner.insert(
                        name.rsplit('/').next().unwrap_or(name).to_string(),
                        l.clone(),
                    );
                }
            }
        }
        let checks = raw.map(|v| checks_of(&v, &owner)).unwrap_or_default();
        tests.push((node.label().clone(), r.verdict, checks));
    }
    tests
}

/// The blocked test nodes of `report` made over the members that built:
/// the graph to run, and what each leaves out.
fn partial(report: &BuildReport) -> Option<(Graph, LeftOut)> {
    let g = &report.graph;
    let ok = |l: &Label| {
        g.by_label
            .get(l)
            .is_some_and(|&i| report.results[i].verdict.is_ok())
    };
    let mut graph = g.clone();
    let mut roots = Vec::new();
    let mut out = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if n.label().kind != Kind::Test
            || !n.requested
            || report.results[i].verdict != Verdict::Blocked
        {
            continue;
        }
        let d = n.derivation();
        let (kept, dropped): (Vec<Label>, Vec<Label>) =
            d.inputs.wheels.iter().cloned().partition(|l| ok(l));
        let needs = [&d.inputs.image, &d.inputs.runtime];
        if kept.is_empty() || needs.iter().any(|x| x.as_ref().is_some_and(|l| !ok(l))) {
            continue;
        }
        let mut nd = (**d).clone();
        nd.inputs.wheels = kept.clone();
        if let Some(tests) = nd.env.get("REFINE_TESTS").cloned() {
            let lines: Vec<&str> = tests
                .lines()
                .filter(|l| {
                    kept.iter()
                        .any(|k| l.split('\t').next() == Some(k.to_string().as_str()))
                })
                .collect();
            nd.env.insert("REFINE_TESTS".into(), lines.join("\n"));
        }
        let deps = nd
            .inputs
            .all()
            .iter()
            .filter_map(|l| g.by_label.get(l).copied())
            .collect();
        let mut node = graph.nodes[i].with_derivation(std::sync::Arc::new(nd));
        node.deps = deps;
        graph.nodes[i] = node;
        roots.push(n.label().clone());
        out.push((n.label().clone(), dropped));
    }
    if roots.is_empty() {
        return None;
    }
    Some((graph.subgraph(&roots), out))
}

/// The report the test recipe prints between its markers.
fn report_in_log(log: &str) -> Option<serde_json::Value> {
    let start = log.rfind("refine-test-report-begin\n")? + "refine-test-report-begin\n".len();
    let end = start + log[start..].find("\nrefine-test-report-end")?;
    serde_json::from_str(&log[start..end]).ok()
}

fn checks_of(
    v: &serde_json::Value,
    owner: &std::collections::HashMap<String, Label>,
) -> Vec<Check> {
    let mut out = Vec::new();
    let text = |x: &serde_json::Value| x["output"].as_str().unwrap_or_default().to_string();
    let install = &v["install"];
    out.push(Check {
        label: None,
        what: "install the wheels together".into(),
        wheel: None,
        ok: install["ok"].as_bool().unwrap_or(false),
        output: if install["ok"].as_bool() == Some(true) {
            String::new()
        } else {
            text(install)
        },
    });
    if let Some(pc) = v["pip_check"].as_object() {
        let ok = pc.get("ok").and_then(|o| o.as_bool()).unwrap_or(false);
        out.push(Check {
            label: None,
            what: "pip check".into(),
            wheel: None,
            ok,
            output: if ok {
                String::new()
            } else {
                text(&v["pip_check"])
            },
        });
    }
    for w in v["wheels"].as_array().into_iter().flatten() {
        let wheel = w["wheel"].as_str().unwrap_or_default().to_string();
        let mods: Vec<&str> = w["modules"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str())
            .collect();
        let ok = w["ok"].as_bool().unwrap_or(false);
        out.push(Check {
            label: owner.get(&wheel).cloned(),
            what: if mods.is_empty() {
                "install (no modules to import)".into()
            } else {
                format!("import {}", mods.join(", "))
            },
            wheel: Some(wheel),
            ok,
            output: if ok { String::new() } else { text(w) },
        });
    }
    for t in v["tests"].as_array().into_iter().flatten() {
        let ok = t["ok"].as_bool().unwrap_or(false);
        out.push(Check {
            label: t["label"].as_str().and_then(|l| l.parse().ok()),
            what: t["command"].as_str().unwrap_or_default().to_string(),
            wheel: None,
            ok,
            output: if ok { String::new() } else { text(t) },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_become_their_tests_and_nothing_else_is_taken() {
        assert_eq!(
            test_labels(&["//sets:web".into()]).unwrap(),
            ["//tests:web"]
        );
        assert_eq!(
            test_labels(&["//tests:web".into()]).unwrap(),
            ["//tests:web"]
        );
        assert!(test_labels(&["//wheels:six".into()]).is_err());
        assert!(test_labels(&[]).is_err());
    }

    #[test]
    fn the_report_is_read_from_a_failed_log() {
        let log = "==> x\nrefine-test-report-begin\n{\"install\": {\"ok\": true, \"output\": \"\"}, \"pip_check\": {\"ok\": false, \"output\": \"a 1 requires b\"}, \"wheels\": [{\"wheel\": \"a-1-py3-none-any.whl\", \"modules\": [\"a\"], \"ok\": true, \"output\": \"\"}], \"tests\": []}\nrefine-test-report-end\n";
        let v = report_in_log(log).unwrap();
        let owner = [(
            "a-1-py3-none-any.whl".to_string(),
            "//sources:a".parse::<Label>().unwrap(),
        )]
        .into();
        let c = checks_of(&v, &owner);
        assert_eq!(c.len(), 3);
        assert!(c[0].ok && !c[1].ok && c[2].ok);
        assert_eq!(c[1].output, "a 1 requires b");
        assert_eq!(c[2].label.as_ref().unwrap().to_string(), "//sources:a");
        assert_eq!(c[2].what, "import a");
    }
}
