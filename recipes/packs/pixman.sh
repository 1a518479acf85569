#!/bin/sh
# pixman: from Debian's source package pixman (written by `refine pack
# new`): built with autotools by the helper of recipes/lib/pack.sh; its
# demos (GTK, libpng) and OpenMP are left out.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
. "$REFINE_WS/recipes/lib/shapes.sh"
cd "$(unpack "$(source_file 'pixman_*.orig.tar.*')")"
pack_autoconf --disable-gtk --disable-libpng --disable-openmp
