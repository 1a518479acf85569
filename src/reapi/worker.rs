//! `refine worker`: a bot on the Remote Workers API (what BuildGrid's
//! scheduler hands actions to).
//!
//! It opens a bot session advertising its platform (`ISA`, `OSFamily`)
//! and capacity (`--jobs`), and keeps it alive with UpdateBotSession calls
//! of about 10 s (the server holds each for 0.8 of its deadline, and hands
//! out no lease under ~3.75 s). A lease runs on a thread of its own: the
//! Action, Command and input root are read and checked, the blobs its
//! store lacks fetched (each checked against its digest), the plan
//! materialized and run in the same sandbox as a local build; the output
//! tree and the log are uploaded and the lease reported COMPLETED with
//! the ActionResult. A lease it cannot run (a platform or an image it
//! cannot verify) is reported with FAILED_PRECONDITION; a host problem
//! with UNAVAILABLE, which the server gives to another worker. When the
//! server goes away the worker says so once and opens a new session when
//! it is back.

use super::cas::{self, Fault};
use super::{Conn, plan, re};
use crate::error::{Error, Exit, Result};
use crate::exec::{Executor, RunStatus};
use crate::platform::Arch;
use crate::store::LocalStore;
use googleapis_tonic_google_devtools_remoteworkers_v1test2::google::devtools::remoteworkers::v1test2 as rw;
use googleapis_tonic_google_devtools_remoteworkers_v1test2::google::rpc::Status as RpcStatus;
use prost::Message;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A bot call's deadline (see the module's header).
const BOT_CALL: u64 = 10;

pub struct WorkerArgs {
    pub server: String,
    pub headers: Vec<String>,
    /// `KEY=VALUE` platform properties; `ISA` defaults to the host's.
    pub platform: Vec<(String, String)>,
    pub jobs: usize,
    pub name: Option<String>,
    pub store: std::path::PathBuf,
    /// Stop after this many leases (tests); `None` runs until interrupted.
    pub max_leases: Option<usize>,
    /// The LogStream service the server names streams of (default: the
    /// server).
    pub log_stream: Option<String>,
}

enum Slot {
    Running,
    Done(rw::Lease),
}

struct Shared {
    conn: Conn,
    store: LocalStore,
    exec: Box<dyn Executor>,
    bot_id: String,
    isa: String,
    /// The architectures it advertises (under ISA and host-ISA): the
    /// host's, and those qemu runs here (checked at start).
    arches: Vec<Arch>,
    say: Box<dyn Fn(&str) + Send + Sync>,
    /// Held while a lease fetches its inputs and materializes its plan:
    /// leases that start together on a cold worker fetch and load the
    /// image once, not once each (the runs themselves overlap).
    preparing: Mutex<()>,
    /// Where logs are streamed (the server, or `--log-stream`).
    log_chan: super::Chan,
    /// The write name of each running action's log stream, by action
    /// hash, as the server's lease metadata gives them.
    stream_names: Arc<Mutex<HashMap<String, String>>>,
}

fn status(code: tonic::Code, message: impl Into<String>) -> RpcStatus {
    RpcStatus {
        code: code as i32,
        message: message.into(),
        details: vec![],
    }
}

