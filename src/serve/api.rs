//! The JSON API behind every page, the data the pages are made of, and the
//! actions (which need the token).

use super::queue::Job;
use super::{CanAct, CanRead, Shared, blocking, refuse};
use crate::history::{Filter, ResultRow, RunRow};
use crate::rules::{Kind, Label};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::path::PathBuf;

/// The last lines of a log the history names, if it is one of the store's.
pub fn log_tail(app: &Shared, log: Option<&str>, n: usize) -> Vec<String> {
    let Some(path) = log.and_then(|l| store_log(app, l)) else {
        return Vec::new();
    };
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(&path) else {
        return Vec::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// A log path from the history, if it lies inside the store's logs
/// directory once rebased onto where the store now is (anything else is
/// never read).
pub fn store_log(app: &Shared, log: &str) -> Option<PathBuf> {
    let logs = std::fs::canonicalize(app.store.join("logs")).ok()?;
    let p = crate::store::logs::rebase_log(&app.store, PathBuf::from(log));
    let p = std::fs::canonicalize(p).ok()?;
    (p.starts_with(&logs) && p.is_file()).then_some(p)
}

#[derive(serde::Serialize)]
pub struct Failure {
    pub result: ResultRow,
    pub tail: Vec<String>,
}

#[derive(serde::Serialize)]
pub struct Overview {
    pub runs: Vec<RunRow>,
    pub running: Vec<ResultRow>,
    pub failures: Vec<Failure>,
    pub slowest: Vec<ResultRow>,
    /// Hits over hits and builds, in the recent runs.
    pub hit_ratio: Option<f64>,
    pub queue: Vec<Job>,
}

pub fn overview_data(app: &Shared) -> Overview {
    let mut o = Overview {
        runs: Vec::new(),
        running: Vec::new(),
        failures: Vec::new(),
        slowest: Vec::new(),
        hit_ratio: None,
        queue: app.queue.jobs(),
    };
    let Some(h) = app.history() else { return o };
    let _ = h.settle_dead_runs();
    o.runs = h.runs(15).unwrap_or_default();
    let q = |verdict: Option<&str>, slowest: bool, limit: usize| {
        h.results(&Filter {
            verdict: verdict.map(str::to_string),
            slowest,
            limit,
            ..Default::default()
        })
        .unwrap_or_default()
    };
    o.running = q(Some("running"), false, 50);
    o.failures = q(Some("failed"), false, 10)
        .into_iter()
        .map(|r| Failure {
            tail: log_tail(app, r.log.as_deref(), 12),
            result: r,
        })
        .collect();
    o.slowest = q(None, true, 10);
    // Over the recent runs (hits are counted per run, most have no row).
    let (hits, built) = o
        .runs
        .iter()
        .fold((0, 0), |(h, b), r| (h + r.hits, b + r.built));
    if hits + built > 0 {
        o.hit_ratio = Some(hits as f64 / (hits + built) as f64);
    }
    o
}

pub async fn overview(State(app): State<Shared>, _: CanRead<true>) -> Response {
    match blocking(true, move || overview_data(&app)).await {
        Ok(o) => Json(o).into_response(),
        Err(refused) => refused,
    }
}

#[derive(serde::Serialize)]
pub struct RunView {
    pub run: RunRow,
    pub results: Vec<ResultRow>,
}

pub fn run_data(app: &Shared, id: i64) -> Option<RunView> {
    let h = app.history()?;
    let run = h.run(id).ok()??;
    let results = h
        .results(&Filter {
            run: Some(id),
            limit: 100_000,
            ..Default::default()
        })
        .unwrap_or_default();
    Some(RunView { run, results })
}

pub async fn run(State(app): State<Shared>, _: CanRead<true>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "a run is named by its number",
            true,
        );
    };
    match blocking(true, move || run_data(&app, id)).await {
        Ok(Some(v)) => Json(v).into_response(),
        _ => refuse(StatusCode::NOT_FOUND, "no such run", true),
    }
}

/// A label from the path's `kind/name`.
pub fn path_label(kind: &str, name: &str) -> Option<Label> {
    let k = Kind::parse(kind)?;
    format!("//{}:{name}", k.as_str()).parse().ok()
}

