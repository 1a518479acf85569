# Helpers for pack recipes: build a native library into a relocatable prefix.
#
# A pack is installed for the prefix it is mounted at in dependents,
# /opt/packs/<name>, through DESTDIR, then moved to REFINE_OUT. Its
# pkg-config files find their prefix relative to themselves
# (${pcfiledir}/../..); libtool archives and static libraries are dropped,
# so wheels link the shared libraries that auditwheel then grafts.
. "$REFINE_WS/recipes/lib/common.sh"

PREFIX=/opt/packs/$REFINE_NAME
DESTDIR=/build/dest
floor_toolchain
log_toolchain

# The usual autoconf dance, with extra configure arguments.
pack_autoconf() {
    ./configure --prefix="$PREFIX" --disable-static "$@"
    make -j"$REFINE_JOBS"
    make install DESTDIR="$DESTDIR"
    pack_collect
}

# Move what was installed under DESTDIR into REFINE_OUT and relocate it.
pack_collect() {
    [ -d "$DESTDIR$PREFIX" ] || die "nothing was installed under $PREFIX"
    cp -a "$DESTDIR$PREFIX"/. "$REFINE_OUT"/
    pack_relocate
}

pack_relocate() {
    find "$REFINE_OUT" \( -name '*.la' -o -name '*.a' \) -delete
    rm -rf "$REFINE_OUT/share/man" "$REFINE_OUT/share/doc" "$REFINE_OUT/share/info" \
        "$REFINE_OUT/share/gtk-doc"
    for pc in "$REFINE_OUT"/lib/pkgconfig/*.pc "$REFINE_OUT"/share/pkgconfig/*.pc; do
        [ -f "$pc" ] || continue
        sed -i -e "/^prefix=/!s|$PREFIX|\${prefix}|g" \
            -e "s|^prefix=.*|prefix=\${pcfiledir}/../..|" "$pc"
    done
    # Nothing may name the build directory.
    if grep -rIl -e /build/ "$REFINE_OUT"/lib/pkgconfig "$REFINE_OUT"/bin 2>/dev/null; then
        die "build paths leaked into the files above"
    fi
    log "installed $(find "$REFINE_OUT" -type f | wc -l) files"
}
