#!/bin/sh
# libpng: from Debian's source package libpng1.6 (written by `refine pack
# new`): built with autotools by the helper of recipes/lib/pack.sh or
# shapes.sh; arguments after it go to ./configure.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
. "$REFINE_WS/recipes/lib/shapes.sh"
cd "$(unpack "$(source_file 'libpng1.6_*.orig.tar.*')")"
pack_autoconf
