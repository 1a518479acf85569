#!/bin/sh
# openldap: OpenLDAP's client libraries (libldap, liblber) and headers,
# from Debian's source package openldap (written by `refine pack new
# openldap --debian openldap`, then by hand): python-ldap builds against
# them. TLS through the OpenSSL pack, SASL through the cyrus-sasl2 pack;
# no server (slapd) and no client programs.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'openldap_*.orig.tar.*')")"
# No build date in the version strings (the floor's compiler refuses
# __DATE__ and __TIME__: they are not reproducible).
sed -i 's/ (" __DATE__ " " __TIME__ ")//' build/mkversion
# glibc 2.17's symbols (the floor's) still name LinuxThreads' old
# pthread_kill_other_threads_np, which makes configure take NPTL for
# LinuxThreads and then refuse the mismatch: it is NPTL.
./configure --prefix="$PREFIX" --disable-static --disable-slapd --disable-debug \
    --with-tls=openssl --with-cyrus-sasl --without-systemd --without-fetch \
    --without-argon2 ac_cv_func_pthread_kill_other_threads_np=no ol_cv_linux_threads=no
for dir in include libraries; do
    make -C "$dir" -j"$REFINE_JOBS"
    make -C "$dir" install DESTDIR="$DESTDIR"
done
pack_collect
