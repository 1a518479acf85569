#!/bin/sh
# libpq: PostgreSQL's client library, from Debian's source package
# postgresql-15 (written by `refine pack new`, then cut down by hand):
# configure without readline, zlib or ICU, then only the client library,
# its headers and pg_config (which psycopg2's build asks for the paths);
# the server is not built.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'postgresql-15_*.orig.tar.*')")"
./configure --prefix="$PREFIX" --without-readline --without-zlib --without-icu \
    --without-openssl --without-gssapi --without-ldap
for dir in src/interfaces/libpq src/bin/pg_config; do
    make -C "$dir" -j"$REFINE_JOBS"
    make -C "$dir" install DESTDIR="$DESTDIR"
done
make -C src/include install DESTDIR="$DESTDIR"
pack_collect
