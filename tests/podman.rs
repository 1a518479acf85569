//! The shipped workspace, for real: podman containers, a builder image made
//! with mmdebstrap, sdists fetched with pip's index configuration. Native
//! (host architecture) builds; s390x is in tests/s390x.rs.
//!
//! These tests need podman, runc, mmdebstrap and the network to the package
//! registries; `bash .ci/setup` installs and configures them. They do not
//! skip when a tool is missing: they fail.

mod common;
use common::{Run, Ws, sha256_hex, shared_store, shipped};
use std::path::{Path, PathBuf};

fn host(ws: &Ws, store: &Path, args: &[&str]) -> Run {
    let mut c = ws.cmd_in(store);
    c.args(["--arch", "host"]).args(args);
    c.output().unwrap().into()
}

fn wheel_sha(run: &Run, label: &str) -> (String, String) {
    let m = run
        .events()
        .into_iter()
        .find(|e| e["event"] == "summary")
        .expect("summary");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(m["manifest"].as_str().unwrap()).unwrap())
            .unwrap();
    let w = manifest["wheels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["label"] == label)
        .unwrap_or_else(|| panic!("{label} not in {manifest:#}"));
    (
        w["wheel"].as_str().unwrap().to_string(),
        w["sha256"].as_str().unwrap().to_string(),
    )
}

const HOST_WHEELS: &[&str] = &["build", "--json", "//wheels:markupsafe", "//wheels:six"];

