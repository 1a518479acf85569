//! Printing: live verdicts and summaries on stderr, pipeable data on stdout,
//! or everything as JSON lines on stdout with `--json`.
//!
//! On a terminal a live status line (indicatif) under the verdicts says
//! what is running and for how long; without a terminal, or with `--json`,
//! there are only plain lines. Nodes that never started are one line of the
//! summary, not one line each.

use crate::error::{Error, ErrorClass};
use crate::ops::build::BuildReport;
use crate::sched::{Event, EventSink, NodeResult, Verdict};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Printer {
    pub json: bool,
    pub quiet: bool,
    lock: Mutex<()>,
    pub start: Instant,
    /// The live status line, once a run is planned on a terminal.
    status: Mutex<Option<StatusLine>>,
}

/// What is running, for the status line.
type Running = Arc<Mutex<Vec<(String, Instant)>>>;

struct StatusLine {
    bar: indicatif::ProgressBar,
    running: Running,
}

/// The status line's text: the running nodes, longest-running first, with
/// how long each has run (at most `width` characters).
pub fn status_text(running: &[(String, Duration)], width: usize) -> String {
    if running.is_empty() {
        return String::new();
    }
    let mut items: Vec<&(String, Duration)> = running.iter().collect();
    items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut out = String::from("running ");
    for (n, (label, d)) in items.iter().enumerate() {
        let item = format!("{}{label} {}", if n == 0 { "" } else { ", " }, clock(*d));
        let rest = items.len() - n - 1;
        let more = if rest > 0 {
            format!(" +{rest}")
        } else {
            String::new()
        };
        if out.chars().count() + item.chars().count() + more.chars().count() > width && n > 0 {
            out.push_str(&format!(" +{}", items.len() - n));
            break;
        }
        out.push_str(&item);
    }
    out
}

/// 7s, 2m05s, 1h02m.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
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
        "worker": r.worker,
        "key": r.key.as_ref().map(|k| k.0.clone()),
        "output": r.output,
        "duration_ms": r.duration.as_millis() as u64,
        "log": r.log,
        "push": r.push.as_ref().map(|p| match p {
            crate::sched::PushStatus::Pushed => "pushed".to_string(),
            crate::sched::PushStatus::Failed(e) => format!("push-failed: {e}"),
        }),
        "error": r.failure.as_ref().filter(|_| r.verdict == Verdict::Failed).map(error_json),
        "notes": r.notes,
    })
}

/// An error as `--json` carries it: class, scope, message, hint, the
/// places it is about (file, line, col) and its causes.
pub fn error_json(e: &Error) -> serde_json::Value {
    serde_json::json!({
        "class": e.class.as_str(),
        "scope": match e.scope {
            crate::error::Scope::Run => "run",
            crate::error::Scope::Node => "node",
        },
        "message": e.message,
        "hint": e.hint,
        "locations": e.locations,
        "causes": e.causes,
    })
}

impl Printer {
    pub fn new(json: bool, quiet: bool) -> Printer {
        Printer {
            json,
            quiet,
            lock: Mutex::new(()),
            start: Instant::now(),
            status: Mutex::new(None),
        }
    }

