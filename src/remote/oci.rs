//! Build results in an OCI registry.
//!
//! One repository per target, `<prefix>/<kind>/<name>`, tagged with the
//! key. The manifest's config (`application/vnd.refine.result.v1+json`)
//! carries the preimage and provenance: label, key, output digest, output
//! tree, arch, refine version, build time and duration, log digest. The
//! layers are the artifact — a single-file output (a wheel, an image's
//! rootfs) as itself, anything else as a deterministic tar+zstd of the tree
//! — and the build log. Annotations carry the standard
//! `org.opencontainers.image.*` fields and refine's key, output and label.
//!
//! Pulls check every blob against its registry digest while streaming it
//! into the store, check the preimage against the key and the unpacked tree
//! against the output digest; anything that does not match is discarded and
//! reported, and the node is rebuilt. Only successful results are pushed.

use super::registry::{MANIFEST_TYPE, Registry, read_small};
use super::{Remote, RemoteError};
use crate::key::sign::{self, SigningKeyFile, Trust, Untrusted};
use crate::key::{Digest, Key, Preimage, sha256_bytes};
use crate::rules::Label;
use crate::store::archive::{MEDIA_TYPE as TREE_TYPE, archive_to_file, unpack_tree_archive};
use crate::store::{ActionResult, EntryKind, LocalStore, Tree};
use std::collections::HashMap;
use std::sync::Mutex;

pub const CONFIG_TYPE: &str = "application/vnd.refine.result.v1+json";
pub const FILE_TYPE: &str = "application/vnd.refine.file.v1";
pub const LOG_TYPE: &str = "application/vnd.refine.log.v1+text";

/// `oci://host[:port]/prefix`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciUrl {
    pub host: String,
    pub prefix: String,
}

/// A URL as it may be shown: user name and password, if any, as `***`.
pub fn redact_url(s: &str) -> String {
    let (scheme, rest) = match s.split_once("://") {
        Some((a, b)) => (format!("{a}://"), b),
        None => (String::new(), s),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}***@{host}{path}"),
        None => s.to_string(),
    }
}

impl OciUrl {
    pub fn parse(s: &str) -> Result<OciUrl, String> {
        let shown = redact_url(s);
        let rest = s
            .strip_prefix("oci://")
            .ok_or_else(|| format!("`{shown}` is not an oci:// URL"))?;
        let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/').to_string();
        if host.contains('@') {
            return Err(format!(
                "`{shown}` holds credentials; they go in the auth file (`podman login`, `docker login`), never in the URL"
            ));
        }
        if host.is_empty() {
            return Err(format!("`{shown}` has no host"));
        }
        if !prefix.split('/').all(|c| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
        }) {
            return Err(format!(
                "`{shown}`: the repository prefix must be lowercase path components, e.g. oci://host:5000/refine"
            ));
        }
        Ok(OciUrl {
            host: host.to_string(),
            prefix,
        })
    }
}

impl std::fmt::Display for OciUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "oci://{}/{}", self.host, self.prefix)
    }
}

pub struct OciRemote {
    pub url: OciUrl,
    reg: Registry,
    /// What an existence check already said about a key.
    known: Mutex<HashMap<String, bool>>,
    /// Whose results are used.
    trust: Trust,
    /// What this machine signs its pushes with.
    signer: Option<SigningKeyFile>,
}

/// A remote result's output digest, and who signed it (or why that is not
/// accepted here).
pub type SignedBy = (Option<Digest>, Result<String, Untrusted>);

/// The most entries a pulled tree may have (CPython's runtime has ~7,000).
pub const MAX_PULLED_ENTRIES: usize = 65_536;
/// The most a build log layer may be.
const MAX_LOG: u64 = 1 << 30;

/// Repository names are lowercase; `+` and uppercase in target names map
/// to `-` and lowercase (the tag, the key, keeps them apart).
pub fn repo_name(prefix: &str, label: &Label) -> String {
    let name: String = label
        .name
        .chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '-',
        })
        .collect();
    format!("{prefix}/{}/{name}", label.kind.as_str())
}

