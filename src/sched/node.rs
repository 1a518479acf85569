//! One node of a run: its key, the cache, and (if needed) its build.

use super::sandbox::{self, makes_wheels};
use super::{Event, Failure, RunConfig};
use crate::error::ErrorClass;
use crate::eval::{Action, Derivation, Graph};
use crate::exec::{ImageRequest, RunStatus};
use crate::key::{Digest, Key, Preimage};
use crate::rules::{Kind, Label};
use crate::store::{ActionResult, EntryKind, LabelRecord, Lookup, Tree, TreeEntry, now_secs};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    HitLocal,
    HitRemote,
    Built,
    Failed,
    Blocked,
    Skipped,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::HitLocal => "hit:local",
            Verdict::HitRemote => "hit:remote",
            Verdict::Built => "built",
            Verdict::Failed => "failed",
            Verdict::Blocked => "blocked",
            Verdict::Skipped => "skipped",
        }
    }

    pub fn is_ok(self) -> bool {
        matches!(
            self,
            Verdict::HitLocal | Verdict::HitRemote | Verdict::Built
        )
    }
}

/// Pushing a result to the remote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushStatus {
    Pushed,
    Failed(String),
}

#[derive(Clone, Debug)]
pub struct NodeResult {
    pub label: Label,
    pub verdict: Verdict,
    pub key: Option<Key>,
    pub preimage: Option<Preimage>,
    /// The output tree's digest.
    pub output: Option<Digest>,
    pub tree: Option<Tree>,
    pub duration: Duration,
    pub log: Option<PathBuf>,
    pub failure: Option<Failure>,
    pub push: Option<PushStatus>,
    /// Things worth saying that did not fail the node (a corrupt cache
    /// entry, an unreachable remote).
    pub notes: Vec<String>,
}

impl NodeResult {
    /// A result with only a label, a verdict and (maybe) a key; the rest is
    /// filled in as the node runs.
    fn new(label: &Label, verdict: Verdict, key: Option<Key>) -> NodeResult {
        NodeResult {
            label: label.clone(),
            verdict,
            key,
            preimage: None,
            output: None,
            tree: None,
            duration: Duration::ZERO,
            log: None,
            failure: None,
            push: None,
            notes: Vec::new(),
        }
    }

    pub fn not_run(label: &Label, verdict: Verdict, why: &str) -> NodeResult {
        NodeResult {
            failure: Some(Failure {
                class: ErrorClass::Build,
                message: why.to_string(),
                hint: String::new(),
                log_tail: None,
            }),
            ..NodeResult::new(label, verdict, None)
        }
    }
}

/// The digest a dependency contributes to its dependents' keys: the pin of
/// a fixed-output node, the output digest of anything else.
pub fn dep_digest(d: &Derivation, r: &NodeResult) -> Option<Digest> {
    d.fixed_output().or_else(|| r.output.clone())
}

fn failure(class: ErrorClass, message: impl Into<String>, hint: impl Into<String>) -> Failure {
    Failure {
        class,
        message: message.into(),
        hint: hint.into(),
        log_tail: None,
    }
}

/// The no-op path: a hit answered by the store's label index alone, or
/// `None` (then [`process`] does the full lookup, reporting what it finds).
pub fn indexed_hit(
    graph: &Graph,
    i: usize,
    deps: &[&NodeResult],
    cfg: &RunConfig<'_>,
) -> Option<NodeResult> {
    let start = Instant::now();
    let d = &graph.nodes[i].derivation;
    let digests = dep_digests(graph, deps);
    let key = d.preimage(&|l| digests.get(l).cloned()).key();
    let hit = cfg.store.indexed_hit(
        d.platform.arch.as_str(),
        &d.label.to_string(),
        &key,
        must_verify(graph, i),
    )?;
    let res = NodeResult::new(&d.label, Verdict::HitLocal, Some(key));
    Some(finish_hit(cfg, d, hit, res, start, Verdict::HitLocal))
}

