//! HTTP(S) downloads with the system's trust roots and proxy settings.

use super::FetchError;
use crate::key::Digest;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

/// One blocking client per process (connection reuse), built on first use.
pub fn client() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(1800))
            .user_agent(concat!("refine/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::blocking::Client::new())
    })
}

pub fn network_error(url: &str, e: &dyn std::fmt::Display) -> FetchError {
    FetchError::Network {
        message: format!("cannot fetch {url}: {e}"),
        hint: "check the network (and proxy) from this machine; a mirror can be added with `mirrors = [...]`".into(),
    }
}

/// GET `url` (with `accept`, if given): a 404 becomes `NotFound` with
/// `hint`, any other failure a network error.
fn get_ok(
    url: &str,
    accept: Option<&str>,
    hint: &str,
) -> Result<reqwest::blocking::Response, FetchError> {
    let mut req = client().get(url);
    if let Some(accept) = accept {
        req = req.header("Accept", accept);
    }
    let resp = req.send().map_err(|e| network_error(url, &e))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(FetchError::NotFound {
            message: format!("{url}: 404 Not Found"),
            hint: hint.into(),
        });
    }
    if !status.is_success() {
        return Err(network_error(url, &status));
    }
    Ok(resp)
}

/// GET `url` into `dest`, returning the sha256 of the body.
pub fn download(url: &str, dest: &Path) -> Result<Digest, FetchError> {
    let resp = get_ok(url, None, "check the URL in the rule")?;
    super::write_hashed(resp, &dest.to_path_buf()).map_err(|e| network_error(url, &e))
}

/// GET `url` as text with an Accept header.
pub fn get_text(url: &str, accept: &str) -> Result<(String, String), FetchError> {
    let resp = get_ok(url, Some(accept), "check the package name")?;
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().map_err(|e| network_error(url, &e))?;
    Ok((ctype, text))
}
