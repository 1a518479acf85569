#!/bin/sh
# libffi: foreign function calls (cffi, ctypes).
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'libffi_*.orig.tar.*')")"
pack_autoconf --disable-docs --disable-multi-os-directory
