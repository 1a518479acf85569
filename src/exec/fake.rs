//! A recording fake executor for engine tests and benchmarks.
//!
//! It runs nothing. Each call is recorded (in memory, and as a JSON line in
//! `$REFINE_FAKE_LOG` when set) and a plausible output is written: a wheel
//! for a wheel build, a library prefix for a pack, and so on. Outputs are a
//! pure function of the step's environment, command and the *contents* of
//! its read-only inputs, so early cutoff and reproducibility behave as they
//! would with a deterministic real build.
//!
//! Test controls (host environment, read only by this executor):
//! `REFINE_FAKE_FAIL=//wheels:a,//packs:b` makes those steps fail (and
//! `REFINE_FAKE_FAIL_SAYS=LINE` puts LINE in their logs, as a real build's
//! last words, for the hint catalog);
//! `REFINE_FAKE_SLEEP_MS=N` makes every step take N ms;
//! `REFINE_FAKE_HOLD=//wheels:a=DIR` makes that step write `DIR/started`,
//! then wait (at most two minutes) until `DIR/release` exists, so a test can
//! act while a build is provably in progress;
//! `REFINE_FAKE_VERSION=//wheels:a=0.0.0` makes that wheel build name its
//! wheel with another version (a project that does not know its own).

use super::{ExecError, Executor, ImageRequest, Needs, RunStatus, SandboxSpec};
use crate::platform::Arch;
use sha2::{Digest as _, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

#[derive(Default)]
pub struct Fake {
    pub calls: Mutex<Vec<String>>,
}

impl Fake {
    fn record(&self, what: &str, label: &str) {
        let line = serde_json::json!({ "call": what, "label": label }).to_string();
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{what} {label}"));
        if let Ok(p) = std::env::var("REFINE_FAKE_LOG")
            && let Ok(mut f) = OpenOptions::new().create(true).append(true).open(p)
        {
            let _ = writeln!(f, "{line}");
        }
    }

    fn should_fail(label: &str) -> bool {
        std::env::var("REFINE_FAKE_FAIL")
            .map(|v| v.split(',').any(|l| l.trim() == label))
            .unwrap_or(false)
    }

    fn hold(label: &str) {
        let Ok(v) = std::env::var("REFINE_FAKE_HOLD") else {
            return;
        };
        let Some((l, dir)) = v.split_once('=') else {
            return;
        };
        if l != label {
            return;
        }
        let dir = Path::new(dir);
        let _ = fs::write(dir.join("started"), std::process::id().to_string());
        let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while !dir.join("release").exists() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn pause() {
        if let Some(ms) = std::env::var("REFINE_FAKE_SLEEP_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }
}

fn hash_inputs(spec: &SandboxSpec) -> String {
    let mut h = Sha256::new();
    for (k, v) in &spec.env {
        h.update(format!("{k}={v}\n"));
    }
    for c in &spec.command {
        h.update(format!("{c}\n"));
    }
    let mut mounts: Vec<_> = spec.mounts.iter().filter(|m| m.read_only).collect();
    mounts.sort_by(|a, b| a.container.cmp(&b.container));
    for m in mounts {
        h.update(format!("mount {}\n", m.container));
        for e in walkdir::WalkDir::new(&m.host)
            .sort_by_file_name()
            .into_iter()
            .flatten()
        {
            if e.file_type().is_file() {
                let rel = e.path().strip_prefix(&m.host).unwrap_or(e.path());
                h.update(format!("{}\n", rel.display()));
                if let Ok(b) = fs::read(e.path()) {
                    h.update(&b);
                }
            }
        }
    }
    hex::encode(h.finalize())
}

/// Write a small but valid wheel.
pub fn write_fake_wheel(
    path: &Path,
    name: &str,
    version: &str,
    payload: &str,
) -> std::io::Result<()> {
    let f = File::create(path)?;
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    let module = name.replace('-', "_");
    let dist_info = format!("{module}-{version}.dist-info");
    let files = [
        (format!("{module}/__init__.py"), format!("VALUE = {payload:?}\n")),
        (
            format!("{dist_info}/METADATA"),
            format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"),
        ),
        (
            format!("{dist_info}/WHEEL"),
            "Wheel-Version: 1.0\nGenerator: refine-fake\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_string(),
        ),
    ];
    let mut record = String::new();
    for (n, content) in &files {
        z.start_file(n.as_str(), opts)
            .map_err(std::io::Error::other)?;
        z.write_all(content.as_bytes())?;
        let digest = crate::key::sha256_bytes(content.as_bytes());
        let b64 = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            hex::decode(digest.hex()).unwrap_or_default(),
        );
        record.push_str(&format!("{n},sha256={b64},{}\n", content.len()));
    }
    record.push_str(&format!("{dist_info}/RECORD,,\n"));
    z.start_file(format!("{dist_info}/RECORD"), opts)
        .map_err(std::io::Error::other)?;
    z.write_all(record.as_bytes())?;
    z.finish().map_err(std::io::Error::other)?;
    Ok(())
}

impl Executor for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn preflight(&self, _needs: &Needs) -> Result<Vec<String>, ExecError> {
        Ok(Vec::new())
    }

    fn run(&self, spec: &SandboxSpec, log: &mut File) -> Result<RunStatus, ExecError> {
        let label = spec.env.get("REFINE_LABEL").cloned().unwrap_or_default();
        self.record("run", &label);
        Fake::pause();
        Fake::hold(&label);
        writeln!(log, "fake: {}", spec.podman_argv().join(" "))?;
        if Fake::should_fail(&label) {
            writeln!(log, "fake: failing {label} as asked by REFINE_FAKE_FAIL")?;
            if let Ok(line) = std::env::var("REFINE_FAKE_FAIL_SAYS") {
                writeln!(log, "{line}")?;
            }
            writeln!(log, "error: the recipe failed")?;
            return Ok(RunStatus::Failed(1));
        }
        let h = hash_inputs(spec);
        let name = spec.env.get("REFINE_NAME").cloned().unwrap_or_default();
        let version = spec
            .env
            .get("REFINE_VERSION")
            .filter(|v| !v.is_empty())
            .cloned()
            .unwrap_or_else(|| "0".into());
        // A build that names its wheel with a version of its own.
        let version = std::env::var("REFINE_FAKE_VERSION")
            .ok()
            .and_then(|v| {
                let (l, ver) = v.rsplit_once('=')?;
                (l == label).then(|| ver.to_string())
            })
            .unwrap_or(version);
        let out = &spec.out;
        match spec.env.get("REFINE_KIND").map(String::as_str) {
            Some("wheel") => {
                let tag = spec
                    .env
                    .get("REFINE_PYTHON_TAG")
                    .cloned()
                    .unwrap_or_default();
                let plat = format!("linux_{}", spec.arch.as_str());
                let file = format!(
                    "{}-{version}-{tag}-{tag}-{plat}.whl",
                    name.replace('-', "_")
                );
                write_fake_wheel(&out.join(file), &name, &version, &h)?;
            }
            Some("repair") => {
                let plat = spec
                    .env
                    .get("REFINE_PLATFORM_TAG")
                    .cloned()
                    .unwrap_or_default();
                for m in spec
                    .mounts
                    .iter()
                    .filter(|m| m.container.starts_with("/refine/input/"))
                {
                    let n = m.container.rsplit('/').next().unwrap_or_default();
                    if let Some(stem) = n.strip_suffix(".whl") {
                        let base = stem.rsplit_once('-').map_or(stem, |(b, _)| b);
                        let wheel = format!("{base}-{plat}.whl");
                        fs::copy(&m.host, out.join(&wheel))?;
                        // What the repair recipe reports of the tags.
                        let report = serde_json::json!({
                            "wheel": wheel,
                            "policy": plat,
                            "tags": [plat],
                            "older": null,
                            "limited_by": [],
                        });
                        fs::write(
                            out.join(format!("{wheel}{}", crate::wheel::policy::REPORT_SUFFIX)),
                            report.to_string(),
                        )?;
                    }
                }
            }
            Some("test") => {
                // What the test recipe reports: every wheel it was given
                // installed and imported.
                let wheels: Vec<serde_json::Value> = spec
                    .mounts
                    .iter()
                    .filter(|m| m.container.starts_with("/refine/wheels/"))
                    .filter_map(|m| m.container.rsplit('/').next())
                    .filter(|n| n.ends_with(".whl"))
                    .map(|n| serde_json::json!({ "wheel": n, "modules": [], "ok": true }))
                    .collect();
                let report = serde_json::json!({
                    "install": { "ok": true },
                    "wheels": wheels,
                });
                fs::write(out.join("report.json"), report.to_string())?;
            }
            Some("pack") => {
                fs::create_dir_all(out.join("lib/pkgconfig"))?;
                fs::create_dir_all(out.join("include"))?;
                fs::write(out.join(format!("lib/lib{name}.so.1")), format!("ELF {h}"))?;
                std::os::unix::fs::symlink(
                    format!("lib{name}.so.1"),
                    out.join(format!("lib/lib{name}.so")),
                )?;
                fs::write(
                    out.join(format!("include/{name}.h")),
                    format!("/* {name} */\n"),
                )?;
                fs::write(
                    out.join(format!("lib/pkgconfig/{name}.pc")),
                    format!(
                        "prefix=${{pcfiledir}}/../..\nName: {name}\nVersion: {version}\nLibs: -L${{prefix}}/lib -l{name}\n"
                    ),
                )?;
            }
            _ => {
                fs::create_dir_all(out.join("bin"))?;
                fs::write(out.join("runtime.json"), format!("{{\"fake\": \"{h}\"}}\n"))?;
            }
        }
        writeln!(log, "fake: done")?;
        Ok(RunStatus::Success)
    }

    fn build_image(
        &self,
        req: &ImageRequest,
        out_tar: &Path,
        log: &mut File,
    ) -> Result<RunStatus, ExecError> {
        self.record("image", &req.label);
        Fake::pause();
        writeln!(
            log,
            "fake: mmdebstrap {}",
            req.mmdebstrap_argv(&out_tar.to_string_lossy()).join(" ")
        )?;
        if Fake::should_fail(&req.label) {
            writeln!(
                log,
                "fake: failing {} as asked by REFINE_FAKE_FAIL",
                req.label
            )?;
            writeln!(log, "error: the recipe failed")?;
            return Ok(RunStatus::Failed(1));
        }
        let f = File::create(out_tar)?;
        let mut b = tar::Builder::new(f);
        let content = format!(
            "{:?}",
            (
                req.suite.as_str(),
                &req.packages,
                req.arch.as_str(),
                req.source_date_epoch
            )
        );
        let mut h = tar::Header::new_ustar();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        b.append_data(&mut h, "etc/refine-fake-image", content.as_bytes())?;
        b.into_inner()?.sync_all()?;
        Ok(RunStatus::Success)
    }

    fn load_image(&self, tag: &str, _tar: &Path, _arch: Arch) -> Result<(), ExecError> {
        self.record("load", tag);
        Ok(())
    }

    fn pull_image(&self, reference: &str, _arch: Arch) -> Result<(), ExecError> {
        self.record("pull", reference);
        Ok(())
    }
}
