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

# A floor older than the image's glibc (REFINE_CC_TARGET, e.g.
# s390x-linux-gnu.2.17, and REFINE_ZIG, the host's Zig): C is compiled and
# linked by `zig cc` against that glibc's symbol versions, under every name a
# build calls its C compiler by (cc, gcc, the target's <triplet>-gcc, clang),
# first on PATH. Zig's own headers come first, then the image's
# (-idirafter: what a pack or the image provides that Zig does not). GCC 12
# lets some old C through with a warning that clang makes an error: the
# same leniency here. lld refuses a version script naming a symbol the
# library does not define, GNU ld does not: --undefined-version. A caller's
# own --target (cc-rs passes Rust's triplet) is dropped: the target is the
# floor's. For Rust, the target's linker and CC go through it too
# (cargo-zigbuild's way); build scripts keep the host's compiler.
# C++ goes through `zig c++` (c++, g++, the target's <triplet>-g++, clang++,
# and cc given a C++ source or `-x c++`): LLVM's libc++ and libc++abi,
# built by Zig for the floor, are linked statically (Zig builds them with
# hidden symbols: the extension exports none of them), so a C++ extension needs
# nothing newer than the floor's glibc (the image's libstdc++ is GCC 12's,
# GLIBCXX_3.4.30, far above manylinux2014's 3.4.19; manylinux's own images
# get there with devtoolset's static libstdc++ parts, which Debian has
# not). A link by cc of objects that reference the C++ runtime (a package
# that compiles C++ with CXX and links with LDSHARED) links as C++ too.
# Zig builds libc++ for the target on the first C++ use in a build (about a
# minute, native). Rust's cc-rs C++ keeps the image's g++.
floor_toolchain() {
    [ -n "${REFINE_CC_TARGET:-}" ] || return 0
    [ -x "${REFINE_ZIG:-}" ] || die "REFINE_CC_TARGET is $REFINE_CC_TARGET but there is no Zig at '${REFINE_ZIG:-}'"
    # Where the wrapper and Zig's cache live (a test points it elsewhere).
    floor=${REFINE_FLOOR_DIR:-/build/floor}
    fb=$floor/bin
    mkdir -p "$fb"
    export ZIG_GLOBAL_CACHE_DIR="$floor/cache" ZIG_LOCAL_CACHE_DIR="$floor/cache"
    triplet=${REFINE_CC_TARGET%.*.*}
    for lang in cc c++; do
        cat > "$fb/$lang" <<CC
#!/bin/sh
# refine's floor: zig $lang for $REFINE_CC_TARGET (recipes/lib/common.sh).
# -dumpmachine answers as GCC does (zig's clang names the floor's glibc in
# the triplet, and complains of it).
if [ "\$*" = -dumpmachine ]; then echo $triplet; exit 0; fi
lang=$lang
link=yes
opt=
vscript=
for a in "\$@"; do
    shift
    # A version script given after a bare -Wl,--version-script (krb5's
    # makefiles: GCC hands the next word to the linker as an input file,
    # Zig does not); libtool's -Wl,--version-script -Wl,FILE stays so.
    if [ -n "\$vscript" ]; then
        vscript=
        case "\$a" in
            -Wl,*) set -- "\$@" -Wl,--version-script ;;
            *) a="-Wl,--version-script,\$a" ;;
        esac
    fi
    case "\$a" in
        -Wl,--version-script) vscript=yes; continue ;;
        --target=*|-target=*) continue ;;
        -O*) opt=yes ;;
        # No LTO: with it zig builds libc++ as bitcode, whose s390x code
        # then links as non-PIC into a shared object (R_390_PC32DBL).
        -flto|-flto=*|-ffat-lto-objects|-fno-fat-lto-objects) continue ;;
        # GNU ld's short name for -soname (krb5's libraries), which Zig's
        # linker does not take.
        -Wl,-h,*) a="-Wl,-soname,\${a#-Wl,-h,}" ;;
        # An object file named .so (krb5 names its PIC objects so): Zig
        # takes a .so for a shared library. It gets a name ending in .o.
        *.so)
            if [ -f "\$a" ]; then
                case "\$(od -An -tx1 -j16 -N2 "\$a" | tr -d ' ')" in
                    0001|0100)
                        objn=\$((\${objn:-0} + 1))
                        mkdir -p $floor/objs
                        ln -sf "\$(readlink -f "\$a")" "$floor/objs/\$\$-\$objn.o"
                        a="$floor/objs/\$\$-\$objn.o" ;;
                esac
            fi ;;
        -c|-E|-S|-M|-MM) link=no ;;
        *.cpp|*.cc|*.cxx|*.C|*.c++|*.CPP) lang=c++ ;;
    esac
    [ "\$prev" = -x ] && [ "\$a" = c++ ] && lang=c++
    [ "\$a" = -xc++ ] && lang=c++
    prev=\$a
    set -- "\$@" "\$a"
