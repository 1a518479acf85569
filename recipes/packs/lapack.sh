#!/bin/sh
# The reference LAPACK as liblapack.so, its BLAS calls going to OpenBLAS.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'lapack_*.orig.tar.*')")"
cat > make.inc <<MK
SHELL = /bin/sh
CC = gcc
CFLAGS = $CFLAGS -O2 -fPIC
FC = gfortran
FFLAGS = $CFLAGS -O2 -frecursive -fPIC
FFLAGS_DRV = \$(FFLAGS)
FFLAGS_NOOPT = $CFLAGS -O0 -frecursive -fPIC
LDFLAGS =
AR = ar
ARFLAGS = cr
RANLIB = ranlib
TIMER = INT_ETIME
BLASLIB = -L/opt/packs/openblas/lib -lopenblas
LAPACKLIB = liblapack.a
TMGLIB = libtmglib.a
MK
# The Fortran modules first: with -j, files that use them can otherwise be
# compiled before they exist (LAPACK 3.11's Makefiles race on them).
make -C SRC la_constants.o la_xisnan.o
# LAPACKLIB is relative to SRC/, where the library is made.
make -j"$REFINE_JOBS" lapacklib
mkdir -p "$REFINE_OUT/lib/pkgconfig"
gfortran -shared -Wl,-soname,liblapack.so.3 -o "$REFINE_OUT/lib/liblapack.so.3.11.0" \
    -Wl,--whole-archive SRC/liblapack.a -Wl,--no-whole-archive \
    -L/opt/packs/openblas/lib -lopenblas
ln -s liblapack.so.3.11.0 "$REFINE_OUT/lib/liblapack.so.3"
ln -s liblapack.so.3 "$REFINE_OUT/lib/liblapack.so"
cat > "$REFINE_OUT/lib/pkgconfig/lapack.pc" <<PC
prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib

Name: LAPACK
Description: Reference LAPACK, on OpenBLAS
Version: $REFINE_VERSION
Requires.private: openblas
Libs: -L\${libdir} -llapack
PC
pack_relocate
