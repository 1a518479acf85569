//! `refine verify`: rebuild targets from scratch and compare.
//!
//! Dependencies come from the store (built first if they are not there);
//! the named targets are rebuilt `--rounds` times in fresh sandboxes,
//! bypassing the cache and leaving it untouched, and every round's output
//! digest is compared with the stored one (the local action cache, or the
//! remote's). Where they differ, the report says which files differ (name,
//! size, hash), with a unified diff for small text files and diffoscope's
//! verdict when it is installed. Results are recorded per key, so `refine
//! hash` can say how often a result was reproduced.
//!
//! `--from-manifest` checks a delivered wheel against the provenance file
//! `refine build` wrote beside it: the key re-derived from the recorded
//! preimage, the output tree, and the wheel's bytes.

use super::Session;
use super::build::BuildArgs;
use crate::error::{Error, Result};
use crate::key::{Digest, Key, Preimage};
use crate::sched::{self, EventSink, RunConfig, Verdict};
use crate::store::{EntryKind, LocalStore, Tree, Verification};
use std::collections::HashSet;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Against {
    Local,
    Remote,
}

/// One target's verification.
#[derive(Debug)]
pub struct Checked {
    pub label: String,
    pub key: Option<Key>,
    /// The stored output it is compared with.
    pub reference: Option<Digest>,
    /// Each round's output (None: the round failed).
    pub rounds: Vec<Option<Digest>>,
    /// What differs, for each round that differed.
    pub differences: Vec<String>,
    pub agree: bool,
    /// Against the remote: who signed its result ("refine-ci", trusted), or
    /// why its signature is not accepted.
    pub signed: Option<String>,
}

pub struct VerifyReport {
    pub checked: Vec<Checked>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.checked.iter().all(|c| c.agree)
    }
}

