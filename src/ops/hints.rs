//! Hints: a failed build's log matched against the hint catalog, a table
//! of data kept with the rules (`[[hints]]` and `[headers]` in
//! `rules/hints.toml`, Debian's header → package list in
//! `rules/hints/missing-headers.tsv`), as the seed system's hint catalog
//! did. Each match becomes a suggestion with the exact rule edit; for a
//! wheel that `refine import` generated, `refine build --auto-apply`
//! records the edit as a fix of its import (`[[import.fixes]]`),
//! regenerates the import and builds again.

use super::Session;
use crate::eval::GraphNode;
use crate::import::{Fix, IMPORTED_DIR};
use crate::rules::{HintFix, HintRule, Kind, Label};
use std::collections::BTreeMap;

/// What the catalog says about one failure.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Suggestion {
    pub label: Label,
    /// What the log showed and what to do, in words.
    pub message: String,
    /// The rule edit, exactly.
    pub edit: Option<String>,
    /// For a generated wheel: the fix `--auto-apply` records, and the
    /// import it goes to.
    #[serde(skip)]
    pub fix: Option<(String, Fix)>,
}

/// The hint catalog of a workspace (its own entries first, then the base's).
pub struct Catalog {
    hints: Vec<(HintRule, regex::Regex)>,
    headers: BTreeMap<String, Label>,
    /// A program a pack installs (`[tools]`) → the pack.
    tools: BTreeMap<String, Label>,
    /// C header → the Debian package that has it, and its source package.
    debian: BTreeMap<String, (String, Option<String>)>,
}

/// A hint's `say` with its named groups filled in from a match; a group
/// its alternative did not take says nothing.
fn fill(text: &str, re: &regex::Regex, caps: &regex::Captures) -> String {
    let mut t = text.to_string();
    for name in re.capture_names().flatten() {
        let v = caps.name(name).map(|m| m.as_str()).unwrap_or_default();
        t = t.replace(&format!("{{{name}}}"), v);
    }
    t
}

/// The suggestion to give `wheel` the pack `pack`: said, as an edit of
/// its rule (where `origin` says it is), and as a fix of its import when
/// it has one (`--auto-apply`). `why` is the message, its backquotes
/// dropped for the import's record.
fn add_pack(
    label: &Label,
    wheel: &Label,
    origin: &str,
    import: Option<&String>,
    pack: &Label,
    why: String,
) -> Suggestion {
    Suggestion {
        label: label.clone(),
        edit: Some(format!(
            "add `packs = [\"{pack}\"]` to [{}.{}] ({origin})",
            wheel.kind.as_str(),
            wheel.name
        )),
        fix: import.map(|i| {
            (
                i.clone(),
                Fix {
                    target: wheel.to_string(),
                    packs: vec![pack.to_string()],
                    why: why.replace('`', ""),
                    ..Default::default()
                },
            )
        }),
        message: why,
    }
}

impl Catalog {
    pub fn load(s: &Session) -> Catalog {
        let ev = s.evaluated();
        let mut hints = Vec::new();
        let mut headers = BTreeMap::new();
        let mut tools = BTreeMap::new();
        for f in ev.ws.files(&ev.db) {
            let lowered = crate::eval::lower_file(&ev.db, *f);
            for h in &lowered.hints {
                if let Ok(re) = regex::Regex::new(&h.pattern.value) {
                    hints.push((h.clone(), re));
                }
            }
            for e in &lowered.headers {
                headers
                    .entry(e.header.clone())
                    .or_insert(e.pack.value.clone());
            }
            for e in &lowered.tools {
                tools
                    .entry(e.header.clone())
                    .or_insert(e.pack.value.clone());
            }
        }
        let mut debian = BTreeMap::new();
        if let Some(tsv) = s.sources.read_text("rules/hints/missing-headers.tsv") {
            for line in tsv.lines().skip(1) {
                let cols: Vec<&str> = line.split('\t').collect();
                if let (Some(h), Some(apt)) = (cols.first(), cols.get(2))
                    && *apt != "-"
                {
                    let src = cols
                        .get(5)
                        .filter(|s| **s != "-" && !s.is_empty())
                        .map(|s| s.to_string());
                    debian.insert(h.to_string(), (apt.to_string(), src));
                }
            }
        }
        Catalog {
            hints,
            headers,
            tools,
            debian,
        }
    }

