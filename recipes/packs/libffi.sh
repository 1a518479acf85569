#!/bin/sh
# libffi: foreign function calls (cffi, ctypes).
#
# CXX=no: libffi has no C++ (only its test suite, which is not built), but
# libtool's configure probes the C++ compiler all the same, and at a floor
# the first C++ link makes Zig build LLVM's libc++ for the target (33 s of
# a 45 s build). `no` is libtool's own word for "no C++ here".
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'libffi_*.orig.tar.*')")"
CXX=no pack_autoconf --disable-docs --disable-multi-os-directory
