//! The Remote Execution API (REAPI v2) and the Remote Workers API: refine
//! as a client of any REAPI server (BuildGrid is the tested one; Buildbarn,
//! BuildBuddy and NativeLink speak the same) and as a worker of it.
//!
//! A build step crosses the wire as what it already is locally: a
//! [`SandboxPlan`](crate::sched::sandbox::SandboxPlan), a pure value whose
//! inputs are all named by digest. The Action's input root holds that plan
//! (`plan.json`) and, under `blobs/`, every blob it names (sources, packs'
//! and runtimes' trees with their files, wheels, recipe files, the image's
//! root filesystem), so the Action's digest covers every byte the build
//! can see and the server's cache is as exact as refine's key. The
//! Command runs the plan (`refine-sandbox plan.json`) and names `out` as
//! its one output directory; the Platform carries `ISA`, `OSFamily` and
//! the image's digest (`container-image`).
//!
//! The worker ([`worker`]) takes leases on the Remote Workers API, fetches
//! what its store lacks (each blob checked against its digest), refuses a
//! plan that names a blob its input root does not hold (its store is not
//! the build's to read), materializes the plan with the same code as a
//! local build and runs it in the same sandbox. The client ([`client`])
//! turns the output tree back into a directory, every file checked against
//! its digest and every path confined, and the scheduler collects it
//! exactly as a local build's output: same key, same output digest.
//!
//! The protocol types come from `bazel-remote-apis` and
//! `googleapis-tonic-google-devtools-remoteworkers-v1test2` (tonic/prost,
//! generated ahead, no protoc); only the glue is here.

pub mod cas;
pub mod client;
pub mod logstream;
pub mod plan;
pub mod tree;
pub mod worker;

use bazel_remote_apis::build::bazel::remote::execution::v2 as re;
use std::sync::Arc;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

pub use client::RemoteExecutor;

/// Headers sent with every call (a bearer token, `--remote-header`).
#[derive(Clone, Default)]
pub struct Headers(Arc<Vec<(AsciiMetadataKey, AsciiMetadataValue)>>);

/// Names only: values may be tokens.
impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k.as_str()))
            .finish()
    }
}

impl tonic::service::Interceptor for Headers {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        for (k, v) in self.0.iter() {
            req.metadata_mut().insert(k.clone(), v.clone());
        }
        Ok(req)
    }
}

/// A channel to the server with the headers on every call.
pub type Chan = InterceptedService<Channel, Headers>;

/// How to reach a server: `grpc://host:port[/instance]` (plain, for
/// loopback and private networks) or `grpcs://…` (TLS, the system's roots).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerUrl {
    pub tls: bool,
    pub authority: String,
    /// The REAPI instance name (the URL's path; empty by default).
    pub instance: String,
}

impl ServerUrl {
    pub fn parse(url: &str) -> Result<ServerUrl, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("grpc://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("grpcs://") {
            (true, r)
        } else {
            return Err(format!(
                "`{url}` is not a grpc:// or grpcs:// URL (write grpc://host:port[/instance])"
            ));
        };
        let (authority, instance) = match rest.split_once('/') {
            Some((a, i)) => (a, i.trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!(
                "`{url}` names no host (write grpc://host:port[/instance]; a token goes in --remote-header)"
            ));
        }
        Ok(ServerUrl {
            tls,
            authority: authority.to_string(),
            instance: instance.to_string(),
        })
    }
}

impl std::fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "grpcs" } else { "grpc" };
        write!(f, "{scheme}://{}", self.authority)?;
        if !self.instance.is_empty() {
            write!(f, "/{}", self.instance)?;
        }
        Ok(())
    }
}

/// Parse `--remote-header NAME:VALUE` (and a bearer token given as
/// `REFINE_REMOTE_TOKEN`) into headers.
pub fn headers(raw: &[String], token: Option<&str>) -> Result<Headers, String> {
    let mut out = Vec::new();
    for h in raw {
        let Some((k, v)) = h.split_once(':') else {
            return Err(format!(
                "--remote-header `{h}` is not NAME:VALUE (e.g. x-buildbuddy-api-key:…)"
            ));
        };
        let key = AsciiMetadataKey::from_bytes(k.trim().to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("--remote-header: `{}` is not a header name", k.trim()))?;
        let value = AsciiMetadataValue::try_from(v.trim()).map_err(|_| {
            format!(
                "--remote-header {}: the value is not printable ASCII",
                k.trim()
            )
        })?;
        out.push((key, value));
    }
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        let value = AsciiMetadataValue::try_from(format!("Bearer {t}"))
            .map_err(|_| "REFINE_REMOTE_TOKEN is not printable ASCII".to_string())?;
        out.push((AsciiMetadataKey::from_static("authorization"), value));
    }
    Ok(Headers(Arc::new(out)))
}