    /// Suggestions for the failed node `n` from its log.
    pub fn suggest(&self, s: &Session, n: &GraphNode, log: &str) -> Vec<Suggestion> {
        // Long logs: the end is where builds fail.
        let tail = &log[log.len().saturating_sub(4 << 20)..];
        let wheel = wheel_of(n);
        let origin = s.origin(&wheel).unwrap_or_default();
        let import = generated_import(n.decl().file.as_ref());
        let mut out: Vec<Suggestion> = Vec::new();
        for (h, re) in &self.hints {
            let Some(caps) = tail.lines().rev().find_map(|l| re.captures(l)) else {
                continue;
            };
            let group = |name: &str| caps.name(name).map(|m| m.as_str().to_string());
            let say = |text: &str| fill(text, re, &caps);
            let mut sug = match h.fix {
                HintFix::Say => Suggestion {
                    label: n.label().clone(),
                    message: say(h.say.as_deref().unwrap_or("see the log")),
                    edit: None,
                    fix: None,
                },
                HintFix::Env => {
                    // Already set as the hint says: nothing more to offer.
                    if h.env
                        .iter()
                        .all(|(k, v)| n.derivation().env.get(k) == Some(v))
                    {
                        continue;
                    }
                    let pairs: Vec<String> = h
                        .env
                        .iter()
                        .map(|(k, v)| format!("{k} = {}", toml::Value::String(v.clone())))
                        .collect();
                    Suggestion {
                        label: n.label().clone(),
                        message: say(h
                            .say
                            .as_deref()
                            .unwrap_or("the build needs its environment set")),
                        edit: Some(format!(
                            "set `env = {{ {} }}` in [{}.{}] ({origin})",
                            pairs.join(", "),
                            wheel.kind.as_str(),
                            wheel.name
                        )),
                        fix: import.clone().map(|i| {
                            (
                                i,
                                Fix {
                                    target: wheel.to_string(),
                                    env: h.env.clone(),
                                    why: say(h.say.as_deref().unwrap_or("a hint")),
                                    ..Default::default()
                                },
                            )
                        }),
                    }
                }
                HintFix::Image => {
                    let (Some(image), Some(runtime)) = (&h.image, &h.runtime) else {
                        continue;
                    };
                    // Built there already and still missing it: nothing to offer.
                    if n.derivation().inputs.image.as_ref() == Some(&image.value) {
                        continue;
                    }
                    Suggestion {
                        label: n.label().clone(),
                        message: say(h
                            .say
                            .as_deref()
                            .unwrap_or("the build needs another builder image")),
                        edit: Some(format!(
                            "set `image = \"{}\"` and `runtime = \"{}\"` in [{}.{}] ({origin})",
                            image.value,
                            runtime.value,
                            wheel.kind.as_str(),
                            wheel.name
                        )),
                        fix: import.clone().map(|i| {
                            (
                                i,
                                Fix {
                                    target: wheel.to_string(),
                                    image: Some(image.value.to_string()),
                                    runtime: Some(runtime.value.to_string()),
                                    why: say(h.say.as_deref().unwrap_or("a hint")),
                                    ..Default::default()
                                },
                            )
                        }),
                    }
                }
                HintFix::Tool => {
                    let tool = ["tool", "tool2", "tool3"].into_iter().find_map(&group);
                    match tool.as_ref().and_then(|t| Some((t, self.tools.get(t)?))) {
                        // Had the pack and still did not find it: nothing to add.
                        Some((_, pack)) if n.derivation().inputs.packs.contains(pack) => continue,
                        Some((tool, pack)) => add_pack(
                            n.label(),
                            &wheel,
                            &origin,
                            import.as_ref(),
                            pack,
                            format!("the build ran `{tool}`, which {pack} installs"),
                        ),
                        None => Suggestion {
                            label: n.label().clone(),
                            message: say(h.say.as_deref().unwrap_or("see the log")),
                            edit: None,
                            fix: None,
                        },
                    }
                }
                HintFix::Header => {
                    let Some(header) = group("header") else {
                        continue;
                    };
                    match self.headers.get(&header) {
                        Some(pack) if n.derivation().inputs.packs.contains(pack) => continue,
                        Some(pack) => add_pack(
                            n.label(),
                            &wheel,
                            &origin,
                            import.as_ref(),
                            pack,
                            format!("the build did not find `{header}`: {pack} provides it"),
                        ),
                        None => match self.debian.get(&header) {
                            Some((pkg, src)) => {
                                let image = n
                                    .derivation()
                                    .inputs
                                    .image
                                    .as_ref()
                                    .map(|l| l.to_string())
                                    .unwrap_or_default();
                                let (message, edit) = match src {
                                    Some(src) => {
                                        let name = super::pack::pack_name_for(src);
                                        (
                                            format!(
                                                "the build did not find `{header}`: Debian's {pkg} (source package {src}) has it, and no pack of the workspace's does"
                                            ),
                                            format!(
                                                "make a pack of it: `refine pack new {name} --debian {src} --header {header}`, `refine build //packs:{name}`, then add `packs = [\"//packs:{name}\"]` to [{}.{}] ({origin}); or add \"{pkg}\" to `packages` of the builder image ({image}), which the wheel's repair then cannot graft",
                                                wheel.kind.as_str(),
                                                wheel.name
                                            ),
                                        )
                                    }
                                    None => (
                                        format!(
                                            "the build did not find `{header}`: Debian's {pkg} has it, and no pack of the workspace's does"
                                        ),
                                        format!(
                                            "add \"{pkg}\" to `packages` of the builder image ({image}), or write a pack for it"
                                        ),
                                    ),
                                };
                                Suggestion {
                                    label: n.label().clone(),
                                    message,
                                    edit: Some(edit),
                                    fix: None,
                                }
                            }
                            None => Suggestion {
                                label: n.label().clone(),
                                message: format!(
                                    "the build did not find `{header}`, and the hint catalog does not know where it comes from"
                                ),
                                edit: Some(format!(
                                    "find the library that has it, then `packs = [...]` in [{}.{}] ({origin}) or a pack of your own",
                                    wheel.kind.as_str(),
                                    wheel.name
                                )),
                                fix: None,
                            },
                        },
                    }
                }
                HintFix::BuildRequirement => {
                    let Some(req) = group("requirement") else {
                        continue;
                    };
                    let Ok(parsed) = req.parse::<pep508_rs::Requirement>() else {
                        continue;
                    };
                    Suggestion {
                        label: n.label().clone(),
                        message: match &h.say {
                            Some(t) => say(t),
                            None => format!("the build asked for {req}"),
                        },
                        edit: Some(match &import {
                            Some(i) => format!(
                                "in {i}, add a fix `[[import.fixes]] target = \"{wheel}\" build_requires = [\"{parsed}\"]` and run `refine add --name {}` (or `refine build --auto-apply`)",
                                import_name(i)
                            ),
                            None => format!(
                                "pin a wheel of {parsed} ([sources.NAME] with dist = \"wheel\") and add it to `build_requires` of [{}.{}] ({origin})",
                                wheel.kind.as_str(),
                                wheel.name
                            ),
                        }),
                        fix: import.clone().map(|i| {
                            (
                                i,
                                Fix {
                                    target: wheel.to_string(),
                                    build_requires: vec![parsed.to_string()],
                                    why: format!("the build asked for {parsed}"),
                                    ..Default::default()
                                },
                            )
                        }),
                    }
                }
            };
            if out.iter().any(|o| o.message == sug.message) {
                continue;
            }
            if sug.fix.is_some() && sug.edit.is_some() {
                let e = sug.edit.take().unwrap_or_default();
                sug.edit = Some(format!("{e}; `refine build --auto-apply` does it"));
            }
            out.push(sug);
        }
        out
    }
}

