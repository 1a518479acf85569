#!/bin/sh
# libmemcached (the awesomized 1.1 line, C++), built with CMake in the
# image that has bison and flex: its configuration-string parser is
# generated while it builds. No SASL, DTrace, OpenSSL encryption, memaslap,
# documentation or tests.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
. "$REFINE_WS/recipes/lib/shapes.sh"
cd "$(unpack "$(source_file 'libmemcached_*.orig.tar.*')")"
pack_cmake -DENABLE_SASL=OFF -DENABLE_DTRACE=OFF -DENABLE_OPENSSL_CRYPTO=OFF \
    -DENABLE_MEMASLAP=OFF -DBUILD_DOCS=OFF -DBUILD_DOCSONLY=OFF
