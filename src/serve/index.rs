//! `/simple/`: the package index of what was built ([`crate::index`]),
//! HTML or PEP 691 JSON by content negotiation, for pip and uv. It holds
//! the wheels of the newest good result of each target a run asked for
//! (its deliverables, not the tools it was built with; a repaired wheel in
//! place of its unrepaired one); `/files/` serves them and their
//! `.metadata` from the store.

use super::{CanRead, Shared, blocking, refuse};
use crate::index::Entry;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

/// Index entries by blob digest (reading a wheel's METADATA once).
#[derive(Default)]
pub struct Cache {
    entries: Mutex<HashMap<String, Entry>>,
}

const JSON: &str = "application/vnd.pypi.simple.v1+json";

fn wants_json(h: &HeaderMap) -> bool {
    h.get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let mut bits = part.split(';').map(str::trim);
            let ty = bits.next().unwrap_or("");
            let q0 = bits.any(|b| b.replace(' ', "") == "q=0");
            ty == JSON && !q0
        })
}

/// The index's wheels: (entry, blob path).
fn current(app: &Shared) -> Vec<(Entry, PathBuf)> {
    let Some(h) = app.history() else {
        return Vec::new();
    };
    let Ok(store) = crate::store::LocalStore::open(&app.store) else {
        return Vec::new();
    };
    // The newest good output of each (arch, label) a run asked for:
    // deliverables, not the tools built with.
    let newest: BTreeMap<(String, String), String> = h
        .deliverables()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, (output, _))| (k, output))
        .collect();
    let repaired: std::collections::HashSet<(String, String)> = newest
        .keys()
        .filter_map(|(a, l)| {
            l.strip_prefix("//repairs:")
                .map(|n| (a.clone(), n.to_string()))
        })
        .collect();
    let mut out: BTreeMap<String, (Entry, PathBuf)> = BTreeMap::new();
    for ((arch, label), r) in &newest {
        let keep = label.starts_with("//repairs:")
            || label.starts_with("//sources:")
            || label
                .strip_prefix("//wheels:")
                .is_some_and(|n| !repaired.contains(&(arch.clone(), n.to_string())));
        if !keep {
            continue;
        }
        let Some(tree) = crate::key::Digest::parse(r)
            .ok()
            .and_then(|d| store.cas.tree(&d).ok())
        else {
            continue;
        };
        for (name, d, _) in tree.files() {
            let base = name.rsplit('/').next().unwrap_or(name);
            if !base.ends_with(".whl") || out.contains_key(base) {
                continue;
            }
            let path = store.cas.blob_path(d);
            let cached = app
                .index_cache
                .entries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(d.hex())
                .cloned();
            let entry = match cached {
                Some(e) => e,
                None => {
                    let Ok(bytes) = store.cas.read_blob(d) else {
                        continue;
                    };
                    let Ok(e) = crate::index::entry_from(base, &bytes) else {
                        continue;
                    };
                    app.index_cache
                        .entries
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(d.hex().to_string(), e.clone());
                    e
                }
            };
            out.insert(base.to_string(), (entry, path));
        }
    }
    out.into_values().collect()
}

fn respond(json: bool, html: String, json_body: String) -> Response {
    if json {
        ([(header::CONTENT_TYPE, JSON)], json_body).into_response()
    } else {
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
    }
}

pub async fn root(State(app): State<Shared>, _: CanRead<true>, headers: HeaderMap) -> Response {
    let a = app.clone();
    let all = blocking(false, move || current(&a))
        .await
        .unwrap_or_default();
    let entries: Vec<Entry> = all.into_iter().map(|(e, _)| e).collect();
    let groups = crate::index::by_project(&entries);
    let projects: Vec<&str> = groups.keys().map(String::as_str).collect();
    respond(
        wants_json(&headers),
        crate::index::root_html(&projects),
        crate::index::root_json(&projects),
    )
}

pub async fn project(
    State(app): State<Shared>,
    _: CanRead<true>,
    headers: HeaderMap,
    Path(project): Path<String>,
) -> Response {
    let want = crate::rules::normalize_name(&project);
    if want != project {
        // PEP 503: the normalized name is the page; redirect to it.
        return (
            StatusCode::MOVED_PERMANENTLY,
            [(
                header::LOCATION,
                format!("/simple/{}/", super::api::urlencode(&want)),
            )],
        )
            .into_response();
    }
    let a = app.clone();
    let all = blocking(false, move || current(&a))
        .await
        .unwrap_or_default();
    let entries: Vec<Entry> = all.into_iter().map(|(e, _)| e).collect();
    let groups = crate::index::by_project(&entries);
    let Some(list) = groups.get(&want) else {
        return refuse(
            StatusCode::NOT_FOUND,
            "no such project in the index",
            wants_json(&headers),
        );
    };
    respond(
        wants_json(&headers),
        crate::index::project_html(&want, list, "/files"),
        crate::index::project_json(&want, list, "/files"),
    )
}

pub async fn file(
    State(app): State<Shared>,
    _: CanRead<true>,
    Path(file): Path<String>,
) -> Response {
    let a = app.clone();
    let all = blocking(false, move || current(&a))
        .await
        .unwrap_or_default();
    let (name, metadata) = match file.strip_suffix(".metadata") {
        Some(n) => (n.to_string(), true),
        None => (file.clone(), false),
    };
    // Only a file the index lists: nothing of the request becomes a path.
    let Some((entry, path)) = all.into_iter().find(|(e, _)| e.filename == name) else {
        return refuse(StatusCode::NOT_FOUND, "no such file in the index", false);
    };
    if metadata {
        return (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            entry.metadata,
        )
            .into_response();
    }
    match tokio::fs::read(&path).await {
        Ok(b) => ([(header::CONTENT_TYPE, "application/octet-stream")], b).into_response(),
        Err(_) => refuse(StatusCode::NOT_FOUND, "no such file in the index", false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn json_when_asked_for_html_otherwise() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            m
        };
        // What pip sends.
        assert!(wants_json(&h(
            "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
        )));
        assert!(!wants_json(&h("text/html")));
        assert!(!wants_json(&h(
            "application/vnd.pypi.simple.v1+json; q=0, text/html"
        )));
        assert!(!wants_json(&HeaderMap::new()));
    }
}