/// The wheel rule a failure is about: a repair's wheel, or the node.
fn wheel_of(n: &GraphNode) -> Label {
    match (n.label().kind, &n.derivation().inputs.wheel) {
        (Kind::Repair, Some(w)) => w.clone(),
        _ => n.label().clone(),
    }
}

/// The import file a target was generated into, if it was.
fn generated_import(decl_file: &str) -> Option<String> {
    let rest = decl_file.strip_prefix(IMPORTED_DIR)?.strip_prefix('/')?;
    rest.ends_with(".toml").then(|| decl_file.to_string())
}

/// `rules/imported/web.toml` → `web`.
pub fn import_name(file: &str) -> String {
    file.rsplit('/')
        .next()
        .and_then(|f| f.strip_suffix(".toml"))
        .unwrap_or(file)
        .to_string()
}

/// The suggestions for every failure of a run.
pub fn for_report(s: &Session, report: &super::build::BuildReport) -> Vec<Suggestion> {
    let failed: Vec<(usize, &crate::sched::NodeResult)> = report
        .results
        .iter()
        .enumerate()
        .filter(|(i, _)| report.graph.nodes[*i].label().kind != Kind::Test)
        .filter(|(_, r)| {
            r.verdict == crate::sched::Verdict::Failed
                && r.failure
                    .as_ref()
                    .is_some_and(|f| f.class == crate::error::ErrorClass::Build)
        })
        .collect();
    if failed.is_empty() {
        return Vec::new();
    }
    let cat = Catalog::load(s);
    let mut out = Vec::new();
    for (i, r) in failed {
        let Some(log) = r.log.as_ref().and_then(|p| std::fs::read(p).ok()) else {
            continue;
        };
        let log = String::from_utf8_lossy(&log);
        out.extend(cat.suggest(s, &report.graph.nodes[i], &log));
    }
    out
}

