//! `refine import` and `refine add` against the real package index (through
//! pip's configuration, with uv installed from it by refine itself): what
//! is resolved for s390x, what is written, that writing is deterministic,
//! that a hand-written rule wins, that a bad line writes nothing, and a
//! folder of wheels sorted by what fits the target. No builds here; the
//! builds of imports are in tests/podman.rs (host) and tests/s390x.rs.

mod common;
use common::Run;
use std::path::{Path, PathBuf};

const MARKUPSAFE_3_SDIST: &str = "ee55d3edf80167e48ea11a923c7386f4669df67d7994554387f84e7d8b0a2bf0";

/// A workspace of one's own (`refine init`: s390x), with its own store.
struct Own {
    dir: tempfile::TempDir,
}

impl Own {
    fn new() -> Own {
        let ws = Own {
            dir: tempfile::tempdir().unwrap(),
        };
        let r = ws.cmd(ws.dir.path(), &["init", "ws"]);
        assert_eq!(r.code, 0, "{}", r.all());
        ws
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root().join(rel)).unwrap()
    }

    fn cmd(&self, cwd: &Path, args: &[&str]) -> Run {
        std::process::Command::new(env!("CARGO_BIN_EXE_refine"))
            .current_dir(cwd)
            .arg("--store")
            .arg(self.dir.path().join("store"))
            .env_remove("REFINE_EXECUTOR")
            .env_remove("REFINE_BUILTIN_BASE")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
            .into()
    }

    fn run(&self, args: &[&str]) -> Run {
        self.cmd(&self.root(), args)
    }
}

fn decisions(r: &Run) -> Vec<serde_json::Value> {
    r.events()
        .into_iter()
        .filter(|e| e["event"] == "decision")
        .collect()
}

fn decision<'a>(d: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    d.iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("no decision for {name}: {d:#?}"))
}

