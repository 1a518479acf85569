#!/bin/sh
# Repair wheels with auditwheel: graft the shared libraries they need (from
# the packs in DEPS_PREFIXES, found through LD_LIBRARY_PATH) and tag them
# with the platform's policy ($REFINE_POLICY, e.g. manylinux_2_36_s390x).
# Pure wheels have nothing to repair and are passed through.
#
# auditwheel runs in a virtual environment of the target's Python that the
# frontend (uv: native in a hybrid image) makes and fills from
# $REFINE_TOOLS offline; `python -m venv` with pip in it took 33 s of an
# emulated repair's 48.
set -eu
. "$REFINE_WS/recipes/lib/common.sh"
. "$REFINE_WS/recipes/lib/frontend.sh"
uv=$(frontend)

"$uv" venv --offline --no-config --python "$PYTHON" /build/venv
"$uv" pip install --offline --no-config --python /build/venv/bin/python \
    --no-index --find-links "$REFINE_TOOLS" auditwheel

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
                --wheel-dir "$REFINE_OUT" "$wheel" || {
                /build/venv/bin/auditwheel show "$wheel" || true
                exit 1
            } ;;
    esac
done
ls -l "$REFINE_OUT"
