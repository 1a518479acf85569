#!/bin/sh
# OpenBLAS, BLAS and CBLAS only, pthreads, for every CPU of the architecture.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'openblas_*.orig.tar.*')")"
opts="USE_THREAD=1 USE_OPENMP=0 NUM_THREADS=64 NO_LAPACK=1 NO_LAPACKE=1 NO_AFFINITY=1 NO_WARMUP=1"
opts="$opts DYNAMIC_ARCH=1 DYNAMIC_OLDER=1 TARGET=GENERIC NO_STATIC=1 COMMON_OPT=-O2"
# shellcheck disable=SC2086
make -j"$REFINE_JOBS" $opts CFLAGS="$CFLAGS" libs shared
# shellcheck disable=SC2086
make $opts PREFIX="$PREFIX" DESTDIR="$DESTDIR" install
rm -rf "$DESTDIR$PREFIX/lib/cmake"
pack_collect
