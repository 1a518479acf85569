//! What goes into a key, table-driven: each included field changes the key
//! of the targets it should, each excluded thing changes no key.

mod common;
use common::{Ws, fake_workspace};
use refine::key::{Digest, Key, sha256_bytes};
use refine::ops::{GlobalOpts, Session};
use refine::rules::Label;
use std::collections::BTreeMap;

const TARGETS: &[&str] = &[
    "//wheels:alpha",
    "//wheels:beta",
    "//repairs:beta",
    "//packs:zlib",
    "//packs:openssl",
    "//images:base",
    "//runtimes:system",
    "//sources:alpha-src",
];

/// Keys of TARGETS, with each dependency's output digest made up from its
/// label (and `salt` for the labels in `changed_outputs`).
fn keys_with(ws: &Ws, changed_outputs: &[&str]) -> BTreeMap<String, Key> {
    let s = Session::load(&GlobalOpts {
        workspace: Some(ws.root().to_path_buf()),
        store: Some(ws.store.clone()),
        ..GlobalOpts::default()
    })
    .unwrap_or_else(|e| panic!("{}\n{}", e.message, e.rendered.unwrap_or_default()));
    let labels: Vec<Label> = TARGETS.iter().map(|t| t.parse().unwrap()).collect();
    let g = s.graph(&labels).unwrap();
    let dep = |l: &Label| -> Option<Digest> {
        let n = g.get(l)?;
        n.derivation().fixed_output().or_else(|| {
            let salt = if changed_outputs.contains(&l.to_string().as_str()) {
                "new"
            } else {
                ""
            };
            Some(sha256_bytes(format!("{l}{salt}").as_bytes()))
        })
    };
    labels
        .iter()
        .map(|l| {
            (
                l.to_string(),
                g.get(l).unwrap().derivation().preimage(&dep).key(),
            )
        })
        .collect()
}

fn keys(ws: &Ws) -> BTreeMap<String, Key> {
    keys_with(ws, &[])
}

fn changed(a: &BTreeMap<String, Key>, b: &BTreeMap<String, Key>) -> Vec<String> {
    a.iter()
        .filter(|(l, k)| b.get(*l) != Some(k))
        .map(|(l, _)| l.clone())
        .collect()
}

