//! The import's file, `rules/imported/NAME.toml`: deterministic (the same
//! decisions give the same bytes; blocks sorted by label, nothing that
//! changes between runs), one block per target, so that one changed pin
//! changes one block. Its `[import]` table records how it was made (and the
//! fixes to apply again), so that `refine add` and a plain re-run
//! regenerate it.

use super::{Decision, Fix, IMPORTED_DIR, Known, Made, Outcome, Pkg, Request};
use crate::error::{Error, Result};
use crate::rules::{Kind, Label};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// The `[import]` table: its one schema is the rules' ([`crate::rules::ImportMeta`]).
pub use crate::rules::ImportMeta;

/// Read the `[import]` table of an existing import file.
///
/// Read by the rules' own lowering, so it is the same schema `refine
/// build` checks; an error names `file:line:col`.
pub fn read_meta(file: &str, text: &str) -> std::result::Result<ImportMeta, String> {
    let at = |d: &crate::diag::Diagnostic| match &d.loc {
        Some(l) => {
            let (line, col) = crate::diag::line_col(text, l.span.start);
            format!("{file}:{line}:{col}: {}", d.message)
        }
        None => format!("{file}: {}", d.message),
    };
    let (node, diags) = crate::rules::toml::parse(file, text);
    let Some(node) = node else {
        return Err(diags
            .first()
            .map(at)
            .unwrap_or_else(|| format!("{file}: not TOML")));
    };
    let crate::rules::toml::Value::Table(t) = &node.value else {
        return Err(format!("{file}: no [import] table"));
    };
    let Some(entry) = t.get("import") else {
        return Err(format!("{file}: no [import] table"));
    };
    let mut diags = Vec::new();
    match crate::rules::lower::lower_import(file, &entry.value, &mut diags) {
        Some(m) => Ok(m),
        None => Err(diags
            .first()
            .map(at)
            .unwrap_or_else(|| format!("{file}: [import] is not valid"))),
    }
}

/// A TOML string.
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML key (bare where it can be).
fn key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        s.to_string()
    } else {
        q(s)
    }
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| q(s)).collect();
    let one = format!("[{}]", quoted.join(", "));
    if one.len() <= 80 {
        return one;
    }
    let mut out = String::from("[\n");
    for s in quoted {
        let _ = writeln!(out, "    {s},");
    }
    out.push(']');
    out
}

fn map(m: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{} = {}", key(k), q(v)))
        .collect();
    format!("{{ {} }}", parts.join(", "))
}

/// Labels for the decided packages: what stands for each in a set or in
/// build requirements, and what this file declares.
struct Assigned {
    /// (normalized name, version) → the label dependents use.
    uses: BTreeMap<(String, String), Label>,
    /// The labels this file declares (to keep new ones apart).
    declared: BTreeSet<Label>,
}

fn free(known: &Known, declared: &BTreeSet<Label>, l: &Label) -> bool {
    !known.labels.contains(l) && !declared.contains(l)
}

/// The first of `names` free for `kind` (and its repair, for wheels).
fn pick(known: &Known, declared: &BTreeSet<Label>, kind: Kind, names: &[String]) -> String {
    for n in names {
        let ok = free(known, declared, &Label::new(kind, n.as_str()))
            && (kind != Kind::Wheel
                || free(known, declared, &Label::new(Kind::Repair, n.as_str())));
        if ok {
            return n.clone();
        }
    }
    // Unreachable in practice: the last candidate carries the sha256.
    names.last().cloned().unwrap_or_default()
}

/// The names a package's label may take, in order: its name (for what the
/// input asked for), its name and version, then with the import's name,
/// then with its sha256.
fn candidates(p: &Pkg, import: &str, sha: &str) -> Vec<String> {
    let versioned = format!("{}-{}", p.name, p.version);
    let short = &sha[..sha.len().min(12)];
    let mut names = Vec::new();
    if p.runtime {
        names.push(p.name.clone());
    }
    names.push(versioned.clone());
    names.push(format!("{versioned}-{import}"));
    names.push(format!("{versioned}-{short}"));
    names
}

