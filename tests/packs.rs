//! Native packs and the CPython runtime, for real, and what a pack change
//! rebuilds. One scenario (the builds are minutes long), in a copy of the
//! shipped workspace, for the host architecture.

mod common;
use common::{Run, image_tag, in_container, output_of, shipped};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const PACKS: &[&str] = &[
    "//packs:zlib",
    "//packs:libffi",
    "//packs:libyaml",
    "//packs:bzip2",
    "//packs:xz",
    "//packs:sqlite",
    "//packs:openssl",
    "//packs:libxml2",
    "//packs:libxslt",
    // Written by `refine pack new` (libpq's recipe then cut down by hand).
    "//packs:lz4",
    "//packs:zstd",
    "//packs:libpng",
    "//packs:freetype",
    "//packs:libpq",
    // Written by `refine pack new`, then by hand (krb5's configure is in
    // src/, it builds its libraries only; OpenLDAP's client libraries).
    "//packs:krb5",
    "//packs:cyrus-sasl2",
    "//packs:openldap",
    // Written by `refine pack new` as it is: a snapshot whose configure
    // autoreconf makes.
    "//packs:unixodbc",
];

fn targets() -> Vec<&'static str> {
    let mut t = PACKS.to_vec();
    t.extend([
        "//runtimes:cpython-3.11",
        "//wheels:markupsafe",
        "//wheels:six",
    ]);
    t
}

