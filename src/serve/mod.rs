//! `refine serve`: one process, the dashboard inside the refine binary.
//!
//! ```text
//! browser / pip / curl ──HTTP──► router ─┬─ pages (HTML, from the history and the store)
//!                                        ├─ /api/… (JSON behind every page; POST queues builds)
//!                                        ├─ /imports, /api/imports (a requirements file → an import → its plan)
//!                                        ├─ /logs/N/events (SSE: a running node's log as it grows)
//!                                        ├─ /simple/ (PEP 503 HTML or PEP 691 JSON, by Accept)
//!                                        └─ /metrics (Prometheus, refine_*)
//!                        queue ──one build at a time──► ops::build (recorded in the history)
//! ```
//!
//! Security: it binds loopback unless told otherwise. Everything that
//! changes something needs the token (`Authorization: Bearer …`, or the
//! HttpOnly, SameSite=Strict cookie the browser gets once from the login
//! form); a token is never taken from a URL, never logged, and compared in
//! constant time. Reads are open on loopback and need the token on any
//! other address (`--reads open|token` decides). Logs and artifacts are
//! reached by the history's ids and the store's digests, never by paths
//! from the request; bodies over 64 KiB are refused (an uploaded
//! requirements file may take 1 MiB).

mod api;
mod imports;
mod index;
mod metrics;
mod pages;
mod queue;
mod start;

pub use start::start;

use crate::error::{Error, Result};
use crate::ops::GlobalOpts;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Who may read the pages and the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    Open,
    Token,
}

pub struct ServeOpts {
    pub global: GlobalOpts,
    pub addr: SocketAddr,
    pub token: String,
    /// Where the token came from, to say (never the token itself).
    pub token_from: String,
    pub reads: Reads,
}

pub(crate) struct App {
    pub global: GlobalOpts,
    pub store: PathBuf,
    pub workspace: PathBuf,
    token: String,
    pub reads: Reads,
    pub queue: queue::Queue,
    pub index_cache: index::Cache,
}

pub(crate) type Shared = Arc<App>;

/// The name of the cookie that carries the token.
const COOKIE: &str = "refine_token";

impl App {
    /// Whether the request carries the token (header or cookie).
    pub fn authorized(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string)
            .or_else(|| cookie(headers, COOKIE));
        match given {
            Some(t) => constant_time_eq(t.trim().as_bytes(), self.token.as_bytes()),
            None => false,
        }
    }

    pub fn may_read(&self, headers: &HeaderMap) -> bool {
        self.reads == Reads::Open || self.authorized(headers)
    }

    pub fn history(&self) -> Option<crate::history::History> {
        crate::history::History::open(&self.store)
            .ok()
            .map(|(h, _)| h)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A refusal, as JSON for the API and as a page for browsers.
pub(crate) fn refuse(status: StatusCode, message: &str, json: bool) -> Response {
    if json {
        (
            status,
            axum::Json(serde_json::json!({"error": message, "status": status.as_u16()})),
        )
            .into_response()
    } else {
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            pages::layout(
                status.canonical_reason().unwrap_or("refused"),
                false,
                maud::html! { p.refused { (message) } },
            ),
        )
            .into_response()
    }
}

/// A request that may read: the extractor every read handler takes, so
/// none can forget the check. `JSON` says how a refusal is shaped (the
/// API's JSON, or a page).
pub(crate) struct CanRead<const JSON: bool>;

impl<const JSON: bool> axum::extract::FromRequestParts<Shared> for CanRead<JSON> {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &Shared,
    ) -> Result<Self, Self::Rejection> {
        if app.may_read(&parts.headers) {
            Ok(CanRead)
        } else {
            Err(unauthorized(JSON))
        }
    }
}

/// A request that may act (queue a build, retry): the token, and (for the
/// cookie) the header only the dashboard's own script sends, so another
/// site cannot post a form.
pub(crate) struct CanAct;

impl axum::extract::FromRequestParts<Shared> for CanAct {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &Shared,
    ) -> Result<Self, Self::Rejection> {
        let h = &parts.headers;
        if app.authorized(h)
            && (h.contains_key(header::AUTHORIZATION) || h.contains_key("x-refine-request"))
        {
            Ok(CanAct)
        } else {
            Err(unauthorized(true))
        }
    }
}

/// Run blocking work (SQLite, the store) off the async threads; a panic
/// there is a 500, shaped for the API (`json`) or a page.
pub(crate) async fn blocking<T: Send + 'static>(
    json: bool,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), json))
}

pub(crate) fn unauthorized(json: bool) -> Response {
    refuse(
        StatusCode::UNAUTHORIZED,
        "this needs the token: log in with it (the form at the top of the page), or send `Authorization: Bearer TOKEN`",
        json,
    )
}

