//! `refine build`: run the graph, then deliver the wheels.

use super::Session;
use crate::error::{Error, ErrorClass, Result};
use crate::eval::Graph;
use crate::rules::Kind;
use crate::sched::{self, EventSink, NodeResult, RunConfig, Verdict};
use crate::store::LocalStore;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// What a build is asked to do: the one options layer both front ends
/// fill, the command line (`refine build` flattens it into its flags) and
/// the dashboard's queue (which builds it in code).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct BuildArgs {
    /// Labels or patterns: //wheels:markupsafe, //packs:..., //...
    #[arg(value_name = "TARGETS")]
    pub patterns: Vec<String>,
    /// Builds to run at once (default: [sandbox] jobs, or the number of CPUs).
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// Build everything that does not depend on a failure.
    #[arg(long, short)]
    pub keep_going: bool,
    /// Do not build again what failed at the same key last time (its key
    /// unchanged: the same inputs would fail the same way); say how many.
    #[arg(long)]
    pub skip_known_failures: bool,
    /// Where to copy the wheels (default: <workspace>/dist).
    #[arg(long = "out", value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// A remote store, overriding [store] remote: oci://HOST[:PORT]/PREFIX.
    #[arg(long, value_name = "URL")]
    pub remote: Option<String>,
    /// Push what this run builds to the remote.
    #[arg(long)]
    pub push: bool,
    /// Use the local store only.
    #[arg(long)]
    pub offline: bool,
    /// Talk plain HTTP to the remote (loopback registries).
    #[arg(long)]
    pub insecure: bool,
    /// Where build steps run: an REAPI server's workers.
    #[command(flatten)]
    pub exec_remote: RemoteExecArgs,
    /// The verb the history records the run under (default "build").
    #[arg(skip)]
    pub verb: Option<&'static str>,
    /// Told the history's run id as soon as the run begins.
    #[arg(skip)]
    pub on_run: OnRun,
}

/// Build steps on an REAPI server's workers (`refine build` and `refine
/// verify`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RemoteExecArgs {
    /// Run build steps on an REAPI server's workers (BuildGrid, Buildbarn,
    /// BuildBuddy…), overriding [remote] execution:
    /// grpc://HOST:PORT[/INSTANCE] or grpcs://… A bearer token comes from
    /// REFINE_REMOTE_TOKEN.
    #[arg(long, value_name = "URL")]
    pub remote_executor: Option<String>,
    /// A header sent to the remote executor, NAME:VALUE (repeatable).
    #[arg(long, value_name = "NAME:VALUE")]
    pub remote_header: Vec<String>,
    /// Fail instead of building locally when the remote executor cannot
    /// be reached.
    #[arg(long)]
    pub remote_only: bool,
    /// How long a build step waits for a worker of its platform before it
    /// fails (default 10m).
    #[arg(long, value_name = "DURATION")]
    pub remote_queue_timeout: Option<String>,
    /// Where a running step's log is read from while it runs (the
    /// LogStream service the server names streams of), overriding [remote]
    /// log_stream; default: the remote executor itself.
    #[arg(long, value_name = "URL")]
    pub remote_log_stream: Option<String>,
}

/// A callback given the history's id of a run when it begins: the
/// dashboard's queue follows its job by it while it runs.
#[derive(Clone, Default)]
pub struct OnRun(Option<std::sync::Arc<dyn Fn(i64) + Send + Sync>>);

impl OnRun {
    pub fn new(f: impl Fn(i64) + Send + Sync + 'static) -> OnRun {
        OnRun(Some(std::sync::Arc::new(f)))
    }

    fn call(&self, run: i64) {
        if let Some(f) = &self.0 {
            f(run);
        }
    }
}

impl std::fmt::Debug for OnRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "OnRun(set)"
        } else {
            "OnRun(none)"
        })
    }
}

pub struct BuildReport {
    pub graph: Graph,
    pub results: Vec<NodeResult>,
    pub out_dir: PathBuf,
    pub manifest: Option<PathBuf>,
    /// What the hint catalog says about the failures.
    pub suggestions: Vec<super::hints::Suggestion>,
    /// The run's id in the store's history, if it was recorded.
    pub run: Option<i64>,
}