/// (what, file, from, to, the targets whose keys must change)
const INCLUDED: &[(&str, &str, &str, &str, &[&str])] = &[
    (
        "an env value",
        "rules/wheels.toml",
        "CFLAGS = \"-O2\"",
        "CFLAGS = \"-O3\"",
        &["//wheels:alpha"],
    ),
    (
        "a new env variable",
        "rules/wheels.toml",
        "CFLAGS = \"-O2\"",
        "CFLAGS = \"-O2\", FOO = \"1\"",
        &["//wheels:alpha"],
    ),
    (
        "a wheel's version",
        "rules/wheels.toml",
        "version = \"1.0\"",
        "version = \"1.1\"",
        &["//wheels:alpha"],
    ),
    (
        "the recipe's content",
        "recipes/wheel.sh",
        "pip wheel .",
        "pip wheel --verbose .",
        &["//wheels:alpha", "//wheels:beta"],
    ),
    (
        "an included file's content",
        "recipes/lib/common.sh",
        "log()",
        "# new\nlog()",
        &["//packs:zlib"],
    ),
    (
        "config settings",
        "rules/wheels.toml",
        "env = { CFLAGS = \"-O2\" }",
        "env = { CFLAGS = \"-O2\" }\nconfig_settings = { \"--build-option\" = \"--cpp\" }",
        &["//wheels:alpha"],
    ),
    (
        "an added build requirement",
        "rules/wheels.toml",
        "env = { CFLAGS = \"-O2\" }",
        "env = { CFLAGS = \"-O2\" }\nbuild_requires = [\"//sources:auditwheel\"]",
        &["//wheels:alpha"],
    ),
    (
        "naming a default build requirement in the rule (installed, not only offered)",
        "rules/wheels.toml",
        "env = { CFLAGS = \"-O2\" }",
        "env = { CFLAGS = \"-O2\" }\nbuild_requires = [\"//sources:setuptools\"]",
        &["//wheels:alpha"],
    ),
    (
        "dropping the default build requirements",
        "rules/wheels.toml",
        "env = { CFLAGS = \"-O2\" }",
        "env = { CFLAGS = \"-O2\" }\ndefault_build_requires = false",
        &["//wheels:alpha"],
    ),
    (
        "the target arch",
        "WORKSPACE.toml",
        "arch = \"x86_64\"",
        "arch = \"s390x\"",
        &[
            "//wheels:alpha",
            "//wheels:beta",
            "//repairs:beta",
            "//packs:zlib",
            "//packs:openssl",
            "//images:base",
            "//runtimes:system",
        ],
    ),
    (
        "the Python version (not images or packs)",
        "WORKSPACE.toml",
        "python = \"3.11\"",
        "python = \"3.12\"",
        &[
            "//wheels:alpha",
            "//wheels:beta",
            "//repairs:beta",
            "//runtimes:system",
        ],
    ),
    (
        "the repair policy (not images or packs)",
        "WORKSPACE.toml",
        "python = \"3.11\"",
        "python = \"3.11\"\npolicy = \"manylinux_2_28\"",
        &[
            "//wheels:alpha",
            "//wheels:beta",
            "//repairs:beta",
            "//runtimes:system",
        ],
    ),
    (
        "SOURCE_DATE_EPOCH",
        "WORKSPACE.toml",
        "[defaults]",
        "[sandbox]\nsource_date_epoch = 1\n\n[defaults]",
        &[
            "//wheels:alpha",
            "//wheels:beta",
            "//repairs:beta",
            "//packs:zlib",
            "//packs:openssl",
            "//images:base",
            "//runtimes:system",
        ],
    ),
    (
        "an image package",
        "runtimes/base.toml",
        "\"gcc\"]",
        "\"gcc\", \"make\"]",
        &["//images:base"],
    ),
    (
        "a pack's dependencies",
        "packs/openssl.toml",
        "deps = [\"//packs:zlib\"]",
        "deps = []",
        &["//packs:openssl", "//wheels:beta", "//repairs:beta"],
    ),
    (
        "the recipe's path",
        "packs/zlib.toml",
        "recipe = \"recipes/pack.sh\"",
        "recipe = \"recipes/wheel.sh\"",
        &["//packs:zlib"],
    ),
    (
        "a frontend (wheels, repairs and tests run it; packs, images and runtimes do not)",
        "WORKSPACE.toml",
        "repair_tools = [\"//sources:auditwheel\"]\n",
        "repair_tools = [\"//sources:auditwheel\"]\nfrontend = { x86_64 = \"//sources:wheel\" }\n",
        &["//wheels:alpha", "//wheels:beta", "//repairs:beta"],
    ),
    (
        "a pack added through the catalog",
        "rules/wheels.toml",
        "# wheels for the engine tests",
        "[catalog]\nalpha = [\"//packs:zlib\"]",
        &["//wheels:alpha"],
    ),
];

/// (what, file, from, to): none of these may change any key.
const EXCLUDED: &[(&str, &str, &str, &str)] = &[
    (
        "a comment",
        "rules/wheels.toml",
        "# wheels for the engine tests",
        "# other words",
    ),
    (
        "a new comment line",
        "packs/zlib.toml",
        "[packs.zlib]",
        "# zlib\n[packs.zlib]",
    ),
    (
        "whitespace",
        "rules/wheels.toml",
        "version = \"1.0\"",
        "version   =   \"1.0\"   ",
    ),
    (
        "key order in a table",
        "rules/wheels.toml",
        "version = \"1.0\"\nsource = \"//sources:alpha-src\"",
        "source = \"//sources:alpha-src\"\nversion = \"1.0\"",
    ),
    (
        "the order of image packages",
        "runtimes/base.toml",
        "[\"python3\", \"gcc\"]",
        "[\"gcc\", \"python3\"]",
    ),
    (
        "a rule's timeout",
        "rules/wheels.toml",
        "version = \"1.0\"",
        "version = \"1.0\"\ntimeout = \"1h\"",
    ),
    (
        "sandbox limits",
        "WORKSPACE.toml",
        "[defaults]",
        "[sandbox]\ncpus = 3\nmemory = \"2g\"\ntimeout = \"9h\"\njobs = 7\n\n[defaults]",
    ),
    (
        "the store settings",
        "WORKSPACE.toml",
        "[defaults]",
        "[store]\nremote = \"oci://127.0.0.1:1/x\"\npush = true\n\n[defaults]",
    ),
    (
        "a source's upstream note",
        "rules/sources.toml",
        "path = \"vendor/alpha-1.0.tar.gz\"",
        "path = \"vendor/alpha-1.0.tar.gz\"\nupstream = \"https://example.invalid/alpha\"",
    ),
    (
        "the workspace name",
        "WORKSPACE.toml",
        "[workspace]\n",
        "[workspace]\nname = \"other\"\n",
    ),
];

