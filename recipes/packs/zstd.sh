#!/bin/sh
# zstd: from Debian's source package libzstd (written by `refine pack
# new`): built with make by the helper of recipes/lib/pack.sh or
# shapes.sh; arguments after it go to both make runs.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
. "$REFINE_WS/recipes/lib/shapes.sh"
cd "$(unpack "$(source_file 'libzstd_*.orig.tar.*')")"
pack_make -C lib