/// RFC 3339 UTC for seconds since the epoch.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let s = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        (s % 3600) / 60,
        s % 60
    )
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ResultConfig {
    refine_version: String,
    label: Label,
    key: String,
    output: Digest,
    #[serde(with = "crate::platform::arch_name")]
    arch: crate::platform::Arch,
    created: u64,
    duration_ms: u64,
    log: Option<Digest>,
    /// The output tree's manifest text.
    tree: String,
    preimage: serde_json::Value,
    /// What built it; only `podman` results are pushed or used.
    #[serde(default)]
    executor: String,
}

impl OciRemote {
    pub fn new(
        url: OciUrl,
        insecure: bool,
        trust: Trust,
        signer: Option<SigningKeyFile>,
    ) -> Result<OciRemote, RemoteError> {
        let creds = super::auth::Credentials::find(&url.host);
        Ok(OciRemote {
            reg: Registry::new(&url.host, insecure, creds)?,
            url,
            known: Mutex::new(HashMap::new()),
            trust,
            signer,
        })
    }

    /// Whether any key is trusted: without one, no pulled result is used.
    pub fn trusts_anyone(&self) -> bool {
        !self.trust.keys.is_empty()
    }

    /// Who signed the result of `key` on the remote, and whether that
    /// signer is trusted here: `Ok(name)` or why not; `None` if there is no
    /// such result. For `refine verify --against remote`.
    pub fn signer_of(&self, label: &Label, key: &Key) -> Result<Option<SignedBy>, RemoteError> {
        let repo = self.repo(label);
        let Some((bytes, _)) = self.reg.get_manifest(&repo, &key.0)? else {
            return Ok(None);
        };
        let m: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            RemoteError::Remote(format!("{repo}:{}: bad manifest: {e}", key.short()))
        })?;
        let ann = &m["annotations"];
        let output = ann["dev.refine.output"]
            .as_str()
            .and_then(|o| Digest::parse(o).ok());
        Ok(Some((output, self.check_signature(ann, label, key))))
    }

    /// The signature a manifest's annotations carry, checked against what
    /// they say the result is.
    fn check_signature(
        &self,
        ann: &serde_json::Value,
        label: &Label,
        key: &Key,
    ) -> Result<String, Untrusted> {
        let output = ann["dev.refine.output"].as_str().unwrap_or_default();
        let version = ann["dev.refine.version"].as_str().unwrap_or_default();
        let msg = sign::message(&key.0, output, output, &label.to_string(), version);
        self.trust.check(
            ann["dev.refine.signer"].as_str(),
            ann["dev.refine.signature"].as_str(),
            &msg,
        )
    }

    pub fn registry(&self) -> &Registry {
        &self.reg
    }

    fn repo(&self, label: &Label) -> String {
        repo_name(&self.url.prefix, label)
    }

    /// Which of these results the registry has, checked `concurrency` at a
    /// time; remembered for later pulls.
    pub fn exists_many(
        &self,
        items: &[(Label, Key)],
        concurrency: usize,
    ) -> Vec<Result<bool, RemoteError>> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let out: Vec<Mutex<Option<Result<bool, RemoteError>>>> =
            items.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..concurrency.max(1).min(items.len().max(1)) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some((label, key)) = items.get(i) else {
                            break;
                        };
                        let r = self.reg.manifest_exists(&self.repo(label), &key.0);
                        if let Ok(b) = &r {
                            self.known
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(key.0.clone(), *b);
                        }
                        *out[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                    }
                });
            }
        });
        out.into_iter()
            .map(|m| {
                m.into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .unwrap_or_else(|| Err(RemoteError::Remote("not checked".into())))
            })
            .collect()
    }

    /// Every `repository:tag` under the prefix.
    pub fn list(&self) -> Result<Vec<(String, Vec<String>)>, RemoteError> {
        let mut out = Vec::new();
        for repo in self.reg.catalog()? {
            if repo.starts_with(&format!("{}/", self.url.prefix)) {
                let tags = self.reg.tags(&repo)?;
                out.push((repo, tags));
            }
        }
        Ok(out)
    }
}

impl Remote for OciRemote {
    fn describe(&self) -> String {
        self.url.to_string()
    }

