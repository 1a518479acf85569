#!/usr/bin/env bash
# Start a throwaway BuildGrid (REAPI server) on loopback for refine's tests:
# a PostgreSQL cluster in DIR listening on a unix socket only, BuildGrid's
# migrations applied, `bgd server start` on 127.0.0.1:PORT.
#   bash tests/reapi/buildgrid.sh DIR PORT [VENV]
# With REFINE_BG_TLS=DIR it serves TLS (DIR/server.crt, DIR/server.key);
# with REFINE_BG_JWT_SECRET=FILE it takes only requests bearing a JWT
# (HS256) signed with that secret. With REFINE_BG_LOGSTREAM=URL
# (http://HOST:PORT of a `refine logstream`) its scheduler creates a log
# stream per action there, for workers to write and clients to read.
# Prints `postgres PID` and `buildgrid PID` lines once the server answers;
# the caller stops both by those ids. Needs postgresql (15) and a venv with
# buildgrid (.ci/setup makes both; `refine doctor --dev` checks them).
set -euo pipefail
dir=$1
port=$2
here=$(cd "$(dirname "$0")" && pwd)
venv=${3:-$here/venv}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pgbin/initdb" ] || { echo "buildgrid.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 3; }
[ -x "$venv/bin/bgd" ] || { echo "buildgrid.sh: no bgd in $venv (bash .ci/setup makes it)" >&2; exit 3; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
pg=$dir/pg
sock=$dir/sock
mkdir -p "$pg" "$sock" "$dir/cas"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$pg" "$sock"; chmod 755 "$dir"; fi
if [ ! -f "$pg/PG_VERSION" ]; then
    as_pg "$pgbin/initdb" -D "$pg" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1
fi
as_pg "$pgbin/postgres" -D "$pg" -k "$sock" -c listen_addresses= -c max_connections=200 >"$dir/postgres.log" 2>&1 &
pgpid=$!
for _ in $(seq 1 100); do
    [ -S "$sock/.s.PGSQL.5432" ] && break
    sleep 0.1
done
[ -S "$sock/.s.PGSQL.5432" ] || { echo "buildgrid.sh: postgres did not start (see $dir/postgres.log)" >&2; kill "$pgpid"; exit 1; }
# The server's own pid (the one above is the shell that started runuser),
# so that the caller stops PostgreSQL itself.
pgpid=$(head -1 "$pg/postmaster.pid")
"$pgbin/createdb" -h "$sock" -U postgres bgd 2>/dev/null || true
dsn="postgresql+psycopg2://postgres@/bgd?host=$sock"
"$venv/bin/bgd" migrate apply "$dsn" >"$dir/migrate.log" 2>&1 || { echo "buildgrid.sh: migrations failed (see $dir/migrate.log)" >&2; kill "$pgpid"; exit 1; }
if [ -n "${REFINE_BG_TLS:-}" ]; then
    channel="insecure-mode: false
    credentials:
      tls-server-key: $REFINE_BG_TLS/server.key
      tls-server-cert: $REFINE_BG_TLS/server.crt"
else
    channel="insecure-mode: true"
fi
if [ -n "${REFINE_BG_JWT_SECRET:-}" ]; then
    auth="method: jwt
  secret: $REFINE_BG_JWT_SECRET
  algorithm: hs256"
else
    auth="method: none"
fi
if [ -n "${REFINE_BG_LOGSTREAM:-}" ]; then
    logstream="logstream:
      url: \"$REFINE_BG_LOGSTREAM\""
else
    logstream=""
fi
cat >"$dir/buildgrid.yml" <<YML
server:
  - !channel
    address: "127.0.0.1:$port"
    $channel
authorization:
  $auth
monitoring:
  enabled: false
thread-pool-size: 64
connections:
  - !sql-connection &sql
    connection-string: "$dsn"
    pool-size: 10
    max-overflow: 20
storages:
  - !disk-storage &cas
    path: "$dir/cas"
caches:
  - !lru-action-cache &cache
    storage: *cas
    max-cached-refs: 10000
    allow-updates: true
    cache-failed-actions: false
schedulers:
  - !sql-scheduler &scheduler
    sql: *sql
    storage: *cas
    action-cache: *cache
    property-set: !dynamic-property-set
      match-property-keys: ["ISA", "OSFamily", "host-ISA"]
      wildcard-property-keys: ["container-image"]
    bot-session-keepalive-timeout: ${REFINE_BG_KEEPALIVE:-20}
    max-execution-timeout: 86400
    $logstream
    assigners:
      - !priority-age-assigner
        count: 1
        interval: 0.5
instances:
  - name: ""
    services:
      - !cas
        storage: *cas
      - !bytestream
        storage: *cas
      - !action-cache
        cache: *cache
      - !execution
        scheduler: *scheduler
        endpoints: [execution, operations, bots]
YML
"$venv/bin/bgd" server start "$dir/buildgrid.yml" >"$dir/buildgrid.log" 2>&1 &
bgpid=$!
for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "postgres $pgpid"
        echo "buildgrid $bgpid"
        exit 0
    fi
    kill -0 "$bgpid" 2>/dev/null || break
    sleep 0.1
done
echo "buildgrid.sh: bgd did not start listening on 127.0.0.1:$port (see $dir/buildgrid.log)" >&2
tail -20 "$dir/buildgrid.log" >&2 || true
kill "$bgpid" "$pgpid" 2>/dev/null || true
exit 1