impl BuildReport {
    pub fn count(&self, v: Verdict) -> usize {
        self.results.iter().filter(|r| r.verdict == v).count()
    }

    /// The error to exit with, if any node failed, or if the run was
    /// interrupted before everything it asked for was settled (nodes left
    /// unstarted are not a success).
    pub fn error(&self) -> Option<Error> {
        let failed: Vec<&NodeResult> = self
            .results
            .iter()
            .filter(|r| r.verdict == Verdict::Failed)
            .collect();
        let unsettled = self.results.iter().any(|r| r.verdict == Verdict::Skipped);
        if crate::exec::interrupt::requested() && (!failed.is_empty() || unsettled) {
            return Some(Error::new(ErrorClass::Interrupted, "interrupted"));
        }
        if failed.is_empty() {
            return None;
        }
        let class = ErrorClass::worst(
            failed
                .iter()
                .filter_map(|r| r.failure.as_ref().map(|f| f.class)),
        );
        Some(Error::new(
            class,
            format!(
                "{} target{} failed",
                failed.len(),
                if failed.len() == 1 { "" } else { "s" }
            ),
        ))
    }
}

/// The REAPI executor a run uses: `--remote-executor`, else `[remote]
/// execution`; none with `--offline`.
pub fn remote_executor(
    s: &Session,
    args: &BuildArgs,
) -> Result<Option<crate::reapi::RemoteExecutor>> {
    let offline = args.offline;
    let args = &args.exec_remote;
    let Some(url) = args
        .remote_executor
        .clone()
        .or_else(|| s.config.remote.execution.clone())
        .filter(|_| !offline)
    else {
        if args.remote_only {
            return Err(Error::user("--remote-only needs a remote executor")
                .hint("pass --remote-executor grpc://HOST:PORT or set [remote] execution in WORKSPACE.toml"));
        }
        return Ok(None);
    };
    let queue_timeout = match &args.remote_queue_timeout {
        None => std::time::Duration::from_secs(600),
        Some(t) => humantime::parse_duration(t).map_err(|e| {
            Error::user(format!("--remote-queue-timeout: `{t}`: {e}"))
                .hint("e.g. --remote-queue-timeout 10m")
        })?,
    };
    crate::reapi::RemoteExecutor::new(
        &url,
        &args.remote_header,
        crate::reapi::client::Settings {
            remote_only: args.remote_only,
            queue_timeout,
            log_stream: args
                .remote_log_stream
                .clone()
                .or_else(|| s.config.remote.log_stream.clone()),
        },
    )
    .map(Some)
    .map_err(|e| {
        Error::user(format!("--remote-executor: {e}")).hint("write grpc://HOST:PORT[/INSTANCE]")
    })
}

pub fn build(s: &Session, args: &BuildArgs, sink: &dyn EventSink) -> Result<BuildReport> {
    let mut t = super::Timings::start();
    let labels = s.resolve(&args.patterns)?;
    t.mark("resolve targets");
    let graph = s.graph(&labels)?;
    t.mark("load graph");
    run_graph(s, graph, args, sink)
}

