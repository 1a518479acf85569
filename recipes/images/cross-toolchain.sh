#!/bin/sh
# mmdebstrap hooks (run on the host) that make a foreign-architecture
# builder image hybrid: `sh cross-toolchain.sh PHASE ROOT` as a setup hook
# (before apt installs anything), an extract hook (the Essential: yes
# packages unpacked, before dpkg installs them), an essential hook (after
# they are installed, before the rest) and a customize hook (after). Debian's
# cross compilers for the target (the same GCC as the target's own, built
# to run on the host) replace the target's compilers, so compiling runs
# natively while everything else (Python above all) stays the target's.
#
#   REFINE_TRIPLET    the target's GNU triplet, e.g. s390x-linux-gnu
#   REFINE_HOST_ARCH  the host's Debian architecture, e.g. amd64
#   REFINE_HOST_TRIPLET  the host's GNU triplet, e.g. x86_64-linux-gnu
#   REFINE_HOST_LOADER   the host's ELF interpreter, e.g.
#                     /lib64/ld-linux-x86-64.so.2
#   REFINE_GCC        the GCC major version, e.g. 12
#   REFINE_UNPACK     cross compiler packages to unpack (their -cross
#                     library packages cannot be installed in a system
#                     whose native architecture is the target's; the
#                     target's own libgcc, libstdc++ and libgfortran are
#                     used instead, below)
#   REFINE_NATIVE     host packages whose programs replace the target's
#                     in place (the shells, coreutils, sed, grep, awk…):
#                     configure scripts, libtool and makefiles then run
#                     natively. Their libraries are the image's `:{host}`
#                     packages; their own files below /usr/lib/<host
#                     triplet> (perl-base's modules) come along.
#   REFINE_KEEP_HOST  host programs the image keeps beside the target's,
#                     as PACKAGE:/PATH, in /usr/lib/refine/host/bin under
#                     their own names (the host's python3.11, which runs
#                     wheels' PEP 517 hooks set up for the target): see
#                     keep_host below.
#   REFINE_STAND_IN   host programs that stand in for the target's only
#                     while the image is made, as PACKAGE:/PATH (dpkg's
#                     /usr/bin/dpkg-deb, which dpkg runs to take every
#                     package apart, decompressing it; the python that
#                     maintainer scripts byte-compile with): see
#                     stand_ins_start below.
#
# The essential hook already puts the host's programs in place of the
# Essential ones, with the host's libraries the image will install anyway
# (its `lib…:{host}` packages and libc6), so that the maintainer scripts of
# the remaining packages run natively too (ca-certificates' alone is 140
# certificates × a few sed and basename processes). It only brings forward
# what the customize hook does: every file it writes is one that the image
# ends with, byte for byte (dpkg later unpacks the same libraries over
# them; the opt-in test of tests/s390x.rs builds each hybrid image with
# and without this hook and compares their digests).
set -eu
phase=$1
root=$2
t=$REFINE_TRIPLET
v=$REFINE_GCC
loader=${REFINE_HOST_LOADER:-/lib64/ld-linux-x86-64.so.2}

# Packages of the image's mirror, downloaded into DIR by the host's apt
# with the image's configuration (its sources, lists and pins): the same
# files apt-get inside the image would fetch, without running an emulated
# apt.
download() {
    dir=$1
    shift
    (cd "$dir" && APT_CONFIG=${MMDEBSTRAP_APT_CONFIG:?the hook runs under mmdebstrap} apt-get download -q "$@")
}

# The host's dpkg programs take the target's architecture for their own.
# dpkg's native architecture is compiled in (its `ARCHITECTURE`, and the
# version banner `1.21.23 (amd64)`), and dpkg 1.21 reads no setting for it;
# a dpkg that takes itself for amd64 keeps a foreign package's records
# under arch-qualified names (`libc6:s390x.list`) and answers
# `--print-architecture` with the host's. The host's build of the same
# version of the same source differs from the target's in exactly those two
# strings, so FILE gets the target's name in both, in place (the names
# must be as long: amd64, arm64 and s390x are). A program that names no
# architecture (update-alternatives) is left as it is; one that names it
# other than once in each place is refused.
as_target_arch() {
    [ "$REFINE_HOST_ARCH" != "$2" ] || return 0
    if [ "${#REFINE_HOST_ARCH}" -ne "${#2}" ]; then
        echo "cross-toolchain.sh: the host's ${1##*/} cannot stand in for the target's: its architecture $REFINE_HOST_ARCH is not as long a name as $2 (take it out of cross.stand_in)" >&2
        exit 1
    fi
    FROM=$REFINE_HOST_ARCH TO=$2 perl -0777 -i -pe '
        my ($f, $t) = ($ENV{FROM}, $ENV{TO});
        my $n = s/\0\Q$f\E\0/\0$t\0/g;
        my $m = s/ \(\Q$f\E\)\0/ ($t)\0/g;
        die "cross-toolchain.sh: $ARGV names the architecture $n and $m times, not once each\n"
            unless ($n == 1 && $m == 1) || ($n == 0 && $m == 0);' "$1"
}

