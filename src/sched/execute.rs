//! The build of one node: a fetch on the host, an image by mmdebstrap or
//! OCI, or a recipe in the sandbox; then the checks of what it wrote and
//! its output stored as a tree. Every build writes a log, named in the
//! node's result.

use super::cx::NodeCx;
use super::result::NodeResult;
use super::sandbox::{self, makes_wheels};
use crate::error::{Error, ErrorClass};
use crate::eval::{Action, Derivation};
use crate::exec::{ImageRequest, RunStatus};
use crate::key::Digest;
use crate::rules::Kind;
use crate::store::{EntryKind, Tree, TreeEntry};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

fn failure(class: ErrorClass, message: impl Into<String>, hint: impl Into<String>) -> Error {
    Error::new(class, message).hint(hint)
}

/// Build the node into a tree in the store, writing its log; returns the
/// log's path (once it exists) and the tree or the failure. A failure of
/// the host that every build would meet (podman or a binfmt handler
/// missing, a full disk) is of [`Scope::Run`](crate::error::Scope).
pub(super) fn build(
    cx: &NodeCx<'_>,
    deps: &[&NodeResult],
) -> (Option<PathBuf>, Result<Tree, Error>) {
    let log_path = cx
        .cfg
        .store
        .logs
        .new_path(cx.node.arch(), cx.label(), &cx.key);
    let r = logged(cx, deps, &log_path);
    (Some(log_path), r)
}

fn logged(cx: &NodeCx<'_>, deps: &[&NodeResult], log_path: &Path) -> Result<Tree, Error> {
    let d = cx.d();
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut log = File::options()
        .create(true)
        .append(true)
        .read(true)
        .open(log_path)?;
    writeln!(
        log,
        "refine {}: building {} for {}",
        env!("CARGO_PKG_VERSION"),
        d.label,
        cx.arch()
    )?;
    writeln!(log, "key {}", cx.key)?;
    cx.cfg.sink.event(&super::events::Event::Building {
        label: &d.label,
        log: log_path,
    });
    let r = run_action(cx, deps, &mut log);
    match r {
        Err(mut f) => {
            let _ = writeln!(log, "refine: {} failed: {}", d.label, f.message);
            if f.class == ErrorClass::Build && f.log_tail.is_none() {
                f.log_tail = Some(crate::exec::podman::tail(&mut log, 20));
            }
            Err(f)
        }
        ok => ok,
    }
}

/// The host checks a step needs; a failure there is run-wide.
fn preflight(cx: &NodeCx<'_>, needs: crate::exec::Needs) -> Result<(), Error> {
    let notices = cx
        .cfg
        .exec
        .preflight(&needs)
        .map_err(|e| Error::from(e).run_wide())?;
    for message in notices {
        cx.cfg.sink.event(&super::events::Event::Warning {
            label: None,
            message,
        });
    }
    Ok(())
}

