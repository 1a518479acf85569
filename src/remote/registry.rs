//! A small OCI distribution client: manifests, blobs, tags, catalog.
//!
//! Written on reqwest (blocking) rather than an OCI crate so that blob
//! uploads stream from a file (a 1 GiB artifact is never held in memory)
//! and downloads stream into the store while being hashed. It speaks the
//! distribution spec's token auth (anonymous or with credentials), basic
//! auth, HTTPS with the system's trust roots, and plain HTTP when asked
//! (`--insecure`, for registries on loopback).
//!
//! A request, and every read of a download, waits on a thread of its own
//! while the caller watches for SIGINT/SIGTERM: a stalled registry never
//! holds an interrupted run until the request timeout (a socket read
//! cannot be woken; the abandoned thread ends with the process).
//!
//! Every request is retried a bounded number of times, with exponential
//! backoff, on connection errors, timeouts, 429 and 5xx. After a request
//! fails that way for good, the registry is marked down for the rest of the
//! run: later requests fail at once with the first reason, instead of each
//! waiting out its own timeouts.

use super::RemoteError;
use super::auth::{Challenge, Credentials};
use crate::key::{Digest, Sha256Writer};
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

pub struct Registry {
    /// `https://host:port` or `http://host:port`.
    base: String,
    host: String,
    client: Client,
    creds: Option<Credentials>,
    /// Authorization header per repository scope.
    auth: Mutex<HashMap<String, String>>,
    /// Why the registry is considered down, once it is.
    down: Mutex<Option<String>>,
    attempts: u32,
}

/// Why a wait on the registry ended early.
const INTERRUPTED: &str = "interrupted";

/// Run `f` on a thread of its own and wait for it, unless refine is asked
/// to stop first (then `Err`, and the thread is left to its socket).
fn interruptible<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RemoteError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(v) => return Ok(v),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if crate::exec::interrupt::requested() {
                    return Err(RemoteError::Remote(INTERRUPTED.into()));
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(RemoteError::Remote("the request's thread ended".into()));
            }
        }
    }
}

/// Copy a response body into `w`, at most `limit` bytes, a chunk at a time
/// from a reading thread, so that an interrupt ends a stalled transfer.
fn copy_interruptible(r: Response, w: &mut dyn Write, limit: u64) -> Result<u64, RemoteError> {
    use std::io::Read;
    let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<u8>>>(4);
    std::thread::spawn(move || {
        let mut r = r.take(limit);
        loop {
            let mut buf = vec![0u8; 256 << 10];
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send(Ok(buf)).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    break;
                }
            }
        }
    });
    let mut n = 0u64;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(chunk)) => {
                // Where the download lands is this machine's (the local
                // store's temp file): its failure is not the registry's.
                w.write_all(&chunk).map_err(|source| {
                    RemoteError::Store(crate::store::StoreError::Io {
                        path: "the file being downloaded".into(),
                        source,
                    })
                })?;
                n += chunk.len() as u64;
            }
            Ok(Err(e)) => return Err(RemoteError::Remote(format!("the transfer broke off: {e}"))),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(n),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if crate::exec::interrupt::requested() {
                    return Err(RemoteError::Remote(INTERRUPTED.into()));
                }
            }
        }
    }
}