#[derive(serde::Serialize)]
pub struct Artifact {
    pub file: String,
    pub size: u64,
    pub sha256: String,
    pub url: String,
}

#[derive(serde::Serialize)]
pub struct TargetView {
    pub label: String,
    /// Where its rule is: `rules/x.toml:3` or `builtin:…`.
    pub origin: Option<String>,
    pub builds: Vec<ResultRow>,
    pub running: Option<ResultRow>,
    /// The files of its newest result that has an output.
    pub artifacts: Vec<Artifact>,
    pub artifacts_of: Option<i64>,
    /// The preimage of that result (what its key is the hash of).
    pub provenance: Option<serde_json::Value>,
    /// Why its newest build rebuilt, against the build before it.
    pub explain: Vec<String>,
    /// The fixes `--auto-apply` applied to it, and what came of each.
    pub fixes: Vec<crate::history::FixRow>,
}

pub fn target_data(app: &Shared, label: &Label) -> TargetView {
    let mut v = TargetView {
        label: label.to_string(),
        origin: None,
        builds: Vec::new(),
        running: None,
        artifacts: Vec::new(),
        artifacts_of: None,
        provenance: None,
        explain: Vec::new(),
        fixes: Vec::new(),
    };
    if let Some(h) = app.history() {
        let _ = h.settle_dead_runs();
        v.fixes = h.fixes(&label.to_string(), 50).unwrap_or_default();
        v.builds = h
            .results(&Filter {
                label: Some(label.to_string()),
                limit: 50,
                ..Default::default()
            })
            .unwrap_or_default();
    }
    v.running = v.builds.iter().find(|b| b.verdict == "running").cloned();
    let store = crate::store::LocalStore::open(&app.store).ok();
    if let (Some(store), Some(b)) = (
        &store,
        v.builds
            .iter()
            .find(|b| b.output.is_some() && b.verdict != "failed"),
    ) {
        if let Some(tree) = b
            .output
            .as_deref()
            .and_then(|o| crate::key::Digest::parse(o).ok())
            .and_then(|d| store.cas.tree(&d).ok())
        {
            v.artifacts_of = Some(b.id);
            v.artifacts = tree
                .files()
                .map(|(name, d, size)| Artifact {
                    file: name.to_string(),
                    size,
                    sha256: d.hex().to_string(),
                    url: format!("/artifacts/{}/{}", b.id, urlencode(name)),
                })
                .collect();
        }
        v.provenance = b
            .key
            .as_deref()
            .and_then(crate::key::Key::parse)
            .and_then(|k| store.actions.preimage(&k))
            .map(|p| p.to_json());
    }
    if let Ok(s) = crate::ops::Session::load(&app.global) {
        v.origin = s.origin(label);
        // The newest build against the build before it with another key.
        let built: Vec<&ResultRow> = v
            .builds
            .iter()
            .filter(|b| b.verdict == "built" && b.key.is_some())
            .collect();
        if let Some(newest) = built.first()
            && let Some(prev) = built.iter().find(|b| b.key != newest.key)
            && let Some(k) = prev.key.as_deref().and_then(crate::key::Key::parse)
            && let Ok(ex) = crate::ops::explain::explain(
                &s,
                &label.to_string(),
                crate::ops::explain::Against::Key(k),
            )
        {
            for st in &ex.steps {
                for c in &st.own {
                    v.explain.push(format!(
                        "{}: {}{}",
                        st.label,
                        crate::ops::explain::describe(&c.change),
                        c.at.as_ref().map(|a| format!(" ({a})")).unwrap_or_default()
                    ));
                }
            }
            if v.explain.is_empty() && !ex.unchanged() {
                v.explain
                    .push("a dependency's output changed (no input of its own did)".into());
            }
        }
        s.leak();
    }
    v
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub async fn target(
    State(app): State<Shared>,
    _: CanRead<true>,
    Path((kind, name)): Path<(String, String)>,
) -> Response {
    let Some(label) = path_label(&kind, &name) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "not a target: /api/targets/KIND/NAME",
            true,
        );
    };
    match blocking(true, move || target_data(&app, &label)).await {
        Ok(v) => Json(v).into_response(),
        Err(refused) => refused,
    }
}

