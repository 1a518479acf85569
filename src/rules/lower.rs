//! Lowering a parsed rule file to typed targets.
//!
//! A rule file is a set of tables named after kinds:
//!
//! ```toml
//! [wheels.markupsafe]
//! source = { pypi = "MarkupSafe==2.1.5", sha256 = "…" }
//! env = { CFLAGS = "-O2" }
//! ```
//!
//! declares `//wheels:markupsafe` (and, for the inline source,
//! `//sources:wheel-markupsafe`). Every error found is collected; a target
//! with errors is dropped, the others are kept, so one run shows all
//! problems of a file.

use crate::diag::{Diagnostic, Loc, Span};
use crate::rules::label::{Kind, Label, valid_name};
use crate::rules::model::*;
use crate::rules::toml::{Entry, Node, Reader, Spanned, Table, Value};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LoweredFile {
    pub targets: Vec<Target>,
    pub catalog: Vec<CatalogEntry>,
    /// Where the file's `[catalog]` table is, if it has one.
    pub catalog_loc: Option<Loc>,
    pub hints: Vec<HintRule>,
    pub headers: Vec<HeaderEntry>,
    /// `[tools]`: a program a pack installs (its config tool) → the pack.
    pub tools: Vec<HeaderEntry>,
    /// `[import]`, in a file `refine import` wrote.
    pub import: Option<ImportMeta>,
    pub diags: Vec<Diagnostic>,
}

const TOP_KEYS: &[&str] = &[
    "sources", "images", "runtimes", "packs", "wheels", "repairs", "sets", "catalog", "hints",
    "headers", "tools", "import",
];

pub fn lower_file(file: &str, root: &Node) -> LoweredFile {
    let mut out = LoweredFile::default();
    let Value::Table(root_table) = &root.value else {
        return out;
    };
    let mut diags = Vec::new();
    for entry in &root_table.entries {
        if entry.key == "catalog" {
            out.catalog_loc = Some(Loc::new(file, entry.key_span));
            lower_catalog(file, &entry.value, &mut out.catalog, &mut diags);
            continue;
        }
        if entry.key == "hints" {
            lower_hints(file, &entry.value, &mut out.hints, &mut diags);
            continue;
        }
        if entry.key == "headers" {
            let what = ("headers", "header", "\"yaml.h\" = \"//packs:libyaml\"");
            lower_pack_table(file, &entry.value, what, &mut out.headers, &mut diags);
            continue;
        }
        if entry.key == "tools" {
            let what = ("tools", "program", "\"krb5-config\" = \"//packs:krb5\"");
            lower_pack_table(file, &entry.value, what, &mut out.tools, &mut diags);
            continue;
        }
        if entry.key == "import" {
            out.import = lower_import(file, &entry.value, &mut diags);
            continue;
        }
        let Some(kind) = Kind::ALL.into_iter().find(|k| k.as_str() == entry.key) else {
            let hint = match crate::diag::suggest(&entry.key, TOP_KEYS.iter().copied()) {
                Some(s) => format!(
                    "did you mean `[{s}.<name>]`? rule files hold {}",
                    TOP_KEYS.join(", ")
                ),
                None => format!("rule files hold tables named {}", TOP_KEYS.join(", ")),
            };
            diags.push(
                Diagnostic::error(format!("unknown table `{}`", entry.key))
                    .at(Loc::new(file, entry.key_span))
                    .label("not a kind of target")
                    .hint(hint),
            );
            continue;
        };
        let Value::Table(targets) = &entry.value.value else {
            diags.push(
                Diagnostic::error(format!(
                    "`{}` must be a table of targets, found {}",
                    entry.key,
                    entry.value.value.type_name()
                ))
                .at(Loc::new(file, entry.value.span))
                .hint(format!("declare targets as `[{}.<name>]`", entry.key)),
            );
            continue;
        };
        for t in &targets.entries {
            let label = Label::new(kind, t.key.clone());
            let decl = Loc::new(file, t.key_span);
            if !valid_name(&t.key) {
                diags.push(
                    Diagnostic::error(format!("invalid target name `{}`", t.key))
                        .at(decl)
                        .hint("use letters, digits, `.`, `_`, `-` and `+`, starting with a letter or digit"),
                );
                continue;
            }
            let Value::Table(body) = &t.value.value else {
                diags.push(
                    Diagnostic::error(format!(
                        "{label} must be a table, found {}",
                        t.value.value.type_name()
                    ))
                    .at(Loc::new(file, t.value.span)),
                );
                continue;
            };
            let mut ctx = Ctx {
                file,
                extra: Vec::new(),
            };
            // A target whose fields could be read is kept even when it had
            // other errors (an unknown key), so that its references are
            // checked too and one run reports everything.
            if let Some(target) = lower_target(&mut ctx, label, decl, body, t.key_span, &mut diags)
            {
                out.targets.push(target);
                out.targets.extend(ctx.extra);
            }
        }
    }
    out.diags = diags;
    out
}

struct Ctx<'a> {
    file: &'a str,
    /// Targets made along the way (inline sources, implicit repairs).
    extra: Vec<Target>,
}

fn field_locs(r: &Reader<'_, '_>) -> Vec<(String, Loc)> {
    r.table
        .entries
        .iter()
        .filter_map(|e| r.key_loc(&e.key).map(|l| (e.key.clone(), l)))
        .collect()
}

