//! The dashboard's pages: HTML made on the server from the same data as
//! the API (no build step and no separate toolchain: the pages, their
//! style and their few lines of script are in the binary), plus the log
//! and artifact downloads and the live log stream. Pages are maud
//! templates: every value spliced into them is escaped by the template
//! engine, never by hand.

use super::api::{self, overview_data, path_label, run_data, store_log, target_data};
use super::{CanRead, Shared, blocking, refuse};
use crate::history::ResultRow;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use std::collections::HashMap;

const STYLE: &str = r#"
:root { --fg:#1d2430; --muted:#667085; --line:#e4e7ec; --bg:#f8f9fb; --ok:#12805c; --bad:#c0352b; --warn:#a15c07; --run:#2563eb; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
header { background:#111827; color:#fff; padding:10px 24px; display:flex; gap:24px; align-items:center; }
header a { color:#e5e7eb; text-decoration:none; } header a:hover { color:#fff; }
header .brand { font-weight:700; font-size:16px; color:#fff; }
header form { margin-left:auto; display:flex; gap:6px; }
header input { padding:3px 6px; border-radius:4px; border:1px solid #374151; background:#1f2937; color:#fff; }
main { max-width:1200px; margin:0 auto; padding:18px 24px 60px; }
h1 { font-size:20px; margin:6px 0 14px; } h2 { font-size:15px; margin:24px 0 8px; color:#344054; }
table { border-collapse:collapse; width:100%; background:#fff; border:1px solid var(--line); border-radius:6px; }
th, td { text-align:left; padding:6px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-weight:600; color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.03em; }
tr:last-child td { border-bottom:none; }
code, pre, .mono { font-family:ui-monospace, SFMono-Regular, Menlo, monospace; font-size:12.5px; }
pre { background:#0f172a; color:#e2e8f0; padding:12px; border-radius:6px; overflow:auto; max-height:560px; white-space:pre-wrap; }
.v-built,.v-hit\:local,.v-hit\:remote,.v-done { color:var(--ok); } .v-failed { color:var(--bad); font-weight:600; }
.v-blocked,.v-skipped { color:var(--warn); } .v-running,.v-queued { color:var(--run); font-weight:600; }
.cards { display:flex; gap:12px; flex-wrap:wrap; } .card { background:#fff; border:1px solid var(--line); border-radius:6px; padding:10px 14px; min-width:150px; }
.card b { display:block; font-size:22px; } .muted { color:var(--muted); } .hint { color:var(--warn); }
button { background:#2563eb; color:#fff; border:none; border-radius:4px; padding:5px 12px; cursor:pointer; }
button:hover { background:#1d4ed8; } .refused { color:var(--bad); font-weight:600; }
#action-status { margin-left:10px; }
svg.chart { background:#fff; border:1px solid var(--line); border-radius:6px; width:100%; height:auto; }
svg.chart text { font:11px system-ui, sans-serif; fill:#344054; } svg.chart .axis { stroke:var(--line); }
.t-built,.t-hit\:local,.t-hit\:remote { fill:#86efac; } .t-failed { fill:#fca5a5; }
.t-blocked,.t-skipped { fill:#fde68a; } .t-running { fill:#93c5fd; }
svg.chart g.crit rect { stroke:#b91c1c; stroke-width:2; }
"#;

const SCRIPT: &str = r#"
document.querySelectorAll('button[data-action]').forEach(function (b) {
  b.addEventListener('click', function () {
    var out = document.getElementById('action-status');
    out.textContent = 'asking…';
    fetch(b.dataset.action, {method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/json', 'X-Refine-Request': '1'},
      body: b.dataset.body || '{}'})
      .then(function (r) { return r.json().then(function (j) { return [r.status, j]; }); })
      .then(function (x) {
        if (x[0] === 202) { out.className = ''; out.textContent = 'queued as job ' + x[1].id + ' (' + x[1].targets.join(' ') + ')'; }
        else { out.className = 'refused'; out.textContent = 'refused (' + x[0] + '): ' + x[1].error; }
      }).catch(function (e) { out.className = 'refused'; out.textContent = String(e); });
  });
});
var log = document.getElementById('live-log');
if (log && log.dataset.events) {
  var es = new EventSource(log.dataset.events);
  var follow = true;
  log.addEventListener('scroll', function () { follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 8; });
  es.addEventListener('line', function (e) {
    log.textContent += e.data + '\n';
    document.getElementById('live-lines').textContent = String(log.textContent.split('\n').length - 1);
    if (follow) { log.scrollTop = log.scrollHeight; }
  });
  es.addEventListener('end', function (e) {
    document.getElementById('live-state').textContent = 'finished: ' + e.data;
    es.close();
  });
}
"#;

pub fn layout(title: &str, logged_in: bool, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · refine" }
                meta name="viewport" content="width=device-width";
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a.brand href="/" { "refine" }
                    a href="/" { "Overview" }
                    a href="/imports" { "Import" }
                    a href="/simple/" { "Index" }
                    a href="/metrics" { "Metrics" }
                    @if logged_in {
                        form method="post" action="/logout" {
                            span.muted { "token given" } " "
                            button type="submit" { "log out" }
                        }
                    } @else {
                        form method="post" action="/login" {
                            input type="password" name="token" placeholder="token" autocomplete="off" aria-label="token";
                            button type="submit" { "log in" }
                        }
                    }
                }
                main { (body) }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
    .into_string()
}

fn when(ms: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
    .to_string()
    .replace('T', " ")
    .trim_end_matches('Z')
    .to_string()
}

fn dur(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return String::new() };
    let s = ms.max(0) as f64 / 1000.0;
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m {:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h {:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

fn target_href(label: &str) -> String {
    match label.strip_prefix("//").and_then(|l| l.split_once(':')) {
        Some((k, n)) => format!("/targets/{}/{}", api::urlencode(k), api::urlencode(n)),
        None => "/".into(),
    }
}

/// A run as a timeline (the nodes it recorded, each a bar from its start
/// for its duration, on the first of the run's slots free then; the
/// critical path outlined; hover for label, verdict, time and key), as
/// `refine build --profile` writes it for Perfetto.
fn timeline(rows: &[ResultRow]) -> Markup {
    let timed: Vec<&ResultRow> = rows.iter().filter(|r| r.duration_ms.is_some()).collect();
    let Some(t0) = timed.iter().map(|r| r.started_ms).min() else {
        return html! {};
    };
    let spans: Vec<Option<(u64, u64)>> = timed
        .iter()
        .map(|r| {
            let s = (r.started_ms - t0).max(0) as u64;
            Some((s, s + r.duration_ms.unwrap_or(0).max(0) as u64))
        })
        .collect();
    let workers: Vec<Option<&str>> = timed.iter().map(|r| r.worker.as_deref()).collect();
    let (lanes, lane_names) = crate::ops::profile::lanes_by_worker(&spans, &workers);
    let end = spans
        .iter()
        .flatten()
        .map(|s| s.1)
        .max()
        .unwrap_or(0)
        .max(1);
    let n = lane_names.len().max(1);
    let remote = workers.iter().any(|w| w.is_some());
    let left = if remote { 110.0 } else { 70.0 };
    let (width, lane_h, top) = (900.0, 24.0, 22.0);
    let x = |ms: u64| left + width * ms as f64 / end as f64;
    let height = top + lane_h * n as f64 + 8.0;
    let critical: u64 = timed
        .iter()
        .filter(|r| r.critical)
        .filter_map(|r| r.duration_ms)
        .sum::<i64>()
        .max(0) as u64;
    html! {
        h2 { "Timeline" }
        p.muted {
            (timed.len()) " nodes on " (n) " slot" (if n == 1 { "" } else { "s" })
            @if remote { " (this machine's and the remote workers')" }
            " over " (dur(Some(end as i64)))
            @if critical > 0 { "; the critical path (outlined) took " (dur(Some(critical as i64))) }
        }
        svg #timeline .chart viewBox=(format!("0 0 {} {height}", left + width + 10.0)) xmlns="http://www.w3.org/2000/svg" {
            @for k in 0..=4u64 {
                @let t = end * k / 4;
                line .axis x1=(x(t)) x2=(x(t)) y1=(top - 6.0) y2=(height) {}
                @if k == 4 {
                    text x=(x(t) - 2.0) y=(12) text-anchor="end" { (dur(Some(t as i64))) }
                } @else {
                    text x=(x(t) + 2.0) y=(12) { (dur(Some(t as i64))) }
                }
            }
            @for (l, name) in lane_names.iter().enumerate() {
                text x=(4) y=(top + lane_h * l as f64 + 16.0) { (name[..name.len().min(16)]) }
            }
            @for (i, r) in timed.iter().enumerate() {
                @if let (Some(lane), Some((s, e))) = (lanes[i], spans[i]) {
                    @let w = (x(e) - x(s)).max(2.0);
                    g.bar.crit[r.critical] data-label=(r.label) {
                        title {
                            (r.label) " · " (r.verdict) " · " (dur(r.duration_ms))
                            @if let Some(w) = &r.worker { " · on worker " (w) }
                            @if let Some(k) = &r.key { " · key " (k[..k.len().min(12)]) }
                            @if r.critical { " · on the critical path" }
                        }
                        a href=(target_href(&r.label)) {
                            rect class=(format!("t-{}", r.verdict)) x=(x(s)) y=(top + lane_h * lane as f64) width=(w) height=(lane_h - 4.0) rx=(3) {}
                            @if w > 80.0 {
                                text x=(x(s) + 4.0) y=(top + lane_h * lane as f64 + 14.0) { (r.label) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A target's build times over its recent runs, oldest first: one bar per
/// recorded result with a duration (hits take none), to its run.
fn build_times(rows: &[ResultRow]) -> Markup {
    let mut timed: Vec<&ResultRow> = rows
        .iter()
        .filter(|r| r.duration_ms.is_some() && r.verdict != "running")
        .collect();
    if timed.is_empty() {
        return html! {};
    }
    timed.reverse();
    let max = timed
        .iter()
        .filter_map(|r| r.duration_ms)
        .max()
        .unwrap_or(1)
        .max(1);
    let (left, width, h, top) = (60.0, 900.0, 120.0, 10.0);
    let slot = width / timed.len().max(1) as f64;
    let bar = (slot * 0.7).clamp(2.0, 40.0);
    html! {
        h2 { "Build times" }
        svg #build-times .chart viewBox=(format!("0 0 {} {}", left + width + 10.0, top + h + 24.0)) xmlns="http://www.w3.org/2000/svg" {
            line .axis x1=(left) x2=(left + width) y1=(top + h) y2=(top + h) {}
            text x=(4) y=(top + 10.0) { (dur(Some(max))) }
            text x=(4) y=(top + h) { "0" }
            @for (i, r) in timed.iter().enumerate() {
                @let d = r.duration_ms.unwrap_or(0).max(0);
                @let bh = (h * d as f64 / max as f64).max(1.0);
                @let bx = left + slot * i as f64 + (slot - bar) / 2.0;
                g.bar data-run=(r.run) {
                    title { "run #" (r.run) " · " (r.verdict) " · " (dur(r.duration_ms)) " · " (when(r.started_ms)) }
                    a href={ "/runs/" (r.run) } {
                        rect class=(format!("t-{}", r.verdict)) x=(bx) y=(top + h - bh) width=(bar) height=(bh) rx=(2) {}
                    }
                    @if slot > 28.0 {
                        text x=(bx) y=(top + h + 14.0) { "#" (r.run) }
                    }
                }
            }
        }
    }
}

fn verdict(v: &str) -> Markup {
    html! { span class=(format!("v-{v}")) { (v) } }
}

pub(crate) fn page(app: &Shared, headers: &HeaderMap, title: &str, body: Markup) -> Response {
    Html(layout(title, app.authorized(headers), body)).into_response()
}

pub async fn overview(
    State(app): State<Shared>,
    _: CanRead<false>,
    headers: HeaderMap,
) -> Response {
    let a = app.clone();
    let Ok(o) = blocking(false, move || overview_data(&a)).await else {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the history could not be read",
            false,
        );
    };
    let last = o.runs.first();
    let ratio = o
        .hit_ratio
        .map(|r| format!("{:.0}%", r * 100.0))
        .unwrap_or_else(|| "–".into());
    let b = html! {
        h1 { "Overview" }
        div.cards {
            div.card { span.muted { "runs recorded" } b { (o.runs.len()) } }
            div.card { span.muted { "building now" } b { (o.running.len()) } }
            div.card { span.muted { "cache hit ratio" } b { (ratio) } }
            div.card { span.muted { "queue" } b { (app.queue.depth()) } }
            div.card {
                span.muted { "last run" }
                b { @if let Some(r) = last { "#" (r.id) } @else { "–" } }
            }
        }
        @if !o.running.is_empty() {
            h2 { "Building now" }
            table {
                tr { th { "target" } th { "since" } th { "log" } }
                @for r in &o.running {
                    tr {
                        td { a href=(target_href(&r.label)) { (r.label) } }
                        td { (when(r.started_ms)) }
                        td { a href={ "/logs/" (r.id) } { "follow the log" } }
                    }
                }
            }
        }
        h2 { "Recent runs" }
        table {
            tr {
                th { "run" } th { "started" } th { "command" } th { "arch" } th { "built" }
                th { "hits" } th { "failed" } th { "blocked" } th { "took" }
            }
            @for r in &o.runs {
                tr.run {
                    td { a href={ "/runs/" (r.id) } { "#" (r.id) } }
                    td { (when(r.started_ms)) }
                    td.mono { (r.command) }
                    td { (r.arch) }
                    td { (r.built) }
                    td { (r.hits) }
                    td class=(if r.failed > 0 { "v-failed" } else { "" }) { (r.failed) }
                    td { (r.blocked) }
                    td {
                        @match r.finished_ms {
                            _ if r.interrupted => (verdict("interrupted")),
                            Some(f) => (dur(Some(f - r.started_ms))),
                            None => (verdict("running")),
                        }
                    }
                }
            }
            @if o.runs.is_empty() {
                tr { td colspan="9" class="muted" { "no runs yet: `refine build` records every run here" } }
            }
        }
        @if !o.failures.is_empty() {
            h2 { "Recent failures" }
            table {
                tr { th { "target" } th { "when" } th { "what happened" } }
                @for f in &o.failures {
                    @let r = &f.result;
                    tr {
                        td {
                            a href=(target_href(&r.label)) { (r.label) }
                            br;
                            a.muted href={ "/logs/" (r.id) } { "log" }
                        }
                        td { (when(r.started_ms)) }
                        td {
                            (r.error.as_deref().unwrap_or("failed"))
                            @for h in &r.hints { div.hint { "hint: " (h) } }
                            @if !f.tail.is_empty() { pre { (f.tail.join("\n")) } }
                        }
                    }
                }
            }
        }
        h2 { "Slowest builds" }
        table {
            tr { th { "target" } th { "arch" } th { "toolchain" } th { "took" } th { "run" } }
            @for r in &o.slowest {
                tr {
                    td { a href=(target_href(&r.label)) { (r.label) } }
                    td { (r.arch) }
                    td { (r.toolchain) }
                    td { (dur(r.duration_ms)) }
                    td { a href={ "/runs/" (r.run) } { "#" (r.run) } }
                }
            }
        }
        (queue_table(&o.queue))
    };
    page(&app, &headers, "Overview", b)
}

fn queue_table(q: &[super::queue::Job]) -> Markup {
    html! {
        @if !q.is_empty() {
            h2 { "Queue" }
            table {
                tr { th { "job" } th { "targets" } th { "why" } th { "state" } th { "run" } }
                @for j in q {
                    @let state = serde_json::to_value(&j.state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    tr.job {
                        td { (j.id) }
                        td.mono { (j.targets.join(" ")) }
                        td { (j.reason) }
                        td {
                            (verdict(&state))
                            @if let Some(m) = &j.message { " " span.muted { (m) } }
                        }
                        td { @if let Some(r) = j.run { a href={ "/runs/" (r) } { "#" (r) } } }
                    }
                }
            }
        }
    }
}

fn results_table(rows: &[ResultRow], with_label: bool) -> Markup {
    html! {
        table {
            tr {
                @if with_label { th { "target" } }
                th { "run" } th { "when" } th { "verdict" } th { "took" } th { "where" } th { "toolchain" } th { "key" } th { "log" }
            }
            @for r in rows {
                tr.build {
                    @if with_label { td { a href=(target_href(&r.label)) { (r.label) } } }
                    td { a href={ "/runs/" (r.run) } { "#" (r.run) } }
                    td { (when(r.started_ms)) }
                    td { (verdict(&r.verdict)) }
                    td { (dur(r.duration_ms)) }
                    td {
                        @if r.verdict == "built" {
                            (r.worker.as_deref().map_or("here".to_string(), |w| format!("worker {w}")))
                        }
                    }
                    td { (r.toolchain) }
                    td.mono { (r.key.as_deref().map(|k| &k[..k.len().min(12)]).unwrap_or("")) }
                    td { @if r.log.is_some() { a href={ "/logs/" (r.id) } { "log" } } }
                }
            }
        }
    }
}

pub async fn run(
    State(app): State<Shared>,
    _: CanRead<false>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "a run is named by its number",
            false,
        );
    };
    let a = app.clone();
    let Ok(Some(v)) = blocking(false, move || run_data(&a, id)).await else {
        return refuse(StatusCode::NOT_FOUND, "no such run", false);
    };
    let r = &v.run;
    let mut rows = v.results.clone();
    rows.sort_by(|a, b| a.label.cmp(&b.label));
    let b = html! {
        h1 { "Run #" (r.id) " " span.muted.mono { (r.command) } }
        p {
            (when(r.started_ms)) " · " (r.arch) " · " (r.built) " built, " (r.hits) " hits, "
            (r.failed) " failed, " (r.blocked) " blocked"
            @if let Some(f) = r.finished_ms { " · took " (dur(Some(f - r.started_ms))) }
        }
        @if r.failed > 0 {
            p {
                button data-action={ "/api/runs/" (r.id) "/retry" } { "Retry the failures" }
                span #action-status {}
            }
        }
        (timeline(&v.results))
        h2 { "Results" }
        (results_table(&rows, true))
    };
    page(&app, &headers, &format!("Run #{id}"), b)
}

pub async fn target(
    State(app): State<Shared>,
    _: CanRead<false>,
    headers: HeaderMap,
    Path((kind, name)): Path<(String, String)>,
) -> Response {
    let Some(label) = path_label(&kind, &name) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "not a target: /targets/KIND/NAME",
            false,
        );
    };
    let a = app.clone();
    let l = label.clone();
    let Ok(v) = blocking(false, move || target_data(&a, &l)).await else {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the history could not be read",
            false,
        );
    };
    let body = serde_json::json!({"targets": [label.to_string()]}).to_string();
    let b = html! {
        h1 { (v.label) }
        p.muted { "rule: " span.mono { (v.origin.as_deref().unwrap_or("not in the workspace now")) } }
        p {
            button data-action="/api/builds" data-body=(body) { "Rebuild" }
            span #action-status {}
        }
        @if let Some(r) = &v.running {
            h2 {
                "Building now " span.muted #live-state { "running" } " · " span #live-lines { "0" } " lines"
            }
            pre #live-log data-events={ "/logs/" (r.id) "/events" } {}
        }
        (build_times(&v.builds))
        h2 { "Builds" }
        (results_table(&v.builds, false))
        @if !v.fixes.is_empty() {
            h2 { "Fixes applied by --auto-apply" }
            table #fixes {
                tr { th { "after run" } th { "round" } th { "edit" } th { "why" } th { "outcome" } th { "rebuilt in" } }
                @for f in &v.fixes {
                    tr {
                        td { a href={ "/runs/" (f.run) } { "#" (f.run) } }
                        td { (f.round) }
                        td.mono { (f.edit) " " span.muted { "(" (f.import) ")" } }
                        td { (f.why) }
                        td { span class=(format!("v-{}", f.outcome.replace(' ', "-"))) { (f.outcome) } }
                        td { @if let Some(r) = f.outcome_run { a href={ "/runs/" (r) } { "#" (r) } } @else { "–" } }
                    }
                }
            }
        }
        @if !v.explain.is_empty() {
            h2 { "Why the last build rebuilt" }
            ul { @for e in &v.explain { li.mono { (e) } } }
        }
        @if !v.artifacts.is_empty() {
            h2 { "Artifacts" }
            table {
                tr { th { "file" } th { "size" } th { "sha256" } }
                @for a in &v.artifacts {
                    tr {
                        td { a href=(a.url) { (a.file) } }
                        td { (bytesize::ByteSize(a.size).to_string()) }
                        td.mono { (a.sha256) }
                    }
                }
            }
        }
        @if let Some(p) = &v.provenance {
            h2 { "Provenance " span.muted { "(what its key is the hash of)" } }
            pre { (serde_json::to_string_pretty(p).unwrap_or_default()) }
        }
    };
    page(&app, &headers, &v.label, b)
}

/// The history's result `id`, if it exists.
fn result(app: &Shared, id: &str) -> Option<ResultRow> {
    let id: i64 = id.parse().ok()?;
    app.history()?.result(id).ok()?
}

/// The history's build `id` and its log in the store, or the refusal.
async fn build_log(
    app: &Shared,
    id: String,
    json: bool,
) -> std::result::Result<(ResultRow, std::path::PathBuf), Response> {
    let a = app.clone();
    let Ok(Some(r)) = blocking(json, move || result(&a, &id)).await else {
        return Err(refuse(StatusCode::NOT_FOUND, "no such build", json));
    };
    match r.log.as_deref().and_then(|l| store_log(app, l)) {
        Some(path) => Ok((r, path)),
        None => Err(refuse(
            StatusCode::NOT_FOUND,
            "this build has no log in the store (gc may have trimmed it)",
            json,
        )),
    }
}

pub async fn log(
    State(app): State<Shared>,
    _: CanRead<false>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (r, path) = match build_log(&app, id, false).await {
        Ok(x) => x,
        Err(e) => return e,
    };
    let search = q.get("q").map(String::as_str).unwrap_or("");
    let head = html! {
        h1 { "Log of " a href=(target_href(&r.label)) { (r.label) } " " span.muted { "run #" (r.run) } }
        p { (verdict(&r.verdict)) " · " a href={ "/logs/" (r.id) "/raw" } download { "download" } }
        form method="get" {
            input name="q" value=(search) placeholder="search the log";
            " "
            button type="submit" { "search" }
        }
    };
    if r.verdict == "running" {
        let b = html! {
            (head)
            h2 { span #live-state { "running" } " · " span #live-lines { "0" } " lines" }
            pre #live-log data-events={ "/logs/" (r.id) "/events" } {}
        };
        return page(&app, &headers, "Log", b);
    }
    let text = std::fs::read(&path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let b = match q.get("q").filter(|s| !s.is_empty()) {
        Some(needle) => {
            let n = needle.to_lowercase();
            let hits: Vec<String> = text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.to_lowercase().contains(&n))
                .take(2000)
                .map(|(i, l)| format!("{:>6}  {l}", i + 1))
                .collect();
            html! {
                (head)
                h2 { (hits.len()) " lines with “" (needle) "”" }
                pre { (hits.join("\n")) }
            }
        }
        None => {
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(5000);
            html! {
                (head)
                @if from > 0 {
                    p.muted { "the last 5000 of " (lines.len()) " lines; download it for all" }
                }
                pre { (lines[from..].join("\n")) }
            }
        }
    };
    page(&app, &headers, "Log", b)
}

pub async fn log_raw(
    State(app): State<Shared>,
    _: CanRead<false>,
    Path(id): Path<String>,
) -> Response {
    let (r, path) = match build_log(&app, id, false).await {
        Ok(x) => x,
        Err(e) => return e,
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            [
                (
                    header::CONTENT_TYPE,
                    "text/plain; charset=utf-8".to_string(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"{}-{}.log\"",
                        r.label.replace(['/', ':'], "_"),
                        r.id
                    ),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => refuse(StatusCode::NOT_FOUND, &e.to_string(), false),
    }
}

/// `GET /logs/N/events`: the log's lines as they are written, then `end`
/// with the verdict (SSE). Bounded: it ends after six hours.
pub async fn log_events(
    State(app): State<Shared>,
    _: CanRead<true>,
    Path(id): Path<String>,
) -> Response {
    let path = match build_log(&app, id.clone(), true).await {
        Ok((_, p)) => p,
        Err(e) => return e,
    };
    struct St {
        app: Shared,
        id: String,
        path: std::path::PathBuf,
        offset: u64,
        partial: String,
        pending: std::collections::VecDeque<Event>,
        done: bool,
        started: std::time::Instant,
        last_check: std::time::Instant,
    }
    let st = St {
        app,
        id,
        path,
        offset: 0,
        partial: String::new(),
        pending: Default::default(),
        done: false,
        started: std::time::Instant::now(),
        last_check: std::time::Instant::now(),
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(e) = st.pending.pop_front() {
                return Some((Ok::<Event, std::convert::Infallible>(e), st));
            }
            if st.done {
                return None;
            }
            // New bytes?
            let mut grew = false;
            if let Some(bytes) = read_from(&st.path, st.offset).await
                && !bytes.is_empty()
            {
                let new = String::from_utf8_lossy(&bytes).into_owned();
                st.offset += bytes.len() as u64;
                st.partial.push_str(&new);
                while let Some(i) = st.partial.find('\n') {
                    let line: String = st.partial.drain(..=i).collect();
                    st.pending.push_back(
                        Event::default()
                            .event("line")
                            .data(line.trim_end_matches('\n')),
                    );
                }
                grew = true;
            }
            if !grew && st.last_check.elapsed() >= std::time::Duration::from_millis(900) {
                st.last_check = std::time::Instant::now();
                let a = st.app.clone();
                let id = st.id.clone();
                let now = tokio::task::spawn_blocking(move || result(&a, &id))
                    .await
                    .ok()
                    .flatten();
                let finished = now
                    .as_ref()
                    .map(|r| r.verdict.clone())
                    .filter(|v| v != "running");
                if let Some(v) = finished.or_else(|| {
                    (st.started.elapsed() > std::time::Duration::from_secs(6 * 3600))
                        .then(|| "still running (the stream ends after six hours)".to_string())
                }) {
                    if !st.partial.is_empty() {
                        let rest = std::mem::take(&mut st.partial);
                        st.pending
                            .push_back(Event::default().event("line").data(rest));
                    }
                    st.pending.push_back(Event::default().event("end").data(v));
                    st.done = true;
                    continue;
                }
            }
            if st.pending.is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// What a file holds from `offset` on (at most 1 MiB at a time).
async fn read_from(path: &std::path::Path, offset: u64) -> Option<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = tokio::fs::File::open(path).await.ok()?;
    f.seek(std::io::SeekFrom::Start(offset)).await.ok()?;
    let mut buf = Vec::new();
    f.take(1 << 20).read_to_end(&mut buf).await.ok()?;
    Some(buf)
}

/// `GET /artifacts/N/FILE`: a file of build N's output, from the store.
pub async fn artifact(
    State(app): State<Shared>,
    _: CanRead<false>,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    let a = app.clone();
    let found = tokio::task::spawn_blocking(move || -> Option<(std::path::PathBuf, String)> {
        let r = result(&a, &id)?;
        let store = crate::store::LocalStore::open(&a.store).ok()?;
        let tree = store
            .cas
            .tree(&crate::key::Digest::parse(r.output.as_deref()?).ok()?)
            .ok()?;
        // Only a name the output has: nothing of the request becomes a path.
        let (_, d, _) = tree.files().find(|(n, _, _)| *n == file)?;
        store.cas.verify_blob(d).ok()?;
        let base = file.rsplit('/').next().unwrap_or(&file).to_string();
        Some((store.cas.blob_path(d), base))
    })
    .await;
    let Ok(Some((path, name))) = found else {
        return refuse(StatusCode::NOT_FOUND, "no such artifact", false);
    };
    // Streamed a chunk at a time: an image of 550 MB is never held whole
    // (three parallel downloads once took 1.7 GB).
    let Ok(file) = tokio::fs::File::open(&path).await else {
        return refuse(StatusCode::NOT_FOUND, "no such artifact", false);
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let chunks = futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 << 10];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let mut resp = (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", name.replace('"', "")),
            ),
        ],
        axum::body::Body::from_stream(chunks),
    )
        .into_response();
    if let Some(n) = len
        && let Ok(v) = header::HeaderValue::from_str(&n.to_string())
    {
        resp.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a page splices in is escaped by the template engine: a label,
    /// a command or a log line is text, never markup.
    #[test]
    fn spliced_values_are_escaped() {
        let evil = "<script>alert('x')</script>\"&";
        let page = layout(evil, false, html! { p { (evil) } (verdict(evil)) });
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert('x')&lt;/script&gt;&quot;&amp;"),
            "{page}"
        );
        // The page's own script and style are there, unescaped.
        assert!(page.contains("document.querySelectorAll('button[data-action]')"));
        assert!(page.contains("<style>"));
    }

    fn row(
        label: &str,
        verdict: &str,
        started_ms: i64,
        duration_ms: Option<i64>,
        critical: bool,
    ) -> ResultRow {
        ResultRow {
            id: 1,
            run: 7,
            label: label.into(),
            arch: "s390x".into(),
            toolchain: "cross".into(),
            key: Some("0123456789abcdef".into()),
            output: None,
            verdict: verdict.into(),
            started_ms,
            duration_ms,
            log: None,
            error: None,
            hints: Vec::new(),
            requested: true,
            critical,
            worker: None,
        }
    }

    /// Two builds at once take two slots; the third follows on the first
    /// free; the critical path is outlined; a row with no duration (a
    /// running build) is not drawn.
    #[test]
    fn a_run_is_drawn_on_as_many_slots_as_ran_at_once() {
        let rows = [
            row("//images:img", "built", 1_000, Some(4_000), true),
            row("//packs:zlib", "built", 1_500, Some(1_000), false),
            row("//wheels:a", "failed", 5_000, Some(2_000), true),
            row("//wheels:b", "running", 5_000, None, false),
        ];
        let html = timeline(&rows).into_string();
        assert_eq!(html.matches("<g class=\"bar").count(), 3, "{html}");
        assert_eq!(html.matches("<g class=\"bar crit\"").count(), 2, "{html}");
        assert!(html.contains("3 nodes on 2 slots over 6.0s"), "{html}");
        assert!(
            html.contains("the critical path (outlined) took 6.0s"),
            "{html}"
        );
        assert!(html.contains("<title>//wheels:a · failed · 2.0s · key 0123456789ab · on the critical path</title>"), "{html}");
        assert!(html.contains("class=\"t-failed\""));
        assert!(timeline(&rows[3..]).into_string().is_empty());
        // A target's build times: oldest first, one bar per timed result.
        let chart = build_times(&rows).into_string();
        assert_eq!(chart.matches("<g class=\"bar\"").count(), 3, "{chart}");
        // rows are newest first, as the history gives them: the chart
        // starts with the last of them that has a time (//wheels:a).
        let first = chart.find("<title>").unwrap();
        assert!(
            chart[first..].starts_with("<title>run #7 · failed · 2.0s"),
            "{chart}"
        );
    }

    /// Nodes a remote worker built get that worker's lane, named for it,
    /// after this machine's slots; the hover says the worker.
    #[test]
    fn remote_builds_are_drawn_on_their_workers_lanes() {
        let mut a = row("//images:img", "built", 1_000, Some(4_000), true);
        let mut b = row("//wheels:a", "built", 5_000, Some(2_000), true);
        let mut c = row("//wheels:b", "built", 5_000, Some(1_000), false);
        b.worker = Some("w-s390x".into());
        c.worker = Some("w-x86".into());
        a.worker = None;
        let html = timeline(&[a, b, c]).into_string();
        assert!(
            html.contains("3 nodes on 3 slots (this machine's and the remote workers')"),
            "{html}"
        );
        let slot = html.find(">slot 1<").unwrap();
        let w1 = html.find(">w-s390x<").unwrap();
        let w2 = html.find(">w-x86<").unwrap();
        assert!(slot < w1 && w1 < w2, "{html}");
        assert!(
            html.contains("//wheels:a · built · 2.0s · on worker w-s390x"),
            "{html}"
        );
    }
}
