#!/bin/sh
# curl: from Debian's source package curl (written by `refine pack
# new`), the autotools steps of pack_autoconf spelt out: its curl-config
# is mended before it is collected.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'curl_*.orig.tar.*')")"
# No CA bundle path is compiled in (the image's would be wrong on RHEL or
# SLES): OpenSSL's own default is used, or the caller's CURLOPT_CAINFO.
./configure --prefix="$PREFIX" --disable-static \
    --with-openssl=/opt/packs/openssl --with-zlib=/opt/packs/zlib \
    --without-libpsl --without-libidn2 --without-nghttp2 --without-nghttp3 \
    --without-ngtcp2 --without-brotli --without-zstd --without-libssh2 \
    --without-librtmp --without-libgsasl --disable-ldap --disable-ldaps \
    --disable-manual --without-ca-bundle --without-ca-path --with-ca-fallback
make -j"$REFINE_JOBS"
make install DESTDIR="$DESTDIR"
# curl-config --cc names the compiler configure used: the build's own
# wrapper, which is not there for the pack's users.
sed -i 's|/build/floor/bin/||g' "$DESTDIR$PREFIX/bin/curl-config"
pack_collect
