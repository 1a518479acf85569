#!/bin/sh
# cyrus-sasl2: the Cyrus SASL library (libsasl2) and its headers, from
# Debian's source package cyrus-sasl2 (written by `refine pack new
# cyrus-sasl2 --debian cyrus-sasl2`, then by hand): OpenLDAP's client
# and python-ldap build against it. The library with its plain, login,
# anonymous, CRAM and DIGEST mechanisms; no sasldb (no database
# library), no GSSAPI, OTP, SRP, NTLM or SQL, no saslauthd.
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
cd "$(unpack "$(source_file 'cyrus-sasl2_*.orig.tar.*')")"
pack_autoconf --disable-gssapi --disable-otp --disable-srp --disable-ntlm \
    --disable-sql --disable-ldapdb --disable-sample --disable-macos-framework \
    --with-dblib=none --without-saslauthd --without-authdaemond --without-pwcheck \
    --without-openssl --without-des