/// Run the worker until interrupted (or `max_leases` are done).
pub fn run(args: WorkerArgs, say: &(dyn Fn(&str) + Sync)) -> Result<Exit> {
    crate::exec::interrupt::install();
    let url = super::ServerUrl::parse(&args.server).map_err(|e| {
        Error::user(format!("--server: {e}")).hint("e.g. --server grpc://127.0.0.1:50051")
    })?;
    let token = std::env::var("REFINE_REMOTE_TOKEN").ok();
    let headers = super::headers(&args.headers, token.as_deref()).map_err(Error::user)?;
    let mut props: Vec<(String, String)> = args.platform.clone();
    if !props.iter().any(|(k, _)| k == "ISA") {
        props.push(("ISA".into(), plan::isa(Arch::host()).into()));
    }
    if !props.iter().any(|(k, _)| k == "OSFamily") {
        props.push(("OSFamily".into(), "linux".into()));
    }
    // The machine whose programs it runs: hybrid plans (whose images hold
    // the cross tools of an x86-64 machine) come only to workers that run
    // those (plan::HOST_KEY).
    if !props.iter().any(|(k, _)| k == plan::HOST_KEY) {
        props.push((plan::HOST_KEY.into(), plan::isa(Arch::host()).into()));
    }
    // The architectures it advertises, each one it can run (natively or
    // by the host's qemu handlers).
    let mut arches = Vec::new();
    for (k, v) in props
        .iter()
        .filter(|(k, _)| k == "ISA" || k == plan::HOST_KEY)
    {
        let a = Arch::ALL
            .iter()
            .copied()
            .find(|a| plan::isa(*a) == v)
            .ok_or_else(|| {
                Error::user(format!(
                    "--platform {k}={v}: not an architecture refine builds for"
                ))
                .hint("ISA is one of x86-64, aarch64, s390x, ppc64le")
            })?;
        if !arches.contains(&a) {
            arches.push(a);
        }
    }
    let isa = props
        .iter()
        .find(|(k, _)| k == "ISA")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let exec = crate::ops::executor(crate::ops::ExecutorKind::Podman);
    let emulate: Vec<Arch> = arches
        .iter()
        .copied()
        .filter(|a| *a != Arch::host())
        .collect();
    for m in exec
        .preflight(&crate::exec::Needs {
            containers: true,
            emulate,
            ..Default::default()
        })
        .map_err(Error::from)?
    {
        say(&m);
    }
    let store = LocalStore::open(&args.store).map_err(Error::from)?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "worker".into());
    let bot_id = args
        .name
        .clone()
        .unwrap_or_else(|| format!("{host}-{}", std::process::id()));
    let conn = Conn::new(url.clone(), headers.clone()).map_err(Error::env)?;
    let log_chan = match &args.log_stream {
        None => conn.chan.clone(),
        Some(u) => {
            let lu = super::ServerUrl::parse(u).map_err(|e| {
                Error::user(format!("--log-stream: {e}"))
                    .hint("e.g. --log-stream grpc://127.0.0.1:50052")
            })?;
            conn.also(&lu, headers).map_err(Error::env)?
        }
    };
    let jobs = args.jobs.max(1);
    let shared = Arc::new(Shared {
        conn,
        store,
        exec,
        bot_id: bot_id.clone(),
        isa: isa.clone(),
        arches,
        preparing: Mutex::new(()),
        log_chan,
        stream_names: Arc::default(),
        say: Box::new({
            let tag = bot_id.clone();
            move |s: &str| eprintln!("worker {tag}: {s}")
        }),
    });
    let instance = url.instance.clone();
    let parent = instance.clone();
    let worker = rw::Worker {
        devices: vec![rw::Device {
            handle: bot_id.clone(),
            properties: props
                .iter()
                .map(|(k, v)| rw::device::Property {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        }],
        properties: vec![],
        configs: vec![rw::worker::Config {
            key: "capacity".into(),
            value: jobs.to_string(),
        }],
    };
    say(&format!(
        "serving {url} as {bot_id} ({}; {jobs} at a time; store {})",
        props
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        args.store.display()
    ));
    let slots: Arc<Mutex<HashMap<String, Slot>>> = Arc::default();
    // Told when a lease finishes.
    let done = Arc::new(tokio::sync::Notify::new());
    let mut taken = 0usize;
    let mut outage: Option<Instant> = None;
    let mut bots = rw::bots_client::BotsClient::new(shared.conn.chan.clone());
    'sessions: loop {
        if crate::exec::interrupt::requested() {
            break;
        }
        let created = shared.conn.block(bots.create_bot_session(super::req(
            rw::CreateBotSessionRequest {
                parent: parent.clone(),
                bot_session: Some(rw::BotSession {
                    bot_id: bot_id.clone(),
                    status: rw::BotStatus::Ok as i32,
                    worker: Some(worker.clone()),
                    ..Default::default()
                }),
            },
            BOT_CALL,
        )));
        let mut session = match created {
            Ok(s) => s.into_inner(),
            Err(e) => {
                // Credentials the server refuses, or a certificate this
                // machine does not trust, do not mend by waiting.
                if let Some(h) = super::credentials_hint(&super::status_line(&e)) {
                    return Err(Error::env(format!(
                        "the server {url} refuses this worker: {}",
                        super::status_line(&e)
                    ))
                    .hint(h));
                }
                if outage.is_none() {
                    say(&format!(
                        "the server does not answer ({}); trying again until it does",
                        super::status_line(&e)
                    ));
                    outage = Some(Instant::now());
                }
                std::thread::sleep(Duration::from_secs(2));
                continue;
            }
        };
        if let Some(t) = outage.take() {
            say(&format!(
                "the server is back after {:.0} s",
                t.elapsed().as_secs_f64()
            ));
        }
        // Results of a session the server forgot are not its any more.
        slots.lock().unwrap_or_else(|e| e.into_inner()).clear();
        // The server may hand out a lease with the session itself (it holds
        // CreateBotSession open until it has work or its time is up); the
        // next update would not send it again.
        taken += take_leases(&shared, &slots, &done, &session.leases);
        loop {
            if crate::exec::interrupt::requested() {
                break 'sessions;
            }
            let (leases, reported): (Vec<rw::Lease>, Vec<String>) = {
                let s = slots.lock().unwrap_or_else(|e| e.into_inner());
                let mut leases = Vec::new();
                let mut reported = Vec::new();
                for (id, slot) in s.iter() {
                    match slot {
                        Slot::Running => leases.push(rw::Lease {
                            id: id.clone(),
                            state: rw::LeaseState::Active as i32,
                            ..Default::default()
                        }),
                        Slot::Done(l) => {
                            leases.push(l.clone());
                            reported.push(id.clone());
                        }
                    }
                }
                (leases, reported)
            };
            session.leases = leases;
            session.status = rw::BotStatus::Ok as i32;
            // The server holds this call until it has work or 0.8 of its
            // deadline passes; a lease that finishes meanwhile ends the wait
            // (the call is dropped, which the server takes as cancelled),
            // so its result goes back at once.
            let call = bots.update_bot_session(super::req(
                rw::UpdateBotSessionRequest {
                    name: session.name.clone(),
                    bot_session: Some(session.clone()),
                    update_mask: None,
                },
                BOT_CALL,
            ));
            let finished = done.notified();
            let r = shared.conn.block(async {
                tokio::select! {
                    r = call => Some(r),
                    _ = finished => None,
                }
            });
            let Some(r) = r else {
                continue;
            };
            let next = match r {
                Ok(s) => {
                    note_streams(&shared, s.metadata());
                    let s = s.into_inner();
                    if std::env::var_os("REFINE_WORKER_TRACE").is_some() {
                        (shared.say)(&format!(
                            "session {} v{}: {} lease(s) {:?}",
                            s.name,
                            s.version,
                            s.leases.len(),
                            s.leases
                                .iter()
                                .map(|l| (l.id.clone(), l.state))
                                .collect::<Vec<_>>()
                        ));
                    }
                    s
                }
                Err(e) if e.code() == tonic::Code::DeadlineExceeded => continue,
                Err(e) => {
                    say(&format!(
                        "the session ended ({}); opening a new one",
                        super::status_line(&e)
                    ));
                    continue 'sessions;
                }
            };
            {
                let mut s = slots.lock().unwrap_or_else(|e| e.into_inner());
                for id in &reported {
                    s.remove(id);
                }
            }
            taken += take_leases(&shared, &slots, &done, &next.leases);
            session = next;
            if let Some(max) = args.max_leases {
                let s = slots.lock().unwrap_or_else(|e| e.into_inner());
                if taken >= max && s.is_empty() {
                    break 'sessions;
                }
            }
        }
    }
    say("stopped");
    Ok(Exit::Success)
}