#[test]
fn included_fields_change_exactly_the_keys_they_should() {
    for (what, file, from, to, expect) in INCLUDED {
        let ws = fake_workspace();
        let before = keys(&ws);
        ws.edit(file, from, to);
        let after = keys(&ws);
        let mut got = changed(&before, &after);
        got.sort();
        let mut want: Vec<String> = expect.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(
            got, want,
            "changing {what} should change exactly these keys"
        );
    }
}

/// The build sees the requirements a rule names sorted by project name,
/// so their order in the rule is not in the key.
#[test]
fn the_order_of_a_rules_build_requirements_is_not_keyed() {
    let ws = fake_workspace();
    ws.edit(
        "rules/wheels.toml",
        "env = { CFLAGS = \"-O2\" }",
        "env = { CFLAGS = \"-O2\" }\nbuild_requires = [\"//sources:setuptools\", \"//sources:wheel\"]",
    );
    let before = keys(&ws);
    ws.edit(
        "rules/wheels.toml",
        "[\"//sources:setuptools\", \"//sources:wheel\"]",
        "[\"//sources:wheel\", \"//sources:setuptools\"]",
    );
    assert_eq!(changed(&before, &keys(&ws)), Vec::<String>::new());
}

#[test]
fn excluded_things_change_no_key() {
    for (what, file, from, to) in EXCLUDED {
        let ws = fake_workspace();
        let before = keys(&ws);
        ws.edit(file, from, to);
        assert_eq!(
            changed(&before, &keys(&ws)),
            Vec::<String>::new(),
            "changing {what} must not change keys"
        );
    }
}

#[test]
fn a_source_pin_changes_its_key_and_its_dependents() {
    let ws = fake_workspace();
    let before = keys(&ws);
    let pin = common::sha256_hex(b"contents of vendor/alpha-1.0.tar.gz\n");
    ws.edit("rules/sources.toml", &pin, &"a".repeat(64));
    assert_eq!(
        changed(&before, &keys(&ws)),
        ["//sources:alpha-src", "//wheels:alpha"]
    );
}

#[test]
fn moving_a_target_to_another_file_changes_no_key() {
    let ws = fake_workspace();
    let before = keys(&ws);
    let text = ws.read("rules/wheels.toml");
    let at = text.find("[wheels.beta]").unwrap();
    ws.write("rules/wheels.toml", &text[..at]);
    ws.write("rules/zz/beta.toml", &text[at..]);
    assert_eq!(before, keys(&ws));
}

#[test]
fn a_dependency_output_changes_its_dependents_only() {
    let ws = fake_workspace();
    let before = keys(&ws);
    let after = keys_with(&ws, &["//packs:zlib"]);
    let mut got = changed(&before, &after);
    got.sort();
    assert_eq!(got, ["//packs:openssl", "//repairs:beta", "//wheels:beta"]);
    let after = keys_with(&ws, &["//images:base"]);
    assert_eq!(
        changed(&before, &after).len(),
        6,
        "everything built in the image"
    );
}

