#!/bin/sh
# pcre2: autotools; the three code-unit widths, no JIT.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
. "$REFINE_WS/recipes/lib/shapes.sh"
cd "$(unpack "$(source_file 'pcre2_*.orig.tar.*')")"
pack_autoconf --disable-jit --enable-pcre2-16 --enable-pcre2-32