/// Settings from the environment: `REFINE_REMOTE_TIMEOUT` (seconds per
/// request, default 600) and `REFINE_REMOTE_RETRIES` (attempts, default 3).
fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Registry {
    pub fn new(
        host: &str,
        insecure: bool,
        creds: Option<Credentials>,
    ) -> Result<Registry, RemoteError> {
        let timeout = env_num("REFINE_REMOTE_TIMEOUT", 600);
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(timeout.min(10)))
            .timeout(Duration::from_secs(timeout))
            .user_agent(concat!("refine/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RemoteError::Remote(format!("cannot make an HTTP client: {e}")))?;
        let scheme = if insecure { "http" } else { "https" };
        Ok(Registry {
            base: format!("{scheme}://{host}"),
            host: host.to_string(),
            client,
            creds,
            auth: Mutex::new(HashMap::new()),
            down: Mutex::new(None),
            attempts: env_num("REFINE_REMOTE_RETRIES", 3).max(1) as u32,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn check_down(&self) -> Result<(), RemoteError> {
        match &*self.down.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(why) => Err(RemoteError::Remote(format!("unreachable ({why})"))),
            None => Ok(()),
        }
    }

    fn mark_down(&self, why: &str) {
        let mut d = self.down.lock().unwrap_or_else(|e| e.into_inner());
        if d.is_none() {
            *d = Some(why.to_string());
        }
    }

    /// Send a request (made fresh for each attempt by `build`), handling
    /// auth challenges and retrying transient failures.
    fn send(
        &self,
        scope: &str,
        build: &dyn Fn(&Client) -> Result<RequestBuilder, RemoteError>,
    ) -> Result<Response, RemoteError> {
        self.check_down()?;
        let mut last = String::new();
        let mut authed_once = false;
        let mut attempt = 0;
        while attempt < self.attempts {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(100 * 4u64.pow(attempt - 1)));
            }
            attempt += 1;
            let mut req = build(&self.client)?;
            if let Some(h) = self
                .auth
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(scope)
            {
                req = req.header("Authorization", h.clone());
            }
            match interruptible(move || req.send())? {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !authed_once => {
                    authed_once = true;
                    attempt -= 1; // answering a challenge is not a retry
                    let challenge = resp
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .map(Challenge::parse);
                    let header = match challenge {
                        Some(Challenge::Basic) => match &self.creds {
                            Some(c) => c.basic_header(),
                            None => {
                                return Err(RemoteError::Remote(format!(
                                    "{} asks for a user name and password; none are configured \
                                     (docker login / REGISTRY_AUTH_FILE / REFINE_REGISTRY_USERNAME and _PASSWORD)",
                                    self.host
                                )));
                            }
                        },
                        Some(Challenge::Bearer { realm, service }) => {
                            self.token(&realm, service.as_deref(), scope)?
                        }
                        None => {
                            return Err(RemoteError::Remote(format!(
                                "{}: 401 without a usable challenge",
                                self.host
                            )));
                        }
                    };
                    self.auth
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(scope.to_string(), header);
                }
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    return Err(RemoteError::Remote(format!(
                        "{} refused the credentials (401)",
                        self.host
                    )));
                }
                Ok(resp)
                    if resp.status().is_server_error()
                        || resp.status() == StatusCode::TOO_MANY_REQUESTS =>
                {
                    last = format!("{} answered {}", self.host, resp.status());
                }
                Ok(resp) => return Ok(resp),
                Err(e) => {
                    last = describe(&e);
                    if e.is_builder() {
                        break;
                    }
                }
            }
        }
        self.mark_down(&last);
        Err(RemoteError::Remote(format!(
            "{last} (after {attempt} attempts)"
        )))
    }

    /// Fetch a bearer token for `scope` from the realm the registry named.
    fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String, RemoteError> {
        let mut req = self.client.get(realm).query(&[("scope", scope)]);
        if let Some(s) = service {
            req = req.query(&[("service", s)]);
        }
        if let Some(c) = &self.creds {
            req = req.header("Authorization", c.basic_header());
        }
        let resp = interruptible(move || req.send())?
            .map_err(|e| RemoteError::Remote(format!("token from {realm}: {}", describe(&e))))?;
        if !resp.status().is_success() {
            return Err(RemoteError::Remote(format!(
                "token from {realm}: {}",
                resp.status()
            )));
        }
        let v: serde_json::Value = resp
            .json()
            .map_err(|e| RemoteError::Remote(format!("token from {realm}: {e}")))?;
        let t = v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .ok_or_else(|| {
                RemoteError::Remote(format!("token from {realm}: no token in the answer"))
            })?;
        Ok(format!("Bearer {t}"))
    }

    fn scope(repo: &str, push: bool) -> String {
        format!(
            "repository:{repo}:{}",
            if push { "pull,push" } else { "pull" }
        )
    }

    /// Check the `/v2/` endpoint (and credentials).
    pub fn ping(&self) -> Result<(), RemoteError> {
        let r = self.send("registry:catalog:*", &|c| Ok(c.get(self.url("/v2/"))))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(RemoteError::Remote(format!(
                "{}: /v2/ answered {}",
                self.host,
                r.status()
            )))
        }
    }

    pub fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<(Vec<u8>, Digest)>, RemoteError> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let r = self.send(&Self::scope(repo, false), &|c| {
            Ok(c.get(&url).header("Accept", MANIFEST_TYPE))
        })?;
        match r.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let bytes = r
                    .bytes()
                    .map_err(|e| RemoteError::Remote(describe(&e)))?
                    .to_vec();
                Ok(Some((bytes.clone(), crate::key::sha256_bytes(&bytes))))
            }
            s => Err(RemoteError::Remote(format!(
                "manifest {repo}:{reference}: {s}"
            ))),
        }
    }

    pub fn manifest_exists(&self, repo: &str, reference: &str) -> Result<bool, RemoteError> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let r = self.send(&Self::scope(repo, false), &|c| {
            Ok(c.head(&url).header("Accept", MANIFEST_TYPE))
        })?;
        match r.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            s => Err(RemoteError::Remote(format!(
                "manifest {repo}:{reference}: {s}"
            ))),
        }
    }

    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        body: &[u8],
    ) -> Result<(), RemoteError> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let r = self.send(&Self::scope(repo, true), &|c| {
            Ok(c.put(&url)
                .header("Content-Type", MANIFEST_TYPE)
                .body(body.to_vec()))
        })?;
        if r.status().is_success() {
            Ok(())
        } else {
            let s = r.status();
            Err(RemoteError::Remote(format!(
                "pushing manifest {repo}:{reference}: {s} {}",
                r.text()
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect::<String>()
            )))
        }
    }

    pub fn blob_exists(&self, repo: &str, d: &Digest) -> Result<bool, RemoteError> {
        let url = self.url(&format!("/v2/{repo}/blobs/{d}"));
        let r = self.send(&Self::scope(repo, false), &|c| Ok(c.head(&url)))?;
        Ok(r.status().is_success())
    }

    /// Stream a blob into `w`, checking its digest and that it is at most
    /// `max` bytes (a registry that keeps sending is cut off there);
    /// `Ok(false)` if the registry does not have it.
    pub fn get_blob(
        &self,
        repo: &str,
        d: &Digest,
        w: &mut dyn Write,
        max: u64,
    ) -> Result<bool, RemoteError> {
        let url = self.url(&format!("/v2/{repo}/blobs/{d}"));
        let r = self.send(&Self::scope(repo, false), &|c| Ok(c.get(&url)))?;
        match r.status() {
            StatusCode::NOT_FOUND => return Ok(false),
            s if !s.is_success() => return Err(RemoteError::Remote(format!("blob {d}: {s}"))),
            _ => {}
        }
        let mut hw = Sha256Writer::new(w);
        let n = copy_interruptible(r, &mut hw, max.saturating_add(1)).map_err(|e| match e {
            RemoteError::Remote(m) => RemoteError::Remote(format!("blob {d}: {m}")),
            local => local,
        })?;
        if n > max {
            return Err(RemoteError::Remote(format!(
                "blob {d}: the registry sent more than the {max} bytes it should be; discarded"
            )));
        }
        let (got, _, _) = hw.finish();
        if &got != d {
            return Err(RemoteError::Remote(format!(
                "blob {d}: the registry served other bytes (sha256 {got}); discarded"
            )));
        }
        Ok(true)
    }

    /// Upload a blob from a file: small ones in one PUT, large ones in
    /// chunks of [`CHUNK`] bytes (PATCH, then PUT with the digest), so a
    /// large artifact is read once, a chunk at a time, never held whole.
    pub fn upload_file(&self, repo: &str, d: &Digest, path: &Path) -> Result<(), RemoteError> {
        if self.blob_exists(repo, d)? {
            return Ok(());
        }
        let io = |e: std::io::Error| RemoteError::Remote(format!("{}: {e}", path.display()));
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size <= CHUNK as u64 {
            let bytes = std::fs::read(path).map_err(io)?;
            return self.upload_bytes(repo, d, &bytes);
        }
        let scope = Self::scope(repo, true);
        let mut url = self.start_upload(repo, &scope)?;
        let mut f = std::fs::File::open(path).map_err(io)?;
        let mut buf = vec![0u8; CHUNK];
        let mut offset = 0u64;
        loop {
            let mut n = 0;
            while n < buf.len() {
                let k = std::io::Read::read(&mut f, &mut buf[n..]).map_err(io)?;
                if k == 0 {
                    break;
                }
                n += k;
            }
            if n == 0 {
                break;
            }
            let chunk = &buf[..n];
            let range = format!("{offset}-{}", offset + n as u64 - 1);
            let r = self.send(&scope, &|c| {
                Ok(c.patch(&url)
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Range", range.clone())
                    .body(chunk.to_vec()))
            })?;
            if r.status() != StatusCode::ACCEPTED {
                return Err(RemoteError::Remote(format!(
                    "uploading {d} to {repo} at {offset}: {}",
                    r.status()
                )));
            }
            url = self.location(&r, repo)?;
            offset += n as u64;
        }
        let put = with_digest(&url, d);
        let r = self.send(&scope, &|c| Ok(c.put(&put).header("Content-Length", "0")))?;
        if r.status() == StatusCode::CREATED {
            Ok(())
        } else {
            Err(RemoteError::Remote(format!(
                "finishing the upload of {d} to {repo}: {}",
                r.status()
            )))
        }
    }

    pub fn upload_bytes(&self, repo: &str, d: &Digest, bytes: &[u8]) -> Result<(), RemoteError> {
        if self.blob_exists(repo, d)? {
            return Ok(());
        }
        let scope = Self::scope(repo, true);
        let url = with_digest(&self.start_upload(repo, &scope)?, d);
        let r = self.send(&scope, &|c| {
            Ok(c.put(&url)
                .header("Content-Type", "application/octet-stream")
                .body(bytes.to_vec()))
        })?;
        if r.status() == StatusCode::CREATED {
            Ok(())
        } else {
            Err(RemoteError::Remote(format!(
                "uploading {d} to {repo}: {} {}",
                r.status(),
                r.text()
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect::<String>()
            )))
        }
    }

    fn start_upload(&self, repo: &str, scope: &str) -> Result<String, RemoteError> {
        let start = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let r = self.send(scope, &|c| Ok(c.post(&start).header("Content-Length", "0")))?;
        if r.status() != StatusCode::ACCEPTED {
            return Err(RemoteError::Remote(format!(
                "starting an upload to {repo}: {}",
                r.status()
            )));
        }
        self.location(&r, repo)
    }

    fn location(&self, r: &Response, repo: &str) -> Result<String, RemoteError> {
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RemoteError::Remote(format!("uploading to {repo}: no Location")))?;
        Ok(
            if location.starts_with("http://") || location.starts_with("https://") {
                location.to_string()
            } else {
                self.url(location)
            },
        )
    }

    /// Repositories under the registry (the catalog may be paged).
    pub fn catalog(&self) -> Result<Vec<String>, RemoteError> {
        let mut out = Vec::new();
        let mut next = Some(self.url("/v2/_catalog?n=1000"));
        while let Some(url) = next.take() {
            let r = self.send("registry:catalog:*", &|c| Ok(c.get(&url)))?;
            if !r.status().is_success() {
                return Err(RemoteError::Remote(format!("catalog: {}", r.status())));
            }
            next = link_next(&r).map(|l| self.url(&l));
            let v: serde_json::Value = r
                .json()
                .map_err(|e| RemoteError::Remote(format!("catalog: {e}")))?;
            out.extend(
                v["repositories"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str().map(str::to_string)),
            );
        }
        Ok(out)
    }

    pub fn tags(&self, repo: &str) -> Result<Vec<String>, RemoteError> {
        let url = self.url(&format!("/v2/{repo}/tags/list"));
        let r = self.send(&Self::scope(repo, false), &|c| Ok(c.get(&url)))?;
        if r.status() == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if !r.status().is_success() {
            return Err(RemoteError::Remote(format!(
                "tags of {repo}: {}",
                r.status()
            )));
        }
        let v: serde_json::Value = r
            .json()
            .map_err(|e| RemoteError::Remote(format!("tags of {repo}: {e}")))?;
        Ok(v["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect())
    }
}

/// Upload chunk size: large enough to keep the connection busy, small
/// enough to stay out of the way of memory.
pub const CHUNK: usize = 16 << 20;

fn with_digest(url: &str, d: &Digest) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}digest={d}")
}

fn link_next(r: &Response) -> Option<String> {
    let link = r.headers().get("link")?.to_str().ok()?;
    let start = link.find('<')? + 1;
    let end = link[start..].find('>')? + start;
    Some(link[start..end].to_string())
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        // The innermost cause says it best ("Connection refused").
        let mut src: &dyn std::error::Error = e;
        while let Some(s) = src.source() {
            src = s;
        }
        format!("cannot connect: {src}")
    } else {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            msg = format!("{msg}: {s}");
            src = s.source();
        }
        msg
    }
}

/// The most a config blob may be (it holds a preimage and a tree manifest).
pub const MAX_CONFIG: u64 = 64 << 20;

/// Read a whole small blob (a config) into memory, digest-checked.
pub fn read_small(reg: &Registry, repo: &str, d: &Digest) -> Result<Option<Vec<u8>>, RemoteError> {
    let mut buf = Vec::new();
    if reg.get_blob(repo, d, &mut buf, MAX_CONFIG)? {
        Ok(Some(buf))
    } else {
        Ok(None)
    }
}
