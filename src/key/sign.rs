//! Signed results: who built what a registry hands over.
//!
//! A registry account is enough to replace any result under a valid key,
//! so every result refine pushes carries an ed25519 signature (the
//! `ed25519-dalek` crate) over what identifies it: its key, its output (the
//! tree digest), its label and the refine version that built it. A pull
//! uses a result only if a key the workspace trusts signed it
//! (`[store] trusted_keys`, `--trusted-key`, or this machine's own signing
//! key); anything unsigned or signed by another key is not a hit, and the
//! node is built locally. Local builds need no signature.
//!
//! Keys are one line each: `NAME:BASE64` (32 bytes). A signing key file is
//! text, mode 0600:
//!
//! ```text
//! refine-signing-key 1
//! name: refine-ci
//! secret: BASE64
//! ```
//!
//! Signing keys never enter cache keys, logs or messages; only public
//! halves and names are printed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use std::path::Path;

const HEADER: &str = "refine-signing-key 1";

/// What a signature covers, in a fixed, versioned text form.
pub fn message(key: &str, output: &str, tree: &str, label: &str, version: &str) -> Vec<u8> {
    format!(
        "refine-result-signature 1\nkey {key}\noutput {output}\ntree {tree}\nlabel {label}\nrefine {version}\n"
    )
    .into_bytes()
}

/// A public key with its name.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub name: String,
    key: VerifyingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line())
    }
}

impl PublicKey {
    /// `NAME:BASE64`.
    pub fn parse(line: &str) -> Result<PublicKey, String> {
        let (name, b64) = line.trim().rsplit_once(':').ok_or_else(|| {
            format!(
                "`{line}` is not a public key: write NAME:BASE64 as `refine key generate` prints it"
            )
        })?;
        if !valid_name(name) {
            return Err(format!(
                "`{name}` is not a key name: use letters, digits, `.`, `_` and `-`"
            ));
        }
        let bytes = B64
            .decode(b64)
            .map_err(|e| format!("the key of `{name}` is not base64 ({e})"))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| format!("the key of `{name}` is not 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&arr)
            .map_err(|e| format!("the key of `{name}` is not an ed25519 key ({e})"))?;
        Ok(PublicKey {
            name: name.to_string(),
            key,
        })
    }

    pub fn line(&self) -> String {
        format!("{}:{}", self.name, B64.encode(self.key.as_bytes()))
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A signing key.
pub struct SigningKeyFile {
    pub name: String,
    key: SigningKey,
}

impl SigningKeyFile {
    /// Make a new key and write it to `path` (which must not exist).
    pub fn generate(path: &Path, name: &str) -> Result<SigningKeyFile, String> {
        if !valid_name(name) {
            return Err(format!(
                "`{name}` is not a key name: use letters, digits, `.`, `_` and `-`"
            ));
        }
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| format!("no randomness: {e}"))?;
        let k = SigningKeyFile {
            name: name.to_string(),
            key: SigningKey::from_bytes(&secret),
        };
        let text = format!("{HEADER}\nname: {name}\nsecret: {}\n", B64.encode(secret));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => {
                    format!(
                        "{} exists already; refine never overwrites a key",
                        path.display()
                    )
                }
                _ => format!("{}: {e}", path.display()),
            })?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(k)
    }

    pub fn load(path: &Path) -> Result<SigningKeyFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(format!("{} is not a refine signing key", path.display()));
        }
        let mut name = None;
        let mut secret = None;
        for l in lines {
            if let Some(v) = l.strip_prefix("name: ") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = l.strip_prefix("secret: ") {
                secret = B64.decode(v.trim()).ok();
            }
        }
        let (Some(name), Some(secret)) = (name, secret) else {
            return Err(format!("{} is not a refine signing key", path.display()));
        };
        let arr: [u8; 32] = secret
            .try_into()
            .map_err(|_| format!("{} holds a damaged key", path.display()))?;
        Ok(SigningKeyFile {
            name,
            key: SigningKey::from_bytes(&arr),
        })
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// The signature of `msg`, base64.
    pub fn sign(&self, msg: &[u8]) -> String {
        B64.encode(self.key.sign(msg).to_bytes())
    }
}

