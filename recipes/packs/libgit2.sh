#!/bin/sh
# libgit2 1.9 from Debian 13's source (`suite = "trixie"`: pygit2 1.21
# needs 1.9, Debian 12 has 1.5), built with CMake. Debian's tarball drops
# the bundled dependencies: HTTP is parsed by the http-parser pack, TLS
# by the OpenSSL pack, zlib is the pack's, regular expressions are the C
# library's regcomp; no SSH (libssh2), NTLM or GSSAPI; no command-line
# program or tests.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
. "$REFINE_WS/recipes/lib/shapes.sh"
cd "$(unpack "$(source_file 'libgit2_*.orig.tar.*')")"
# Its own regexp.h is on an -isystem path, behind the floor's C library
# headers, whose regexp.h (for old glibc) is an #error: -I comes first.
CFLAGS="${CFLAGS:-} -I$PWD/src/util"
export CFLAGS
pack_cmake -DBUILD_TESTS=OFF -DBUILD_CLI=OFF -DBUILD_EXAMPLES=OFF \
    -DUSE_SSH=OFF -DUSE_NTLMCLIENT=OFF -DUSE_GSSAPI=OFF \
    -DUSE_HTTPS=OpenSSL -DOPENSSL_ROOT_DIR=/opt/packs/openssl \
    -DUSE_HTTP_PARSER=http-parser -DHTTP_PARSER_INCLUDE_DIR=/opt/packs/http-parser/include \
    -DHTTP_PARSER_LIBRARY=/opt/packs/http-parser/lib/libhttp_parser.so \
    -DUSE_BUNDLED_ZLIB=OFF -DZLIB_ROOT=/opt/packs/zlib \
    -DREGEX_BACKEND=regcomp