fn lower_target(
    ctx: &mut Ctx<'_>,
    label: Label,
    decl: Loc,
    body: &Table,
    span: Span,
    diags: &mut Vec<Diagnostic>,
) -> Option<Target> {
    let what = label.to_string();
    let mut r = Reader::new(ctx.file, body, span, what, diags);
    let fields = field_locs(&r);
    let timeout = read_timeout(&mut r);
    let nested_userns = match label.kind {
        Kind::Runtime | Kind::Pack | Kind::Wheel | Kind::Repair => r.bool("nested_userns"),
        _ => None,
    };
    let (body, known): (Option<Body>, &[&str]) = match label.kind {
        Kind::Source => (lower_source(&mut r).map(Body::Source), SOURCE_KEYS),
        Kind::Image => (lower_image(&mut r).map(Body::Image), IMAGE_KEYS),
        Kind::Runtime => (
            lower_runtime(ctx, &label, &mut r).map(Body::Runtime),
            RUNTIME_KEYS,
        ),
        Kind::Pack => (lower_pack(ctx, &label, &mut r).map(Body::Pack), PACK_KEYS),
        Kind::Wheel => (
            lower_wheel(ctx, &label, &mut r).map(Body::Wheel),
            WHEEL_KEYS,
        ),
        Kind::Repair => (lower_repair(&mut r).map(Body::Repair), REPAIR_KEYS),
        Kind::Set => (lower_set(&mut r).map(Body::Set), SET_KEYS),
        Kind::Test => {
            let at = r.table_loc();
            r.error_at(
                at.span,
                "tests are not declared: every set has one",
                Some("declare `[sets.NAME] targets = [...]` and run `refine test //sets:NAME`; a wheel's own check is its `test = \"…\"`".into()),
            );
            (None, SET_KEYS)
        }
    };
    r.finish(known);
    let body = body?;
    if let Body::Wheel(w) = &body
        && w.repair
    {
        ctx.extra.push(Target {
            label: Label::new(Kind::Repair, label.name.clone()),
            decl: decl.clone(),
            body: Body::Repair(RepairRule {
                wheel: Spanned {
                    value: label.clone(),
                    loc: decl.clone(),
                },
                tools: None,
                policy: None,
                recipe: None,
                image: w.image.clone(),
                runtime: w.runtime.clone(),
            }),
            fields: Vec::new(),
            owner: Some(label.clone()),
            timeout,
            nested_userns,
        });
    }
    // Every set can be tested: //tests:NAME installs its wheels together.
    if matches!(body, Body::Set(_)) {
        ctx.extra.push(Target {
            label: Label::new(Kind::Test, label.name.clone()),
            decl: decl.clone(),
            body: Body::Test(SetRule {
                targets: vec![Spanned {
                    value: label.clone(),
                    loc: decl.clone(),
                }],
            }),
            fields: Vec::new(),
            owner: Some(label.clone()),
            timeout,
            nested_userns,
        });
    }
    Some(Target {
        label,
        decl,
        body,
        fields,
        owner: None,
        timeout,
        nested_userns,
    })
}

fn read_timeout(r: &mut Reader<'_, '_>) -> Option<u64> {
    let s = r.str("timeout")?;
    match crate::rules::units::parse_duration(&s.value) {
        Ok(d) => Some(d),
        Err(e) => {
            r.diags.push(
                Diagnostic::error(format!("invalid duration: {e}"))
                    .at(s.loc)
                    .hint("write durations like \"90s\", \"30m\" or \"2h\", at most a year"),
            );
            None
        }
    }
}

const SOURCE_KEYS: &[&str] = &[
    "pypi", "dist", "debian", "suite", "file", "url", "mirrors", "path", "cargo", "lock", "sha256",
    "upstream", "timeout",
];

fn lower_source(r: &mut Reader<'_, '_>) -> Option<SourceRule> {
    let kinds: Vec<&str> = ["pypi", "debian", "url", "path", "cargo"]
        .into_iter()
        .filter(|k| r.has(k))
        .collect();
    if kinds.len() != 1 {
        let msg = if kinds.is_empty() {
            format!("{} says nothing about where to fetch it from", r.what)
        } else {
            format!("{} has more than one of {}", r.what, kinds.join(", "))
        };
        let span = r.span;
        r.error_at(
            span,
            msg,
            Some("give exactly one of `pypi = \"name==version\"`, `debian = \"package=version\"`, `url = \"https://…\"`, `path = \"…\"` or `cargo = \"//sources:SDIST\"`".into()),
        );
        // Still read the rest so unknown keys are reported too.
        for k in SOURCE_KEYS {
            r.entry(k);
        }
        return None;
    }
    let sha256 = match r.str("sha256") {
        Some(s) => {
            let v = s.value.trim_start_matches("sha256:").to_ascii_lowercase();
            if v.len() != 64 || !v.chars().all(|c| c.is_ascii_hexdigit()) {
                r.diags.push(
                    Diagnostic::error(format!("`{}` is not a sha256 digest", s.value))
                        .at(s.loc)
                        .hint("a sha256 is 64 hexadecimal digits; `sha256sum FILE` prints it"),
                );
                None
            } else {
                Some(v)
            }
        }
        None => {
            r.missing(
                "sha256",
                "every source pins its content: add `sha256 = \"<64 hex digits>\"`",
            );
            None
        }
    };
    let upstream = r.str("upstream").map(|s| s.value);
    let mut needs = None;
    let fetch = match kinds[0] {
        "pypi" => {
            let req = r.str("pypi")?;
            let dist = match r.str("dist") {
                None => Dist::Sdist,
                Some(d) if d.value == "sdist" => Dist::Sdist,
                Some(d) if d.value == "wheel" => Dist::Wheel,
                Some(d) => {
                    r.diags.push(
                        Diagnostic::error(format!("unknown dist `{}`", d.value))
                            .at(d.loc)
                            .hint("dist is \"sdist\" or \"wheel\""),
                    );
                    return None;
                }
            };
            let Some((name, version)) = req.value.split_once("==") else {
                r.diags.push(
                    Diagnostic::error(format!("`{}` is not an exact requirement", req.value))
                        .at(req.loc)
                        .hint("pin one version: `pypi = \"MarkupSafe==2.1.5\"`"),
                );
                return None;
            };
            let (name, version) = (name.trim(), version.trim());
            if name.is_empty()
                || version.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                r.diags.push(
                    Diagnostic::error(format!("`{}` is not an exact requirement", req.value))
                        .at(req.loc)
                        .hint("pin one version: `pypi = \"MarkupSafe==2.1.5\"`"),
                );
                return None;
            }
            Fetch::Pypi {
                name: name.to_string(),
                version: version.to_string(),
                dist,
            }
        }
        "debian" => {
            let spec = r.str("debian")?;
            let Some((package, version)) = spec.value.split_once('=') else {
                r.diags.push(
                    Diagnostic::error(format!("`{}` does not pin a version", spec.value))
                        .at(spec.loc)
                        .hint("write `debian = \"package=version\"`, e.g. \"libyaml=0.2.5-1\""),
                );
                return None;
            };
            let Some(file) = r.str("file") else {
                r.missing(
                    "file",
                    "name the file of the source package to use, e.g. `file = \"libyaml_0.2.5.orig.tar.gz\"`",
                );
                return None;
            };
            if !safe_file_name(&file.value) {
                r.diags.push(
                    Diagnostic::error(format!("`{}` is not a plain file name", file.value))
                        .at(file.loc)
                        .hint("give the file's name only, without directories"),
                );
                return None;
            }
            let suite = match r.str("suite") {
                Some(s) if suite_name(&s.value) => Some(s.value),
                Some(s) => {
                    r.diags.push(
                        Diagnostic::error(format!("`{}` is not a Debian suite's name", s.value))
                            .at(s.loc)
                            .hint("name a suite of the machine's mirror, e.g. \"trixie\", or leave `suite` out for the machine's own release"),
                    );
                    return None;
                }
                None => None,
            };
            Fetch::Debian {
                package: package.to_string(),
                version: version.to_string(),
                file: file.value,
                suite,
            }
        }
        "url" => {
            let url = r.str("url")?;
            let mut urls = vec![url];
            urls.extend(r.str_list("mirrors").unwrap_or_default());
            for u in &urls {
                if !(u.value.starts_with("https://") || u.value.starts_with("http://")) {
                    r.diags.push(
                        Diagnostic::error(format!("`{}` is not an http(s) URL", u.value))
                            .at(u.loc.clone())
                            .hint("use `path = \"…\"` for files in the workspace"),
                    );
                    return None;
                }
            }
            Fetch::Url {
                urls: urls.into_iter().map(|u| u.value).collect(),
            }
        }
        "cargo" => {
            let of = r.label("cargo")?;
            needs = Some(of.clone());
            let lock = match r.str("lock") {
                Some(l) => {
                    check_rel_path(r, &l)?;
                    Some(l.value)
                }
                None => None,
            };
            Fetch::Cargo { of: of.value, lock }
        }
        _ => {
            let path = r.str("path")?;
            check_rel_path(r, &path)?;
            Fetch::Path { path: path.value }
        }
    };
    Some(SourceRule {
        fetch,
        sha256: sha256?,
        upstream,
        needs,
    })
}

