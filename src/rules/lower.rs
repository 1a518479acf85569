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
use crate::rules::toml::{Node, Reader, Spanned, Table, Value};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LoweredFile {
    pub targets: Vec<Target>,
    pub catalog: Vec<CatalogEntry>,
    /// Where the file's `[catalog]` table is, if it has one.
    pub catalog_loc: Option<Loc>,
    pub diags: Vec<Diagnostic>,
}

const TOP_KEYS: &[&str] = &[
    "sources", "images", "runtimes", "packs", "wheels", "repairs", "catalog",
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
        });
    }
    Some(Target {
        label,
        decl,
        body,
        fields,
        owner: None,
        timeout,
    })
}

fn read_timeout(r: &mut Reader<'_, '_>) -> Option<u64> {
    let s = r.str("timeout")?;
    match parse_duration(&s.value) {
        Some(d) => Some(d),
        None => {
            r.diags.push(
                Diagnostic::error(format!("invalid duration `{}`", s.value))
                    .at(s.loc)
                    .hint("write durations like \"90s\", \"30m\" or \"2h\""),
            );
            None
        }
    }
}

/// "90s", "30m", "2h", "1h30m", or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
        } else {
            let n: u64 = num.parse().ok()?;
            num.clear();
            total += n * match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86400,
                _ => return None,
            };
        }
    }
    if !num.is_empty() {
        return None;
    }
    (total > 0).then_some(total)
}

const SOURCE_KEYS: &[&str] = &[
    "pypi", "dist", "debian", "file", "url", "mirrors", "path", "sha256", "upstream", "timeout",
];

fn lower_source(r: &mut Reader<'_, '_>) -> Option<SourceRule> {
    let kinds: Vec<&str> = ["pypi", "debian", "url", "path"]
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
            Some("give exactly one of `pypi = \"name==version\"`, `debian = \"package=version\"`, `url = \"https://…\"` or `path = \"…\"`".into()),
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
            Fetch::Debian {
                package: package.to_string(),
                version: version.to_string(),
                file: file.value,
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
    "oci",
    "timeout",
];

fn lower_image(r: &mut Reader<'_, '_>) -> Option<ImageRule> {
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
        });
    }
    let suite = match r.str("suite") {
        Some(s) => s.value,
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
    Some(ImageRule {
        spec: ImageSpec::Mmdebstrap {
            suite,
            variant,
            components,
            packages,
        },
    })
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
    "system", "python", "image", "version", "source", "sources", "recipe", "includes", "packs",
    "env", "timeout",
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
    "version", "source", "sources", "recipe", "includes", "deps", "env", "image", "timeout",
];

fn lower_pack(ctx: &mut Ctx<'_>, label: &Label, r: &mut Reader<'_, '_>) -> Option<PackRule> {
    let version = r.str("version");
    let sources = sources(ctx, label, r);
    let recipe = recipe(r, true);
    let deps = r.labels("deps").unwrap_or_default();
    let env = env(r);
    let image = r.label("image");
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
];

fn lower_wheel(ctx: &mut Ctx<'_>, label: &Label, r: &mut Reader<'_, '_>) -> Option<WheelRule> {
    let package = r.str("package").map(|s| s.value);
    let version = r.str("version").map(|s| s.value);
    let sources = sources(ctx, label, r);
    let runtime = r.label("runtime");
    let image = r.label("image");
    let build_requires = r.labels("build_requires").unwrap_or_default();
    let default_build_requires = r.bool("default_build_requires").unwrap_or(true);
    let packs = r.labels("packs").unwrap_or_default();
    let env = env(r);
    let config_settings = r.str_list_map("config_settings").unwrap_or_default();
    let recipe = recipe(r, false)?;
    let repair = r.bool("repair").unwrap_or(false);
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
    })
}

const REPAIR_KEYS: &[&str] = &[
    "wheel", "tools", "policy", "recipe", "includes", "image", "runtime", "timeout",
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
        if let Some(packs) = r.labels(&key) {
            for p in &packs {
                if p.value.kind != Kind::Pack {
                    r.diags.push(
                        Diagnostic::error(format!("{} is not a pack", p.value))
                            .at(p.loc.clone())
                            .hint("the catalog maps Python packages to `//packs:<name>` labels"),
                    );
                }
            }
            out.push(CatalogEntry {
                package: normalize_name(&key),
                packs,
                loc,
            });
        }
    }
    r.finish(&[]);
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
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("120"), Some(120));
        assert_eq!(parse_duration("1x"), None);
    }
}