/// Keep the log streams' write names the server sends with the leases
/// (BuildGrid: one `executeoperationmetadata-bin` trailer per lease of the
/// session, every update): the names of this update's leases replace the
/// last ones, so finished actions' names do not pile up.
fn note_streams(sh: &Shared, md: &tonic::metadata::MetadataMap) {
    let mut names = sh.stream_names.lock().unwrap_or_else(|e| e.into_inner());
    names.clear();
    for v in md.get_all_bin("executeoperationmetadata-bin") {
        let Ok(bytes) = v.to_bytes() else { continue };
        let Ok(m) = re::ExecuteOperationMetadata::decode(bytes.as_ref()) else {
            continue;
        };
        if let Some(d) = m.action_digest
            && !m.stdout_stream_name.is_empty()
        {
            names.insert(d.hash, m.stdout_stream_name);
        }
    }
}

/// Start a thread for each new active lease; how many were taken.
fn take_leases(
    shared: &Arc<Shared>,
    slots: &Arc<Mutex<HashMap<String, Slot>>>,
    done: &Arc<tokio::sync::Notify>,
    leases: &[rw::Lease],
) -> usize {
    let mut taken = 0;
    let mut s = slots.lock().unwrap_or_else(|e| e.into_inner());
    for lease in leases {
        let active = lease.state == rw::LeaseState::Active as i32
            || lease.state == rw::LeaseState::Pending as i32;
        if !active || s.contains_key(&lease.id) {
            continue;
        }
        s.insert(lease.id.clone(), Slot::Running);
        taken += 1;
        (shared.say)(&format!("lease {}: taken", lease.id));
        let shared = shared.clone();
        let slots = slots.clone();
        let lease = lease.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let id = lease.id.clone();
            let result = run_lease(&shared, &lease);
            let mut s = slots.lock().unwrap_or_else(|e| e.into_inner());
            // Only if the lease is still this session's.
            if s.contains_key(&id) {
                s.insert(id, Slot::Done(result));
            }
            drop(s);
            done.notify_one();
        });
    }
    taken
}

