//! Golden bytes: the exact output of refine's own deterministic steps for
//! fixed inputs. Keys and outputs everywhere depend on these bytes, so a
//! dependency bump (zip, zstd, tar, flate2) or a refactor that changes them
//! must fail here, loudly, instead of silently changing every output (then:
//! bump KEY_VERSION and update the digests below).

use refine::eval::{Action, Derivation, Inputs, RecipeFiles};
use refine::exec::{Limits, Mount, SandboxSpec};
use refine::key::sha256_bytes;
use refine::platform::{Arch, Platform};
use refine::rules::{Kind, Label};
use refine::sched::{RuntimeInfo, contract_env};
use std::collections::BTreeMap;
use std::io::Write;

fn sha256_file(p: &std::path::Path) -> String {
    sha256_bytes(&std::fs::read(p).unwrap()).hex().to_string()
}

/// A wheel as a build backend might write it: entries out of order, odd
/// times and modes, a stale RECORD.
fn messy_wheel(path: &std::path::Path) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let at = |y| {
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .last_modified_time(zip::DateTime::from_date_and_time(y, 3, 4, 5, 6, 8).unwrap())
    };
    let files: [(&str, &[u8], u16, u32); 5] = [
        ("demo-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: cp311-cp311-linux_s390x\n", 2021, 0o600),
        ("demo/_speed.so", b"\x7fELF not really", 2024, 0o775),
        ("demo-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n", 2022, 0o644),
        ("demo/__init__.py", b"from ._speed import *\n", 2023, 0o664),
        ("demo-1.0.dist-info/RECORD", b"stale,,\n", 2020, 0o644),
    ];
    for (name, data, year, mode) in files {
        z.start_file(name, at(year).unix_permissions(mode)).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
}

#[test]
fn a_normalized_wheel_has_these_bytes() {
    let d = tempfile::tempdir().unwrap();
    let w = d.path().join("demo-1.0-cp311-cp311-linux_s390x.whl");
    messy_wheel(&w);
    refine::wheel::normalize(&w, 1_700_000_000).unwrap();
    assert_eq!(
        sha256_file(&w),
        "b0c48146106dd80eb2e8dd04ab2c25406b1c9ed8e51b2f236c4fc3d23eacde29",
        "normalized wheel bytes changed"
    );
    assert!(refine::wheel::check_record(&w).unwrap().is_empty());
    // Normalizing is idempotent.
    refine::wheel::normalize(&w, 1_700_000_000).unwrap();
    assert_eq!(
        sha256_file(&w),
        "b0c48146106dd80eb2e8dd04ab2c25406b1c9ed8e51b2f236c4fc3d23eacde29"
    );
}

#[test]
fn a_tree_archive_has_these_bytes() {
    let d = tempfile::tempdir().unwrap();
    let store = refine::store::LocalStore::open(&d.path().join("s")).unwrap();
    let src = d.path().join("pack");
    std::fs::create_dir_all(src.join("lib/pkgconfig")).unwrap();
    std::fs::create_dir_all(src.join("include")).unwrap();
    std::fs::write(src.join("lib/libz.so.1.3"), b"\x7fELF zlib").unwrap();
    std::os::unix::fs::symlink("libz.so.1.3", src.join("lib/libz.so")).unwrap();
    std::fs::write(src.join("include/zlib.h"), b"/* zlib */\n").unwrap();
    std::fs::write(
        src.join("lib/pkgconfig/zlib.pc"),
        b"prefix=${pcfiledir}/../..\nName: zlib\n",
    )
    .unwrap();
    let tree = store.cas.put_tree(&src).unwrap();
    assert_eq!(
        tree.digest().hex(),
        "d721a2607b4880aa0d5f4488d005bedb1ffa5d6fe6a739793c44fdd5d5b88107",
        "tree manifest changed"
    );
    let mut bytes = Vec::new();
    refine::store::archive::write_tree_archive(&store, &tree, &mut bytes).unwrap();
    assert_eq!(
        sha256_bytes(&bytes).hex(),
        "e1f30c9085857adabb220df67d3c815dc640daa91d6ba7589102811a44a94934",
        "tar+zstd archive bytes changed"
    );
}

fn derivation() -> Derivation {
    Derivation {
        label: Label::new(Kind::Wheel, "pyyaml"),
        version: Some("6.0.2".into()),
        platform: Platform {
            arch: Arch::S390x,
            python: "3.11".into(),
            policy: "manylinux_2_36".into(),
            toolchain: Default::default(),
            frontend_python: None,
        },
        source_date_epoch: 1_700_000_000,
        action: Action::Recipe {
            recipe: RecipeFiles {
                script: "recipes/pep517.sh".into(),
                files: vec![("recipes/pep517.sh".into(), sha256_bytes(b"#!/bin/sh\n"))],
            },
            config_settings: BTreeMap::from([(
                "setup-args".to_string(),
                vec!["-Dx=1".to_string()],
            )]),
            policy: None,
        },
        inputs: Inputs {
            frontend: Some(Label::new(Kind::Source, "uv-x86_64")),
            ..Inputs::default()
        },
        env: BTreeMap::from([("PYYAML_FORCE_LIBYAML".to_string(), "1".to_string())]),
        timeout: 3600,
        nested_userns: false,
        is_wheel_source: false,
        cc_target: None,
        host_python: None,
    }
}