# FILE's ELF interpreter (the host's loader, $loader) rewritten in place
# as PATH, which must be no longer (the rest of the field is zeroes).
set_interp() {
    OLD=$loader NEW=$2 perl -0777 -i -pe '
        my ($o, $n) = ($ENV{OLD}, $ENV{NEW});
        die "cross-toolchain.sh: $n is longer than $o\n" if length($n) > length($o);
        my $to = $n . ("\0" x (length($o) - length($n)));
        my $c = s/\Q$o\E\0/$to\0/g;
        die "cross-toolchain.sh: $ARGV names its loader $c times, not once\n" unless $c == 1;' "$1"
}

# bash's compiled-in HOSTTYPE and MACHTYPE as an export line, asked of the
# image's bash while it is still the target's.
target_bash_types() {
    chroot "$root" /usr/bin/bash -c 'printf "export HOSTTYPE=%s MACHTYPE=%s\n" "$HOSTTYPE" "$MACHTYPE"'
}

# What the image has installed, read once (each emulated dpkg-query is a
# fraction of a second): the target's architecture, and its packages.
installed_packages() {
    tarch=$(chroot "$root" dpkg --print-architecture)
    installed=$(chroot "$root" dpkg-query -W \
        -f='${Package} ${Version} ${db:Status-Status} ${Architecture}\n' 2>/dev/null || true)
}

# The version of the target's package $1 the image has installed, or
# nothing (after installed_packages).
target_version() {
    printf '%s\n' "$installed" |
        awk -v p="$1" -v a="$tarch" '$1 == p && $3 == "installed" && ($4 == a || $4 == "all") { print $2; exit }'
}

# The host's programs of REFINE_NATIVE in place of the target's (only
# programs the target has: ELF files in bin/ or sbin/, through the
# image's own paths, merged /usr). `strict`: every one whose libraries the
# image has, or fail; `early`: those whose libraries are there, silently.
# Sets native_done to the names replaced.
native_programs() {
    mode=$1
    keep=" uname arch od stdbuf "
    stage=/tmp/refine-native
    rm -rf "$root$stage"
    mkdir -p "$root$stage/debs" "$root$stage/files"
    pkgs=
    for p in $REFINE_NATIVE; do
        # Early, only what the target has installed by now (the
        # Essential ones): the rest is the customize hook's.
        if [ "$mode" = early ] && [ -z "$(target_version "$p")" ]; then
            continue
        fi
        pkgs="$pkgs $p:$REFINE_HOST_ARCH"
    done
    native_done=
    if [ -z "$pkgs" ]; then
        rm -rf "$root$stage"
        return 0
    fi
    # shellcheck disable=SC2086
    download "$root$stage/debs" $pkgs
    for d in "$root$stage"/debs/*.deb; do
        # The same version as the target's own package: the host's perl
        # reads the target's perl-modules, the host's programs the same
        # data files.
        p=$(dpkg-deb -f "$d" Package)
        hv=$(dpkg-deb -f "$d" Version)
        tv=$(target_version "$p")
        if [ "$hv" != "$tv" ]; then
            echo "cross-toolchain.sh: the host's $p is $hv but the image's is ${tv:-not installed}: the mirror must carry one version for both architectures" >&2
            exit 1
        fi
        dpkg-deb -x "$d" "$root$stage/files"
    done
    # Their own files below the host's library directory (perl-base's
    # modules in /usr/lib/$REFINE_HOST_TRIPLET/perl-base), where the
    # image has none: the host's programs look for them there, and the
    # target's stay where the target's programs look.
    copy_missing "$root$stage/files" "usr/lib/$REFINE_HOST_TRIPLET"
    find "$root$stage/files" -type f \( -path '*/bin/*' -o -path '*/sbin/*' \) | sort > "$root$stage/list"
    while IFS= read -r f; do
        rel=${f#"$root$stage/files"}
        name=${rel##*/}
        case "$keep" in *" $name "*) continue ;; esac
        [ -f "$root$rel" ] && [ ! -L "$root$rel" ] || continue
        [ "$(od -An -tx1 -N4 "$f" | tr -d ' ')" = 7f454c46 ] || continue
        # Every library it needs must be in the image (the `:{host}`
        # packages of the rule): a program that cannot start would break
        # every build in the image.
        if chroot "$root" "$loader" --list "$rel" 2>&1 | grep -q 'not found'; then
            [ "$mode" = early ] && continue
            chroot "$root" "$loader" --list "$rel" >&2 || true
            echo "cross-toolchain.sh: the host's $rel needs a library the image lacks: add its :{host} package to cross.packages" >&2
            exit 1
        fi
        cat "$f" > "$root$rel"
        native_done="$native_done $name"
    done < "$root$stage/list"
    rm -rf "$root$stage"
}

