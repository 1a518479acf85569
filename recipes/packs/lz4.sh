#!/bin/sh
# lz4: from Debian's source package lz4 (written by `refine pack
# new`): built with make by the helper of recipes/lib/pack.sh or
# shapes.sh; arguments after it go to both make runs.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
. "$REFINE_WS/recipes/lib/shapes.sh"
cd "$(unpack "$(source_file 'lz4_*.orig.tar.*')")"
pack_make -C lib