/// Why a pulled result's signature is not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Untrusted {
    Unsigned,
    UnknownSigner(String),
    BadSignature(String),
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Untrusted::Unsigned => f.write_str("it is not signed"),
            Untrusted::UnknownSigner(s) => write!(f, "it is signed by {s}, a key not trusted here"),
            Untrusted::BadSignature(s) => write!(f, "its signature by {s} does not match it"),
        }
    }
}

/// The public keys whose results may be used.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    pub keys: Vec<PublicKey>,
}

impl Trust {
    /// Check a signature (`signer`: the `NAME:BASE64` line it claims) over
    /// `msg`; the name of the trusted signer on success.
    pub fn check(
        &self,
        signer: Option<&str>,
        signature: Option<&str>,
        msg: &[u8],
    ) -> Result<String, Untrusted> {
        let (Some(signer), Some(signature)) = (signer, signature) else {
            return Err(Untrusted::Unsigned);
        };
        let claimed =
            PublicKey::parse(signer).map_err(|_| Untrusted::UnknownSigner(signer.into()))?;
        let Some(trusted) = self.keys.iter().find(|k| k.key == claimed.key) else {
            return Err(Untrusted::UnknownSigner(claimed.line()));
        };
        let sig = B64
            .decode(signature)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or_else(|| Untrusted::BadSignature(trusted.name.clone()))?;
        trusted
            .key
            .verify(msg, &sig)
            .map_err(|_| Untrusted::BadSignature(trusted.name.clone()))?;
        Ok(trusted.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_by_a_trusted_key_or_refused() {
        let d = tempfile::tempdir().unwrap();
        let k = SigningKeyFile::generate(&d.path().join("k"), "refine-ci").unwrap();
        assert!(
            SigningKeyFile::generate(&d.path().join("k"), "again").is_err(),
            "never overwritten"
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(d.path().join("k")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let loaded = SigningKeyFile::load(&d.path().join("k")).unwrap();
        assert_eq!(loaded.public(), k.public());
        let line = k.public().line();
        assert!(line.starts_with("refine-ci:") && line.len() == "refine-ci:".len() + 44);
        let msg = message("k1", "sha256:o", "sha256:o", "//wheels:six", "0.1.0");
        let sig = k.sign(&msg);
        let trust = Trust {
            keys: vec![PublicKey::parse(&line).unwrap()],
        };
        assert_eq!(
            trust.check(Some(&line), Some(&sig), &msg),
            Ok("refine-ci".into())
        );
        // Another message, another signer, no signature.
        let other = message("k2", "sha256:o", "sha256:o", "//wheels:six", "0.1.0");
        assert!(matches!(
            trust.check(Some(&line), Some(&sig), &other),
            Err(Untrusted::BadSignature(_))
        ));
        let stranger = SigningKeyFile::generate(&d.path().join("s"), "mallory").unwrap();
        let s2 = stranger.sign(&msg);
        assert!(matches!(
            trust.check(Some(&stranger.public().line()), Some(&s2), &msg),
            Err(Untrusted::UnknownSigner(_))
        ));
        // A stranger claiming a trusted name with its own key is a stranger.
        let forged = format!(
            "refine-ci:{}",
            stranger.public().line().split(':').nth(1).unwrap()
        );
        assert!(matches!(
            trust.check(Some(&forged), Some(&s2), &msg),
            Err(Untrusted::UnknownSigner(_))
        ));
        assert_eq!(trust.check(None, None, &msg), Err(Untrusted::Unsigned));
        assert!(PublicKey::parse("nocolon").is_err());
        assert!(PublicKey::parse("x:AAAA").is_err());
    }
}