fn run_action(cx: &NodeCx<'_>, deps: &[&NodeResult], log: &mut File) -> Result<Tree, Error> {
    let d = cx.d();
    let cfg = cx.cfg;
    match &d.action {
        // A set builds nothing: its output lists its members' outputs.
        Action::Set => {
            let mut text = String::new();
            for dep in deps {
                if let Some(o) = &dep.output {
                    text.push_str(&format!("{} {o}\n", dep.label));
                }
            }
            let tmp = cfg.store.tmp_dir()?;
            std::fs::write(tmp.path().join("members"), text)?;
            Ok(cfg.store.cas.put_tree(tmp.path())?)
        }
        Action::Fetch { fetch, sha256 } => {
            let pin = Digest::parse(sha256)
                .map_err(|e| failure(ErrorClass::User, e.to_string(), "fix the pin"))?;
            // A source made from another (crates vendored from an sdist):
            // that one's file.
            let input = match fetch {
                crate::rules::Fetch::Cargo { of, .. } => deps
                    .iter()
                    .find(|r| &r.label == of)
                    .and_then(|r| r.tree.as_ref())
                    .and_then(|t| {
                        t.files()
                            .next()
                            .map(|(n, d, _)| (cfg.store.cas.blob_path(d), n.to_string()))
                    }),
                _ => None,
            };
            let f = crate::fetch::fetch(
                fetch,
                &pin,
                &d.label.to_string(),
                &cfg.sources.root,
                cfg.store,
                input.as_ref().map(|(p, n)| (p.as_path(), n.as_str())),
                log,
            )
            .map_err(|e| {
                let class = if e.is_user_error() {
                    ErrorClass::User
                } else {
                    ErrorClass::Environment
                };
                failure(class, format!("{}: {e}", d.label), e.hint())
            })?;
            let size = cfg.store.cas.verify_blob(&f.digest)?;
            single_file_tree(cx, &f.name, &f.digest, size)
        }
        Action::OciImage { reference, .. } => {
            preflight(
                cx,
                crate::exec::Needs {
                    containers: true,
                    ..Default::default()
                },
            )?;
            cfg.exec
                .pull_image(reference, d.platform.arch)
                .map_err(Error::from)?;
            let tmp = cfg.store.tmp_dir()?;
            std::fs::write(tmp.path().join("reference"), format!("{reference}\n"))?;
            Ok(cfg.store.cas.put_tree(tmp.path())?)
        }
        Action::Mmdebstrap {
            suite,
            variant,
            components,
            packages,
            cross,
        } => {
            preflight(
                cx,
                crate::exec::Needs {
                    mmdebstrap: true,
                    emulate: d.platform.emulated(),
                    ..Default::default()
                },
            )?;
            let tmp = cfg.store.tmp_dir()?;
            let cross = match cross {
                None => None,
                Some(c) => {
                    // The hook, checked against the digest the key has.
                    let hook = tmp.path().join("cross-hook.sh");
                    for (rel, digest) in &c.hook.files {
                        let bytes = cfg.sources.read(rel).ok_or_else(|| {
                            failure(
                                ErrorClass::User,
                                format!("cannot read {rel}"),
                                "restore the file",
                            )
                        })?;
                        if &crate::key::sha256_bytes(&bytes) != digest {
                            return Err(failure(
                                ErrorClass::User,
                                format!("{rel} changed while refine was running"),
                                "run the build again",
                            ));
                        }
                        std::fs::write(&hook, &bytes)?;
                    }
                    writeln!(
                        log,
                        "toolchain: cross ({}-gcc-{} running on {}, wired in by {})",
                        c.triplet, c.gcc, c.host, c.hook.script
                    )?;
                    Some(crate::exec::CrossRequest {
                        host: c.host.clone(),
                        hook,
                        env: [
                            ("REFINE_TRIPLET", c.triplet.clone()),
                            ("REFINE_HOST_ARCH", c.host.clone()),
                            ("REFINE_GCC", c.gcc.clone()),
                            (
                                "REFINE_HOST_TRIPLET",
                                crate::platform::Arch::host().triplet().to_string(),
                            ),
                            (
                                "REFINE_HOST_LOADER",
                                crate::platform::Arch::host().loader().to_string(),
                            ),
                            ("REFINE_UNPACK", c.unpack.join(" ")),
                            ("REFINE_NATIVE", c.native.join(" ")),
                            ("REFINE_STAND_IN", c.stand_in.join(" ")),
                            ("REFINE_KEEP_HOST", c.keep_host.join(" ")),
                        ]
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                        suites: c.suites.clone(),
                    })
                }
            };
            let req = ImageRequest {
                label: d.label.to_string(),
                suite: suite.clone(),
                variant: variant.clone(),
                components: components.clone(),
                packages: packages.clone(),
                arch: d.platform.arch,
                source_date_epoch: d.source_date_epoch,
                timeout: d.timeout,
                cross,
            };
            let tar = tmp.path().join("rootfs.tar");
            let status = cfg.exec.build_image(&req, &tar, log).map_err(Error::from)?;
            check_status(status, d, log)?;
            let (digest, size) = cfg.store.cas.put_file(&tar)?;
            single_file_tree(cx, "rootfs.tar", &digest, size)
        }
        Action::SystemRuntime { .. } | Action::Recipe { .. } => {
            preflight(
                cx,
                crate::exec::Needs {
                    containers: true,
                    emulate: d.platform.emulated(),
                    ..Default::default()
                },
            )?;
            let scratch = cfg.store.tmp_dir()?;
            if let Some(rx) = cfg.remote_exec.filter(|r| r.down().is_none()) {
                let plan = sandbox::plan_node(cx.graph, cx.i, deps, cfg, cx.key.short())?;
                let out = scratch.path().join("out");
                let recipe = |rel: &str, _: &crate::key::Digest| {
                    cfg.sources.read(rel).map(|c| c.into_owned())
                };
                match rx.run(
                    &plan,
                    cfg.store,
                    &recipe,
                    &cfg.sandbox.output,
                    cx.forced,
                    log,
                    &out,
                )? {
                    crate::reapi::client::Ran::Done { status, worker, .. } => {
                        writeln!(log, "----")?;
                        check_status(status, d, log)?;
                        cx.set_worker(worker);
                        return collect_outputs(cx, &out, log);
                    }
                    crate::reapi::client::Ran::Unreachable(why) => {
                        if rx.remote_only() {
                            return Err(failure(
                                ErrorClass::Environment,
                                format!("remote executor {} cannot be reached: {why}", rx.url()),
                                crate::reapi::credentials_hint(&why).unwrap_or(
                                    "start the server (or drop --remote-only to build here)",
                                ),
                            ));
                        }
                        if rx.mark_down(&why) {
                            cx.note(format!(
                                "remote executor {} cannot be reached ({why}); this run builds here",
                                rx.url()
                            ));
                        }
                        writeln!(log, "remote: unreachable ({why}); built here")?;
                    }
                }
            }
            let spec = sandbox::prepare(cx.graph, cx.i, deps, cfg, scratch.path(), cx.key.short())?;
            writeln!(log, "podman {}", shell_words(&spec.podman_argv()))?;
            writeln!(log, "----")?;
            log.flush()?;
            let status = cfg.exec.run(&spec, log).map_err(Error::from)?;
            writeln!(log, "----")?;
            check_status(status, d, log)?;
            collect_outputs(cx, &spec.out, log)
        }
    }
}

fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=/.:,+@".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A step's exit, as a failure of the recipe, or of the host when its log
/// names a host problem (then never "fix the recipe").
fn check_status(status: RunStatus, d: &Derivation, log: &mut File) -> Result<(), Error> {
    match status {
        RunStatus::Success => Ok(()),
        RunStatus::Failed(code) => {
            let tail = crate::exec::podman::tail(log, 40);
            if let Some(p) = crate::exec::host::diagnose_log(&tail, d.platform.arch) {
                let e = Error::env(format!("{} failed: {}", d.label, p.what)).hint(p.fix);
                return Err(if p.run_wide { e.run_wide() } else { e });
            }
            Err(failure(
                ErrorClass::Build,
                format!("{} failed (exit status {code})", d.label),
                "read the log (refine log LABEL); fix the recipe or the rule, then build again",
            ))
        }
        RunStatus::TimedOut(t) => Err(failure(
            ErrorClass::Build,
            format!("{} timed out after {}s", d.label, t.as_secs()),
            "raise `timeout` in the rule or in [sandbox] of WORKSPACE.toml",
        )),
        RunStatus::Interrupted => Err(failure(
            ErrorClass::Interrupted,
            format!("{} was interrupted", d.label),
            "nothing of it was stored; build again to finish it",
        )),
    }
}

fn single_file_tree(
    cx: &NodeCx<'_>,
    name: &str,
    digest: &Digest,
    size: u64,
) -> Result<Tree, Error> {
    let tree = Tree::new(vec![TreeEntry {
        path: name.to_string(),
        kind: EntryKind::File {
            executable: false,
            size,
            digest: digest.clone(),
        },
    }])
    .map_err(|e| failure(ErrorClass::User, e.to_string(), "rename the file"))?;
    cx.cfg.store.cas.put_bytes(tree.encode().as_bytes())?;
    Ok(tree)
}

