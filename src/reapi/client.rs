//! The client: a build step run on an REAPI server's workers.
//!
//! The server's Action Cache is asked first (nothing is uploaded for a
//! hit); then the inputs the server lacks are uploaded and the action is
//! executed, the operation followed (WaitExecution when the stream drops)
//! and bounded: an action no worker takes within the queue timeout is
//! cancelled and fails with the platform it asked for. The output tree is
//! fetched blob by blob, each checked against its digest, and written
//! under `out` with every path confined; the scheduler then collects it
//! as it collects a local build's.

use super::cas::{self, Fault};
use super::{Conn, plan, re};
use crate::exec::RunStatus;
use crate::key::Digest;
use crate::sched::sandbox::SandboxPlan;
use crate::store::LocalStore;
use crate::store::limits::OutputLimits;
use bazel_remote_apis::google::longrunning as lr;
use prost::Message;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Settings of the client.
#[derive(Clone, Debug)]
pub struct Settings {
    /// No local build when the server cannot be reached.
    pub remote_only: bool,
    /// How long an action may wait for a worker before it fails.
    pub queue_timeout: Duration,
    /// The LogStream service running steps' logs are read from (default:
    /// the server).
    pub log_stream: Option<String>,
}

pub struct RemoteExecutor {
    conn: Conn,
    /// The log stream service, when it is not the server.
    log_chan: Option<super::Chan>,
    settings: Settings,
    /// Why the server was found unreachable (said once; the rest of the
    /// run builds locally).
    down: Mutex<Option<String>>,
}

/// A log stream being read into the node's log; stopped when dropped.
struct Follow {
    name: String,
    got: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: Option<tokio::task::JoinHandle<Option<String>>>,
}

impl Follow {
    fn start(chan: super::Chan, name: String, file: std::fs::File) -> Follow {
        let got = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let task = tokio::spawn(super::logstream::follow(
            chan,
            name.clone(),
            file,
            got.clone(),
        ));
        Follow {
            name,
            got,
            task: Some(task),
        }
    }

    /// Wait (bounded) for the stream's end: the worker finishes it before
    /// it reports the result.
    async fn finish(&mut self, log: &mut std::fs::File) {
        let Some(task) = self.task.take() else {
            return;
        };
        let stop = task.abort_handle();
        match tokio::time::timeout(Duration::from_secs(15), task).await {
            Ok(Ok(None)) => {}
            Ok(Ok(Some(why))) => {
                let _ = writeln!(log, "\nremote: the log stream stopped early ({why})");
            }
            _ => {
                stop.abort();
                let _ = writeln!(log, "\nremote: the log stream did not end");
            }
        }
    }

