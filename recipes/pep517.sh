#!/bin/sh
# Build the wheel of one Python source distribution with PEP 517, offline.
#
# Build requirements come only from $REFINE_WHEELS (the rule's
# build_requires); pip builds in an isolated environment made from them,
# exactly as the project's pyproject.toml asks, and fails if one is missing.
# --use-pep517 holds for projects without pyproject.toml too (setuptools'
# legacy backend, from $REFINE_WHEELS): pip would otherwise run setup.py
# with whatever setuptools the runtime happens to carry.
set -eu
. "$REFINE_WS/recipes/lib/common.sh"

src=$(unpack "$(source_file)")
log "building $REFINE_LABEL from $(basename "$src") with $("$PYTHON" --version)"

set --
if [ -n "${REFINE_CONFIG_SETTINGS:-}" ]; then
    while IFS= read -r kv; do
        [ -n "$kv" ] && set -- "$@" "--config-settings=$kv"
    done <<CS
$REFINE_CONFIG_SETTINGS
CS
fi

cd "$src"
"$PYTHON" -m pip wheel --verbose --use-pep517 --no-deps --no-index \
    --find-links "$REFINE_WHEELS" --wheel-dir "$REFINE_OUT" "$@" .
ls -l "$REFINE_OUT"