/// A wheel built from a pinned source says the source's version: a build
/// that does not know its own version (pyemd 1.1.0's meson.build says
/// 0.0.0, its setuptools-scm version reaching nothing) makes a wheel that
/// no `NAME==VERSION` finds, in the index or anywhere. (A local label,
/// `+…`, is allowed.)
fn check_wheel_versions(d: &Derivation, wheels: &[std::path::PathBuf]) -> Result<(), Error> {
    use std::str::FromStr;
    let Some(want) = d
        .version
        .as_deref()
        .and_then(|v| pep440_rs::Version::from_str(v).ok())
    else {
        return Ok(());
    };
    for w in wheels {
        let name = w.file_name().unwrap_or_default().to_string_lossy();
        let Some((_, got, ..)) = crate::wheel::parse_filename(&name) else {
            continue;
        };
        let Ok(got_v) = pep440_rs::Version::from_str(&got) else {
            continue;
        };
        if got_v.clone().without_local() != want.clone().without_local() {
            return Err(failure(
                ErrorClass::Build,
                format!(
                    "{} built {name}: version {got}, but its source is version {want}",
                    d.label
                ),
                "the project's build does not know its own version (a version hard-coded in meson.build or setup.py, or one that setuptools-scm finds no tag for): give the rule `env = { SETUPTOOLS_SCM_PRETEND_VERSION = \"VERSION\" }` where setuptools-scm is what reads it, or fix the version in a recipe of its own",
            ));
        }
    }
    Ok(())
}

/// Check and normalize what a recipe wrote, then store it.
fn collect_outputs(cx: &NodeCx<'_>, out: &Path, log: &mut File) -> Result<Tree, Error> {
    let d = cx.d();
    if makes_wheels(d.label.kind) {
        let mut wheels = Vec::new();
        let mut reports = Vec::new();
        use crate::wheel::policy::REPORT_SUFFIX;
        for e in std::fs::read_dir(out)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let file = e.file_type().is_ok_and(|t| t.is_file());
            if name.ends_with(".whl") && file {
                wheels.push(e.path());
            } else if d.label.kind == Kind::Repair && name.ends_with(REPORT_SUFFIX) && file {
                // What the repaired wheel's tags stand on (checked below).
                reports.push(e.path());
            } else {
                writeln!(
                    log,
                    "refine: dropping {name} from the output (wheel outputs hold .whl files only)"
                )?;
                // Judged by the entry itself, never by what a link names.
                let p = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    std::fs::remove_dir_all(&p)?;
                } else {
                    std::fs::remove_file(&p)?;
                }
            }
        }
        if wheels.is_empty() {
            return Err(failure(
                ErrorClass::Build,
                format!("{} wrote no wheel to $REFINE_OUT", d.label),
                "the recipe must leave its .whl files in $REFINE_OUT",
            ));
        }
        check_limits(cx, out)?;
        let limits = &cx.cfg.sandbox.output;
        let broken = |e: crate::wheel::WheelError| match e {
            // The host's disk or permissions, never the recipe's fault.
            crate::wheel::WheelError::Io(io) => {
                let e = Error::from(io);
                Error {
                    message: format!("{}: cannot rewrite its wheel: {}", d.label, e.message),
                    ..e
                }
            }
            crate::wheel::WheelError::Limit { .. } => failure(
                ErrorClass::Build,
                format!("{}: {e}", d.label),
                "the recipe wrote a wheel larger than an output may be; if that is right, raise `max_output_size` or `max_compression_ratio` in [sandbox] of WORKSPACE.toml",
            ),
            crate::wheel::WheelError::Bad { .. } => failure(
                ErrorClass::Build,
                format!("{}: {e}", d.label),
                "the recipe wrote a broken wheel",
            ),
        };
        if d.label.kind == Kind::Wheel {
            check_wheel_versions(d, &wheels)?;
        }
        for w in &wheels {
            crate::wheel::normalize_within(w, d.source_date_epoch, limits).map_err(broken)?;
            let foreign =
                crate::wheel::foreign_elves_within(w, d.platform.arch.elf_machine(), limits)
                    .map_err(broken)?;
            if !foreign.is_empty() {
                let list: Vec<String> = foreign
                    .iter()
                    .map(|(n, m)| format!("{n} (e_machine {m})"))
                    .collect();
                return Err(failure(
                    ErrorClass::Build,
                    format!(
                        "{} holds binaries that are not {}: {}",
                        d.label,
                        d.platform.arch,
                        list.join(", ")
                    ),
                    "the build used a compiler for another architecture; check the image and the recipe",
                ));
            }
        }
    }
    if makes_wheels(d.label.kind) {
        check_reports(cx, out)?;
    } else {
        check_limits(cx, out)?;
    }
    if d.label.kind == Kind::Pack {
        check_no_build_paths(d, out)?;
    }
    if d.label.kind == Kind::Runtime
        && !out.join("runtime.json").is_file()
        && !out.join("bin").is_dir()
    {
        return Err(failure(
            ErrorClass::Build,
            format!("{} wrote no interpreter to $REFINE_OUT", d.label),
            "a runtime recipe installs Python under $REFINE_OUT (bin/python3)",
        ));
    }
    Ok(cx.cfg.store.cas.put_tree(out)?)
}