/// Run `graph` (its requested nodes and what they need) and deliver.
pub fn run_graph(
    s: &Session,
    graph: Graph,
    args: &BuildArgs,
    sink: &dyn EventSink,
) -> Result<BuildReport> {
    let mut t = super::Timings::start();
    let store = s.open_store()?;
    // Shared: many builds at once; `refine gc` waits for them.
    let _store_lock = store.locks.store(false)?;
    let exec = super::executor(s.executor);
    let remote = super::remote::open(s, args.remote.as_deref(), args.offline, args.insecure)?;
    // One wave of existence checks for every key already known, before the
    // run: pulls then skip the keys the remote does not have.
    if let Some(r) = remote.as_ref().filter(|r| !r.trusts_anyone()) {
        sink.event(&crate::sched::Event::Warning {
            label: None,
            message: format!(
                "remote {}: no key is trusted here, so no result on it is used (set `trusted_keys` in [store], or --trusted-key NAME:BASE64)",
                r.url
            ),
        });
    }
    if let Some(r) = remote.as_ref().filter(|r| r.trusts_anyone()) {
        let plan = super::plan::plan_graph(&graph, &store, s.executor.name());
        let items: Vec<(crate::rules::Label, crate::key::Key)> = plan
            .iter()
            .filter(|e| e.status == super::plan::PlanStatus::Build)
            .filter_map(|e| Some((e.label.clone(), e.key.clone()?)))
            .collect();
        // The first fault is said here in full (retries and all); the nodes
        // then only say that the remote is unreachable.
        if let Some(Err(e)) = r.exists_many(&items, 8).into_iter().find(Result::is_err) {
            sink.event(&crate::sched::Event::Warning {
                label: None,
                message: format!("remote {}: {e}", r.url),
            });
        }
        t.mark("check the remote");
    }
    let jobs = args
        .jobs
        .or(s.config.sandbox.jobs)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // Each node's platform, as the history records it.
    type Seen = (&'static str, &'static str, bool);
    let platforms: std::collections::HashMap<crate::rules::Label, Seen> = graph
        .nodes
        .iter()
        .map(|n| {
            (
                n.label().clone(),
                (n.arch().as_str(), n.toolchain_name(), n.requested),
            )
        })
        .collect();
    let default_platform = (s.platform.arch.as_str(), s.platform.toolchain_name(), false);
    let platform_of = |l: &crate::rules::Label| {
        let (a, t, r) = platforms.get(l).copied().unwrap_or(default_platform);
        (a.to_string(), t.to_string(), r)
    };
    t.mark("open store");
    let recorder = super::history::Recorder::begin(
        store.root(),
        format!(
            "{} {}",
            args.verb.unwrap_or("build"),
            args.patterns.join(" ")
        )
        .trim(),
        &s.root,
        s.platform.arch.as_str(),
        s.platform.toolchain_name(),
        sink,
        &platform_of,
    );
    if let Some(r) = &recorder {
        args.on_run.call(r.run);
    }
    let durations = || recorder.as_ref().map(|r| r.durations()).unwrap_or_default();
    let out_dir = args.out_dir.clone().unwrap_or_else(|| s.root.join("dist"));
    let delivered = crate::store::delivered::Delivered::open(store.root(), &out_dir);
    let remote_exec = remote_executor(s, args)?;
    if let Some(rx) = &remote_exec {
        sink.event(&crate::sched::Event::Warning {
            label: None,
            message: format!("build steps run on {} (images are made here)", rx.url()),
        });
    }
    let cfg = RunConfig {
        sources: &s.sources,
        store: &store,
        exec: exec.as_ref(),
        remote: remote.as_ref().map(|r| r as &dyn crate::remote::Remote),
        remote_exec: remote_exec.as_ref(),
        push: (args.push || s.config.store.push) && !args.offline,
        sandbox: &s.config.sandbox,
        jobs,
        keep_going: args.keep_going,
        skip_known_failures: args.skip_known_failures,
        force: HashSet::new(),
        sink: match &recorder {
            Some(r) => r,
            None => sink,
        },
        durations: &durations,
        delivered: Some(&delivered),
    };
    t.mark("begin the run's history");
    let results = sched::run(&graph, &cfg);
    t.mark("run graph");
    let mut report = BuildReport {
        graph,
        results,
        out_dir: PathBuf::new(),
        manifest: None,
        suggestions: Vec::new(),
        run: recorder.as_ref().map(|r| r.run),
    };
    report.suggestions = super::hints::for_report(s, &report);
    if let Some(r) = &recorder {
        let hints: Vec<(crate::rules::Label, String)> = report
            .suggestions
            .iter()
            .map(|x| {
                let mut h = x.message.clone();
                if let Some(e) = &x.edit {
                    h.push_str(&format!("; {e}"));
                }
                (x.label.clone(), h)
            })
            .collect();
        r.end(&report.graph, &report.results, &hints);
    }
    let BuildReport {
        graph,
        results,
        suggestions,
        run,
        ..
    } = report;
    let manifest = deliver(&store, &graph, &results, &delivered)?;
    t.mark("deliver wheels");
    store.flush();
    // What borrows the store goes first, in the order the end of this
    // function would drop it.
    drop(cfg);
    drop(delivered);
    drop(recorder);
    drop(_store_lock);
    crate::drop_in_background(store);
    t.mark("flush store");
    t.peak_memory();
    Ok(BuildReport {
        graph,
        results,
        out_dir,
        manifest,
        suggestions,
        run,
    })
}

