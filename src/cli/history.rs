//! `refine history`

use super::printer::{Printer, secs};
use crate::error::{Exit, Result};
use crate::ops::GlobalOpts;
use crate::ops::history::{Answer, Query};
use clap::Args;

#[derive(Args, Debug)]
pub struct HistoryCmd {
    /// One target's builds over time (e.g. //wheels:markupsafe).
    pub label: Option<String>,
    /// How many rows (default 20).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub recent: usize,
    /// Only failures, newest first.
    #[arg(long)]
    pub failures: bool,
    /// The slowest builds first.
    #[arg(long)]
    pub slowest: bool,
    /// Comma-separated values on stdout.
    #[arg(long)]
    pub csv: bool,
}

fn when(ms: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
    .to_string()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn run(c: &HistoryCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    let store = crate::ops::history_store(opts)?;
    if let Some(l) = &c.label {
        // Checked like every label.
        l.parse::<crate::rules::Label>()
            .map_err(|e| crate::error::Error::user(e.to_string()).hint(e.hint()))?;
    }
    let q = Query {
        label: c.label.clone(),
        failures: c.failures,
        slowest: c.slowest,
        recent: c.recent,
    };
    let (answer, note) = crate::ops::history::query(&store, &q)?;
    if let Some(n) = note {
        p.info(&format!("history: {n}"));
    }
    match answer {
        Answer::Runs(runs) => {
            if c.csv {
                p.data("id,started,finished,command,workspace,arch,toolchain,built,hits,failed,blocked,skipped");
            }
            for r in &runs {
                if p.json {
                    let mut v = serde_json::to_value(r).unwrap_or_default();
                    v["event"] = "run".into();
                    p.data(&v.to_string());
                } else if c.csv {
                    p.data(
                        &[
                            r.id.to_string(),
                            when(r.started_ms),
                            r.finished_ms.map(when).unwrap_or_default(),
                            csv_field(&r.command),
                            csv_field(&r.workspace),
                            r.arch.clone(),
                            r.toolchain.clone(),
                            r.built.to_string(),
                            r.hits.to_string(),
                            r.failed.to_string(),
                            r.blocked.to_string(),
                            r.skipped.to_string(),
                        ]
                        .join(","),
                    );
                } else {
                    let took = r
                        .finished_ms
                        .map(|f| {
                            secs(std::time::Duration::from_millis(
                                (f - r.started_ms).max(0) as u64
                            ))
                        })
                        .unwrap_or_else(|| "running".into());
                    let took = if r.interrupted {
                        format!("{took} (interrupted)")
                    } else {
                        took
                    };
                    p.data(&format!(
                        "#{:<5} {}  {:<8} {:>4} built {:>5} hits {:>3} failed {:>3} blocked  {:>8}  {}",
                        r.id,
                        when(r.started_ms),
                        r.arch,
                        r.built,
                        r.hits,
                        r.failed,
                        r.blocked,
                        took,
                        r.command
                    ));
                }
            }
            if runs.is_empty() && !p.json && !c.csv {
                p.info("history: no runs recorded in this store yet");
            }
        }
        Answer::Results(rows, policies) => {
            if c.csv {
                p.data("run,label,arch,toolchain,verdict,started,duration_ms,key,output,log,error,hints");
            }
            for (r, reports) in rows.iter().zip(&policies) {
                if p.json {
                    let mut v = serde_json::to_value(r).unwrap_or_default();
                    v["event"] = "result".into();
                    if !reports.is_empty() {
                        v["policies"] = serde_json::to_value(reports).unwrap_or_default();
                    }
                    p.data(&v.to_string());
                } else if c.csv {
                    p.data(
                        &[
                            r.run.to_string(),
                            csv_field(&r.label),
                            r.arch.clone(),
                            r.toolchain.clone(),
                            r.verdict.clone(),
                            when(r.started_ms),
                            r.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
                            r.key.clone().unwrap_or_default(),
                            r.output.clone().unwrap_or_default(),
                            csv_field(r.log.as_deref().unwrap_or_default()),
                            csv_field(r.error.as_deref().unwrap_or_default()),
                            csv_field(&r.hints.join("; ")),
                        ]
                        .join(","),
                    );
                } else {
                    p.data(&format!(
                        "#{:<5} {}  {:<9} {:<34} {:<8} {:>8}  {}",
                        r.run,
                        when(r.started_ms),
                        r.verdict,
                        r.label,
                        r.arch,
                        r.duration_ms
                            .map(|d| secs(std::time::Duration::from_millis(d.max(0) as u64)))
                            .unwrap_or_default(),
                        r.key
                            .as_deref()
                            .map(|k| &k[..k.len().min(12)])
                            .unwrap_or("")
                    ));
                    if let Some(e) = &r.error {
                        p.data(&format!("       error: {e}"));
                    }
                    for rep in reports {
                        p.data(&format!(
                            "       {}: {}",
                            rep.wheel,
                            crate::wheel::policy::describe(rep)
                        ));
                    }
                    for h in &r.hints {
                        p.data(&format!("       hint: {h}"));
                    }
                }
            }
            if rows.is_empty() && !p.json && !c.csv {
                p.info("history: nothing recorded matches");
            }
        }
    }
    Ok(Exit::Success)
}