#[test]
fn the_host_environment_enters_no_key() {
    let ws = fake_workspace();
    ws.fake(&["build", "//wheels:...", "//repairs:..."]).ok();
    let hash = |env: &[(&str, &str)]| {
        let r = ws.fake_env(&["hash", "//..."], env);
        r.ok();
        r.stdout
    };
    let plain = hash(&[]);
    assert!(plain.contains("//wheels:alpha key="));
    let noisy = hash(&[
        ("CFLAGS", "-O0 -march=native"),
        ("SOURCE_DATE_EPOCH", "1"),
        ("PYTHONHASHSEED", "7"),
        ("LANG", "de_DE.UTF-8"),
        ("TZ", "Europe/Berlin"),
        ("PIP_INDEX_URL", "https://example.invalid/simple"),
        ("HOME", "/nonexistent"),
    ]);
    assert_eq!(plain, noisy);
}

#[test]
fn key_version_is_in_every_preimage() {
    let ws = fake_workspace();
    ws.fake(&["build", "//wheels:alpha"]).ok();
    let key = ws.key("//wheels:alpha");
    let pre: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            ws.store
                .join("preimages")
                .join(&key[..2])
                .join(format!("{key}.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(pre["key_version"], refine::key::KEY_VERSION);
    assert_eq!(pre["kind"], "wheel");
    assert_eq!(pre["env"]["CFLAGS"], "-O2");
    // The stored preimage hashes to its key.
    let p = refine::key::Preimage::from_json(&pre).unwrap();
    assert_eq!(p.key().0, key);
}

/// The key of `//images:bookworm` for these `--arch`/`--toolchain` flags.
fn bookworm_key(ws: &Ws, args: &[&str]) -> String {
    ws.key_with("//images:bookworm", |o| {
        for pair in args.chunks(2) {
            match pair {
                ["--arch", a] => o.arch = Some(a.to_string()),
                ["--toolchain", t] => o.toolchain = Some(t.to_string()),
                other => panic!("bookworm_key takes --arch and --toolchain: {other:?}"),
            }
        }
    })
}

#[test]
fn the_toolchain_changes_a_foreign_images_key_and_nothing_for_the_host() {
    let ws = common::shipped();
    let key = |args: &[&str]| bookworm_key(&ws, args);
    let cross = key(&["--arch", "s390x"]);
    assert_eq!(
        cross,
        key(&["--arch", "s390x", "--toolchain", "cross"]),
        "cross is the default"
    );
    assert_ne!(cross, key(&["--arch", "s390x", "--toolchain", "emulated"]));
    assert_eq!(
        key(&["--arch", "host", "--toolchain", "cross"]),
        key(&["--arch", "host", "--toolchain", "emulated"]),
        "the host's own builds have one toolchain"
    );
    // [platform] toolchain in WORKSPACE.toml, the same as the flag.
    ws.edit(
        "WORKSPACE.toml",
        "[platform]\n",
        "[platform]\ntoolchain = \"emulated\"\n",
    );
    assert_eq!(
        key(&["--arch", "s390x"]),
        key(&["--arch", "s390x", "--toolchain", "emulated"])
    );
    ws.edit(
        "WORKSPACE.toml",
        "toolchain = \"emulated\"",
        "toolchain = \"fast\"",
    );
    let bad = ws.run(&["hash", "//images:bookworm"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("unknown toolchain `fast`"),
        "{}",
        bad.stderr
    );
}

/// Edit a field of the hybrid image's rule (`from` → `to`): another
/// hybrid image, while the emulated image and the host's, which have no
/// cross part, keep their keys. Then `bad_from` → `bad_to` is refused with
/// `message` where it is written.
fn hybrid_only_field(from: &str, to: &str, bad_from: &str, bad_to: &str, message: &str) {
    let ws = common::shipped();
    let key = |args: &[&str]| bookworm_key(&ws, args);
    let (cross, emulated) = (
        key(&["--arch", "s390x"]),
        key(&["--arch", "s390x", "--toolchain", "emulated"]),
    );
    let host = key(&["--arch", "x86_64"]);
    ws.edit("runtimes/images.toml", from, to);
    assert_ne!(key(&["--arch", "s390x"]), cross, "{from} -> {to}");
    assert_eq!(
        key(&["--arch", "s390x", "--toolchain", "emulated"]),
        emulated
    );
    assert_eq!(key(&["--arch", "x86_64"]), host);
    ws.edit("runtimes/images.toml", bad_from, bad_to);
    let bad = ws.run(&["hash", "//images:bookworm"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains(message) && bad.stderr.contains("runtimes/images.toml:"),
        "{}",
        bad.stderr
    );
}

/// One program fewer that runs natively (perl, which only this image has
/// native): another hybrid image; a package with an architecture is
/// refused.
#[test]
fn the_native_programs_of_a_hybrid_image_are_in_its_key() {
    hybrid_only_field(
        "\"xz-utils\", \"perl-base\",\n]",
        "\"xz-utils\",\n]",
        "\"gzip\", \"xz-utils\",\n]",
        "\"gzip\", \"tar:amd64\",\n]",
        "`tar:amd64` in `native` names an architecture",
    );
}

/// The stand-ins are in the hybrid image's key (how it is made); a
/// malformed one is refused.
#[test]
fn the_stand_ins_of_a_hybrid_image_are_in_its_key() {
    hybrid_only_field(
        "\"dpkg:/usr/bin/update-alternatives\",\n    \"python3.11-minimal:/usr/bin/python3.11\",\n]\n# The host's programs the image keeps",
        "\"dpkg:/usr/bin/update-alternatives\",\n]\n# The host's programs the image keeps",
        "\"dpkg:/usr/bin/dpkg\", \"dpkg:/usr/bin/dpkg-deb\",",
        "\"dpkg:usr/bin/dpkg\", \"dpkg:/usr/bin/dpkg-deb\",",
        "`dpkg:usr/bin/dpkg` in `stand_in` is not PACKAGE:/PATH",
    );
}

/// The Debian suites a hybrid image's apt also reads (`cross.suites`, for
/// a package named `pkg/suite`) are in its key; a name that is not a
/// suite's (it goes into a shell hook on the host) is refused.
#[test]
fn the_suites_a_hybrid_image_reads_are_in_its_key() {
    hybrid_only_field(
        "cross.host = [\"python3.11-minimal:/usr/bin/python3.11\"]",
        "cross.host = [\"python3.11-minimal:/usr/bin/python3.11\"]\ncross.suites = [\"trixie\"]",
        "cross.suites = [\"trixie\"]",
        "cross.suites = [\"trixie$(id)\"]",
        "`trixie$(id)` in `suites` is not a Debian suite's name",
    );
}

/// The host's programs a hybrid image keeps (its Python, for the wheels'
/// hooks) are in its key; a malformed one is refused.
#[test]
fn the_host_programs_a_hybrid_image_keeps_are_in_its_key() {
    hybrid_only_field(
        "cross.host = [\"python3.11-minimal:/usr/bin/python3.11\"]",
        "cross.host = []",
        "cross.host = []",
        "cross.host = [\"python3.11\"]",
        "`python3.11` in `host` is not PACKAGE:/PATH",
    );
}

/// Which Python runs a foreign wheel's hooks is in the wheel's key (the
/// flag, [platform] and the rule's own say the same), and in nothing else:
/// not the packs', not the image's, not the host's own wheels'.
#[test]
fn the_python_a_foreign_wheels_hooks_run_in_is_in_its_key() {
    let ws = common::shipped();
    // Keys over the derivations, each dependency's output standing in as
    // the digest of its label (nothing needs building).
    let key = |label: &str, arch: &str, py: Option<&str>| {
        derivation_with(&ws, label, |o| {
            o.arch = Some(arch.into());
            o.frontend_python = py.map(String::from);
        })
        .preimage(&|dep: &Label| Some(refine::key::sha256_bytes(dep.to_string().as_bytes())))
        .key()
        .0
    };
    let wheel = "//wheels:markupsafe";
    let host = key(wheel, "s390x", None);
    assert_eq!(
        host,
        key(wheel, "s390x", Some("host")),
        "host is the default"
    );
    let target = key(wheel, "s390x", Some("target"));
    assert_ne!(host, target);
    for other in ["//packs:libyaml", "//images:bookworm", "//runtimes:system"] {
        assert_eq!(
            key(other, "s390x", None),
            key(other, "s390x", Some("target")),
            "{other}"
        );
    }
    assert_eq!(
        key(wheel, "x86_64", None),
        key(wheel, "x86_64", Some("target")),
        "the host's own wheels have one Python"
    );
    // The rule's own choice, and [platform]'s.
    ws.edit(
        "rules/wheels.toml",
        "package = \"MarkupSafe\"\n",
        "package = \"MarkupSafe\"\nfrontend_python = \"target\"\n",
    );
    assert_eq!(key(wheel, "s390x", None), target);
    ws.edit(
        "rules/wheels.toml",
        "frontend_python = \"target\"\n",
        "frontend_python = \"emulated\"\n",
    );
    let bad = ws.run(&["--arch", "s390x", "hash", wheel]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("unknown frontend_python `emulated`")
            && bad.stderr.contains("rules/wheels.toml:"),
        "{}",
        bad.stderr
    );
    ws.edit("rules/wheels.toml", "frontend_python = \"emulated\"\n", "");
    ws.edit(
        "WORKSPACE.toml",
        "[platform]\n",
        "[platform]\nfrontend_python = \"target\"\n",
    );
    assert_eq!(key(wheel, "s390x", None), target);
    assert_eq!(key(wheel, "s390x", Some("host")), host, "the flag wins");
    let bad = ws.run(&[
        "--arch",
        "s390x",
        "--frontend-python",
        "fast",
        "hash",
        wheel,
    ]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr
            .contains("--frontend-python: unknown value `fast`"),
        "{}",
        bad.stderr
    );
}

/// A build keys the one frontend it runs: another machine's changes nothing,
/// its own (a new pin) changes every wheel and repair.
#[test]
fn only_the_frontend_a_build_runs_is_in_its_key() {
    let ws = fake_workspace();
    let add = |entries: &str| {
        let text = ws.read("WORKSPACE.toml");
        let text = match text.find("frontend = ") {
            Some(at) => {
                let end = at + text[at..].find('\n').unwrap();
                format!("{}{}", &text[..at], &text[end + 1..])
            }
            None => text,
        };
        ws.write(
            "WORKSPACE.toml",
            &text.replace(
                "[defaults]\n",
                &format!("[defaults]\nfrontend = {{ {entries} }}\n"),
            ),
        );
    };
    add("x86_64 = \"//sources:wheel\"");
    let before = keys(&ws);
    add("x86_64 = \"//sources:wheel\", s390x = \"//sources:setuptools\"");
    assert_eq!(changed(&before, &keys(&ws)), Vec::<String>::new());
    add("x86_64 = \"//sources:setuptools\", s390x = \"//sources:setuptools\"");
    let mut got = changed(&before, &keys(&ws));
    got.sort();
    assert_eq!(got, ["//repairs:beta", "//wheels:alpha", "//wheels:beta"]);
}

/// Which uv a build runs: the one whose programs run natively in its image.
#[test]
fn a_hybrid_build_runs_the_hosts_frontend_an_emulated_one_the_targets() {
    let ws = common::shipped();
    let frontend = |arch: &str, toolchain: &str, label: &str| -> String {
        let s = Session::load(&GlobalOpts {
            workspace: Some(ws.root().to_path_buf()),
            store: Some(ws.store.clone()),
            arch: Some(arch.into()),
            toolchain: Some(toolchain.into()),
            ..GlobalOpts::default()
        })
        .unwrap_or_else(|e| panic!("{}", e.message));
        let l: Label = label.parse().unwrap();
        let g = s.graph(std::slice::from_ref(&l)).unwrap();
        let d = &g.get(&l).unwrap().derivation();
        d.inputs
            .frontend
            .as_ref()
            .map(|l| l.to_string())
            .unwrap_or_default()
    };
    let host = refine::platform::Arch::host();
    for label in ["//wheels:markupsafe", "//repairs:pyyaml"] {
        assert_eq!(
            frontend("s390x", "cross", label),
            format!("//sources:uv-{host}")
        );
        assert_eq!(frontend("s390x", "emulated", label), "//sources:uv-s390x");
        assert_eq!(
            frontend("host", "cross", label),
            format!("//sources:uv-{host}")
        );
    }
    // Packs and images run no frontend.
    assert_eq!(frontend("s390x", "cross", "//packs:libyaml"), "");
    // A machine the table leaves out is an error where the table is.
    ws.edit("WORKSPACE.toml", "s390x = \"//sources:uv-s390x\", ", "");
    let bad = ws.run(&[
        "--arch",
        "s390x",
        "--toolchain",
        "emulated",
        "hash",
        "//wheels:six",
    ]);
    assert_eq!(bad.code, 2, "{}", bad.all());
    assert!(
        bad.stderr
            .contains("[defaults] frontend has no wheel for s390x")
            && bad.stderr.contains("WORKSPACE.toml:")
            && bad.stderr.contains("add `s390x = \"//sources:uv-s390x\"`"),
        "{}",
        bad.stderr
    );
    // The hybrid build still has its (the host's) frontend.
    ws.run(&["--arch", "s390x", "hash", "//wheels:six"]).ok();
}

/// The derivation of `label` in `ws`, or the rendered errors.
fn derivation_of(ws: &Ws, label: &str) -> refine::eval::Derivation {
    derivation_with(ws, label, |_| {})
}

/// The same, with the flags `change` sets.
fn derivation_with(
    ws: &Ws,
    label: &str,
    change: impl FnOnce(&mut GlobalOpts),
) -> refine::eval::Derivation {
    let mut o = GlobalOpts {
        workspace: Some(ws.root().to_path_buf()),
        store: Some(ws.store.clone()),
        ..GlobalOpts::default()
    };
    change(&mut o);
    let s = Session::load(&o)
        .unwrap_or_else(|e| panic!("{}\n{}", e.message, e.rendered.unwrap_or_default()));
    let l: Label = label.parse().unwrap();
    let g = s
        .graph(std::slice::from_ref(&l))
        .unwrap_or_else(|e| panic!("{}\n{}", e.message, e.rendered.unwrap_or_default()));
    (**g.get(&l).unwrap().derivation()).clone()
}

/// What compiles in the engine tests' workspace: what a floor reaches.
const FLOORED: [&str; 4] = [
    "//packs:openssl",
    "//packs:zlib",
    "//wheels:alpha",
    "//wheels:beta",
];

/// The engine tests' image says it is bookworm's glibc.
fn declare_glibc(ws: &Ws) {
    ws.edit(
        "runtimes/base.toml",
        "suite = \"bookworm\"\n",
        "suite = \"bookworm\"\nglibc = \"2.36\"\n",
    );
}

/// A floor below the image's declared glibc brings Zig and its target into
/// the keys of what compiles (wheels and packs), and nothing else's; a new
/// Zig pin changes exactly those; a rule at its image's own glibc has
/// neither.
#[test]
fn a_floor_below_the_images_glibc_keys_zig_and_its_target() {
    let ws = fake_workspace();
    let host = refine::platform::Arch::host();
    ws.edit(
        "WORKSPACE.toml",
        "[defaults]\n",
        &format!("[defaults]\nzig = {{ {host} = \"//sources:wheel\" }}\n"),
    );
    let before = keys(&ws);
    // The image says nothing of its glibc: no floor to meet below it.
    assert_eq!(derivation_of(&ws, "//wheels:alpha").cc_target, None);
    declare_glibc(&ws);
    let floored = keys(&ws);
    let mut got = changed(&before, &floored);
    got.sort();
    assert_eq!(got, FLOORED);
    for label in ["//wheels:alpha", "//packs:zlib"] {
        let d = derivation_of(&ws, label);
        assert_eq!(
            d.cc_target.as_deref(),
            Some("x86_64-linux-gnu.2.17"),
            "{label}"
        );
        assert_eq!(
            d.inputs.zig.as_ref().map(|l| l.to_string()).as_deref(),
            Some("//sources:wheel"),
            "{label}"
        );
    }
    for label in ["//repairs:beta", "//images:base", "//runtimes:system"] {
        let d = derivation_of(&ws, label);
        assert_eq!((d.cc_target, d.inputs.zig), (None, None), "{label}");
    }
    // The repair checks the wheel's floor.
    let rp = derivation_of(&ws, "//repairs:beta");
    assert_eq!(rp.platform.policy, "manylinux2014");
    // Another Zig: exactly the floored nodes.
    ws.edit(
        "WORKSPACE.toml",
        &format!("{host} = \"//sources:wheel\""),
        &format!("{host} = \"//sources:setuptools\""),
    );
    let mut got = changed(&floored, &keys(&ws));
    got.sort();
    assert_eq!(got, FLOORED);
    // A rule of its own floor at the image's glibc compiles with the
    // image's compiler; its repair checks its own floor.
    ws.edit(
        "rules/wheels.toml",
        "version = \"2.0\"\n",
        "version = \"2.0\"\npolicy = \"manylinux_2_36\"\n",
    );
    let beta = derivation_of(&ws, "//wheels:beta");
    assert_eq!((beta.cc_target, beta.inputs.zig), (None, None));
    let rp = derivation_of(&ws, "//repairs:beta");
    assert_eq!(rp.platform.platform_tag(), "manylinux_2_36_x86_64");
    // And the --platform flag moves every other floor.
    let s = Session::load(&GlobalOpts {
        workspace: Some(ws.root().to_path_buf()),
        store: Some(ws.store.clone()),
        policy: Some("manylinux_2_28".into()),
        ..GlobalOpts::default()
    })
    .unwrap_or_else(|e| panic!("{}", e.message));
    let l: Label = "//wheels:alpha".parse().unwrap();
    let g = s.graph(std::slice::from_ref(&l)).unwrap();
    let d = &g.get(&l).unwrap().derivation();
    assert_eq!(d.cc_target.as_deref(), Some("x86_64-linux-gnu.2.28"));
    assert_eq!(d.platform.platform_tag(), "manylinux_2_28_x86_64");
}

/// Policies and glibc versions that mean nothing are errors where they are
/// written; a floor no Zig can meet names the fix.
#[test]
fn floors_that_cannot_be_met_or_read_are_located_errors() {
    let ws = fake_workspace();
    declare_glibc(&ws);
    // No Zig for this machine.
    let r = ws.run(&["hash", "//wheels:alpha"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr
            .contains("//wheels:alpha must meet manylinux2014 (glibc 2.17)")
            && r.stderr.contains("rules/wheels.toml:")
            && r.stderr.contains("add `zig = {"),
        "{}",
        r.stderr
    );
    // Nonsense, each where it is written: the workspace's platform first
    // (nothing else is read without it), then the rules'.
    ws.edit(
        "WORKSPACE.toml",
        "python = \"3.11\"\n",
        "python = \"3.11\"\npolicy = \"manylinux_2_17_s390x\"\n",
    );
    let r = ws.run(&["hash", "//wheels:alpha"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains(
            "`manylinux_2_17_s390x` is not a manylinux policy (the architecture comes from `arch`"
        ) && r.stderr.contains("WORKSPACE.toml:8:"),
        "{}",
        r.stderr
    );
    ws.edit("WORKSPACE.toml", "manylinux_2_17_s390x", "manylinux_2_28");
    ws.edit(
        "runtimes/base.toml",
        "glibc = \"2.36\"",
        "glibc = \"bookworm\"",
    );
    ws.edit(
        "rules/wheels.toml",
        "version = \"2.0\"\n",
        "version = \"2.0\"\npolicy = \"centos7\"\n",
    );
    let r = ws.run(&["hash", "//wheels:alpha", "//wheels:beta"]);
    assert_eq!(r.code, 2, "{}", r.all());
    for (what, at) in [
        ("`bookworm` is not a glibc version", "runtimes/base.toml:3:"),
        (
            "`centos7` is not a manylinux policy",
            "rules/wheels.toml:9:",
        ),
    ] {
        assert!(r.stderr.contains(what), "{what}: {}", r.stderr);
        assert!(r.stderr.contains(at), "{at}: {}", r.stderr);
    }
    // The flag, by name.
    let r = ws.run(&["--platform", "manylinux_2_x", "hash", "//wheels:alpha"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("--platform: `manylinux_2_x`"),
        "{}",
        r.stderr
    );
}
