//! A target's derivation: what its key covers, as a plain function of its
//! rule, the workspace's config and what [`Rules`] answers about the other
//! targets. The salsa queries ([`super::queries::derivation`]) call it with
//! the database behind [`Rules`]; the unit tests below with a map, so the
//! resolution of images, runtimes, frontends, packs and floors is tested
//! without salsa.

use super::drv::{Action, CrossAction, Derivation, Inputs, RecipeFiles};
use crate::diag::Diagnostic;
use crate::key::Digest;
use crate::platform::*;
use crate::rules::config::Config;
use crate::rules::toml::Spanned;
use crate::rules::*;
use std::collections::BTreeMap;

/// What a derivation needs to know of the rest of the workspace.
pub trait Rules {
    /// The platform of the run (None when WORKSPACE.toml is broken).
    fn platform(&self) -> Option<&Platform>;
    /// `[catalog]`: normalized package name → packs.
    fn catalog(&self) -> &BTreeMap<String, Vec<Label>>;
    fn is_declared(&self, label: &Label) -> bool;
    /// Every declared label, sorted (for "did you mean").
    fn labels(&self) -> &[Label];
    /// A target's rule, without source locations.
    fn target(&self, label: &Label) -> Option<&Target>;
    /// Another target's derivation, when it has one without errors.
    fn derivation(&self, label: &Label) -> Option<&Derivation>;
    /// The packs `roots` need, in dependency order.
    fn pack_closure(&self, roots: &[Label]) -> Vec<Label>;
    /// A recipe file's digest, or why it cannot be read.
    fn recipe_file(&self, path: &str) -> Result<Digest, String>;
}

