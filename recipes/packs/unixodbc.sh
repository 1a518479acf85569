#!/bin/sh
# unixodbc: from Debian's source package unixodbc (written by `refine pack
# new`): built with autoreconf by the helper of recipes/lib/pack.sh or
# shapes.sh; arguments after it go to ./configure.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
. "$REFINE_WS/recipes/lib/shapes.sh"
cd "$(unpack "$(source_file 'unixodbc_*.orig.tar.*')")"
pack_autoreconf