    fn pull(
        &self,
        label: &Label,
        key: &Key,
        local: &LocalStore,
    ) -> Result<Option<(ActionResult, Tree)>, RemoteError> {
        // Without a trusted key nothing pulled could be used (said once per
        // run by the caller).
        if !self.trusts_anyone() {
            return Ok(None);
        }
        if self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key.0)
            == Some(&false)
        {
            return Ok(None);
        }
        let repo = self.repo(label);
        let Some((bytes, _)) = self.reg.get_manifest(&repo, &key.0)? else {
            return Ok(None);
        };
        let m: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            RemoteError::Remote(format!("{repo}:{}: bad manifest: {e}", key.short()))
        })?;
        let bad = |what: &str| {
            RemoteError::Remote(format!("{repo}:{}: {what}; treated as a miss", key.short()))
        };
        // Who built it, before anything else is downloaded.
        let ann = &m["annotations"];
        if let Err(why) = self.check_signature(ann, label, key) {
            return Err(RemoteError::Remote(format!(
                "{repo}:{}: not used: {why}; built here instead",
                key.short()
            )));
        }
        let signed_output = ann["dev.refine.output"].as_str().unwrap_or_default();
        let config_digest = Digest::parse(m["config"]["digest"].as_str().unwrap_or_default())
            .map_err(|_| bad("the manifest has no config digest"))?;
        let config = read_small(&self.reg, &repo, &config_digest)?
            .ok_or_else(|| bad("the tag exists but its config blob is missing"))?;
        let cfg: ResultConfig = serde_json::from_slice(&config)
            .map_err(|e| bad(&format!("unreadable config ({e})")))?;
        // The preimage must be the one the key was made from.
        let pre = Preimage::from_json(&cfg.preimage).ok_or_else(|| bad("unreadable preimage"))?;
        if pre.key() != *key || cfg.key != key.0 {
            return Err(bad("its preimage does not hash to the key"));
        }
        if !crate::exec::pushable(&cfg.executor) {
            return Err(bad("it was not built in the sandbox"));
        }
        if cfg.output.to_string() != signed_output || cfg.label != *label {
            return Err(bad("its config is not the result its signature covers"));
        }
        // Confinement: `Tree::decode` refuses paths under symlinks, links
        // out of the tree, duplicates.
        let tree = Tree::decode(&cfg.tree).map_err(|e| bad(&format!("refused its tree: {e}")))?;
        if tree.digest() != cfg.output {
            return Err(bad("its tree does not match its output digest"));
        }
        if tree.entries.len() > MAX_PULLED_ENTRIES {
            return Err(bad(&format!(
                "refused its tree: {} entries, more than the {MAX_PULLED_ENTRIES} refine accepts",
                tree.entries.len()
            )));
        }
        let free = local.free_space();
        if tree.total_size() > free {
            return Err(bad(&format!(
                "its output ({} bytes) does not fit in the {free} bytes free for the store",
                tree.total_size()
            )));
        }
        let layers = m["layers"].as_array().cloned().unwrap_or_default();
        if layers.len() > 2 {
            return Err(bad("refused: more layers than an output and its log"));
        }
        let mut log = None;
        for layer in &layers {
            let media = layer["mediaType"].as_str().unwrap_or_default();
            let d = Digest::parse(layer["digest"].as_str().unwrap_or_default())
                .map_err(|_| bad("a layer has no digest"))?;
            match media {
                FILE_TYPE => {
                    // A single-file output is that file, nothing else.
                    let size = match tree.entries.as_slice() {
                        [e] => match &e.kind {
                            EntryKind::File { digest, size, .. } if *digest == d => *size,
                            _ => return Err(bad("refused: its file layer is not its output")),
                        },
                        _ => return Err(bad("refused: a file layer for a tree of many entries")),
                    };
                    if !local.cas.has_blob(&d) {
                        self.fetch_into_store(&repo, &d, local, key, size)?;
                    }
                }
                TREE_TYPE => {
                    let tmp = local.tmp_dir().map_err(RemoteError::Store)?;
                    let path = tmp.path().join("layer.tar.zst");
                    let mut f = std::fs::File::create(&path).map_err(|e| local_io(e, &path))?;
                    // tar adds a header per entry and padding; zstd hardly
                    // grows what it cannot compress.
                    let max = tree.total_size()
                        + tree.total_size() / 64
                        + 2048 * (tree.entries.len() as u64 + 2)
                        + (1 << 20);
                    if !self.reg.get_blob(&repo, &d, &mut f, max)? {
                        return Err(bad(&format!("the tag exists but blob {d} is missing")));
                    }
                    drop(f);
                    let f = std::fs::File::open(&path).map_err(|e| local_io(e, &path))?;
                    unpack_tree_archive(local, f, &tree).map_err(|e| bad(&e.to_string()))?;
                }
                // The log is provenance, not output: a missing one is no miss.
                LOG_TYPE => {
                    if local.cas.has_blob(&d)
                        || self
                            .fetch_into_store(&repo, &d, local, key, MAX_LOG)
                            .is_ok()
                    {
                        log = Some(d);
                    }
                }
                other => return Err(bad(&format!("unknown layer type {other}"))),
            }
        }
        // Every file of the tree must now be here, and right.
        for (_, d, _) in tree.files() {
            local
                .cas
                .verify_blob(d)
                .map_err(|e| bad(&format!("output blob {d} after the pull: {e}")))?;
        }
        local
            .cas
            .put_bytes(tree.encode().as_bytes())
            .map_err(RemoteError::Store)?;
        let result = ActionResult {
            key: key.0.clone(),
            label: label.clone(),
            output: cfg.output.clone(),
            log,
            duration_ms: cfg.duration_ms,
            created: cfg.created,
            refine_version: cfg.refine_version,
            arch: cfg.arch,
            executor: cfg.executor,
        };
        local
            .actions
            .put(key, &result, &pre)
            .map_err(RemoteError::Store)?;
        Ok(Some((result, tree)))
    }

    fn push(
        &self,
        label: &Label,
        key: &Key,
        result: &ActionResult,
        tree: &Tree,
        preimage: &Preimage,
        local: &LocalStore,
    ) -> Result<(), RemoteError> {
        if !crate::exec::pushable(&result.executor) {
            return Err(RemoteError::Remote(format!(
                "{label} was built by the {} executor, not in the sandbox: not pushed",
                result.executor
            )));
        }
        let Some(signer) = &self.signer else {
            return Err(RemoteError::Remote(
                "not pushed: results are pushed signed, and this machine has no signing key (`refine key generate`, or --signing-key FILE)".into(),
            ));
        };
        let repo = self.repo(label);
        if self.reg.manifest_exists(&repo, &key.0)? {
            return Ok(());
        }
        let local_err = RemoteError::Store;
        // Never push bytes that are not what they claim to be.
        for (_, d, _) in tree.files() {
            local.cas.verify_blob(d).map_err(local_err)?;
        }
        let mut layers = Vec::new();
        let single = match tree.entries.as_slice() {
            [e] => match &e.kind {
                EntryKind::File {
                    digest,
                    size,
                    executable,
                } => Some((e.path.clone(), digest.clone(), *size, *executable)),
                _ => None,
            },
            _ => None,
        };
        let _tmp;
        if let Some((name, d, size, exec)) = single {
            self.reg.upload_file(&repo, &d, &local.cas.blob_path(&d))?;
            let mut ann = serde_json::json!({ "org.opencontainers.image.title": name });
            if exec {
                ann["dev.refine.executable"] = "true".into();
            }
            layers.push(serde_json::json!({
                "mediaType": FILE_TYPE, "digest": d, "size": size, "annotations": ann,
            }));
        } else {
            let tmp = local.tmp_dir().map_err(local_err)?;
            let path = tmp.path().join("tree.tar.zst");
            let (d, size) = archive_to_file(local, tree, &path).map_err(local_err)?;
            self.reg.upload_file(&repo, &d, &path)?;
            layers.push(serde_json::json!({
                "mediaType": TREE_TYPE, "digest": d, "size": size,
                "annotations": { "org.opencontainers.image.title": format!("{}.tar.zst", label.name) },
            }));
            _tmp = tmp;
        }
        if let Some(logd) = &result.log
            && local.cas.verify_blob(logd).is_ok()
        {
            self.reg
                .upload_file(&repo, logd, &local.cas.blob_path(logd))?;
            let size = std::fs::metadata(local.cas.blob_path(logd))
                .map(|m| m.len())
                .unwrap_or(0);
            layers.push(serde_json::json!({
                "mediaType": LOG_TYPE, "digest": logd, "size": size,
                "annotations": { "org.opencontainers.image.title": "build.log" },
            }));
        }
        let cfg = ResultConfig {
            refine_version: env!("CARGO_PKG_VERSION").to_string(),
            label: label.clone(),
            key: key.0.clone(),
            output: result.output.clone(),
            arch: result.arch,
            created: result.created,
            duration_ms: result.duration_ms,
            log: result.log.clone(),
            tree: tree.encode(),
            preimage: preimage.to_json(),
            executor: result.executor.clone(),
        };
        let cfg_bytes = serde_json::to_vec(&cfg).map_err(|e| RemoteError::Remote(e.to_string()))?;
        let cfg_digest = sha256_bytes(&cfg_bytes);
        self.reg.upload_bytes(&repo, &cfg_digest, &cfg_bytes)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": { "mediaType": CONFIG_TYPE, "digest": cfg_digest, "size": cfg_bytes.len() },
            "layers": layers,
            "annotations": {
                "org.opencontainers.image.created": rfc3339(result.created),
                "org.opencontainers.image.title": label.to_string(),
                "org.opencontainers.image.description": format!("refine build result of {label} for {}", result.arch),
                "org.opencontainers.image.version": preimage.get("version").map(|v| match v {
                    crate::key::PValue::Str(s) => s.clone(),
                    other => other.short(),
                }).unwrap_or_default(),
                "dev.refine.key": key.0,
                "dev.refine.output": result.output,
                "dev.refine.label": label.to_string(),
                "dev.refine.arch": result.arch,
                "dev.refine.version": result.refine_version,
                "dev.refine.signer": signer.public().line(),
                "dev.refine.signature": signer.sign(&sign::message(
                    &key.0,
                    &result.output.to_string(),
                    &tree.digest().to_string(),
                    &label.to_string(),
                    &result.refine_version,
                )),
            },
        });
        let body = serde_json::to_vec(&manifest).map_err(|e| RemoteError::Remote(e.to_string()))?;
        self.reg.put_manifest(&repo, &key.0, &body)?;
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.0.clone(), true);
        Ok(())
    }
}

