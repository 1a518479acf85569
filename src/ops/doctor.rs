//! `refine doctor`: every host prerequisite of the workspace's platform,
//! each with what is wrong and the one command that fixes it.
//!
//! Inside a workspace the checks follow what its rules need (mmdebstrap
//! images, Debian sources, PyPI sources, a foreign target). Outside one it
//! checks what the shipped rule set needs, for the host or `--arch`.
//! `--dev` adds the tools refine's own tests use.

use super::{GlobalOpts, Session};
use crate::error::{Error, Result};
use crate::eval::Action;
use crate::exec::host::{self, Check};
use crate::platform::Arch;
use crate::rules::Fetch;
use crate::store::LocalStore;
use std::path::PathBuf;

/// What the checks found, and for which platform.
pub struct Report {
    pub arch: Arch,
    pub workspace: Option<PathBuf>,
    pub store: PathBuf,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(Check::passed)
    }
}

/// What the workspace's rules ask of the host.
struct Wants {
    arch: Arch,
    python: String,
    mmdebstrap: bool,
    debian: bool,
    pypi: bool,
    /// Rust crates to vendor (`cargo` sources).
    cargo: bool,
    /// `[remote] execution`: the REAPI server build steps go to.
    remote_execution: Option<String>,
}

pub fn doctor(opts: &GlobalOpts, dev: bool) -> Result<Report> {
    let (wants, workspace, store) = match Session::load(opts) {
        Ok(s) => {
            let mut w = Wants {
                arch: s.platform.arch,
                python: s.platform.python.clone(),
                mmdebstrap: false,
                debian: false,
                pypi: false,
                cargo: false,
                remote_execution: s.config.remote.execution.clone(),
            };
            for n in &s.all().nodes {
                match &n.derivation().action {
                    Action::Mmdebstrap { .. } => w.mmdebstrap = true,
                    Action::Fetch {
                        fetch: Fetch::Debian { .. },
                        ..
                    } => w.debian = true,
                    Action::Fetch {
                        fetch: Fetch::Pypi { .. },
                        ..
                    } => w.pypi = true,
                    Action::Fetch {
                        fetch: Fetch::Cargo { .. },
                        ..
                    } => w.cargo = true,
                    _ => {}
                }
            }
            (w, Some(s.root.clone()), s.store_path.clone())
        }
        Err(e) if e.message.contains("WORKSPACE.toml") => {
            let arch = match &opts.arch {
                Some(a) => Arch::parse(a).ok_or_else(|| {
                    let d = crate::platform::arch_error(a);
                    Error::user(format!("--arch: {}", d.message)).hint(d.hint.unwrap_or_default())
                })?,
                None => Arch::host(),
            };
            let wants = Wants {
                arch,
                python: "3.11".into(),
                mmdebstrap: true,
                debian: true,
                pypi: true,
                cargo: true,
                remote_execution: None,
            };
            (
                wants,
                None,
                super::default_store_path(opts.store.as_deref())?,
            )
        }
        Err(e) => return Err(e),
    };
    Ok(Report {
        arch: wants.arch,
        checks: checks(&wants, &store, dev),
        workspace,
        store,
    })
}

fn checks(w: &Wants, store: &std::path::Path, dev: bool) -> Vec<Check> {
    let podman_prog = std::env::var("REFINE_PODMAN").unwrap_or_else(|_| "podman".into());
    let mut out = Vec::new();
    let podman = host::podman(&podman_prog);
    let podman_ok = podman.passed();
    out.push(podman);
    out.push(host::runc());
    if podman_ok {
        out.push(host::podman_runs(&podman_prog));
    }
    out.push(host::userns());
    out.push(seccomp(store));
    let foreign = w.arch != Arch::host();
    if w.mmdebstrap {
        let mm = std::env::var("REFINE_MMDEBSTRAP").unwrap_or_else(|_| "mmdebstrap".into());
        out.push(host::mmdebstrap(&mm));
        out.push(crate::exec::scratch::check());
        if foreign {
            out.push(host::arch_test(w.arch));
        }
    }
    if foreign {
        out.push(host::binfmt(w.arch));
    }
    if w.debian {
        out.push(deb_src(store));
    }
    if w.pypi {
        out.push(match crate::fetch::check_pip_index() {
            Ok(what) => Check::ok("pip-index", what),
            Err(e) => Check::fail("pip-index", e.to_string(), e.hint()),
        });
        out.extend(import_checks(&w.python));
    }
    if w.cargo {
        // Debian's own cargo (0.66) reads no v4 Cargo.lock: cargo-web's.
        out.push(host::program(
            "cargo",
            "cargo",
            "cargo-web",
            &["--version"],
            "to vendor a Rust extension's crates (cargo sources) where the network is",
        ));
    }
    out.push(host::store_space(store));
    if let Some(url) = &w.remote_execution {
        out.push(match crate::reapi::probe(url) {
            Ok(what) => Check::ok("remote-execution", what),
            Err((what, fix)) => Check::fail("remote-execution", what, fix),
        });
    }
    if dev {
        out.extend(dev_checks());
    }
    out
}

/// What `refine import` asks of the host: a Python of the target's
/// version to ask build backends their requirements with, and `unshare`
/// to ask them without the network.
fn import_checks(python: &str) -> Vec<Check> {
    let py = format!("python{python}");
    vec![
        match host::which(&py) {
            Some(p) => Check::ok(
                "import-python",
                format!(
                    "{py} ({}) asks build backends for `refine import`",
                    p.display()
                ),
            ),
            None => Check::warn(
                "import-python",
                format!(
                    "no {py} here: `refine import` asks build backends with the python3 there is"
                ),
                "apt-get install -y python3",
            ),
        },
        match host::which("unshare") {
            Some(_) => Check::ok("unshare", "build backends are asked without the network"),
            None => Check::warn(
                "unshare",
                "unshare is missing: `refine import` asks build backends with the network open",
                "apt-get install -y util-linux",
            ),
        },
    ]
}