fn assign(known: &Known, import: &str, pkgs: &BTreeMap<(String, String), Pkg>) -> Assigned {
    let mut a = Assigned {
        uses: BTreeMap::new(),
        declared: BTreeSet::new(),
    };
    // Runtime packages first, so they get the plain names.
    let mut order: Vec<&Pkg> = pkgs.values().filter(|p| p.made.is_some()).collect();
    order.sort_by_key(|p| (!p.runtime, p.name.clone(), p.version.clone()));
    for p in order {
        let k = (p.name.clone(), p.version.clone());
        let label = match p.made.as_ref() {
            None => continue,
            Some(Made::Existing { label, .. }) => label.clone(),
            Some(Made::Wheel { file, .. }) => {
                let sha = file.sha256.clone().unwrap_or_default();
                if let Some(l) =
                    known
                        .wheel_sources
                        .get(&(p.name.clone(), p.version.clone(), sha.clone()))
                {
                    l.clone()
                } else {
                    let n = pick(
                        known,
                        &a.declared,
                        Kind::Source,
                        &candidates(p, import, &sha),
                    );
                    let l = Label::new(Kind::Source, n.as_str());
                    a.declared.insert(l.clone());
                    l
                }
            }
            Some(Made::Local { sha256, .. }) => {
                let n = pick(
                    known,
                    &a.declared,
                    Kind::Source,
                    &candidates(p, import, sha256),
                );
                let l = Label::new(Kind::Source, n.as_str());
                a.declared.insert(l.clone());
                l
            }
            Some(Made::Sdist { file, .. }) => {
                let sha = file.sha256.clone().unwrap_or_default();
                let n = pick(
                    known,
                    &a.declared,
                    Kind::Wheel,
                    &candidates(p, import, &sha),
                );
                a.declared.insert(Label::new(Kind::Wheel, n.as_str()));
                a.declared.insert(Label::new(Kind::Repair, n.as_str()));
                a.declared
                    .insert(Label::new(Kind::Source, format!("wheel-{n}").as_str()));
                a.declared
                    .insert(Label::new(Kind::Source, format!("{n}-crates").as_str()));
                Label::new(Kind::Repair, n.as_str())
            }
        };
        a.uses.insert(k, label);
    }
    a
}