fn safe_file_name(s: &str) -> bool {
    !s.is_empty() && !s.contains('/') && s != "." && s != ".."
}

/// Rule fields never hold absolute host paths, nor climb out of the workspace.
fn check_rel_path(r: &mut Reader<'_, '_>, p: &Spanned<String>) -> Option<()> {
    let bad = p.value.starts_with('/')
        || p.value.starts_with('~')
        || p.value.split('/').any(|c| c == "..")
        || p.value.is_empty();
    if bad {
        r.diags.push(
            Diagnostic::error(format!("`{}` is not a path inside the workspace", p.value))
                .at(p.loc.clone())
                .hint("paths in rules are relative to the directory holding WORKSPACE.toml and stay inside it"),
        );
        return None;
    }
    Some(())
}

const IMAGE_KEYS: &[&str] = &[
    "suite",
    "variant",
    "components",
    "packages",
    "cross",
    "oci",
    "glibc",
    "timeout",
];

const CROSS_KEYS: &[&str] = &[
    "replace", "packages", "unpack", "native", "stand_in", "host", "suites", "gcc", "hook",
];

/// A list of `PACKAGE:/ABSOLUTE/PATH` (`stand_in`, `host`): a host
/// package and one of its programs.
fn package_paths(cr: &mut Reader<'_, '_>, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    for n in cr.str_list(key).unwrap_or_default() {
        let ok = n.value.split_once(':').is_some_and(|(pkg, path)| {
            !pkg.is_empty()
                && pkg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && path.starts_with('/')
                && !path.ends_with('/')
                && !path.split('/').any(|c| c == ".." || c == ".")
                && !path.contains(char::is_whitespace)
        });
        if ok {
            out.push(n.value);
        } else {
            cr.diags.push(
                Diagnostic::error(format!("`{}` in `{key}` is not PACKAGE:/PATH", n.value))
                    .at(n.loc)
                    .hint("name the host package and the program's absolute path in the image, e.g. \"python3.11-minimal:/usr/bin/python3.11\""),
            );
        }
    }
    out
}

/// A Debian suite's name (`bookworm`, `trixie`, `bookworm-backports`):
/// lowercase letters, digits and `-`. Suites go into the image's apt
/// sources and into the shell of the setup hook that adds `cross.suites`
/// (exec::spec), which runs on the host.
pub(crate) fn suite_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `cross = { replace, packages, unpack, native, stand_in, host, suites, gcc, hook }` of an image.
fn lower_cross(r: &mut Reader<'_, '_>) -> Option<Option<CrossSpec>> {
    let Some(e) = r.entry("cross") else {
        return Some(None);
    };
    let Value::Table(t) = &e.value.value else {
        let span = e.value.span;
        r.error_at(
            span,
            "`cross` must be a table",
            Some("write `cross = { replace = [...], packages = [...], unpack = [...], native = [...], stand_in = [...], gcc = \"12\", hook = \"recipes/…\" }`".into()),
        );
        return None;
    };
    let what = format!("`cross` of {}", r.what);
    let mut cr = Reader::new(r.file, t, e.value.span, what, r.diags);
    let list = |cr: &mut Reader<'_, '_>, k: &str| -> Vec<String> {
        cr.str_list(k)
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.value)
            .collect()
    };
    let replace = list(&mut cr, "replace");
    let packages = list(&mut cr, "packages");
    let unpack = list(&mut cr, "unpack");
    let mut native = Vec::new();
    for n in cr.str_list("native").unwrap_or_default() {
        if n.value.contains(':') {
            cr.diags.push(
                Diagnostic::error(format!("`{}` in `native` names an architecture", n.value))
                    .at(n.loc)
                    .hint("`native` lists plain package names: they are always the host's"),
            );
        } else {
            native.push(n.value);
        }
    }
    let stand_in = package_paths(&mut cr, "stand_in");
    let host = package_paths(&mut cr, "host");
    let mut suites = Vec::new();
    for n in cr.str_list("suites").unwrap_or_default() {
        if suite_name(&n.value) {
            suites.push(n.value);
        } else {
            cr.diags.push(
                Diagnostic::error(format!(
                    "`{}` in `suites` is not a Debian suite's name",
                    n.value
                ))
                .at(n.loc)
                .hint(
                    "name a suite of the image's mirror, e.g. \"trixie\" or \"bookworm-backports\"",
                ),
            );
        }
    }
    suites.sort();
    suites.dedup();
    let gcc = cr.str("gcc");
    let hook = cr.str("hook");
    if gcc.is_none() {
        cr.missing(
            "gcc",
            "name the GCC major version of the cross compilers: `gcc = \"12\"`",
        );
    }
    if hook.is_none() {
        cr.missing("hook", "name the hook that wires the cross compilers in: `hook = \"recipes/images/cross-toolchain.sh\"`");
    }
    let hook = match hook {
        Some(h) => check_rel_path(&mut cr, &h).map(|()| h),
        None => None,
    };
    cr.finish(CROSS_KEYS);
    Some(Some(CrossSpec {
        replace,
        packages,
        unpack,
        native,
        stand_in,
        host,
        suites,
        gcc: gcc?.value,
        hook: Recipe {
            script: hook?,
            includes: Vec::new(),
        },
    }))
}

