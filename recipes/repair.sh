#!/bin/sh
# Repair wheels with auditwheel: graft the shared libraries they need (from
# the packs in DEPS_PREFIXES, found through LD_LIBRARY_PATH) and tag them
# with the platform's policy ($REFINE_POLICY, e.g. manylinux_2_36_s390x).
# Pure wheels have nothing to repair and are passed through.
set -eu
. "$REFINE_WS/recipes/lib/common.sh"

"$PYTHON" -m venv /build/venv
/build/venv/bin/pip install --quiet --no-index --find-links "$REFINE_TOOLS" auditwheel
/build/venv/bin/auditwheel --version

for wheel in "$REFINE_INPUT"/*.whl; do
    case "$wheel" in
        *-none-any.whl)
            log "$(basename "$wheel") is pure: nothing to repair"
            cp "$wheel" "$REFINE_OUT"/ ;;
        *)
            log "repairing $(basename "$wheel") for $REFINE_POLICY"
            /build/venv/bin/auditwheel show "$wheel" || true
            /build/venv/bin/auditwheel repair --plat "$REFINE_POLICY" \
                --wheel-dir "$REFINE_OUT" "$wheel" ;;
    esac
done
ls -l "$REFINE_OUT"