pub async fn queue(State(app): State<Shared>, _: CanRead<true>) -> Response {
    Json(app.queue.jobs()).into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    pub targets: Vec<String>,
    /// Build and test: the targets' sets are tested too (`refine test`).
    #[serde(default)]
    pub test: bool,
}

pub async fn submit(
    State(app): State<Shared>,
    _: CanAct,
    body: Result<Json<Submit>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(s) = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is larger than 64 KiB",
                true,
            );
        }
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!(
                    "the body must be {{\"targets\": [\"//wheels:NAME\", …]}}: {}",
                    e.body_text()
                ),
                true,
            );
        }
    };
    if s.targets.is_empty() || s.targets.len() > 1000 {
        return refuse(
            StatusCode::BAD_REQUEST,
            "give between 1 and 1000 targets",
            true,
        );
    }
    for t in &s.targets {
        if let Err(e) = t.parse::<crate::rules::Pattern>() {
            return refuse(StatusCode::BAD_REQUEST, &e.to_string(), true);
        }
    }
    if s.test {
        for t in &s.targets {
            if !matches!(t.parse::<crate::rules::Pattern>(), Ok(crate::rules::Pattern::Exact(l)) if l.kind == Kind::Set)
            {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    &format!("{t} is not a set: with \"test\": true, name sets (//sets:NAME)"),
                    true,
                );
            }
        }
    }
    let (reason, test) = if s.test {
        ("build and test".to_string(), true)
    } else {
        ("rebuild".to_string(), false)
    };
    let job = app.queue.submit_job(s.targets, reason, test);
    (StatusCode::ACCEPTED, Json(job)).into_response()
}

pub async fn retry(State(app): State<Shared>, _: CanAct, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "a run is named by its number",
            true,
        );
    };
    let app2 = app.clone();
    let Ok(Some(v)) = blocking(true, move || run_data(&app2, id)).await else {
        return refuse(StatusCode::NOT_FOUND, "no such run", true);
    };
    let failed: Vec<String> = v
        .results
        .iter()
        .filter(|r| r.verdict == "failed")
        .map(|r| r.label.clone())
        .collect();
    if failed.is_empty() {
        return refuse(
            StatusCode::CONFLICT,
            "that run has no failures to retry",
            true,
        );
    }
    let job = app
        .queue
        .submit_job(failed, format!("retry of the failures of run {id}"), false);
    (StatusCode::ACCEPTED, Json(job)).into_response()
}

#[cfg(test)]
mod tests {
    use super::super::{App, Reads, index, queue};
    use super::store_log;
    use std::sync::Arc;

    #[test]
    fn history_logs_are_read_from_where_the_store_now_is_and_nowhere_else() {
        let d = tempfile::tempdir().unwrap();
        let store = d.path().join("store");
        let log = store.join("logs/s390x/wheels/six/17-ab.log");
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        std::fs::write(&log, "built\n").unwrap();
        std::fs::write(d.path().join("secret"), "no\n").unwrap();
        let app = Arc::new(App {
            global: crate::ops::GlobalOpts::default(),
            store: store.clone(),
            workspace: d.path().to_path_buf(),
            token: "t".into(),
            reads: Reads::Token,
            queue: queue::Queue::default(),
            index_cache: index::Cache::default(),
        });
        let found = std::fs::canonicalize(&log).unwrap();
        // As recorded where the store was built, and where it is now.
        let old = "/home/u/.cache/refine/logs/s390x/wheels/six/17-ab.log";
        assert_eq!(store_log(&app, old), Some(found.clone()));
        assert_eq!(store_log(&app, log.to_str().unwrap()), Some(found));
        // Nothing outside the store's logs, however the path is spelled.
        let secret = d.path().join("secret");
        assert_eq!(store_log(&app, secret.to_str().unwrap()), None);
        assert_eq!(store_log(&app, "/x/logs/../../../secret"), None);
        let up = format!("{}/logs/s390x/../../../secret", store.display());
        assert_eq!(store_log(&app, &up), None);
        assert_eq!(store_log(&app, "/x/logs/s390x/wheels/six/none.log"), None);
    }
}
