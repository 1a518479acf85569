#!/bin/sh
# zstd: from Debian's source package libzstd (written by `refine pack
# new`): a make build with the helper of recipes/lib/shapes.sh or
# pack.sh; arguments after it go to both make runs.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
. "$REFINE_WS/recipes/lib/shapes.sh"
cd "$(unpack "$(source_file 'libzstd_*.orig.tar.*')")"
pack_make -C lib
