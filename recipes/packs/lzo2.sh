#!/bin/sh
# lzo2: from Debian's source package lzo2 (written by `refine pack
# new`): built with autotools by the helper of recipes/lib/pack.sh or
# shapes.sh; arguments after it go to ./configure.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
. "$REFINE_WS/recipes/lib/shapes.sh"
cd "$(unpack "$(source_file 'lzo2_*.orig.tar.*')")"
# lzo's configure builds only the static library unless asked, and a
# pack keeps shared libraries (the repair grafts them).
pack_autoconf --enable-shared
