#!/bin/sh
# Build the wheel of one Python source distribution with PEP 517, offline.
#
# The frontend is uv (`uv build`): build requirements come only from
# $REFINE_WHEELS (the rule's build_requires); uv makes an isolated
# environment from them, exactly as the project's pyproject.toml asks
# (setuptools' legacy backend for a project without one), and fails if one
# is missing. The requirements the rule names itself
# ($REFINE_BUILD_REQUIRES, one project a line) are added to what the
# project declares, so that they are installed, not only offered: a build
# script that imports a module its sdist forgot to declare gets it. uv
# itself is the one that runs natively in this image (in a hybrid image,
# the host's): resolving, unpacking and installing the build requirements
# cost no emulation.
#
# The backend's hooks run in the target's Python ($PYTHON), or, where
# refine gives $REFINE_HOST_PYTHON (a hybrid image that keeps the host's
# interpreter of the same Debian build and version), in the host's, set up
# for the target the way CPython's own cross builds are: the target's
# sysconfig (_PYTHON_SYSCONFIGDATA_NAME: its EXT_SUFFIX, SOABI, compiler
# and flags) and platform (_PYTHON_HOST_PLATFORM: the wheel's tag), and
# os.uname() (so platform.machine()) answers the target's machine, as
# crossenv's does: a setup.py that picks flags or sources by machine picks
# the target's (a sitecustomize on PYTHONPATH, which the isolated build
# environment keeps). Written here rather than taken from crossenv: its
# environment is made with the target's interpreter at hand, and these are
# the three variables and one function it sets that matter to a build;
# sys.byteorder stays the host's (the interpreter's own work depends on
# it), and `refine verify --against frontend` compares the bytes. The extensions
# are compiled by the same cross compiler against the same headers either
# way. A build that needs the target's interpreter (one that imports what
# it just compiled, or build requirements with compiled code, which the
# host's cannot load) gets it: the host's is not used when a requirement
# wheel is not pure, and a build that fails with it is built again from a
# fresh tree with the target's, said in the log.
set -eu
. "$REFINE_WS/recipes/lib/common.sh"
. "$REFINE_WS/recipes/lib/frontend.sh"
uv=$(frontend)

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
log "building $REFINE_LABEL from $(basename "$src")"
# The programs the packs install (pg_config, xml2-config…) are on PATH, as
# their headers and libraries are on the compiler's: build scripts ask
# them where the library is (psycopg2 runs pg_config).
old_ifs=$IFS
IFS=:
for p in $DEPS_PREFIXES; do
    if [ -d "$p/bin" ]; then PATH="$p/bin:$PATH"; fi
done
IFS=$old_ifs
export PATH
floor_toolchain
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