/// label → status of `refine plan --json` over the scenario's targets.
fn plan(ws: &common::Ws, store: &Path) -> BTreeMap<String, String> {
    let mut c = ws.cmd_in(store);
    c.args(["--arch", "host", "--json", "plan", "--all"])
        .args(targets());
    let r: Run = c.output().unwrap().into();
    r.ok();
    r.events()
        .into_iter()
        .map(|e| {
            (
                e["label"].as_str().unwrap().to_string(),
                e["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn with(plan: &BTreeMap<String, String>, status: &str) -> Vec<String> {
    plan.iter()
        .filter(|(_, s)| *s == status)
        .map(|(l, _)| l.clone())
        .collect()
}

/// The files of an output, checked out by the store (outputs that no
/// build mounted are not checked out until something asks).
fn tree_of(store: &Path, output: &str) -> PathBuf {
    let store = refine::store::LocalStore::open(store).unwrap();
    store
        .checkouts
        .materialize(&refine::key::Digest::parse(output).unwrap())
        .unwrap()
}

fn build(ws: &common::Ws, store: &Path, labels: &[&str]) -> Run {
    let mut c = ws.cmd_in(store);
    c.args(["--arch", "host", "build", "--json"]).args(labels);
    let r: Run = c.output().unwrap().into();
    r.ok();
    r
}

#[test]
fn packs_runtime_and_what_a_zlib_change_rebuilds() {
    let ws = shipped();
    let store = ws.root().join("store");
    // markupsafe builds with the CPython runtime built from source.
    ws.edit(
        "rules/wheels.toml",
        "package = \"MarkupSafe\"\n",
        "package = \"MarkupSafe\"\nruntime = \"//runtimes:cpython-3.11\"\n",
    );
    let first = build(&ws, &store, &targets());
    for l in targets() {
        assert_eq!(first.verdicts()[l], "built", "{l}");
    }

    // Packs are relocatable: nothing in them names the build directory.
    for l in PACKS {
        let dir = tree_of(&store, &output_of(&first, l));
        for e in common::files_under(&dir) {
            let bytes = std::fs::read(&e).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("/build/src") && !text.contains("/build/dest"),
                "{l}: {} names the build directory",
                e.display()
            );
            // Optimized builds: no undefined-behaviour sanitizer (what Zig's
            // clang adds at a floor when nothing says -O).
            assert!(
                !text.contains("__ubsan_handle"),
                "{l}: {} is a sanitizer build",
                e.display()
            );
        }
        assert!(dir.join("lib").is_dir(), "{l} has lib/");
    }
    // The generated packs hold their library and the headers their rules
    // name for the hint catalog.
    for (l, files) in [
        ("//packs:lz4", &["include/lz4.h", "lib/liblz4.so"][..]),
        ("//packs:zstd", &["include/zstd.h", "lib/libzstd.so"]),
        ("//packs:libpng", &["include/png.h", "lib/libpng16.so"]),
        (
            "//packs:freetype",
            &["include/freetype2/ft2build.h", "lib/libfreetype.so"],
        ),
        (
            "//packs:libpq",
            &["include/libpq-fe.h", "lib/libpq.so", "bin/pg_config"],
        ),
        (
            "//packs:krb5",
            &[
                "include/krb5.h",
                "include/gssapi/gssapi.h",
                "lib/libkrb5.so",
                "lib/libgssapi_krb5.so",
                "bin/krb5-config",
            ],
        ),
        (
            "//packs:cyrus-sasl2",
            &["include/sasl/sasl.h", "lib/libsasl2.so"],
        ),
        (
            "//packs:openldap",
            &[
                "include/ldap.h",
                "include/lber.h",
                "lib/libldap.so",
                "lib/liblber.so",
            ],
        ),
        (
            "//packs:unixodbc",
            &["include/sql.h", "include/sqlext.h", "lib/libodbc.so"],
        ),
    ] {
        let dir = tree_of(&store, &output_of(&first, l));
        for f in files {
            assert!(dir.join(f).exists(), "{l} has {f}");
        }
    }
    let yaml_pc =
        tree_of(&store, &output_of(&first, "//packs:libyaml")).join("lib/pkgconfig/yaml-0.1.pc");
    assert!(
        std::fs::read_to_string(yaml_pc)
            .unwrap()
            .starts_with("prefix=${pcfiledir}/../..")
    );

    // The runtime stands alone: its C modules import with no pack mounted.
    let runtime = tree_of(&store, &output_of(&first, "//runtimes:cpython-3.11"));
    let image = image_tag(&first, "//images:bookworm");
    let (ok, out, err) = in_container(
        &image,
        std::env::consts::ARCH,
        &[(&runtime, "/opt/runtime")],
        "/opt/runtime/bin/python3 -c 'import ssl, sqlite3, lzma, bz2, zlib, ctypes, sys; print(sys.version_info[:2], ssl.OPENSSL_VERSION)'",
    );
    assert!(ok, "{err}");
    assert!(out.contains("(3, 11) OpenSSL 3.0.20"), "{out}");

    // The wheel was built by that runtime, and its key says so.
    let key = ws.key_with("//wheels:markupsafe", |o| {
        o.store = Some(store.clone());
        o.arch = Some("host".into());
        o.executor = refine::ops::ExecutorKind::Podman;
    });
    let pre: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            store
                .join("preimages")
                .join(&key[..2])
                .join(format!("{key}.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        pre["runtime"]["//runtimes:cpython-3.11"],
        output_of(&first, "//runtimes:cpython-3.11"),
        "{pre:#}"
    );
    let log = std::fs::read_to_string(
        first
            .events()
            .into_iter()
            .find(|e| e["event"] == "finished" && e["label"] == "//wheels:markupsafe")
            .unwrap()["log"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(
        log.contains("PYTHON=/opt/runtime/bin/python3"),
        "built with the runtime"
    );

    // The packs and the runtime-built wheel reproduce, bit for bit.
    let mut c = ws.cmd_in(&store);
    c.args(["--arch", "host", "verify", "--rounds", "2"]).args([
        "//packs:zlib",
        "//packs:libyaml",
        "//packs:libffi",
        "//packs:bzip2",
        "//wheels:markupsafe",
    ]);
    let v: Run = c.output().unwrap().into();
    assert_eq!(v.code, 0, "{}", v.all());
    assert!(
        v.stdout.contains("reproduced //packs:zlib (2 rounds)"),
        "{}",
        v.stdout
    );

    // Nothing to do.
    let p = plan(&ws, &store);
    assert_eq!(with(&p, "hit").len(), p.len(), "{p:?}");

    // A zlib recipe change that changes its output: zlib builds, and what
    // needs zlib waits for it; nothing else moves.
    let original = ws.read("recipes/packs/zlib.sh");
    ws.edit(
        "recipes/packs/zlib.sh",
        "./configure",
        "export CFLAGS=\"$CFLAGS -Os\"\n./configure",
    );
    let p = plan(&ws, &store);
    assert_eq!(with(&p, "build"), ["//packs:zlib"], "{p:?}");
    let mut pending = with(&p, "pending");
    pending.sort();
    let mut above = vec![
        "//packs:libpng",
        "//packs:freetype",
        "//packs:libxml2",
        "//packs:libxslt",
        "//packs:openssl",
        "//packs:openldap",
        "//runtimes:cpython-3.11",
        "//wheels:markupsafe",
    ];
    above.sort();
    assert_eq!(pending, above, "{p:?}");
    // Once zlib is rebuilt (to other bytes), exactly its dependents have new
    // keys: the direct ones build, the rest wait for them.
    let z = build(&ws, &store, &["//packs:zlib"]);
    assert_ne!(
        output_of(&z, "//packs:zlib"),
        output_of(&first, "//packs:zlib")
    );
    let p = plan(&ws, &store);
    let mut b = with(&p, "build");
    b.sort();
    assert_eq!(
        b,
        ["//packs:libpng", "//packs:libxml2", "//packs:openssl"],
        "{p:?}"
    );
    let mut pending = with(&p, "pending");
    pending.sort();
    assert_eq!(
        pending,
        [
            "//packs:freetype",
            "//packs:libxslt",
            "//packs:openldap",
            "//runtimes:cpython-3.11",
            "//wheels:markupsafe"
        ],
        "{p:?}"
    );
    for l in [
        "//packs:libffi",
        "//packs:bzip2",
        "//packs:xz",
        "//packs:sqlite",
        "//packs:libyaml",
        "//packs:lz4",
        "//packs:zstd",
        "//packs:libpq",
        "//packs:krb5",
        "//packs:cyrus-sasl2",
        "//wheels:six",
    ] {
        assert_eq!(p[l], "hit", "{l} does not need zlib");
    }

    // A change that rebuilds zlib to the very same bytes as its first build
    // (the original recipe plus a comment): nothing above it rebuilds.
    ws.write(
        "recipes/packs/zlib.sh",
        &format!("{original}# a comment changes the recipe's digest\n"),
    );
    let p = plan(&ws, &store);
    assert_eq!(with(&p, "build"), ["//packs:zlib"], "{p:?}");
    let z = build(&ws, &store, &["//packs:zlib"]);
    assert_eq!(z.verdicts()["//packs:zlib"], "built");
    assert_eq!(
        output_of(&z, "//packs:zlib"),
        output_of(&first, "//packs:zlib"),
        "zlib builds reproducibly"
    );
    let p = plan(&ws, &store);
    assert_eq!(with(&p, "hit").len(), p.len(), "early cutoff: {p:?}");
    let again = build(&ws, &store, &targets());
    assert!(again.with("built").is_empty(), "{:?}", again.verdicts());
}