pub fn derive(rules: &dyn Rules, t: &Target, cfg: &Config) -> Result<Derivation, Vec<Diagnostic>> {
    let label = &t.label;
    let Some(platform) = rules.platform().cloned() else {
        return Err(Vec::new());
    };
    let mut r = Resolver {
        rules,
        diags: Vec::new(),
    };
    let mut d = Derivation {
        label: label.clone(),
        version: None,
        platform,
        source_date_epoch: cfg.sandbox.source_date_epoch,
        action: Action::SystemRuntime {
            python: String::new(),
        },
        inputs: Inputs::default(),
        env: BTreeMap::new(),
        timeout: t.timeout.unwrap_or(cfg.sandbox.timeout),
        nested_userns: t.nested_userns.unwrap_or(cfg.sandbox.nested_userns),
        is_wheel_source: false,
        cc_target: None,
        host_python: None,
    };
    match &t.body {
        Body::Source(s) => {
            d.is_wheel_source = match &s.fetch {
                Fetch::Pypi { dist, .. } => *dist == Dist::Wheel,
                Fetch::Url { urls } => urls[0].ends_with(".whl"),
                Fetch::Path { path } => path.ends_with(".whl"),
                Fetch::Debian { file, .. } => file.ends_with(".whl"),
                Fetch::Cargo { .. } => false,
            };
            if let Fetch::Pypi { version, .. } = &s.fetch {
                d.version = Some(version.clone());
            }
            if let Some(of) = &s.needs {
                d.inputs.sources = r.expect(of, &[Kind::Source]).into_iter().collect();
            }
            d.action = Action::Fetch {
                fetch: s.fetch.clone(),
                sha256: s.sha256.clone(),
            };
        }
        Body::Image(i) => {
            d.action = match &i.spec {
                ImageSpec::Mmdebstrap {
                    suite,
                    variant,
                    components,
                    packages,
                    cross,
                } => {
                    let platform = &d.platform;
                    match cross.as_ref().filter(|_| platform.uses_cross()) {
                        // The target's image, with the host's cross compilers.
                        Some(c) => {
                            let host = Arch::host();
                            let subst = |p: &String| {
                                p.replace("{triplet}", platform.arch.triplet())
                                    .replace("{host}", host.debian())
                            };
                            let mut pkgs: Vec<String> = packages
                                .iter()
                                .filter(|p| !c.replace.contains(p))
                                .cloned()
                                .chain(c.packages.iter().map(subst))
                                .collect();
                            pkgs.sort();
                            pkgs.dedup();
                            let hook = match r.recipe_action(&c.hook, BTreeMap::new(), None) {
                                Action::Recipe { recipe, .. } => recipe,
                                _ => RecipeFiles {
                                    script: c.hook.script.value.clone(),
                                    files: Vec::new(),
                                },
                            };
                            Action::Mmdebstrap {
                                suite: suite.clone(),
                                variant: variant.clone(),
                                components: components.clone(),
                                packages: pkgs,
                                cross: Some(CrossAction {
                                    host: host.debian().to_string(),
                                    triplet: platform.arch.triplet().to_string(),
                                    gcc: c.gcc.clone(),
                                    unpack: c.unpack.iter().map(subst).collect(),
                                    native: c.native.clone(),
                                    stand_in: c.stand_in.clone(),
                                    keep_host: c.host.clone(),
                                    suites: c.suites.clone(),
                                    hook,
                                }),
                            }
                        }
                        None => Action::Mmdebstrap {
                            suite: suite.clone(),
                            variant: variant.clone(),
                            components: components.clone(),
                            packages: packages.clone(),
                            cross: None,
                        },
                    }
                }
                ImageSpec::Oci { reference, digest } => Action::OciImage {
                    reference: reference.clone(),
                    digest: digest.clone(),
                },
            };
        }
        Body::Runtime(rt) => {
            d.inputs.image = r.image(t, rt.image.as_ref(), cfg);
            match &rt.spec {
                RuntimeSpec::System { python } => {
                    d.action = Action::SystemRuntime {
                        python: python.clone(),
                    };
                }
                RuntimeSpec::Build(b) => {
                    d.version = Some(b.version.clone());
                    d.inputs.sources = r.sources(&b.sources);
                    d.inputs.packs = r.packs(&b.packs);
                    d.env = b.env.clone();
                    d.action = r.recipe_action(&b.recipe, BTreeMap::new(), None);
                }
            }
        }
        Body::Pack(p) => {
            d.version = Some(p.version.clone());
            d.inputs.image = r.image(t, p.image.as_ref(), cfg);
            d.inputs.sources = r.sources(&p.sources);
            d.inputs.packs = r.packs(&p.deps);
            // In a cycle the closure comes back to the pack itself; the
            // cycle is reported, the pack never needs itself.
            d.inputs.packs.retain(|l| l != label);
            d.env = p.env.clone();
            d.action = r.recipe_action(&p.recipe, BTreeMap::new(), None);
            if let Some(own) = &p.policy {
                d.platform.policy = own.clone();
            }
            r.floor(t, cfg, &mut d);
        }
        Body::Wheel(w) => {
            if let Some(own) = &w.policy {
                d.platform.policy = own.clone();
            }
            d.version = w.version.clone();
            d.inputs.image = r.image(t, w.image.as_ref(), cfg);
            d.inputs.runtime = r.runtime(t, w.runtime.as_ref(), cfg, d.inputs.image.as_ref());
            d.inputs.sources = r.sources(&w.sources);
            let mut reqs: Vec<&Spanned<Label>> = Vec::new();
            if w.default_build_requires {
                reqs.extend(&cfg.defaults.build_requires);
            }
            reqs.extend(&w.build_requires);
            d.inputs.wheels = r.wheels(&reqs);
            // The rule's own requirements (not the defaults'), once each.
            d.inputs.install = Vec::new();
            for l in w.build_requires.iter().map(|s| &s.value) {
                if d.inputs.wheels.contains(l) && !d.inputs.install.contains(l) {
                    d.inputs.install.push(l.clone());
                }
            }
            d.inputs.frontend = r.frontend(t, cfg, &d.platform, d.inputs.image.as_ref());
            let mut packs: Vec<Spanned<Label>> = Vec::new();
            if let Some(cat) = rules.catalog().get(&normalize_name(&w.package)) {
                packs.extend(cat.iter().map(|l| Spanned {
                    value: l.clone(),
                    loc: t.decl.clone(),
                }));
            }
            packs.extend(w.packs.iter().cloned());
            d.inputs.packs = r.packs(&packs);
            d.env = w.env.clone();
            let recipe = match w.recipe.as_ref().or(cfg.defaults.wheel_recipe.as_ref()) {
                Some(rc) => Some(rc),
                None => {
                    r.diags.push(
                        Diagnostic::error(format!("{label} has no recipe"))
                            .at(t.decl.clone())
                            .hint("set `wheel_recipe` in [defaults] of WORKSPACE.toml or `recipe` in the rule"),
                    );
                    None
                }
            };
            if let Some(rc) = recipe {
                d.action = r.recipe_action(rc, w.config_settings.clone(), None);
            }
            r.floor(t, cfg, &mut d);
            d.host_python = r.host_python(t, &d, w.frontend_python.as_ref());
        }
        Body::Set(st) => {
            d.action = Action::Set;
            d.inputs.members = st
                .targets
                .iter()
                .filter_map(|l| r.expect(l, &Kind::ALL))
                .collect();
        }
        Body::Test(ts) => {
            // The set's wheels (sets within it expanded), installed together
            // in the default image with no packs, each with its test.
            d.inputs.image = r.image(t, None, cfg);
            d.inputs.runtime = r.runtime(t, None, cfg, d.inputs.image.as_ref());
            let mut members: Vec<Label> = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            let mut work: Vec<Label> = ts
                .targets
                .iter()
                .filter_map(|l| r.expect(l, &[Kind::Set]))
                .collect();
            while let Some(l) = work.pop() {
                if !seen.insert(l.clone()) {
                    continue;
                }
                if l.kind == Kind::Set {
                    if let Some(sd) = rules.derivation(&l) {
                        work.extend(sd.inputs.members.iter().cloned());
                    }
                } else if matches!(l.kind, Kind::Source | Kind::Wheel | Kind::Repair) {
                    members.push(l);
                }
            }
            members.sort();
            let rule = |l: &Label| rules.target(l).cloned();
            let rule_test = |l: &Label| -> Option<String> {
                let wheel = match rule(l)?.body {
                    Body::Repair(rp) => rp.wheel.value,
                    Body::Wheel(_) => l.clone(),
                    _ => return None,
                };
                match rule(&wheel)?.body {
                    Body::Wheel(w) => w.test,
                    _ => None,
                }
            };
            let lines: Vec<String> = members
                .iter()
                .map(|m| format!("{m}\t{}", rule_test(m).unwrap_or_default()))
                .collect();
            d.env.insert("REFINE_TESTS".into(), lines.join("\n"));
            d.inputs.wheels = members;
            d.inputs.frontend = r.frontend(t, cfg, &d.platform, d.inputs.image.as_ref());
            // The script that drives the test (starts uv and the imports,
            // reads the wheels' file lists) in the host's Python where the
            // image keeps it (recipes/test.sh); the imports stay the target's.
            d.host_python = r.host_python(t, &d, None);
            match cfg.defaults.test_recipe.as_ref() {
                Some(rc) => d.action = r.recipe_action(rc, BTreeMap::new(), None),
                None => r.diags.push(
                    Diagnostic::error(format!("{label} has no recipe"))
                        .at(t.decl.clone())
                        .hint("set `test_recipe` in [defaults] of WORKSPACE.toml"),
                ),
            }
        }
        Body::Repair(rp) => {
            d.inputs.image = r.image(t, rp.image.as_ref(), cfg);
            d.inputs.runtime = r.runtime(t, rp.runtime.as_ref(), cfg, d.inputs.image.as_ref());
            d.inputs.wheel = r.expect(&rp.wheel, &[Kind::Wheel]);
            let tools: Vec<&Spanned<Label>> = match &rp.tools {
                Some(t) => t.iter().collect(),
                None => cfg.defaults.repair_tools.iter().collect(),
            };
            if tools.is_empty() {
                r.diags.push(
                    Diagnostic::error(format!("{label} has no repair tools"))
                        .at(t.decl.clone())
                        .hint("set `repair_tools` (auditwheel and its dependencies as wheel sources) in [defaults] of WORKSPACE.toml"),
                );
            }
            d.inputs.tools = r.wheels(&tools);
            d.inputs.frontend = r.frontend(t, cfg, &d.platform, d.inputs.image.as_ref());
            // The wheel's packs are where auditwheel finds the libraries it grafts.
            // The wheel's floor (its own policy or the platform's) is what
            // the repair checks and tags.
            if let Some(w) = &d.inputs.wheel
                && let Some(wd) = rules.derivation(w)
            {
                d.inputs.packs = wd.inputs.packs.clone();
                d.version = wd.version.clone();
                d.platform.policy = wd.platform.policy.clone();
            }
            // auditwheel in the host's Python too, where the image keeps
            // it (recipes/repair.sh answers platform.machine() with the
            // target's): [platform] frontend_python decides.
            d.host_python = r.host_python(t, &d, None);
            let policy = rp
                .policy
                .clone()
                .unwrap_or_else(|| d.platform.platform_tag());
            match rp.recipe.as_ref().or(cfg.defaults.repair_recipe.as_ref()) {
                Some(rc) => d.action = r.recipe_action(rc, BTreeMap::new(), Some(policy)),
                None => r.diags.push(
                    Diagnostic::error(format!("{label} has no recipe"))
                        .at(t.decl.clone())
                        .hint("set `repair_recipe` in [defaults] of WORKSPACE.toml or `recipe` in the rule"),
                ),
            }
        }
    }
    if r.diags.is_empty() {
        Ok(d)
    } else {
        Err(r.diags)
    }
}