    /// Bytes of the log it appended.
    fn got(&self) -> u64 {
        self.got.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// One round of [`RemoteExecutor::run`].
enum Once {
    Ran(Ran),
    /// The Action Cache answered, but the outputs it names cannot be had.
    CachedUnusable(String),
}

/// How a step went on the server.
pub enum Ran {
    Done {
        status: RunStatus,
        /// The worker that ran it (as the server says).
        worker: String,
        /// The server's Action Cache answered.
        cached: bool,
    },
    /// The server could not be reached: build locally (unless
    /// `--remote-only`).
    Unreachable(String),
}

fn refused(url: &super::ServerUrl, m: impl std::fmt::Display) -> crate::error::Error {
    let m = m.to_string();
    // A server that does not know a property refine sends (BuildGrid:
    // "Unregistered platform property").
    let hint = if m.contains("platform property") && m.contains(plan::HOST_KEY) {
        format!(
            "the server must match workers on `{}` (hybrid plans need a worker on the machine of their cross tools): add it to its platform property keys (BuildGrid: match-property-keys), see docs/REMOTE.md",
            plan::HOST_KEY
        )
    } else if let Some(h) = super::credentials_hint(&m) {
        h.to_string()
    } else {
        "check the server's log; `--remote-executor` off builds locally".to_string()
    };
    crate::error::Error::env(format!("remote executor {url}: {m}")).hint(hint)
}

impl RemoteExecutor {
    pub fn new(
        url: &str,
        raw_headers: &[String],
        settings: Settings,
    ) -> Result<RemoteExecutor, String> {
        let url = super::ServerUrl::parse(url)?;
        let token = std::env::var("REFINE_REMOTE_TOKEN").ok();
        let headers = super::headers(raw_headers, token.as_deref())?;
        let conn = Conn::new(url, headers.clone())?;
        let log_chan = match &settings.log_stream {
            None => None,
            Some(u) => Some(conn.also(
                &super::ServerUrl::parse(u).map_err(|e| format!("the log stream: {e}"))?,
                headers,
            )?),
        };
        Ok(RemoteExecutor {
            log_chan,
            conn,
            settings,
            down: Mutex::new(None),
        })
    }

    pub fn url(&self) -> &super::ServerUrl {
        &self.conn.url
    }

    pub fn remote_only(&self) -> bool {
        self.settings.remote_only
    }

    /// Why the server is not used any more in this run, if it is not.
    pub fn down(&self) -> Option<String> {
        self.down.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Mark the server unreachable; true the first time (to say it once).
    pub fn mark_down(&self, why: &str) -> bool {
        let mut d = self.down.lock().unwrap_or_else(|e| e.into_inner());
        if d.is_some() {
            return false;
        }
        *d = Some(why.to_string());
        true
    }

    /// Run a plan on the server; its output lands under `out` (which must
    /// not exist yet). `fresh`: a rebuild, not answered from the server's
    /// cache and not cached there.
    pub fn run(
        &self,
        p: &SandboxPlan,
        store: &LocalStore,
        recipe: &dyn Fn(&str, &Digest) -> Option<Vec<u8>>,
        limits: &OutputLimits,
        fresh: bool,
        log: &mut std::fs::File,
        out: &Path,
    ) -> Result<Ran, crate::error::Error> {
        let url = &self.conn.url;
        let prepared = plan::prepare(p, store, recipe, fresh).map_err(|e| refused(url, e))?;
        writeln!(
            log,
            "remote: action {}/{} on {url} ({} of inputs)",
            prepared.digest.hash,
            prepared.digest.size_bytes,
            bytesize::ByteSize(prepared.input_bytes)
        )?;
        // A cached result whose outputs the server no longer holds (or
        // holds damaged) is not the end: the action runs again.
        let mut lookup = !prepared.action.do_not_cache;
        loop {
            match self.run_once(p, &prepared, store, limits, lookup, log, out)? {
                Once::Ran(r) => return Ok(r),
                Once::CachedUnusable(why) => {
                    writeln!(
                        log,
                        "remote: the cached result's outputs cannot be fetched ({why}): executing again"
                    )?;
                    lookup = false;
                }
            }
        }
    }

    /// One round: the cache (when `lookup`) or an execution, then the
    /// outputs.
    #[allow(clippy::too_many_arguments)]
    fn run_once(
        &self,
        p: &SandboxPlan,
        prepared: &plan::Prepared,
        store: &LocalStore,
        limits: &OutputLimits,
        lookup: bool,
        log: &mut std::fs::File,
        out: &Path,
    ) -> Result<Once, crate::error::Error> {
        let url = &self.conn.url;
        let outcome = self.conn.block(self.execute(prepared, lookup, log));
        let (response, cached, streamed) = match outcome {
            Ok(r) => r,
            Err(Fault::Unreachable(m)) => return Ok(Once::Ran(Ran::Unreachable(m))),
            Err(Fault::Refused(m)) => return Err(refused(url, m)),
        };
        let result = response.result.unwrap_or_default();
        let worker = result
            .execution_metadata
            .as_ref()
            .map(|m| m.worker.clone())
            .unwrap_or_default();
        // The build's own log, as the worker captured it.
        let instance = self.conn.instance();
        if let Some(d) = &result.stdout_digest {
            match self.conn.block(cas::read_small(
                &self.conn.chan,
                &instance,
                d,
                plan::MESSAGE_LIMIT,
            )) {
                // What the stream already showed is not written twice.
                Ok(bytes) => log.write_all(&bytes[(streamed as usize).min(bytes.len())..])?,
                Err(e) => writeln!(log, "remote: the build's log could not be read: {e}")?,
            }
        } else if !result.stdout_raw.is_empty() {
            log.write_all(&result.stdout_raw)?;
        }
        if let Some(s) = &response.status
            && s.code != 0
        {
            // DEADLINE_EXCEEDED: the action's timeout.
            if s.code == tonic::Code::DeadlineExceeded as i32 {
                return Ok(Once::Ran(Ran::Done {
                    status: RunStatus::TimedOut(Duration::from_secs(p.limits.timeout)),
                    worker,
                    cached,
                }));
            }
            return Err(refused(
                url,
                format!(
                    "the action failed on the server: {} (code {})",
                    s.message, s.code
                ),
            ));
        }
        writeln!(
            log,
            "remote: {} by worker {} (exit code {})",
            if cached { "cached" } else { "ran" },
            if worker.is_empty() { "?" } else { &worker },
            result.exit_code
        )?;
        if result.exit_code != 0 {
            return Ok(Once::Ran(Ran::Done {
                status: RunStatus::Failed(result.exit_code),
                worker,
                cached,
            }));
        }
        let dir = result
            .output_directories
            .iter()
            .find(|d| d.path == plan::OUT_DIR)
            .and_then(|d| d.tree_digest.clone())
            .ok_or_else(|| refused(url, "the result has no `out` directory"));
        let dir = match dir {
            Ok(d) => d,
            Err(_) if cached && lookup => {
                return Ok(Once::CachedUnusable(
                    "it has no `out` directory".to_string(),
                ));
            }
            Err(e) => return Err(e),
        };
        let fetch = async {
            let bytes =
                cas::read_small(&self.conn.chan, &instance, &dir, plan::MESSAGE_LIMIT).await?;
            let t = re::Tree::decode(bytes.as_slice())
                .map_err(|e| Fault::Refused(format!("the output tree does not parse: {e}")))?;
            let tree = super::tree::from_reapi(&t, limits).map_err(Fault::Refused)?;
            let digests: Vec<re::Digest> = tree
                .files()
                .map(|(_, d, size)| super::digest(d, size))
                .collect();
            let n = cas::fetch_into(&self.conn.chan, &instance, &store.cas, &digests).await?;
            Ok::<_, Fault>((tree, n))
        };
        let (tree, fetched) = match self.conn.block(fetch) {
            Ok(t) => t,
            Err(Fault::Unreachable(m)) => return Ok(Once::Ran(Ran::Unreachable(m))),
            Err(Fault::Refused(m)) if cached && lookup => return Ok(Once::CachedUnusable(m)),
            Err(Fault::Refused(m)) => return Err(refused(url, m)),
        };
        store.checkouts.checkout(&tree, out)?;
        writeln!(
            log,
            "remote: output {} ({} files, {} fetched; REAPI tree {}/{})",
            tree.digest(),
            tree.files().count(),
            bytesize::ByteSize(fetched),
            dir.hash,
            dir.size_bytes
        )?;
        Ok(Once::Ran(Ran::Done {
            status: RunStatus::Success,
            worker,
            cached,
        }))
    }

    /// Ask the Action Cache, else upload and execute; the response and
    /// whether it came from the cache.
    async fn execute(
        &self,
        prepared: &plan::Prepared,
        lookup: bool,
        log: &mut std::fs::File,
    ) -> Result<(re::ExecuteResponse, bool, u64), Fault> {
        let chan = &self.conn.chan;
        let instance = self.conn.instance();
        // A rebuild (`refine verify`) is never answered from the cache.
        if lookup && !prepared.action.do_not_cache {
            let mut ac = re::action_cache_client::ActionCacheClient::new(chan.clone());
            let lookup = ac
                .get_action_result(super::req(
                    re::GetActionResultRequest {
                        instance_name: instance.clone(),
                        action_digest: Some(prepared.digest.clone()),
                        ..Default::default()
                    },
                    30,
                ))
                .await;
            match lookup {
                // A failure is never taken from the cache.
                Ok(r) if r.get_ref().exit_code == 0 => {
                    return Ok((
                        re::ExecuteResponse {
                            result: Some(r.into_inner()),
                            cached_result: true,
                            ..Default::default()
                        },
                        true,
                        0,
                    ));
                }
                Ok(_) => {}
                Err(s) if s.code() == tonic::Code::NotFound => {}
                Err(s) => return Err(s.into()),
            }
        }
        let t = Instant::now();
        let sent = cas::upload(chan, &instance, &prepared.blobs).await?;
        let _ = writeln!(
            log,
            "remote: uploaded {} in {:.1} s",
            bytesize::ByteSize(sent),
            t.elapsed().as_secs_f64()
        );
        let mut exec = re::execution_client::ExecutionClient::new(chan.clone());
        let mut stream = exec
            .execute(tonic::Request::new(re::ExecuteRequest {
                instance_name: instance.clone(),
                skip_cache_lookup: true,
                action_digest: Some(prepared.digest.clone()),
                ..Default::default()
            }))
            .await?
            .into_inner();
        let mut queued_since = Instant::now();
        let log_chan = self.log_chan.clone().unwrap_or_else(|| chan.clone());
        let mut following: Option<Follow> = None;
        let mut stage = 0;
        let mut name = String::new();
        let mut retries = 0;
        loop {
            // While queued, wait no longer than the queue allows; once a
            // worker runs it, the action's own timeout (and the worker's
            // watchdog) bound it, with a margin.
            let wait = if stage < 3 {
                self.settings
                    .queue_timeout
                    .saturating_sub(queued_since.elapsed())
                    .max(Duration::from_millis(1))
            } else {
                Duration::from_secs(
                    prepared
                        .action
                        .timeout
                        .as_ref()
                        .map_or(7200, |t| t.seconds as u64)
                        + 600,
                )
            };
            let next = tokio::time::timeout(wait, stream.message()).await;
            let op = match next {
                Err(_) if stage < 3 => {
                    let prop = |k: &str| {
                        prepared
                            .action
                            .platform
                            .iter()
                            .flat_map(|p| p.properties.iter())
                            .find(|p| p.name == k)
                            .map(|p| p.value.clone())
                    };
                    let isa = prop("ISA").unwrap_or_default();
                    let (wanted, how) = match prop(plan::HOST_KEY) {
                        Some(h) => (
                            format!("ISA={isa}, {}={h}", plan::HOST_KEY),
                            format!(
                                "a hybrid plan: start `refine worker --platform ISA={isa}` on an {h} machine, or build with `--toolchain emulated` for native {isa} workers"
                            ),
                        ),
                        None => (
                            format!("ISA={isa}"),
                            format!(
                                "start `refine worker --platform ISA={isa}`, or build without --remote-executor"
                            ),
                        ),
                    };
                    if !name.is_empty() {
                        let mut ops = lr::operations_client::OperationsClient::new(chan.clone());
                        let _ = ops
                            .cancel_operation(super::req(
                                lr::CancelOperationRequest { name: name.clone() },
                                10,
                            ))
                            .await;
                    }
                    return Err(Fault::Refused(format!(
                        "no worker with {wanted} took the action within {} s ({how})",
                        self.settings.queue_timeout.as_secs()
                    )));
                }
                Err(_) => {
                    return Err(Fault::Refused(
                        "the action ran past its timeout on the server".into(),
                    ));
                }
                Ok(Ok(Some(op))) => op,
                // The stream ended or broke before the operation was done
                // (a server restarting): wait on it by name.
                Ok(Ok(None)) | Ok(Err(_)) if !name.is_empty() && retries < 10 => {
                    retries += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    match exec
                        .wait_execution(tonic::Request::new(re::WaitExecutionRequest {
                            name: name.clone(),
                        }))
                        .await
                    {
                        Ok(s) => stream = s.into_inner(),
                        Err(s) if s.code() == tonic::Code::NotFound => {
                            return Err(Fault::Refused(format!(
                                "the server lost operation {name} (restarted without its database?)"
                            )));
                        }
                        Err(_) => {}
                    }
                    continue;
                }
                Ok(Ok(None)) => {
                    return Err(Fault::Unreachable(
                        "the server closed the operation before it was done".into(),
                    ));
                }
                Ok(Err(s)) => return Err(s.into()),
            };
            retries = 0;
            name = op.name.clone();
            let meta = op
                .metadata
                .as_ref()
                .and_then(|m| re::ExecuteOperationMetadata::decode(m.value.as_slice()).ok());
            // The log, read while the step runs, from the stream the server
            // names (a new name: the action runs again, elsewhere).
            if let Some(meta) = &meta
                && !meta.stdout_stream_name.is_empty()
                && following
                    .as_ref()
                    .is_none_or(|f| f.name != meta.stdout_stream_name)
                && let Ok(file) = log.try_clone()
            {
                if following.take().is_some() {
                    let _ = writeln!(log, "\nremote: the action runs again; its log follows");
                }
                let _ = writeln!(
                    log,
                    "remote: the log, streamed from {}",
                    meta.stdout_stream_name
                );
                following = Some(Follow::start(
                    log_chan.clone(),
                    meta.stdout_stream_name.clone(),
                    file,
                ));
            }
            if let Some(meta) = meta
                && meta.stage != stage
            {
                // Back in the queue (its worker went away): the wait for a
                // worker starts again.
                if meta.stage <= 2 && stage == 3 {
                    queued_since = Instant::now();
                }
                stage = meta.stage;
                let what = match stage {
                    1 => "checking the cache",
                    2 => "queued",
                    3 => "executing",
                    4 => "completed",
                    _ => "unknown stage",
                };
                // The streamed log ends before the step is said to.
                if stage == 4
                    && let Some(f) = &mut following
                {
                    f.finish(log).await;
                }
                let _ = writeln!(
                    log,
                    "remote: {what} ({:.1} s)",
                    queued_since.elapsed().as_secs_f64()
                );
            }
            if !op.done {
                continue;
            }
            return match op.result {
                Some(lr::operation::Result::Response(any)) => {
                    let r = re::ExecuteResponse::decode(any.value.as_slice()).map_err(|e| {
                        Fault::Refused(format!("the ExecuteResponse does not parse: {e}"))
                    })?;
                    let cached = r.cached_result;
                    let streamed = match &mut following {
                        Some(f) => {
                            f.finish(log).await;
                            f.got()
                        }
                        None => 0,
                    };
                    Ok((r, cached, streamed))
                }
                Some(lr::operation::Result::Error(s)) => Err(Fault::Refused(format!(
                    "the operation failed: {} (code {})",
                    s.message, s.code
                ))),
                None => Err(Fault::Refused(
                    "the operation is done but holds no result".into(),
                )),
            };
        }
    }
}
