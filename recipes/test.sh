#!/bin/sh
# Test a set's wheels as a user gets them: installed together into a clean
# virtual environment of the target's Python, with no packs mounted and no
# network, then `pip check`, then for every wheel an import of its
# top-level modules, then each rule's own `test` command. The frontend (uv,
# native in a hybrid image) makes the environment, installs and checks.
# Where refine gives $REFINE_HOST_PYTHON (a hybrid image keeps the host's
# interpreter of the target's Debian build and version), the script that
# drives it all runs there: it only starts programs and reads zip files and
# JSON. What runs the wheels' code (each import, each rule's test, and the
# environment uv makes and checks) is the target's Python.
#
#   REFINE_WHEELS  the set's wheels (read-only)
#   REFINE_TESTS   one line per member: LABEL<TAB>COMMAND (COMMAND may be
#                  empty: the import of its modules is its test)
#
# The report goes to $REFINE_OUT/report.json and, between markers, to the
# log (refine reads it there when a test fails). Exit 1 if anything failed.
set -eu
. "$REFINE_WS/recipes/lib/common.sh"
. "$REFINE_WS/recipes/lib/frontend.sh"
REFINE_UV=$(frontend)
export REFINE_UV

"$REFINE_UV" venv --offline --no-config --python "$PYTHON" /build/venv
export PATH="/build/venv/bin:$PATH" VIRTUAL_ENV=/build/venv
mkdir -p /build/t
cd /build/t
driver=$PYTHON
if [ -n "${REFINE_HOST_PYTHON:-}" ]; then
    driver=$REFINE_HOST_PYTHON
    log "test driver in the host's Python ($("$driver" --version)); the wheels run in the target's"
fi
log "installing the set's wheels together with $("$PYTHON" --version)"
REFINE_TARGET_PYTHON=/build/venv/bin/python exec "$driver" - <<'PY'
import json, os, subprocess, sys, zipfile

wheels_dir = os.environ["REFINE_WHEELS"]
wheels = sorted(f for f in os.listdir(wheels_dir) if f.endswith(".whl"))
report = {"install": None, "pip_check": None, "wheels": [], "tests": []}

def run(cmd, shell=False):
    p = subprocess.run(cmd, shell=shell, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = p.stdout[-4000:]
    sys.stdout.write(p.stdout)
    sys.stdout.flush()
    return p.returncode == 0, out

# The target's interpreter in the environment (the driver may be the host's).
python = os.environ["REFINE_TARGET_PYTHON"]
uv = [os.environ["REFINE_UV"], "pip"]
at = ["--python", python, "--offline", "--no-config"]
ok, out = run(uv + ["install"] + at + ["--no-index", "--no-deps", "--find-links", wheels_dir]
              + [os.path.join(wheels_dir, w) for w in wheels])
report["install"] = {"ok": ok, "output": out}
if ok:
    ok, out = run(uv + ["check"] + at)
    report["pip_check"] = {"ok": ok, "output": out}

def modules(path):
    # The wheel's own files say what it installs at the top level
    # (top_level.txt can be stale: it may name an extension that lives
    # inside the package).
    with zipfile.ZipFile(path) as z:
        mods = set()
        for n in z.namelist():
            top = n.split("/")[0]
            if top.endswith(".dist-info") or top.endswith(".data") or top == "__pycache__":
                continue
            if "/" in n:
                mods.add(top)
            elif n.endswith(".py") or n.endswith(".so"):
                mods.add(top.split(".")[0])
        return sorted(m for m in mods if m.isidentifier() and m not in ("test", "tests"))

if report["install"]["ok"]:
    for w in wheels:
        mods = modules(os.path.join(wheels_dir, w))
        code = "".join("import %s\n" % m for m in mods) or "pass\n"
        ok, out = run([python, "-c", code])
        report["wheels"].append({"wheel": w, "modules": mods, "ok": ok, "output": out})
        print("refine-test: %s %s (import %s)" % ("PASS" if ok else "FAIL", w, ", ".join(mods) or "nothing"))
    for line in os.environ.get("REFINE_TESTS", "").splitlines():
        label, _, command = line.partition("\t")
        if not command.strip():
            continue
        ok, out = run(command, shell=True)
        report["tests"].append({"label": label, "command": command, "ok": ok, "output": out})
        print("refine-test: %s %s (%s)" % ("PASS" if ok else "FAIL", label, command))

text = json.dumps(report, indent=1, sort_keys=True)
with open(os.path.join(os.environ["REFINE_OUT"], "report.json"), "w") as f:
    f.write(text + "\n")
print("refine-test-report-begin")
print(json.dumps(report, sort_keys=True))
print("refine-test-report-end")
passed = (report["install"]["ok"] and report["pip_check"] and report["pip_check"]["ok"]
          and all(x["ok"] for x in report["wheels"]) and all(x["ok"] for x in report["tests"]))
sys.exit(0 if passed else 1)
PY
