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
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reapi/buildgrid.sh");
        let out = Command::new("bash")
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
        BuildGrid { dir, port, pids }
    }

    pub fn url(&self) -> String {
        format!("grpc://127.0.0.1:{}", self.port)
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
        let mut c = Command::new(env!("CARGO_BIN_EXE_refine"));
        c.arg("--store")
            .arg(store)
            .args(["worker", "--server", url, "--platform"])
            .arg(format!("ISA={isa}"))
            .args(["--name", name, "--jobs", &jobs.to_string()])
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
