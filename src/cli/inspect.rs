//! `refine explain`, `refine verify`, `refine query`, `refine graph`

use super::printer::Printer;
use crate::error::{Error, Exit, Result};
use crate::key::Key;
use crate::ops::build::BuildArgs;
use crate::ops::explain::{Against, describe, explain};
use crate::ops::verify::{self, from_manifest};
use crate::ops::{GlobalOpts, Session};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ExplainCmd {
    /// One label.
    pub target: String,
    /// Compare with: `last` (this machine's last build), `remote` (the
    /// newest result in the remote store), or a key.
    #[arg(long, default_value = "last", value_name = "last|remote|KEY")]
    pub against: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum VerifyAgainst {
    Local,
    Remote,
    /// Build with the other toolchain of a foreign target (cross or
    /// emulated) and compare.
    Toolchain,
    /// Build a foreign target's wheels with their PEP 517 hooks in the
    /// host's Python and in the target's, and compare.
    Frontend,
}

#[derive(Args, Debug)]
pub struct VerifyCmd {
    /// Labels or patterns to rebuild and compare.
    pub targets: Vec<String>,
    /// How many times to rebuild each target.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Compare with the local store's output, the remote's, the other
    /// toolchain's build (cross against emulated), or the wheels' hooks run
    /// in the target's Python against the host's (frontend).
    #[arg(long, value_enum, default_value = "local")]
    pub against: VerifyAgainst,
    /// Instead: check a wheel against the provenance file beside it.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["targets", "rounds"])]
    pub from_manifest: Option<PathBuf>,
    /// With --from-manifest: the wheel, if not beside the manifest.
    #[arg(long, value_name = "PATH", requires = "from_manifest")]
    pub wheel: Option<PathBuf>,
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// The remote store: oci://HOST[:PORT]/PREFIX.
    #[arg(long, value_name = "URL")]
    pub remote: Option<String>,
    #[arg(long)]
    pub insecure: bool,
    /// Rebuild on an REAPI server's workers (and compare with this store).
    #[command(flatten)]
    pub exec_remote: crate::ops::build::RemoteExecArgs,
}

#[derive(Args, Debug)]
pub struct QueryCmd {
    /// deps(EXPR), rdeps(EXPR), kind(KIND, EXPR), or a label pattern.
    pub expr: String,
    /// Say where each target is declared: file:line in the workspace, or
    /// builtin:file:line in refine's built-in base.
    #[arg(long)]
    pub origin: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Json,
}

#[derive(Args, Debug)]
pub struct GraphCmd {
    /// Labels or patterns (default: [defaults] targets).
    pub targets: Vec<String>,
    #[arg(long, value_enum, default_value = "dot")]
    pub format: GraphFormat,
}

pub fn run_explain(c: &ExplainCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    let s = Session::load(opts)?;
    let against = match c.against.as_str() {
        "last" => Against::Last,
        "remote" => Against::Remote,
        k => Against::Key(Key::parse(k).ok_or_else(|| {
            Error::user(format!("--against: `{k}` is not last, remote or a key"))
                .hint("keys are 64 hex digits; `refine hash` prints them")
        })?),
    };
    let ex = explain(&s, &c.target, against)?;
    if p.json {
        let steps: Vec<serde_json::Value> = ex
            .steps
            .iter()
            .map(|st| {
                serde_json::json!({
                    "label": st.label.to_string(),
                    "old_key": st.old_key.0,
                    "new_key": st.new_key.as_ref().map(|k| k.0.clone()),
                    "changes": st.own.iter().map(|l| serde_json::json!({
                        "field": l.change.path, "change": describe(&l.change), "at": l.at, "note": l.note,
                    })).collect::<Vec<_>>(),
                    "deps": st.deps.iter().map(|(d, a, b)| serde_json::json!({"label": d.to_string(), "old": a, "new": b})).collect::<Vec<_>>(),
                })
            })
            .collect();
        p.data(
            &serde_json::json!({
                "label": ex.label.to_string(),
                "unchanged": ex.unchanged(),
                "old_key": ex.old_key.as_ref().map(|k| k.0.clone()),
                "new_key": ex.new_key.as_ref().map(|k| k.0.clone()),
                "steps": steps,
                "causes": ex.causes.iter().map(|c| c.iter().map(|l| l.to_string()).collect::<Vec<_>>()).collect::<Vec<_>>(),
            })
            .to_string(),
        );
        return Ok(Exit::Success);
    }
    if ex.unchanged() {
        p.data(&format!(
            "{} is unchanged since that build (key {})",
            ex.label,
            ex.new_key.as_ref().map_or("-", |k| k.short())
        ));
        return Ok(Exit::Success);
    }
    p.data(&format!(
        "{}: key {} -> {}",
        ex.label,
        ex.old_key.as_ref().map_or("-", |k| k.short()),
        ex.new_key.as_ref().map_or("(pending)", |k| k.short())
    ));
    for st in &ex.steps {
        if st.label != ex.label {
            p.data(&format!("  {}:", st.label));
        }
        for (d, a, b) in &st.deps {
            p.data(&format!("    needs {d}, whose output changed: {a} -> {b}"));
        }
        for l in &st.own {
            p.data(&format!("    {}", describe(&l.change)));
            if let Some(at) = &l.at {
                p.data(&format!("      at {at}"));
            }
            if let Some(n) = &l.note {
                p.data(&format!("      ({n})"));
            }
        }
    }
    for chain in &ex.causes {
        let names: Vec<String> = chain.iter().map(|l| l.to_string()).collect();
        p.data(&format!(
            "root cause: {} (via {})",
            names.last().map_or("?", String::as_str),
            names.join(" <- ")
        ));
    }
    Ok(Exit::Success)
}

pub fn run_verify(c: &VerifyCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    crate::exec::interrupt::install();
    if let Some(m) = &c.from_manifest {
        let lines = from_manifest(m, c.wheel.as_deref())?;
        for l in lines {
            p.data(&format!("ok: {l}"));
        }
        return Ok(Exit::Success);
    }
    if c.targets.is_empty() {
        return Err(
            Error::user("verify needs targets (or --from-manifest PATH)")
                .hint("e.g. `refine verify --rounds 2 //wheels:markupsafe`"),
        );
    }
    if matches!(c.against, VerifyAgainst::Toolchain) {
        let r = verify::across_toolchains(opts, &c.targets, c.jobs, p)?;
        return report_verify(&r, p, "the same bytes with both toolchains");
    }
    if matches!(c.against, VerifyAgainst::Frontend) {
        let r = verify::across_frontends(opts, &c.targets, c.jobs, p)?;
        return report_verify(
            &r,
            p,
            "the same bytes from the host's and the target's Python",
        );
    }
    let s = Session::load(opts)?;
    let args = BuildArgs {
        patterns: c.targets.clone(),
        jobs: c.jobs,
        remote: c.remote.clone(),
        insecure: c.insecure,
        exec_remote: c.exec_remote.clone(),
        ..BuildArgs::default()
    };
    let against = match c.against {
        VerifyAgainst::Local => verify::Against::Local,
        VerifyAgainst::Remote => verify::Against::Remote,
        VerifyAgainst::Toolchain | VerifyAgainst::Frontend => unreachable!("handled above"),
    };
    let r = verify::verify(&s, &args, c.rounds, against, p)?;
    report_verify(&r, p, "")
}

/// Print a verification; `same` says what agreeing means, when it is not
/// reproducing the stored result.
fn report_verify(r: &verify::VerifyReport, p: &Printer, same: &str) -> Result<Exit> {
    p.end_status();
    for ch in &r.checked {
        if p.json {
            p.data(
                &serde_json::json!({
                    "event": "verified", "label": ch.label, "key": ch.key.as_ref().map(|k| k.0.clone()),
                    "reference": ch.reference, "rounds": ch.rounds, "agree": ch.agree, "differences": ch.differences,
                    "signed": ch.signed,
                })
                .to_string(),
            );
            continue;
        }
        if ch.agree && !same.is_empty() {
            p.data(&format!(
                "{same}: {} {}",
                ch.label,
                ch.reference.as_ref().map_or("-".into(), |d| d.to_string())
            ));
        } else if ch.agree {
            p.data(&format!(
                "reproduced {} ({} round{}): {}",
                ch.label,
                ch.rounds.len(),
                if ch.rounds.len() == 1 { "" } else { "s" },
                ch.reference.as_ref().map_or("-".into(), |d| d.to_string())
            ));
            if let Some(sig) = &ch.signed {
                p.data(&format!("  remote result {sig}"));
            }
        } else {
            p.data(&format!("NOT REPRODUCIBLE {}", ch.label));
            if let Some(sig) = &ch.signed {
                p.data(&format!("  remote result {sig}"));
            }
            for d in &ch.differences {
                p.data(d);
            }
        }
    }
    if r.ok() {
        Ok(Exit::Success)
    } else {
        let bad = r.checked.iter().filter(|c| !c.agree).count();
        Err(Error::build(format!("{bad} target{} did not reproduce", if bad == 1 { "" } else { "s" }))
            .hint("the differing files are listed above; builds must not record times, paths or random values"))
    }
}

pub fn run_query(c: &QueryCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    let s = Session::load(opts)?;
    let labels = crate::ops::query::query(&s, &c.expr)?;
    if p.json && c.origin {
        let v: Vec<serde_json::Value> = labels
            .iter()
            .map(|l| serde_json::json!({"label": l.to_string(), "origin": s.origin(l)}))
            .collect();
        p.data(&serde_json::Value::Array(v).to_string());
    } else if p.json {
        p.data(
            &serde_json::json!(labels.iter().map(|l| l.to_string()).collect::<Vec<_>>())
                .to_string(),
        );
    } else {
        let width = labels
            .iter()
            .map(|l| l.to_string().len())
            .max()
            .unwrap_or(0);
        for l in labels {
            if c.origin {
                let label = l.to_string();
                p.data(&format!(
                    "{label:<width$}  {}",
                    s.origin(&l).unwrap_or_default()
                ));
            } else {
                p.data(&l.to_string());
            }
        }
    }
    Ok(Exit::Success)
}

pub fn run_graph(c: &GraphCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    let s = Session::load(opts)?;
    let labels = s.resolve(&c.targets)?;
    let g = s.graph(&labels)?;
    match c.format {
        GraphFormat::Dot => print!("{}", crate::ops::query::dot(&g)),
        GraphFormat::Json => {
            p.data(&serde_json::to_string_pretty(&crate::ops::query::json(&g)).unwrap_or_default())
        }
    }
    Ok(Exit::Success)
}
