//! `refine serve` for real: a server on loopback over a store where a real
//! podman build runs, driven by Debian's Chromium (playwright-core,
//! tests/browser/dashboard.mjs): the overview shows the run, the target's
//! page follows its live log as it grows, a rebuild is refused without the
//! token and queued with it; a requirements file uploaded at the front door
//! (tests/browser/imports.mjs) ends as built, tested wheels in the index.
//! Then the HTTP surface: the token's rules,
//! refusals of traversal, malformed and oversized requests, the package
//! index pip installs from, and the metrics.

mod common;
use common::{Run, Server, shipped};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn serve(ws: &common::Ws, token_file: &Path, extra: &[&str]) -> Server {
    let mut c = ws.cmd();
    // pip and uv also look here: the front door's test imports an sdist
    // that only this directory has.
    c.env("PIP_FIND_LINKS", links_dir());
    c.args([
        "--arch",
        "host",
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--token-file",
    ])
    .arg(token_file)
    .args(extra);
    Server::start(c)
}

/// A find-links directory with front_door-1.0.tar.gz, an sdist of the old
/// kind (a setup.py) that no index has.
fn links_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let sdist = common::sdist(&[
            (
                "front_door-1.0/setup.py",
                "from setuptools import setup\nsetup(name='front_door', version='1.0', py_modules=['front_door'])\n",
            ),
            ("front_door-1.0/front_door.py", "WELCOME = 'in'\n"),
            (
                "front_door-1.0/PKG-INFO",
                "Metadata-Version: 2.1\nName: front_door\nVersion: 1.0\n",
            ),
        ]);
        std::fs::write(d.path().join("front_door-1.0.tar.gz"), sdist)
        .unwrap();
        d
    })
    .path()
}

