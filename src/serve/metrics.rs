//! `/metrics`: Prometheus text exposition, every name `refine_*`.

use super::{CanRead, Shared, blocking};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::fmt::Write as _;

/// The store's size on disk, walked at most once a minute.
fn store_size(app: &Shared) -> u64 {
    use std::sync::Mutex;
    static CACHE: Mutex<Option<(std::time::Instant, u64)>> = Mutex::new(None);
    let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((t, n)) = *c
        && t.elapsed() < std::time::Duration::from_secs(60)
    {
        return n;
    }
    let n = walkdir::WalkDir::new(&app.store)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    *c = Some((std::time::Instant::now(), n));
    n
}

pub fn text(app: &Shared) -> String {
    let mut t = String::new();
    let h = app.history();
    let _ = writeln!(
        t,
        "# HELP refine_results_total Node results recorded, by verdict.\n# TYPE refine_results_total counter"
    );
    let mut hits = 0i64;
    let mut built = 0i64;
    if let Some(h) = &h {
        for (v, n) in h.verdict_counts().unwrap_or_default() {
            let _ = writeln!(t, "refine_results_total{{verdict=\"{v}\"}} {n}");
            if v.starts_with("hit:") {
                hits += n;
            } else if v == "built" {
                built += n;
            }
        }
    }
    let _ = writeln!(
        t,
        "# HELP refine_cache_hit_ratio Hits over hits and builds, of every recorded result.\n# TYPE refine_cache_hit_ratio gauge"
    );
    let ratio = if hits + built > 0 {
        hits as f64 / (hits + built) as f64
    } else {
        0.0
    };
    let _ = writeln!(t, "refine_cache_hit_ratio {ratio}");
    let _ = writeln!(
        t,
        "# HELP refine_build_duration_seconds Durations of recorded builds.\n# TYPE refine_build_duration_seconds summary"
    );
    let (mut sum, mut count) = (0f64, 0u64);
    if let Some(h) = &h {
        for r in h
            .results(&crate::history::Filter {
                verdict: Some("built".into()),
                limit: 100_000,
                ..Default::default()
            })
            .unwrap_or_default()
        {
            sum += r.duration_ms.unwrap_or(0) as f64 / 1000.0;
            count += 1;
        }
    }
    let _ = writeln!(
        t,
        "refine_build_duration_seconds_sum {sum}\nrefine_build_duration_seconds_count {count}"
    );
    let runs = h
        .as_ref()
        .and_then(|h| h.runs(1).ok())
        .and_then(|r| r.first().map(|r| r.id))
        .unwrap_or(0);
    let _ = writeln!(
        t,
        "# HELP refine_runs_total Runs recorded.\n# TYPE refine_runs_total counter\nrefine_runs_total {runs}"
    );
    let _ = writeln!(
        t,
        "# HELP refine_queue_depth Builds queued or running in this server.\n# TYPE refine_queue_depth gauge\nrefine_queue_depth {}",
        app.queue.depth()
    );
    let _ = writeln!(
        t,
        "# HELP refine_store_size_bytes The local store on disk.\n# TYPE refine_store_size_bytes gauge\nrefine_store_size_bytes {}",
        store_size(app)
    );
    t
}

pub async fn metrics(State(app): State<Shared>, _: CanRead<true>) -> Response {
    let body = blocking(true, move || text(&app)).await.unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
