//! Registry credentials and auth challenges.
//!
//! Credentials come, in this order, from `REFINE_REGISTRY_USERNAME` and
//! `REFINE_REGISTRY_PASSWORD`, from the file `REGISTRY_AUTH_FILE` names, or
//! from `~/.docker/config.json` (the `auths` entry of the registry's host).
//! They are sent only to the registry and its token realm, and never
//! printed, logged or put in a key: [`Credentials`] has no `Display` and its
//! `Debug` hides the secret.

use base64::Engine;
use std::path::PathBuf;

#[derive(Clone)]
pub struct Credentials {
    user: String,
    secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.user)
    }
}

impl Credentials {
    pub fn new(user: &str, secret: &str) -> Self {
        Credentials {
            user: user.to_string(),
            secret: secret.to_string(),
        }
    }

    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.user, self.secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// Look the credentials for `host` up where docker, podman and skopeo
    /// would.
    pub fn find(host: &str) -> Option<Credentials> {
        if let (Ok(u), Ok(p)) = (
            std::env::var("REFINE_REGISTRY_USERNAME"),
            std::env::var("REFINE_REGISTRY_PASSWORD"),
        ) {
            return Some(Credentials::new(&u, &p));
        }
        let mut files: Vec<PathBuf> = Vec::new();
        if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE") {
            files.push(f.into());
        }
        if let Some(h) = std::env::var_os("HOME") {
            files.push(PathBuf::from(h).join(".docker/config.json"));
        }
        files.into_iter().find_map(|f| from_auth_file(&f, host))
    }
}

fn from_auth_file(path: &std::path::Path, host: &str) -> Option<Credentials> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let auths = v["auths"].as_object()?;
    let entry = auths.iter().find_map(|(k, e)| {
        let k = k
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        (k == host).then_some(e)
    })?;
    if let Some(a) = entry["auth"].as_str() {
        let raw = base64::engine::general_purpose::STANDARD.decode(a).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (u, p) = raw.split_once(':')?;
        return Some(Credentials::new(u, p));
    }
    match (entry["username"].as_str(), entry["password"].as_str()) {
        (Some(u), Some(p)) => Some(Credentials::new(u, p)),
        _ => None,
    }
}

/// What a `WWW-Authenticate` header asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    pub fn parse(h: &str) -> Challenge {
        let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Challenge::Basic;
        }
        let mut realm = String::new();
        let mut service = None;
        for part in split_params(rest) {
            if let Some((k, v)) = part.split_once('=') {
                let v = v.trim().trim_matches('"').to_string();
                match k.trim() {
                    "realm" => realm = v,
                    "service" => service = Some(v),
                    _ => {}
                }
            }
        }
        Challenge::Bearer { realm, service }
    }
}

/// Split `a="x,y",b=z` on commas outside quotes.
fn split_params(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        assert_eq!(
            Challenge::parse("Basic realm=\"Registry\""),
            Challenge::Basic
        );
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.example.invalid/token",service="reg",scope="repository:a/b:pull,push""#
            ),
            Challenge::Bearer {
                realm: "https://auth.example.invalid/token".into(),
                service: Some("reg".into())
            }
        );
    }

    #[test]
    fn reads_docker_config_and_hides_the_secret() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("auth.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &f,
            format!(r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
        let c = from_auth_file(&f, "127.0.0.1:5000").unwrap();
        assert_eq!(c.basic_header(), format!("Basic {auth}"));
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(from_auth_file(&f, "other:1").is_none());
    }
}