/// What `--auto-apply` remembers from round to round: the fixes it
/// applied, by target, and the targets it gave up on. A fix the catalog
/// suggests again after it was applied means the rebuild failed the same
/// way (same hint, same missing thing): the fix did not help, and
/// applying it again would change nothing, so that target stops there.
/// Other targets, with other causes, go on.
#[derive(Debug, Default)]
pub struct Rounds {
    applied: BTreeMap<String, Vec<(u32, Fix)>>,
    given_up: std::collections::BTreeSet<String>,
}

/// A fix that was applied and did not help.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Futile {
    pub target: String,
    /// The round it was applied in.
    pub round: u32,
    pub fix: Fix,
    /// What the rebuild's log showed, in the catalog's words.
    pub evidence: String,
}

impl std::fmt::Display for Futile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: the fix did not help: {} (applied in round {}), and the build failed the same way: {}",
            self.target,
            describe_fix(&self.fix),
            self.round,
            self.evidence
        )
    }
}

/// A fix as the edit it makes.
pub fn describe_fix(fix: &Fix) -> String {
    let mut parts = Vec::new();
    if !fix.packs.is_empty() {
        parts.push(format!("packs += {}", fix.packs.join(", ")));
    }
    if !fix.build_requires.is_empty() {
        parts.push(format!(
            "build_requires += {}",
            fix.build_requires.join(", ")
        ));
    }
    for (k, v) in &fix.env {
        parts.push(format!("env {k}={v}"));
    }
    if let Some(image) = &fix.image {
        parts.push(format!("image = {image}"));
    }
    if let Some(runtime) = &fix.runtime {
        parts.push(format!("runtime = {runtime}"));
    }
    parts.join("; ")
}

/// Two fixes make the same edit (why they were suggested aside).
fn same_edit(a: &Fix, b: &Fix) -> bool {
    a.target == b.target
        && a.packs == b.packs
        && a.build_requires == b.build_requires
        && a.env == b.env
        && a.image == b.image
        && a.runtime == b.runtime
}

impl Rounds {
    /// Sort this round's suggestions: the fixes to apply in `round`, and
    /// those that were applied before and did not help (their targets are
    /// given up: none of their fixes is applied any more).
    pub fn next(
        &mut self,
        round: u32,
        suggestions: &[Suggestion],
    ) -> (Vec<Suggestion>, Vec<Futile>) {
        let mut futile = Vec::new();
        for s in suggestions {
            let Some((_, fix)) = &s.fix else { continue };
            let before = self
                .applied
                .get(&fix.target)
                .and_then(|v| v.iter().find(|(_, f)| same_edit(f, fix)));
            if let Some((r, f)) = before {
                futile.push(Futile {
                    target: fix.target.clone(),
                    round: *r,
                    fix: f.clone(),
                    evidence: s.message.clone(),
                });
            }
        }
        for f in &futile {
            self.given_up.insert(f.target.clone());
        }
        let mut apply = Vec::new();
        for s in suggestions {
            let Some((_, fix)) = &s.fix else { continue };
            if self.given_up.contains(&fix.target) {
                continue;
            }
            let list = self.applied.entry(fix.target.clone()).or_default();
            if !list.iter().any(|(_, f)| same_edit(f, fix)) {
                list.push((round, fix.clone()));
                apply.push(s.clone());
            }
        }
        (apply, futile)
    }
}

