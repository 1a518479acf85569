# pack_meson, for pack recipes (recipes/lib/pack.sh and shapes.sh sourced
# first). A file of its own, so that only the packs that build with Meson
# have it in their keys.

# Meson with ninja, shared libraries in lib/; extra arguments go to
# `meson setup`. Meson is not in the images: the pack declares the pinned
# meson wheel among its sources (`sources = ["//sources:meson"]`), which is
# installed offline into a venv here.
pack_meson() {
    mw=$(source_file 'meson-*.whl')
    python3 -m venv /build/meson-venv
    /build/meson-venv/bin/pip install --quiet --no-index --no-deps "$mw"
    /build/meson-venv/bin/meson setup /build/meson-build --prefix="$PREFIX" --libdir=lib \
        --includedir=include --buildtype=release -Ddefault_library=shared "$@"
    ninja -C /build/meson-build -j "$REFINE_JOBS"
    DESTDIR="$DESTDIR" /build/meson-venv/bin/meson install -C /build/meson-build --no-rebuild
    shapes_check_libs
    pack_collect
}
