//! A real REAPI server on loopback for tests and benchmarks: BuildGrid
//! with a throwaway PostgreSQL (tests/reapi/buildgrid.sh), and `refine
//! worker`s. Both bind or talk to 127.0.0.1 only, bound their waits, and
//! stop what they started (by process id) when dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A BuildGrid and its PostgreSQL, stopped by their process ids.
pub struct BuildGrid {
    dir: tempfile::TempDir,
    pub port: u16,
    pids: Vec<u32>,
    tls: bool,
}

/// What a secured BuildGrid asks of its clients.
pub struct Secured {
    /// PEM of the certificate authority that signed the server's
    /// certificate (for `SSL_CERT_FILE`).
    pub ca: std::path::PathBuf,
    /// A JWT the server takes (for `REFINE_REMOTE_TOKEN`).
    pub token: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl BuildGrid {
    pub fn start() -> BuildGrid {
        let dir = tempfile::Builder::new()
            .prefix("refine-bgd-")
            .tempdir()
            .unwrap();
        BuildGrid::start_in(dir, free_port())
    }

    /// Start (or start again) in `dir` on `port`.
    pub fn start_in(dir: tempfile::TempDir, port: u16) -> BuildGrid {
        BuildGrid::launch(dir, port, &[])
    }

    /// A BuildGrid whose scheduler creates a log stream per action on the
    /// LogStream service at `logstream` (`refine logstream`).
    pub fn start_with_logstream(logstream: &LogStreams) -> BuildGrid {
        let dir = tempfile::Builder::new()
            .prefix("refine-bgd-")
            .tempdir()
            .unwrap();
        BuildGrid::launch(
            dir,
            free_port(),
            &[(
                "REFINE_BG_LOGSTREAM",
                format!("http://127.0.0.1:{}", logstream.port),
            )],
        )
    }

    /// A BuildGrid that serves TLS only (a certificate for 127.0.0.1
    /// signed by a throwaway authority) and takes only requests bearing a
    /// JWT signed with its secret.
    pub fn start_secured() -> (BuildGrid, Secured) {
        let dir = tempfile::Builder::new()
            .prefix("refine-bgd-")
            .tempdir()
            .unwrap();
        let tls = dir.path().join("tls");
        std::fs::create_dir_all(&tls).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "refine test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(tls.join("server.crt"), cert.pem()).unwrap();
        std::fs::write(tls.join("server.key"), key.serialize_pem()).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        let secret = dir.path().join("jwt-secret");
        std::fs::write(&secret, "refine-test-secret-0123456789abcdef").unwrap();
        // The token, made by the PyJWT BuildGrid itself checks with.
        let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reapi/venv/bin/python");
        let out = Command::new(&python)
            .args([
                "-c",
                "import jwt, sys, time; print(jwt.encode({'sub': 'refine-test', 'exp': int(time.time()) + 7200}, open(sys.argv[1]).read().strip(), algorithm='HS256'))",
            ])
            .arg(&secret)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let bg = BuildGrid::launch(
            dir,
            free_port(),
            &[
                ("REFINE_BG_TLS", tls.display().to_string()),
                ("REFINE_BG_JWT_SECRET", secret.display().to_string()),
            ],
        );
        (bg, Secured { ca, token })
    }

    fn launch(dir: tempfile::TempDir, port: u16, env: &[(&str, String)]) -> BuildGrid {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reapi/buildgrid.sh");
        let out = Command::new("bash")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg(&script)
            .arg(dir.path())
            .arg(port.to_string())
            // Leases of a worker that stopped answering go back to the
            // queue after this many seconds.
            .env("REFINE_BG_KEEPALIVE", "12")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "BuildGrid did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pids = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
            .collect();
        let tls = env.iter().any(|(k, _)| *k == "REFINE_BG_TLS");
        BuildGrid {
            dir,
            port,
            pids,
            tls,
        }
    }

    /// Where its CAS keeps blobs (a `!disk-storage`).
    pub fn cas_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("cas")
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "grpcs" } else { "grpc" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Stop BuildGrid and PostgreSQL (by their ids); the directory is kept
    /// for a restart.
    pub fn stop(mut self) -> tempfile::TempDir {
        self.kill();
        let dir = tempfile::Builder::new()
            .prefix("refine-bgd-")
            .tempdir()
            .unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    fn kill(&mut self) {
        // BuildGrid first (it holds connections to the database).
        for pid in self.pids.iter().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                // Reaped by init once it exits (the script started it).
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                if stat.contains(") Z ") {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        self.pids.clear();
    }
}

impl Drop for BuildGrid {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `refine logstream` on loopback, stopped by its process id.
pub struct LogStreams {
    child: Child,
    pub port: u16,
}

impl LogStreams {
    pub fn start() -> LogStreams {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_refine"))
            .args(["logstream", "--listen", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "refine logstream did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        LogStreams { child, port }
    }

    pub fn url(&self) -> String {
        format!("grpc://127.0.0.1:{}", self.port)
    }
}

impl Drop for LogStreams {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `refine worker` this test started; what it says, read as it comes.
pub struct Worker {
    child: Child,
    said: Arc<Mutex<String>>,
}

impl Worker {
    pub fn start(url: &str, isa: &str, name: &str, store: &Path) -> Worker {
        Worker::start_with(url, isa, name, store, 1)
    }

    /// A worker that runs `jobs` actions at once.
    pub fn start_with(url: &str, isa: &str, name: &str, store: &Path, jobs: usize) -> Worker {
        Worker::start_props(url, &[&format!("ISA={isa}")], name, store, jobs)
    }

    /// A worker advertising these `--platform` properties.
    pub fn start_props(url: &str, props: &[&str], name: &str, store: &Path, jobs: usize) -> Worker {
        Worker::start_env(url, props, name, store, jobs, &[], &[])
    }

    /// A worker with these environment variables (a token, a CA file).
    pub fn start_env(
        url: &str,
        props: &[&str],
        name: &str,
        store: &Path,
        jobs: usize,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Worker {
        let mut c = Command::new(env!("CARGO_BIN_EXE_refine"));
        c.envs(env.iter().copied());
        c.arg("--store")
            .arg(store)
            .args(["worker", "--server", url]);
        for p in props {
            c.args(["--platform", p]);
        }
        c.args(["--name", name, "--jobs", &jobs.to_string()])
            .args(args)
            .env_remove("REFINE_EXECUTOR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let err = child.stderr.take().unwrap();
        let said = Arc::new(Mutex::new(String::new()));
        let keep = said.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                keep.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let w = Worker { child, said };
        w.wait_for("serving", 30);
        w
    }

    pub fn said(&self) -> String {
        self.said.lock().unwrap().clone()
    }

    /// Wait until the worker says `needle` (at most `secs`).
    pub fn wait_for(&self, needle: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.said().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the worker never said {needle:?}:\n{}", self.said());
    }

    /// Wait (at most `secs`) for the worker to exit of itself; whether it
    /// succeeded.
    pub fn wait_exit(&mut self, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the worker did not exit within {secs} s:\n{}", self.said());
    }

    pub fn signal(&mut self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal("-TERM");
        }
    }
}
