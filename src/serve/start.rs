//! `refine serve`: the token and the read policy decided, then the server
//! ([`super::serve`]) until SIGINT or SIGTERM. A front end like the CLI:
//! it sits above `ops` and calls down into it, never the other way.

use super::{Reads, ServeOpts};
use crate::error::{Error, Result};
use crate::ops::GlobalOpts;
use std::path::Path;

/// The token: from the file, REFINE_SERVE_TOKEN, or one made and kept in
/// the store (mode 0600); and where it came from (said, never shown).
fn token(opts: &GlobalOpts, file: Option<&Path>) -> Result<(String, String)> {
    if let Some(f) = file {
        let t = std::fs::read_to_string(f).map_err(|e| {
            Error::user(format!("--token-file {}: {e}", f.display()))
                .hint("give a file that holds the token")
        })?;
        let t = t.trim().to_string();
        if t.len() < 16 {
            return Err(Error::user(format!(
                "--token-file {}: the token is shorter than 16 characters",
                f.display()
            ))
            .hint("use a long random token, e.g. `openssl rand -hex 32 > FILE`"));
        }
        return Ok((t, format!("in {}", f.display())));
    }
    if let Ok(t) = std::env::var("REFINE_SERVE_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok((t.trim().to_string(), "in REFINE_SERVE_TOKEN".into()));
    }
    let store = crate::ops::history_store(opts)?;
    let path = store.join("serve.token");
    if let Ok(t) = std::fs::read_to_string(&path)
        && t.trim().len() >= 16
    {
        return Ok((t.trim().to_string(), format!("in {}", path.display())));
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    let t = hex::encode(bytes);
    std::fs::create_dir_all(&store)?;
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(t.as_bytes())?;
    }
    Ok((t, format!("made for this store, in {}", path.display())))
}

pub fn start(
    opts: &GlobalOpts,
    addr: std::net::SocketAddr,
    token_file: Option<&Path>,
    reads: Option<&str>,
    say: &dyn Fn(&str),
) -> Result<()> {
    let (token, token_from) = token(opts, token_file)?;
    let reads = match reads {
        Some("open") => Reads::Open,
        Some(_) => Reads::Token,
        None if addr.ip().is_loopback() => Reads::Open,
        None => Reads::Token,
    };
    super::serve(
        ServeOpts {
            global: opts.clone(),
            addr,
            token,
            token_from,
            reads,
        },
        say,
    )
}
