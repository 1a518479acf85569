//! numpy against the OpenBLAS and LAPACK packs, repaired, then used in a
//! clean container. Long — tens of minutes natively, hours under s390x
//! emulation (docs/BENCHMARKS.md) — so it is opt-in:
//!
//! ```sh
//! cargo test --test numpy -- --ignored                       # the host
//! REFINE_NUMPY_ARCH=s390x cargo test --test numpy -- --ignored   # emulated
//! ```

mod common;
use common::{Run, image_tag, in_container, shipped};

#[test]
#[ignore = "long build (see docs/BENCHMARKS.md): run with `cargo test --test numpy -- --ignored`"]
fn numpy_with_openblas_from_packs() {
    let arch =
        std::env::var("REFINE_NUMPY_ARCH").unwrap_or_else(|_| std::env::consts::ARCH.to_string());
    let ws = shipped();
    // REFINE_NUMPY_STORE keeps the store across runs (the build is long).
    let store = std::env::var_os("REFINE_NUMPY_STORE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| ws.root().join("store"));
    let start = std::time::Instant::now();
    let mut c = ws.cmd_in(&store);
    c.args(["--arch", &arch, "build", "--json", "//repairs:numpy"]);
    let r: Run = c.output().unwrap().into();
    r.ok();
    eprintln!("numpy for {arch}: {:?}", start.elapsed());
    let dist = ws.root().join("dist");
    let wheel = std::fs::read_dir(&dist)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("numpy-") && n.ends_with(".whl"))
        .expect("a numpy wheel");
    assert!(wheel.contains(&format!("_{arch}")), "{wheel}");
    let files = refine::wheel::read_wheel(&dist.join(&wheel)).unwrap();
    assert!(
        files.iter().any(|f| f.name.contains(".libs/libopenblas")),
        "OpenBLAS grafted into {wheel}"
    );
    let image = image_tag(&r, "//images:bookworm-sci");
    let script = r#"set -e
python3 -m venv /tmp/v
/tmp/v/bin/pip install -q --no-index /dist/numpy-*.whl
/tmp/v/bin/python - <<'PY'
import numpy as np
np.show_config()
a = np.array([[3.0, 1.0], [1.0, 2.0]])
x = np.linalg.solve(a, np.array([9.0, 8.0]))
assert np.allclose(x, [2.0, 3.0]), x
print("solve ok", x)
# An FFT with a known answer: a cosine of frequency 3 over 64 points.
t = np.arange(64)
spec = np.fft.rfft(np.cos(2 * np.pi * 3 * t / 64))
peak = int(np.argmax(np.abs(spec)))
assert peak == 3 and abs(abs(spec[3]) - 32.0) < 1e-9, (peak, abs(spec[3]))
print("fft ok", peak)
# Byte order: big-endian doubles have the bytes IEEE 754 says, round-trip
# exactly, and convert to little-endian ones that are equal.
import sys, platform
v = np.array([1.5, -2.25, 1e300], dtype='>f8')
raw = v.tobytes()
assert raw[:8] == bytes.fromhex('3ff8000000000000'), raw[:8].hex()
assert (np.frombuffer(raw, dtype='>f8') == v).all()
le = v.astype('<f8')
assert le.tobytes()[:8] == bytes.fromhex('000000000000f83f') and (le == v).all()
assert (sys.byteorder == 'big') == (platform.machine() == 's390x')
print("byteorder ok", sys.byteorder, platform.machine())
PY
"#;
    let (ok, out, err) = in_container(&image, &arch, &[(&dist, "/dist")], script);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.to_lowercase().contains("openblas"),
        "show_config names OpenBLAS:\n{out}"
    );
    assert!(
        out.contains("/opt/packs/openblas"),
        "the pack's OpenBLAS:\n{out}"
    );
    assert!(out.contains("solve ok"), "{out}");
    assert!(out.contains("fft ok 3"), "{out}");
    assert!(out.contains("byteorder ok"), "{out}");
}