/// A connection: the runtime its calls run on (refine's scheduler is
/// threads, not tasks), the channel, the instance.
pub struct Conn {
    pub rt: tokio::runtime::Runtime,
    pub chan: Chan,
    pub url: ServerUrl,
}

/// A lazily connected channel to `url`, its background work on `rt`.
fn channel(
    rt: &tokio::runtime::Runtime,
    url: &ServerUrl,
    headers: Headers,
) -> Result<Chan, String> {
    let scheme = if url.tls { "https" } else { "http" };
    let mut ep = Endpoint::from_shared(format!("{scheme}://{}", url.authority))
        .map_err(|e| format!("{url}: {e}"))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .http2_keep_alive_interval(std::time::Duration::from_secs(30))
        .keep_alive_while_idle(true);
    if url.tls {
        ep = ep
            .tls_config(ClientTlsConfig::new().with_native_roots())
            .map_err(|e| format!("{url}: {e}"))?;
    }
    let _g = rt.enter();
    Ok(InterceptedService::new(ep.connect_lazy(), headers))
}

impl Conn {
    /// Connect lazily: the first call says whether the server answers.
    pub fn new(url: ServerUrl, headers: Headers) -> Result<Conn, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("refine-reapi")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the REAPI client's runtime: {e}"))?;
        let chan = channel(&rt, &url, headers)?;
        Ok(Conn { rt, chan, url })
    }

    /// A channel to another server (a log stream service) on this
    /// connection's runtime.
    pub fn also(&self, url: &ServerUrl, headers: Headers) -> Result<Chan, String> {
        channel(&self.rt, url, headers)
    }

    pub fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn instance(&self) -> String {
        self.url.instance.clone()
    }
}

/// A request with a deadline.
pub fn req<T>(msg: T, secs: u64) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(std::time::Duration::from_secs(secs));
    r
}

/// refine's digest and a size, as REAPI's digest.
pub fn digest(d: &crate::key::Digest, size: u64) -> re::Digest {
    re::Digest {
        hash: d.hex().to_string(),
        size_bytes: size as i64,
    }
}

/// REAPI's digest as refine's (sha256 only), with its size.
pub fn from_digest(d: &re::Digest) -> Result<(crate::key::Digest, u64), String> {
    let digest = crate::key::Digest::from_hex(&d.hash)
        .map_err(|_| format!("`{}` is not a sha256 digest", d.hash))?;
    if d.size_bytes < 0 {
        return Err(format!("digest {} has a negative size", d.hash));
    }
    Ok((digest, d.size_bytes as u64))
}

/// The digest of a message as it is sent (prost encodes fields in order:
/// the same message, the same bytes).
pub fn message_digest<M: prost::Message>(m: &M) -> (re::Digest, Vec<u8>) {
    let bytes = m.encode_to_vec();
    let d = crate::key::sha256_bytes(&bytes);
    (digest(&d, bytes.len() as u64), bytes)
}

/// Pack a message as `google.protobuf.Any` (the worker API's type).
pub fn pack_any<M: prost::Message>(type_name: &str, m: &M) -> prost_types::Any {
    prost_types::Any {
        type_url: format!("type.googleapis.com/{type_name}"),
        value: m.encode_to_vec(),
    }
}

/// Whether a status means the server could not be reached (as opposed to
/// an answer from it).
pub fn unreachable(s: &tonic::Status) -> bool {
    let m = s.message();
    let transport = ["transport", "connect", "Connection", "dns"]
        .iter()
        .any(|w| m.contains(w));
    match s.code() {
        tonic::Code::Unavailable => true,
        tonic::Code::Unknown | tonic::Code::DeadlineExceeded => transport,
        _ => false,
    }
}