fn lower_image(r: &mut Reader<'_, '_>) -> Option<ImageRule> {
    let glibc = r.str("glibc").and_then(|g| {
        if crate::platform::parse_glibc(&g.value).is_some() {
            Some(g.value)
        } else {
            r.diags.push(
                Diagnostic::error(format!("`{}` is not a glibc version", g.value))
                    .at(g.loc)
                    .hint("write major.minor, as `ldd --version` prints it: glibc = \"2.36\""),
            );
            None
        }
    });
    if let Some(oci) = r.str("oci") {
        let Some((_, digest)) = oci.value.split_once("@sha256:") else {
            r.diags.push(
                Diagnostic::error(format!("OCI image `{}` is not pinned by digest", oci.value))
                    .at(oci.loc)
                    .hint("write `oci = \"registry/name@sha256:<hex>\"`; `skopeo inspect` prints the digest"),
            );
            return None;
        };
        if digest.len() != 64 || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
            r.diags.push(
                Diagnostic::error(format!("`{digest}` is not a sha256 digest"))
                    .at(oci.loc)
                    .hint("a sha256 is 64 hexadecimal digits"),
            );
            return None;
        }
        for k in ["suite", "variant", "components", "packages"] {
            if let Some(l) = r.key_loc(k) {
                r.diags.push(
                    Diagnostic::error(format!("`{k}` has no meaning for an OCI image"))
                        .at(l)
                        .hint("an image is either built with mmdebstrap (suite, packages) or pulled (oci)"),
                );
                r.entry(k);
            }
        }
        return Some(ImageRule {
            spec: ImageSpec::Oci {
                digest: format!("sha256:{}", digest.to_ascii_lowercase()),
                reference: oci.value,
            },
            glibc,
        });
    }
    let suite = match r.str("suite") {
        Some(s) if suite_name(&s.value) => s.value,
        Some(s) => {
            r.diags.push(
                Diagnostic::error(format!("`{}` is not a Debian suite's name", s.value))
                    .at(s.loc)
                    .hint("name a suite of the mirror: lowercase letters, digits and `-`, e.g. \"bookworm\""),
            );
            return None;
        }
        None => {
            r.missing(
                "suite",
                "build images with `suite = \"bookworm\"` and `packages = [...]`, or pull one with `oci = \"name@sha256:…\"`",
            );
            return None;
        }
    };
    let variant = r
        .str("variant")
        .map_or_else(|| "minbase".to_string(), |s| s.value);
    let components = r
        .str_list("components")
        .map(|l| l.into_iter().map(|s| s.value).collect())
        .unwrap_or_else(|| vec!["main".to_string()]);
    let mut packages: Vec<String> = r
        .str_list("packages")
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.value)
        .collect();
    // The package set is a set: order and repeats do not change the image.
    packages.sort();
    packages.dedup();
    let cross = lower_cross(r)?;
    Some(ImageRule {
        spec: ImageSpec::Mmdebstrap {
            suite,
            variant,
            components,
            packages,
            cross,
        },
        glibc,
    })
}

/// A rule's own `policy` (its floor), checked like [platform] policy.
fn own_policy(r: &mut Reader<'_, '_>) -> Option<String> {
    let p = r.str("policy")?;
    match crate::platform::check_policy(&p.value) {
        Ok(()) => Some(p.value),
        Err(d) => {
            r.diags.push(d.at(p.loc));
            None
        }
    }
}

fn recipe(r: &mut Reader<'_, '_>, required: bool) -> Option<Option<Recipe>> {
    let Some(script) = r.str("recipe") else {
        if required {
            r.missing(
                "recipe",
                "name the script that builds it: `recipe = \"recipes/<name>.sh\"`",
            );
            return None;
        }
        if let Some(l) = r.key_loc("includes") {
            r.entry("includes");
            r.diags.push(
                Diagnostic::error("`includes` without a `recipe`")
                    .at(l)
                    .hint("includes are files a recipe script uses; set `recipe` too"),
            );
            return None;
        }
        return Some(None);
    };
    check_rel_path(r, &script)?;
    let includes = r.str_list("includes").unwrap_or_default();
    for i in &includes {
        check_rel_path(r, i)?;
    }
    Some(Some(Recipe { script, includes }))
}

/// `source = …` and/or `sources = [...]`: labels or inline source tables.
fn sources(ctx: &mut Ctx<'_>, owner: &Label, r: &mut Reader<'_, '_>) -> Vec<Spanned<Label>> {
    let mut nodes: Vec<&Node> = Vec::new();
    if let Some(e) = r.entry("source") {
        nodes.push(&e.value);
    }
    if let Some(e) = r.entry("sources") {
        match &e.value.value {
            Value::Array(items) => nodes.extend(items.iter()),
            _ => nodes.push(&e.value),
        }
    }
    let mut out = Vec::new();
    for node in nodes {
        match &node.value {
            Value::Str(s) => {
                if let Some(l) = r.parse_label(Spanned {
                    value: s.clone(),
                    loc: r.loc(node.span),
                }) {
                    out.push(l);
                }
            }
            Value::Table(t) => {
                let n = ctx
                    .extra
                    .iter()
                    .filter(|t| t.owner.as_ref() == Some(owner) && t.label.kind == Kind::Source)
                    .count();
                let name = if n == 0 {
                    format!("{}-{}", owner.kind.singular(), owner.name)
                } else {
                    format!("{}-{}-{}", owner.kind.singular(), owner.name, n + 1)
                };
                let label = Label::new(Kind::Source, name);
                let what = format!("the inline source of {owner}");
                let mut sr = Reader::new(ctx.file, t, node.span, what, r.diags);
                let fields = field_locs(&sr);
                let rule = lower_source(&mut sr);
                sr.finish(SOURCE_KEYS);
                if let Some(rule) = rule {
                    let loc = r.loc(node.span);
                    ctx.extra.push(Target {
                        label: label.clone(),
                        decl: loc.clone(),
                        body: Body::Source(rule),
                        fields,
                        owner: Some(owner.clone()),
                        timeout: None,
                        nested_userns: None,
                    });
                    out.push(Spanned { value: label, loc });
                }
            }
            other => {
                let msg = format!(
                    "a source of {owner} must be a label or an inline table, found {}",
                    other.type_name()
                );
                r.error_at(
                    node.span,
                    msg,
                    Some("write `source = \"//sources:name\"` or `source = { pypi = \"name==version\", sha256 = \"…\" }`".into()),
                );
            }
        }
    }
    out
}