/// Debian source packages: refine's deb-src lists can be made and updated.
/// Builds refuse nested user namespaces through a profile derived from
/// podman's default one: that default must be there to derive from.
fn seccomp(store: &std::path::Path) -> Check {
    const NAME: &str = "seccomp";
    match crate::exec::seccomp::profile_in(&store.join("sandbox")) {
        Ok(_) => Check::ok(
            NAME,
            "builds get podman's seccomp profile without user namespaces",
        ),
        Err(e) => Check::fail(NAME, e, crate::exec::seccomp::FIX),
    }
}

fn deb_src(store: &std::path::Path) -> Check {
    const NAME: &str = "deb-src";
    // apt-get downloads, apt-cache and dpkg list and order the versions
    // (`refine pack new`), tar reads what a new pack's tarball holds.
    for (tool, package) in [
        ("apt-get", "apt"),
        ("apt-cache", "apt"),
        ("dpkg", "dpkg"),
        ("tar", "tar"),
    ] {
        if host::which(tool).is_none() {
            return Check::fail(
                NAME,
                format!("{tool} is not installed; debian sources are downloaded and read with it"),
                format!(
                    "apt-get install -y {package} (a Debian or Ubuntu machine), or use `url` sources"
                ),
            );
        }
    }
    let store = match LocalStore::open(store) {
        Ok(s) => s,
        Err(e) => {
            return Check::fail(
                NAME,
                format!("cannot open the store: {e}"),
                "choose another store: --store DIR or REFINE_STORE",
            );
        }
    };
    match crate::fetch::check_debian_sources(&store) {
        Ok(n) => Check::ok(
            NAME,
            format!("deb-src lists made from {n} apt source file(s) and updated"),
        ),
        Err(e) => Check::fail(NAME, e.to_string(), e.hint()),
    }
}

/// playwright-core, installed from the lock in tests/browser.
fn playwright() -> Check {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        Check::ok("playwright-core", format!("in {}", dir.display()))
    } else {
        Check::fail(
            "playwright-core",
            "playwright-core is not installed for the dashboard test",
            format!("cd {} && npm ci", dir.display()),
        )
    }
}

/// What refine's own tests use (`bash .ci/setup` installs them).
fn dev_checks() -> Vec<Check> {
    vec![
        host::program(
            "docker-registry",
            "docker-registry",
            "docker-registry",
            &["--version"],
            "for the remote-store tests (a real OCI registry on loopback)",
        ),
        host::program(
            "skopeo",
            "skopeo",
            "skopeo",
            &["--version"],
            "to check that what refine pushes is a readable OCI artifact",
        ),
        host::program(
            "htpasswd",
            "htpasswd",
            "apache2-utils",
            &["-h"],
            "for the registry tests with basic auth",
        ),
        host::program(
            "diffoscope",
            "diffoscope",
            "diffoscope",
            &["--version"],
            "for `refine verify`'s file diffs",
        ),
        host::program(
            "dot",
            "dot",
            "graphviz",
            &["-V"],
            "to render `refine graph --format dot`",
        ),
        host::program(
            "script",
            "script",
            "bsdutils",
            &["--version"],
            "to test the live status line on a terminal",
        ),
        host::program(
            "shellcheck",
            "shellcheck",
            "shellcheck",
            &["--version"],
            "to lint recipes/ and .ci/ (`bash .ci/run`)",
        ),
        host::program(
            "chromium",
            "chromium",
            "chromium",
            &["--version"],
            "for the dashboard test (a real browser)",
        ),
        host::program(
            "node",
            "node",
            "nodejs",
            &["--version"],
            "to run playwright-core for the dashboard test",
        ),
        playwright(),
        postgres(),
        buildgrid(),
    ]
}

/// PostgreSQL's server programs, for the BuildGrid the REAPI test starts.
fn postgres() -> Check {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .find(|b| b.join("initdb").is_file() && b.join("postgres").is_file());
    match bin {
        Some(b) => Check::ok(
            "postgresql",
            format!("{} (for BuildGrid in tests/reapi.rs)", b.display()),
        ),
        None => Check::fail(
            "postgresql",
            "PostgreSQL is not installed (the REAPI test's BuildGrid keeps its jobs in it)",
            "apt-get install postgresql",
        ),
    }
}

/// BuildGrid, the REAPI server the tests start, from tests/reapi/requirements.txt.
fn buildgrid() -> Check {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reapi");
    let runs = std::process::Command::new(dir.join("venv/bin/bgd"))
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success());
    let version = std::process::Command::new(dir.join("venv/bin/python"))
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('buildgrid'))",
        ])
        .output()
        .ok()
        .filter(|o| runs && o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match version {
        Some(v) => Check::ok(
            "buildgrid",
            format!("BuildGrid {v} in {}", dir.join("venv").display()),
        ),
        None => Check::fail(
            "buildgrid",
            "BuildGrid is not installed for the REAPI test",
            format!(
                "python3 -m venv {0}/venv && {0}/venv/bin/pip install -r {0}/requirements.txt (bash .ci/setup does it)",
                dir.display()
            ),
        ),
    }
}
