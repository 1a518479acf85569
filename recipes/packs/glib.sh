#!/bin/sh
# GLib with Meson: no subproject is downloaded (the sandbox has no
# network); PCRE2, libffi and zlib come from their packs through
# pkg-config.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
. "$REFINE_WS/recipes/lib/shapes.sh"
. "$REFINE_WS/recipes/lib/meson.sh"
cd "$(unpack "$(source_file 'glib2.0_*.orig.tar.*')")"
# Valgrind's client requests are inline assembly that Zig's clang refuses
# for s390x; compiled out, as in any build without Valgrind.
export CFLAGS="${CFLAGS:-} -DNVALGRIND"
pack_meson --wrap-mode=nodownload -Dtests=false -Dinstalled_tests=false \
    -Dman=false -Dgtk_doc=false -Dnls=disabled -Dselinux=disabled -Dlibmount=disabled \
    -Dxattr=false -Dlibelf=disabled -Ddtrace=false -Dsystemtap=false -Dglib_debug=disabled