const RESERVED_ENV: &[&str] = &[
    "REFINE_OUT",
    "REFINE_SRC",
    "REFINE_ARCH",
    "REFINE_JOBS",
    "REFINE_LABEL",
    "REFINE_KIND",
    "REFINE_NAME",
    "REFINE_VERSION",
    "DEPS_PREFIXES",
    "RUNTIME_PREFIX",
    "PYTHON",
    "SOURCE_DATE_EPOCH",
    "HOME",
];

fn env(r: &mut Reader<'_, '_>) -> BTreeMap<String, String> {
    let Some(map) = r.str_map("env") else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let valid = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            r.diags.push(
                Diagnostic::error(format!("`{k}` is not an environment variable name"))
                    .at(v.loc)
                    .hint("use letters, digits and `_`, not starting with a digit"),
            );
            continue;
        }
        if RESERVED_ENV.contains(&k.as_str()) {
            r.diags.push(
                Diagnostic::error(format!("`{k}` is set by refine and cannot be overridden"))
                    .at(v.loc)
                    .hint(format!(
                        "these variables belong to the recipe contract: {}",
                        RESERVED_ENV.join(", ")
                    )),
            );
            continue;
        }
        out.insert(k, v.value);
    }
    out
}

const RUNTIME_KEYS: &[&str] = &[
    "system",
    "python",
    "image",
    "version",
    "source",
    "sources",
    "recipe",
    "includes",
    "packs",
    "env",
    "timeout",
    "nested_userns",
];

fn lower_runtime(ctx: &mut Ctx<'_>, label: &Label, r: &mut Reader<'_, '_>) -> Option<RuntimeRule> {
    let image = r.label("image");
    let system = r.bool("system").unwrap_or(false);
    if system {
        let python = r
            .str("python")
            .map_or_else(|| "/usr/bin/python3".to_string(), |s| s.value);
        if !python.starts_with('/') {
            let l = r.key_loc("python").unwrap_or_else(|| r.table_loc());
            r.diags.push(
                Diagnostic::error(format!("`{python}` is not an absolute path in the image"))
                    .at(l)
                    .hint("name the interpreter inside the image, e.g. \"/usr/bin/python3\""),
            );
            return None;
        }
        for k in [
            "version", "source", "sources", "recipe", "includes", "packs", "env",
        ] {
            if let Some(l) = r.key_loc(k) {
                r.entry(k);
                r.diags.push(
                    Diagnostic::error(format!("`{k}` has no meaning for a system runtime"))
                        .at(l)
                        .hint("a system runtime is the image's own python; build one with `recipe` instead of `system = true`"),
                );
            }
        }
        return Some(RuntimeRule {
            image,
            spec: RuntimeSpec::System { python },
        });
    }
    let version = r.str("version");
    let sources = sources(ctx, label, r);
    let recipe = recipe(r, true)?;
    let packs = r.labels("packs").unwrap_or_default();
    let env = env(r);
    let Some(version) = version else {
        r.missing(
            "version",
            "say which interpreter this builds: `version = \"3.11.9\"`",
        );
        return None;
    };
    Some(RuntimeRule {
        image,
        spec: RuntimeSpec::Build(BuildRuntime {
            version: version.value,
            sources,
            recipe: recipe?,
            packs,
            env,
        }),
    })
}

const PACK_KEYS: &[&str] = &[
    "version",
    "source",
    "sources",
    "recipe",
    "includes",
    "deps",
    "env",
    "image",
    "policy",
    "timeout",
    "nested_userns",
];

fn lower_pack(ctx: &mut Ctx<'_>, label: &Label, r: &mut Reader<'_, '_>) -> Option<PackRule> {
    let version = r.str("version");
    let sources = sources(ctx, label, r);
    let recipe = recipe(r, true);
    let deps = r.labels("deps").unwrap_or_default();
    let env = env(r);
    let image = r.label("image");
    let policy = own_policy(r);
    let Some(version) = version else {
        r.missing(
            "version",
            "say which version this pack builds: `version = \"1.3.1\"`",
        );
        return None;
    };
    Some(PackRule {
        version: version.value,
        sources,
        recipe: recipe??,
        deps,
        env,
        image,
        policy,
    })
}

const WHEEL_KEYS: &[&str] = &[
    "package",
    "version",
    "source",
    "sources",
    "runtime",
    "image",
    "build_requires",
    "default_build_requires",
    "packs",
    "env",
    "config_settings",
    "recipe",
    "includes",
    "repair",
    "timeout",
    "nested_userns",
    "test",
    "crates",
    "policy",
    "frontend_python",
];

fn lower_wheel(ctx: &mut Ctx<'_>, label: &Label, r: &mut Reader<'_, '_>) -> Option<WheelRule> {
    let package = r.str("package").map(|s| s.value);
    let version = r.str("version").map(|s| s.value);
    let mut sources = sources(ctx, label, r);
    // A Rust extension's vendored crates: one more source of the build.
    sources.extend(r.label("crates"));
    let runtime = r.label("runtime");
    let image = r.label("image");
    let build_requires = r.labels("build_requires").unwrap_or_default();
    let default_build_requires = r.bool("default_build_requires").unwrap_or(true);
    let packs = r.labels("packs").unwrap_or_default();
    let env = env(r);
    let config_settings = r.str_list_map("config_settings").unwrap_or_default();
    let recipe = recipe(r, false)?;
    let repair = r.bool("repair").unwrap_or(false);
    let test = r.str("test").map(|s| s.value);
    let policy = own_policy(r);
    let frontend_python = r.str("frontend_python").and_then(|s| {
        match crate::platform::FrontendPython::parse(&s.value) {
            Some(v) => Some(Spanned {
                value: v,
                loc: s.loc,
            }),
            None => {
                r.diags.push(
                    Diagnostic::error(format!("unknown frontend_python `{}`", s.value))
                        .at(s.loc)
                        .hint(crate::platform::FrontendPython::HINT),
                );
                None
            }
        }
    });
    if sources.is_empty() && !r.has("source") && !r.has("sources") {
        r.missing(
            "source",
            "a wheel builds from a source: `source = { pypi = \"name==version\", sha256 = \"…\" }` or `source = \"//sources:name\"`",
        );
        return None;
    }
    // A version pinned by an inline pypi source is the wheel's version too.
    let version = version.or_else(|| {
        ctx.extra.iter().find_map(|t| match &t.body {
            Body::Source(SourceRule {
                fetch: Fetch::Pypi { version, .. },
                ..
            }) if t.owner.as_ref() == Some(label) => Some(version.clone()),
            _ => None,
        })
    });
    Some(WheelRule {
        package: package.unwrap_or_else(|| label.name.to_string()),
        version,
        sources,
        runtime,
        image,
        build_requires,
        default_build_requires,
        packs,
        env,
        config_settings,
        recipe,
        repair,
        test,
        policy,
        frontend_python,
    })
}