#[test]
fn the_contract_environment_is_exactly_this() {
    let env = contract_env(
        &derivation(),
        &["libyaml".to_string()],
        Some(&RuntimeInfo {
            prefix: "/usr".into(),
            python: "/usr/bin/python3".into(),
        }),
        2,
    );
    let text: String = env.iter().map(|(k, v)| format!("{k}={v:?}\n")).collect();
    insta::assert_snapshot!(text);
}

#[test]
fn the_podman_argv_is_exactly_this() {
    let spec = SandboxSpec {
        name: "refine-wheel-pyyaml-0123456789ab-4242".into(),
        owner: "4242-77".into(),
        label: "//wheels:pyyaml".into(),
        image: "localhost/refine-image/bookworm:00112233445566778899aabbccddeeff".into(),
        arch: Arch::S390x,
        foreign: true,
        mounts: vec![
            Mount {
                host: "/store/trees/aa".into(),
                container: "/opt/packs/libyaml".into(),
                read_only: true,
            },
            Mount {
                host: "/store/tmp/t/build".into(),
                container: "/build".into(),
                read_only: false,
            },
            Mount {
                host: "/store/tmp/t/out".into(),
                container: "/out".into(),
                read_only: false,
            },
        ],
        env: BTreeMap::from([
            ("LC_ALL".to_string(), "C".to_string()),
            ("REFINE_OUT".to_string(), "/out".to_string()),
        ]),
        command: vec![
            "/bin/sh".into(),
            "-eu".into(),
            "/refine/ws/recipes/pep517.sh".into(),
        ],
        workdir: "/build".into(),
        limits: Limits {
            cpus: Some("2".into()),
            memory: Some("8g".into()),
            timeout: 3600,
            scratch: Some(4 << 30),
        },
        isolation: refine::exec::Isolation {
            userns: true,
            pids_limit: 4096,
            seccomp: Some("/store/sandbox/seccomp-0123456789abcdef.json".into()),
        },
        out: "/store/tmp/t/out".into(),
    };
    insta::assert_snapshot!(spec.podman_argv().join("\n"));
}

