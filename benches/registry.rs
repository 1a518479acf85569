//! Benchmark: push and pull of a 500 MB artifact against a registry on
//! loopback, beside `skopeo copy` of the same bytes; then what signing and
//! checking signatures add to a pull of 100 small results.
//!
//! `cargo bench --bench registry` (needs docker-registry and skopeo, as
//! `bash .ci/setup` installs them). `REFINE_BENCH_MB` changes the size.
//! Figures go to docs/BENCHMARKS.md; the targets: within 1.5x of skopeo;
//! signatures under 1% of a 100-node pull.

use refine::key::Preimage;
use refine::key::sign::{SigningKeyFile, Trust};
use refine::remote::Remote;
use refine::remote::oci::{OciRemote, OciUrl};
use refine::rules::{Kind, Label};
use refine::store::{ActionResult, EntryKind, LocalStore, Tree, TreeEntry};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Reg(Child, u16);

impl Drop for Reg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn registry(dir: &Path) -> Reg {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.join("config.yml");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry");
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
    }
    Reg(child, port)
}

/// Incompressible bytes from a fixed seed.
fn random_file(path: &Path, mb: usize) {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mb {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf).unwrap();
    }
    f.flush().unwrap();
}

fn skopeo(args: &[&str]) -> Duration {
    let t = Instant::now();
    let out = Command::new("skopeo").args(args).output().expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

fn main() {
    let mb: usize = std::env::var("REFINE_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let dir = tempfile::tempdir().unwrap();
    let r1 = registry(&dir.path().join("r1"));
    let r2 = registry(&dir.path().join("r2"));

    let artifact = dir.path().join("artifact.bin");
    random_file(&artifact, mb);
    let store_a = LocalStore::open(&dir.path().join("a")).unwrap();
    let (digest, size) = store_a.cas.put_file(&artifact).unwrap();
    let tree = Tree::new(vec![TreeEntry {
        path: "artifact.bin".into(),
        kind: EntryKind::File {
            executable: false,
            size,
            digest,
        },
    }])
    .unwrap();
    store_a.cas.put_bytes(tree.encode().as_bytes()).unwrap();
    let mut pre = Preimage::new();
    pre.set("bench", format!("{mb} MB"));
    let key = pre.key();
    let result = ActionResult {
        key: key.0.clone(),
        label: "//images:bench".parse().unwrap(),
        output: tree.digest(),
        log: None,
        duration_ms: 0,
        created: 0,
        refine_version: "bench".into(),
        arch: refine::platform::Arch::X86_64,
        // Pushed as if the sandbox had built it: this measures transfers.
        executor: "podman".into(),
    };
    store_a.actions.put(&key, &result, &pre).unwrap();
    let label = Label::new(Kind::Image, "bench");
    let keyfile = dir.path().join("signing.key");
    let signer = SigningKeyFile::generate(&keyfile, "bench").unwrap();
    let trust = Trust {
        keys: vec![signer.public()],
    };
    let remote = OciRemote::new(
        OciUrl::parse(&format!("oci://127.0.0.1:{}/bench", r1.1)).unwrap(),
        true,
        trust.clone(),
        Some(signer),
    )
    .unwrap();

    let t = Instant::now();
    remote
        .push(&label, &key, &result, &tree, &pre, &store_a)
        .unwrap();
    let push = t.elapsed();

    let store_b = LocalStore::open(&dir.path().join("b")).unwrap();
    let t = Instant::now();
    let got = remote
        .pull(&label, &key, &store_b)
        .unwrap()
        .expect("pulled");
    let pull = t.elapsed();
    assert_eq!(got.0.output, tree.digest());

    // skopeo: pull the same artifact to a directory, push it to the second
    // registry (a fresh one, so no blob is already there).
    let src = format!("docker://127.0.0.1:{}/bench/images/bench:{}", r1.1, key.0);
    let out = dir.path().join("skopeo-dir");
    let s_pull = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &src,
        &format!("dir:{}", out.display()),
    ]);
    let s_push = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("dir:{}", out.display()),
        &format!("docker://127.0.0.1:{}/bench/copy:1", r2.1),
    ]);

    let rate = |d: Duration| mb as f64 / d.as_secs_f64();
    println!("artifact: {mb} MB, incompressible");
    println!(
        "refine push: {:.2?} ({:.0} MB/s)   skopeo push: {:.2?} ({:.0} MB/s)   ratio {:.2}",
        push,
        rate(push),
        s_push,
        rate(s_push),
        push.as_secs_f64() / s_push.as_secs_f64()
    );
    println!(
        "refine pull: {:.2?} ({:.0} MB/s)   skopeo pull: {:.2?} ({:.0} MB/s)   ratio {:.2}",
        pull,
        rate(pull),
        s_pull,
        rate(s_pull),
        pull.as_secs_f64() / s_pull.as_secs_f64()
    );
    println!(
        "target within 1.5x of skopeo: push {}, pull {}",
        if push.as_secs_f64() <= 1.5 * s_push.as_secs_f64() {
            "met"
        } else {
            "NOT met"
        },
        if pull.as_secs_f64() <= 1.5 * s_pull.as_secs_f64() {
            "met"
        } else {
            "NOT met"
        }
    );

    many_small(&remote, &trust, &keyfile, dir.path());
}

