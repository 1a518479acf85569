#!/bin/sh
# zeromq: from Debian's source package zeromq3 (written by `refine pack
# new`): built with cmake by the helper of recipes/lib/pack.sh or
# shapes.sh; arguments after it go to cmake's configure step.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
. "$REFINE_WS/recipes/lib/shapes.sh"
cd "$(unpack "$(source_file 'zeromq3_*.orig.tar.*')")"
# libzmq alone: no CURVE (libsodium), no WebSocket TLS, no PGM/NORM, no
# libbsd, no tools, docs or tests.
pack_cmake -DWITH_LIBSODIUM=OFF -DENABLE_CURVE=OFF -DENABLE_WS=OFF \
    -DWITH_LIBBSD=OFF -DWITH_OPENPGM=OFF -DWITH_NORM=OFF -DWITH_VMCI=OFF \
    -DWITH_DOCS=OFF -DWITH_PERF_TOOL=OFF -DZMQ_BUILD_TESTS=OFF \
    -DBUILD_TESTS=OFF -DBUILD_STATIC=OFF -DENABLE_DRAFTS=OFF