/// Write the fixes of round `round` in the store's history, as suggested
/// by the failures of run `run`; their ids and targets, to settle after
/// the rebuild. The history is a record: a store without one records
/// nothing, and the build goes on.
pub fn record_fixes(
    store: &std::path::Path,
    run: Option<i64>,
    round: u32,
    applied: &[Suggestion],
) -> Vec<(i64, String)> {
    let (Some(run), Ok((h, _))) = (run, crate::history::History::open(store)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in applied {
        let Some((import, fix)) = &s.fix else {
            continue;
        };
        let edit = describe_fix(fix);
        let rec = crate::history::NewFix {
            run,
            label: &fix.target,
            round,
            import,
            edit: &edit,
            why: &fix.why,
        };
        if let Ok(id) = h.record_fix(&rec) {
            out.push((id, fix.target.clone()));
        }
    }
    out
}

/// What the rebuild made of the fixes of the round before: `helped` (its
/// target built), `did not help` (the same failure again), `failed
/// another way`, or `not rebuilt` (a dependency failed first).
pub fn settle_fixes(
    store: &std::path::Path,
    pending: &[(i64, String)],
    report: &super::build::BuildReport,
    futile: &[Futile],
) {
    if pending.is_empty() {
        return;
    }
    let Ok((h, _)) = crate::history::History::open(store) else {
        return;
    };
    for (id, target) in pending {
        let result = report
            .results
            .iter()
            .find(|r| r.label.to_string() == *target);
        let outcome = match result {
            Some(r) if r.verdict.is_ok() => "helped",
            _ if futile.iter().any(|f| f.target == *target) => "did not help",
            Some(r) if r.verdict == crate::sched::Verdict::Failed => "failed another way",
            _ => "not rebuilt",
        };
        let _ = h.settle_fix(*id, outcome, report.run);
    }
}

/// Record the fixes of `suggestions` in their imports and regenerate them;
/// what was applied, in words.
pub fn apply(
    opts: &super::GlobalOpts,
    suggestions: &[Suggestion],
) -> crate::error::Result<Vec<String>> {
    let mut by_import: BTreeMap<String, Vec<Fix>> = BTreeMap::new();
    let mut said = Vec::new();
    for s in suggestions {
        if let Some((file, fix)) = &s.fix {
            by_import.entry(file.clone()).or_default().push(fix.clone());
            said.push(format!("{}: {} (recorded in {file})", fix.target, fix.why));
        }
    }
    for (file, fixes) in by_import {
        let args = super::import::ImportArgs {
            name: Some(import_name(&file)),
            add: true,
            extra_fixes: fixes,
            ..Default::default()
        };
        super::import::import(opts, &args)?;
    }
    Ok(said)
}

#[cfg(test)]
mod rounds_tests {
    use super::*;

    fn sugg(target: &str, message: &str, reqs: &[&str]) -> Suggestion {
        Suggestion {
            label: target.parse().unwrap(),
            message: message.into(),
            edit: None,
            fix: Some((
                "rules/imported/r.toml".into(),
                Fix {
                    target: target.into(),
                    build_requires: reqs.iter().map(|r| r.to_string()).collect(),
                    why: message.into(),
                    ..Default::default()
                },
            )),
        }
    }

    /// The shipped hints whose `match` matches `line`.
    fn matching<'a>(doc: &'a toml::Table, line: &str) -> Vec<&'a toml::Value> {
        doc["hints"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| {
                regex::Regex::new(h["match"].as_str().unwrap())
                    .unwrap()
                    .is_match(line)
            })
            .collect()
    }

    /// The repository's rules/hints.toml, as a TOML table.
    fn shipped_hints() -> toml::Table {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/hints.toml"),
        )
        .unwrap()
        .parse()
        .unwrap()
    }

    #[test]
    fn the_catalog_sets_cmakes_policy_floor_when_cmake_4_refuses_an_old_minimum() {
        let doc = shipped_hints();
        // uamqp 1.6.11's bundled azure-macro-utils-c, under CMake 4.
        let line = "  Compatibility with CMake < 3.5 has been removed from CMake.";
        let envs = matching(&doc, line);
        assert_eq!(envs.len(), 1, "{envs:?}");
        assert_eq!(envs[0]["fix"].as_str(), Some("env"));
        assert_eq!(
            envs[0]["env"]["CMAKE_POLICY_VERSION_MINIMUM"].as_str(),
            Some("3.5")
        );
        // CMake 3's deprecation warning about 3.10 is not it.
        let warning = "  Compatibility with CMake < 3.10 will be removed from a future version of";
        let re = regex::Regex::new(envs[0]["match"].as_str().unwrap()).unwrap();
        assert!(!re.is_match(warning));
    }

    /// uamqp's generated C under the floor's Clang: the shipped catalog
    /// turns the error back into GCC's warning through CFLAGS.
    #[test]
    fn the_catalog_softens_clangs_incompatible_pointer_types_error() {
        let doc = shipped_hints();
        let line = "uamqp/c_uamqp.c:28831:73: error: incompatible pointer types passing 'int *' to parameter of type 'bool *' [-Wincompatible-pointer-types]";
        let hits = matching(&doc, line);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0]["fix"].as_str(), Some("env"));
        assert_eq!(
            hits[0]["env"]["CFLAGS"].as_str(),
            Some("-Wno-error=incompatible-pointer-types")
        );
        // The warning GCC gives is not a failure to fix.
        let warning = "c_uamqp.c:1:1: warning: incompatible pointer types passing 'int *' to parameter of type 'bool *' [-Wincompatible-pointer-types]";
        let re = regex::Regex::new(hits[0]["match"].as_str().unwrap()).unwrap();
        assert!(!re.is_match(warning));
    }

    /// scipy's meson (and a build script's shell) without gfortran: the
    /// shipped catalog moves the build to the image that has it.
    #[test]
    fn the_catalog_moves_a_fortran_build_to_the_scientific_image() {
        let doc = shipped_hints();
        for line in [
            "../meson.build:88:0: ERROR: Unknown compiler(s): [['gfortran'], ['flang-new'], ['flang'], ['nvfortran'], ['pgfortran'], ['ifort'], ['ifx'], ['g95']]",
            "/bin/sh: 1: gfortran: not found",
        ] {
            let h = doc["hints"]
                .as_array()
                .unwrap()
                .iter()
                .find(|h| {
                    regex::Regex::new(h["match"].as_str().unwrap())
                        .unwrap()
                        .is_match(line)
                })
                .unwrap_or_else(|| panic!("no hint for {line}"));
            assert_eq!(h["fix"].as_str(), Some("image"), "{h}");
            assert_eq!(h["image"].as_str(), Some("//images:bookworm-sci"));
            assert_eq!(h["runtime"].as_str(), Some("//runtimes:system-sci"));
        }
    }

    /// Rust too new for Debian 12's 1.85 (cbor2's let chains, a crate's
    /// rust-version): the shipped hints move the build to the image with
    /// Rust 1.96, which the shipped rules define.
    #[test]
    fn the_hints_move_a_build_whose_rust_is_too_new_to_the_newer_rust_image() {
        let doc = shipped_hints();
        for line in [
            "error[E0658]: `let` expressions in this position are unstable",
            "error: package `pyo3 v0.99.0` cannot be built because it requires rustc 1.88 or newer, while the currently active rustc version is 1.85.0",
            // orjson 3.13's, as cargo 1.85 says it.
            "error: rustc 1.85.0 is not supported by the following packages:",
        ] {
            let hits = matching(&doc, line);
            assert_eq!(hits.len(), 1, "{line}");
            assert_eq!(hits[0]["fix"].as_str(), Some("image"));
            assert_eq!(
                hits[0]["image"].as_str(),
                Some("//images:bookworm-rust-1.96")
            );
            assert_eq!(
                hits[0]["runtime"].as_str(),
                Some("//runtimes:system-rust-1.96")
            );
        }
        let images = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("runtimes/images.toml"),
        )
        .unwrap();
        let images: toml::Table = toml::from_str(&images).unwrap();
        assert!(images["images"].get("bookworm-rust-1.96").is_some());
        assert!(images["runtimes"].get("system-rust-1.96").is_some());
    }

    /// The shipped catalog's `say` hints for what real builds print: the
    /// first hint (from the end of the log, as `suggest` reads it) that
    /// matches each line, filled in.
    #[test]
    fn the_catalog_names_missing_config_tools_and_pkg_config_packages() {
        let doc = shipped_hints();
        let hints: Vec<(regex::Regex, String)> = doc["hints"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| matches!(h["fix"].as_str(), Some("say" | "tool")))
            .map(|h| {
                (
                    regex::Regex::new(h["match"].as_str().unwrap()).unwrap(),
                    h["say"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let said = |line: &str| -> String {
            hints
                .iter()
                .find_map(|(re, say)| re.captures(line).map(|c| fill(say, re, &c)))
                .unwrap_or_else(|| panic!("no hint for {line:?}"))
        };
        // gssapi, krb5 (through the shell), a direct call, sh's own words.
        for (line, tool) in [
            (
                "subprocess.CalledProcessError: Command 'krb5-config --libs gssapi' returned non-zero exit status 127.",
                "krb5-config",
            ),
            (
                "subprocess.CalledProcessError: Command '('krb5-config --cflags krb5',)' returned non-zero exit status 127.)",
                "krb5-config",
            ),
            (
                "FileNotFoundError: [Errno 2] No such file or directory: 'mysql_config'",
                "mysql_config",
            ),
            ("/bin/sh: 1: xslt-config: not found", "xslt-config"),
        ] {
            let s = said(line);
            assert!(
                s.starts_with(&format!("the build ran `{tool}`, the config tool")),
                "{line} -> {s}"
            );
            assert!(!s.contains('{'), "an unfilled group: {s}");
        }
        // An image package from a suite without the target's build.
        let s = said("E: Release 'bookworm-security' for 'rustc-web' was not found");
        assert!(
            s.starts_with(
                "the image asks for rustc-web from bookworm-security, which has no build of it"
            ),
            "{s}"
        );
        // mysqlclient's and av's pkg-config.
        for (line, pkg) in [
            (
                "Command 'pkg-config --exists libmariadb' returned non-zero exit status 1.",
                "libmariadb",
            ),
            (
                "Package 'libavdevice', required by 'virtual:world', not found",
                "libavdevice",
            ),
            (
                "Package libpq was not found in the pkg-config search path.",
                "libpq",
            ),
        ] {
            let s = said(line);
            assert!(
                s.starts_with(&format!("pkg-config found no `{pkg}`")),
                "{line} -> {s}"
            );
        }
    }

    #[test]
    fn a_fix_that_did_not_help_stops_its_target_and_only_its_target() {
        let mut r = Rounds::default();
        let a1 = sugg("//wheels:a", "the build imported six", &["six"]);
        let b1 = sugg("//wheels:b", "the build did not find ffi.h", &[]);
        let (apply, futile) = r.next(1, &[a1.clone(), b1.clone()]);
        assert_eq!(apply, [a1.clone(), b1.clone()]);
        assert!(futile.is_empty());
        // Round 2: a fails the same way (the same fix suggested again); b
        // has moved on to another cause.
        let b2 = sugg("//wheels:b", "the build imported numpy", &["numpy"]);
        let (apply, futile) = r.next(2, &[a1.clone(), b2.clone()]);
        assert_eq!(apply, std::slice::from_ref(&b2));
        assert_eq!(futile.len(), 1);
        assert_eq!(futile[0].target, "//wheels:a");
        assert_eq!(futile[0].round, 1);
        assert_eq!(
            futile[0].to_string(),
            "//wheels:a: the fix did not help: build_requires += six (applied in round 1), and the build failed the same way: the build imported six"
        );
        // a is given up: a new cause of it is not applied either.
        let a3 = sugg("//wheels:a", "the build imported cython", &["cython"]);
        let (apply, futile) = r.next(3, &[a3]);
        assert!(apply.is_empty() && futile.is_empty());
    }
}