/// Render the import's file into `out.text`, and say what was decided.
pub(crate) fn render(
    known: &Known,
    target: &crate::platform::Platform,
    req: &Request,
    command: &str,
    pkgs: &BTreeMap<(String, String), Pkg>,
    out: &mut Outcome,
) -> Result<()> {
    let a = assign(known, &req.name, pkgs);
    let fixes: BTreeMap<String, &Fix> = req.fixes.iter().map(|f| (f.target.clone(), f)).collect();
    let mut blocks: BTreeMap<Label, String> = BTreeMap::new();
    let mut set: BTreeSet<Label> = BTreeSet::new();
    let name_of = |l: &Label| l.name.to_string();
    for p in pkgs.values() {
        let k = (p.name.clone(), p.version.clone());
        let Some(made) = &p.made else { continue };
        let Some(uses) = a.uses.get(&k) else { continue };
        if p.runtime {
            set.insert(uses.clone());
        }
        let role = if p.runtime { "" } else { " (to build others)" };
        let what = match made {
            Made::Existing { what, .. } => what.clone(),
            Made::Wheel { file, pure } => {
                if a.declared.contains(uses) {
                    let mut b = String::new();
                    let _ = writeln!(
                        b,
                        "# {} {}{role}: the {} wheel {}, reused.",
                        p.name,
                        p.version,
                        if *pure { "pure" } else { "prebuilt target" },
                        file.filename
                    );
                    let _ = writeln!(b, "[sources.{}]", key(&name_of(uses)));
                    let _ = writeln!(b, "pypi = {}", q(&format!("{}=={}", p.name, p.version)));
                    let _ = writeln!(b, "dist = \"wheel\"");
                    let _ = writeln!(
                        b,
                        "sha256 = {}",
                        q(file.sha256.as_deref().unwrap_or_default())
                    );
                    blocks.insert(uses.clone(), b);
                }
                format!(
                    "{} wheel {} reused",
                    if *pure { "pure" } else { "prebuilt target" },
                    file.filename
                )
            }
            Made::Local { path, sha256 } => {
                let file = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let rel = format!("{IMPORTED_DIR}/{}/{file}", req.name);
                out.copies.push((path.clone(), rel.clone()));
                let mut b = String::new();
                let _ = writeln!(
                    b,
                    "# {} {}{role}: {file} from the wheel folder, reused (the index does not have it).",
                    p.name, p.version
                );
                let _ = writeln!(b, "[sources.{}]", key(&name_of(uses)));
                let _ = writeln!(b, "path = {}", q(&rel));
                let _ = writeln!(b, "sha256 = {}", q(sha256));
                blocks.insert(uses.clone(), b);
                format!("{file} from the wheel folder reused")
            }
            Made::Sdist {
                file,
                display,
                build,
                origin,
                crates,
            } => {
                let n = name_of(uses);
                let wl = Label::new(Kind::Wheel, n.as_str());
                let mut reqs: Vec<String> = Vec::new();
                let mut said: Vec<String> = Vec::new();
                for b in build {
                    match a.uses.get(b) {
                        Some(l) => {
                            reqs.push(l.to_string());
                            said.push(format!("{} {}", b.0, b.1));
                        }
                        None => {
                            return Err(Error::internal(format!(
                                "build requirement {} {} of {} has no label",
                                b.0, b.1, p.name
                            )));
                        }
                    }
                }
                reqs.sort();
                reqs.dedup();
                let mut b = String::new();
                let _ = writeln!(
                    b,
                    "# {} {}{role}: built from {}; build requirements ({origin}): {}.",
                    p.name,
                    p.version,
                    file.filename,
                    if said.is_empty() {
                        "none".to_string()
                    } else {
                        said.join(", ")
                    }
                );
                if let Some(packs) = known.catalog.get(&p.name) {
                    let packs: Vec<String> = packs.iter().map(|l| l.to_string()).collect();
                    let _ = writeln!(b, "# Packs from [catalog]: {}.", packs.join(", "));
                }
                let _ = writeln!(b, "[wheels.{}]", key(&n));
                if display != &n {
                    let _ = writeln!(b, "package = {}", q(display));
                }
                let _ = writeln!(
                    b,
                    "source = {{ pypi = {}, sha256 = {} }}",
                    q(&format!("{display}=={}", p.version)),
                    q(file.sha256.as_deref().unwrap_or_default())
                );
                let _ = writeln!(b, "default_build_requires = false");
                let _ = writeln!(b, "build_requires = {}", list(&reqs));
                let fix = fixes.get(&wl.to_string());
                let fixed_image = fix.and_then(|f| f.image.as_ref());
                if crates.is_some() {
                    let _ = writeln!(b, "crates = {}", q(&format!("//sources:{n}-crates")));
                    if fixed_image.is_none() {
                        let _ = writeln!(b, "image = \"//images:bookworm-rust\"");
                        let _ = writeln!(b, "runtime = \"//runtimes:system-rust\"");
                    }
                }
                // The catalog's environment, then the fix's over it.
                let mut env = known.catalog_env.get(&p.name).cloned().unwrap_or_default();
                if let Some(f) = fix {
                    env.extend(f.env.clone());
                    if let Some(image) = &f.image {
                        let _ = writeln!(b, "image = {}", q(image));
                    }
                    if let Some(runtime) = &f.runtime {
                        let _ = writeln!(b, "runtime = {}", q(runtime));
                    }
                    if !f.packs.is_empty() {
                        let _ = writeln!(b, "packs = {}", list(&f.packs));
                    }
                    if let Some(t) = &f.test {
                        let _ = writeln!(b, "test = {}", q(t));
                    }
                }
                if !env.is_empty() {
                    let _ = writeln!(b, "env = {}", map(&env));
                }
                if let Some(cs) = known.catalog_config_settings.get(&p.name) {
                    let parts: Vec<String> = cs
                        .iter()
                        .map(|(k, v)| {
                            let items: Vec<String> = v.iter().map(|s| q(s)).collect();
                            format!("{} = [{}]", q(k), items.join(", "))
                        })
                        .collect();
                    let _ = writeln!(
                        b,
                        "config_settings = {{ {} }}  # from [catalog]",
                        parts.join(", ")
                    );
                }
                let _ = writeln!(b, "repair = true");
                if let Some(policy) = known.catalog_policies.get(&p.name) {
                    let _ = writeln!(
                        b,
                        "policy = {}  # from [catalog]: its packs need this floor",
                        q(policy)
                    );
                }
                blocks.insert(wl, b);
                if let Some(sha) = crates {
                    let cl = Label::new(Kind::Source, format!("{n}-crates").as_str());
                    let mut c = String::new();
                    let _ = writeln!(
                        c,
                        "# The crates of {}'s Cargo.lock, vendored offline for its build.",
                        p.name
                    );
                    let _ = writeln!(c, "[sources.{}]", key(&cl.name));
                    let _ = writeln!(c, "cargo = {}", q(&format!("//sources:wheel-{n}")));
                    let _ = writeln!(c, "sha256 = {}", q(sha));
                    blocks.insert(cl, c);
                }
                format!("built from {} ({origin})", file.filename)
            }
        };
        out.decisions.push(Decision {
            name: p.name.clone(),
            version: p.version.clone(),
            runtime: p.runtime,
            what,
            label: Some(uses.clone()),
        });
    }
    out.decisions
        .sort_by(|x, y| (!x.runtime, &x.name, &x.version).cmp(&(!y.runtime, &y.name, &y.version)));
    out.set = set.iter().cloned().collect();

    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Generated by `refine import`: do not edit. Regenerate with\n#   {command}\n\
         # A rule written by hand elsewhere under rules/ with the same label wins over\n\
         # the one here (the import says so). Fixes go in [[import.fixes]]\n\
         # (`refine build --auto-apply` writes them): they are applied again each time."
    );
    t.push('\n');
    t.push_str(&meta_text(&meta_of(req, target)));
    t.push('\n');
    let _ = writeln!(
        t,
        "# Everything this import builds, repaired: `refine build //sets:{}`.",
        req.name
    );
    let _ = writeln!(t, "[sets.{}]", key(&req.name));
    let members: Vec<String> = out.set.iter().map(|l| l.to_string()).collect();
    let _ = writeln!(t, "targets = {}", list(&members));
    for b in blocks.values() {
        t.push('\n');
        t.push_str(b);
    }
    out.text = t;
    Ok(())
}