#[test]
fn markupsafe_and_six_build_then_hit_and_rebuild_exactly_what_changed() {
    let ws = shipped();
    let store = shared_store();
    let first = host(&ws, store, HOST_WHEELS);
    first.ok();
    let v = first.verdicts();
    assert_eq!(v["//wheels:markupsafe"], "built", "{v:?}");
    assert_eq!(v["//wheels:six"], "built");

    let (name, sha) = wheel_sha(&first, "//wheels:markupsafe");
    let arch = std::env::consts::ARCH;
    assert_eq!(
        name,
        format!("MarkupSafe-2.1.5-cp311-cp311-linux_{arch}.whl")
    );
    let (six, _) = wheel_sha(&first, "//wheels:six");
    assert_eq!(six, "six-1.16.0-py2.py3-none-any.whl");
    let dist = ws.root().join("dist");
    assert_eq!(sha256_hex(&std::fs::read(dist.join(&name)).unwrap()), sha);

    // The C extension was really compiled, for this machine.
    let files = refine::wheel::read_wheel(&dist.join(&name)).unwrap();
    let so = files
        .iter()
        .find(|f| f.name.starts_with("markupsafe/_speedups") && f.name.ends_with(".so"))
        .expect("compiled extension");
    let machine = refine::platform::Arch::host().elf_machine();
    assert_eq!(refine::wheel::elf_machine(&so.data), Some(machine));
    assert!(
        refine::wheel::check_record(&dist.join(&name))
            .unwrap()
            .is_empty()
    );

    // Built, then all hits.
    let second = host(&ws, store, HOST_WHEELS);
    second.ok();
    assert!(second.with("built").is_empty(), "{:?}", second.verdicts());
    assert_eq!(second.verdicts()["//wheels:markupsafe"], "hit:local");

    // An env change rebuilds that wheel and nothing else.
    ws.edit(
        "rules/wheels.toml",
        "\nrepair = true\n",
        "\nrepair = true\nenv = { MARKUPSAFE_EXTRA = \"1\" }\n",
    );
    let third = host(&ws, store, HOST_WHEELS);
    third.ok();
    assert_eq!(
        third.with("built"),
        ["//wheels:markupsafe"],
        "{:?}",
        third.verdicts()
    );

    // A comment rebuilds nothing.
    ws.edit("rules/wheels.toml", "# Tier 0", "# Tier zero");
    let fourth = host(&ws, store, HOST_WHEELS);
    fourth.ok();
    assert!(fourth.with("built").is_empty(), "{:?}", fourth.verdicts());

    // The wheel works: install it in a clean container and use the C code.
    let image = first
        .events()
        .into_iter()
        .find(|e| e["label"] == "//images:bookworm" && e["event"] == "finished")
        .unwrap()["output"]
        .as_str()
        .unwrap()
        .to_string();
    let tag = format!("localhost/refine-image/bookworm:{}", &image[7..39]);
    let out = std::process::Command::new("podman")
        .args(["run", "--rm", "--network=none", "-v"])
        .arg(format!("{}:/dist:ro", dist.display()))
        .arg(&tag)
        .args([
            "sh",
            "-c",
            "python3 -m venv /tmp/v && /tmp/v/bin/pip install -q --no-index /dist/MarkupSafe-*.whl && \
             /tmp/v/bin/python -c 'from markupsafe import _speedups, escape; print(escape(\"<a>\"))'",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "&lt;a&gt;");
}

#[test]
fn two_clean_stores_give_the_same_wheel() {
    let a = shipped();
    let b = shipped();
    let (sa, sb) = (a.root().join("store-a"), b.root().join("store-b"));
    let ra = host(&a, &sa, &["build", "--json", "//wheels:markupsafe"]);
    ra.ok();
    let rb = host(&b, &sb, &["build", "--json", "//wheels:markupsafe"]);
    rb.ok();
    assert_eq!(ra.verdicts()["//images:bookworm"], "built");
    assert_eq!(rb.verdicts()["//images:bookworm"], "built");
    assert_eq!(
        wheel_sha(&ra, "//wheels:markupsafe"),
        wheel_sha(&rb, "//wheels:markupsafe")
    );
    // mmdebstrap with SOURCE_DATE_EPOCH: the same image, bit for bit.
    let out = |r: &Run, l: &str| {
        r.events()
            .into_iter()
            .find(|e| e["label"] == l && e["event"] == "finished")
            .unwrap()["output"]
            .clone()
    };
    assert_eq!(out(&ra, "//images:bookworm"), out(&rb, "//images:bookworm"));
}

#[test]
fn a_wrong_pin_shows_both_digests() {
    let ws = shipped();
    let good = "1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926";
    let bad = "0".repeat(64);
    ws.edit("rules/wheels.toml", good, &bad);
    let store = tempfile::tempdir().unwrap();
    let r = host(&ws, store.path(), &["build", "//sources:wheel-six"]);
    assert_eq!(r.code, 2, "a wrong pin is the rule's problem: {}", r.all());
    assert!(r.stderr.contains(&bad), "{}", r.stderr);
    assert!(r.stderr.contains("hint: "), "{}", r.stderr);
    // pip's index lists the real file with its digest: the message names it.
    assert!(
        r.stderr.contains(good),
        "the real digest is shown: {}",
        r.stderr
    );
    // Nothing unverified entered the store.
    let cas: Vec<PathBuf> = common::files_under(&store.path().join("cas"));
    assert!(cas.is_empty(), "{cas:?}");
}

#[test]
fn a_failing_recipe_shows_its_last_lines_and_log() {
    let ws = shipped();
    ws.write(
        "recipes/broken.sh",
        "#!/bin/sh\necho 'compiling things'\necho 'fatal: the frobnicator is missing' >&2\nexit 3\n",
    );
    ws.edit(
        "rules/wheels.toml",
        "[wheels.six]\n",
        "[wheels.six]\nrecipe = \"recipes/broken.sh\"\n",
    );
    let r = host(&ws, shared_store(), &["build", "//wheels:six"]);
    assert_eq!(r.code, 1, "a recipe failure is a build error: {}", r.all());
    assert!(
        r.stderr.contains("FAILED //wheels:six (build error)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("(exit status 3)"), "{}", r.stderr);
    assert!(
        r.stderr.contains("| fatal: the frobnicator is missing"),
        "{}",
        r.stderr
    );
    let log = r.log_path();
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("compiling things")
    );
    // `refine log` finds the same log.
    let l = host(&ws, shared_store(), &["log", "--path", "//wheels:six"]);
    assert_eq!(l.stdout.trim(), log);
}

/// Build requirements come only from the rule: the image's Python carries
/// Debian's setuptools, and a wheel that declares none must not find it.
#[test]
fn undeclared_build_requirements_are_not_there() {
    let ws = shipped();
    ws.edit(
        "rules/wheels.toml",
        "[wheels.six]\n",
        "[wheels.six]\ndefault_build_requires = false\n",
    );
    let r = host(&ws, shared_store(), &["build", "//wheels:six"]);
    assert_eq!(r.code, 1, "{}", r.all());
    // The log of this run (the store is shared with other tests of six).
    let log = r.log_path();
    let log = std::fs::read_to_string(log).unwrap();
    assert!(
        log.contains(
            "Because setuptools was not found in the provided package locations and you require setuptools"
        ),
        "uv looked for setuptools among the declared wheels only:\n{log}"
    );
    // The hint catalog reads uv's words: what was asked for, and the edit.
    assert!(
        r.stderr.contains("the build asked for setuptools>=40.8.0")
            && r.stderr
                .contains("add it to `build_requires` of [wheels.six]"),
        "{}",
        r.stderr
    );
}

/// needs_six-1.0.tar.gz, an sdist of the old kind (a setup.py, no
/// pyproject.toml) whose build imports six and declares it nowhere; its
/// metadata is read without it (as often: the import is in a build
/// command).
fn needs_six_sdist() -> Vec<u8> {
    common::sdist(&[
        (
            "needs_six-1.0/setup.py",
            "from setuptools import setup\nfrom setuptools.command.build_py import build_py\n\n\n\
             class Build(build_py):\n    def run(self):\n        import six  # declared nowhere\n\n        super().run()\n\n\n\
             setup(name='needs_six', version='1.0', py_modules=['needs_six'], cmdclass={'build_py': Build})\n",
        ),
        ("needs_six-1.0/needs_six.py", "ANSWER = 42\n"),
        (
            "needs_six-1.0/PKG-INFO",
            "Metadata-Version: 2.1\nName: needs_six\nVersion: 1.0\n",
        ),
    ])
}

/// A workspace made by `refine init` whose requirements file names one
/// sdist, which pip finds in a find-links directory (everything else on
/// its index), imported.
struct Linked {
    dir: tempfile::TempDir,
    links: PathBuf,
    ws: PathBuf,
}

impl Linked {
    fn imported(file: &str, sdist: Vec<u8>, requirement: &str) -> Linked {
        let dir = tempfile::tempdir().unwrap();
        let links = dir.path().join("links");
        std::fs::create_dir_all(&links).unwrap();
        std::fs::write(links.join(file), sdist).unwrap();
        let l = Linked {
            ws: dir.path().join("ws"),
            links,
            dir,
        };
        l.run(l.dir.path(), &["init", "ws"]).ok();
        std::fs::write(l.ws.join("requirements.txt"), format!("{requirement}\n")).unwrap();
        l.run(&l.ws, &["import", "requirements.txt"]).ok();
        l
    }

    fn run(&self, dir: &Path, args: &[&str]) -> Run {
        std::process::Command::new(env!("CARGO_BIN_EXE_refine"))
            .current_dir(dir)
            .arg("--store")
            .arg(shared_store())
            .env_remove("REFINE_EXECUTOR")
            .env_remove("REFINE_BUILTIN_BASE")
            .env("PIP_FIND_LINKS", &self.links)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
            .into()
    }

    /// `build --auto-apply` of the set, which passes after one round of
    /// fixes.
    fn auto_apply_in_one_round(&self) -> Run {
        let r = self.run(
            &self.ws,
            &[
                "--arch",
                "host",
                "build",
                "--auto-apply",
                "//sets:requirements",
            ],
        );
        assert_eq!(r.code, 0, "{}", r.all());
        assert!(
            r.stderr.contains("building again (round 1 of at most 3)")
                && !r.stderr.contains("round 2"),
            "one round: {}",
            r.stderr
        );
        r
    }
}

/// The same sdist, imported from a requirements file (pip finds it in a
/// find-links directory, everything else on its index): the build fails
/// on the undeclared import, `--auto-apply` records six as a build
/// requirement of the import, and the rebuild passes in one round.
#[test]
fn auto_apply_installs_an_undeclared_build_requirement_in_one_round() {
    let l = Linked::imported("needs_six-1.0.tar.gz", needs_six_sdist(), "needs-six==1.0");
    let ws = &l.ws;
    let r = l.auto_apply_in_one_round();
    assert!(
        r.stderr
            .contains("auto-apply: //wheels:needs-six: the build asked for six"),
        "{}",
        r.stderr
    );
    let text = std::fs::read_to_string(ws.join("rules/imported/requirements.toml")).unwrap();
    assert!(
        text.contains("[[import.fixes]]") && text.contains("build_requires = [\"six\"]"),
        "{text}"
    );
    // The history keeps the fix and what came of it (the dashboard's
    // target page shows the same rows).
    let (h, _) = refine::history::History::open(shared_store()).unwrap();
    let fixes = h.fixes("//wheels:needs-six", 10).unwrap();
    assert_eq!(fixes.len(), 1, "{fixes:?}");
    assert_eq!(fixes[0].edit, "build_requires += six");
    assert_eq!(fixes[0].outcome, "helped");
    assert!(fixes[0].outcome_run > Some(fixes[0].run), "{fixes:?}");
}

/// needs_fortran-1.0.tar.gz: its build compiles a Fortran file with
/// gfortran (through the shell, as build scripts do), which the everyday
/// image does not have.
fn needs_fortran_sdist() -> Vec<u8> {
    common::sdist(&[
        (
            "needs_fortran-1.0/setup.py",
            "import subprocess\nfrom setuptools import setup\nfrom setuptools.command.build_py import build_py\n\n\n\
             class Build(build_py):\n    def run(self):\n        subprocess.check_call('gfortran -c answer.f90 -o answer.o', shell=True)\n        super().run()\n\n\n\
             setup(name='needs_fortran', version='1.0', py_modules=['needs_fortran'], cmdclass={'build_py': Build})\n",
        ),
        ("needs_fortran-1.0/needs_fortran.py", "ANSWER = 42\n"),
        (
            "needs_fortran-1.0/answer.f90",
            "integer function answer()\n  answer = 42\nend function answer\n",
        ),
        (
            "needs_fortran-1.0/PKG-INFO",
            "Metadata-Version: 2.1\nName: needs_fortran\nVersion: 1.0\n",
        ),
    ])
}

/// An imported package that compiles Fortran: the build in the everyday
/// image fails (no gfortran), the hint catalog names the scientific image,
/// and `--auto-apply` moves the wheel there (`image` and `runtime` in
/// `[[import.fixes]]`): the rebuild passes in one round, and the history
/// says the fix helped.
#[test]
fn auto_apply_moves_a_fortran_build_to_the_image_with_gfortran() {
    let l = Linked::imported(
        "needs_fortran-1.0.tar.gz",
        needs_fortran_sdist(),
        "needs-fortran==1.0",
    );
    let ws = &l.ws;
    let r = l.auto_apply_in_one_round();
    assert!(
        r.stderr.contains(
            "auto-apply: //wheels:needs-fortran: this package compiles Fortran: build it in //images:bookworm-sci"
        ),
        "{}",
        r.stderr
    );
    let text = std::fs::read_to_string(ws.join("rules/imported/requirements.toml")).unwrap();
    let rule = &text[text.find("[wheels.needs-fortran]").expect(&text)..];
    assert!(
        rule.contains("image = \"//images:bookworm-sci\"\nruntime = \"//runtimes:system-sci\""),
        "{text}"
    );
    let fixes = &text[text.find("[[import.fixes]]").expect(&text)..];
    assert!(
        fixes.contains("image = \"//images:bookworm-sci\""),
        "{text}"
    );
    // (The build script's gfortran call fails the build without it: the
    // wheel built, so it ran.)
    let (h, _) = refine::history::History::open(shared_store()).unwrap();
    let fixes = h.fixes("//wheels:needs-fortran", 10).unwrap();
    assert_eq!(fixes.len(), 1, "{fixes:?}");
    assert_eq!(
        fixes[0].edit,
        "image = //images:bookworm-sci; runtime = //runtimes:system-sci"
    );
    assert_eq!(fixes[0].outcome, "helped");
}

/// An sdist of the old kind (a setup.py, no pyproject.toml) whose build
/// script imports a module it does not declare. Offered as a wheel in
/// the rule's `build_requires`, the module is now installed: the build
/// fails without it (and the hint catalog names it) and passes with it.
#[test]
fn a_build_requirement_the_rule_names_is_installed_though_the_sdist_does_not_declare_it() {
    let ws = shipped();
    // Its own six (an env of its own, so a key of its own): other tests
    // of the shared store expect to build the shipped six themselves.
    ws.edit(
        "rules/wheels.toml",
        "[wheels.six]\n",
        "[wheels.six]\nenv = { NEEDS_SIX_TEST = \"1\" }\n",
    );
    let sdist = needs_six_sdist();
    std::fs::create_dir_all(ws.root().join("vendor")).unwrap();
    std::fs::write(ws.root().join("vendor/needs_six-1.0.tar.gz"), &sdist).unwrap();
    let rule = |build_requires: &str| {
        format!(
            "[sources.needs-six]\npath = \"vendor/needs_six-1.0.tar.gz\"\nsha256 = \"{}\"\n\n\
             [wheels.needs-six]\npackage = \"needs_six\"\nsource = \"//sources:needs-six\"\n{build_requires}",
            sha256_hex(&sdist)
        )
    };
    ws.write("rules/needs.toml", &rule(""));
    let r = host(&ws, shared_store(), &["build", "//wheels:needs-six"]);
    assert_eq!(r.code, 1, "{}", r.all());
    let log = std::fs::read_to_string(r.log_path()).unwrap();
    assert!(
        log.contains("ModuleNotFoundError: No module named 'six'"),
        "{log}"
    );
    assert!(
        r.stderr
            .contains("the build imported six, and none of its build requirements installs it"),
        "{}",
        r.stderr
    );

    ws.write(
        "rules/needs.toml",
        &rule("build_requires = [\"//wheels:six\"]\n"),
    );
    let r = host(
        &ws,
        shared_store(),
        &["build", "--json", "//wheels:needs-six"],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.verdicts()["//wheels:needs-six"], "built", "{}", r.stdout);
    let (name, _) = wheel_sha(&r, "//wheels:needs-six");
    assert_eq!(name, "needs_six-1.0-py3-none-any.whl");
    let l = host(
        &ws,
        shared_store(),
        &["log", "--path", "//wheels:needs-six"],
    );
    let log = std::fs::read_to_string(l.stdout.trim()).unwrap();
    assert!(
        log.contains("build requirements the rule names, added to the project's: six"),
        "{log}"
    );
}

/// uses_libev-1.0.tar.gz: a C extension that includes ev.h and links
/// libev, which no pack of refine's provides.
fn uses_libev_sdist() -> Vec<u8> {
    common::sdist(&[
        (
            "uses_libev-1.0/setup.py",
            "from setuptools import Extension, setup\n\n\
             setup(name='uses_libev', version='1.0',\n      \
             ext_modules=[Extension('uses_libev', ['uses_libev.c'], libraries=['ev'])])\n",
        ),
        (
            "uses_libev-1.0/uses_libev.c",
            "#include <Python.h>\n#include <ev.h>\n\n\
             static PyObject *version(PyObject *self, PyObject *args) {\n    \
             return Py_BuildValue(\"(ii)\", ev_version_major(), ev_version_minor());\n}\n\n\
             static PyMethodDef methods[] = {{\"version\", version, METH_NOARGS, NULL}, {NULL}};\n\
             static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, \"uses_libev\", NULL, -1, methods};\n\
             PyMODINIT_FUNC PyInit_uses_libev(void) { return PyModule_Create(&module); }\n",
        ),
        (
            "uses_libev-1.0/PKG-INFO",
            "Metadata-Version: 2.1\nName: uses_libev\nVersion: 1.0\n",
        ),
    ])
}

/// Packs on demand: a wheel that needs a C library the catalog lacks
/// (libev) fails with a hint naming Debian's source package and the exact
/// `refine pack new` command; that command writes a pack rule and recipe
/// of the usual shape from Debian's source (apt picks the version), which
/// builds; the hint catalog then knows the header, and with the pack the
/// wheel builds and its repair grafts the library.
#[test]
fn a_missing_c_library_becomes_a_pack_of_ones_own() {
    let d = tempfile::tempdir().unwrap();
    let run = |dir: &Path, args: &[&str]| -> Run { common::refine_in(dir, shared_store(), args) };
    run(d.path(), &["init", "ws"]).ok();
    let ws = d.path().join("ws");
    let sdist = uses_libev_sdist();
    std::fs::create_dir_all(ws.join("vendor")).unwrap();
    std::fs::write(ws.join("vendor/uses_libev-1.0.tar.gz"), &sdist).unwrap();
    let rule = |packs: &str| {
        format!(
            "[sources.uses-libev]\npath = \"vendor/uses_libev-1.0.tar.gz\"\nsha256 = \"{}\"\n\n\
             [wheels.uses-libev]\npackage = \"uses_libev\"\nsource = \"//sources:uses-libev\"\nrepair = true\n{packs}",
            sha256_hex(&sdist)
        )
    };
    std::fs::write(ws.join("rules/libev.toml"), rule("")).unwrap();
    let r = run(&ws, &["--arch", "host", "build", "//wheels:uses-libev"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains(
            "the build did not find `ev.h`: Debian's libev-dev (source package libev) has it"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("`refine pack new libev --debian libev --header ev.h`"),
        "{}",
        r.stderr
    );

    // The command the hint gives.
    let p = run(
        &ws,
        &[
            "pack", "new", "libev", "--debian", "libev", "--header", "ev.h",
        ],
    );
    p.ok();
    assert!(p.stderr.contains("built with autotools"), "{}", p.stderr);
    let toml = std::fs::read_to_string(ws.join("packs/libev.toml")).unwrap();
    assert!(
        toml.contains("source = { debian = \"libev=")
            && toml.contains("\"ev.h\" = \"//packs:libev\""),
        "{toml}"
    );
    let recipe = std::fs::read_to_string(ws.join("recipes/packs/libev.sh")).unwrap();
    assert!(recipe.contains("\npack_autoconf\n"), "{recipe}");
    // Never over what is there.
    let again = run(&ws, &["pack", "new", "libev", "--debian", "libev"]);
    assert_eq!(again.code, 2, "{}", again.all());
    assert!(
        again
            .stderr
            .contains("//packs:libev is already declared (packs/libev.toml:"),
        "{}",
        again.stderr
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("packs/libev.toml")).unwrap(),
        toml
    );
    let zlib = run(&ws, &["pack", "new", "zlib", "--debian", "zlib"]);
    assert!(
        zlib.stderr.contains("is one of refine's built-in packs"),
        "{}",
        zlib.stderr
    );
    assert!(!ws.join("packs/zlib.toml").exists());

    // The catalog now knows the header: the hint names the pack.
    let r = run(&ws, &["--arch", "host", "build", "//wheels:uses-libev"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains("the build did not find `ev.h`: //packs:libev provides it"),
        "{}",
        r.stderr
    );

    std::fs::write(
        ws.join("rules/libev.toml"),
        rule("packs = [\"//packs:libev\"]\n"),
    )
    .unwrap();
    let r = run(
        &ws,
        &["--arch", "host", "build", "--json", "//repairs:uses-libev"],
    );
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.verdicts()["//packs:libev"], "built", "{}", r.stdout);
    let (name, _) = wheel_sha(&r, "//repairs:uses-libev");
    let files = refine::wheel::read_wheel(&ws.join("dist").join(&name)).unwrap();
    assert!(
        files
            .iter()
            .any(|f| f.name.starts_with("uses_libev.libs/libev")),
        "the repair grafts the pack's library: {:?}",
        files.iter().map(|f| &f.name).collect::<Vec<_>>()
    );
}

/// A pack from another Debian suite than the machine's (libgit2 1.9 of
/// trixie, where the machine is bookworm): `refine pack new --suite`
/// writes `suite` into the source, and a store that has never seen it
/// fetches it from that suite's lists (made from the machine's release
/// entries), checked against the pin. A bad suite name is refused before
/// apt runs, in the flag and in a rule.
#[test]
fn a_pack_from_another_debian_suite_is_written_and_fetched_from_it() {
    let ws = shipped();
    let r = ws.run(&[
        "pack",
        "new",
        "git2-trixie",
        "--debian",
        "libgit2",
        "--suite",
        "trixie",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let toml = ws.read("packs/git2-trixie.toml");
    assert!(
        toml.contains("debian = \"libgit2=1.9.") && toml.contains("suite = \"trixie\","),
        "{toml}"
    );
    assert!(toml.contains("--debian libgit2 --suite trixie"), "{toml}");
    // Another store: the fetch itself goes to trixie's lists.
    let fresh = tempfile::tempdir().unwrap();
    let f: Run = ws
        .cmd_in(fresh.path())
        .args(["--json", "build", "//sources:pack-git2-trixie"])
        .output()
        .unwrap()
        .into();
    assert_eq!(f.code, 0, "{}", f.all());
    assert_eq!(
        f.verdicts()["//sources:pack-git2-trixie"],
        "built",
        "{}",
        f.stdout
    );
    assert!(fresh.path().join("apt-trixie/lists").is_dir());
    // Bad names: the flag's, and a rule's (it would reach a shell).
    let bad = ws.run(&[
        "pack",
        "new",
        "x",
        "--debian",
        "libgit2",
        "--suite",
        "trixie;id",
    ]);
    assert_eq!(bad.code, 2, "{}", bad.all());
    assert!(
        bad.stderr
            .contains("--suite trixie;id: not a Debian suite's name"),
        "{}",
        bad.stderr
    );
    ws.edit(
        "packs/git2-trixie.toml",
        "suite = \"trixie\"",
        "suite = \"$(id)\"",
    );
    let bad = ws.run(&["hash", "//sources:pack-git2-trixie"]);
    assert_eq!(bad.code, 2, "{}", bad.all());
    assert!(
        bad.stderr.contains("`$(id)` is not a Debian suite's name")
            && bad.stderr.contains("packs/git2-trixie.toml:"),
        "{}",
        bad.stderr
    );
}

#[test]
fn missing_tools_are_environment_errors_with_hints() {
    let ws = shipped();
    let store = tempfile::tempdir().unwrap();
    // No mmdebstrap: the image cannot be made.
    let mut c = ws.cmd_in(store.path());
    c.args(["--arch", "host", "build", "//images:bookworm"]);
    c.env("REFINE_MMDEBSTRAP", "/nonexistent/mmdebstrap");
    let r: Run = c.output().unwrap().into();
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stderr.contains("mmdebstrap"), "{}", r.stderr);
    assert!(
        r.stderr.contains("hint: apt-get install -y mmdebstrap"),
        "{}",
        r.stderr
    );

    // No podman: nothing can run in a container.
    let mut c = ws.cmd_in(shared_store());
    c.args(["--arch", "host", "build", "--keep-going", "//wheels:six"]);
    c.env("REFINE_PODMAN", "/nonexistent/podman");
    // Make sure something needs a container: a fresh env value.
    ws.edit(
        "rules/wheels.toml",
        "[wheels.six]\n",
        "[wheels.six]\nenv = { NO_PODMAN_TEST = \"1\" }\n",
    );
    let r: Run = c.output().unwrap().into();
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr.contains("`/nonexistent/podman` is not installed"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("hint: apt-get install -y podman"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_build_that_runs_too_long_is_stopped() {
    let ws = shipped();
    ws.write("recipes/slow.sh", "#!/bin/sh\necho starting\nsleep 120\n");
    ws.edit(
        "rules/wheels.toml",
        "[wheels.six]\n",
        "[wheels.six]\nrecipe = \"recipes/slow.sh\"\ntimeout = \"3s\"\n",
    );
    // Everything the slow build needs first (the builder image may be made,
    // or awaited behind another test's lock, in this test run), so that
    // the timed run is the slow recipe alone.
    let deps = host(&ws, shared_store(), &["query", "deps(//wheels:six)"]);
    deps.ok();
    let deps: Vec<&str> = deps
        .stdout
        .lines()
        .filter(|l| *l != "//wheels:six")
        .collect();
    assert!(deps.contains(&"//images:bookworm"), "{deps:?}");
    let mut args = vec!["build"];
    args.extend(&deps);
    host(&ws, shared_store(), &args).ok();
    // The slow build's own container name (kind, name, key): other tests
    // of this binary build six at the same time, in containers of their own.
    let key = ws.key_with("//wheels:six", |o| {
        o.store = Some(shared_store().to_path_buf());
        o.arch = Some("host".into());
        o.executor = refine::ops::ExecutorKind::Podman;
    });
    let container = format!("refine-wheel-six-{}", &key[..12]);
    let start = std::time::Instant::now();
    let r = host(&ws, shared_store(), &["build", "//wheels:six"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("timed out after 3s"), "{}", r.stderr);
    assert!(r.stderr.contains("raise `timeout`"), "{}", r.stderr);
    // The build's container is stopped at the timeout, well before the
    // recipe's 120 s sleep would end.
    assert!(
        start.elapsed() < std::time::Duration::from_secs(60),
        "took {:?}: {}",
        start.elapsed(),
        r.all()
    );
    let ps = std::process::Command::new("podman")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("name={container}"),
            "--format",
            "{{.Names}}",
        ])
        .output()
        .unwrap();
    assert!(ps.status.success(), "{ps:?}");
    assert!(
        String::from_utf8_lossy(&ps.stdout).trim().is_empty(),
        "{container} left behind: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
}

#[test]
fn a_fake_result_never_answers_a_podman_build() {
    let ws = shipped();
    ws.edit(
        "rules/wheels.toml",
        "[wheels.six]\n",
        "[wheels.six]\nenv = { FAKE_THEN_REAL = \"1\" }\n",
    );
    let store = shared_store();
    let mut c = ws.cmd_in(store);
    c.env("REFINE_EXECUTOR", "fake")
        .args(["--arch", "host", "build", "--json", "//wheels:six"]);
    let fake: Run = c.output().unwrap().into();
    fake.ok();
    assert_eq!(fake.verdicts()["//wheels:six"], "built");
    // The fake wheel is in the store under the real key; for podman it is
    // not there: the plan says so, and podman rebuilds.
    let plan = host(&ws, store, &["plan", "//wheels:six"]);
    assert!(
        plan.stdout
            .lines()
            .any(|l| l.contains("//wheels:six") && !l.starts_with("cached")),
        "{}",
        plan.all()
    );
    let real = host(&ws, store, &["build", "--json", "//wheels:six"]);
    real.ok();
    assert_eq!(
        real.verdicts()["//wheels:six"],
        "built",
        "a podman build is never answered by a fake result: {}",
        real.stdout
    );
    let (name, _) = wheel_sha(&real, "//wheels:six");
    let files = refine::wheel::read_wheel(&ws.root().join("dist").join(&name)).unwrap();
    assert!(
        files.iter().any(|f| f.name == "six.py"),
        "the delivered wheel is the real one: {:?}",
        files.iter().map(|f| &f.name).collect::<Vec<_>>()
    );
    // And the plan agrees: it is cached now, for podman.
    let plan = host(&ws, store, &["plan", "//wheels:six"]);
    plan.ok();
    assert!(
        plan.stderr.contains(": 0 to build, 0 pending"),
        "{}",
        plan.all()
    );
}

/// What build code can do in the sandbox, asked from inside it: a recipe
/// that tries what third-party build code should not be able to do, and
/// writes what happened into its wheel.
const PROBE: &str = r#"#!/bin/sh
set -eu
exec "$PYTHON" - <<'PY'
import errno, os, stat, sys, time, zipfile
r = {}
r["uid"] = os.getuid()
r["gid"] = os.getgid()
with open("/proc/self/uid_map") as f:
    r["uid_map"] = " ".join(f.read().split())
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
r["CapEff"] = status["CapEff"].strip()
r["CapBnd"] = status["CapBnd"].strip()
r["NoNewPrivs"] = status["NoNewPrivs"].strip()
def refused(f):
    try:
        f()
        return "allowed"
    except OSError as e:
        return "refused " + errno.errorcode.get(e.errno, str(e.errno))
r["setuid"] = refused(lambda: os.setuid(0))
r["chown"] = refused(lambda: os.chown("/build", 0, 0))
src = os.path.join(os.environ["REFINE_SRC"], os.listdir(os.environ["REFINE_SRC"])[0])
r["write_source"] = refused(lambda: open(src, "a").write("x"))
r["write_rootfs"] = refused(lambda: open("/usr/evil", "w").write("x"))
r["write_proc_sys"] = refused(lambda: open("/proc/sys/kernel/hostname", "w").write("evil"))
r["block_devices"] = sorted(d for d in os.listdir("/dev") if stat.S_ISBLK(os.lstat("/dev/" + d).st_mode))
r["sockets"] = [p for p in ["/run/podman/podman.sock", "/var/run/docker.sock", "/run/docker.sock"] if os.path.exists(p)]
forks = refusals = 0
for _ in range(300):
    try:
        if os.fork() == 0:
            time.sleep(3)
            os._exit(0)
        forks += 1
    except BlockingIOError:
        refusals += 1
r["forks"] = forks
r["fork_refusals"] = refusals
r["build_mode"] = oct(os.stat("/build").st_mode & 0o777)
# Exactly /build, /out, /tmp and /dev/shm are writable.
def writable(d):
    try:
        with open(os.path.join(d, "probe-%d" % os.getpid()), "w") as f:
            f.write("x")
        return True
    except OSError:
        return False
r["writable"] = ",".join(d for d in ["/build", "/out", "/tmp", "/dev/shm", "/var/tmp", "/run", "/run/lock", "/var/lib", "/home", "/root", "/"] if writable(d))
st = os.statvfs("/tmp")
r["tmp_bytes"] = st.f_blocks * st.f_frsize
# No user namespace of its own (nested), by unshare or by clone.
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
rc = libc.unshare(0x10000000)
r["unshare_user"] = "allowed" if rc == 0 else "refused " + errno.errorcode.get(ctypes.get_errno(), "?")
r["unshare_uts"] = "allowed" if libc.unshare(0x04000000) == 0 else "refused " + errno.errorcode.get(ctypes.get_errno(), "?")
# Memory and CPU limits, as the cgroup holds them (v2, else v1).
def first(*paths):
    for p in paths:
        try:
            return open(p).read().strip()
        except OSError:
            pass
    return "none"
r["memory_max"] = first("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
r["cpu_max"] = first("/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
text = "".join("%s=%s\n" % kv for kv in sorted(r.items()))
print(text)
name = "probe-1.0.dist-info"
out = os.path.join(os.environ["REFINE_OUT"], "probe-1.0-py3-none-any.whl")
with zipfile.ZipFile(out, "w") as z:
    z.writestr("probe.txt", text)
    z.writestr(name + "/METADATA", "Metadata-Version: 2.1\nName: probe\nVersion: 1.0\n")
    z.writestr(name + "/WHEEL", "Wheel-Version: 1.0\nGenerator: probe\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr(name + "/RECORD", "")
PY
"#;

#[test]
fn build_code_runs_with_nothing_to_spare() {
    let ws = shipped();
    ws.write("recipes/probe.sh", PROBE);
    ws.write(
        "rules/probe.toml",
        "[wheels.probe]\nsource = \"//sources:wheel-six\"\nrecipe = \"recipes/probe.sh\"\n",
    );
    ws.edit(
        "WORKSPACE.toml",
        "[sandbox]\n",
        "[sandbox]\npids_limit = 64\n",
    );
    let r = host(&ws, shared_store(), &["build", "--json", "//wheels:probe"]);
    r.ok();
    let (name, _) = wheel_sha(&r, "//wheels:probe");
    let files = refine::wheel::read_wheel(&ws.root().join("dist").join(&name)).unwrap();
    let text = String::from_utf8(
        files
            .iter()
            .find(|f| f.name == "probe.txt")
            .unwrap()
            .data
            .clone(),
    )
    .unwrap();
    let got: std::collections::BTreeMap<&str, &str> =
        text.lines().filter_map(|l| l.split_once('=')).collect();
    // An unprivileged uid, in a user namespace: container root is not host root.
    assert_eq!(got["uid"], "65534", "{text}");
    assert_eq!(got["gid"], "65534", "{text}");
    assert_eq!(got["uid_map"], "0 1879048192 65536", "{text}");
    // No capabilities, and no way to gain them.
    assert_eq!(got["CapEff"], "0000000000000000", "{text}");
    assert_eq!(got["CapBnd"], "0000000000000000", "{text}");
    assert_eq!(got["NoNewPrivs"], "1", "{text}");
    assert_eq!(got["setuid"], "refused EPERM", "{text}");
    assert_eq!(got["chown"], "refused EPERM", "{text}");
    // Inputs, the root filesystem and /proc/sys are read-only.
    assert!(got["write_source"].starts_with("refused"), "{text}");
    assert_eq!(got["write_rootfs"], "refused EROFS", "{text}");
    assert!(got["write_proc_sys"].starts_with("refused"), "{text}");
    // No host devices, no container engine socket.
    assert_eq!(got["block_devices"], "[]", "{text}");
    assert_eq!(got["sockets"], "[]", "{text}");
    // A fork bomb stops at the process limit.
    let forks: u32 = got["forks"].parse().unwrap();
    assert!(forks < 64, "{text}");
    assert!(got["fork_refusals"].parse::<u32>().unwrap() > 200, "{text}");
    // /build is the build's alone.
    assert_eq!(got["build_mode"], "0o700", "{text}");
    // The README's list of writable paths is exact.
    assert_eq!(got["writable"], "/build,/out,/tmp,/dev/shm", "{text}");
    // A private scratch of [sandbox] scratch bytes (4 GiB by default).
    assert_eq!(got["tmp_bytes"], (4u64 << 30).to_string(), "{text}");
    // No nested user namespace; other namespaces need capabilities anyway.
    assert_eq!(got["unshare_user"], "refused EPERM", "{text}");
    assert_eq!(got["unshare_uts"], "refused EPERM", "{text}");
    // Memory and CPU limits by default, sized to the machine.
    let mem = got["memory_max"];
    assert!(mem != "max" && mem != "none", "{text}");
    let mem: u64 = mem.parse().unwrap();
    assert!((2 << 30..1 << 50).contains(&mem), "{text}");
    let cpu = got["cpu_max"];
    assert!(
        cpu != "none" && !cpu.starts_with("max") && cpu != "-1",
        "{text}"
    );
}

/// Hostile build output, for real: a recipe that hands back a wheel whose
/// zip64 entry declares 2^50 bytes (refine used to allocate that and
/// abort), and a pack whose output links to a host file. Each is a build
/// failure that says why; refine itself stays up, and nothing is stored.
#[test]
fn hostile_output_is_a_build_failure_never_a_crash() {
    let ws = shipped();
    let meta: &[u8] = b"Metadata-Version: 2.1\nName: bomb\nVersion: 1.0\n";
    let bomb = refine::wheel::zip64_claiming(&[
        ("bomb/data.bin", b"0123456789", 1 << 50),
        ("bomb-1.0.dist-info/METADATA", meta, meta.len() as u64),
    ]);
    std::fs::create_dir_all(ws.root().join("vendor")).unwrap();
    std::fs::write(ws.root().join("vendor/bomb-1.0-py3-none-any.whl"), &bomb).unwrap();
    ws.write(
        "recipes/copy.sh",
        "#!/bin/sh\nset -eu\ncp \"$REFINE_SRC\"/*.whl \"$REFINE_OUT\"/\n",
    );
    ws.write(
        "recipes/evil-pack.sh",
        "#!/bin/sh\nset -eu\nmkdir -p \"$REFINE_OUT/lib\"\necho x > \"$REFINE_OUT/lib/libok.so.1\"\nln -s /etc/shadow \"$REFINE_OUT/lib/libz.so\"\n",
    );
    ws.write(
        "rules/hostile.toml",
        &format!(
            "[sources.bomb]\npath = \"vendor/bomb-1.0-py3-none-any.whl\"\nsha256 = \"{}\"\n\n\
             [wheels.bomb]\nsource = \"//sources:bomb\"\nrecipe = \"recipes/copy.sh\"\n\n\
             [packs.evil]\nversion = \"1\"\nsource = \"//sources:wheel-six\"\nrecipe = \"recipes/evil-pack.sh\"\n",
            sha256_hex(&bomb)
        ),
    );
    let r = host(
        &ws,
        shared_store(),
        &[
            "build",
            "--keep-going",
            "--json",
            "//wheels:bomb",
            "//packs:evil",
        ],
    );
    assert_eq!(
        r.code,
        1,
        "build failures, not a crash (134) or another class: {}",
        r.all()
    );
    let v = r.verdicts();
    assert_eq!(v["//wheels:bomb"], "failed", "{}", r.all());
    assert_eq!(v["//packs:evil"], "failed", "{}", r.all());
    let errors: Vec<String> = r
        .events()
        .into_iter()
        .filter(|e| e["event"] == "finished" && e["verdict"] == "failed")
        .map(|e| e["error"].to_string())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("declares 1125899906842624 bytes")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("lib/libz.so links to") && e.contains("outside the output")),
        "{errors:?}"
    );
    // Failures are never cached: the next run builds them again.
    let again = host(
        &ws,
        shared_store(),
        &["plan", "//wheels:bomb", "//packs:evil"],
    );
    assert!(!again.stderr.contains(": 0 to build"), "{}", again.all());
}

#[test]
fn a_workspace_of_ones_own_builds_a_c_extension_with_the_builtin_base() {
    // Outside the repository: `refine init`, one rule, `refine build`.
    let d = tempfile::tempdir().unwrap();
    let run = |dir: &Path, args: &[&str]| -> Run { common::refine_in(dir, shared_store(), args) };
    run(d.path(), &["--arch", "host", "init", "wheels"]).ok();
    let ws = d.path().join("wheels");
    std::fs::write(
        ws.join("rules/markupsafe.toml"),
        // Its own env, so its key is its own: the shipped workspace's
        // markupsafe (same built-in base, same key otherwise) may be in the
        // shared store already.
        "[wheels.markupsafe]\nsource = { pypi = \"MarkupSafe==2.1.5\", sha256 = \"d283d37a890ba4c1ae73ffadf8046435c76e7bc2247bbb63c00bd1a709c6544b\" }\nenv = { OWN_WORKSPACE = \"1\" }\n",
    )
    .unwrap();
    let r = run(&ws, &["build", "--json", "//wheels:markupsafe"]);
    r.ok();
    assert_eq!(r.verdicts()["//wheels:markupsafe"], "built", "{}", r.stdout);
    let (name, _) = wheel_sha(&r, "//wheels:markupsafe");
    assert!(
        name.ends_with(&format!("linux_{}.whl", std::env::consts::ARCH)),
        "{name}"
    );
    let files = refine::wheel::read_wheel(&ws.join("dist").join(&name)).unwrap();
    let host = refine::platform::Arch::host().elf_machine();
    assert!(
        files
            .iter()
            .any(|f| f.name.ends_with(".so") && refine::wheel::elf_machine(&f.data) == Some(host)),
        "a compiled extension for this machine"
    );
}

/// An imported C extension whose pack the catalog does not name: the
/// build fails, the hint catalog says which pack has the missing header
/// and the exact edit; `--auto-apply` records the fix in the import,
/// regenerates it and builds again, and the set then passes its test.
#[test]
fn auto_apply_fixes_a_missing_header_of_an_imported_wheel() {
    let d = tempfile::tempdir().unwrap();
    let run = |dir: &Path, args: &[&str]| -> Run { common::refine_in(dir, shared_store(), args) };
    run(d.path(), &["init", "ws"]).ok();
    let ws = d.path().join("ws");
    // The workspace's catalog gives cffi no packs (the base's says libffi).
    std::fs::write(ws.join("rules/catalog.toml"), "[catalog]\ncffi = []\n").unwrap();
    std::fs::write(ws.join("requirements.txt"), "cffi==1.17.0\n").unwrap();
    run(&ws, &["import", "requirements.txt"]).ok();
    let generated = std::fs::read_to_string(ws.join("rules/imported/requirements.toml")).unwrap();
    assert!(!generated.contains("//packs:libffi"), "{generated}");

    let plain = run(&ws, &["--arch", "host", "build", "//sets:requirements"]);
    assert_eq!(plain.code, 1, "{}", plain.all());
    assert!(
        plain.stderr.contains(
            "hint: //wheels:cffi-1.17.0: the build did not find `ffi.h`: //packs:libffi provides it"
        ),
        "{}",
        plain.stderr
    );
    assert!(
        plain.stderr.contains(
            "edit: add `packs = [\"//packs:libffi\"]` to [wheels.cffi-1.17.0] (rules/imported/requirements.toml:"
        ),
        "{}",
        plain.stderr
    );
    assert_eq!(
        std::fs::read_to_string(ws.join("rules/imported/requirements.toml")).unwrap(),
        generated,
        "without --auto-apply nothing is changed"
    );

    let fixed = run(
        &ws,
        &[
            "--arch",
            "host",
            "build",
            "--auto-apply",
            "//sets:requirements",
        ],
    );
    assert_eq!(fixed.code, 0, "{}", fixed.all());
    assert!(
        fixed
            .stderr
            .contains("auto-apply: //wheels:cffi-1.17.0: the build did not find ffi.h"),
        "{}",
        fixed.stderr
    );
    assert!(
        fixed
            .stderr
            .contains("building again (round 1 of at most 3)"),
        "{}",
        fixed.stderr
    );
    let text = std::fs::read_to_string(ws.join("rules/imported/requirements.toml")).unwrap();
    assert!(text.contains("[[import.fixes]]"), "{text}");
    assert!(text.contains("packs = [\"//packs:libffi\"]"), "{text}");
    // It stays fixed when the import is made again.
    run(&ws, &["import", "requirements.txt"]).ok();
    assert_eq!(
        std::fs::read_to_string(ws.join("rules/imported/requirements.toml")).unwrap(),
        text
    );
    let t = run(&ws, &["--arch", "host", "test", "//sets:requirements"]);
    assert_eq!(t.code, 0, "{}", t.all());
    assert!(
        t.stdout.contains("PASS //tests:requirements: pip check"),
        "{}",
        t.stdout
    );
    assert!(
        t.stdout
            .lines()
            .any(|l| l.starts_with("PASS //repairs:cffi-1.17.0 cffi-1.17.0-")
                && l.ends_with("import _cffi_backend, cffi")),
        "{}",
        t.stdout
    );
}