# Add the rule's requirements to `[build-system] requires` of the source
# tree (as fromager does): uv's own extra-build-dependencies apply only to
# a project whose name it can read statically, which the old setup.py-only
# sdists that forget a requirement are not. A project without a
# pyproject.toml, or without [build-system], gets the table PEP 517 reads
# for it (setuptools' legacy backend, as uv does); a declared `requires`
# array gets the names at its start. Anything else is an error, never a
# build that quietly lacks them.
add_build_requires() {
    names=$1
    quoted=
    for n in $names; do quoted="$quoted\"$n\", "; done
    if [ ! -f pyproject.toml ] || ! grep -q '^[[:space:]]*\[build-system\]' pyproject.toml; then
        printf '\n[build-system]\nrequires = [%s"setuptools>=40.8.0"]\nbuild-backend = "setuptools.build_meta:__legacy__"\n' \
            "$quoted" >> pyproject.toml
    else
        awk -v add="$quoted" '
            /^[[:space:]]*\[/ { section = $0; gsub(/[[:space:]]/, "", section) }
            !done && section == "[build-system]" && /^[[:space:]]*requires[[:space:]]*=[[:space:]]*\[/ {
                sub(/\[/, "[" add); done = 1
            }
            { print }
            END { if (!done) exit 3 }
        ' pyproject.toml > /build/pyproject.toml.new ||
            die "pyproject.toml has [build-system] but no \`requires = [\` line refine can add $names to"
        mv /build/pyproject.toml.new pyproject.toml
    fi
    log "build requirements the rule names, added to the project's: $(echo $names)"
}
prepare() {
    if [ -n "${REFINE_BUILD_REQUIRES:-}" ]; then
        (cd "$src" && add_build_requires "$REFINE_BUILD_REQUIRES")
    fi
}
prepare

set --
if [ -n "${REFINE_CONFIG_SETTINGS:-}" ]; then
    while IFS= read -r kv; do
        [ -n "$kv" ] && set -- "$@" "--config-setting=$kv"
    done <<CS
$REFINE_CONFIG_SETTINGS
CS
fi

# --no-config and --no-sources: the project's own uv settings ([tool.uv],
# uv.toml) do not apply; the rule says how it builds. --force-pep517: the
# backend always runs (uv would build a uv_build project itself).
# Bytecode is written while the hooks run, as any frontend lets Python do
# (the contract's PYTHONDONTWRITEBYTECODE is for what recipes install):
# the build environment is fresh scratch, and the second hook then loads
# the backend the first compiled (setuptools: 1.8 s of the emulated
# Python's 3.6 s import). uv writes a .gitignore beside the wheel, so it
# builds into scratch.
# A rule with no build requirements has no $REFINE_WHEELS: an empty
# directory then, so that what the project asks for is missing, not the
# directory.
wheels=$REFINE_WHEELS
[ -d "$wheels" ] || { wheels=/build/no-wheels; mkdir -p "$wheels"; }
# The build, in the interpreter $hooks_py, with the variables $hooks_env
# (words without spaces); its arguments are the config settings.
build_with() {
    # shellcheck disable=SC2086
    (cd "$src" && env -u PYTHONDONTWRITEBYTECODE $hooks_env "$uv" build --wheel --offline --no-index \
        --no-config --no-sources --force-pep517 --find-links "$wheels" \
        --python "$hooks_py" --out-dir /build/dist "$@" .)
}

hooks=target
if [ -n "${REFINE_HOST_PYTHON:-}" ]; then
    impure=
    for w in "$wheels"/*.whl; do
        [ -e "$w" ] || continue
        case "${w##*/}" in *-none-any.whl) ;; *) impure="$impure ${w##*/}" ;; esac
    done
    if [ -n "$impure" ]; then
        log "frontend python: the target's: the host's cannot load the build requirements with compiled code:$impure"
    else
        hooks=host
    fi
fi
if [ "$hooks" = host ]; then
    log "frontend python: the host's, set up for $REFINE_HOST_PYTHON_PLATFORM ($("$REFINE_HOST_PYTHON" --version), $REFINE_HOST_PYTHON_SYSCONFIG)"
    mkdir -p /build/host-python
    cat > /build/host-python/sitecustomize.py <<'PY'
# refine (recipes/pep517.sh): the host's Python, set up for the target.
import os as _os

_machine = _os.environ.get("REFINE_TARGET_MACHINE")
if _machine:
    _uname = _os.uname

    def _target_uname():
        u = _uname()
        return _os.uname_result((u.sysname, u.nodename, u.release, u.version, _machine))

    _os.uname = _target_uname
PY
    hooks_py=$REFINE_HOST_PYTHON
    hooks_env="_PYTHON_SYSCONFIGDATA_NAME=$REFINE_HOST_PYTHON_SYSCONFIG _PYTHON_HOST_PLATFORM=$REFINE_HOST_PYTHON_PLATFORM PYTHONPATH=/build/host-python REFINE_TARGET_MACHINE=$REFINE_ARCH"
    if [ "$(env $hooks_env "$hooks_py" -c 'import platform, sysconfig; print(platform.machine(), sysconfig.get_platform(), sysconfig.get_config_var("EXT_SUFFIX"))')" != \
        "$REFINE_ARCH $REFINE_HOST_PYTHON_PLATFORM .cpython-${REFINE_PYTHON_TAG#cp}-${REFINE_HOST_PYTHON_SYSCONFIG#_sysconfigdata__linux_}.so" ]; then
        env $hooks_env "$hooks_py" -c 'import platform, sysconfig; print(platform.machine(), sysconfig.get_platform(), sysconfig.get_config_var("EXT_SUFFIX"))' >&2 || true
        die "the host's Python does not answer as the target's ($REFINE_ARCH, $REFINE_HOST_PYTHON_PLATFORM)"
    fi
    if ! build_with "$@"; then
        log "frontend python: the build failed in the host's Python (above); building again from a fresh tree in the target's"
        hooks=target
        rm -rf /build/dist
        src=$(unpack "$sdist")
        prepare
    fi
fi
if [ "$hooks" = target ]; then
    log "frontend python: the target's ($("$PYTHON" --version))"
    hooks_py=$PYTHON
    hooks_env=
    build_with "$@"
fi
mv /build/dist/*.whl "$REFINE_OUT"/
ls -l "$REFINE_OUT"
