#!/bin/sh
# Entrypoint of the local PostgreSQL image that scripts/images.sh builds from Debian's postgresql package (for machines
# with no image registry). It keeps the part of the official postgres image's contract that compose.yaml uses:
#   POSTGRES_PASSWORD (required on first start), POSTGRES_USER (default postgres), POSTGRES_DB (default the user),
#   PGDATA (default /var/lib/postgresql/data), `postgres ARGS…` as the command; anything else is run as given.
# The first start of an empty data directory creates the cluster; later starts just run the server.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

init_cluster() {
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set to create the cluster}"
  user=${POSTGRES_USER:-postgres}
  db=${POSTGRES_DB:-$user}
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 --no-instructions >/dev/null
  rm -f "$pwfile"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    # a server on the unix socket only, so nobody connects before the database exists
    pg_ctl -D "$PGDATA" -w -t 60 -o "-c listen_addresses='' -c jit=off" -l "$PGDATA/init.log" start >/dev/null
    psql -v ON_ERROR_STOP=1 -q -U "$user" -d postgres -c "CREATE DATABASE \"$db\""
    pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
    rm -f "$PGDATA/init.log"
  fi
  echo "entrypoint: created the cluster in $PGDATA (user $user, database $db)"
}

if [ "${1:-postgres}" = postgres ]; then
  [ $# -gt 0 ] && shift
  [ -s "$PGDATA/PG_VERSION" ] || init_cluster
  exec postgres -D "$PGDATA" -c listen_addresses='*' -c jit=off "$@"
fi
exec "$@"
