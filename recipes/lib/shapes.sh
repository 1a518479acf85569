# Pack helpers for the build shapes `refine pack new` writes recipes in,
# beside pack_autoconf (recipes/lib/pack.sh, sourced first). Kept in a file
# of their own so that the shipped packs' keys do not depend on them.

# A plain Makefile that takes PREFIX (or prefix) and DESTDIR, as lz4's and
# zstd's do; extra arguments go to both make runs (`-C lib` for a source
# whose library has a Makefile of its own).
pack_make() {
    make -j"$REFINE_JOBS" PREFIX="$PREFIX" prefix="$PREFIX" "$@"
    make install PREFIX="$PREFIX" prefix="$PREFIX" DESTDIR="$DESTDIR" "$@"
    shapes_check_libs
    pack_collect
}

# CMake with ninja, shared libraries in lib/, no rpath; extra arguments go
# to the configure step. Needs an image with cmake (//images:bookworm-sci).
# The install directories are absolute: some projects (libjpeg-turbo) read
# a relative one against their source directory.
pack_cmake() {
    command -v cmake >/dev/null || die "cmake is not in this image: build the pack in //images:bookworm-sci (image = \"//images:bookworm-sci\")"
    cmake -S . -B /build/cmake -G Ninja \
        -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR="$PREFIX/lib" \
        -DCMAKE_INSTALL_INCLUDEDIR="$PREFIX/include" \
        -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DCMAKE_SKIP_RPATH=ON \
        -DBUILD_TESTING=OFF "$@"
    cmake --build /build/cmake -j "$REFINE_JOBS"
    DESTDIR="$DESTDIR" cmake --install /build/cmake
    shapes_check_libs
    pack_collect
}

# An autoconf source whose configure is not made (a git snapshot, as some
# of Debian's upstream tarballs are): autoreconf makes it, then as
# pack_autoconf; extra arguments go to configure. Needs an image with
# autoconf, automake and libtool (//images:bookworm-sci).
pack_autoreconf() {
    command -v autoreconf >/dev/null || die "autoreconf is not in this image: build the pack in //images:bookworm-sci (image = \"//images:bookworm-sci\")"
    autoreconf -fi
    ./configure --prefix="$PREFIX" --disable-static "$@"
    make -j"$REFINE_JOBS"
    make install DESTDIR="$DESTDIR"
    shapes_check_libs
    pack_collect
}

# A pack is a shared library: say so when the build put none where the
# pack's prefix is, instead of storing a pack of headers.
shapes_check_libs() {
    for f in "$DESTDIR$PREFIX"/lib/*.so*; do
        [ -e "$f" ] && return 0
    done
    die "the build installed no shared library under $PREFIX/lib (see the install lines above): give the helper the options that put it there"
}