pub fn verify(
    s: &Session,
    args: &BuildArgs,
    rounds: usize,
    against: Against,
    sink: &dyn EventSink,
) -> Result<VerifyReport> {
    let labels = s.resolve(&args.patterns)?;
    let graph = s.graph(&labels)?;
    let store = s.open_store()?;
    let _lock = store.locks.store(false)?;
    let exec = super::executor(s.executor);
    let remote = match against {
        Against::Remote => Some(
            super::remote::open(s, args.remote.as_deref(), false, args.insecure)?.ok_or_else(
                || {
                    Error::user("--against remote needs a remote store")
                        .hint("pass --remote oci://HOST[:PORT]/PREFIX")
                },
            )?,
        ),
        Against::Local => None,
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let remote_exec = super::build::remote_executor(s, args)?;
    let mut cfg = RunConfig {
        sources: &s.sources,
        store: &store,
        exec: exec.as_ref(),
        remote: None,
        remote_exec: remote_exec.as_ref(),
        push: false,
        sandbox: &s.config.sandbox,
        jobs,
        keep_going: true,
        skip_known_failures: false,
        force: HashSet::new(),
        sink,
        durations: &crate::sched::no_durations,
        delivered: None,
    };
    // Everything built (or found) once, as a build would.
    let base = sched::run(&graph, &cfg);
    if let Some(f) = base.iter().find(|r| !r.verdict.is_ok()) {
        return Err(Error::build(format!(
            "{} did not build, so nothing can be verified",
            f.label
        ))
        .hint("fix the build first (refine build …)"));
    }
    let targets: Vec<usize> = (0..graph.nodes.len())
        .filter(|&i| {
            graph.nodes[i].requested && graph.nodes[i].derivation().fixed_output().is_none()
        })
        .collect();
    cfg.force = targets.iter().copied().collect();
    let mut runs = Vec::new();
    for _ in 0..rounds.max(1) {
        runs.push(sched::run(&graph, &cfg));
    }
    let mut checked = Vec::new();
    for &i in &targets {
        let key = base[i].key.clone();
        let (reference, signed) = match (&remote, &key) {
            (Some(r), Some(k)) => match r.signer_of(graph.nodes[i].label(), k) {
                Ok(Some((output, Ok(name)))) => {
                    (output, Some(format!("signed by {name} (trusted)")))
                }
                Ok(Some((output, Err(why)))) => (output, Some(format!("not trusted: {why}"))),
                Ok(None) => (None, Some("not on the remote".into())),
                Err(e) => (None, Some(format!("remote: {e}"))),
            },
            _ => (base[i].output.clone(), None),
        };
        let round_outputs: Vec<Option<Digest>> = runs
            .iter()
            .map(|r| {
                Some(&r[i])
                    .filter(|n| n.verdict == Verdict::Built)
                    .and_then(|n| n.output.clone())
            })
            .collect();
        let mut differences = Vec::new();
        for (n, out) in round_outputs.iter().enumerate() {
            match (out, &reference) {
                (Some(o), Some(r)) if o != r => {
                    differences.push(format!(
                        "round {}: output {o} differs from the stored {r}",
                        n + 1
                    ));
                    differences.extend(diff_outputs(&store, r, o));
                }
                (None, _) => {
                    differences.push(format!("round {}: the rebuild failed (see its log)", n + 1))
                }
                (_, None) => differences.push("no stored output to compare with".to_string()),
                _ => {}
            }
        }
        let agree = differences.is_empty();
        if let Some(k) = &key {
            let mut v = store
                .actions
                .verification(k)
                .unwrap_or_else(|| Verification {
                    key: k.0.clone(),
                    label: graph.nodes[i].label().to_string(),
                    ..Verification::default()
                });
            let same = round_outputs
                .iter()
                .filter(|o| o.is_some() && o.as_ref() == reference.as_ref())
                .count();
            v.agreeing_rounds += same;
            v.disagreeing_rounds += round_outputs.len() - same;
            v.last = crate::store::now_secs();
            let _ = store.actions.set_verification(k, &v);
        }
        checked.push(Checked {
            label: graph.nodes[i].label().to_string(),
            key,
            reference,
            rounds: round_outputs,
            differences,
            agree,
            signed,
        });
    }
    store.flush();
    Ok(VerifyReport { checked })
}

/// Build the targets with both toolchains of a foreign target (the host's
/// cross compilers and the target's own, emulated) and compare outputs:
/// hybrid builds must give the emulated build's bytes.
pub fn across_toolchains(
    opts: &super::GlobalOpts,
    patterns: &[String],
    jobs: Option<usize>,
    sink: &dyn EventSink,
) -> Result<VerifyReport> {
    use crate::platform::Toolchain;
    let mine = Session::load(opts)?;
    if !mine.platform.is_foreign() {
        return Err(Error::user(format!(
            "{} is this machine's architecture: there is only the native toolchain",
            mine.platform.arch
        ))
        .hint("compare toolchains for a foreign target, e.g. --arch s390x"));
    }
    let other_tc = match mine.platform.toolchain {
        Toolchain::Cross => Toolchain::Emulated,
        Toolchain::Emulated => Toolchain::Cross,
    };
    let theirs = Session::load(&super::GlobalOpts {
        toolchain: Some(other_tc.as_str().to_string()),
        ..opts.clone()
    })?;
    compare_builds(
        (&mine, mine.platform.toolchain.as_str()),
        (&theirs, other_tc.as_str()),
        patterns,
        jobs,
        sink,
    )
}

/// Build the wheels of a foreign target with their PEP 517 hooks in the
/// host's Python set up for the target and in the target's own, and
/// compare: the host's must give the target interpreter's bytes.
pub fn across_frontends(
    opts: &super::GlobalOpts,
    patterns: &[String],
    jobs: Option<usize>,
    sink: &dyn EventSink,
) -> Result<VerifyReport> {
    let session = |f: &str| {
        Session::load(&super::GlobalOpts {
            frontend_python: Some(f.to_string()),
            ..opts.clone()
        })
    };
    let host = session("host")?;
    if !host.platform.uses_cross() {
        return Err(Error::user(format!(
            "{} builds with its own Python: only a foreign target's hybrid images set up the host's",
            host.platform.arch
        ))
        .hint("compare the frontends for a foreign target with the cross toolchain, e.g. --arch s390x"));
    }
    let target = session("target")?;
    compare_builds((&host, "host"), (&target, "target"), patterns, jobs, sink)
}

/// Build the same targets in two sessions and compare the requested ones'
/// outputs; the second session's output is the reference.
fn compare_builds(
    (mine, my_name): (&Session, &str),
    (theirs, their_name): (&Session, &str),
    patterns: &[String],
    jobs: Option<usize>,
    sink: &dyn EventSink,
) -> Result<VerifyReport> {
    // The wheels are compared in the store, not delivered.
    let out = tempfile::tempdir().map_err(Error::from)?;
    let args = BuildArgs {
        patterns: patterns.to_vec(),
        jobs,
        keep_going: true,
        offline: true,
        out_dir: Some(out.path().to_path_buf()),
        ..BuildArgs::default()
    };
    let a = super::build::build(mine, &args, sink)?;
    let b = super::build::build(theirs, &args, sink)?;
    let store = mine.open_store()?;
    let mut checked = Vec::new();
    for (na, ra) in a.graph.nodes.iter().zip(&a.results) {
        if !na.requested {
            continue;
        }
        let Some(rb) = b.graph.by_label.get(na.label()).map(|&i| &b.results[i]) else {
            continue;
        };
        let mut differences = Vec::new();
        match (&ra.output, &rb.output) {
            (Some(x), Some(y)) if x != y => {
                differences.push(format!("{my_name}: {x}, {their_name}: {y}"));
                differences.extend(diff_outputs(&store, y, x));
            }
            (Some(_), Some(_)) => {}
            _ => differences.push("one of the builds failed (see its log)".into()),
        }
        checked.push(Checked {
            label: na.label().to_string(),
            key: ra.key.clone(),
            reference: rb.output.clone(),
            rounds: vec![ra.output.clone()],
            agree: differences.is_empty(),
            differences,
            signed: None,
        });
    }
    Ok(VerifyReport { checked })
}

/// Human-readable differences between two output trees in the store.
pub fn diff_outputs(store: &LocalStore, a: &Digest, b: &Digest) -> Vec<String> {
    let (Ok(ta), Ok(tb)) = (store.cas.tree(a), store.cas.tree(b)) else {
        return vec!["(one of the outputs is no longer in the store)".into()];
    };
    let mut out = Vec::new();
    let files = |t: &Tree| -> std::collections::BTreeMap<String, EntryKind> {
        t.entries
            .iter()
            .map(|e| (e.path.clone(), e.kind.clone()))
            .collect()
    };
    let (fa, fb) = (files(&ta), files(&tb));
    for (path, ka) in &fa {
        match fb.get(path) {
            None => out.push(format!("  {path}: only in the stored output")),
            Some(kb) if kb != ka => {
                out.push(format!("  {path}: {} -> {}", describe(ka), describe(kb)));
                if let (EntryKind::File { digest: da, .. }, EntryKind::File { digest: db, .. }) =
                    (ka, kb)
                {
                    if path.ends_with(".whl") {
                        out.extend(diff_wheels(store, da, db));
                    } else {
                        out.extend(diff_text(store, path, da, db));
                    }
                    out.extend(diffoscope(store, path, da, db));
                }
            }
            _ => {}
        }
    }
    for path in fb.keys().filter(|p| !fa.contains_key(*p)) {
        out.push(format!("  {path}: only in the rebuild"));
    }
    out
}

fn describe(k: &EntryKind) -> String {
    match k {
        EntryKind::File { size, digest, .. } => format!("{size} bytes {}", digest.short()),
        EntryKind::Dir => "directory".into(),
        EntryKind::Symlink { target } => format!("-> {target}"),
    }
}

/// The files inside two wheels that differ.
fn diff_wheels(store: &LocalStore, a: &Digest, b: &Digest) -> Vec<String> {
    let (Ok(wa), Ok(wb)) = (
        crate::wheel::read_wheel(&store.cas.blob_path(a)),
        crate::wheel::read_wheel(&store.cas.blob_path(b)),
    ) else {
        return vec!["    (cannot read the wheels)".into()];
    };
    let mut out = Vec::new();
    let map = |w: &[crate::wheel::WheelFile]| -> std::collections::BTreeMap<String, Vec<u8>> {
        w.iter().map(|f| (f.name.clone(), f.data.clone())).collect()
    };
    let (ma, mb) = (map(&wa), map(&wb));
    for (name, da) in &ma {
        match mb.get(name) {
            None => out.push(format!("    {name}: only in the stored wheel")),
            Some(db) if db != da => {
                out.push(format!(
                    "    {name}: {} bytes sha256:{} -> {} bytes sha256:{}",
                    da.len(),
                    crate::key::sha256_bytes(da).short(),
                    db.len(),
                    crate::key::sha256_bytes(db).short()
                ));
                out.extend(unified(name, da, db));
            }
            _ => {}
        }
    }
    for name in mb.keys().filter(|n| !ma.contains_key(*n)) {
        out.push(format!("    {name}: only in the rebuilt wheel"));
    }
    out
}

fn diff_text(store: &LocalStore, path: &str, a: &Digest, b: &Digest) -> Vec<String> {
    match (
        std::fs::read(store.cas.blob_path(a)),
        std::fs::read(store.cas.blob_path(b)),
    ) {
        (Ok(x), Ok(y)) => unified(path, &x, &y),
        _ => Vec::new(),
    }
}

/// A unified diff of two small text files (nothing for binaries).
fn unified(name: &str, a: &[u8], b: &[u8]) -> Vec<String> {
    const SMALL: usize = 64 * 1024;
    if a.len() > SMALL || b.len() > SMALL {
        return Vec::new();
    }
    let (Ok(x), Ok(y)) = (std::str::from_utf8(a), std::str::from_utf8(b)) else {
        return Vec::new();
    };
    let diff = similar::TextDiff::from_lines(x, y);
    let text = diff
        .unified_diff()
        .context_radius(2)
        .header(&format!("stored/{name}"), &format!("rebuilt/{name}"))
        .to_string();
    text.lines()
        .take(80)
        .map(|l| format!("      {l}"))
        .collect()
}

/// diffoscope's account of two files, when diffoscope is installed.
fn diffoscope(store: &LocalStore, path: &str, a: &Digest, b: &Digest) -> Vec<String> {
    if crate::exec::which("diffoscope").is_none() {
        return Vec::new();
    }
    let Ok(tmp) = store.tmp_dir() else {
        return Vec::new();
    };
    let name = path.rsplit('/').next().unwrap_or(path);
    let (pa, pb) = (
        tmp.path().join("stored").join(name),
        tmp.path().join("rebuilt").join(name),
    );
    for (d, p) in [(a, &pa), (b, &pb)] {
        if store.cas.copy_blob_to(d, p, false).is_err() {
            return Vec::new();
        }
    }
    let out = std::process::Command::new("timeout")
        .args(["120", "diffoscope", "--text", "-", "--no-progress"])
        .arg(&pa)
        .arg(&pb)
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            let mut lines: Vec<String> = vec!["    diffoscope:".into()];
            lines.extend(text.lines().take(60).map(|l| format!("      {l}")));
            lines
        }
        Err(_) => Vec::new(),
    }
}

