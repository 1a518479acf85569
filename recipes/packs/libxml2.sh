#!/bin/sh
# libxml2, with zlib; no Python bindings, ICU or lzma.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'libxml2_*.orig.tar.xz')")"
pack_autoconf --without-python --without-icu --without-lzma --with-zlib=/opt/packs/zlib
# xml2-config names the prefix the pack is mounted at; that is its place.
