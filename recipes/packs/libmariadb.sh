#!/bin/sh
# MariaDB Connector/C from the server's source: its libmariadb/ directory
# is a project of its own. TLS through the OpenSSL pack, compression
# through the zlib pack; no remote-io (curl) or GSSAPI plugin; the
# authentication plugins that servers ask for are built into the library.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
. "$REFINE_WS/recipes/lib/shapes.sh"
cd "$(unpack "$(source_file 'mariadb_*.orig.tar.*')")/libmariadb"
pack_cmake -DWITH_SSL=OPENSSL -DOPENSSL_ROOT_DIR=/opt/packs/openssl \
    -DWITH_EXTERNAL_ZLIB=ON -DZLIB_ROOT=/opt/packs/zlib \
    -DWITH_UNIT_TESTS=OFF -DWITH_CURL=OFF -DWITH_MYSQLCOMPAT=ON \
    -DINSTALL_LIBDIR=lib -DINSTALL_INCLUDEDIR=include/mariadb \
    -DINSTALL_PCDIR=lib/pkgconfig -DINSTALL_BINDIR=bin -DINSTALL_MANDIR=share/man \
    -DINSTALL_PLUGINDIR=lib/mariadb/plugin \
    -DCLIENT_PLUGIN_DIALOG=STATIC -DCLIENT_PLUGIN_SHA256_PASSWORD=STATIC \
    -DCLIENT_PLUGIN_CACHING_SHA2_PASSWORD=STATIC -DCLIENT_PLUGIN_MYSQL_CLEAR_PASSWORD=STATIC \
    -DCLIENT_PLUGIN_CLIENT_ED25519=STATIC -DCLIENT_PLUGIN_PARSEC=OFF \
    -DCLIENT_PLUGIN_AUTH_GSSAPI_CLIENT=OFF -DCLIENT_PLUGIN_REMOTE_IO=OFF