# The host's programs of REFINE_STAND_IN, from the essential hook until the
# customize hook (after installed_packages). apt (the host's, outside the
# image) has the image's dpkg install the remaining packages; dpkg runs
# dpkg-deb (found through apt's DPkg::Path) to decompress every package it
# unpacks, the maintainer scripts ask dpkg-query, dpkg-divert,
# dpkg-trigger and update-alternatives, and the Python packages' byte-compile with
# /usr/bin/python3.11 (py3compile, py_compile): emulated, that was most of
# the image's time. The dpkg programs take the target's architecture for
# their own (as_target_arch). Each PATH is diverted (a local diversion:
# the target's file, now or when its package is unpacked later, goes to
# PATH.refine-target) and the host's program put there; stand_ins_end
# takes it out, puts the target's file back in place, and restores dpkg's
# two records of diversions byte for byte. The
# image therefore ends as it would without them (the opt-in test of
# tests/s390x.rs compares). The host's program is the same version of the
# same source as the target's (Python's bytecode is the same bytes from
# either interpreter: compared on the 1408 files of the stdlib and
# dist-packages).
stand_ins_start() {
    [ -n "${REFINE_STAND_IN:-}" ] || return 0
    state=$root/tmp/refine-stand-in
    rm -rf "$state"
    mkdir -p "$state/debs" "$state/files"
    for f in diversions diversions-old; do
        if [ -e "$root/var/lib/dpkg/$f" ]; then cp "$root/var/lib/dpkg/$f" "$state/$f"; fi
    done
    pkgs=
    for s in $REFINE_STAND_IN; do
        case " $pkgs " in *" ${s%%:*}:$REFINE_HOST_ARCH "*) ;; *) pkgs="$pkgs ${s%%:*}:$REFINE_HOST_ARCH" ;; esac
    done
    # shellcheck disable=SC2086
    download "$state/debs" $pkgs
    for d in "$state"/debs/*.deb; do
        p=$(dpkg-deb -f "$d" Package)
        hv=$(dpkg-deb -f "$d" Version)
        # What the image has, or will install (apt's candidate).
        tv=$(target_version "$p")
        [ -n "$tv" ] || tv=$(APT_CONFIG=$MMDEBSTRAP_APT_CONFIG apt-cache policy "$p:$tarch" | sed -n 's/^ *Candidate: //p')
        if [ "$hv" != "$tv" ]; then
            echo "cross-toolchain.sh: the host's $p is $hv but the image's is ${tv:-not available}: the mirror must carry one version for both architectures" >&2
            exit 1
        fi
        dpkg-deb -x "$d" "$state/files"
    done
    : > "$state/placed"
    # Each diverted by hand in dpkg's record of diversions (three lines:
    # the path, where the package's file goes instead, `:` for a local
    # diversion): what `dpkg-divert --local --no-rename --add` writes,
    # without an emulated dpkg-divert for each. The rename by hand too.
    for s in $REFINE_STAND_IN; do
        path=${s#*:}
        [ -f "$state/files$path" ] || { echo "cross-toolchain.sh: the host's ${s%%:*} has no $path" >&2; exit 1; }
        case "$s" in dpkg:*) as_target_arch "$state/files$path" "$tarch" ;; esac
        if chroot "$root" "$loader" --list "/tmp/refine-stand-in/files$path" 2>&1 | grep -q 'not found'; then
            chroot "$root" "$loader" --list "/tmp/refine-stand-in/files$path" >&2 || true
            echo "cross-toolchain.sh: the host's $path needs a library the image lacks: add its :{host} package to cross.packages" >&2
            exit 1
        fi
        printf '%s\n%s\n:\n' "$path" "$path.refine-target" >> "$root/var/lib/dpkg/diversions"
        if [ -e "$root$path" ]; then mv "$root$path" "$root$path.refine-target"; fi
        cat "$state/files$path" > "$root$path"
        chmod 755 "$root$path"
        printf '%s\n' "$path" >> "$state/placed"
    done
    case " $REFINE_STAND_IN " in
        *" dpkg:/usr/bin/dpkg "*) [ "$(chroot "$root" dpkg --print-architecture)" = "$tarch" ] ||
            { echo "cross-toolchain.sh: the host's dpkg does not take $tarch for its own" >&2; exit 1; } ;;
    esac
    rm -rf "$state/debs" "$state/files"
    echo "cross-toolchain.sh: the host's programs, native while the image is made:" $(cat "$state/placed")
}

# The target's own programs back where stand_ins_start put the host's, and
# dpkg's two records of diversions as they were, byte for byte.
stand_ins_end() {
    state=$root/tmp/refine-stand-in
    [ -f "$state/placed" ] || { rm -rf "$state"; return 0; }
    while IFS= read -r path; do
        rm -f "$root$path"
        if [ -e "$root$path.refine-target" ]; then mv "$root$path.refine-target" "$root$path"; fi
    done < "$state/placed"
    for f in diversions diversions-old; do
        if [ -e "$state/$f" ]; then
            cat "$state/$f" > "$root/var/lib/dpkg/$f"
        else
            rm -f "$root/var/lib/dpkg/$f"
        fi
    done
    rm -rf "$state"
}

# The host's programs of REFINE_KEEP_HOST, kept in /usr/lib/refine/host/bin
# (after installed_packages). Each is the same version of the same source
# as the target's own package (checked), and runs with the image's
# `:{host}` libraries: python3.11 of python3.11-minimal reads the stdlib
# the image shares between both architectures (libpython3.11-minimal and
# -stdlib are Multi-Arch: same; their C modules carry the architecture in
# their names) and finds it from its own path (/usr/lib/python3.11 above
# /usr/lib/refine/host/bin).
keep_host() {
    [ -n "${REFINE_KEEP_HOST:-}" ] || return 0
    kdir=/usr/lib/refine/host/bin
    stage=$root/tmp/refine-keep-host
    rm -rf "$stage"
    mkdir -p "$stage/debs" "$stage/files" "$root$kdir"
    pkgs=
    for s in $REFINE_KEEP_HOST; do pkgs="$pkgs ${s%%:*}:$REFINE_HOST_ARCH"; done
    # shellcheck disable=SC2086
    download "$stage/debs" $pkgs
    for d in "$stage"/debs/*.deb; do
        p=$(dpkg-deb -f "$d" Package)
        hv=$(dpkg-deb -f "$d" Version)
        tv=$(target_version "$p")
        if [ "$hv" != "$tv" ]; then
            echo "cross-toolchain.sh: the host's $p is $hv but the image's is ${tv:-not installed}: the mirror must carry one version for both architectures" >&2
            exit 1
        fi
        dpkg-deb -x "$d" "$stage/files"
    done
    for s in $REFINE_KEEP_HOST; do
        path=${s#*:}
        [ -f "$stage/files$path" ] || { echo "cross-toolchain.sh: the host's ${s%%:*} has no $path" >&2; exit 1; }
        dest=$kdir/${path##*/}
        cat "$stage/files$path" > "$root$dest"
        chmod 755 "$root$dest"
        if chroot "$root" "$loader" --list "$dest" 2>&1 | grep -q 'not found'; then
            chroot "$root" "$loader" --list "$dest" >&2 || true
            echo "cross-toolchain.sh: the host's $path needs a library the image lacks: add its :{host} package to cross.packages" >&2
            exit 1
        fi
        case "${path##*/}" in
            python3*)
                # It starts, with its own C modules (the host's
                # libpython3.X-stdlib), from the shared stdlib.
                chroot "$root" "$dest" -S -c 'import sys, zlib, hashlib, _ctypes, _json, sysconfig; assert sys.prefix == "/usr", sys.prefix' ||
                    { echo "cross-toolchain.sh: the host's $path does not start in the image: add libpython3.X-stdlib:{host} to cross.packages" >&2; exit 1; }
                ;;
        esac
        echo "cross-toolchain.sh: the host's $path kept as $dest"
    done
    rm -rf "$stage"
}