/// The sandbox of the shipped s390x repair of PyYAML and of its wheel, as
/// a plan (a pure value: what is mounted where, from which digest, the
/// image, the command, the environment, the limits), for made-up outputs
/// of their dependencies. A change here changes what every build sees.
/// (Made on an x86_64 host: a hybrid image runs the host's frontend.)
#[test]
fn the_sandbox_plan_is_exactly_this() {
    use refine::sched::{DepView, PlanSettings, plan_sandbox};
    use refine::store::{EntryKind, Tree, TreeEntry};
    let store = tempfile::tempdir().unwrap();
    let s = refine::ops::Session::load(&refine::ops::GlobalOpts {
        workspace: Some(env!("CARGO_MANIFEST_DIR").into()),
        store: Some(store.path().to_path_buf()),
        arch: Some("s390x".into()),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{}", e.message));
    let labels: Vec<Label> = vec!["//repairs:pyyaml".parse().unwrap()];
    let g = s.graph(&labels).unwrap();
    // Every node's output: a tree of one made-up file, named as its kind
    // names outputs, whose digest is its label's.
    let trees: BTreeMap<Label, Tree> = g
        .nodes
        .iter()
        .map(|n| {
            let l = n.label().clone();
            let name = match l.kind {
                Kind::Image => "rootfs.tar".to_string(),
                Kind::Pack | Kind::Runtime => format!("lib/lib{}.so", l.name),
                Kind::Source if n.derivation().is_wheel_source => {
                    format!("{}-1.0-py3-none-any.whl", l.name)
                }
                Kind::Source => format!("{}.tar.gz", l.name),
                _ => format!("{}-1.0-cp311-cp311-linux_s390x.whl", l.name),
            };
            let tree = Tree::new(vec![TreeEntry {
                path: name,
                kind: EntryKind::File {
                    executable: false,
                    size: 1,
                    digest: sha256_bytes(l.to_string().as_bytes()),
                },
            }])
            .unwrap();
            (l, tree)
        })
        .collect();
    let view: std::collections::HashMap<&Label, DepView<'_>> = g
        .nodes
        .iter()
        .map(|n| {
            (
                n.label(),
                DepView {
                    derivation: n.derivation(),
                    tree: &trees[n.label()],
                },
            )
        })
        .collect();
    let settings = PlanSettings {
        cpus: Some("2".into()),
        memory: Some("4g".into()),
        scratch: 4 << 30,
        pids_limit: 4096,
        jobs: 2,
        key_short: "0123456789ab".into(),
        pid: 1,
    };
    let mut text = String::new();
    for l in ["//wheels:pyyaml", "//repairs:pyyaml"] {
        let d = &g.get(&l.parse().unwrap()).unwrap().derivation();
        let p = plan_sandbox(d, &view, &settings).unwrap();
        text.push_str(&format!("{p:#?}\n"));
    }
    insta::assert_snapshot!(text);

    // A build requirement's output whose wheel name is not a project name
    // never reaches the recipe (it would be written into pyproject.toml).
    let wheel = &g
        .get(&"//wheels:pyyaml".parse().unwrap())
        .unwrap()
        .derivation();
    let named = &wheel.inputs.install[0];
    let bad = Tree::new(vec![TreeEntry {
        path: "cy\"thon-1.0-py3-none-any.whl".into(),
        kind: EntryKind::File {
            executable: false,
            size: 1,
            digest: sha256_bytes(b"x"),
        },
    }])
    .unwrap();
    let mut view = view;
    view.get_mut(named).unwrap().tree = &bad;
    let e = plan_sandbox(wheel, &view, &settings).unwrap_err();
    assert!(e.message.contains("not a project name"), "{}", e.message);
}

/// The floor's `cc` (recipes/lib/common.sh) hands Zig what GCC would have
/// handed GNU ld: `-Wl,-h,NAME` as `-soname`, a version script given after
/// a bare `-Wl,--version-script` (libtool's `-Wl,FILE` after it as it
/// was), an object file named `.so` (krb5's) under a name ending in `.o`; it adds `-O2` to a link with no `-O`, and leaves
/// everything else as it was. Zig here is a script that writes its
/// arguments down.
#[test]
fn the_floor_wrapper_hands_zig_what_gnu_ld_would_have_taken() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = d.join("args");
    let zig = d.join("zig");
    std::fs::write(
        &zig,
        format!(
            "#!/bin/sh\n[ \"$1\" = version ] && {{ echo 0.0; exit 0; }}\nprintf '%s\\n' \"$@\" > {}\n",
            args.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&zig, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // A relocatable object (ELF, e_type 1, big-endian) and a shared one.
    let mut rel = vec![0x7f, b'E', b'L', b'F', 2, 2, 1];
    rel.resize(16, 0);
    rel.extend([0, 1]);
    std::fs::write(d.join("threads.so"), &rel).unwrap();
    let mut dynamic = rel.clone();
    dynamic[17] = 3;
    std::fs::write(d.join("libz.so"), &dynamic).unwrap();
    let common = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes/lib/common.sh");
    let floor = d.join("floor");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            ". {}; floor_toolchain; cd {}; cc -shared -fPIC -Wl,-h,libk.so.0 -o libk.so.0.1 threads.so libz.so -Wl,--version-script k.versions -Wl,--version-script -Wl,libffi.map -lresolv",
            common.display(),
            d.display()
        ))
        .env("REFINE_CC_TARGET", "s390x-linux-gnu.2.17")
        .env("REFINE_ZIG", &zig)
        .env("REFINE_FLOOR_DIR", &floor)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read_to_string(&args).unwrap();
    let got: Vec<&str> = got.lines().collect();
    let obj = got
        .iter()
        .find(|a| a.starts_with(&floor.join("objs").display().to_string()))
        .unwrap_or_else(|| panic!("threads.so not renamed: {got:?}"));
    assert!(obj.ends_with(".o"), "{obj}");
    assert_eq!(
        std::fs::canonicalize(obj).unwrap(),
        std::fs::canonicalize(d.join("threads.so")).unwrap()
    );
    let at = got.iter().position(|a| a == obj).unwrap();
    assert_eq!(
        got[..at],
        [
            "cc",
            "-target",
            "s390x-linux-gnu.2.17",
            "-Wno-error=implicit-function-declaration",
            "-Wno-error=implicit-int",
            "-Wno-error=int-conversion",
            "-Wno-error=incompatible-function-pointer-types",
            "-Wno-unused-command-line-argument",
            "-Wl,--undefined-version",
            "-O2",
            "-shared",
            "-fPIC",
            "-Wl,-soname,libk.so.0",
            "-o",
            "libk.so.0.1",
        ]
    );
    assert_eq!(
        got[at + 1..],
        [
            "libz.so",
            "-Wl,--version-script,k.versions",
            "-Wl,--version-script",
            "-Wl,libffi.map",
            "-lresolv",
            "-idirafter",
            "/usr/include",
            "-idirafter",
            "/usr/include/s390x-linux-gnu",
        ]
    );
}