/// Each `<wheel>.policy.json` a repair wrote names a wheel of the output
/// and says what its tags are (see [`crate::wheel::policy`]).
fn check_reports(cx: &NodeCx<'_>, out: &Path) -> Result<(), Error> {
    use crate::wheel::policy::{MAX_REPORT, REPORT_SUFFIX, parse};
    for e in std::fs::read_dir(out)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(wheel) = name.strip_suffix(REPORT_SUFFIX) else {
            continue;
        };
        let bad = |why: String| {
            failure(
                ErrorClass::Build,
                format!("{}: {name}: {why}", cx.label()),
                "the repair recipe writes one report per wheel it repaired, from auditwheel's analysis",
            )
        };
        if !out.join(wheel).is_file() {
            return Err(bad("no such wheel in the output".into()));
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::fs::File::open(e.path())?, MAX_REPORT as u64 + 1),
            &mut bytes,
        )?;
        parse(&bytes, wheel).map_err(bad)?;
    }
    Ok(())
}

/// An output within `[sandbox]`'s limits, with no link out of it and no
/// special file, or a build failure that says which limit.
fn check_limits(cx: &NodeCx<'_>, out: &Path) -> Result<(), Error> {
    use crate::store::limits::LimitError;
    crate::store::limits::check_output_dir(out, &cx.cfg.sandbox.output).map_err(|e| match e {
        LimitError::Io { .. } => Error::env(format!("{}: {e}", cx.label())).hint(e.hint()),
        _ => failure(ErrorClass::Build, format!("{}: {e}", cx.label()), e.hint()),
    })
}

/// Packs are relocatable: their pkg-config and libtool files must not name
/// the directory they were built in.
fn check_no_build_paths(d: &Derivation, out: &Path) -> Result<(), Error> {
    let mut leaks = Vec::new();
    for e in walkdir::WalkDir::new(out).into_iter().flatten() {
        let p = e.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text_kind = name.ends_with(".pc")
            || name.ends_with(".la")
            || name.ends_with("-config")
            || name.ends_with(".cmake");
        if !e.file_type().is_file() || !text_kind {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(p)
            && (text.contains("/build/") || text.contains("/out/") || text.contains("/out\n"))
        {
            leaks.push(p.strip_prefix(out).unwrap_or(p).display().to_string());
        }
    }
    if leaks.is_empty() {
        Ok(())
    } else {
        Err(failure(
            ErrorClass::Build,
            format!(
                "{} is not relocatable: build paths in {}",
                d.label,
                leaks.join(", ")
            ),
            "install with --prefix=/opt/packs/<name> (and DESTDIR) or rewrite prefix= to ${pcfiledir}/../.. in the recipe",
        ))
    }
}