/// Run one lease; the lease as it is reported back.
fn run_lease(sh: &Shared, lease: &rw::Lease) -> rw::Lease {
    let started = std::time::SystemTime::now();
    let (result, st) = match execute(sh, lease) {
        Ok(r) => (Some(r), status(tonic::Code::Ok, "")),
        Err((code, m)) => {
            (sh.say)(&format!("lease {}: {m}", lease.id));
            (None, status(code, m))
        }
    };
    let result = result.map(|mut r: re::ActionResult| {
        let meta = r.execution_metadata.get_or_insert_with(Default::default);
        meta.worker = sh.bot_id.clone();
        meta.worker_start_timestamp = Some(timestamp(started));
        meta.worker_completed_timestamp = Some(timestamp(std::time::SystemTime::now()));
        super::pack_any("build.bazel.remote.execution.v2.ActionResult", &r)
    });
    rw::Lease {
        id: lease.id.clone(),
        state: rw::LeaseState::Completed as i32,
        status: Some(st),
        result,
        ..Default::default()
    }
}

type Failure = (tonic::Code, String);

fn timestamp(t: std::time::SystemTime) -> bazel_remote_apis::google::protobuf::Timestamp {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    bazel_remote_apis::google::protobuf::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn fault(f: Fault) -> Failure {
    match f {
        // The server's CAS did not answer: another try may work.
        Fault::Unreachable(m) => (tonic::Code::Unavailable, m),
        Fault::Refused(m) => (tonic::Code::FailedPrecondition, m),
    }
}

fn execute(sh: &Shared, lease: &rw::Lease) -> std::result::Result<re::ActionResult, Failure> {
    let chan = &sh.conn.chan;
    let instance = sh.conn.instance();
    let payload = lease.payload.as_ref().ok_or((
        tonic::Code::InvalidArgument,
        "the lease carries no action".to_string(),
    ))?;
    let bad = |m: String| (tonic::Code::FailedPrecondition, m);
    let read = |d: &re::Digest| {
        sh.conn
            .block(cas::read_small(chan, &instance, d, plan::MESSAGE_LIMIT))
            .map_err(fault)
    };
    let action = if payload
        .type_url
        .ends_with("build.bazel.remote.execution.v2.Action")
    {
        re::Action::decode(payload.value.as_slice()).map_err(|e| bad(format!("the Action: {e}")))?
    } else if payload
        .type_url
        .ends_with("build.bazel.remote.execution.v2.Digest")
    {
        let d = re::Digest::decode(payload.value.as_slice())
            .map_err(|e| bad(format!("the Digest: {e}")))?;
        re::Action::decode(read(&d)?.as_slice()).map_err(|e| bad(format!("the Action: {e}")))?
    } else {
        return Err(bad(format!(
            "a lease of {} is not an action",
            payload.type_url
        )));
    };
    let action_digest = super::message_digest(&action).0;
    let command_d = action
        .command_digest
        .clone()
        .ok_or_else(|| bad("no command".into()))?;
    let root_d = action
        .input_root_digest
        .clone()
        .ok_or_else(|| bad("no input root".into()))?;
    let command = re::Command::decode(read(&command_d)?.as_slice())
        .map_err(|e| bad(format!("the Command: {e}")))?;
    let root = re::Directory::decode(read(&root_d)?.as_slice())
        .map_err(|e| bad(format!("the input root: {e}")))?;
    let mut reader = |d: &re::Digest| read(d).map_err(|(_, m)| m);
    let un = plan::unpack(&command, &root, &mut reader).map_err(bad)?;
    let mut p = un.plan;
    plan::check_for_worker(&p).map_err(bad)?;
    // Where it may run: this worker's ISA, an architecture it runs.
    if let Some(isa) = un.platform.get("ISA")
        && isa != &sh.isa
    {
        return Err(bad(format!(
            "the action asks for ISA={isa}; this worker is ISA={}",
            sh.isa
        )));
    }
    let mut runs = sh.arches.clone();
    runs.push(Arch::host());
    plan::check_runnable(&p, &runs).map_err(bad)?;
    // The image, only by a digest this worker checks: a tarball's rootfs
    // is a blob of the input root (fetched and checked below), loaded under
    // a name made from that digest; an OCI image is pinned
    // (check_for_worker).
    if let crate::sched::sandbox::ImagePlan::Tarball { tag, rootfs, .. } = &mut p.image {
        *tag = plan::worker_tag(rootfs);
    }
    let preparing = sh.preparing.lock().unwrap_or_else(|e| e.into_inner());
    let t = Instant::now();
    let fetched = sh
        .conn
        .block(cas::fetch_into(chan, &instance, &sh.store.cas, &un.blobs))
        .map_err(fault)?;
    plan::check_trees(&p, &sh.store, &un.blobs).map_err(bad)?;
    let fetch_secs = t.elapsed().as_secs_f64();
    let host = |e: Error| {
        (
            tonic::Code::Unavailable,
            format!("{}: {}", e.message, e.hint.unwrap_or_default()),
        )
    };
    let scratch = sh.store.tmp_dir().map_err(|e| host(e.into()))?;
    p.name = format!(
        "refine-w{}-{}",
        std::process::id(),
        &action_digest.hash[..16]
    );
    p.foreign = p.arch != Arch::host();
    let label = p.label.clone();
    let cas_ref = &sh.store.cas;
    let recipe = |_: &str, d: &crate::key::Digest| cas_ref.read_blob(d).ok();
    let spec = crate::sched::sandbox::materialize_with(
        p,
        &sh.store,
        sh.exec.as_ref(),
        &recipe,
        scratch.path(),
    )
    .map_err(host)?;
    drop(preparing);
    let log_path = scratch.path().join("log");
    let mut log = std::fs::File::options()
        .create(true)
        .read(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| host(e.into()))?;
    let _ = writeln!(
        log,
        "worker {}: {label}; inputs fetched in {fetch_secs:.1} s ({})",
        sh.bot_id,
        bytesize::ByteSize(fetched)
    );
    (sh.say)(&format!(
        "{label}: running (action {})",
        &action_digest.hash[..12]
    ));
    // The log, streamed while the step runs once the server has named its
    // stream (with the lease, or with the next session update).
    let (fin_tx, fin_rx) = tokio::sync::watch::channel(false);
    let tail = sh.conn.rt.spawn({
        let names = sh.stream_names.clone();
        let chan = sh.log_chan.clone();
        let hash = action_digest.hash.clone();
        let path = log_path.clone();
        let mut fin = fin_rx.clone();
        async move {
            let name = loop {
                if let Some(n) = names.lock().unwrap_or_else(|e| e.into_inner()).get(&hash) {
                    break n.clone();
                }
                if *fin.borrow_and_update() {
                    return None;
                }
                let _ = tokio::time::timeout(Duration::from_millis(200), fin.changed()).await;
            };
            Some(super::logstream::tail_into(chan, name, path, fin_rx).await)
        }
    });
    let t = Instant::now();
    let st = sh.exec.run(&spec, &mut log);
    // The stream finished before the result goes back (bounded: a log
    // stream that does not answer does not hold the result).
    let _ = fin_tx.send(true);
    let stop_tail = tail.abort_handle();
    let tailed = sh
        .conn
        .block(async { tokio::time::timeout(Duration::from_secs(15), tail).await });
    stop_tail.abort();
    match tailed {
        Ok(Ok(Some(Err(e)))) => (sh.say)(&format!("{label}: the log stream failed: {e}")),
        Ok(Ok(Some(Ok(n)))) => (sh.say)(&format!("{label}: {n} bytes of log streamed")),
        _ => {}
    }
    sh.stream_names
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&action_digest.hash);
    let st = st.map_err(|e| host(e.into()))?;
    let secs = t.elapsed().as_secs_f64();
    let exit_code = match st {
        RunStatus::Success => 0,
        RunStatus::Failed(c) => c,
        RunStatus::TimedOut(d) => {
            return Err((
                tonic::Code::DeadlineExceeded,
                format!("ran past its timeout ({} s)", d.as_secs()),
            ));
        }
        RunStatus::Interrupted => {
            return Err((
                tonic::Code::Unavailable,
                "the worker was interrupted".into(),
            ));
        }
    };
    (sh.say)(&format!("{label}: exit code {exit_code} in {secs:.1} s"));
    let log_bytes = std::fs::read(&log_path).map_err(|e| host(e.into()))?;
    let log_blob = cas::Blob::bytes(log_bytes);
    let mut result = re::ActionResult {
        exit_code,
        stdout_digest: Some(super::digest(&log_blob.digest, log_blob.size)),
        ..Default::default()
    };
    let mut blobs = vec![log_blob];
    if exit_code == 0 {
        let tree = sh
            .store
            .cas
            .put_tree(&spec.out)
            .map_err(|e| host(e.into()))?;
        for (_, d, size) in tree.files() {
            blobs.push(cas::Blob {
                digest: d.clone(),
                size,
                src: cas::Src::File(sh.store.cas.blob_path(d)),
            });
        }
        let t = super::tree::to_reapi(&tree);
        let (td, tb) = super::message_digest(&t);
        blobs.push(cas::Blob::bytes(tb));
        result.output_directories.push(re::OutputDirectory {
            path: plan::OUT_DIR.into(),
            tree_digest: Some(td),
            is_topologically_sorted: false,
            root_directory_digest: None,
        });
    }
    sh.conn
        .block(cas::upload(chan, &instance, &blobs))
        .map_err(fault)?;
    Ok(result)
}