/// `refine doctor`'s look at a configured server: its capabilities
/// (GetCapabilities, 10 s), what it runs, whether it executes and hashes
/// with SHA-256 as refine does. `Err((what is wrong, what to do))`.
pub fn probe(url: &str) -> Result<String, (String, String)> {
    let u = ServerUrl::parse(url)
        .map_err(|e| (e, "fix [remote] execution in WORKSPACE.toml".to_string()))?;
    let token = std::env::var("REFINE_REMOTE_TOKEN").ok();
    let headers = headers(&[], token.as_deref()).map_err(|e| (e, String::new()))?;
    let conn = Conn::new(u.clone(), headers).map_err(|e| (e, String::new()))?;
    let mut c = re::capabilities_client::CapabilitiesClient::new(conn.chan.clone());
    let caps = conn
        .block(c.get_capabilities(req(
            re::GetCapabilitiesRequest {
                instance_name: conn.instance(),
            },
            10,
        )))
        .map_err(|s| {
            let line = status_line(&s);
            let hint = credentials_hint(&line)
                .unwrap_or("start the server, or check the address under [remote] execution");
            (format!("{u}: {line}"), hint.to_string())
        })?
        .into_inner();
    let exec = caps.execution_capabilities.unwrap_or_default();
    if !exec.exec_enabled {
        return Err((
            format!("{u} does not execute actions (exec_enabled is false)"),
            "enable the server's execution service, or remove [remote] execution".into(),
        ));
    }
    let sha256 = re::digest_function::Value::Sha256 as i32;
    if exec.digest_function != sha256 && !exec.digest_functions.contains(&sha256) {
        return Err((
            format!("{u} does not hash with SHA-256, refine's digest"),
            "configure the server's instance for SHA-256".into(),
        ));
    }
    let v = |v: Option<bazel_remote_apis::build::bazel::semver::SemVer>| {
        v.map_or("?".to_string(), |v| format!("{}.{}", v.major, v.minor))
    };
    Ok(format!(
        "{u}: REAPI {}–{}, executes, SHA-256",
        v(caps.low_api_version),
        v(caps.high_api_version)
    ))
}

/// What to do about a server's refusal or a failed connection, when the
/// message says it is about credentials or the server's certificate.
pub fn credentials_hint(message: &str) -> Option<&'static str> {
    let m = message.to_ascii_lowercase();
    if m.contains("certificate") || m.contains("unknownissuer") {
        Some(
            "the server's TLS certificate is not trusted here: add its authority to the system's store \
             (update-ca-certificates) or point SSL_CERT_FILE at its PEM",
        )
    } else if m.contains("unauthenticated") || m.contains("permissiondenied") {
        Some(
            "the server wants credentials: set REFINE_REMOTE_TOKEN (sent as `authorization: Bearer …`) \
             or pass --remote-header NAME:VALUE",
        )
    } else {
        None
    }
}

/// A status as one line.
pub fn status_line(s: &tonic::Status) -> String {
    let msg = s.message().trim();
    if msg.is_empty() {
        format!("{:?}", s.code())
    } else {
        format!("{:?}: {msg}", s.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_about_credentials_or_certificates_says_what_to_set() {
        let tok = credentials_hint("Unauthenticated: No valid authorization").unwrap();
        assert!(tok.contains("REFINE_REMOTE_TOKEN"), "{tok}");
        let ca =
            credentials_hint("transport error: invalid peer certificate: UnknownIssuer").unwrap();
        assert!(ca.contains("SSL_CERT_FILE"), "{ca}");
        assert_eq!(credentials_hint("Internal: disk full"), None);
    }

    #[test]
    fn urls_parse_with_an_instance_and_refuse_what_is_not_grpc() {
        let u = ServerUrl::parse("grpc://127.0.0.1:50051").unwrap();
        assert_eq!(
            (u.tls, u.authority.as_str(), u.instance.as_str()),
            (false, "127.0.0.1:50051", "")
        );
        let u = ServerUrl::parse("grpcs://re.example:443/main/").unwrap();
        assert_eq!((u.tls, u.instance.as_str()), (true, "main"));
        assert_eq!(u.to_string(), "grpcs://re.example:443/main");
        assert!(
            ServerUrl::parse("http://x:1")
                .unwrap_err()
                .contains("grpc://")
        );
        assert!(ServerUrl::parse("grpc://tok@x:1").is_err());
        assert!(ServerUrl::parse("grpc:///inst").is_err());
    }

    #[test]
    fn headers_are_name_value_and_the_token_is_a_bearer() {
        let h = headers(&["X-Api-Key: abc".into()], Some("t0k")).unwrap();
        let names: Vec<String> =
            h.0.iter()
                .map(|(k, v)| format!("{}={}", k, v.to_str().unwrap()))
                .collect();
        assert_eq!(names, ["x-api-key=abc", "authorization=Bearer t0k"]);
        assert!(
            headers(&["novalue".into()], None)
                .unwrap_err()
                .contains("NAME:VALUE")
        );
    }

    #[test]
    fn only_a_server_that_does_not_answer_is_unreachable() {
        use tonic::{Code, Status};
        assert!(unreachable(&Status::new(Code::Unavailable, "")));
        assert!(unreachable(&Status::new(Code::Unknown, "transport error")));
        assert!(unreachable(&Status::new(
            Code::DeadlineExceeded,
            "tcp connect error"
        )));
        assert!(!unreachable(&Status::new(
            Code::DeadlineExceeded,
            "Timeout expired"
        )));
        assert!(!unreachable(&Status::new(Code::InvalidArgument, "connect")));
        assert!(!unreachable(&Status::new(Code::NotFound, "")));
    }
}