const SET_KEYS: &[&str] = &["targets"];

fn lower_set(r: &mut Reader<'_, '_>) -> Option<SetRule> {
    let Some(targets) = r.labels("targets") else {
        if !r.has("targets") {
            r.missing(
                "targets",
                "list the set's members: `targets = [\"//repairs:markupsafe\", \"//wheels:six\"]`",
            );
        }
        return None;
    };
    Some(SetRule { targets })
}

const REPAIR_KEYS: &[&str] = &[
    "wheel",
    "tools",
    "policy",
    "recipe",
    "includes",
    "image",
    "runtime",
    "timeout",
    "nested_userns",
];

fn lower_repair(r: &mut Reader<'_, '_>) -> Option<RepairRule> {
    let wheel = r.label("wheel");
    let tools = r.labels("tools");
    let policy = r.str("policy").map(|s| s.value);
    let recipe = recipe(r, false)?;
    let image = r.label("image");
    let runtime = r.label("runtime");
    let Some(wheel) = wheel else {
        if !r.has("wheel") {
            r.missing(
                "wheel",
                "name the wheel to repair: `wheel = \"//wheels:<name>\"`",
            );
        }
        return None;
    };
    Some(RepairRule {
        wheel,
        tools,
        policy,
        recipe,
        image,
        runtime,
    })
}

/// `[[hints]]`: match, fix, say.
fn lower_hints(file: &str, node: &Node, out: &mut Vec<HintRule>, diags: &mut Vec<Diagnostic>) {
    let items: Vec<&Node> = match &node.value {
        Value::Array(items) => items.iter().collect(),
        _ => {
            diags.push(
                Diagnostic::error("`hints` must be an array of tables")
                    .at(Loc::new(file, node.span))
                    .hint("write each hint as a `[[hints]]` table with `match` and `fix`"),
            );
            return;
        }
    };
    for item in items {
        let Value::Table(t) = &item.value else {
            diags.push(
                Diagnostic::error("a hint must be a table")
                    .at(Loc::new(file, item.span))
                    .hint("write `[[hints]]` then `match = \"…\"` and `fix = \"…\"`"),
            );
            continue;
        };
        let mut r = Reader::new(file, t, item.span, "a hint", diags);
        let pattern = r.str("match");
        let fix = r.str("fix");
        let say = r.str("say").map(|s| s.value);
        let env = env(&mut r);
        let image = r.label("image");
        let runtime = r.label("runtime");
        let loc = r.table_loc();
        r.finish(&["match", "fix", "say", "env", "image", "runtime"]);
        let mut wrong = false;
        for (l, kind, what) in [
            (&image, Kind::Image, "an image (`//images:NAME`)"),
            (&runtime, Kind::Runtime, "a runtime (`//runtimes:NAME`)"),
        ] {
            if let Some(l) = l
                && l.value.kind != kind
            {
                diags.push(
                    Diagnostic::error(format!("{} is not {what}", l.value))
                        .at(l.loc.clone())
                        .hint("a hint's `image` names the builder image to build in, its `runtime` that image's Python"),
                );
                wrong = true;
            }
        }
        if wrong {
            continue;
        }
        let (Some(pattern), Some(fix)) = (pattern, fix) else {
            diags.push(
                Diagnostic::error("a hint needs `match` and `fix`")
                    .at(loc)
                    .hint("`match` is a regular expression over log lines; `fix` is \"header\", \"tool\", \"build-requirement\", \"env\", \"image\" or \"say\""),
            );
            continue;
        };
        if let Err(e) = regex::Regex::new(&pattern.value) {
            diags.push(
                Diagnostic::error(format!("`match` is not a regular expression: {e}"))
                    .at(pattern.loc.clone())
                    .hint("see the `regex` crate's syntax; named groups are (?P<name>…)"),
            );
            continue;
        }
        let fix = match fix.value.as_str() {
            "header" => HintFix::Header,
            "tool" => HintFix::Tool,
            "build-requirement" => HintFix::BuildRequirement,
            "say" => HintFix::Say,
            "env" if env.is_empty() => {
                diags.push(
                    Diagnostic::error("`fix = \"env\"` needs an `env` table")
                        .at(fix.loc)
                        .hint("name the variables to set, e.g. env = { CMAKE_POLICY_VERSION_MINIMUM = \"3.5\" }"),
                );
                continue;
            }
            "env" => HintFix::Env,
            "image" if image.is_none() || runtime.is_none() => {
                diags.push(
                    Diagnostic::error("`fix = \"image\"` needs `image` and `runtime`")
                        .at(fix.loc)
                        .hint("name the builder image and its Python, e.g. image = \"//images:bookworm-sci\", runtime = \"//runtimes:system-sci\""),
                );
                continue;
            }
            "image" => HintFix::Image,
            other => {
                diags.push(
                    Diagnostic::error(format!("unknown fix `{other}`"))
                        .at(fix.loc)
                        .hint("fix is \"header\", \"tool\", \"build-requirement\", \"env\", \"image\" or \"say\""),
                );
                continue;
            }
        };
        out.push(HintRule {
            pattern,
            fix,
            say,
            env,
            image,
            runtime,
            loc,
        });
    }
}