/// A multipart/form-data body by hand (the test's HTTP client has no
/// multipart feature): (field, file name, content).
fn multipart(parts: &[(&str, Option<&str>, &str)]) -> (String, Vec<u8>) {
    let boundary = "refine-test-boundary-7f3a";
    let mut b = Vec::new();
    for (field, file, content) in parts {
        b.extend(format!("--{boundary}\r\n").bytes());
        match file {
            Some(f) => b.extend(
                format!("Content-Disposition: form-data; name=\"{field}\"; filename=\"{f}\"\r\nContent-Type: text/plain\r\n\r\n").bytes(),
            ),
            None => b.extend(format!("Content-Disposition: form-data; name=\"{field}\"\r\n\r\n").bytes()),
        }
        b.extend(content.bytes());
        b.extend(b"\r\n");
    }
    b.extend(format!("--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), b)
}

/// A wheel that takes its time and says so, line by line.
const SLOW: &str = r#"#!/bin/sh
set -eu
i=1
while [ $i -le 40 ]; do
    echo "slow line $i"
    i=$((i + 1))
    sleep 0.5
done
exec "$PYTHON" - <<'PY'
import os, zipfile
out = os.path.join(os.environ["REFINE_OUT"], "slow-1.0-py3-none-any.whl")
with zipfile.ZipFile(out, "w") as z:
    z.writestr("slow.py", "X = 1\n")
    z.writestr("slow-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: slow\nVersion: 1.0\nRequires-Python: >=3.8\n")
    z.writestr("slow-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr("slow-1.0.dist-info/RECORD", "")
PY
"#;

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[test]
fn the_dashboard_in_a_real_browser_and_its_http_surface() {
    let ws = shipped();
    ws.write("recipes/slow.sh", SLOW);
    ws.write(
        "rules/slow.toml",
        "[wheels.slow]\nsource = \"//sources:wheel-six\"\nrecipe = \"recipes/slow.sh\"\n",
    );
    // What the slow wheel needs, first (the builder image above all).
    let deps = ws.run(&["--arch", "host", "query", "deps(//wheels:slow)"]);
    deps.ok();
    let mut args = vec!["--arch", "host", "build", "//wheels:six"];
    args.extend(deps.stdout.lines().filter(|l| *l != "//wheels:slow"));
    ws.run(&args).ok();

    let secret = tempfile::tempdir().unwrap();
    let token = "serve-test-token-0123456789abcdef";
    let token_file = secret.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let server = serve(&ws, &token_file, &[]);
    let url = server.url.clone();
    let http = client();

    // A real build, from the command line, while the dashboard watches.
    let mut build = ws.cmd();
    build
        .args(["--arch", "host", "build", "//wheels:slow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut build = build.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let o: serde_json::Value = http
            .get(format!("{url}/api/overview"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if o["running"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x["label"] == "//wheels:slow"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the build never showed as running: {o}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let shots = std::env::var_os("REFINE_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| secret.path().join("shots"));
    std::fs::create_dir_all(&shots).unwrap();
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let out = Command::new("node")
        .arg(browser.join("dashboard.mjs"))
        .current_dir(&browser)
        .env("REFINE_URL", &url)
        .env("REFINE_TOKEN", token)
        .env("REFINE_TARGET", "//wheels:slow")
        .env("REFINE_SHOTS", &shots)
        .output()
        .expect("node (bash .ci/setup installs it, with playwright-core and chromium)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the browser test failed:\n{said}");
    assert!(said.contains("ok: the live log grew"), "{said}");
    assert!(
        said.contains("ok: the run page draws the run as a timeline"),
        "{said}"
    );
    for shot in [
        "overview.png",
        "target-live-log.png",
        "log-search.png",
        "run-timeline.png",
    ] {
        assert!(
            std::fs::metadata(shots.join(shot)).is_ok_and(|m| m.len() > 10_000),
            "{shot}"
        );
    }
    assert!(build.wait().unwrap().success());

    // An artifact downloads whole, streamed, with its length, and is the
    // very wheel the build delivered.
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.root().join("dist/manifest.json")).unwrap(),
    )
    .unwrap();
    let slow = manifest["wheels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["label"] == "//wheels:slow")
        .unwrap();
    let (wheel, sha) = (
        slow["wheel"].as_str().unwrap(),
        slow["sha256"].as_str().unwrap(),
    );
    let (h, _) = refine::history::History::open(&ws.store).unwrap();
    let built = h
        .results(&refine::history::Filter {
            label: Some("//wheels:slow".into()),
            verdict: Some("built".into()),
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    let r = http
        .get(format!("{url}/artifacts/{}/{wheel}", built[0].id))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let len: u64 = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = r.bytes().unwrap();
    assert_eq!(len, bytes.len() as u64);
    assert_eq!(common::sha256_hex(&bytes), sha);

    // The token's rules.
    let post = |path: &str| http.post(format!("{url}{path}"));
    let body = r#"{"targets": ["//wheels:six"]}"#;
    let status = |r: reqwest::blocking::RequestBuilder| r.send().unwrap().status().as_u16();
    let json = ("Content-Type", "application/json");
    assert_eq!(
        status(post("/api/builds").header(json.0, json.1).body(body)),
        401,
        "no token"
    );
    assert_eq!(
        status(
            post("/api/builds")
                .header(json.0, json.1)
                .header("Authorization", "Bearer serve-test-token-0123456789abcdeX")
                .body(body)
        ),
        401,
        "a wrong token"
    );
    assert_eq!(
        status(
            post(&format!("/api/builds?token={token}"))
                .header(json.0, json.1)
                .body(body)
        ),
        401,
        "never a token from the URL"
    );
    assert_eq!(
        status(
            post("/api/builds")
                .header(json.0, json.1)
                .header("Cookie", format!("refine_token={token}"))
                .body(body)
        ),
        401,
        "the cookie alone, without the dashboard's own header, is not an action (another site's form)"
    );
    let bearer = format!("Bearer {token}");
    let auth = |r: reqwest::blocking::RequestBuilder| r.header("Authorization", &bearer);
    assert_eq!(
        status(
            auth(post("/api/builds"))
                .header(json.0, json.1)
                .body("{not json")
        ),
        400
    );
    assert_eq!(
        status(
            auth(post("/api/builds"))
                .header(json.0, json.1)
                .body(r#"{"targets": ["//wheels:six"], "x": 1}"#)
        ),
        400
    );
    assert_eq!(
        status(
            auth(post("/api/builds"))
                .header(json.0, json.1)
                .body(r#"{"targets": ["no label"]}"#)
        ),
        400
    );
    // The server refuses a body that is too large without reading it and
    // closes that connection: sent on a client of its own, so the requests
    // after it never reuse a connection the server is closing.
    let big = format!(r#"{{"targets": ["{}"]}}"#, "a".repeat(200_000));
    assert_eq!(
        status(
            client()
                .post(format!("{url}/api/builds"))
                .header("Authorization", &bearer)
                .header(json.0, json.1)
                .body(big)
        ),
        413
    );
    let r = auth(post("/api/builds"))
        .header(json.0, json.1)
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let job: serde_json::Value = r.json().unwrap();
    assert_eq!(job["state"], "queued");

    // A fix `--auto-apply` applied (recorded as the build command does),
    // on the target's page and in its API, with its outcome.
    {
        let (h, _) = refine::history::History::open(&ws.store).unwrap();
        let run = h.runs(1).unwrap()[0].id;
        let id = h
            .record_fix(&refine::history::NewFix {
                run,
                label: "//wheels:slow",
                round: 1,
                import: "rules/imported/web.toml",
                edit: "build_requires += six",
                why: "the build imported six",
            })
            .unwrap();
        h.settle_fix(id, "did not help", Some(run)).unwrap();
    }
    let page = http
        .get(format!("{url}/targets/wheels/slow"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains("Fixes applied by --auto-apply")
            && page.contains("build_requires += six")
            && page.contains("did not help"),
        "{page}"
    );
    let api: serde_json::Value = http
        .get(format!("{url}/api/targets/wheels/slow"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(api["fixes"][0]["outcome"], "did not help", "{api}");

    // Nothing of a request becomes a path.
    let get = |path: &str| {
        http.get(format!("{url}{path}"))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(get("/logs/..%2F..%2F..%2Fetc%2Fpasswd"), 404);
    assert_eq!(get("/logs/1/raw/../../../../etc/passwd"), 404);
    assert_eq!(get("/artifacts/1/..%2F..%2Fetc%2Fpasswd"), 404);
    assert_eq!(get("/files/..%2F..%2Fhistory.sqlite"), 404);
    assert_eq!(get("/targets/bogus/x"), 400);
    assert_eq!(get("/runs/x"), 400);

    // The index serves what was built; pip installs from it.
    let dl = tempfile::tempdir().unwrap();
    let pip = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--index-url"])
        .arg(format!("{url}/simple/"))
        .args(["slow", "-d"])
        .arg(dl.path())
        .output()
        .unwrap();
    assert!(
        pip.status.success(),
        "{}",
        String::from_utf8_lossy(&pip.stderr)
    );
    assert!(dl.path().join("slow-1.0-py3-none-any.whl").is_file());
    let j: serde_json::Value = http
        .get(format!("{url}/simple/slow/"))
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(j["files"][0]["requires-python"], ">=3.8", "{j}");
    let meta = http
        .get(format!("{url}/files/slow-1.0-py3-none-any.whl.metadata"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        meta.starts_with("Metadata-Version: 2.1\nName: slow"),
        "{meta}"
    );

    // Metrics.
    let m = http
        .get(format!("{url}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for name in [
        "refine_results_total{verdict=\"built\"}",
        "refine_cache_hit_ratio",
        "refine_build_duration_seconds_count",
        "refine_queue_depth",
        "refine_store_size_bytes",
    ] {
        assert!(m.contains(name), "{name}: {m}");
    }

    // The front door: a requirements file uploaded becomes an import, its
    // plan, and (queued from the page) built, tested wheels in the index.
    let up = |parts: &[(&str, Option<&str>, &str)], with_token: bool| {
        let (ct, body) = multipart(parts);
        let r = client()
            .post(format!("{url}/api/imports"))
            .header("Content-Type", ct)
            .body(body);
        let r = if with_token {
            r.header("Authorization", &bearer)
        } else {
            r
        };
        let r = r.send().unwrap();
        let code = r.status().as_u16();
        (code, r.json::<serde_json::Value>().unwrap_or_default())
    };
    let good = "six==1.16.0\nfront-door==1.0\n";
    assert_eq!(up(&[("requirements", Some("web.txt"), good)], false).0, 401);
    let (code, j) = up(&[("name", None, "web")], true);
    assert_eq!(code, 400, "{j}");
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains("no `requirements` file"),
        "{j}"
    );
    let huge = "six\n".repeat(300_000);
    assert_eq!(up(&[("requirements", Some("big.txt"), &huge)], true).0, 413);
    let (code, j) = up(
        &[("requirements", Some("../../x.txt"), "six==[bad\n")],
        true,
    );
    assert_eq!(code, 400, "{j}");
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .starts_with("x.txt:1: not a requirement"),
        "a file name is only a name: {j}"
    );
    let files = tempfile::tempdir().unwrap();
    let bad = files.path().join("bad.txt");
    std::fs::write(&bad, "six==1.16.0\nfront-door==[1.0\n").unwrap();
    let good_file = files.path().join("requirements.txt");
    std::fs::write(&good_file, good).unwrap();
    let out = Command::new("node")
        .arg(browser.join("imports.mjs"))
        .current_dir(&browser)
        .env("REFINE_URL", &url)
        .env("REFINE_TOKEN", token)
        .env("REFINE_BAD", &bad)
        .env("REFINE_GOOD", &good_file)
        .env("REFINE_SHOTS", &shots)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the front door's browser test failed:\n{said}"
    );
    for shot in ["import-error.png", "import-plan.png", "import-built.png"] {
        assert!(
            std::fs::metadata(shots.join(shot)).is_ok_and(|m| m.len() > 10_000),
            "{shot}"
        );
    }
    // What was written: the good upload and its import; of the refused
    // ones, nothing.
    let root = ws.root();
    assert_eq!(
        std::fs::read_to_string(root.join("uploads/front.txt")).unwrap(),
        good
    );
    assert!(root.join("rules/imported/front.toml").is_file());
    for never in [
        "uploads/bad.txt",
        "rules/imported/bad.toml",
        "uploads/x.txt",
        "rules/imported/x.toml",
    ] {
        assert!(!root.join(never).exists(), "{never} was written");
    }
    // The wheel built from the sdist is in the index.
    let simple = http
        .get(format!("{url}/simple/front-door/"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        simple.contains("front_door-1.0-py3-none-any.whl"),
        "{simple}"
    );

    let said = server.stop();
    assert!(!said.contains(token), "the token is never logged: {said}");

    // Reads that need the token.
    let closed = serve(&ws, &token_file, &["--reads", "token"]);
    let u = closed.url.clone();
    assert_eq!(
        http.get(format!("{u}/")).send().unwrap().status().as_u16(),
        401
    );
    assert_eq!(
        http.get(format!("{u}/api/overview"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        http.get(format!("{u}/api/overview"))
            .header("Authorization", &bearer)
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    closed.stop();

    // And the history saw it all.
    let h: Run = ws
        .cmd()
        .args(["history", "//wheels:slow", "--json"])
        .output()
        .unwrap()
        .into();
    assert!(h.stdout.contains("\"verdict\":\"built\""), "{}", h.stdout);
}
