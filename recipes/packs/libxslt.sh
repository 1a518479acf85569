#!/bin/sh
# libxslt, against the libxml2 pack.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'libxslt_*.orig.tar.xz')")"
pack_autoconf --without-python --without-crypto --with-libxml-prefix=/opt/packs/libxml2