#[test]
fn import_resolves_for_s390x_and_writes_rules_exactly() {
    let ws = Own::new();
    // A rule of the workspace's own: the import must not replace it.
    ws.write(
        "rules/hand.toml",
        "[wheels.msgpack]\nsource = { pypi = \"msgpack==1.1.0\", sha256 = \"dd432ccc2c72b914e4cb77afce64aab761c1137cc698be3984eee260bcb2896e\" }\nrepair = true\n",
    );
    ws.write("constraints.txt", "idna<3.8  # an old lock\n");
    let reqs = format!(
        "# the service's lock\n\
         -c constraints.txt\n\
         markupsafe==3.0.2 \\\n    --hash=sha256:{MARKUPSAFE_3_SDIST}\n\
         six==1.16.0\n\
         msgpack==1.1.0\n\
         idna ; platform_machine == \"s390x\"\n\
         colorama ; sys_platform == \"win32\"\n\
         simplejson ; platform_machine == \"x86_64\"\n"
    );
    ws.write("requirements.txt", &reqs);
    let r = ws.run(&["--json", "import", "requirements.txt", "--name", "web"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let d = decisions(&r);
    // Markers are the target's: s390x, Linux, CPython 3.11.
    let names: Vec<&str> = d.iter().filter_map(|x| x["name"].as_str()).collect();
    assert!(names.contains(&"idna"), "{names:?}");
    assert!(
        !names.contains(&"colorama") && !names.contains(&"simplejson"),
        "{names:?}"
    );
    let notes: Vec<String> = r
        .events()
        .into_iter()
        .filter(|e| e["event"] == "note")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("colorama") && n.contains("requirements.txt:8")),
        "{notes:?}"
    );
    // The constraint holds.
    let idna = decision(&d, "idna");
    assert!(
        idna["version"].as_str().unwrap().starts_with("3.7"),
        "{idna}"
    );
    // A pure package reuses its wheel; a C extension is built from its
    // sdist (the --hash is the pin); the hand-written rule wins.
    assert!(
        decision(&d, "six")["what"]
            .as_str()
            .unwrap()
            .contains("pure wheel")
    );
    assert_eq!(decision(&d, "six")["label"], "//sources:six");
    let ms = decision(&d, "markupsafe");
    assert!(
        ms["what"]
            .as_str()
            .unwrap()
            .starts_with("built from markupsafe-3.0.2.tar.gz"),
        "{ms}"
    );
    // The built-in base has markupsafe 2.1.5 under //wheels:markupsafe.
    assert_eq!(ms["label"], "//repairs:markupsafe-3.0.2");
    let mp = decision(&d, "msgpack");
    assert!(
        mp["what"]
            .as_str()
            .unwrap()
            .contains("hand-written rule at rules/hand.toml:1"),
        "{mp}"
    );
    assert_eq!(mp["label"], "//repairs:msgpack");
    // Where the set installs: its compiled packages are built at the
    // workspace's floor (manylinux2014, what `refine init` writes), the
    // pure ones anywhere.
    let on = r
        .events()
        .into_iter()
        .find(|e| e["event"] == "installs_on")
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert_eq!(on["glibc"], "2.17", "{on}");
    assert_eq!(on["systems"][0], "RHEL 7", "{on}");
    assert_eq!(
        on["set_by"], "the floor of all 2 compiled packages",
        "markupsafe and msgpack: {on}"
    );
    // Build requirements are pinned, as wheels.
    let st = decision(&d, "setuptools");
    assert_eq!(st["runtime"], false);
    assert!(
        st["label"]
            .as_str()
            .unwrap()
            .starts_with("//sources:setuptools"),
        "{st}"
    );

    let text = ws.read("rules/imported/web.toml");
    assert!(text.starts_with("# Generated by `refine import`"), "{text}");
    assert!(
        text.contains("#   refine import requirements.txt --name web\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("sha256 = \"{MARKUPSAFE_3_SDIST}\"")),
        "{text}"
    );
    assert!(text.contains("[sets.web]"), "{text}");
    assert!(
        text.contains("\"//repairs:msgpack\""),
        "the hand-written rule is in the set: {text}"
    );
    assert!(!text.contains("[wheels.msgpack]"), "{text}");
    // The workspace evaluates with it, and the set names the import.
    let q = ws.run(&["query", "deps(//sets:web)"]);
    assert_eq!(q.code, 0, "{}", q.all());
    for l in [
        "//repairs:markupsafe-3.0.2",
        "//sources:six",
        "//repairs:msgpack",
        "//sources:idna",
    ] {
        assert!(q.stdout.lines().any(|x| x == l), "{l}: {}", q.stdout);
    }
    let o = ws.run(&["query", "--origin", "//wheels:markupsafe-3.0.2"]);
    assert!(o.stdout.contains("rules/imported/web.toml:"), "{}", o.all());

    // The same input gives the same bytes.
    let again = ws.run(&["import", "requirements.txt", "--name", "web"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(again.stderr.contains("unchanged"), "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains("installs on: RHEL 7, SLES 12 SP5, Ubuntu 18.04, RHEL 8,"),
        "{}",
        again.stderr
    );
    assert_eq!(ws.read("rules/imported/web.toml"), text);

    // One changed pin changes one block.
    ws.write(
        "requirements.txt",
        &reqs.replace("six==1.16.0", "six==1.17.0"),
    );
    let changed = ws.run(&["import", "requirements.txt", "--name", "web"]);
    assert_eq!(changed.code, 0, "{}", changed.all());
    let after = ws.read("rules/imported/web.toml");
    let before_lines: Vec<&str> = text.lines().collect();
    let after_lines: Vec<&str> = after.lines().collect();
    assert_eq!(before_lines.len(), after_lines.len(), "{after}");
    let differing: Vec<(&str, &str)> = before_lines
        .iter()
        .zip(&after_lines)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| (*a, *b))
        .collect();
    assert_eq!(
        differing.len(),
        3,
        "the six block's comment, pin and sha256: {differing:#?}"
    );
    assert!(
        differing
            .iter()
            .all(|(a, b)| a.contains("1.16.0") || b.contains("1.17.0") || a.starts_with("sha256")),
        "{differing:#?}"
    );

    // A bad line: an error naming file:line, and nothing written.
    ws.write(
        "requirements.txt",
        &format!("{reqs}six==1.16.0 --frobnicate\n"),
    );
    let bad = ws.run(&["import", "requirements.txt", "--name", "web"]);
    assert_eq!(bad.code, 2, "{}", bad.all());
    assert!(bad.stderr.contains("requirements.txt:10"), "{}", bad.stderr);
    assert_eq!(ws.read("rules/imported/web.toml"), after, "nothing written");

    // refine add: one more package in the same import, the rest kept.
    ws.write("requirements.txt", &reqs);
    let add = ws.run(&[
        "--json",
        "add",
        "--name",
        "web",
        "--no-deps",
        "itsdangerous==2.2.0",
    ]);
    assert_eq!(add.code, 0, "{}", add.all());
    let added = ws.read("rules/imported/web.toml");
    assert!(
        added.contains("specs = [\"itsdangerous==2.2.0\"]"),
        "{added}"
    );
    assert!(added.contains("[sources.itsdangerous]"), "{added}");
    assert!(
        added.contains("[wheels.\"markupsafe-3.0.2\"]"),
        "the file's own requirements stay: {added}"
    );
}

