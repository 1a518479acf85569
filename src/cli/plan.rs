//! `refine plan`, `refine hash`, `refine log`

use super::printer::Printer;
use crate::error::{Exit, Result};
use crate::ops::plan::{PlanStatus, log_path, plan, reason};
use crate::ops::{GlobalOpts, Session};
use clap::Args;

#[derive(Args, Debug)]
pub struct PlanCmd {
    /// Labels or patterns (default: [defaults] targets).
    pub targets: Vec<String>,
    /// Also list the targets that are cached.
    #[arg(long, short)]
    pub all: bool,
    /// Also check a remote store (default: [store] remote), oci://HOST[:PORT]/PREFIX.
    #[arg(long, value_name = "URL")]
    pub remote: Option<String>,
    /// Do not look at the remote store.
    #[arg(long)]
    pub offline: bool,
    /// Talk plain HTTP to the remote.
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Args, Debug)]
pub struct HashCmd {
    /// Labels or patterns.
    #[arg(required = true)]
    pub targets: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LogCmd {
    /// One label.
    pub target: String,
    /// Print the path of the log instead of its contents.
    #[arg(long)]
    pub path: bool,
}

pub fn run_plan(c: &PlanCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    let s = Session::load(&GlobalOpts {
        read_ahead: true,
        ..opts.clone()
    })?;
    let remote = crate::ops::remote::open(&s, c.remote.as_deref(), c.offline, c.insecure)?;
    let (graph, entries) = crate::ops::plan::plan_with_remote(&s, &c.targets, remote.as_ref())?;
    // A foreign target's wheel: which Python its PEP 517 hooks run in.
    let hooks = |l: &crate::rules::Label| -> Option<&'static str> {
        let d = &graph.get(l)?.derivation();
        (l.kind == crate::rules::Kind::Wheel && d.platform.is_foreign()).then_some(
            if d.host_python.is_some() {
                "host"
            } else {
                "target"
            },
        )
    };
    let (mut build, mut pending, mut cached) = (0, 0, 0);
    let width = entries
        .iter()
        .filter(|e| c.all || e.status != PlanStatus::Cached)
        .map(|e| e.label.to_string().len())
        .max()
        .unwrap_or(0);
    for e in &entries {
        match e.status {
            PlanStatus::Cached | PlanStatus::Remote => cached += 1,
            PlanStatus::Build => build += 1,
            PlanStatus::Pending { .. } => pending += 1,
        }
        if p.json {
            p.data(
                &serde_json::json!({
                    "label": e.label.to_string(),
                    "status": e.status.as_str(),
                    "key": e.key.as_ref().map(|k| k.0.clone()),
                    "output": e.output,
                    "after": match &e.status {
                        PlanStatus::Pending { after } => after.iter().map(|l| l.to_string()).collect(),
                        _ => Vec::new(),
                    },
                    "changes": e.changes.iter().map(crate::ops::plan::describe_change).collect::<Vec<_>>(),
                    "reason": reason(e),
                    "origin": s.origin(&e.label),
                    "frontend_python": hooks(&e.label),
                })
                .to_string(),
            );
            continue;
        }
        if e.status == PlanStatus::Cached && !c.all {
            continue;
        }
        let label = e.label.to_string();
        // Which rule is in use, where the built-in base's is.
        let from = s
            .origin(&e.label)
            .filter(|o| o.starts_with(crate::workspace::base::PREFIX))
            .map(|o| format!("  [{o}]"))
            .unwrap_or_default();
        let py = match (hooks(&e.label), &e.status) {
            (Some(h), PlanStatus::Build | PlanStatus::Pending { .. }) => {
                format!("  (hooks in the {h}'s Python)")
            }
            _ => String::new(),
        };
        p.data(
            format!(
                "{:<8} {label:<width$}  {}{py}{from}",
                e.status.as_str(),
                reason(e)
            )
            .trim_end(),
        );
    }
    p.info(&format!(
        "{} targets: {build} to build, {pending} pending on those, {cached} cached",
        entries.len()
    ));
    Ok(Exit::Success)
}

pub fn run_hash(c: &HashCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    let s = Session::load(opts)?;
    let (graph, entries) = plan(&s, &c.targets)?;
    let store = s.open_store()?;
    for e in entries.iter().filter(|e| e.requested) {
        let node = graph.get(&e.label);
        let wheels: Vec<(String, String)> = match (&e.output, node) {
            (Some(o), Some(_)) => store
                .cas
                .tree(o)
                .map(|t| {
                    t.files()
                        .filter(|(n, _, _)| n.ends_with(".whl"))
                        .map(|(n, d, _)| (n.to_string(), d.hex().to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let verified = e
            .key
            .as_ref()
            .map_or(0, |k| crate::ops::plan::verified_count(&store, k));
        if p.json {
            p.data(
                &serde_json::json!({
                    "label": e.label.to_string(),
                    "key": e.key.as_ref().map(|k| k.0.clone()),
                    "output": e.output,
                    "status": e.status.as_str(),
                    "wheels": wheels.iter().map(|(n, d)| serde_json::json!({"file": n, "sha256": d})).collect::<Vec<_>>(),
                    "verified": verified,
                })
                .to_string(),
            );
            continue;
        }
        let key = e.key.as_ref().map_or("-".to_string(), |k| k.0.clone());
        let out = e.output.as_ref().map_or_else(
            || match &e.status {
                PlanStatus::Pending { .. } => {
                    "(pending: a dependency must build first)".to_string()
                }
                _ => "(not built)".to_string(),
            },
            |o| o.to_string(),
        );
        p.data(&format!("{} key={key} output={out}", e.label));
        for (n, d) in wheels {
            p.data(&format!("  {n} sha256={d}"));
        }
        if verified > 0 {
            p.data(&format!(
                "  verified {verified} time{}",
                if verified == 1 { "" } else { "s" }
            ));
        }
    }
    Ok(Exit::Success)
}

pub fn run_log(c: &LogCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    let s = Session::load(opts)?;
    let path = log_path(&s, &c.target)?;
    if c.path {
        p.data(&path.display().to_string());
        return Ok(Exit::Success);
    }
    p.info(&format!("==> {}", path.display()));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| crate::error::Error::env(format!("cannot read {}: {e}", path.display())))?;
    print!("{text}");
    Ok(Exit::Success)
}