/// Copy the wheels of requested wheel and repair targets to the out
/// directory (verifying each blob; a wheel already there whose stamp says
/// it is as it was last checked is left alone) and write `manifest.json`
/// for this run.
pub fn deliver(
    store: &LocalStore,
    graph: &Graph,
    results: &[NodeResult],
    stamps: &crate::store::delivered::Delivered,
) -> Result<Option<PathBuf>> {
    use rayon::prelude::*;
    let out_dir = stamps.dir();
    let delivered: Vec<&NodeResult> = graph
        .nodes
        .iter()
        .zip(results)
        .filter(|(node, _)| {
            node.requested
                && (matches!(node.label().kind, Kind::Wheel | Kind::Repair)
                    || node.is_wheel_source())
        })
        .map(|(_, r)| r)
        .collect();
    if delivered.is_empty() {
        return Ok(None);
    }
    std::fs::create_dir_all(out_dir).map_err(|e| {
        Error::env(format!("cannot create {}: {e}", out_dir.display()))
            .hint("choose another --out directory")
    })?;
    let entries: Vec<Vec<ManifestEntry<'_>>> = delivered
        .par_iter()
        .map(|r| -> Result<Vec<ManifestEntry<'_>>> {
            let base = ManifestEntry {
                label: r.label.to_string(),
                key: r.key.as_ref().map(|k| k.0.as_str()),
                output: r.output.as_ref(),
                wheel: None,
                sha256: None,
                size: None,
                verdict: r.verdict.as_str(),
                // The time this run spent building it: none for a hit
                // (its lookup's few milliseconds would make every no-op's
                // manifest differ from the last).
                duration_ms: match r.verdict {
                    Verdict::HitLocal | Verdict::HitRemote => 0,
                    _ => r.duration.as_millis() as u64,
                },
                log: r.log.as_deref(),
                policy: None,
                limited_by: None,
            };
            let Some(tree) = r.tree.as_ref().filter(|_| r.verdict.is_ok()) else {
                return Ok(vec![base]);
            };
            let mut out = Vec::new();
            let reports = policy_reports(store, tree);
            for (name, digest, size) in tree.files().filter(|(n, _, _)| n.ends_with(".whl")) {
                let dest = out_dir.join(name);
                let changed = if stamps.still_holds(name, digest) {
                    false
                } else {
                    let changed = store.cas.deliver_blob(digest, &dest)?;
                    stamps.checked(name, digest);
                    changed
                };
                let report = reports.get(name);
                let prov = provenance_path(&dest);
                let prov_name = prov
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                if changed || !stamps.has(prov_name) {
                    write_provenance(store, r, tree, name, digest, report, &prov)?;
                }
                out.push(ManifestEntry {
                    wheel: Some(name),
                    sha256: Some(digest.hex()),
                    size: Some(size),
                    policy: report.map(|p| p.policy.clone()),
                    limited_by: report.map(|p| p.limited_by.clone()),
                    label: base.label.clone(),
                    ..base
                });
            }
            Ok(out)
        })
        .collect::<Result<_>>()?;
    let manifest = out_dir.join("manifest.json");
    // Sized once: a flattened collect grows a 10,000-entry list by copies.
    let mut wheels = Vec::with_capacity(entries.iter().map(Vec::len).sum());
    for e in entries {
        wheels.extend(e);
    }
    let doc = Manifest {
        refine: env!("CARGO_PKG_VERSION"),
        created: crate::store::now_secs(),
        wheels,
    };
    let bytes = manifest_bytes(&doc);
    // A manifest that says the same but its time is left as it is (a
    // no-op's manifest is its last run's: 5 MB and an fsync for 10,000
    // wheels); `created` is when what it says was first written.
    let same = std::fs::read(&manifest).is_ok_and(|old| same_but_created(&old, &bytes));
    if !same {
        crate::store::local::write_atomic(out_dir, &manifest, &bytes)?;
    }
    stamps.save();
    Ok(Some(manifest))
}