/// `POST /login`: the token from a form, once; the browser keeps it as an
/// HttpOnly, SameSite=Strict cookie.
async fn login(
    State(app): State<Shared>,
    axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
) -> Response {
    let given = form
        .get("token")
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), app.token.as_bytes()) {
        return refuse(StatusCode::UNAUTHORIZED, "that is not the token", false);
    }
    let mut h = HeaderMap::new();
    let c = format!("{COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/");
    if let Ok(v) = HeaderValue::from_str(&c) {
        h.insert(header::SET_COOKIE, v);
    }
    h.insert(header::LOCATION, HeaderValue::from_static("/"));
    (StatusCode::SEE_OTHER, h).into_response()
}

async fn logout() -> Response {
    let mut h = HeaderMap::new();
    h.insert(
        header::SET_COOKIE,
        HeaderValue::from_static("refine_token=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    h.insert(header::LOCATION, HeaderValue::from_static("/"));
    (StatusCode::SEE_OTHER, h).into_response()
}

fn router(app: Shared) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/runs/{id}", get(pages::run))
        .route("/targets/{kind}/{name}", get(pages::target))
        .route("/logs/{id}", get(pages::log))
        .route("/logs/{id}/raw", get(pages::log_raw))
        .route("/logs/{id}/events", get(pages::log_events))
        .route("/artifacts/{id}/{file}", get(pages::artifact))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/api/overview", get(api::overview))
        .route("/api/runs/{id}", get(api::run))
        .route("/api/runs/{id}/retry", post(api::retry))
        .route("/api/targets/{kind}/{name}", get(api::target))
        .route("/api/queue", get(api::queue))
        .route("/api/builds", post(api::submit))
        .route("/imports", get(imports::page))
        .route(
            "/api/imports",
            post(imports::create).layer(DefaultBodyLimit::max(imports::MAX_UPLOAD)),
        )
        .route("/simple/", get(index::root))
        .route("/simple/{project}/", get(index::project))
        .route("/files/{file}", get(index::file))
        .route("/metrics", get(metrics::metrics))
        .fallback(|| async { refuse(StatusCode::NOT_FOUND, "no such page", false) })
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(app)
}

/// Serve until SIGINT or SIGTERM.
pub fn serve(opts: ServeOpts, say: &dyn Fn(&str)) -> Result<()> {
    let session = crate::ops::Session::load(&opts.global)?;
    let store = session.store_path.clone();
    let workspace = session.root.clone();
    session.leak();
    crate::store::LocalStore::open(&store)?;
    if let Err(e) = crate::history::History::open(&store) {
        say(&format!(
            "serve: the history cannot be opened ({e}); pages will be empty"
        ));
    }
    let queue = queue::Queue::default();
    let app = Arc::new(App {
        global: opts.global.clone(),
        store,
        workspace,
        token: opts.token.clone(),
        reads: opts.reads,
        queue,
        index_cache: index::Cache::default(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::internal(format!("cannot start the server's runtime: {e}")))?;
    crate::exec::interrupt::install();
    let worker = queue::start(app.clone());
    let served = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.addr)
            .await
            .map_err(|e| {
                Error::env(format!("cannot listen on {}: {e}", opts.addr))
                    .hint("choose another address: --addr 127.0.0.1:PORT")
            })?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::env(format!("{e}")))?;
        say(&format!(
            "serve: http://{local}/ (workspace {}, store {}); actions need the token {}; reads {}",
            app.workspace.display(),
            app.store.display(),
            opts.token_from,
            match app.reads {
                Reads::Open => "are open",
                Reads::Token => "need the token too",
            }
        ));
        axum::serve(listener, router(app.clone()))
            .with_graceful_shutdown(async {
                while !crate::exec::interrupt::requested() {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            })
            .await
            .map_err(|e| Error::env(format!("the server stopped: {e}")))
    });
    // The build in progress sees the same interrupt: wait for it to stop
    // its containers and image builds and clean up.
    if crate::exec::interrupt::requested() {
        if !worker.is_finished() {
            say("serve: waiting for the running build to stop");
        }
        let _ = worker.join();
    }
    served?;
    say("serve: stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_a_header_or_the_cookie_and_compare_exactly() {
        let app = App {
            global: GlobalOpts::default(),
            store: PathBuf::new(),
            workspace: PathBuf::new(),
            token: "s3cret-token".into(),
            reads: Reads::Token,
            queue: queue::Queue::default(),
            index_cache: index::Cache::default(),
        };
        let h = |k: header::HeaderName, v: &str| {
            let mut m = HeaderMap::new();
            m.insert(k, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(app.authorized(&h(header::AUTHORIZATION, "Bearer s3cret-token")));
        assert!(app.authorized(&h(header::COOKIE, "a=b; refine_token=s3cret-token")));
        assert!(!app.authorized(&h(header::AUTHORIZATION, "Bearer s3cret-tokeX")));
        assert!(!app.authorized(&h(header::AUTHORIZATION, "Bearer s3cret")));
        assert!(!app.authorized(&h(header::AUTHORIZATION, "Basic s3cret-token")));
        assert!(!app.authorized(&HeaderMap::new()));
        assert!(!app.may_read(&HeaderMap::new()));
    }
}
