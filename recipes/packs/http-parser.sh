#!/bin/sh
# http-parser (Node.js's former HTTP parser, in C): libgit2's HTTP
# transport parses with it (Debian's libgit2 links it too). Its Makefile
# builds the tests by default and compiles with -Werror: the library
# alone, with the build's own flags in place of its warning set.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
. "$REFINE_WS/recipes/lib/shapes.sh"
cd "$(unpack "$(source_file 'http-parser_*.orig.tar.*')")"
pack_make library CFLAGS="${CFLAGS:-} -O2"
