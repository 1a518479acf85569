#!/bin/sh
# bzip2: libbz2. Plain Makefiles, no pkg-config file upstream: write one.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'bzip2_*.orig.tar.*')")"
make -j"$REFINE_JOBS" -f Makefile-libbz2_so CFLAGS="$CFLAGS -fPIC -O2 -D_FILE_OFFSET_BITS=64"
mkdir -p "$REFINE_OUT/lib/pkgconfig" "$REFINE_OUT/include"
cp bzlib.h "$REFINE_OUT/include/"
cp libbz2.so.1.0.8 "$REFINE_OUT/lib/"
ln -s libbz2.so.1.0.8 "$REFINE_OUT/lib/libbz2.so.1.0"
ln -s libbz2.so.1.0 "$REFINE_OUT/lib/libbz2.so.1"
ln -s libbz2.so.1 "$REFINE_OUT/lib/libbz2.so"
cat > "$REFINE_OUT/lib/pkgconfig/bzip2.pc" <<PC
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: bzip2
Description: A file compression library
Version: $REFINE_VERSION
Libs: -L\${libdir} -lbz2
Cflags: -I\${includedir}
PC
pack_relocate