/// `[import]`: how `refine import` made this file, and the fixes it
/// applies again (`[[import.fixes]]`). Nothing here enters a build; its
/// keys are checked so that a hand edit with a typo is not silently lost.
pub fn lower_import(file: &str, node: &Node, diags: &mut Vec<Diagnostic>) -> Option<ImportMeta> {
    let Value::Table(t) = &node.value else {
        diags.push(
            Diagnostic::error("`import` must be a table")
                .at(Loc::new(file, node.span))
                .hint("`refine import` writes it; regenerate the file"),
        );
        return None;
    };
    let before = diags.len();
    let strings = |v: Option<Vec<Spanned<String>>>| -> Vec<String> {
        v.unwrap_or_default().into_iter().map(|s| s.value).collect()
    };
    let mut r = Reader::new(file, t, node.span, "[import]", diags);
    let name = r.str("name").map(|s| s.value);
    let mut meta = ImportMeta {
        name: name.clone().unwrap_or_default(),
        arch: r.str("arch").map(|s| s.value),
        python: r.str("python").map(|s| s.value),
        requirements: strings(r.str_list("requirements")),
        constraints: strings(r.str_list("constraints")),
        specs: strings(r.str_list("specs")),
        wheels: r.str("wheels").map(|s| s.value),
        strategy: r.str("strategy").map(|s| s.value),
        fallback_latest: r.bool("fallback_latest").unwrap_or(false),
        max_deps: None,
        no_deps: r.bool("no_deps").unwrap_or(false),
        build_pure: r.bool("build_pure").unwrap_or(false),
        fixes: Vec::new(),
    };
    if let Some(n) = r.int("max_deps") {
        match usize::try_from(n.value) {
            Ok(v) => meta.max_deps = Some(v),
            Err(_) => {
                let span = n.loc.span;
                r.error_at(
                    span,
                    "`max_deps` must not be negative",
                    Some("write how many dependencies deep to resolve, e.g. `max_deps = 3`".into()),
                );
            }
        }
    }
    if name.is_none() && !r.has("name") {
        r.missing(
            "name",
            "`refine import` writes the import's name: regenerate the file",
        );
    }
    let fixes = r.entry("fixes");
    r.finish(&[
        "name",
        "arch",
        "python",
        "requirements",
        "constraints",
        "specs",
        "wheels",
        "strategy",
        "fallback_latest",
        "max_deps",
        "no_deps",
        "build_pure",
        "fixes",
    ]);
    if let Some(fixes) = fixes {
        let Value::Array(items) = &fixes.value.value else {
            diags.push(
                Diagnostic::error("`import.fixes` must be an array of tables")
                    .at(Loc::new(file, fixes.value.span))
                    .hint("write each fix as `[[import.fixes]]` with `target` and what to change"),
            );
            return None;
        };
        for item in items {
            let Value::Table(ft) = &item.value else {
                diags.push(
                    Diagnostic::error("a fix must be a table")
                        .at(Loc::new(file, item.span))
                        .hint("write `[[import.fixes]]` then `target = \"//wheels:NAME\"`"),
                );
                continue;
            };
            let mut r = Reader::new(file, ft, item.span, "a fix", diags);
            let target = r.label("target");
            if target.is_none() && !r.has("target") {
                r.missing(
                    "target",
                    "name the wheel the fix changes: `target = \"//wheels:NAME\"`",
                );
            }
            let fix = ImportFix {
                target: target.map(|l| l.value.to_string()).unwrap_or_default(),
                packs: r
                    .labels("packs")
                    .unwrap_or_default()
                    .into_iter()
                    .map(|l| l.value.to_string())
                    .collect(),
                build_requires: strings(r.str_list("build_requires")),
                env: r
                    .str_map("env")
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.value))
                    .collect(),
                test: r.str("test").map(|s| s.value),
                image: r.label("image").map(|l| l.value.to_string()),
                runtime: r.label("runtime").map(|l| l.value.to_string()),
                why: r.str("why").map(|s| s.value).unwrap_or_default(),
            };
            r.finish(&[
                "target",
                "packs",
                "build_requires",
                "env",
                "test",
                "image",
                "runtime",
                "why",
            ]);
            meta.fixes.push(fix);
        }
    }
    (diags.len() == before).then_some(meta)
}

/// `[headers]` ("yaml.h" = "//packs:libyaml": a C header and the pack
/// that provides it) and `[tools]` ("krb5-config" = "//packs:krb5": a
/// program a pack installs, on PATH in the builds that have the pack).
fn lower_pack_table(
    file: &str,
    node: &Node,
    (table, what, example): (&str, &str, &str),
    out: &mut Vec<HeaderEntry>,
    diags: &mut Vec<Diagnostic>,
) {
    let Value::Table(t) = &node.value else {
        diags.push(
            Diagnostic::error(format!("`{table}` must be a table of {what} = pack"))
                .at(Loc::new(file, node.span))
                .hint(format!("write `[{table}]` then lines like `{example}`")),
        );
        return;
    };
    let name = format!("[{table}]");
    let mut r = Reader::new(file, t, node.span, &name, diags);
    let keys: Vec<String> = t.entries.iter().map(|e| e.key.clone()).collect();
    for key in keys {
        if let Some(pack) = r.label(&key) {
            out.push(HeaderEntry { header: key, pack });
        }
    }
    r.finish(&[]);
}

fn lower_catalog(
    file: &str,
    node: &Node,
    out: &mut Vec<CatalogEntry>,
    diags: &mut Vec<Diagnostic>,
) {
    let Value::Table(t) = &node.value else {
        diags.push(
            Diagnostic::error("`catalog` must be a table of package = [packs]")
                .at(Loc::new(file, node.span))
                .hint("write `[catalog]` then lines like `pyyaml = [\"//packs:libyaml\"]`"),
        );
        return;
    };
    let mut r = Reader::new(file, t, node.span, "[catalog]", diags);
    let keys: Vec<String> = t.entries.iter().map(|e| e.key.clone()).collect();
    for key in keys {
        let loc = r.key_loc(&key).unwrap_or_else(|| r.table_loc());
        // The long form: `name = { packs = [...], policy = "...", env = {...},
        // config_settings = {...} }`.
        if let Some(Entry {
            value:
                Node {
                    value: Value::Table(inner),
                    span,
                },
            ..
        }) = t.get(&key)
        {
            r.entry(&key);
            let what = format!("[catalog] {key}");
            let mut e = Reader::new(file, inner, *span, what, r.diags);
            let packs = e.labels("packs").unwrap_or_default();
            let policy = own_policy(&mut e);
            let env = env(&mut e);
            let config_settings = e.str_list_map("config_settings").unwrap_or_default();
            e.finish(&["packs", "policy", "env", "config_settings"]);
            check_catalog_packs(r.diags, &packs);
            out.push(CatalogEntry {
                package: normalize_name(&key),
                packs,
                policy,
                env,
                config_settings,
                loc,
            });
            continue;
        }
        if let Some(packs) = r.labels(&key) {
            check_catalog_packs(r.diags, &packs);
            out.push(CatalogEntry {
                package: normalize_name(&key),
                packs,
                policy: None,
                env: BTreeMap::new(),
                config_settings: BTreeMap::new(),
                loc,
            });
        }
    }
    r.finish(&[]);
}