/// Outputs read in this run are checked at lookup (so damage is a miss):
/// the wheels that will be delivered. Others are checked when read.
fn must_verify(graph: &Graph, i: usize) -> bool {
    let n = &graph.nodes[i];
    n.requested && makes_wheels(n.derivation.label.kind)
}

fn dep_digests<'g>(graph: &'g Graph, deps: &[&NodeResult]) -> HashMap<&'g Label, Digest> {
    let mut digests = HashMap::with_capacity(deps.len());
    for r in deps {
        if let Some(node) = graph.get(&r.label)
            && let Some(dg) = dep_digest(&node.derivation, r)
        {
            digests.insert(node.label(), dg);
        }
    }
    digests
}

pub fn process(graph: &Graph, i: usize, deps: &[&NodeResult], cfg: &RunConfig<'_>) -> NodeResult {
    let start = Instant::now();
    let d = &graph.nodes[i].derivation;
    let digests = dep_digests(graph, deps);
    let pre = d.preimage(&|l| digests.get(l).cloned());
    let key = pre.key();
    // The preimage is kept only for what is built (hits do not need it).
    let mut res = NodeResult::new(&d.label, Verdict::Failed, Some(key.clone()));
    let arch = d.platform.arch.as_str();
    let forced = cfg.force.contains(&i);
    let note = |res: &mut NodeResult, msg: String| {
        cfg.sink.event(&Event::Warning {
            label: Some(&d.label),
            message: msg.clone(),
        });
        res.notes.push(msg);
    };

    // A remote fault is said once per node: a failed push after a failed
    // pull shows in the verdict line only.
    let mut remote_noted = false;
    if !forced {
        if let Some(hit) = local_hit(cfg, d, &key, &mut res, &note) {
            return finish_hit(cfg, d, hit, res, start, Verdict::HitLocal);
        }
        if let Some(remote) = cfg.remote {
            match remote.pull(&d.label, &key, cfg.store) {
                Ok(Some((result, tree))) => {
                    let _ = cfg.store.put_preimage(&key, &pre);
                    return finish_hit(
                        cfg,
                        d,
                        (result.output, tree),
                        res,
                        start,
                        Verdict::HitRemote,
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    note(&mut res, format!("remote {}: {e}", remote.describe()));
                    remote_noted = true;
                }
            }
        }
    }

    // Build, holding the key's lock so a concurrent refine waits for us.
    let _lock = match cfg.store.lock(&key) {
        Ok(l) => l,
        Err(e) => {
            res.failure = Some(e.into());
            res.duration = start.elapsed();
            return res;
        }
    };
    if !forced && let Some(hit) = local_hit(cfg, d, &key, &mut res, &note) {
        return finish_hit(cfg, d, hit, res, start, Verdict::HitLocal);
    }
    let log_path = cfg.store.new_log_path(arch, &d.label.path(), &key);
    res.log = Some(log_path.clone());
    let built = (|| -> Result<Tree, Failure> {
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut log = File::options()
            .create(true)
            .append(true)
            .read(true)
            .open(&log_path)?;
        writeln!(
            log,
            "refine {}: building {} for {arch}",
            env!("CARGO_PKG_VERSION"),
            d.label
        )?;
        writeln!(log, "key {key}")?;
        let r = build(graph, i, deps, cfg, &key, &mut log);
        if let Err(f) = &r {
            let _ = writeln!(log, "refine: {} failed: {}", d.label, f.message);
        }
        match r {
            Err(mut f) => {
                if f.class == ErrorClass::Build && f.log_tail.is_none() {
                    f.log_tail = Some(crate::exec::podman::tail(&mut log, 20));
                }
                Err(f)
            }
            ok => ok,
        }
    })();
    res.duration = start.elapsed();
    match built {
        Err(f) => {
            res.failure = Some(f);
            if !forced {
                record_label(cfg, d, &res);
            }
            res
        }
        Ok(tree) => {
            let log_digest = cfg.store.put_file(&log_path).ok().map(|(dg, _)| dg);
            let result = ActionResult {
                key: key.0.clone(),
                label: d.label.to_string(),
                output: tree.digest(),
                log: log_digest,
                duration_ms: res.duration.as_millis() as u64,
                created: now_secs(),
                refine_version: env!("CARGO_PKG_VERSION").to_string(),
                arch: arch.to_string(),
            };
            res.verdict = Verdict::Built;
            res.preimage = Some(pre.clone());
            res.output = Some(tree.digest());
            res.tree = Some(tree.clone());
            if !forced {
                if let Err(e) = cfg.store.put_action(&key, &result, &pre) {
                    note(
                        &mut res,
                        format!("could not record the result in the action cache: {e}"),
                    );
                }
                record_label(cfg, d, &res);
                if cfg.push
                    && let Some(remote) = cfg.remote
                {
                    res.push = Some(
                        match remote.push(&d.label, &key, &result, &tree, &pre, cfg.store) {
                            Ok(()) => PushStatus::Pushed,
                            Err(e) => {
                                if !remote_noted {
                                    note(
                                        &mut res,
                                        format!("push to {} failed: {e}", remote.describe()),
                                    );
                                }
                                PushStatus::Failed(e.0)
                            }
                        },
                    );
                }
            }
            res
        }
    }
}

fn local_hit(
    cfg: &RunConfig<'_>,
    d: &Derivation,
    key: &Key,
    res: &mut NodeResult,
    note: &dyn Fn(&mut NodeResult, String),
) -> Option<(Digest, Tree)> {
    // The label index answers most lookups without opening a file.
    let arch = d.platform.arch.as_str();
    if let Some(hit) = cfg.store.indexed_hit(arch, &d.label.to_string(), key, true) {
        return Some(hit);
    }
    match cfg.store.lookup(key) {
        // Check the bytes too (cheap for blobs checked before: the store
        // remembers their inode, size and mtime).
        Lookup::Hit(r, t) => {
            let checked = t
                .files()
                .try_for_each(|(_, dg, _)| cfg.store.verify_blob(dg).map(|_| ()));
            match checked {
                Ok(()) => Some((r.output, t)),
                Err(e) => {
                    cfg.store.remove_action(key);
                    note(
                        res,
                        format!("{}: corrupt cache entry treated as a miss: {e}", d.label),
                    );
                    None
                }
            }
        }
        Lookup::Miss => None,
        Lookup::Corrupt(why) => {
            note(
                res,
                format!("{}: corrupt cache entry treated as a miss: {why}", d.label),
            );
            None
        }
    }
}

fn finish_hit(
    cfg: &RunConfig<'_>,
    d: &Derivation,
    (output, tree): (Digest, Tree),
    mut res: NodeResult,
    start: Instant,
    verdict: Verdict,
) -> NodeResult {
    res.verdict = verdict;
    res.output = Some(output);
    res.tree = Some(tree);
    res.duration = start.elapsed();
    // Only write when something changed: a no-op run writes nothing.
    let arch = d.platform.arch.as_str();
    let (log, same) = cfg
        .store
        .label_check(arch, &d.label.to_string(), |p| {
            let same = res.key.as_ref().is_some_and(|k| p.key == k.0)
                && p.verdict == "hit"
                && p.output == res.output;
            (p.log.clone(), same)
        })
        .unwrap_or((None, false));
    res.log = log;
    if !same {
        record_label(cfg, d, &res);
    }
    res
}

fn record_label(cfg: &RunConfig<'_>, d: &Derivation, res: &NodeResult) {
    let verdict = match res.verdict {
        Verdict::HitLocal | Verdict::HitRemote => "hit",
        v => v.as_str(),
    };
    let arch = d.platform.arch.as_str();
    let prev = cfg.store.label_record(arch, &d.label.to_string());
    let rec = LabelRecord {
        label: d.label.to_string(),
        key: res.key.as_ref().map(|k| k.0.clone()).unwrap_or_default(),
        verdict: verdict.to_string(),
        output: res.output.clone(),
        log: res
            .log
            .clone()
            .or_else(|| prev.as_ref().and_then(|p| p.log.clone())),
        time: now_secs(),
        duration_ms: if res.verdict == Verdict::Built {
            Some(res.duration.as_millis() as u64)
        } else {
            prev.and_then(|p| p.duration_ms)
        },
        tree: res.tree.as_ref().map(Tree::encode),
    };
    cfg.store.set_label_record(arch, &rec);
}

/// Do the work of node `i` and store its output tree.
fn build(
    graph: &Graph,
    i: usize,
    deps: &[&NodeResult],
    cfg: &RunConfig<'_>,
    key: &Key,
    log: &mut File,
) -> Result<Tree, Failure> {
    let d = &graph.nodes[i].derivation;
    match &d.action {
        Action::Fetch { fetch, sha256 } => {
            let pin = Digest::parse(sha256)
                .map_err(|e| failure(ErrorClass::User, e.to_string(), "fix the pin"))?;
            let f = crate::fetch::fetch(
                fetch,
                &pin,
                &d.label.to_string(),
                cfg.ws_root,
                cfg.store,
                log,
            )
            .map_err(|e| {
                let class = if e.is_user_error() {
                    ErrorClass::User
                } else {
                    ErrorClass::Environment
                };
                failure(class, format!("{}: {e}", d.label), e.hint())
            })?;
            let size = cfg.store.verify_blob(&f.digest)?;
            single_file_tree(cfg, &f.name, &f.digest, size)
        }
        Action::OciImage { reference, .. } => {
            cfg.exec.preflight(&crate::exec::Needs {
                containers: true,
                ..Default::default()
            })?;
            cfg.exec.pull_image(reference, d.platform.arch)?;
            let tmp = cfg.store.tmp_dir()?;
            std::fs::write(tmp.path().join("reference"), format!("{reference}\n"))?;
            Ok(cfg.store.put_tree(tmp.path())?)
        }
        Action::Mmdebstrap {
            suite,
            variant,
            components,
            packages,
        } => {
            cfg.exec.preflight(&crate::exec::Needs {
                mmdebstrap: true,
                emulate: d.platform.emulated(),
                ..Default::default()
            })?;
            let req = ImageRequest {
                label: d.label.to_string(),
                suite: suite.clone(),
                variant: variant.clone(),
                components: components.clone(),
                packages: packages.clone(),
                arch: d.platform.arch,
                source_date_epoch: d.source_date_epoch,
                timeout: d.timeout,
            };
            let tmp = cfg.store.tmp_dir()?;
            let tar = tmp.path().join("rootfs.tar");
            let status = cfg.exec.build_image(&req, &tar, log)?;
            check_status(status, d)?;
            let (digest, size) = cfg.store.put_file(&tar)?;
            single_file_tree(cfg, "rootfs.tar", &digest, size)
        }
        Action::SystemRuntime { .. } | Action::Recipe { .. } => {
            cfg.exec.preflight(&crate::exec::Needs {
                containers: true,
                emulate: d.platform.emulated(),
                ..Default::default()
            })?;
            let scratch = cfg.store.tmp_dir()?;
            let spec = sandbox::prepare(graph, i, deps, cfg, scratch.path(), key.short())?;
            writeln!(log, "podman {}", shell_words(&spec.podman_argv()))?;
            writeln!(log, "----")?;
            log.flush()?;
            let status = cfg.exec.run(&spec, log)?;
            writeln!(log, "----")?;
            check_status(status, d)?;
            collect_outputs(cfg, d, &spec.out, log)
        }
    }
}

fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=/.:,+@".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn check_status(status: RunStatus, d: &Derivation) -> Result<(), Failure> {
    match status {
        RunStatus::Success => Ok(()),
        RunStatus::Failed(code) => Err(failure(
            ErrorClass::Build,
            format!("{} failed (exit status {code})", d.label),
            "read the log (refine log LABEL); fix the recipe or the rule, then build again",
        )),
        RunStatus::TimedOut(t) => Err(failure(
            ErrorClass::Build,
            format!("{} timed out after {}s", d.label, t.as_secs()),
            "raise `timeout` in the rule or in [sandbox] of WORKSPACE.toml",
        )),
    }
}

