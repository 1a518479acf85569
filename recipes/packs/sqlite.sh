#!/bin/sh
# sqlite: the library (the amalgamation is generated with tclsh).
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'sqlite3_*.orig.tar.xz')")"
export CFLAGS="$CFLAGS -O2 -DSQLITE_ENABLE_COLUMN_METADATA=1 -DSQLITE_ENABLE_FTS5 -DSQLITE_ENABLE_JSON1"
pack_autoconf --disable-tcl --enable-threadsafe --disable-readline --disable-editline