#[test]
fn fallback_latest_max_deps_and_no_deps() {
    let ws = Own::new();
    ws.write("requirements.txt", "six==99.0\n");
    let r = ws.run(&["import", "requirements.txt"]);
    assert_eq!(
        r.code,
        2,
        "a pin the index lacks is the user's to fix: {}",
        r.all()
    );
    let r = ws.run(&["--json", "import", "requirements.txt", "--fallback-latest"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("six==99.0 is not on the index: the newest version that is will do"),
        "{}",
        r.stdout
    );
    let six = decisions(&r)
        .into_iter()
        .find(|d| d["name"] == "six")
        .unwrap();
    assert_ne!(six["version"], "99.0");

    // flask has six runtime dependencies: --max-deps 2 keeps two,
    // --no-deps none.
    ws.write("flask.txt", "flask==3.0.3\n");
    let r = ws.run(&["--json", "import", "flask.txt", "--max-deps", "2"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let runtime: Vec<serde_json::Value> = decisions(&r)
        .into_iter()
        .filter(|d| d["runtime"] == true)
        .collect();
    assert_eq!(runtime.len(), 3, "{runtime:#?}");
    assert!(r.stdout.contains("--max-deps 2: left out"), "{}", r.stdout);
    let r = ws.run(&["--json", "import", "flask.txt", "--no-deps"]);
    let runtime: Vec<serde_json::Value> = decisions(&r)
        .into_iter()
        .filter(|d| d["runtime"] == true)
        .collect();
    assert_eq!(runtime.len(), 1, "{runtime:#?}");
}

/// A pin is never replaced by a hand-written rule of another version:
/// the pinned version is built under its own label, and a note names both.
/// And an import of which no line is for the target says so.
#[test]
fn a_pin_is_never_replaced_and_an_empty_import_says_why() {
    let ws = Own::new();
    ws.write(
        "rules/hand.toml",
        "[wheels.msgpack]\nsource = { pypi = \"msgpack==1.0.8\", sha256 = \"95c02b0e27e706e48d0e5426d1710ca78e0f0628d6e89d5b5a5b91a5f12274f3\" }\nrepair = true\n",
    );
    ws.write("requirements.txt", "msgpack==1.1.0\n");
    let r = ws.run(&["--json", "import", "requirements.txt"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let d = decisions(&r);
    let mp = decision(&d, "msgpack");
    assert_eq!(mp["version"], "1.1.0", "{mp}");
    assert_ne!(
        mp["label"], "//repairs:msgpack",
        "the 1.0.8 rule does not answer a 1.1.0 pin: {mp}"
    );
    assert!(mp["label"].as_str().unwrap().contains("1.1.0"), "{mp}");
    assert!(
        r.stdout.contains(
            "the hand-written rule at rules/hand.toml:1 builds 1.0.8, the requirements pin 1.1.0"
        ),
        "{}",
        r.stdout
    );
    assert!(
        ws.read("rules/hand.toml").contains("msgpack==1.0.8"),
        "left as it is"
    );

    ws.write(
        "never.txt",
        "six==1.16.0 ; platform_machine == \"no-such-machine\"\n",
    );
    let r = ws.run(&["import", "never.txt"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("nothing of the import is for s390x") && r.stderr.contains("marker"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("can be built: \n"), "{}", r.stderr);
    assert!(
        !ws.root().join("rules/imported/never.toml").exists(),
        "nothing written"
    );
}

/// `pip download` of one file into `dir`, as a user would have it.
fn pip_download(dir: &Path, args: &[&str]) {
    let o = std::process::Command::new("python3")
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "-d"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_folder_of_wheels_is_sorted_by_what_fits_the_target() {
    let ws = Own::new();
    let wheels = ws.root().join("x86_64-wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    // A pure wheel, an x86_64 one, one for s390x already, and one of our
    // own that no index has.
    pip_download(&wheels, &["--only-binary", ":all:", "six==1.16.0"]);
    pip_download(
        &wheels,
        &[
            "--only-binary",
            ":all:",
            "--platform",
            "manylinux2014_x86_64",
            "--python-version",
            "3.11",
            "markupsafe==2.1.5",
        ],
    );
    pip_download(
        &wheels,
        &[
            "--only-binary",
            ":all:",
            "--platform",
            "manylinux2014_s390x",
            "--python-version",
            "3.11",
            "pyyaml==6.0.2",
        ],
    );
    {
        let f = std::fs::File::create(wheels.join("inhouse-1.0-py3-none-any.whl")).unwrap();
        let mut z = zip::ZipWriter::new(f);
        let o = zip::write::SimpleFileOptions::default();
        use std::io::Write;
        z.start_file("inhouse.py", o).unwrap();
        z.write_all(b"X = 1\n").unwrap();
        z.start_file("inhouse-1.0.dist-info/METADATA", o).unwrap();
        z.write_all(b"Metadata-Version: 2.1\nName: inhouse\nVersion: 1.0\n")
            .unwrap();
        z.start_file("inhouse-1.0.dist-info/WHEEL", o).unwrap();
        z.write_all(
            b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        .unwrap();
        z.start_file("inhouse-1.0.dist-info/RECORD", o).unwrap();
        z.finish().unwrap();
    }
    let r = ws.run(&[
        "--json",
        "import",
        "--wheels",
        "x86_64-wheels",
        "--no-deps",
        "--name",
        "folder",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let notes = r.stdout.clone();
    assert!(
        notes.contains("six-1.16.0-py2.py3-none-any.whl: pure, reused as it is"),
        "{notes}"
    );
    assert!(
        notes.contains("already built for s390x, reused as it is"),
        "{notes}"
    );
    assert!(
        notes.contains("rebuilt from the sdist of MarkupSafe 2.1.5"),
        "{notes}"
    );
    assert!(
        notes.contains("inhouse-1.0-py3-none-any.whl: pure, reused as it is"),
        "{notes}"
    );
    let d = decisions(&r);
    assert!(
        decision(&d, "six")["what"]
            .as_str()
            .unwrap()
            .contains("pure wheel")
    );
    let yaml = decision(&d, "pyyaml");
    assert!(yaml["what"].as_str().unwrap().contains("s390x"), "{yaml}");
    let ms = decision(&d, "markupsafe");
    assert!(
        ms["what"]
            .as_str()
            .unwrap()
            .contains("built-in rule of the same version"),
        "{ms}"
    );
    let own = decision(&d, "inhouse");
    assert!(
        own["what"]
            .as_str()
            .unwrap()
            .contains("from the wheel folder"),
        "{own}"
    );
    // The in-house wheel is copied into the workspace, by sha256.
    let text = ws.read("rules/imported/folder.toml");
    assert!(
        text.contains("path = \"rules/imported/folder/inhouse-1.0-py3-none-any.whl\""),
        "{text}"
    );
    assert!(
        ws.root()
            .join("rules/imported/folder/inhouse-1.0-py3-none-any.whl")
            .is_file()
    );
    let q = ws.run(&["plan", "//sets:folder"]);
    assert_eq!(q.code, 0, "{}", q.all());
}

/// A fix may carry the wheel's test command (a corpus keeps a one-line
/// smoke test beside each package): it is kept across regenerations and
/// written into the wheel's rule, which `refine test` runs.
#[test]
fn a_fixs_test_command_is_written_into_the_wheel_rule_and_kept() {
    let ws = Own::new();
    ws.write("requirements.txt", "markupsafe==3.0.2\n");
    let r = ws.run(&["import", "requirements.txt", "--name", "corpus"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let file = "rules/imported/corpus.toml";
    let text = ws.read(file);
    let wheel = text
        .lines()
        .find(|l| l.starts_with("[wheels.") && l.contains("markupsafe"))
        .unwrap_or_else(|| panic!("no wheel rule: {text}"))
        .trim_start_matches("[wheels.")
        .trim_end_matches(']')
        .trim_matches('"')
        .to_string();
    assert!(!text.contains("\ntest = "), "{text}");
    let smoke = r#"python -c "import markupsafe; assert markupsafe.escape('<') == '&lt;'""#;
    ws.write(
        file,
        &format!(
            "{text}\n[[import.fixes]]\ntarget = \"//wheels:{wheel}\"\ntest = {}\n",
            toml_str(smoke)
        ),
    );
    let r = ws.run(&["import", "requirements.txt", "--name", "corpus"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let text = ws.read(file);
    let doc: toml::Table = text.parse().unwrap();
    assert_eq!(
        doc["wheels"][wheel.as_str()]["test"].as_str(),
        Some(smoke),
        "the rule runs the smoke test: {text}"
    );
    assert_eq!(
        doc["import"]["fixes"][0]["test"].as_str(),
        Some(smoke),
        "the fix is kept for the next regeneration: {text}"
    );
    // A misspelt field of a fix is a located error, and nothing changes.
    ws.write(file, &text.replace("\ntest = ", "\ntests = "));
    let r = ws.run(&["import", "requirements.txt", "--name", "corpus"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains(&format!("{file}:")) && r.stderr.contains("tests"),
        "{}",
        r.stderr
    );
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// A backend that asks the host for a library's config tool at requirement
/// time (gssapi's setup.py runs `krb5-config`) does not stop the import:
/// the package is still built from its sdist with its declared build
/// requirements, and the decision says why and what to give the build.
#[test]
fn a_backend_hook_that_fails_on_the_host_falls_back_to_the_declared_requirements() {
    assert!(
        !Path::new("/usr/bin/krb5-config").exists(),
        "this test needs a host without krb5-config (libkrb5-dev): gssapi's hook must fail here"
    );
    let ws = Own::new();
    ws.write("requirements.txt", "gssapi==1.12.0\n");
    let r = ws.run(&["--json", "import", "requirements.txt", "--name", "krb"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let d = decisions(&r);
    let g = decision(&d, "gssapi");
    let what = g["what"].as_str().unwrap();
    assert!(what.starts_with("built from gssapi-1.12.0"), "{what}");
    assert!(
        what.contains("get_requires_for_build_wheel failed on this host")
            && what.contains("krb5-config"),
        "{what}"
    );
    let text = ws.read("rules/imported/krb.toml");
    let doc: toml::Table = text.parse().unwrap();
    let wheels = doc["wheels"].as_table().unwrap();
    let rule = wheels
        .iter()
        .find(|(k, _)| k.starts_with("gssapi"))
        .unwrap_or_else(|| panic!("no wheel rule for gssapi: {text}"))
        .1;
    // Its declared build requirements (Cython, setuptools) are the rule's.
    let reqs = rule["build_requires"].to_string().to_ascii_lowercase();
    assert!(
        reqs.contains("cython") && reqs.contains("setuptools"),
        "{text}"
    );
}

/// A Rust extension whose sdist ships no Cargo.lock (tiktoken 0.14.0): its
/// crates are resolved from the registry at import, and the lock is packed
/// with them, so the archive's pin pins the versions.
#[test]
fn an_sdist_without_a_cargo_lock_gets_one_resolved_and_pinned() {
    let ws = Own::new();
    ws.write("requirements.txt", "tiktoken==0.14.0\n");
    let r = ws.run(&["--json", "import", "requirements.txt", "--name", "tk"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let d = decisions(&r);
    let what = decision(&d, "tiktoken")["what"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(what.starts_with("built from tiktoken-0.14.0"), "{what}");
    assert!(
        what.contains("the sdist has no Cargo.lock: one resolved from the registry now"),
        "{what}"
    );
    let text = ws.read("rules/imported/tk.toml");
    assert!(
        text.contains("cargo = ") && text.contains("tiktoken"),
        "the crates are a pinned source of the rule: {text}"
    );
}

/// The derivation of `label` in the workspace, evaluated with a store of
/// its own.
fn derivation_of(ws: &Own, label: &str) -> refine::eval::Derivation {
    let store = tempfile::tempdir().unwrap();
    let s = refine::ops::Session::load(&refine::ops::GlobalOpts {
        workspace: Some(ws.root()),
        store: Some(store.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{}", e.message));
    let g = s.graph(&s.resolve(&[label.to_string()]).unwrap()).unwrap();
    g.nodes
        .iter()
        .find(|n| n.label().to_string() == label)
        .unwrap_or_else(|| panic!("{label} is not in the graph"))
        .derivation()
        .as_ref()
        .clone()
}

/// `[catalog]`'s `env` and `config_settings` go into a package's imported
/// wheel rules (h5py is told where HDF5 is and which it is, scipy which
/// LAPACK), so they are in the wheel's derivation and key; a fix's `env`
/// wins over the catalog's for the same variable; a bad name is a located
/// error.
#[test]
fn a_catalog_env_is_written_into_the_imported_wheel_rule_and_a_fix_wins() {
    let ws = Own::new();
    ws.write(
        "rules/catalog.toml",
        "[catalog]\nmarkupsafe = { packs = [], env = { LIB_DIR = \"/opt/packs/lib\", LIB_VERSION = \"1.0\" }, config_settings = { \"setup-args\" = [\"-Dlapack=lapack\", \"-Dx=1\"] } }\n",
    );
    ws.write("requirements.txt", "markupsafe==3.0.2\n");
    let r = ws.run(&["import", "requirements.txt", "--name", "envs"]);
    assert_eq!(r.code, 0, "{}", r.all());
    type Env = std::collections::BTreeMap<String, String>;
    type Settings = std::collections::BTreeMap<String, Vec<String>>;
    let env_of = |ws: &Own| -> (String, String, Env, Settings) {
        let text = ws.read("rules/imported/envs.toml");
        let doc: toml::Table = text.parse().unwrap();
        let (name, _) = doc["wheels"]
            .as_table()
            .unwrap()
            .iter()
            .find(|(n, _)| n.starts_with("markupsafe"))
            .map(|(n, r)| (n.clone(), r.clone()))
            .unwrap_or_else(|| panic!("no wheel rule: {text}"));
        let d = derivation_of(ws, &format!("//wheels:{name}"));
        let settings = match &d.action {
            refine::eval::Action::Recipe {
                config_settings, ..
            } => config_settings.clone(),
            other => panic!("not a wheel build: {other:?}"),
        };
        (name, text, d.env, settings)
    };
    let (wheel, text, env, settings) = env_of(&ws);
    assert_eq!(
        settings.get("setup-args"),
        Some(&vec!["-Dlapack=lapack".to_string(), "-Dx=1".to_string()]),
        "{text}"
    );
    assert_eq!(
        env.get("LIB_DIR").map(String::as_str),
        Some("/opt/packs/lib"),
        "{text}"
    );
    assert_eq!(
        env.get("LIB_VERSION").map(String::as_str),
        Some("1.0"),
        "{text}"
    );

    // A fix for the same wheel sets one of them: the fix's value is used,
    // the catalog's other variable stays.
    let with_fix = text.replacen(
        "\n[sets.envs]",
        &format!(
            "\n[[import.fixes]]\ntarget = \"//wheels:{wheel}\"\nenv = {{ LIB_VERSION = \"2.0\" }}\nwhy = \"test\"\n\n[sets.envs]"
        ),
        1,
    );
    assert_ne!(with_fix, text, "the fix went in: {text}");
    ws.write("rules/imported/envs.toml", &with_fix);
    let r = ws.run(&["import", "requirements.txt", "--name", "envs"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let (_, text, env, _) = env_of(&ws);
    assert_eq!(
        env.get("LIB_VERSION").map(String::as_str),
        Some("2.0"),
        "{text}"
    );
    assert_eq!(
        env.get("LIB_DIR").map(String::as_str),
        Some("/opt/packs/lib"),
        "{text}"
    );
    assert_eq!(
        text.matches("env = ").count(),
        2,
        "one env line in the rule, one in the fix: {text}"
    );

    ws.write(
        "rules/catalog.toml",
        "[catalog]\nmarkupsafe = { packs = [], env = { \"1BAD\" = \"x\" } }\n",
    );
    let r = ws.run(&["plan", "//sets:envs"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("rules/catalog.toml:2:") && r.stderr.contains("1BAD"),
        "located: {}",
        r.stderr
    );
}

/// `[catalog]`'s long form gives a package's imported wheel rules a floor
/// (numpy's packs need gfortran's runtime: manylinux_2_36, as the built-in
/// numpy rule says); the rule is evaluated with it, and a bad floor in the
/// catalog is a located error.
#[test]
fn a_catalog_floor_is_written_into_the_imported_wheel_rule() {
    let ws = Own::new();
    ws.write(
        "rules/catalog.toml",
        "[catalog]\nmarkupsafe = { packs = [], policy = \"manylinux_2_28\" }\n",
    );
    ws.write("requirements.txt", "markupsafe==3.0.2\n");
    let r = ws.run(&["import", "requirements.txt", "--name", "floor"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let text = ws.read("rules/imported/floor.toml");
    let doc: toml::Table = text.parse().unwrap();
    let wheels = doc["wheels"].as_table().unwrap();
    let (name, rule) = wheels
        .iter()
        .find(|(n, _)| n.starts_with("markupsafe"))
        .unwrap_or_else(|| panic!("no wheel rule: {text}"));
    assert_eq!(rule["policy"].as_str(), Some("manylinux_2_28"), "{text}");
    // The repair checks that floor and tags the wheel with it.
    let d = derivation_of(&ws, &format!("//repairs:{name}"));
    assert_eq!(d.platform.platform_tag(), "manylinux_2_28_s390x");

    ws.write(
        "rules/catalog.toml",
        "[catalog]\nmarkupsafe = { packs = [], policy = \"manylinux_9\" }\n",
    );
    let r = ws.run(&["plan", "//sets:floor"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stderr.contains("rules/catalog.toml:2:"),
        "located: {}",
        r.stderr
    );
}