/// Check a wheel against the provenance file written beside it.
pub fn from_manifest(path: &Path, wheel: Option<&Path>) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::user(format!("cannot read {}: {e}", path.display())))?;
    let m: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::user(format!(
            "{} is not a refine provenance file: {e}",
            path.display()
        ))
    })?;
    let mut ok = Vec::new();
    let key = m["key"].as_str().unwrap_or_default();
    let pre = Preimage::from_json(&m["preimage"])
        .ok_or_else(|| Error::user(format!("{}: no readable preimage", path.display())))?;
    let derived = pre.key();
    if derived.0 != key {
        return Err(Error::build(format!(
            "the preimage in {} hashes to {derived}, not to the recorded key {key}",
            path.display()
        ))
        .hint("the provenance file was edited, or written by a refine with another KEY_VERSION"));
    }
    ok.push(format!("key {key} re-derived from the preimage"));
    let tree = Tree::decode(m["tree"].as_str().unwrap_or_default())
        .map_err(|e| Error::user(format!("{}: bad tree: {e}", path.display())))?;
    let output = m["output"].as_str().unwrap_or_default();
    if tree.digest().as_str() != output {
        return Err(Error::build(format!(
            "the recorded tree hashes to {}, not to the output {output}",
            tree.digest()
        )));
    }
    ok.push(format!("output {output} re-derived from the tree"));
    let name = m["wheel"].as_str().unwrap_or_default();
    let wheel_path = wheel
        .map(Path::to_path_buf)
        .unwrap_or_else(|| path.with_file_name(name));
    let (got, _) = crate::key::sha256_file(&wheel_path).map_err(|e| {
        Error::user(format!(
            "cannot read the wheel {}: {e}",
            wheel_path.display()
        ))
    })?;
    let want = tree
        .files()
        .find(|(n, _, _)| *n == name)
        .map(|(_, d, _)| d.clone())
        .ok_or_else(|| Error::build(format!("{name} is not in the recorded output")))?;
    if got != want {
        return Err(Error::build(format!(
            "{} has sha256 {}, the provenance says {}",
            wheel_path.display(),
            got.hex(),
            want.hex()
        ))
        .hint("this is not the wheel the provenance file describes"));
    }
    ok.push(format!("{} matches ({})", wheel_path.display(), got));
    Ok(ok)
}