# Copy the files below DIR (relative) of the extracted tree FROM into the
# image where it has none, through the image's own directories (its /lib
# is /usr/lib): an existing file, link or package file is never touched.
# The test is the shell's own (no process a file); the directories they
# need are made with mkdir -p, as dpkg would find them, and the files are
# copied by one cp (-a, but each file on its own: no hard links between
# them).
copy_missing() {
    from=$1
    dir=$2
    [ -d "$from/$dir" ] || return 0
    (cd "$from/$dir" && find . ! -type d | sort) > "$from.own"
    : > "$from.missing"
    while IFS= read -r rel; do
        rel=${rel#./}
        if [ -e "$root/$dir/$rel" ] || [ -L "$root/$dir/$rel" ]; then
            continue
        fi
        printf '%s\n' "$rel" >> "$from.missing"
    done < "$from.own"
    if [ -s "$from.missing" ]; then
        mkdir -p "$root/$dir"
        awk '{ n = split($0, p, "/"); d = p[1]; for (i = 2; i < n; i++) d = d "/" p[i]; if (n > 1) print d }' "$from.missing" |
            sort -u > "$from.dirs"
        (cd "$root/$dir" && xargs -r -d '\n' mkdir -p < "$from.dirs")
        (cd "$from/$dir" && xargs -r -d '\n' cp -a --no-preserve=links --parents -t "$root/$dir" < "$from.missing")
    fi
    rm -f "$from.own" "$from.missing" "$from.dirs"
}

if [ "$phase" = setup ]; then
    # The host's packages (the cross compilers and the libraries they run
    # with) share their Multi-Arch: same libraries with the target's, so
    # both must have the same version. Debian's LTS security suite carries
    # only some architectures (amd64, arm64, i386, armhf: not s390x), so it
    # can hold a newer host-arch library than the target can have, and apt
    # then refuses to install the host's compilers at all (seen:
    # libzstd1:amd64 1.5.4+dfsg2-5+deb12u1 against libzstd1:s390x
    # 1.5.4+dfsg2-5). Below every suite that has both architectures, the
    # security suite is used only for what exists nowhere else.
    mkdir -p "$root/etc/apt/preferences.d"
    cat > "$root/etc/apt/preferences.d/refine-cross" <<'PREF'
Package: *
Pin: release l=Debian-Security
Pin-Priority: 100
PREF
    # dpkg syncs each file it unpacks to disk before renaming it into
    # place, which matters on a machine that stays up, not in an image
    # that is a tarball at the end (thousands of files; seconds on a slow
    # disk). The customize hook removes this file: it is not in the image.
    mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
    printf '# refine: while the image is made (its customize hook removes this)\nforce-unsafe-io\n' \
        > "$root/etc/dpkg/dpkg.cfg.d/refine-unsafe-io"
    exit 0
fi

# The Essential packages' install (mmdebstrap's `chroot ROOT dpkg --install`,
# with its own PATH, /usr/local/bin first) runs dpkg, which takes every
# package apart with dpkg-split and dpkg-deb (three programs a package), and
# maintainer scripts that ask dpkg-query, dpkg-divert and
# update-alternatives. Before it, the image's library directories are not
# merged yet (usrmerge converts them during that install), so the host's
# programs of REFINE_STAND_IN from the dpkg package run with a loader and
# libraries of their own, in /.refine-early: each program's loader is that
# one (its ELF interpreter's path rewritten in place, a shorter one), and
# /usr/local/bin/dpkg is a wrapper that sets LD_LIBRARY_PATH to that
# directory for dpkg and everything it runs; the others are in
# /usr/local/bin themselves, so that no emulated shell starts for each.
# The essential hook (or, without it, the customize hook) removes them.
early_private=/.refine-early
early_stand_ins_start() {
    names=
    for s in ${REFINE_STAND_IN:-}; do
        case "$s" in dpkg:/usr/bin/*) names="$names ${s#dpkg:/usr/bin/}" ;; esac
    done
    [ -n "$names" ] || return 0
    stage=$root/tmp/refine-extract
    rm -rf "$stage"
    # /usr/local/bin is not there yet: base-files makes it (0755) when it is
    # configured, and leaves one that exists as it is.
    mkdir -p "$stage/debs" "$stage/files" "$root$early_private" "$root/usr/local/bin"
    pkgs="dpkg:$REFINE_HOST_ARCH libc6:$REFINE_HOST_ARCH"
    for p in $(printf '%s' "${MMDEBSTRAP_INCLUDE:-}" | tr ',' ' '); do
        case "$p" in lib*:"$REFINE_HOST_ARCH" | zlib1g:"$REFINE_HOST_ARCH") pkgs="$pkgs $p" ;; esac
    done
    # shellcheck disable=SC2086
    download "$stage/debs" $pkgs
    tarch=$(dpkg-deb -f "$(ls "$root"/var/cache/apt/archives/dpkg_*.deb | head -n 1)" Architecture)
    for d in "$stage"/debs/*.deb; do
        if [ "$(dpkg-deb -f "$d" Package)" = dpkg ]; then
            hv=$(dpkg-deb -f "$d" Version)
            tv=$(APT_CONFIG=$MMDEBSTRAP_APT_CONFIG apt-cache policy "dpkg:$tarch" | sed -n 's/^ *Candidate: //p')
            if [ "$hv" != "$tv" ]; then
                echo "cross-toolchain.sh: the host's dpkg is $hv but the image's is ${tv:-not available}: the mirror must carry one version for both architectures" >&2
                exit 1
            fi
        fi
        dpkg-deb -x "$d" "$stage/files"
    done
    cp -L "$stage/files$loader" "$root$early_private/ld.so"
    for f in "$stage"/files/lib/"$REFINE_HOST_TRIPLET"/*.so* "$stage"/files/usr/lib/"$REFINE_HOST_TRIPLET"/*.so*; do
        [ -f "$f" ] && cp -L "$f" "$root$early_private/"
    done
    : > "$root$early_private/.names"
    for name in $names; do
        [ -f "$stage/files/usr/bin/$name" ] || { echo "cross-toolchain.sh: the host's dpkg has no /usr/bin/$name" >&2; exit 1; }
        dest=/usr/local/bin/$name
        [ "$name" = dpkg ] && dest=$early_private/dpkg
        cp "$stage/files/usr/bin/$name" "$root$dest"
        as_target_arch "$root$dest" "$tarch"
        set_interp "$root$dest" "$early_private/ld.so"
        chmod 755 "$root$dest"
        printf '%s\n' "$name" >> "$root$early_private/.names"
    done
    printf '#!/bin/sh\n# refine: the host'"'"'s dpkg while the Essential packages are installed\nexport LD_LIBRARY_PATH=%s\nexec %s/dpkg "$@"\n' \
        "$early_private" "$early_private" > "$root/usr/local/bin/dpkg"
    chmod 755 "$root/usr/local/bin/dpkg"
    rm -rf "$stage"
    case " $names " in
        *" dpkg "*) [ "$(chroot "$root" /usr/local/bin/dpkg --print-architecture)" = "$tarch" ] ||
            { echo "cross-toolchain.sh: the host's dpkg does not take $tarch for its own" >&2; exit 1; } ;;
    esac
    echo "cross-toolchain.sh: the host's programs, native while the Essential packages are installed:$names"
}

# Nothing of early_stand_ins_start left in the image.
early_stand_ins_end() {
    if [ -d "$root$early_private" ]; then
        while IFS= read -r name; do
            rm -f "$root/usr/local/bin/$name"
        done < "$root$early_private/.names"
        rm -rf "$root$early_private"
    fi
}

if [ "$phase" = extract ]; then
    early_stand_ins_start
    exit 0
fi

if [ "$phase" = essential ]; then
    early_stand_ins_end
    [ -n "${REFINE_NATIVE:-}" ] || exit 0
    # bash's compiled-in HOSTTYPE and MACHTYPE, from the target's bash
    # while it is still the target's (see the customize phase).
    mkdir -p "$root/etc/refine"
    target_bash_types > "$root/etc/refine/cross.env"
    # The host's libraries, from the packages the image installs later
    # (dpkg then unpacks the same files over these): libc6 and the
    # image's lib…:{host} packages. Only into the image's own directories
    # for them (merged /usr: /lib is a link into /usr), so that no
    # directory differs from what dpkg would make. The host's loader in
    # /lib64 (amd64, ppc64el): the link libc6's preinst makes on a
    # merged-/usr system when it finds none, made here the same way.
    ldir=$(dirname "$loader" | sed 's|^/||')
    if [ "$ldir" = lib64 ] && [ -L "$root/lib" ] && [ ! -L "$root/lib64" ] && [ ! -d "$root/lib64" ]; then
        mkdir -p "$root/usr/lib64"
        ln -s usr/lib64 "$root/lib64"
    fi
    for d in lib usr/lib "$ldir"; do
        [ -d "$root/$d" ] || { echo "cross-toolchain.sh: /$d is not in the image yet: the host's programs wait for the customize hook"; exit 0; }
    done
    libs="libc6:$REFINE_HOST_ARCH"
    for p in $(printf '%s' "${MMDEBSTRAP_INCLUDE:-}" | tr ',' ' '); do
        case "$p" in lib*:"$REFINE_HOST_ARCH" | zlib1g:"$REFINE_HOST_ARCH") libs="$libs $p" ;; esac
    done
    early=/tmp/refine-early
    rm -rf "$root$early"
    mkdir -p "$root$early/debs" "$root$early/files"
    # shellcheck disable=SC2086
    download "$root$early/debs" $libs
    for d in "$root$early"/debs/*.deb; do
        dpkg-deb -x "$d" "$root$early/files"
    done
    for d in lib lib64 usr/lib usr/lib64; do
        copy_missing "$root$early/files" "$d"
    done
    rm -rf "$root$early"
    installed_packages
    native_programs early
    if [ -n "$native_done" ]; then
        chroot "$root" /bin/sh -c 'exit 0'
        echo "cross-toolchain.sh: the host's programs, native for the maintainer scripts:$native_done"
    fi
    stand_ins_start
    exit 0
fi
[ "$phase" = customize ] || { echo "cross-toolchain.sh: unknown phase $phase" >&2; exit 2; }

# Every package is in: the target's programs back where the essential hook
# put stand-ins (and, in a run without the essential hook, nothing of the
# extract hook's left).
early_stand_ins_end
stand_ins_end
rm -f "$root/etc/dpkg/dpkg.cfg.d/refine-unsafe-io"
installed_packages
keep_host

# The compilers' own files, unpacked from the packages of the image's
# mirror (downloaded with the image's apt configuration: exactly its
# versions).
mkdir -p "$root/tmp/refine-cross"
# shellcheck disable=SC2086
download "$root/tmp/refine-cross" $REFINE_UNPACK
for d in "$root"/tmp/refine-cross/*.deb; do
    dpkg-deb -x "$d" "$root"
done
rm -rf "$root/tmp/refine-cross"

# GCC's support files (crt*.o, libgcc, its own headers, libstdc++ and
# libgfortran) are the target's native ones: the cross compiler links
# exactly what the target's gcc would.
native=/usr/lib/gcc/$t/$v
cross="$root/usr/lib/gcc-cross/$t/$v"
mkdir -p "$cross"
for f in "$root$native"/*; do
    name=$(basename "$f")
    [ -e "$cross/$name" ] || ln -s "$native/$name" "$cross/$name"
done
# C++ headers where the cross g++ looks for them.
if [ -d "$root/usr/include/c++/$v" ]; then
    mkdir -p "$root/usr/$t/include/c++"
    ln -sfn "/usr/include/c++/$v" "$root/usr/$t/include/c++/$v"
    ln -sfn "/usr/include/$t/c++/$v" "$root/usr/include/c++/$v/$t"
fi

# The usual names, for recipes and the build systems that find compilers
# by them (setuptools asks Python's sysconfig: $t-gcc).
bin="$root/usr/local/bin"
mkdir -p "$bin"
link() { [ -e "$root/usr/bin/$2" ] && ln -sfn "/usr/bin/$2" "$bin/$1" || true; }
for tool in gcc g++ cpp gfortran gcc-ar gcc-nm gcc-ranlib; do
    [ -e "$root/usr/bin/$t-$tool-$v" ] && ln -sfn "$t-$tool-$v" "$root/usr/bin/$t-$tool"
done
link cc "$t-gcc-$v"
link gcc "$t-gcc-$v"
link c++ "$t-g++-$v"
link g++ "$t-g++-$v"
link cpp "$t-cpp-$v"
link gfortran "$t-gfortran-$v"
link f95 "$t-gfortran-$v"
for tool in ld ld.bfd as ar nm ranlib strip objcopy objdump readelf size strings addr2line c++filt; do
    link "$tool" "$t-$tool"
done
# The target's own (native) ld finds the libraries a shared library needs
# in LD_LIBRARY_PATH (the packs' lib/ directories); a cross ld does not,
# and links against a pack that needs another pack (LAPACK needs
# OpenBLAS) then fail. The cross ld gcc runs gets them as -rpath-link,
# which changes no output: only where the link looks.
tooldir="$root/usr/$t/bin"
if [ -e "$root/usr/bin/$t-ld.bfd" ]; then
    for name in ld ld.bfd; do
        rm -f "$tooldir/$name"
        cat > "$tooldir/$name" <<LD
#!/bin/sh
# refine: the cross ld, with LD_LIBRARY_PATH as -rpath-link (as a native ld reads it).
dirs=\$LD_LIBRARY_PATH
while [ -n "\$dirs" ]; do
    d=\${dirs%%:*}
    [ -n "\$d" ] && set -- "-rpath-link=\$d" "\$@"
    case \$dirs in *:*) dirs=\${dirs#*:} ;; *) dirs= ;; esac
done
exec /usr/bin/$t-ld.bfd "\$@"
LD
        chmod 755 "$tooldir/$name"
    done
    ln -sfn "/usr/$t/bin/ld" "$bin/ld"
    ln -sfn "/usr/$t/bin/ld.bfd" "$bin/ld.bfd"
fi

# The host's shells and text tools, in place of the target's. A configure
# script is thousands of sh, sed, grep, rm and mv processes; emulated, each
# costs 20-40 ms of qemu start-up and runs 5-20x slower (libffi's configure:
# 54 s emulated, 6 s native). They are the same Debian versions as the
# target's and behave the same: only what reports the machine differs, so
# uname and arch stay the target's (qemu-user answers s390x; config.guess
# and Python's platform read them), od stays (it prints words in the
# machine's byte order), stdbuf stays (it preloads its library into the
# program it runs, which may be the target's), and bash's compiled-in HOSTTYPE and MACHTYPE are
# set to the target's values (bash keeps them when they are in its
# environment; recipes/lib/common.sh exports /etc/refine/cross.env).
mkdir -p "$root/etc/refine"
[ -e "$root/etc/refine/cross.env" ] || : > "$root/etc/refine/cross.env"
native_done=
if [ -n "${REFINE_NATIVE:-}" ]; then
    # The essential hook wrote HOSTTYPE and MACHTYPE, before it put the
    # Essential packages' programs in place; without it (an mmdebstrap
    # run without the essential hook) bash is still the target's here.
    # This puts the rest in place (and, again, the same bytes over the
    # first).
    if ! grep -q '^export HOSTTYPE=' "$root/etc/refine/cross.env"; then
        target_bash_types >> "$root/etc/refine/cross.env"
    fi
    native_programs strict
    [ -n "$native_done" ] || { echo "cross-toolchain.sh: no program of $REFINE_NATIVE replaced" >&2; exit 1; }
    # They run: the shell every recipe starts with, natively.
    chroot "$root" /bin/sh -c 'exit 0'
    # And perl, with its own modules (perl-base's) and the full perl's XS
    # ones (libperl5.36 of the host): OpenSSL's Configure loads these.
    case " $native_done " in
        *" perl "*) chroot "$root" /usr/bin/perl -MConfig -MPOSIX -MData::Dumper -MFile::Spec -MIPC::Cmd \
            -e 'exit 0' || { echo "cross-toolchain.sh: the host's perl cannot load its modules in the image" >&2; exit 1; } ;;
    esac
    echo "cross-toolchain.sh: the host's programs, native:$native_done"
fi

# Rust, where the image has the host's rustc and cargo: they compile for
# the target (its standard library is the target's libstd-rust-web-dev),
# link with the cross gcc, and build scripts (which run during the build)
# compile for the host and link with the host's own gcc. Cargo reads
# /.cargo/config.toml for every build below /; maturin and setuptools-rust
# also read CARGO_BUILD_TARGET, and PyO3 finds the target's Python in
# PYO3_CROSS_LIB_DIR (recipes/lib/common.sh sources /etc/refine/cross.env).
if [ -x "$root/usr/bin/cargo" ] && [ -x "$root/usr/bin/$REFINE_HOST_TRIPLET-gcc-$v" ]; then
    rt="${t%%-*}-unknown-${t#*-}"
    ht="${REFINE_HOST_TRIPLET%%-*}-unknown-${REFINE_HOST_TRIPLET#*-}"
    tv=$(echo "$rt" | tr 'a-z-' 'A-Z_')
    hv=$(echo "$ht" | tr 'a-z-' 'A-Z_')
    tl=$(echo "$rt" | tr '-' '_')
    hl=$(echo "$ht" | tr '-' '_')
    py=$(cd "$root/usr/lib" && ls -d python3.* 2>/dev/null | head -n 1)
    # The host's gcc, with the host's assembler and linker: PATH finds the
    # target's (the cross binutils, under their usual names above).
    hb=/usr/lib/refine/host-bin
    mkdir -p "$root$hb"
    for tool in as ld ld.bfd ar nm ranlib strip objcopy; do
        [ -e "$root/usr/bin/$REFINE_HOST_TRIPLET-$tool" ] && ln -sfn "/usr/bin/$REFINE_HOST_TRIPLET-$tool" "$root$hb/$tool"
    done
    for c in gcc g++; do
        [ -e "$root/usr/bin/$REFINE_HOST_TRIPLET-$c-$v" ] || continue
        printf '#!/bin/sh\nexec /usr/bin/%s-%s-%s -B%s "$@"\n' "$REFINE_HOST_TRIPLET" "$c" "$v" "$hb" > "$root/usr/lib/refine/host-$c"
        chmod 755 "$root/usr/lib/refine/host-$c"
    done
    mkdir -p "$root/.cargo"
    cat > "$root/.cargo/config.toml" <<CARGO
# Written by refine's cross-toolchain hook: compile for $rt with the host's
# rustc; build scripts run on the host.
[build]
target = "$rt"

[target.$rt]
linker = "$t-gcc-$v"

[target.$ht]
linker = "/usr/lib/refine/host-gcc"

[env]
CC_$tl = "$t-gcc-$v"
CXX_$tl = "$t-g++-$v"
AR_$tl = "$t-ar"
CC_$hl = "/usr/lib/refine/host-gcc"
CXX_$hl = "/usr/lib/refine/host-g++"
AR_$hl = "$REFINE_HOST_TRIPLET-ar"
CARGO

    cat >> "$root/etc/refine/cross.env" <<ENV
export CARGO_BUILD_TARGET=$rt
export CARGO_TARGET_${tv}_LINKER=$t-gcc-$v
export CARGO_TARGET_${hv}_LINKER=/usr/lib/refine/host-gcc
export PYO3_CROSS_LIB_DIR=/usr/lib/$py
export PKG_CONFIG_ALLOW_CROSS=1
export PYO3_CROSS_PYTHON_VERSION=${py#python}
ENV
fi

# What ran, for the build logs and for people: REFINE_TOOLCHAIN in the image.
printf 'cross %s-gcc-%s (%s)\n' "$t" "$v" "$REFINE_HOST_ARCH" > "$root/etc/refine-toolchain"
if [ -n "$native_done" ]; then
    printf 'native (%s):%s\n' "$REFINE_HOST_ARCH" "$native_done" >> "$root/etc/refine-toolchain"
fi
