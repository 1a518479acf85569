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

# The sdist, and (for a Rust extension) its vendored crates beside it.
sdist=
crates=
for f in "$REFINE_SRC"/*; do
    case "$f" in
        *.crates.tar) crates=$f ;;
        *) [ -z "$sdist" ] || die "more than one source besides the crates: $sdist $f"; sdist=$f ;;
    esac
done
[ -n "$sdist" ] || die "no source in $REFINE_SRC"
src=$(unpack "$sdist")
log "building $REFINE_LABEL from $(basename "$src") with $("$PYTHON" --version)"
log_toolchain
if [ -n "$crates" ]; then
    # Cargo offline, from the vendored crates only: a crate that is not
    # there is an error, never a download.
    mkdir -p /build/crates "$HOME/.cargo"
    tar -xf "$crates" -C /build/crates --no-same-owner
    export CARGO_HOME="$HOME/.cargo" CARGO_NET_OFFLINE=true MATURIN_NO_INSTALL_RUST=1
    cat > "$CARGO_HOME/config.toml" <<CARGO
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "/build/crates/vendor"

[net]
offline = true
CARGO
    log "rust: $(rustc --version 2>/dev/null || echo 'no rustc'), $(cargo --version 2>/dev/null || echo 'no cargo'), crates vendored from $(basename "$crates")"
fi

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
