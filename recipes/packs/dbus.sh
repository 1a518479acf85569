#!/bin/sh
# dbus: libdbus with autotools; none of the session, systemd or security
# integrations (a library for clients).
set -eu
. "$REFINE_WS/recipes/lib/pack.sh"
. "$REFINE_WS/recipes/lib/shapes.sh"
cd "$(unpack "$(source_file 'dbus_*.orig.tar.*')")"
pack_autoconf --disable-tests --disable-systemd --without-x --disable-selinux --disable-apparmor \
    --disable-libaudit --disable-doxygen-docs --disable-xml-docs --disable-ducktype-docs \
    --disable-modular-tests --disable-installed-tests --disable-inotify --disable-launchd \
    --disable-asserts --disable-user-session --with-system-socket=/run/dbus/system_bus_socket
