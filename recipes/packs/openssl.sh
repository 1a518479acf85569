#!/bin/sh
# OpenSSL 3: libssl and libcrypto, with zlib. `no-module` builds the
# providers (the legacy one too) into libcrypto: a repaired wheel carries
# libcrypto, but not a directory of loadable modules at the path OpenSSL was
# configured with (cryptography loads the legacy provider at import).
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'openssl_*.orig.tar.gz')")"
case "$REFINE_ARCH" in
    x86_64) target=linux-x86_64 ;;
    s390x) target=linux64-s390x ;;
    aarch64) target=linux-aarch64 ;;
    ppc64le) target=linux-ppc64le ;;
    *) die "no OpenSSL target for $REFINE_ARCH" ;;
esac
./Configure "$target" --prefix="$PREFIX" --openssldir="$PREFIX/ssl" --libdir=lib \
    shared zlib no-tests no-module \
    --with-zlib-include=/opt/packs/zlib/include --with-zlib-lib=/opt/packs/zlib/lib
make -j"$REFINE_JOBS"
make install_sw install_ssldirs DESTDIR="$DESTDIR"
pack_collect
