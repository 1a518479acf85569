#!/bin/sh
# Repair wheels with auditwheel: graft the shared libraries they need (from
# the packs in DEPS_PREFIXES, found through LD_LIBRARY_PATH) and tag them
# with the platform's policy ($REFINE_POLICY, e.g. manylinux_2_36_s390x).
# Pure wheels have nothing to repair and are passed through.
#
# Then honest tags: `auditwheel repair --plat P` tags a wheel that needed
# grafting with P alone, even when its symbols and libraries allow older
# policies. auditwheel's own analysis of the repaired wheel (what
# `auditwheel show` prints) names the oldest policy it meets; that policy's
# tags are added the way repair adds them to a wheel that needed no
# grafting, and `<wheel>.policy.json` beside it says which policy it meets
# and which versioned symbols (or libraries) kept it from the next older
# one (refine's manifest, provenance and history carry it).
#
# auditwheel runs in a virtual environment of the target's Python that the
# frontend (uv: native in a hybrid image) makes and fills from
# $REFINE_TOOLS offline; `python -m venv` with pip in it took 33 s of an
# emulated repair's 48.
set -eu
. "$REFINE_WS/recipes/lib/common.sh"
. "$REFINE_WS/recipes/lib/frontend.sh"
uv=$(frontend)

#
# Where refine gives $REFINE_HOST_PYTHON (a hybrid image keeps the host's
# interpreter of the target's Debian build and version), that venv is the
# host's: auditwheel only reads and rewrites files (ELF headers, symbol
# versions, zip archives), and asks the machine it runs on only through
# platform.machine() (the architecture whose policies apply, and $PLATFORM
# in rpaths), which a .pth line of the venv answers with the target's. The
# repaired wheels are the same bytes (`refine verify --against frontend`).
py=$PYTHON
[ -z "${REFINE_HOST_PYTHON:-}" ] || py=$REFINE_HOST_PYTHON
"$uv" venv --offline --no-config --python "$py" /build/venv
"$uv" pip install --offline --no-config --python /build/venv/bin/python \
    --no-index --find-links "$REFINE_TOOLS" auditwheel