/// 100 results of 64 KiB each: pushed signed, then pulled (every signature
/// checked) into an empty store; beside it, the signing and checking alone.
fn many_small(remote: &OciRemote, trust: &Trust, keyfile: &Path, dir: &Path) {
    const N: usize = 100;
    let store = LocalStore::open(&dir.join("small-a")).unwrap();
    let mut items = Vec::new();
    for i in 0..N {
        let src = dir.join(format!("small-src-{i}"));
        std::fs::create_dir_all(src.join("lib")).unwrap();
        random_file_kb(&src.join("lib/data.bin"), 64, i as u64);
        std::fs::write(src.join("lib/name.txt"), format!("result {i}\n")).unwrap();
        let tree = store.cas.put_tree(&src).unwrap();
        let mut pre = Preimage::new();
        pre.set("bench", format!("small {i}"));
        let key = pre.key();
        let result = ActionResult {
            key: key.0.clone(),
            label: format!("//packs:small{i}").parse().unwrap(),
            output: tree.digest(),
            log: None,
            duration_ms: 0,
            created: 0,
            refine_version: "bench".into(),
            arch: refine::platform::Arch::X86_64,
            executor: "podman".into(),
        };
        store.actions.put(&key, &result, &pre).unwrap();
        let label = Label::new(Kind::Pack, format!("small{i}"));
        remote
            .push(&label, &key, &result, &tree, &pre, &store)
            .unwrap();
        items.push((label, key, result));
    }
    let fresh = LocalStore::open(&dir.join("small-b")).unwrap();
    let t = Instant::now();
    for (label, key, _) in &items {
        remote.pull(label, key, &fresh).unwrap().expect("pulled");
    }
    let pull = t.elapsed();
    // The signature work of those pulls, alone.
    let signer = SigningKeyFile::load(keyfile).unwrap();
    let line = signer.public().line();
    let sigs: Vec<(Vec<u8>, String)> = items
        .iter()
        .map(|(l, k, r)| {
            let out = r.output.to_string();
            let msg = refine::key::sign::message(&k.0, &out, &out, &l.to_string(), "bench");
            let sig = signer.sign(&msg);
            (msg, sig)
        })
        .collect();
    let t = Instant::now();
    for (msg, sig) in &sigs {
        trust.check(Some(&line), Some(sig), msg).unwrap();
    }
    let check = t.elapsed();
    let t = Instant::now();
    for (msg, _) in &sigs {
        std::hint::black_box(signer.sign(msg));
    }
    let sign = t.elapsed();
    println!(
        "{N} results of 64 KiB: pull {pull:.2?}; checking their signatures {check:.2?} ({:.3}% of the pull); signing them {sign:.2?}",
        100.0 * check.as_secs_f64() / pull.as_secs_f64()
    );
    println!(
        "target under 1%: {}",
        if check.as_secs_f64() < 0.01 * pull.as_secs_f64() {
            "met"
        } else {
            "NOT met"
        }
    );
}

fn random_file_kb(path: &Path, kb: usize, seed: u64) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
    let mut buf = vec![0u8; kb * 1024];
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    std::fs::write(path, buf).unwrap();
}
