#!/bin/sh
# xz: liblzma (no command-line tools, no translations).
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'xz-utils_*.orig.tar.xz')")"
pack_autoconf --disable-doc --disable-nls --disable-scripts --disable-xz --disable-xzdec \
    --disable-lzmadec --disable-lzmainfo --disable-lzma-links
