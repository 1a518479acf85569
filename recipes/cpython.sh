#!/bin/sh
# CPython from source, against the packs, as a self-contained runtime
# mounted at /opt/runtime: --enable-shared, pip from ensurepip (offline,
# bundled with CPython), the packs' shared libraries copied into lib/ and
# every ELF file given a RUNPATH relative to itself ($ORIGIN), so nothing
# outside the prefix is needed at run time.
set -eu
. "$REFINE_WS/recipes/lib/common.sh"
log_toolchain
PREFIX=/opt/runtime
DESTDIR=/build/dest
cd "$(unpack "$(source_file 'python3*.orig.tar.*')")"

./configure --prefix="$PREFIX" --enable-shared --with-ensurepip=install \
    --with-openssl=/opt/packs/openssl --with-openssl-rpath=no \
    --with-system-ffi --without-static-libpython \
    LIBFFI_INCLUDEDIR=/opt/packs/libffi/include
make -j"$REFINE_JOBS"
make install DESTDIR="$DESTDIR"
cp -a "$DESTDIR$PREFIX"/. "$REFINE_OUT"/

# Self-contained: the packs' libraries travel with the runtime.
old_ifs=$IFS
IFS=:
for p in $DEPS_PREFIXES; do
    for lib in "$p"/lib/lib*.so*; do
        [ -e "$lib" ] && cp -a "$lib" "$REFINE_OUT/lib/"
    done
done
IFS=$old_ifs

lib="$REFINE_OUT/lib"
ver=$(ls "$lib" | sed -n 's/^libpython\([0-9]*\.[0-9]*\)\.so$/\1/p')
[ -n "$ver" ] || die "no libpython in $lib"
patchelf --set-rpath '$ORIGIN/../lib' "$REFINE_OUT/bin/python$ver"
for f in "$lib"/*.so*; do
    [ -L "$f" ] || patchelf --set-rpath '$ORIGIN' "$f"
done
for f in "$lib/python$ver/lib-dynload"/*.so; do
    patchelf --set-rpath '$ORIGIN/../..' "$f"
done
rm -rf "$REFINE_OUT/share/man" "$lib/python$ver/test" "$lib/python$ver"/*/tests

# The runtime works on its own: no LD_LIBRARY_PATH, no packs.
env -u LD_LIBRARY_PATH "$REFINE_OUT/bin/python3" -c '
import ssl, zlib, bz2, lzma, sqlite3, ctypes, hashlib, sys
print(sys.version, ssl.OPENSSL_VERSION, "sqlite", sqlite3.sqlite_version, "zlib", zlib.ZLIB_VERSION)
' || die "the runtime cannot import its C modules without the packs"