struct Resolver<'a> {
    rules: &'a dyn Rules,
    diags: Vec<Diagnostic>,
}

impl Resolver<'_> {
    /// Check that a reference names a target of one of the expected kinds.
    fn expect(&mut self, r: &Spanned<Label>, kinds: &[Kind]) -> Option<Label> {
        let l = &r.value;
        if !kinds.contains(&l.kind) {
            let want: Vec<&str> = kinds.iter().map(|k| k.singular()).collect();
            self.diags.push(
                Diagnostic::error(format!("{l} is not a {}", want.join(" or ")))
                    .at(r.loc.clone())
                    .label(format!("expected a {}", want.join(" or ")))
                    .hint(format!(
                        "this field takes {} labels",
                        kinds
                            .iter()
                            .map(|k| format!("//{}:…", k.as_str()))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    )),
            );
            return None;
        }
        if !self.rules.is_declared(l) {
            let same_kind = self
                .rules
                .labels()
                .iter()
                .filter(|c| c.kind == l.kind)
                .map(|c| &*c.name);
            let hint = match crate::diag::suggest(&l.name, same_kind) {
                Some(s) => format!("did you mean `//{}:{s}`?", l.kind),
                None => format!("declare it as `[{}.{}]` in a rule file", l.kind, l.name),
            };
            self.diags.push(
                Diagnostic::error(format!("{l} names no target"))
                    .at(r.loc.clone())
                    .label("unknown label")
                    .hint(hint),
            );
            return None;
        }
        Some(l.clone())
    }

    fn image(&mut self, t: &Target, own: Option<&Spanned<Label>>, cfg: &Config) -> Option<Label> {
        match own.or(cfg.defaults.image.as_ref()) {
            Some(l) => self.expect(l, &[Kind::Image]),
            None => {
                self.diags.push(
                    Diagnostic::error(format!("{} has no builder image", t.label))
                        .at(t.decl.clone())
                        .hint("set `image` in the rule or in [defaults] of WORKSPACE.toml"),
                );
                None
            }
        }
    }

    fn runtime(
        &mut self,
        t: &Target,
        own: Option<&Spanned<Label>>,
        cfg: &Config,
        image: Option<&Label>,
    ) -> Option<Label> {
        let Some(r) = own.or(cfg.defaults.runtime.as_ref()) else {
            self.diags.push(
                Diagnostic::error(format!("{} has no Python runtime", t.label))
                    .at(t.decl.clone())
                    .hint("set `runtime` in the rule or in [defaults] of WORKSPACE.toml"),
            );
            return None;
        };
        let l = self.expect(r, &[Kind::Runtime])?;
        // A system runtime is the python of its image: it only exists there.
        if let Some(Target {
            body: Body::Runtime(rt),
            ..
        }) = self.rules.target(&l)
            && matches!(rt.spec, RuntimeSpec::System { .. })
        {
            let rt_image = rt
                .image
                .as_ref()
                .or(cfg.defaults.image.as_ref())
                .map(|s| &s.value);
            if let (Some(a), Some(b)) = (rt_image, image)
                && a != b
            {
                self.diags.push(
                    Diagnostic::error(format!(
                        "{} builds in {b} but its runtime {l} is the python of {a}",
                        t.label
                    ))
                    .at(r.loc.clone())
                    .hint("use a runtime of the same image, or build the wheel in the runtime's image"),
                );
            }
        }
        Some(l)
    }

    /// The frontend (uv) for a build in `image`: the wheel for the machine
    /// whose programs run natively there, the host's in a hybrid image (its
    /// host programs run without emulation), the target's otherwise. None
    /// when the workspace names no frontend (its recipes then bring their
    /// own).
    fn frontend(
        &mut self,
        t: &Target,
        cfg: &Config,
        platform: &Platform,
        image: Option<&Label>,
    ) -> Option<Label> {
        let f = &cfg.defaults.frontend;
        if f.by_arch.is_empty() {
            return None;
        }
        let hybrid = image
            .and_then(|l| self.rules.derivation(l))
            .is_some_and(|d| matches!(d.action, Action::Mmdebstrap { cross: Some(_), .. }));
        let arch = if hybrid { Arch::host() } else { platform.arch };
        let Some(r) = f.by_arch.get(&arch) else {
            let have: Vec<&str> = f.by_arch.keys().map(|a| a.as_str()).collect();
            let why = if hybrid {
                format!(
                    "the host's, whose programs run natively in the hybrid image of {}",
                    t.label
                )
            } else {
                format!("the machine {} runs on", t.label)
            };
            let mut d = Diagnostic::error(format!(
                "[defaults] frontend has no wheel for {arch} ({why}); it has {}",
                have.join(", ")
            ))
            .hint(format!(
                "add `{arch} = \"//sources:uv-{arch}\"` to `frontend`, with a `[sources.uv-{arch}]` that pins uv's {arch} wheel"
            ));
            if let Some(loc) = &f.loc {
                d = d.at(loc.clone());
            }
            self.diags.push(d);
            return None;
        };
        self.wheels(&[r]).into_iter().next()
    }

    /// The host's Python that runs a wheel's PEP 517 hooks, set up for the
    /// target: when its image is hybrid and keeps the host's interpreter of
    /// the target's version (`cross.host`), and the wheel builds with the
    /// image's own interpreter (a system runtime: the host's is the same
    /// Debian build of the same version). The rule's `frontend_python`,
    /// else [platform]'s, else "host" wherever it can be; a rule that asks
    /// for "host" where its hybrid image cannot give it is an error.
    fn host_python(
        &mut self,
        t: &Target,
        d: &Derivation,
        own: Option<&Spanned<FrontendPython>>,
    ) -> Option<String> {
        let want = own.map(|s| s.value).or(d.platform.frontend_python);
        if want == Some(FrontendPython::Target) || !d.platform.uses_cross() {
            return None;
        }
        let name = format!("python{}", d.platform.python);
        let kept = d
            .inputs
            .image
            .as_ref()
            .and_then(|l| self.rules.derivation(l))
            .and_then(|img| match &img.action {
                Action::Mmdebstrap { cross: Some(c), .. } => c.keep_host.iter().find_map(|e| {
                    let path = e.split_once(':')?.1;
                    (path.rsplit('/').next()? == name)
                        .then(|| format!("{}/{name}", super::drv::HOST_BIN))
                }),
                _ => None,
            });
        let system = d
            .inputs
            .runtime
            .as_ref()
            .and_then(|l| self.rules.derivation(l))
            .is_some_and(|rt| matches!(rt.action, Action::SystemRuntime { .. }));
        match kept {
            Some(p) if system => Some(p),
            _ => {
                if let Some(o) = own
                    && o.value == FrontendPython::Host
                {
                    let why = if kept.is_none() {
                        format!("its image keeps no host {name} (`cross.host` of the image rule)")
                    } else {
                        "its runtime is not the image's own interpreter".to_string()
                    };
                    self.diags.push(
                        Diagnostic::error(format!(
                            "{} asks for frontend_python = \"host\", but {why}",
                            t.label
                        ))
                        .at(o.loc.clone())
                        .hint("build it in an image whose `cross.host` keeps the host's Python of the target's version, with that image's system runtime, or write frontend_python = \"target\""),
                    );
                }
                None
            }
        }
    }

    /// A wheel's or pack's floor: when its policy stands for an older glibc
    /// than its image declares, it compiles with Zig for the target at the
    /// floor's glibc (`REFINE_CC_TARGET`, e.g. `s390x-linux-gnu.2.17`).
    /// Always the host's Zig: it is one static program, so it runs
    /// natively in a hybrid image and in an emulated one alike, and both
    /// give the same bytes. An image that declares no glibc, or a floor at
    /// or above it, builds with the image's own compilers.
    fn floor(&mut self, t: &Target, cfg: &Config, d: &mut Derivation) {
        let Some(want) = crate::platform::policy_glibc(&d.platform.policy) else {
            return;
        };
        let have = d
            .inputs
            .image
            .as_ref()
            .and_then(|l| match self.rules.target(l) {
                Some(Target {
                    body: Body::Image(i),
                    ..
                }) => i
                    .glibc
                    .as_deref()
                    .and_then(crate::platform::parse_glibc)
                    .map(|g| (g, l.clone())),
                _ => None,
            });
        let Some((have, image)) = have else {
            return;
        };
        if want >= have {
            return;
        }
        let host = Arch::host();
        let Some(zig) = cfg.defaults.zig.by_arch.get(&host) else {
            let mut e = Diagnostic::error(format!(
                "{} must meet {} (glibc {}.{}) but its image {image} has glibc {}.{}, and [defaults] zig names no Zig for this {host} machine",
                t.label, d.platform.policy, want.0, want.1, have.0, have.1
            ))
            .at(t.decl.clone())
            .hint(format!(
                "add `zig = {{ {host} = \"//sources:ziglang-{host}\" }}` to [defaults] with a `[sources.ziglang-{host}]` that pins ziglang's {host} wheel, or give the rule a `policy` its image meets"
            ));
            if let Some(loc) = &cfg.defaults.zig.loc {
                e = e.related(loc.clone(), "[defaults] zig is here");
            }
            self.diags.push(e);
            return;
        };
        d.inputs.zig = self.wheels(&[zig]).into_iter().next();
        d.cc_target = Some(format!(
            "{}.{}.{}",
            d.platform.arch.triplet(),
            want.0,
            want.1
        ));
    }

    fn sources(&mut self, refs: &[Spanned<Label>]) -> Vec<Label> {
        refs.iter()
            .filter_map(|r| self.expect(r, &[Kind::Source]))
            .collect()
    }

    fn packs(&mut self, refs: &[Spanned<Label>]) -> Vec<Label> {
        let direct: Vec<Label> = refs
            .iter()
            .filter_map(|r| self.expect(r, &[Kind::Pack]))
            .collect();
        self.rules.pack_closure(&direct)
    }

    fn wheels(&mut self, refs: &[&Spanned<Label>]) -> Vec<Label> {
        let mut out = Vec::new();
        for r in refs {
            let Some(l) = self.expect(r, &[Kind::Source, Kind::Wheel, Kind::Repair]) else {
                continue;
            };
            if l.kind == Kind::Source
                && let Some(sd) = self.rules.derivation(&l)
                && !sd.is_wheel_source
            {
                self.diags.push(
                    Diagnostic::error(format!("{l} is not a wheel"))
                        .at(r.loc.clone())
                        .label("build requirements are installed as wheels")
                        .hint(format!(
                            "give {l} `dist = \"wheel\"`, or build it with a `[wheels.…]` target"
                        )),
                );
                continue;
            }
            if !out.contains(&l) {
                out.push(l);
            }
        }
        out
    }

    fn recipe_action(
        &mut self,
        recipe: &Recipe,
        config_settings: BTreeMap<String, Vec<String>>,
        policy: Option<String>,
    ) -> Action {
        let mut files = Vec::new();
        for p in std::iter::once(&recipe.script).chain(&recipe.includes) {
            match self.rules.recipe_file(&p.value) {
                Ok(d) => files.push((p.value.clone(), d)),
                Err(why) => {
                    let hint = if why.contains("leads out of the workspace") {
                        "recipes and their includes are read inside the workspace only: copy the file in instead of linking to it"
                    } else {
                        "recipe paths are relative to the workspace root, e.g. \"recipes/zlib.sh\""
                    };
                    self.diags.push(
                        Diagnostic::error(format!("recipe file {why}"))
                            .at(p.loc.clone())
                            .hint(hint),
                    )
                }
            }
        }
        Action::Recipe {
            recipe: RecipeFiles {
                script: recipe.script.value.clone(),
                files,
            },
            config_settings,
            policy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A workspace as maps: one rule file, WORKSPACE.toml, recipe digests.
    struct World {
        platform: Platform,
        catalog: BTreeMap<String, Vec<Label>>,
        targets: BTreeMap<Label, Target>,
        labels: Vec<Label>,
        derivations: HashMap<Label, Derivation>,
        files: BTreeMap<String, Digest>,
    }

    impl Rules for World {
        fn platform(&self) -> Option<&Platform> {
            Some(&self.platform)
        }
        fn catalog(&self) -> &BTreeMap<String, Vec<Label>> {
            &self.catalog
        }
        fn is_declared(&self, label: &Label) -> bool {
            self.targets.contains_key(label)
        }
        fn labels(&self) -> &[Label] {
            &self.labels
        }
        fn target(&self, label: &Label) -> Option<&Target> {
            self.targets.get(label)
        }
        fn derivation(&self, label: &Label) -> Option<&Derivation> {
            self.derivations.get(label)
        }
        fn pack_closure(&self, roots: &[Label]) -> Vec<Label> {
            fn visit(w: &World, l: &Label, out: &mut Vec<Label>) {
                if out.contains(l) {
                    return;
                }
                if let Some(Body::Pack(p)) = w.targets.get(l).map(|t| &t.body) {
                    for d in &p.deps {
                        visit(w, &d.value, out);
                    }
                }
                out.push(l.clone());
            }
            let mut out = Vec::new();
            for r in roots {
                visit(self, r, &mut out);
            }
            out
        }
        fn recipe_file(&self, path: &str) -> Result<Digest, String> {
            self.files
                .get(path)
                .cloned()
                .ok_or_else(|| format!("`{path}` does not exist"))
        }
    }

    const WORKSPACE: &str = r#"
[workspace]
base = "none"
[platform]
arch = "s390x"
python = "3.11"
[defaults]
image = "//images:img"
runtime = "//runtimes:py"
wheel_recipe = "recipes/wheel.sh"
repair_recipe = "recipes/repair.sh"
build_requires = ["//sources:setuptools"]
repair_tools = ["//sources:auditwheel"]
test_recipe = "recipes/test.sh"
frontend = { x86_64 = "//sources:uv-x86_64", s390x = "//sources:uv-s390x" }
zig = { x86_64 = "//sources:zig-x86_64", s390x = "//sources:zig-s390x" }
"#;

    const RULES: &str = r#"
[images.img]
suite = "bookworm"
glibc = "2.36"
packages = ["gcc", "make"]
cross.replace = ["gcc"]
cross.packages = ["gcc-12-{triplet}:{host}"]
cross.host = ["python3.11-minimal:/usr/bin/python3.11"]
cross.gcc = "12"
cross.hook = "recipes/hook.sh"

[runtimes.py]
system = true

[sources.setuptools]
path = "vendor/setuptools-1.0-py3-none-any.whl"
sha256 = "1111111111111111111111111111111111111111111111111111111111111111"
[sources.auditwheel]
path = "vendor/auditwheel-1.0-py3-none-any.whl"
sha256 = "2222222222222222222222222222222222222222222222222222222222222222"
[sources.uv-x86_64]
path = "vendor/uv-1-py3-none-manylinux_2_17_x86_64.whl"
sha256 = "3333333333333333333333333333333333333333333333333333333333333333"
[sources.uv-s390x]
path = "vendor/uv-1-py3-none-manylinux_2_17_s390x.whl"
sha256 = "4444444444444444444444444444444444444444444444444444444444444444"
[sources.zig-x86_64]
path = "vendor/ziglang-1-py3-none-manylinux_2_12_x86_64.whl"
sha256 = "5555555555555555555555555555555555555555555555555555555555555555"
[sources.zig-s390x]
path = "vendor/ziglang-1-py3-none-manylinux_2_12_s390x.whl"
sha256 = "6666666666666666666666666666666666666666666666666666666666666666"
[sources.yaml-src]
path = "vendor/PyYAML-6.0.tar.gz"
sha256 = "7777777777777777777777777777777777777777777777777777777777777777"
[sources.ffi-src]
path = "vendor/libffi-3.4.tar.gz"
sha256 = "8888888888888888888888888888888888888888888888888888888888888888"

[packs.libffi]
version = "3.4"
source = "//sources:ffi-src"
recipe = "recipes/pack.sh"
[packs.libyaml]
version = "0.2"
source = "//sources:ffi-src"
recipe = "recipes/pack.sh"
deps = ["//packs:libffi"]

[wheels.pyyaml]
package = "PyYAML"
version = "6.0"
source = "//sources:yaml-src"
repair = true

[wheels.modern]
version = "1.0"
source = "//sources:yaml-src"
policy = "manylinux_2_36"

[wheels.own-hooks]
version = "1.0"
source = "//sources:yaml-src"
frontend_python = "target"

[sets.web]
targets = ["//repairs:pyyaml", "//wheels:own-hooks"]
"#;

    fn world(arch: &str) -> (World, Config) {
        let ws = WORKSPACE.replace("arch = \"s390x\"", &format!("arch = \"{arch}\""));
        let cfg = crate::rules::config::parse_config(&ws).unwrap();
        let (node, diags) = crate::rules::toml::parse("rules/x.toml", RULES);
        assert!(diags.is_empty(), "{diags:?}");
        let lowered = crate::rules::lower::lower_file("rules/x.toml", &node.unwrap());
        assert!(lowered.diags.is_empty(), "{:?}", lowered.diags);
        let targets: BTreeMap<Label, Target> = lowered
            .targets
            .into_iter()
            .map(|t| (t.label.clone(), t))
            .collect();
        let mut catalog = BTreeMap::new();
        catalog.insert(
            "pyyaml".to_string(),
            vec!["//packs:libyaml".parse().unwrap()],
        );
        let files = [
            "recipes/wheel.sh",
            "recipes/repair.sh",
            "recipes/test.sh",
            "recipes/pack.sh",
            "recipes/hook.sh",
        ]
        .into_iter()
        .map(|f| (f.to_string(), crate::key::sha256_bytes(f.as_bytes())))
        .collect();
        let mut w = World {
            platform: cfg.platform.clone(),
            catalog,
            labels: targets.keys().cloned().collect(),
            targets,
            derivations: HashMap::new(),
            files,
        };
        // Derive in the order the kinds depend on each other.
        for kind in [
            Kind::Source,
            Kind::Image,
            Kind::Runtime,
            Kind::Pack,
            Kind::Wheel,
            Kind::Repair,
            Kind::Set,
            Kind::Test,
        ] {
            let of_kind: Vec<Label> = w
                .labels
                .iter()
                .filter(|l| l.kind == kind)
                .cloned()
                .collect();
            for l in of_kind {
                let d = derive(&w, &w.targets[&l], &cfg).unwrap_or_else(|e| panic!("{l}: {e:?}"));
                w.derivations.insert(l, d);
            }
        }
        (w, cfg)
    }

    fn label(s: &str) -> Label {
        s.parse().unwrap()
    }

    #[test]
    fn a_wheel_below_its_images_glibc_compiles_with_the_hosts_zig() {
        let (w, _) = world("s390x");
        let d = &w.derivations[&label("//wheels:pyyaml")];
        assert_eq!(d.cc_target.as_deref(), Some("s390x-linux-gnu.2.17"));
        let host = Arch::host().as_str();
        assert_eq!(
            d.inputs.zig,
            Some(label(&format!("//sources:zig-{host}"))),
            "always the host's Zig"
        );
        // A hybrid image: the host's frontend, whose programs run natively.
        assert_eq!(
            d.inputs.frontend,
            Some(label(&format!("//sources:uv-{host}")))
        );
        // The catalog's pack, after the pack it needs.
        assert_eq!(
            d.inputs.packs,
            [label("//packs:libffi"), label("//packs:libyaml")]
        );
        assert_eq!(d.inputs.wheels, [label("//sources:setuptools")]);
        // A rule at its image's own glibc has neither.
        let m = &w.derivations[&label("//wheels:modern")];
        assert_eq!(m.platform.policy, "manylinux_2_36");
        assert_eq!((m.cc_target.as_ref(), m.inputs.zig.as_ref()), (None, None));
    }

    #[test]
    fn a_repair_takes_its_wheels_packs_version_and_floor() {
        let (w, _) = world("s390x");
        let r = &w.derivations[&label("//repairs:pyyaml")];
        let wd = &w.derivations[&label("//wheels:pyyaml")];
        assert_eq!(r.inputs.wheel, Some(label("//wheels:pyyaml")));
        assert_eq!(r.inputs.packs, wd.inputs.packs);
        assert_eq!(r.version.as_deref(), Some("6.0"));
        assert_eq!(r.inputs.tools, [label("//sources:auditwheel")]);
        match &r.action {
            Action::Recipe { policy, .. } => {
                assert_eq!(policy.as_deref(), Some("manylinux2014_s390x"))
            }
            a => panic!("{a:?}"),
        }
    }

    #[test]
    fn a_foreign_wheels_hooks_run_in_the_hosts_python_its_hybrid_image_keeps() {
        let (w, cfg) = world("s390x");
        let d = &w.derivations[&label("//wheels:pyyaml")];
        assert_eq!(
            d.host_python.as_deref(),
            Some("/usr/lib/refine/host/bin/python3.11")
        );
        // Its repair's auditwheel too.
        assert_eq!(
            w.derivations[&label("//repairs:pyyaml")].host_python,
            d.host_python
        );
        // The script that drives a set's test too (the imports stay the
        // target's: recipes/test.sh), whatever its members' own choice.
        assert_eq!(
            w.derivations[&label("//tests:web")].host_python,
            d.host_python
        );
        // The rule's own choice wins, and the key covers the choice.
        let own = &w.derivations[&label("//wheels:own-hooks")];
        assert_eq!(own.host_python, None);
        let key = |d: &Derivation| {
            d.preimage(&|l: &Label| Some(crate::key::sha256_bytes(l.to_string().as_bytes())))
                .key()
        };
        let mut as_target = d.clone();
        as_target.host_python = None;
        assert_ne!(key(d), key(&as_target));
        // [platform] frontend_python = "target" for every rule.
        let mut w2 = World {
            platform: w.platform.clone(),
            catalog: w.catalog.clone(),
            labels: w.labels.clone(),
            targets: w.targets.clone(),
            derivations: w.derivations.clone(),
            files: w.files.clone(),
        };
        w2.platform.frontend_python = Some(FrontendPython::Target);
        let t = w2.targets[&label("//wheels:pyyaml")].clone();
        assert_eq!(derive(&w2, &t, &cfg).unwrap().host_python, None);
        // An image that keeps no host Python: the target's, and a rule that
        // asks for the host's is told why not.
        let img = label("//images:img");
        if let Some(Derivation {
            action: Action::Mmdebstrap { cross: Some(c), .. },
            ..
        }) = w2.derivations.get_mut(&img)
        {
            c.keep_host.clear();
        }
        w2.platform.frontend_python = None;
        assert_eq!(derive(&w2, &t, &cfg).unwrap().host_python, None);
        let mut asks = t.clone();
        if let Body::Wheel(wh) = &mut asks.body {
            wh.frontend_python = Some(Spanned {
                value: FrontendPython::Host,
                loc: asks.decl.clone(),
            });
        }
        let errs = derive(&w2, &asks, &cfg).unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.message.contains("frontend_python = \"host\"")
                    && e.message.contains("keeps no host python3.11")),
            "{errs:?}"
        );
    }

    #[test]
    fn the_hosts_own_arch_builds_in_a_plain_image_with_its_own_frontend() {
        let host = Arch::host();
        let (w, _) = world(host.as_str());
        let img = &w.derivations[&label("//images:img")];
        assert!(
            matches!(img.action, Action::Mmdebstrap { cross: None, .. }),
            "{:?}",
            img.action
        );
        let d = &w.derivations[&label("//wheels:pyyaml")];
        assert_eq!(
            d.inputs.frontend,
            Some(label(&format!("//sources:uv-{}", host.as_str())))
        );
        // The host's own Python is the target's: nothing to set up.
        assert_eq!(d.host_python, None);
    }

    #[test]
    fn unknown_labels_and_missing_recipes_are_errors_with_a_suggestion() {
        let (mut w, cfg) = world("s390x");
        let mut t = w.targets[&label("//wheels:pyyaml")].clone();
        if let Body::Wheel(wh) = &mut t.body {
            wh.packs.push(Spanned {
                value: label("//packs:libyam"),
                loc: t.decl.clone(),
            });
        }
        w.files.remove("recipes/wheel.sh");
        let errs = derive(&w, &t, &cfg).unwrap_err();
        let text: Vec<String> = errs
            .iter()
            .map(|d| format!("{} / {}", d.message, d.hint.clone().unwrap_or_default()))
            .collect();
        assert!(
            text.iter()
                .any(|m| m.contains("//packs:libyam names no target")
                    && m.contains("did you mean `//packs:libyaml`")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|m| m.contains("recipe file `recipes/wheel.sh` does not exist")),
            "{text:?}"
        );
    }
}
