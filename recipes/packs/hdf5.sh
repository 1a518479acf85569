#!/bin/sh
# HDF5's C library against the zlib pack. Its build runs programs it has
# just compiled (H5detect, H5make_libsettings), which for a foreign target
# run under the machine's binfmt emulation like every other target
# program. Its autotools write no pkg-config file: hdf5.pc is written here
# (h5py and others look for `hdf5` through pkg-config).
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'hdf5_*.orig.tar.*')")"
./configure --prefix="$PREFIX" --disable-static --with-zlib=/opt/packs/zlib \
    --disable-fortran --disable-cxx --disable-tests --disable-tools \
    --enable-build-mode=production
make -j"$REFINE_JOBS"
make install DESTDIR="$DESTDIR"
# h5cc (a compiler wrapper naming the build's paths) and the examples are
# not the library's.
rm -f "$DESTDIR$PREFIX/bin/h5cc"
rm -rf "$DESTDIR$PREFIX/share/hdf5_examples"
mkdir -p "$DESTDIR$PREFIX/lib/pkgconfig"
cat > "$DESTDIR$PREFIX/lib/pkgconfig/hdf5.pc" <<PC
prefix=$PREFIX
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: hdf5
Description: HDF5 (Hierarchical Data Format 5) C library
Version: $REFINE_VERSION
Requires.private: zlib
Libs: -L\${libdir} -lhdf5
Cflags: -I\${includedir}
PC
pack_collect