done
# Objects (or archives) that need the C++ runtime, linked by cc.
if [ \$lang = cc ] && [ \$link = yes ]; then
    for a in "\$@"; do
        case "\$a" in
            *.o|*.a)
                if [ -f "\$a" ] && grep -aqE '_ZNSt3__1|__gxx_personality_v0|__cxa_begin_catch|_Znwm|_ZdlPv' "\$a"; then
                    lang=c++
                fi ;;
        esac
    done
fi
# No -O at all (a link step, a build that drops CFLAGS): Zig would take
# its Debug mode, and build a debug compiler runtime and the
# undefined-behaviour sanitizer's for the link (about 14 s of every build
# at the floor, on top of the optimized runtime its -O2 compiles need);
# the contract's -O2 instead, as in CFLAGS.
[ -n "\$opt" ] || set -- -O2 "\$@"
exec "$REFINE_ZIG" \$lang -target $REFINE_CC_TARGET \\
    -Wno-error=implicit-function-declaration -Wno-error=implicit-int \\
    -Wno-error=int-conversion -Wno-error=incompatible-function-pointer-types \\
    -Wno-unused-command-line-argument -Wl,--undefined-version \\
    "\$@" -idirafter /usr/include -idirafter /usr/include/$triplet
CC
        chmod 755 "$fb/$lang"
    done
    for name in gcc clang "$triplet-gcc" "$triplet-gcc-12"; do
        ln -sf cc "$fb/$name"
    done
    for name in g++ clang++ "$triplet-g++" "$triplet-g++-12"; do
        ln -sf c++ "$fb/$name"
    done
    # Zig builds its crt objects and glibc stubs for the target on first
    # use: here, from /, so that nothing it makes names the build's
    # directories, and so that the log shows that it works.
    printf 'int main(void) { return 0; }\n' > "$floor/probe.c"
    (cd / && "$fb/cc" -o "$floor/probe" "$floor/probe.c") \
        || die "zig cc cannot link for $REFINE_CC_TARGET"
    export PATH="$fb:$PATH" CC="$fb/cc" CXX="$fb/c++" LDSHARED="$fb/cc -shared" \
        LDCXXSHARED="$fb/c++ -shared"
    # Rust: rustc's target triplet (s390x-unknown-linux-gnu).
    rt="${triplet%%-*}-unknown-${triplet#*-}"
    rv=$(echo "$rt" | tr 'a-z-' 'A-Z_')
    rl=$(echo "$rt" | tr '-' '_')
    export "CARGO_TARGET_${rv}_LINKER=$fb/cc" "CC_${rl}=$fb/cc"
    log "floor: $REFINE_CC_TARGET, C compiled and linked by zig cc ($("$REFINE_ZIG" version)), C++ by zig c++ (libc++, static)"
}

# Say which compiler this build runs (REFINE_TOOLCHAIN: native, cross or
# emulated), and what it is: the host's cross compiler is an x86-64 binary.
log_toolchain() {
    cc_path=$(command -v cc || command -v gcc || true)
    [ -n "$cc_path" ] || { log "toolchain: $REFINE_TOOLCHAIN, no C compiler"; return 0; }
    real=$(readlink -f "$cc_path")
    # At a floor, cc is the wrapper around Zig: say what Zig is.
    [ -z "${REFINE_CC_TARGET:-}" ] || real=$REFINE_ZIG
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