pub fn meta_of(req: &Request, target: &crate::platform::Platform) -> ImportMeta {
    let s = |p: &std::path::PathBuf| p.to_string_lossy().into_owned();
    ImportMeta {
        name: req.name.clone(),
        arch: Some(target.arch.as_str().to_string()),
        python: Some(target.python.clone()),
        requirements: req.requirements.iter().map(s).collect(),
        constraints: req.constraints.iter().map(s).collect(),
        specs: req.specs.clone(),
        wheels: req.wheels.as_ref().map(s),
        strategy: (req.resolve.strategy == super::resolve::Strategy::Eager).then(|| "eager".into()),
        fallback_latest: req.resolve.fallback_latest,
        max_deps: req.resolve.max_deps,
        no_deps: req.resolve.no_deps,
        build_pure: req.build_pure,
        fixes: req.fixes.clone(),
    }
}

/// `[import]` and `[[import.fixes]]`, written the same way every time.
fn meta_text(m: &ImportMeta) -> String {
    let mut t = String::from("[import]\n");
    let _ = writeln!(t, "name = {}", q(&m.name));
    if let Some(a) = &m.arch {
        let _ = writeln!(t, "arch = {}", q(a));
    }
    if let Some(p) = &m.python {
        let _ = writeln!(t, "python = {}", q(p));
    }
    if !m.requirements.is_empty() {
        let _ = writeln!(t, "requirements = {}", list(&m.requirements));
    }
    if !m.constraints.is_empty() {
        let _ = writeln!(t, "constraints = {}", list(&m.constraints));
    }
    if !m.specs.is_empty() {
        let _ = writeln!(t, "specs = {}", list(&m.specs));
    }
    if let Some(w) = &m.wheels {
        let _ = writeln!(t, "wheels = {}", q(w));
    }
    if let Some(s) = &m.strategy {
        let _ = writeln!(t, "strategy = {}", q(s));
    }
    if m.fallback_latest {
        t.push_str("fallback_latest = true\n");
    }
    if let Some(n) = m.max_deps {
        let _ = writeln!(t, "max_deps = {n}");
    }
    if m.no_deps {
        t.push_str("no_deps = true\n");
    }
    if m.build_pure {
        t.push_str("build_pure = true\n");
    }
    let mut fixes = m.fixes.clone();
    fixes.sort_by(|a, b| a.target.cmp(&b.target));
    for f in fixes {
        t.push_str("\n[[import.fixes]]\n");
        if !f.why.is_empty() {
            let _ = writeln!(t, "why = {}", q(&f.why));
        }
        let _ = writeln!(t, "target = {}", q(&f.target));
        if !f.packs.is_empty() {
            let _ = writeln!(t, "packs = {}", list(&f.packs));
        }
        if !f.build_requires.is_empty() {
            let _ = writeln!(t, "build_requires = {}", list(&f.build_requires));
        }
        if !f.env.is_empty() {
            let _ = writeln!(t, "env = {}", map(&f.env));
        }
        if let Some(test) = &f.test {
            let _ = writeln!(t, "test = {}", q(test));
        }
        if let Some(image) = &f.image {
            let _ = writeln!(t, "image = {}", q(image));
        }
        if let Some(runtime) = &f.runtime {
            let _ = writeln!(t, "runtime = {}", q(runtime));
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_import_table_round_trips() {
        // Every field set, so the writer and the rules' reader are held to
        // the one schema.
        let m = ImportMeta {
            name: "web".into(),
            arch: Some("s390x".into()),
            python: Some("3.11".into()),
            requirements: vec!["requirements.txt".into()],
            constraints: vec!["constraints.txt".into()],
            specs: vec!["six==1.16.0".into()],
            wheels: Some("x86_64-wheels".into()),
            strategy: Some("eager".into()),
            fallback_latest: true,
            max_deps: Some(3),
            no_deps: true,
            build_pure: true,
            fixes: vec![Fix {
                target: "//wheels:foo".into(),
                packs: vec!["//packs:libyaml".into()],
                build_requires: vec!["setuptools>=78.1.1".into()],
                env: [("A".to_string(), "1 2".to_string())].into(),
                test: Some("python -c 'import foo; assert foo.f(\"x\") == 1'".into()),
                image: Some("//images:bookworm-sci".into()),
                runtime: Some("//runtimes:system-sci".into()),
                why: "yaml.h".into(),
            }],
        };
        let text = meta_text(&m);
        assert_eq!(
            read_meta("rules/imported/web.toml", &text).unwrap(),
            m,
            "{text}"
        );
        let e = read_meta("f.toml", "[import]\nname = \"x\"\nbogus = 1\n").unwrap_err();
        assert!(e.starts_with("f.toml:3:1: "), "{e}");
        assert!(read_meta("f.toml", "[import]\nname = \"x\"\nmax_deps = -1\n").is_err());
        assert_eq!(key("six-1.16.0"), "\"six-1.16.0\"");
        assert_eq!(key("six"), "six");
    }
}
