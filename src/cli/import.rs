//! `refine import` and `refine add`

use super::printer::Printer;
use crate::error::{Exit, Result};
use crate::ops::GlobalOpts;
use crate::ops::import::{ImportArgs, ImportReport};
use clap::Args;
use std::path::PathBuf;

/// How the import resolves (shared by `import` and `add`).
#[derive(Args, Debug, Clone)]
pub struct ResolveFlags {
    /// The import's name: rules/imported/NAME.toml and //sets:NAME
    /// (default: the requirements file's stem; for `add`, the only import).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// pinned: keep the input's pins, choose only what is open; eager:
    /// pins are minimums, everything the newest that fits.
    #[arg(long, value_name = "STRATEGY", value_parser = ["pinned", "eager"])]
    pub strategy: Option<String>,
    /// A pin the index does not have becomes the newest version it has (and says so).
    #[arg(long)]
    pub fallback_latest: bool,
    /// At most N runtime dependencies beyond the packages named.
    #[arg(long, value_name = "N")]
    pub max_deps: Option<usize>,
    /// Only the packages named, none of their dependencies.
    #[arg(long)]
    pub no_deps: bool,
    /// Build pure packages from their sdists too (default: reuse their
    /// py3-none-any wheels).
    #[arg(long)]
    pub build_pure: bool,
}

#[derive(Args, Debug)]
pub struct ImportCmd {
    /// Requirements files, as pip reads them.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Constraints files (-c), as pip reads them. Repeatable.
    #[arg(short = 'c', long = "constraint", value_name = "FILE")]
    pub constraints: Vec<PathBuf>,
    /// A folder of wheels (built for another platform): what fits the
    /// target is reused, the rest rebuilt from the sdist of the same version.
    #[arg(long, value_name = "DIR")]
    pub wheels: Option<PathBuf>,
    #[command(flatten)]
    pub flags: ResolveFlags,
}

#[derive(Args, Debug)]
pub struct AddCmd {
    /// Requirements (PEP 508): `flask`, `markupsafe==2.1.5`.
    #[arg(value_name = "SPEC", required = true)]
    pub specs: Vec<String>,
    #[command(flatten)]
    pub flags: ResolveFlags,
}

fn args(flags: &ResolveFlags) -> ImportArgs {
    ImportArgs {
        name: flags.name.clone(),
        strategy: flags.strategy.clone(),
        fallback_latest: flags.fallback_latest,
        max_deps: flags.max_deps,
        no_deps: flags.no_deps,
        build_pure: flags.build_pure,
        ..Default::default()
    }
}

pub fn run_import(c: &ImportCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    if c.files.is_empty() && c.wheels.is_none() {
        return Err(
            crate::error::Error::user("refine import: no requirements file given")
                .hint("refine import requirements.txt (or --wheels DIR, or `refine add SPEC…`)"),
        );
    }
    let a = ImportArgs {
        files: c.files.clone(),
        constraints: c.constraints.clone(),
        wheels: c.wheels.clone(),
        ..args(&c.flags)
    };
    let r = crate::ops::import::import(opts, &a)?;
    report(&r, p);
    Ok(Exit::Success)
}

pub fn run_add(c: &AddCmd, opts: &GlobalOpts, p: &Printer) -> Result<Exit> {
    let a = ImportArgs {
        specs: c.specs.clone(),
        add: true,
        ..args(&c.flags)
    };
    let r = crate::ops::import::import(opts, &a)?;
    report(&r, p);
    Ok(Exit::Success)
}

fn report(r: &ImportReport, p: &Printer) {
    let o = &r.outcome;
    if p.json {
        for d in &o.decisions {
            p.data(
                &serde_json::json!({
                    "event": "decision", "name": d.name, "version": d.version,
                    "runtime": d.runtime, "what": d.what,
                    "label": d.label.as_ref().map(|l| l.to_string()),
                })
                .to_string(),
            );
        }
        for u in &o.unbuildable {
            p.data(
                &serde_json::json!({
                    "event": "unbuildable", "name": u.name, "version": u.version,
                    "why": u.why, "hint": u.hint,
                })
                .to_string(),
            );
        }
        for n in &o.notes {
            p.data(&serde_json::json!({"event": "note", "message": n}).to_string());
        }
        {
            let on = installs_on(r);
            p.data(
                &serde_json::json!({
                    "event": "installs_on", "glibc": on.glibc, "systems": on.systems,
                    "set_by": on.set_by,
                })
                .to_string(),
            );
        }
        p.data(
            &serde_json::json!({
                "event": "imported", "name": r.name, "file": r.file, "changed": r.changed,
                "set": r.set.to_string(),
                "targets": o.set.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
            })
            .to_string(),
        );
        return;
    }
    for n in &o.notes {
        p.info(&format!("note: {n}"));
    }
    for d in &o.decisions {
        let role = if d.runtime {
            ""
        } else {
            "  (build requirement)"
        };
        let label = d.label.as_ref().map(|l| l.to_string()).unwrap_or_default();
        p.data(&format!(
            "{:<28} {:<12} {:<34} {}{role}",
            d.name, d.version, label, d.what
        ));
    }
    for u in &o.unbuildable {
        p.data(&format!(
            "{:<28} {:<12} {:<34} cannot be built: {}",
            u.name, u.version, "-", u.why
        ));
        p.info(&format!("hint: {}", u.hint));
    }
    {
        let on = installs_on(r);
        let systems = if on.systems.is_empty() {
            "none of the Z systems refine knows".to_string()
        } else {
            on.systems.join(", ")
        };
        p.info(&format!(
            "installs on: {systems} (glibc {} and newer; {})",
            on.glibc, on.set_by
        ));
    }
    p.info(&format!(
        "import: {} {} ({} packages, {} to build from sdists, {} cannot be built); build it with `refine build {}`",
        r.file,
        if r.changed { "written" } else { "unchanged" },
        o.decisions.iter().filter(|d| d.runtime).count(),
        o.decisions
            .iter()
            .filter(|d| d.what.starts_with("built from"))
            .count(),
        o.unbuildable.len(),
        r.set
    ));
}

/// Where the whole set installs: the newest floor among its packages.
struct InstallsOn {
    glibc: String,
    systems: Vec<&'static str>,
    set_by: String,
}

fn installs_on(r: &ImportReport) -> InstallsOn {
    let compiled: Vec<_> = r.floors.iter().filter(|f| f.glibc.is_some()).collect();
    let floor = compiled.iter().filter_map(|f| f.glibc).max();
    let Some(floor) = floor else {
        return InstallsOn {
            glibc: "any".into(),
            systems: crate::wheel::policy::systems((0, 0)),
            set_by: "every package is pure Python".into(),
        };
    };
    let by: Vec<String> = compiled
        .iter()
        .filter(|f| f.glibc == Some(floor))
        .map(|f| format!("{} ({})", f.name, f.from))
        .collect();
    let set_by = if by.len() == compiled.len() {
        match by.as_slice() {
            [one] => format!("set by {one}"),
            _ => format!("the floor of all {} compiled packages", by.len()),
        }
    } else {
        let shown: Vec<&str> = by.iter().take(3).map(String::as_str).collect();
        let more = by.len().saturating_sub(3);
        format!(
            "set by {}{}",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )
    };
    if floor.0 == u32::MAX {
        return InstallsOn {
            glibc: "none".into(),
            systems: Vec::new(),
            set_by,
        };
    }
    InstallsOn {
        glibc: format!("{}.{}", floor.0, floor.1),
        systems: crate::wheel::policy::systems(floor),
        set_by,
    }
}
