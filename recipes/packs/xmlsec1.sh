#!/bin/sh
# xmlsec1, against the libxml2, libxslt and OpenSSL packs. The OpenSSL
# backend is linked in, not loaded at run time (a repaired wheel carries
# only what it links), and only that one is built.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'xmlsec1_*.orig.tar.*')")"
pack_autoconf --with-libxml=/opt/packs/libxml2 --with-libxslt=/opt/packs/libxslt \
    --with-openssl=/opt/packs/openssl --without-nss --without-gnutls --without-gcrypt \
    --disable-crypto-dl --disable-apps-crypto-dl --disable-docs
