//! `refine doctor` on this machine (set up by `bash .ci/setup`: everything
//! passes), and on the same machine as a new user meets it without a
//! prerequisite: a PATH of every program here but `arch-test`. Then a
//! build that needs it is an environment error with the fixing command,
//! not "fix the recipe".

mod common;
use common::{Run, shipped};
use std::path::Path;

/// A directory of links to every program on this machine but `left_out`.
fn path_without(left_out: &str, dir: &Path) -> String {
    for bin in ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        let Ok(rd) = std::fs::read_dir(bin) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            if name == left_out || dir.join(&name).exists() {
                continue;
            }
            std::os::unix::fs::symlink(e.path(), dir.join(&name)).unwrap();
        }
    }
    // cargo's and pip's own directories stay as they are.
    let mut path = dir.display().to_string();
    for p in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let s = p.display().to_string();
        if !["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"].contains(&s.as_str()) {
            path.push(':');
            path.push_str(&s);
        }
    }
    path
}

#[test]
fn doctor_passes_here_and_names_what_a_new_machine_lacks() {
    let ws = shipped();
    // This machine: set up, so every check passes.
    let r: Run = ws.cmd().args(["doctor", "--json"]).output().unwrap().into();
    assert_eq!(r.code, 0, "{}", r.all());
    let events = r.events();
    let checks: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "check").collect();
    for name in [
        "podman",
        "runc",
        "podman-run",
        "mmdebstrap",
        "arch-test",
        "binfmt",
        "pip-index",
    ] {
        let c = checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} check: {}", r.stdout));
        assert_eq!(c["status"], "ok", "{name}: {c}");
    }
    // The store's free space is this disk's, not the set-up's: below
    // 10 GiB it warns (and the doctor still passes), naming the figure and
    // what frees space; a set-up problem would be a failure.
    let space = checks
        .iter()
        .find(|c| c["name"] == "store-space")
        .unwrap_or_else(|| panic!("no store-space check: {}", r.stdout));
    let detail = space["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("GiB free for the store at"), "{space}");
    match space["status"].as_str() {
        Some("ok") => {}
        Some("warn") => assert!(
            space["fix"]
                .as_str()
                .is_some_and(|f| f.contains("refine gc --max-size")),
            "{space}"
        ),
        _ => panic!("store-space: {space}"),
    }

    // Where images are made: in memory on this machine (a tmpfs /dev/shm
    // with room), on disk when told.
    let scratch = checks
        .iter()
        .find(|c| c["name"] == "image-scratch")
        .unwrap_or_else(|| panic!("no image-scratch check: {}", r.stdout));
    assert_eq!(scratch["status"], "ok", "{scratch}");
    assert!(
        scratch["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("images are made in memory (/dev/shm, a tmpfs, ")),
        "{scratch}"
    );
    let r: Run = ws
        .cmd()
        .env("REFINE_IMAGE_SCRATCH", "store")
        .args(["doctor", "--json"])
        .output()
        .unwrap()
        .into();
    assert!(
        r.events().iter().any(|e| e["name"] == "image-scratch"
            && e["detail"]
                == "images are made on disk, beside the store (REFINE_IMAGE_SCRATCH=store)"),
        "{}",
        r.stdout
    );

    // Without arch-test: named, with the command that installs it, exit 3.
    let shim = tempfile::tempdir().unwrap();
    let path = path_without("arch-test", shim.path());
    let r: Run = ws
        .cmd()
        .env("PATH", &path)
        .args(["doctor"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 3, "{}", r.all());
    let line = r
        .stdout
        .lines()
        .position(|l| l.starts_with("FAIL  arch-test"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[line].contains("mmdebstrap needs it"), "{}", r.stdout);
    assert!(
        lines[line + 1]
            .trim_start()
            .starts_with("fix: apt-get install -y arch-test"),
        "{}",
        r.stdout
    );
    let json: Run = ws
        .cmd()
        .env("PATH", &path)
        .args(["doctor", "--json"])
        .output()
        .unwrap()
        .into();
    assert_eq!(json.code, 3);
    let at = json
        .events()
        .into_iter()
        .find(|e| e["name"] == "arch-test")
        .unwrap();
    assert_eq!(at["status"], "fail");
    assert_eq!(at["fix"], "apt-get install -y arch-test");

    // A build that needs it: an environment error with that command as
    // its hint, before mmdebstrap runs.
    let b: Run = ws
        .cmd()
        .env("PATH", &path)
        .args(["build", "//images:bookworm"])
        .output()
        .unwrap()
        .into();
    assert_eq!(b.code, 3, "{}", b.all());
    assert!(
        b.stderr.contains("hint: apt-get install -y arch-test"),
        "{}",
        b.stderr
    );
    assert!(!b.stderr.contains("fix the recipe"), "{}", b.stderr);
}
