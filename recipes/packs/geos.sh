#!/bin/sh
# geos: from Debian's source package geos (written by `refine pack
# new`): built with cmake by the helper of recipes/lib/pack.sh or
# shapes.sh; arguments after it go to cmake's configure step.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
. "$REFINE_WS/recipes/lib/shapes.sh"
cd "$(unpack "$(source_file 'geos_*.orig.tar.*')")"
pack_cmake