if [ -n "${REFINE_HOST_PYTHON:-}" ]; then
    site=$(/build/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    printf 'import platform; platform.machine = lambda: "%s"\n' "$REFINE_ARCH" > "$site/refine-target-machine.pth"
    [ "$(/build/venv/bin/python -c 'import platform; print(platform.machine())')" = "$REFINE_ARCH" ] ||
        die "the host's venv does not answer $REFINE_ARCH for platform.machine()"
    log "auditwheel in the host's Python ($("$py" --version)), for $REFINE_ARCH"
else
    log "auditwheel in the target's Python ($("$py" --version))"
fi

# When a wheel does not meet its floor: which file of it, or of the packs
# it links (found as the loader would, through LD_LIBRARY_PATH), needs
# which glibc symbol version newer than the floor's, one line each.
floor_offenders() {
    /build/venv/bin/python - "$1" "$REFINE_POLICY" <<'PY' || true
import os, re, sys, zipfile, tempfile
from elftools.elf.elffile import ELFFile
from elftools.elf.dynamic import DynamicSection
from elftools.elf.gnuversions import GNUVerNeedSection

wheel, policy = sys.argv[1], sys.argv[2]
legacy = {"manylinux2014": (2, 17), "manylinux2010": (2, 12), "manylinux1": (2, 5)}
m = re.match(r"manylinux_(\d+)_(\d+)_", policy)
floor = (int(m[1]), int(m[2])) if m else next(
    (v for k, v in legacy.items() if policy.startswith(k + "_")), None)
if floor is None:
    sys.exit(0)
dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]


def scan(path):
    with open(path, "rb") as f:
        if f.read(4) != b"\x7fELF":
            return [], []
        f.seek(0)
        elf = ELFFile(f)
        needed, too_new = [], []
        for sec in elf.iter_sections():
            if isinstance(sec, DynamicSection):
                needed += [t.needed for t in sec.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
            elif isinstance(sec, GNUVerNeedSection):
                for vn, auxes in sec.iter_versions():
                    for aux in auxes:
                        v = re.fullmatch(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?", aux.name)
                        if v and (int(v[1]), int(v[2])) > floor:
                            too_new.append(f"{vn.name}: {aux.name}")
        return needed, sorted(set(too_new))


def origin(path):
    m = re.match(r"/opt/packs/([^/]+)/", path)
    return f"//packs:{m[1]}" if m else "in the wheel"


said = False
with tempfile.TemporaryDirectory() as tmp:
    zipfile.ZipFile(wheel).extractall(tmp)
    work = [os.path.join(r, n) for r, _, ns in os.walk(tmp) for n in ns]
    seen = set()
    while work:
        path = work.pop()
        if path in seen or not os.path.isfile(path):
            continue
        seen.add(path)
        needed, too_new = scan(path)
        shown = os.path.relpath(path, tmp) if path.startswith(tmp) else path
        if too_new:
            said = True
            print(f"refine: {shown} ({origin(path)}) does not meet {policy}: it needs {', '.join(too_new)}")
        work += [os.path.join(d, n) for n in needed for d in dirs if os.path.exists(os.path.join(d, n))]
if not said:
    print(f"refine: no glibc symbol newer than {policy} allows; see auditwheel's words above")
PY
}

mkdir /build/repaired
for wheel in "$REFINE_INPUT"/*.whl; do
    case "$wheel" in
        *-none-any.whl)
            log "$(basename "$wheel") is pure: nothing to repair"
            cp "$wheel" "$REFINE_OUT"/ ;;
        *)
            log "repairing $(basename "$wheel") for $REFINE_POLICY"
            # What it found is in repair's own log; `show` only when it
            # fails (each emulated auditwheel run is seconds).
            /build/venv/bin/auditwheel repair --plat "$REFINE_POLICY" \
                --wheel-dir /build/repaired "$wheel" || {
                /build/venv/bin/auditwheel show "$wheel" || true
                floor_offenders "$wheel"
                exit 1
            } ;;
    esac
done

# One interpreter for every repaired wheel (each start is seconds emulated).
/build/venv/bin/python - /build/repaired "$REFINE_OUT" <<'PY'
import json, os, shutil, sys
from auditwheel.policy import WheelPolicies
from auditwheel.wheel_abi import analyze_wheel_abi
from auditwheel.wheeltools import InWheelCtx, add_platforms

src, out = sys.argv[1], sys.argv[2]
pol = WheelPolicies()


def limits(info, older):
    """What of the wheel the policy `older` does not allow."""
    allowed = {
        name: {name + "_" + v for v in versions}
        for name, versions in older["symbol_versions"].items()
    }
    why = []
    for lib, versions in sorted(info.versioned_symbols.items()):
        for v in sorted(versions):
            name = v.partition("_")[0]
            if name in allowed and v not in allowed[name]:
                why.append(f"{lib}: {v}")
    refs = info.external_refs.get(older["name"], {})
    for lib in sorted(refs.get("libs", {})):
        why.append(f"{lib} (a library {older['name']} does not provide)")
    for lib, syms in sorted(refs.get("blacklist", {}).items()):
        why.append(f"{lib}: {', '.join(sorted(syms))} (symbols {older['name']} forbids)")
    return why


for name in sorted(os.listdir(src)):
    wheel = os.path.join(src, name)
    info = analyze_wheel_abi(pol, wheel, frozenset())
    met = pol.get_policy_by_name(info.overall_tag)
    tags = [met["name"]] + met["aliases"]
    older = sorted(
        (p for p in pol.policies if p["priority"] > met["priority"]),
        key=lambda p: p["priority"],
    )
    why = limits(info, older[0]) if older else []
    have = name[: -len(".whl")].rsplit("-", 1)[1].split(".")
    if all(t in have for t in tags):
        final = name
        shutil.move(wheel, os.path.join(out, final))
    else:
        # The oldest first, as repair names a wheel that needed no grafting.
        final = "{}-{}.whl".format(
            name[: -len(".whl")].rsplit("-", 1)[0],
            ".".join(tags + [t for t in have if t not in tags]),
        )
        ctx = InWheelCtx(wheel)
        with ctx:
            ctx.out_wheel = wheel
            ctx.out_wheel = add_platforms(ctx, tags)
        shutil.move(ctx.out_wheel, os.path.join(out, final))
    report = {
        "wheel": final,
        "policy": met["name"],
        "tags": tags,
        "older": older[0]["name"] if older else None,
        "limited_by": why,
    }
    with open(os.path.join(out, final + ".policy.json"), "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
        f.write("\n")
    said = f"{final} meets {met['name']}"
    if older and why:
        said += f"; not {older[0]['name']}: {', '.join(why)}"
    print("refine: " + said)
PY
ls -l "$REFINE_OUT"
