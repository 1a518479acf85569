//! Registry credentials and auth challenges.
//!
//! Credentials come, in this order, from `REFINE_REGISTRY_USERNAME` and
//! `REFINE_REGISTRY_PASSWORD`, then from the auth files podman, skopeo and
//! docker write, where they look for them: `REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json` (root: `/run/containers/0/`),
//! `~/.config/containers/auth.json`, then docker's `config.json`
//! (`$DOCKER_CONFIG` or `~/.docker`). Each file is read by the
//! `docker_credential` crate, so `auths` entries, `credHelpers` and
//! `credsStore` (a `docker-credential-<name>` helper program) all work.
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
        auth_files()
            .into_iter()
            .find_map(|f| from_auth_file(&f, host))
    }
}

/// The auth files podman and docker use, in the order they use them.
fn auth_files() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut files: Vec<PathBuf> = Vec::new();
    files.extend(env("REGISTRY_AUTH_FILE"));
    match env("XDG_RUNTIME_DIR") {
        Some(d) => files.push(d.join("containers/auth.json")),
        None => files.push(PathBuf::from(format!(
            "/run/containers/{}/auth.json",
            rustix::process::getuid().as_raw()
        ))),
    }
    if let Some(h) = env("HOME") {
        files.push(h.join(".config/containers/auth.json"));
    }
    match env("DOCKER_CONFIG") {
        Some(d) => files.push(d.join("config.json")),
        None => files.extend(env("HOME").map(|h| h.join(".docker/config.json"))),
    }
    files
}

/// The credentials a docker/podman auth file holds for `host` (an `auths`
/// entry or a credential helper), under any of the keys tools write.
fn from_auth_file(path: &std::path::Path, host: &str) -> Option<Credentials> {
    let bytes = std::fs::read(path).ok()?;
    [
        host.to_string(),
        format!("https://{host}"),
        format!("http://{host}"),
        format!("https://{host}/v2/"),
    ]
    .iter()
    .find_map(|server| {
        match docker_credential::get_credential_from_reader(&bytes[..], server) {
            Ok(docker_credential::DockerCredential::UsernamePassword(u, p)) => {
                Some(Credentials::new(&u, &p))
            }
            // Identity tokens are OAuth refresh tokens of docker's own
            // registry login; registries refine talks to use basic or
            // bearer auth with a user name and a password.
            Ok(docker_credential::DockerCredential::IdentityToken(_)) | Err(_) => None,
        }
    })
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
