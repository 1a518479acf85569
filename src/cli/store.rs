//! `refine push`, `refine pull`, `refine store ls|verify`, `refine gc`

use super::printer::Printer;
use crate::error::{ErrorClass, Exit, Result};
use crate::ops::share::Moved;
use crate::ops::{GlobalOpts, Session};
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct RemoteArgs {
    /// The remote store, overriding [store] remote: oci://HOST[:PORT]/PREFIX.
    #[arg(long, value_name = "URL")]
    pub remote: Option<String>,
    /// Talk plain HTTP to the remote (loopback registries).
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Args, Debug)]
pub struct ShareCmd {
    /// Labels or patterns; their dependencies come along.
    #[arg(required = true)]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Subcommand, Debug)]
pub enum StoreCmd {
    /// List what the local store (or the remote) holds.
    Ls {
        /// List the remote's results (repository:tag) instead; the remote is
        /// [store] remote, or the URL given.
        #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
        remote: Option<String>,
        /// Talk plain HTTP to the remote (loopback registries).
        #[arg(long)]
        insecure: bool,
    },
    /// Recheck the digest of everything in the local store; drop what is damaged.
    Verify,
}

#[derive(Args, Debug)]
pub struct GcCmd {
    /// Keep the store under this size (e.g. 20G, 500M); oldest results go first.
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,
    /// Drop results built longer ago than this (e.g. 30d, 12h).
    #[arg(long, value_name = "AGE")]
    pub max_age: Option<String>,
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn print_moves(p: &Printer, verb: &str, moves: &[(crate::rules::Label, Moved)]) -> Exit {
    let mut failed = 0;
    for (l, m) in moves {
        if p.json {
            p.data(
                &serde_json::json!({
                    "label": l.to_string(),
                    "result": m.as_str(),
                    "error": match m { Moved::Failed(e) => Some(e.as_str()), _ => None },
                })
                .to_string(),
            );
        } else {
            match m {
                Moved::Failed(e) => p.data(&format!("failed   {l}: {e}")),
                other => p.data(&format!("{:<8} {l}", other.as_str())),
            }
        }
        if matches!(m, Moved::Failed(_)) {
            failed += 1;
        }
    }
    let n = |k: &str| moves.iter().filter(|(_, m)| m.as_str() == k).count();
    p.info(&format!(
        "{verb}: {} moved, {} already there, {} missing, {failed} failed",
        n("pushed") + n("pulled"),
        n("present"),
        n("missing")
    ));
    Exit::unless(failed > 0, ErrorClass::Environment)
}

pub fn run_push(c: &ShareCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    let s = Session::load(opts)?;
    let moves = crate::ops::share::push(
        &s,
        &c.targets,
        c.remote.remote.as_deref(),
        c.remote.insecure,
    )?;
    Ok(print_moves(p, "push", &moves))
}

pub fn run_pull(c: &ShareCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    let s = Session::load(opts)?;
    let moves = crate::ops::share::pull(
        &s,
        &c.targets,
        c.remote.remote.as_deref(),
        c.remote.insecure,
    )?;
    Ok(print_moves(p, "pull", &moves))
}

fn human(bytes: u64) -> String {
    let units = ["B", "K", "M", "G", "T"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", units[u])
    }
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

pub fn run_store(c: &StoreCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    let s = Session::load(opts)?;
    match c {
        StoreCmd::Ls { remote, insecure } => {
            if let Some(url) = remote {
                let url = Some(url.as_str()).filter(|u| !u.is_empty());
                let (host, list) = crate::ops::store::list_remote(&s, url, *insecure)?;
                for (repo, tags) in list {
                    for t in tags {
                        if p.json {
                            p.data(&serde_json::json!({"repository": repo, "tag": t}).to_string());
                        } else {
                            p.data(&format!("{host}/{repo}:{t}"));
                        }
                    }
                }
                return Ok(Exit::Success);
            }
            let (entries, root) = crate::ops::store::list(&s)?;
            let total: u64 = entries.iter().map(|e| e.size).sum();
            for e in &entries {
                if p.json {
                    p.data(
                        &serde_json::json!({
                            "label": e.result.label, "key": e.key.0, "output": e.result.output,
                            "arch": e.result.arch, "size": e.size, "age_secs": e.age_secs,
                        })
                        .to_string(),
                    );
                } else {
                    p.data(&format!(
                        "{:<40} {:<8} {} {} {:>8} {:>5}",
                        e.result.label,
                        e.result.arch,
                        e.key.short(),
                        e.result.output.short(),
                        human(e.size),
                        age(e.age_secs)
                    ));
                }
            }
            p.info(&format!(
                "{} results, {} of outputs, in {}",
                entries.len(),
                human(total),
                root.display()
            ));
            Ok(Exit::Success)
        }
        StoreCmd::Verify => {
            let r = crate::ops::store::verify(&s)?;
            for (d, why) in &r.bad_blobs {
                p.data(&format!("bad blob {d}: {why}"));
            }
            for (k, why) in &r.bad_entries {
                p.data(&format!("bad entry {}: {why}", k.short()));
            }
            for (dir, why) in &r.bad_checkouts {
                p.data(&format!("bad checkout {}: {why}", dir.display()));
            }
            let damaged = r.bad_blobs.len() + r.bad_entries.len() + r.bad_checkouts.len();
            p.info(&format!(
                "checked {} blobs, {} results and {} checkouts: {damaged} damaged",
                r.blobs, r.entries, r.checkouts,
            ));
            Ok(Exit::unless(damaged > 0, ErrorClass::Build))
        }
    }
}

pub fn run_gc(c: &GcCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    let limits = crate::ops::store::gc_limits(c.max_size.as_deref(), c.max_age.as_deref())?;
    let s = Session::load(opts)?;
    let r = crate::ops::store::gc(&s, limits, c.dry_run)?;
    let verb = if c.dry_run { "would remove" } else { "removed" };
    for e in &r.removed_entries {
        p.data(&format!(
            "{verb} {} {} ({} old)",
            e.result.label,
            e.key.short(),
            age(e.age_secs)
        ));
    }
    p.info(&format!(
        "{verb} {} results and {} blobs ({}); kept {} results ({})",
        r.removed_entries.len(),
        r.removed_blobs,
        human(r.freed_bytes),
        r.kept_entries,
        human(r.kept_bytes)
    ));
    Ok(Exit::Success)
}
