#!/bin/sh
# krb5: MIT Kerberos's client libraries (libkrb5, libgssapi_krb5,
# libk5crypto, libcom_err, libkrb5support), their headers and krb5-config,
# from Debian's source package krb5 (written by `refine pack new krb5
# --debian krb5 --shape autotools`, then by hand: its configure is in
# src/, and only the libraries are built: the KDC and kadmin need yacc).
# gssapi and the krb5 bindings run krb5-config to find it. Without LDAP,
# PKINIT (OpenSSL), Tcl, keyutils and readline: the client libraries need
# none of them; libverto and the error tables are krb5's own copies.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'krb5_*.orig.tar.*')")/src"
# Its own warnings only (set, WARN_CFLAGS keeps configure from adding
# GCC's -Werror= list, which clang at the floor reads more strictly:
# discarded qualifiers are an incompatible pointer type to it).
export WARN_CFLAGS=-Wall
./configure --prefix="$PREFIX" --disable-static --disable-rpath --disable-nls \
    --disable-pkinit --without-ldap --without-tcl --without-keyutils \
    --without-libedit --without-readline --without-lmdb \
    --without-system-verto --without-system-et --without-system-ss
for dir in util include lib build-tools; do
    make -C "$dir" -j"$REFINE_JOBS"
done
# The directories a whole `make install` would make first.
make install-mkdirs DESTDIR="$DESTDIR"
for dir in util include lib build-tools; do
    make -C "$dir" install DESTDIR="$DESTDIR"
done
pack_collect
