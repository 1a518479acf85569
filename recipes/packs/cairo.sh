#!/bin/sh
# cairo: from Debian's source package cairo (first written by `refine pack
# new`): the image surfaces and PNG, against the pixman, libpng and zlib
# packs; no X11, fonts from FreeType/fontconfig, PDF, PS or SVG (pycairo
# builds against whichever backends the library has).
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'cairo_*.orig.tar.*')")"
# configure finds the float word order by searching an object file for a
# marker, which the floor's compiler does not leave readable: the
# compiler's own macro says it.
if ${CC:-cc} -dM -E - < /dev/null | grep -q '__FLOAT_WORD_ORDER__ __ORDER_BIG_ENDIAN__'; then
    export ax_cv_c_float_words_bigendian=yes
else
    export ax_cv_c_float_words_bigendian=no
fi
# The library only: `make` would build the test suite too (which wants
# FreeType even when the library is built without it).
./configure --prefix="$PREFIX" --disable-static \
    --disable-xlib --disable-xcb --disable-gobject --disable-ft --disable-fc \
    --enable-png --disable-svg --disable-ps --disable-pdf --disable-script --disable-trace \
    --disable-interpreter --disable-full-testing --disable-gtk-doc --disable-valgrind \
    --disable-symbol-lookup
make -C src -j"$REFINE_JOBS"
make -C src install DESTDIR="$DESTDIR"
pack_collect
