# Shared helpers for refine recipes. Source it with
#   . "$REFINE_WS/recipes/lib/common.sh"
# and list it in the rule's `includes` (refine mounts only declared files).
#
# The recipe contract (see README.md): REFINE_OUT is the only writable
# output, REFINE_SRC holds the sources read-only, /build is scratch, packs
# are mounted at /opt/packs/<name> and listed in DEPS_PREFIXES.

log() { printf '==> %s\n' "$*"; }

# A hybrid image's settings for the host's compilers that build for the
# target (Rust's target, PyO3's target Python): see
# recipes/images/cross-toolchain.sh.
if [ -f /etc/refine/cross.env ]; then
    . /etc/refine/cross.env
fi

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Say which compiler this build runs (REFINE_TOOLCHAIN: native, cross or
# emulated), and what it is: the host's cross compiler is an x86-64 binary.
log_toolchain() {
    cc_path=$(command -v cc || command -v gcc || true)
    [ -n "$cc_path" ] || { log "toolchain: $REFINE_TOOLCHAIN, no C compiler"; return 0; }
    real=$(readlink -f "$cc_path")
    what=$(file -b "$real" 2>/dev/null | cut -d, -f1-2)
    log "toolchain: $REFINE_TOOLCHAIN; cc is $real ($what), target $(cc -dumpmachine)"
}

# The one source file matching a glob (default: the only file), as a path.
source_file() {
    pattern=${1:-*}
    set -- "$REFINE_SRC"/$pattern
    [ -e "$1" ] || die "no source matching '$pattern' in $REFINE_SRC"
    [ $# -eq 1 ] || die "more than one source matches '$pattern': $*"
    printf '%s\n' "$1"
}

# Unpack an archive into /build/src and print the directory it made.
unpack() {
    archive=$1
    dest=/build/src
    rm -rf "$dest"
    mkdir -p "$dest"
    case "$archive" in
        *.tar.gz|*.tgz|*.tar.xz|*.tar.bz2|*.tar)
            tar -xf "$archive" -C "$dest" --no-same-owner ;;
        *.zip|*.whl)
            "${PYTHON:-python3}" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$archive" "$dest" ;;
        *) die "do not know how to unpack $archive" ;;
    esac
    # A single top-level directory is the source tree.
    set -- "$dest"/*
    if [ $# -eq 1 ] && [ -d "$1" ]; then
        printf '%s\n' "$1"
    else
        printf '%s\n' "$dest"
    fi
}
