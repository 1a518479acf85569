//! `refine doctor`

use super::printer::Printer;
use crate::error::{ErrorClass, Exit, Result};
use crate::exec::host::Status;
use crate::ops::GlobalOpts;
use clap::Args;

#[derive(Args, Debug)]
pub struct DoctorCmd {
    /// Also check the tools refine's own tests use (registry, skopeo, …).
    #[arg(long)]
    pub dev: bool,
}

pub fn run(c: &DoctorCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    let r = crate::ops::doctor::doctor(opts, c.dev)?;
    for check in &r.checks {
        if p.json {
            let mut v = serde_json::to_value(check).unwrap_or_default();
            v["event"] = "check".into();
            p.data(&v.to_string());
            continue;
        }
        let tag = match check.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        p.data(&format!("{tag}  {:<16} {}", check.name, check.detail));
        if check.status != Status::Ok
            && let Some(fix) = &check.fix
        {
            p.data(&format!("      {:<16} fix: {fix}", ""));
        }
    }
    let failed = r.checks.iter().filter(|c| c.status == Status::Fail).count();
    let what = match &r.workspace {
        Some(w) => format!("the workspace at {}", w.display()),
        None => "the shipped rule set (no workspace here)".to_string(),
    };
    if p.json {
        p.data(
            &serde_json::json!({
                "event": "summary", "arch": r.arch.as_str(), "workspace": r.workspace,
                "store": r.store, "failed": failed, "ok": r.passed(),
            })
            .to_string(),
        );
    } else if failed == 0 {
        p.info(&format!(
            "doctor: this machine can build {what} for {}",
            r.arch
        ));
    } else {
        p.info(&format!(
            "doctor: {failed} {} this machine from building {what} for {}; run the fix commands above (as root), or `bash .ci/setup` in refine's repository",
            if failed == 1 { "problem keeps" } else { "problems keep" },
            r.arch
        ));
    }
    Ok(Exit::unless(failed > 0, ErrorClass::Environment))
}