fn check_catalog_packs(diags: &mut Vec<Diagnostic>, packs: &[Spanned<Label>]) {
    for p in packs {
        if p.value.kind != Kind::Pack {
            diags.push(
                Diagnostic::error(format!("{} is not a pack", p.value))
                    .at(p.loc.clone())
                    .hint("the catalog maps Python packages to `//packs:<name>` labels"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::toml::parse;

    fn lower(text: &str) -> LoweredFile {
        let (node, diags) = parse("rules/t.toml", text);
        assert!(diags.is_empty(), "{diags:?}");
        lower_file("rules/t.toml", &node.unwrap())
    }

    const SHA: &str = "0c5c1ddd4e4c6e6b8a3e3e93d3a1f3b1d0e5b6a0f0a8d1a2b3c4d5e6f7a8b9c0";

    #[test]
    fn lowers_a_wheel_with_inline_source() {
        let f = lower(&format!(
            "[wheels.markupsafe]\nsource = {{ pypi = \"MarkupSafe==2.1.5\", sha256 = \"{SHA}\" }}\nenv = {{ CFLAGS = \"-O2\" }}\nrepair = true\n"
        ));
        assert!(f.diags.is_empty(), "{:?}", f.diags);
        let labels: Vec<String> = f.targets.iter().map(|t| t.label.to_string()).collect();
        assert_eq!(
            labels,
            [
                "//wheels:markupsafe",
                "//sources:wheel-markupsafe",
                "//repairs:markupsafe"
            ]
        );
        let Body::Wheel(w) = &f.targets[0].body else {
            panic!()
        };
        assert_eq!(w.version.as_deref(), Some("2.1.5"));
        assert_eq!(w.env["CFLAGS"], "-O2");
        assert_eq!(&*w.sources[0].value.name, "wheel-markupsafe");
    }

    #[test]
    fn an_env_hint_names_its_variables_and_needs_some() {
        let f = lower(
            "[[hints]]\nmatch = 'CMake < 3.5'\nfix = \"env\"\nenv = { CMAKE_POLICY_VERSION_MINIMUM = \"3.5\" }\n",
        );
        assert!(f.diags.is_empty(), "{:?}", f.diags);
        assert_eq!(f.hints[0].fix, HintFix::Env);
        assert_eq!(f.hints[0].env["CMAKE_POLICY_VERSION_MINIMUM"], "3.5");
        let f = lower("[[hints]]\nmatch = 'x'\nfix = \"env\"\n");
        assert!(f.hints.is_empty());
        assert!(
            f.diags[0].message.contains("needs an `env` table"),
            "{:?}",
            f.diags
        );
        let f =
            lower("[[hints]]\nmatch = 'x'\nfix = \"env\"\nenv = { SOURCE_DATE_EPOCH = \"1\" }\n");
        assert!(f.hints.is_empty(), "a reserved variable is refused");
        assert!(
            f.diags[0].message.contains("set by refine"),
            "{:?}",
            f.diags
        );
    }

    #[test]
    fn an_image_hint_names_an_image_and_its_runtime() {
        let f = lower(
            "[[hints]]\nmatch = 'gfortran: not found'\nfix = \"image\"\nimage = \"//images:bookworm-sci\"\nruntime = \"//runtimes:system-sci\"\n",
        );
        assert!(f.diags.is_empty(), "{:?}", f.diags);
        assert_eq!(f.hints[0].fix, HintFix::Image);
        assert_eq!(
            f.hints[0].image.as_ref().unwrap().value.to_string(),
            "//images:bookworm-sci"
        );
        assert_eq!(
            f.hints[0].runtime.as_ref().unwrap().value.to_string(),
            "//runtimes:system-sci"
        );
        let f =
            lower("[[hints]]\nmatch = 'x'\nfix = \"image\"\nimage = \"//images:bookworm-sci\"\n");
        assert!(f.hints.is_empty());
        assert!(
            f.diags[0].message.contains("needs `image` and `runtime`"),
            "{:?}",
            f.diags
        );
        let f = lower(
            "[[hints]]\nmatch = 'x'\nfix = \"image\"\nimage = \"//packs:zlib\"\nruntime = \"//runtimes:system-sci\"\n",
        );
        assert!(f.hints.is_empty());
        assert_eq!(
            f.diags[0].message,
            "//packs:zlib is not an image (`//images:NAME`)"
        );
        assert!(f.diags[0].loc.is_some(), "{:?}", f.diags);
    }

    #[test]
    fn collects_several_errors() {
        let f = lower(&format!(
            "[wheels.a]\nsource = \"//sources:x\"\nenvv = {{}}\n\n[packs.b]\nversion = 1\nrecipe = \"/abs/path.sh\"\n\n[sources.c]\npypi = \"six>=1\"\nsha256 = \"{SHA}\"\n\n[gadgets.d]\n"
        ));
        let msgs: Vec<&str> = f.diags.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(msgs.len(), 5, "{msgs:#?}");
        assert!(msgs[0].contains("unknown key `envv`"));
        assert!(msgs[1].contains("`version` in //packs:b must be a string"));
        assert!(msgs[2].contains("not a path inside the workspace"));
        assert!(msgs[3].contains("not an exact requirement"));
        assert!(msgs[4].contains("unknown table `gadgets`"));
        // A target with an unknown key is kept (its references still get
        // checked); ones whose fields cannot be read are dropped.
        let kept: Vec<String> = f.targets.iter().map(|t| t.label.to_string()).collect();
        assert_eq!(kept, ["//wheels:a"]);
    }

    #[test]
    fn catalog_normalizes_names() {
        let f = lower("[catalog]\nPyYAML = [\"//packs:libyaml\"]\n");
        assert_eq!(f.catalog[0].package, "pyyaml");
        assert_eq!(&*f.catalog[0].packs[0].value.name, "libyaml");
        assert_eq!(f.catalog[0].policy, None);
    }

    #[test]
    fn the_catalogs_long_form_carries_a_floor_and_is_checked() {
        let f = lower(
            "[catalog]\nNumPy = { packs = [\"//packs:openblas\"], policy = \"manylinux_2_36\" }\n",
        );
        assert!(f.diags.is_empty(), "{:?}", f.diags);
        assert_eq!(f.catalog[0].package, "numpy");
        assert_eq!(&*f.catalog[0].packs[0].value.name, "openblas");
        assert_eq!(f.catalog[0].policy.as_deref(), Some("manylinux_2_36"));
        let f = lower(
            "[catalog]\nnumpy = { packs = [\"//wheels:x\"], policy = \"manylinux_9\", floor = 1 }\n",
        );
        let msgs: Vec<String> = f.diags.iter().map(|d| d.message.clone()).collect();
        assert_eq!(f.diags.len(), 3, "{msgs:?}");
        assert!(
            msgs.iter().any(|m| m.contains("//wheels:x is not a pack")),
            "{msgs:?}"
        );
        assert!(msgs.iter().any(|m| m.contains("floor")), "{msgs:?}");
        assert!(
            f.diags
                .iter()
                .all(|d| d.loc.as_ref().is_some_and(|l| &*l.file == "rules/t.toml")),
            "{msgs:?}"
        );
    }
}