    fn line_out(&self, s: &str) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{s}");
    }

    fn line_err(&self, s: &str) {
        let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(st) = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            st.bar.println(s);
            return;
        }
        let mut o = std::io::stderr().lock();
        let _ = writeln!(o, "{s}");
    }

    /// Start the live status line (on a terminal, without --json or --quiet).
    fn start_status(&self, total: usize) {
        if self.json || self.quiet || !std::io::stderr().is_terminal() {
            return;
        }
        let running: Running = Arc::default();
        let shown = running.clone();
        let style = indicatif::ProgressStyle::with_template("{spinner} [{pos}/{len}] {running}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner())
            .with_key(
                "running",
                move |_: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let now: Vec<(String, Duration)> = shown
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .iter()
                        .map(|(l, t)| (l.clone(), t.elapsed()))
                        .collect();
                    let width = console_width().saturating_sub(16);
                    let _ = w.write_str(&status_text(&now, width));
                },
            );
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total as u64),
            indicatif::ProgressDrawTarget::stderr(),
        )
        .with_style(style);
        bar.enable_steady_tick(Duration::from_millis(500));
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = Some(StatusLine { bar, running });
    }

    /// Remove the status line (before the summary).
    pub fn end_status(&self) {
        if let Some(st) = self.status.lock().unwrap_or_else(|e| e.into_inner()).take() {
            st.bar.finish_and_clear();
        }
    }

    fn status_update(&self, f: impl FnOnce(&StatusLine)) {
        if let Some(st) = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            f(st);
        }
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
                &{
                    let mut v = error_json(e);
                    v["event"] = "error".into();
                    v["details"] = e.rendered.clone().into();
                    v
                }
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
        for c in &e.causes {
            s.push_str(&format!("\n  caused by: {c}"));
        }
        if let Some(h) = &e.hint {
            s.push_str(&format!("\nhint: {h}"));
        }
        self.line_err(&s);
    }

    /// What the hint catalog says about the failures of a run.
    pub fn suggestions(&self, sugg: &[crate::ops::hints::Suggestion]) {
        for s in sugg {
            if self.json {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                v["event"] = "suggestion".into();
                v["auto_apply"] = s.fix.is_some().into();
                self.line_out(&v.to_string());
                continue;
            }
            let mut t = format!("hint: {}: {}", s.label, s.message);
            if let Some(e) = &s.edit {
                t.push_str(&format!(
                    "
      edit: {e}"
                ));
            }
            self.line_err(&t);
        }
    }

    pub fn summary(&self, report: &BuildReport) {
        self.end_status();
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
                    "known_failures": report.results.iter().filter(|r| r.known_failure).count(),
                    "duration_ms": self.start.elapsed().as_millis() as u64,
                    "out_dir": report.out_dir,
                    "manifest": report.manifest,
                })
                .to_string(),
            );
            return;
        }
        let mut parts = Vec::new();
        // Skipped nodes get a line of their own below.
        for v in [
            Verdict::Built,
            Verdict::HitLocal,
            Verdict::HitRemote,
            Verdict::Failed,
            Verdict::Blocked,
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
        let known = report.results.iter().filter(|r| r.known_failure).count();
        if known > 0 {
            parts.push(format!(
                "{known} of the failed not built again (known failures, --skip-known-failures)"
            ));
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
            if f.class == ErrorClass::Interrupted {
                s.push_str(&format!(
                    "\n\ninterrupted {}: nothing of it was stored",
                    r.label
                ));
                continue;
            }
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
            if let Some(h) = f.hint.as_deref().filter(|h| !h.is_empty()) {
                s.push_str(&format!("\nhint: {h}"));
            }
        }
        let blocked = report.count(Verdict::Blocked);
        if blocked > 0 {
            s.push_str(&format!(
                "\n\n{blocked} target(s) blocked by the failures above"
            ));
        }
        let skipped: Vec<&NodeResult> = report
            .results
            .iter()
            .filter(|r| r.verdict == Verdict::Skipped)
            .collect();
        if let Some(first) = skipped.first() {
            let why = first
                .failure
                .as_ref()
                .map(|f| f.message.trim_start_matches("not started: ").to_string())
                .unwrap_or_default();
            s.push_str(&format!(
                "\n{} target{} not started: {why}",
                skipped.len(),
                if skipped.len() == 1 { "" } else { "s" }
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
                self.start_status(*total);
            }
            Event::Started { label } => {
                if self.json {
                    self.line_out(
                        &serde_json::json!({"event": "started", "label": label.to_string()})
                            .to_string(),
                    );
                }
                self.status_update(|st| {
                    st.running
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((label.to_string(), Instant::now()));
                });
            }
            Event::Building { label, log } => {
                if self.json {
                    self.line_out(
                        &serde_json::json!({"event": "building", "label": label.to_string(), "log": log})
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
                let label = result.label.to_string();
                self.status_update(|st| {
                    st.running
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .retain(|(l, _)| *l != label);
                    st.bar.set_position(*done as u64);
                });
                // Nodes that never started are one line of the summary.
                if result.verdict == Verdict::Skipped || (self.quiet && result.verdict.is_ok()) {
                    return;
                }
                let w = total.to_string().len();
                let verdict = match (&result.worker, result.verdict) {
                    (Some(_), Verdict::Built) => "built:remote",
                    (_, v) => v.as_str(),
                };
                let mut line = format!("[{done:>w$}/{total}] {verdict:<10} {}", result.label);
                if result.verdict == Verdict::Built || result.verdict == Verdict::Failed {
                    line.push_str(&format!("  ({})", secs(result.duration)));
                }
                if let Some(w) = result
                    .worker
                    .as_ref()
                    .filter(|_| result.verdict == Verdict::Built)
                {
                    line.push_str(&format!("  on {w}"));
                }
                match &result.push {
                    Some(crate::sched::PushStatus::Pushed) => line.push_str("  pushed"),
                    Some(crate::sched::PushStatus::Failed(_)) => line.push_str("  push-failed"),
                    None => {}
                }
                if result.verdict == Verdict::Blocked
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

fn console_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_names_what_runs_longest_first_and_fits() {
        let running = vec![
            ("//packs:zlib".to_string(), Duration::from_secs(7)),
            ("//images:bookworm".to_string(), Duration::from_secs(133)),
        ];
        assert_eq!(
            status_text(&running, 100),
            "running //images:bookworm 2m13s, //packs:zlib 7s"
        );
        assert_eq!(
            status_text(&running, 30),
            "running //images:bookworm 2m13s +1"
        );
        assert_eq!(status_text(&[], 100), "");
        assert_eq!(clock(Duration::from_secs(3725)), "1h02m");
    }
}