/// The policy reports of an output (`<wheel>.policy.json`, written by a
/// repair and checked when it was stored), by wheel name. A report that
/// cannot be read is left out: it only describes the wheel.
pub fn policy_reports(
    store: &LocalStore,
    tree: &crate::store::Tree,
) -> std::collections::BTreeMap<String, crate::wheel::policy::PolicyReport> {
    use crate::wheel::policy::{REPORT_SUFFIX, parse};
    tree.files()
        .filter_map(|(name, d, _)| {
            let wheel = name.strip_suffix(REPORT_SUFFIX)?;
            let bytes = store.cas.read_blob(d).ok()?;
            Some((wheel.to_string(), parse(&bytes, wheel).ok()?))
        })
        .collect()
}

/// `<wheel>.provenance.json`, beside the wheel.
pub fn provenance_path(wheel: &Path) -> PathBuf {
    let mut name = wheel
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".provenance.json");
    wheel.with_file_name(name)
}

/// What a user needs to reproduce a wheel: its label, key and preimage
/// (from which the key can be re-derived), the output tree, and the inputs
/// pulled out of the preimage for reading: image, runtime, sources, packs.
fn write_provenance(
    store: &LocalStore,
    r: &NodeResult,
    tree: &crate::store::Tree,
    name: &str,
    digest: &crate::key::Digest,
    report: Option<&crate::wheel::policy::PolicyReport>,
    dest: &Path,
) -> Result<()> {
    let Some(key) = &r.key else { return Ok(()) };
    let pre = match &r.preimage {
        Some(p) => p.clone(),
        None => match store.actions.preimage(key) {
            Some(p) => p,
            None => return Ok(()),
        },
    };
    let field = |f: &str| {
        pre.get(f)
            .map(|v| v.to_json())
            .unwrap_or(serde_json::Value::Null)
    };
    let doc = serde_json::json!({
        "refine": env!("CARGO_PKG_VERSION"),
        "key_version": crate::key::KEY_VERSION,
        "label": r.label.to_string(),
        "key": key.0,
        "output": r.output,
        "wheel": name,
        "sha256": digest.hex(),
        "policy": report,
        "platform": field("platform"),
        "image": field("image"),
        "runtime": field("runtime"),
        "sources": field("sources"),
        "packs": field("packs"),
        "build_requires": field("wheels"),
        "recipe": field("action"),
        "env": field("env"),
        "tree": tree.encode(),
        "preimage": pre.to_json(),
    });
    let bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    let dir = dest.parent().unwrap_or(Path::new("."));
    crate::store::local::write_atomic(dir, dest, &bytes)?;
    Ok(())
}

/// `manifest.json`'s bytes: what `serde_json::to_vec_pretty` writes, its
/// entries serialized on every core (a 10,000-wheel manifest is 5 MB of
/// JSON, the largest single step of a no-op's delivery). Each entry is
/// pretty-printed alone and indented to its depth (two levels, four
/// spaces): JSON strings escape their newlines, so every newline in an
/// entry's text is the formatter's.
fn manifest_bytes(doc: &Manifest<'_>) -> Vec<u8> {
    use rayon::prelude::*;
    if doc.wheels.is_empty() {
        return serde_json::to_vec_pretty(doc).unwrap_or_default();
    }
    let entries: Vec<Vec<u8>> = doc
        .wheels
        .par_iter()
        .with_min_len(256)
        .map(|e| {
            let text = serde_json::to_vec_pretty(e).unwrap_or_default();
            let mut out = Vec::with_capacity(text.len() + text.len() / 8);
            out.extend_from_slice(b"    ");
            for &b in &text {
                out.push(b);
                if b == b'\n' {
                    out.extend_from_slice(b"    ");
                }
            }
            out
        })
        .collect();
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.len() + 2).sum::<usize>() + 128);
    out.extend_from_slice(b"{\n  \"refine\": ");
    out.extend_from_slice(&serde_json::to_vec(doc.refine).unwrap_or_default());
    out.extend_from_slice(
        format!(",\n  \"created\": {},\n  \"wheels\": [\n", doc.created).as_bytes(),
    );
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b",\n");
        }
        out.extend_from_slice(e);
    }
    out.extend_from_slice(b"\n  ]\n}");
    out
}