impl OciRemote {
    /// Stream a blob into the store's CAS, checked against its digest.
    fn fetch_into_store(
        &self,
        repo: &str,
        d: &Digest,
        local: &LocalStore,
        key: &Key,
        max: u64,
    ) -> Result<(), RemoteError> {
        let mut tmp = local.cas.new_temp().map_err(RemoteError::Store)?;
        let tmp_path = tmp.path().to_path_buf();
        let ok = {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
            let ok = self.reg.get_blob(repo, d, &mut w, max)?;
            std::io::Write::flush(&mut w).map_err(|e| local_io(e, &tmp_path))?;
            ok
        };
        if !ok {
            return Err(RemoteError::Remote(format!(
                "{repo}:{}: the tag exists but blob {d} is missing; treated as a miss",
                key.short()
            )));
        }
        // get_blob checked the digest while streaming; the temp file holds
        // exactly those bytes.
        local
            .cas
            .commit_verified(tmp, d)
            .map_err(RemoteError::Store)
    }
}

/// This machine's file I/O during a pull: the local store's failure.
fn local_io(source: std::io::Error, path: &std::path::Path) -> RemoteError {
    RemoteError::Store(crate::store::StoreError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_oci_urls() {
        let u = OciUrl::parse("oci://127.0.0.1:5000/refine/ci").unwrap();
        assert_eq!(u.host, "127.0.0.1:5000");
        assert_eq!(u.prefix, "refine/ci");
        assert!(OciUrl::parse("http://x/y").is_err());
        let e = OciUrl::parse("oci://u:s3cret@host/x").unwrap_err();
        assert!(!e.contains("s3cret") && !e.contains("u:"), "{e}");
        assert!(
            e.contains("oci://***@host/x") && e.contains("auth file"),
            "{e}"
        );
        let e = OciUrl::parse("https://u:s3cret@host/x").unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
        assert_eq!(redact_url("oci://host:5000/a@b"), "oci://host:5000/a@b");
        assert!(OciUrl::parse("oci://host/Upper").is_err());
        assert!(OciUrl::parse("oci://host").is_err());
    }

    #[test]
    fn repository_names_are_valid() {
        let l = Label::new(crate::rules::Kind::Runtime, "CPython+3.11");
        assert_eq!(repo_name("refine", &l), "refine/runtimes/cpython-3.11");
    }

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