fn single_file_tree(
    cfg: &RunConfig<'_>,
    name: &str,
    digest: &Digest,
    size: u64,
) -> Result<Tree, Failure> {
    let tree = Tree::new(vec![TreeEntry {
        path: name.to_string(),
        kind: EntryKind::File {
            executable: false,
            size,
            digest: digest.clone(),
        },
    }])
    .map_err(|e| failure(ErrorClass::User, e.to_string(), "rename the file"))?;
    cfg.store.put_bytes(tree.encode().as_bytes())?;
    Ok(tree)
}

/// Check and normalize what a recipe wrote, then store it.
fn collect_outputs(
    cfg: &RunConfig<'_>,
    d: &Derivation,
    out: &Path,
    log: &mut File,
) -> Result<Tree, Failure> {
    if makes_wheels(d.label.kind) {
        let mut wheels = Vec::new();
        for e in std::fs::read_dir(out)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".whl") && e.file_type().is_ok_and(|t| t.is_file()) {
                wheels.push(e.path());
            } else {
                writeln!(
                    log,
                    "refine: dropping {name} from the output (wheel outputs hold .whl files only)"
                )?;
                let p = e.path();
                if p.is_dir() {
                    std::fs::remove_dir_all(&p)?;
                } else {
                    std::fs::remove_file(&p)?;
                }
            }
        }
        if wheels.is_empty() {
            return Err(failure(
                ErrorClass::Build,
                format!("{} wrote no wheel to $REFINE_OUT", d.label),
                "the recipe must leave its .whl files in $REFINE_OUT",
            ));
        }
        for w in &wheels {
            crate::wheel::normalize(w, d.source_date_epoch).map_err(|e| {
                failure(
                    ErrorClass::Build,
                    format!("{}: {e}", d.label),
                    "the recipe wrote a broken wheel",
                )
            })?;
            let files = crate::wheel::read_wheel(w).map_err(|e| {
                failure(
                    ErrorClass::Build,
                    e.to_string(),
                    "the recipe wrote a broken wheel",
                )
            })?;
            let foreign = crate::wheel::foreign_elves(&files, d.platform.arch.elf_machine());
            if !foreign.is_empty() {
                let list: Vec<String> = foreign
                    .iter()
                    .map(|(n, m)| format!("{n} (e_machine {m})"))
                    .collect();
                return Err(failure(
                    ErrorClass::Build,
                    format!(
                        "{} holds binaries that are not {}: {}",
                        d.label,
                        d.platform.arch,
                        list.join(", ")
                    ),
                    "the build used a compiler for another architecture; check the image and the recipe",
                ));
            }
        }
    }
    if d.label.kind == Kind::Pack {
        check_no_build_paths(d, out)?;
    }
    if d.label.kind == Kind::Runtime
        && !out.join("runtime.json").is_file()
        && !out.join("bin").is_dir()
    {
        return Err(failure(
            ErrorClass::Build,
            format!("{} wrote no interpreter to $REFINE_OUT", d.label),
            "a runtime recipe installs Python under $REFINE_OUT (bin/python3)",
        ));
    }
    Ok(cfg.store.put_tree(out)?)
}

/// Packs are relocatable: their pkg-config and libtool files must not name
/// the directory they were built in.
fn check_no_build_paths(d: &Derivation, out: &Path) -> Result<(), Failure> {
    let mut leaks = Vec::new();
    for e in walkdir::WalkDir::new(out).into_iter().flatten() {
        let p = e.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text_kind = name.ends_with(".pc")
            || name.ends_with(".la")
            || name.ends_with("-config")
            || name.ends_with(".cmake");
        if !e.file_type().is_file() || !text_kind {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(p)
            && (text.contains("/build/") || text.contains("/out/") || text.contains("/out\n"))
        {
            leaks.push(p.strip_prefix(out).unwrap_or(p).display().to_string());
        }
    }
    if leaks.is_empty() {
        Ok(())
    } else {
        Err(failure(
            ErrorClass::Build,
            format!(
                "{} is not relocatable: build paths in {}",
                d.label,
                leaks.join(", ")
            ),
            "install with --prefix=/opt/packs/<name> (and DESTDIR) or rewrite prefix= to ${pcfiledir}/../.. in the recipe",
        ))
    }
}
