//! A real OCI registry on loopback for tests (the CNCF distribution
//! registry, Debian's `docker-registry`), and a small fault-injecting proxy
//! in front of it. Both bind 127.0.0.1 only, bound their waits, and stop
//! what they started when dropped.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Registry {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Registry {
    /// Start a registry; with `auth`, htpasswd basic auth for that user.
    pub fn start(auth: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut auth_cfg = String::new();
        if let Some((user, pass)) = auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("htpasswd (apache2-utils) is needed for the auth tests; bash .ci/setup installs it");
            assert!(out.status.success());
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            auth_cfg = format!(
                "auth:\n  htpasswd:\n    realm: refine-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        let cfg = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth_cfg}",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), cfg).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("registry.log")).unwrap())
            .spawn()
            .expect("docker-registry is needed for the remote tests; bash .ci/setup installs it");
        let reg = Registry {
            child: Some(child),
            port,
            dir,
        };
        // Wait until it answers (bounded).
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the registry did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self, prefix: &str) -> String {
        format!("oci://{}/{prefix}", self.addr())
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stop it (its data stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the proxy does to traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    None = 0,
    /// Answer every request with 500.
    ServerError = 1,
    /// Cut blob downloads off after a few bytes.
    DropMidBlob = 2,
    /// Flip a byte in blob downloads.
    CorruptBlob = 3,
    /// Accept and never answer.
    Stall = 4,
    /// Require a bearer token from the proxy's own /token endpoint (which
    /// wants basic credentials user:secret).
    Bearer = 5,
    /// Send a blob download's headers and first bytes, then nothing (for
    /// up to a minute, or until the proxy stops).
    StallMidBlob = 6,
}

pub struct Proxy {
    pub port: u16,
    fault: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fault = Arc::new(AtomicU8::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s) = (fault.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (f, s) = (f.clone(), s.clone());
                std::thread::spawn(move || serve(conn, upstream, port, &f, &s));
            }
        });
        Proxy {
            port,
            fault,
            stop,
            thread: Some(thread),
        }
    }

    pub fn set(&self, f: Fault) {
        self.fault.store(f as u8, Ordering::SeqCst);
    }

    pub fn url(&self, prefix: &str) -> String {
        format!("oci://127.0.0.1:{}/{prefix}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_head(s: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Some((buf, rest));
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 1 << 20 {
            return None;
        }
    }
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn respond(c: &mut TcpStream, status: &str, headers: &str, body: &str) {
    let _ = write!(
        c,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    );
    let _ = c.flush();
}

/// One request per connection: the proxy asks for `Connection: close`.
fn serve(mut c: TcpStream, upstream: u16, own: u16, fault: &AtomicU8, stop: &AtomicBool) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
    let Some((head, mut body)) = read_head(&mut c) else {
        return;
    };
    let head_s = String::from_utf8_lossy(&head).into_owned();
    let line = head_s.lines().next().unwrap_or("").to_string();
    let mut parts = line.split(' ');
    let (method, path) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("").to_string(),
    );
    let len: usize = header(&head_s, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut chunk = vec![0u8; 1 << 16];
    while body.len() < len {
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let is_blob_get = method == "GET" && path.contains("/blobs/sha256:");
    match fault.load(Ordering::SeqCst) {
        1 => return respond(&mut c, "500 Internal Server Error", "", "injected fault"),
        4 => {
            let start = Instant::now();
            while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        }
        5 => {
            if path.starts_with("/token") {
                let want = "Basic dXNlcjpzZWNyZXQ="; // user:secret
                if header(&head_s, "authorization").as_deref() == Some(want) {
                    return respond(
                        &mut c,
                        "200 OK",
                        "Content-Type: application/json\r\n",
                        r#"{"token":"tok-123"}"#,
                    );
                }
                return respond(&mut c, "401 Unauthorized", "", "bad credentials");
            }
            if header(&head_s, "authorization").as_deref() != Some("Bearer tok-123") {
                let challenge = format!(
                    "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{own}/token\",service=\"refine-test\"\r\n"
                );
                return respond(&mut c, "401 Unauthorized", &challenge, "");
            }
        }
        _ => {}
    }
    // Forward, without the auth header the upstream does not want.
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return respond(&mut c, "502 Bad Gateway", "", "");
    };
    let mut fwd = String::new();
    for (i, l) in head_s.split("\r\n").enumerate() {
        if l.is_empty() {
            continue;
        }
        let lower = l.to_ascii_lowercase();
        if i > 0 && (lower.starts_with("connection:") || lower.starts_with("authorization:")) {
            continue;
        }
        fwd.push_str(l);
        fwd.push_str("\r\n");
    }
    fwd.push_str("Connection: close\r\n\r\n");
    if up.write_all(fwd.as_bytes()).is_err() || up.write_all(&body).is_err() {
        return;
    }
    let mut resp = Vec::new();
    let _ = up.read_to_end(&mut resp);
    let Some(split) = resp.windows(4).position(|w| w == b"\r\n\r\n") else {
        let _ = c.write_all(&resp);
        return;
    };
    let ok = resp.starts_with(b"HTTP/1.1 200") || resp.starts_with(b"HTTP/1.0 200");
    match fault.load(Ordering::SeqCst) {
        2 if is_blob_get && ok => {
            let cut = (split + 4 + 100).min(resp.len());
            let _ = c.write_all(&resp[..cut]);
            let _ = c.shutdown(Shutdown::Both);
        }
        6 if is_blob_get && ok => {
            let cut = (split + 4 + 100).min(resp.len());
            let _ = c.write_all(&resp[..cut]);
            let _ = c.flush();
            let start = Instant::now();
            while !stop.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        3 if is_blob_get && ok && resp.len() > split + 4 => {
            let last = resp.len() - 1;
            resp[last] ^= 0xff;
            let _ = c.write_all(&resp);
        }
        _ => {
            let _ = c.write_all(&resp);
        }
    }
}
