#!/bin/sh
# freetype: from Debian's source package freetype (written by `refine pack
# new`, then given its options): with zlib and libpng, without bzip2,
# brotli or harfbuzz (what Pillow's ImageFont needs).
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
. "$REFINE_WS/recipes/lib/shapes.sh"
cd "$(unpack "$(source_file 'freetype_*.orig.tar.*')")"
pack_autoconf --with-zlib=yes --with-png=yes --with-bzip2=no --with-brotli=no --with-harfbuzz=no
# freetype's makefiles compile by absolute path, which the symbol table's
# file entries keep: the table goes (the dynamic one stays), as Debian's
# packages are stripped.
for lib in "$REFINE_OUT"/lib/libfreetype.so.*; do
    [ -L "$lib" ] || strip --strip-unneeded "$lib"
done
