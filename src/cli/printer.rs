//! Printing: live verdicts and summaries on stderr, pipeable data on stdout,
//! or everything as JSON lines on stdout with `--json`.

use crate::error::Error;
use crate::ops::build::BuildReport;
use crate::sched::{Event, EventSink, NodeResult, Verdict};
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

pub struct Printer {
    pub json: bool,
    pub quiet: bool,
    lock: Mutex<()>,
    pub start: Instant,
}

pub fn secs(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.2}s")
    } else if s < 600.0 {
        format!("{s:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

pub fn result_json(r: &NodeResult) -> serde_json::Value {
    serde_json::json!({
        "event": "finished",
        "label": r.label.to_string(),
        "verdict": r.verdict.as_str(),
        "key": r.key.as_ref().map(|k| k.0.clone()),
        "output": r.output,
        "duration_ms": r.duration.as_millis() as u64,
        "log": r.log,
        "push": r.push.as_ref().map(|p| match p {
            crate::sched::PushStatus::Pushed => "pushed".to_string(),
            crate::sched::PushStatus::Failed(e) => format!("push-failed: {e}"),
        }),
        "error": r.failure.as_ref().filter(|_| r.verdict == Verdict::Failed).map(|f| serde_json::json!({
            "class": f.class.as_str(),
            "message": f.message,
            "hint": f.hint,
        })),
        "notes": r.notes,
    })
}

impl Printer {
    pub fn new(json: bool, quiet: bool) -> Printer {
        Printer {
            json,
            quiet,
            lock: Mutex::new(()),
            start: Instant::now(),
        }
    }

    fn line_out(&self, s: &str) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{s}");
    }

    fn line_err(&self, s: &str) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut o = std::io::stderr().lock();
        let _ = writeln!(o, "{s}");
    }

    /// Pipeable output: stdout in both modes.
    pub fn data(&self, s: &str) {
        self.line_out(s);
    }

    /// Human messages: stderr, silenced by --quiet.
    pub fn info(&self, s: &str) {
        if !self.quiet && !self.json {
            self.line_err(s);
        }
    }

    pub fn error(&self, e: &Error) {
        if self.json {
            self.line_out(
                &serde_json::json!({
                    "event": "error",
                    "class": e.class.as_str(),
                    "message": e.message,
                    "hint": e.hint,
                    "details": e.rendered,
                })
                .to_string(),
            );
            return;
        }
        let mut s = String::new();
        if let Some(r) = &e.rendered {
            s.push_str(r.trim_end());
            s.push_str("\n\n");
        }
        s.push_str(&format!("error: {}", e.message));
        if let Some(h) = &e.hint {
            s.push_str(&format!("\nhint: {h}"));
        }
        self.line_err(&s);
    }

    pub fn summary(&self, report: &BuildReport) {
        if self.json {
            let counts: serde_json::Map<String, serde_json::Value> = [
                Verdict::HitLocal,
                Verdict::HitRemote,
                Verdict::Built,
                Verdict::Failed,
                Verdict::Blocked,
                Verdict::Skipped,
            ]
            .iter()
            .map(|v| (v.as_str().to_string(), report.count(*v).into()))
            .collect();
            self.line_out(
                &serde_json::json!({
                    "event": "summary",
                    "counts": counts,
                    "duration_ms": self.start.elapsed().as_millis() as u64,
                    "out_dir": report.out_dir,
                    "manifest": report.manifest,
                })
                .to_string(),
            );
            return;
        }
        let mut parts = Vec::new();
        for v in [
            Verdict::Built,
            Verdict::HitLocal,
            Verdict::HitRemote,
            Verdict::Failed,
            Verdict::Blocked,
            Verdict::Skipped,
        ] {
            let n = report.count(v);
            if n > 0 {
                parts.push(format!("{n} {}", v.as_str()));
            }
        }
        let pushed = report
            .results
            .iter()
            .filter(|r| matches!(r.push, Some(crate::sched::PushStatus::Pushed)))
            .count();
        if pushed > 0 {
            parts.push(format!("{pushed} pushed"));
        }
        let mut s = format!(
            "{} targets: {} in {}",
            report.results.len(),
            parts.join(", "),
            secs(self.start.elapsed())
        );
        for r in report
            .results
            .iter()
            .filter(|r| r.verdict == Verdict::Failed)
        {
            let Some(f) = &r.failure else { continue };
            s.push_str(&format!(
                "\n\nFAILED {} ({} error): {}",
                r.label,
                f.class.as_str(),
                f.message
            ));
            if let Some(log) = &r.log {
                s.push_str(&format!("\n  log: {}", log.display()));
            }
            if let Some(tail) = &f.log_tail {
                s.push_str("\n  last lines:");
                for l in tail.lines() {
                    s.push_str(&format!("\n  | {l}"));
                }
            }
            if !f.hint.is_empty() {
                s.push_str(&format!("\nhint: {}", f.hint));
            }
        }
        let blocked = report.count(Verdict::Blocked);
        if blocked > 0 {
            s.push_str(&format!(
                "\n\n{blocked} target(s) blocked by the failures above"
            ));
        }
        if let Some(m) = &report.manifest {
            s.push_str(&format!(
                "\nwheels in {} (manifest: {})",
                report.out_dir.display(),
                m.display()
            ));
        }
        if !self.quiet {
            self.line_err(&s);
        }
    }
}

impl EventSink for Printer {
    fn event(&self, e: &Event<'_>) {
        match e {
            Event::Planned { total } => {
                if self.json {
                    self.line_out(
                        &serde_json::json!({"event": "planned", "total": total}).to_string(),
                    );
                }
            }
            Event::Started { label } => {
                if self.json {
                    self.line_out(
                        &serde_json::json!({"event": "started", "label": label.to_string()})
                            .to_string(),
                    );
                }
            }
            Event::Finished {
                result,
                done,
                total,
            } => {
                if self.json {
                    self.line_out(&result_json(result).to_string());
                    return;
                }
                if self.quiet && result.verdict.is_ok() {
                    return;
                }
                let w = total.to_string().len();
                let mut line = format!(
                    "[{done:>w$}/{total}] {:<10} {}",
                    result.verdict.as_str(),
                    result.label
                );
                if result.verdict == Verdict::Built || result.verdict == Verdict::Failed {
                    line.push_str(&format!("  ({})", secs(result.duration)));
                }
                match &result.push {
                    Some(crate::sched::PushStatus::Pushed) => line.push_str("  pushed"),
                    Some(crate::sched::PushStatus::Failed(_)) => line.push_str("  push-failed"),
                    None => {}
                }
                if matches!(result.verdict, Verdict::Blocked | Verdict::Skipped)
                    && let Some(f) = &result.failure
                {
                    line.push_str(&format!("  ({})", f.message));
                }
                self.line_err(&line);
            }
            Event::Warning { label, message } => {
                if self.json {
                    self.line_out(
                        &serde_json::json!({
                            "event": "warning",
                            "label": label.map(|l| l.to_string()),
                            "message": message,
                        })
                        .to_string(),
                    );
                } else {
                    self.line_err(&format!("warning: {message}"));
                }
            }
        }
    }
}
