#!/bin/sh
# zlib: compression library.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'zlib_*.orig.tar.*')")"
./configure --prefix="$PREFIX" --shared
make -j"$REFINE_JOBS"
make install DESTDIR="$DESTDIR"
pack_collect