/// Whether two manifests say the same, but for their `created` line.
fn same_but_created(old: &[u8], new: &[u8]) -> bool {
    const AT: &[u8] = b"\n  \"created\": ";
    let split = |b: &[u8]| -> Option<(usize, usize)> {
        let start = b.windows(AT.len()).position(|w| w == AT)?;
        let end = start + AT.len() + b[start + AT.len()..].iter().position(|&c| c == b'\n')?;
        Some((start, end))
    };
    match (split(old), split(new)) {
        (Some((os, oe)), Some((ns, ne))) => old[..os] == new[..ns] && old[oe..] == new[ne..],
        _ => false,
    }
}

#[derive(serde::Serialize)]
struct Manifest<'a> {
    refine: &'static str,
    created: u64,
    wheels: Vec<ManifestEntry<'a>>,
}

/// One delivered wheel (or one requested target that produced none).
#[derive(serde::Serialize, Clone)]
struct ManifestEntry<'a> {
    label: String,
    key: Option<&'a str>,
    output: Option<&'a crate::key::Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wheel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    verdict: &'static str,
    duration_ms: u64,
    log: Option<&'a Path>,
    /// A repaired wheel: the oldest policy it meets, and what kept it
    /// from the next older one.
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limited_by: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_is_the_same_only_when_all_but_its_time_is() {
        let doc = |created: u64, size: u64| {
            manifest_bytes(&Manifest {
                refine: "1.0",
                created,
                wheels: vec![ManifestEntry {
                    label: "//wheels:w".into(),
                    key: Some("k"),
                    output: None,
                    wheel: Some("w-1.0-py3-none-any.whl"),
                    sha256: None,
                    size: Some(size),
                    verdict: "hit:local",
                    duration_ms: 0,
                    log: None,
                    policy: None,
                    limited_by: None,
                }],
            })
        };
        assert!(same_but_created(&doc(1, 7), &doc(1_000_000, 7)));
        assert!(!same_but_created(&doc(1, 7), &doc(1, 8)));
        assert!(!same_but_created(&doc(1, 7), &doc(2, 70)));
        assert!(!same_but_created(b"", &doc(1, 7)));
        assert!(!same_but_created(&doc(1, 7)[..40], &doc(1, 7)));
    }

    #[test]
    fn the_manifest_written_on_every_core_is_what_serde_json_pretty_prints() {
        let d = crate::key::Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let log = Path::new("/store/logs/x86_64/wheels/a/1-2.log");
        let entry = |i: usize| ManifestEntry {
            label: format!("//wheels:w{i}"),
            key: Some("k\"ey with a quote\nand a newline"),
            output: Some(&d),
            wheel: i.is_multiple_of(2).then_some("w-1.0-py3-none-any.whl"),
            sha256: Some(d.hex()),
            size: Some(i as u64),
            verdict: "hit:local",
            duration_ms: 3,
            log: i.is_multiple_of(3).then_some(log),
            policy: i.is_multiple_of(5).then(|| "manylinux_2_17".to_string()),
            limited_by: i
                .is_multiple_of(5)
                .then(|| vec!["libc.so.6: GLIBC_2.17".to_string(), "x".into()]),
        };
        for n in [0, 1, 2, 700] {
            let doc = Manifest {
                refine: "0.1.0",
                created: 1_796_592_492,
                wheels: (0..n).map(entry).collect(),
            };
            assert_eq!(
                String::from_utf8(manifest_bytes(&doc)).unwrap(),
                serde_json::to_string_pretty(&doc).unwrap(),
                "{n} entries"
            );
        }
    }
}
