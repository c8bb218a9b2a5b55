#!/usr/bin/env bash
# Bring up what the integration tests need on this machine, reusing what already runs:
#   * a Docker engine (the one `docker` already reaches, else a private dockerd started here),
#   * the local images the tests use, built from root filesystems (no registry is ever contacted), and the images and
#     compose CLI of the compose deployment (scripts/images.sh),
#   * a throwaway PostgreSQL cluster (unless KANMON_TEST_PG_URL already answers),
#   * Debian's chromium and chromium-driver for the browser test (nothing is downloaded at test time),
#   * Debian's prometheus package for promtool (the metrics and alert-rule checks),
#   * a Synapse homeserver for the Matrix adapter's tests (scripts/synapse.sh: its own virtualenv, SQLite, 127.0.0.1).
# Writes "$KANMON_SERVICES_DIR/env" for the test command to source.
#
#   scripts/services.sh up      start / reuse everything (idempotent)
#   scripts/services.sh down    stop the PostgreSQL cluster this script started (the engine is left for reuse)
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

DIR=${KANMON_SERVICES_DIR:-/tmp/kanmon-services}
ENGINE_DIR=$DIR/docker
PG_DIR=$DIR/postgres
PG_PORT=${KANMON_TEST_PG_PORT:-55432}
BUSYBOX_IMAGE=kanmon-test-busybox:latest
PYTHON_IMAGE=kanmon-test-python:3.11
ROOT=$(cd "$(dirname "$0")/.." && pwd)

t0=$(date +%s.%N)
log() { printf '[services %5.1fs] %s\n' "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }
engine_answers() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

apt_install() {  # install Debian packages without letting their init scripts start services
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1; fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  if [ $made_policy = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
}

ensure_packages() {
  local missing=()
  # we start our own dockerd only when no engine answers; the static busybox is needed for the test images either way
  if ! engine_answers; then command -v dockerd >/dev/null || missing+=(docker.io); fi
  command -v docker >/dev/null || missing+=(docker.io)
  case $(ldd /bin/busybox 2>&1 || true) in *"not a dynamic"*|*"statically linked"*) ;; *) missing+=(busybox-static) ;; esac
  [ -x /usr/bin/python3.11 ] || missing+=(python3.11)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  command -v psql >/dev/null || missing+=(postgresql-client)
  # the web chat's browser test: Debian's Chromium and its WebDriver (selenium is pointed at these two files)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
  # promtool, to lint a live /metrics and the shipped alert rules (tests/deploy/test_observability.py)
  command -v promtool >/dev/null || missing+=(prometheus)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

# ------------------------------------------------------------------------------------------- Docker engine
start_engine() {
  mkdir -p "$ENGINE_DIR"
  local sock=$ENGINE_DIR/docker.sock driver pid
  export DOCKER_HOST=unix://$sock
  if engine_answers; then log "reusing the private engine on $sock"; return; fi
  [ -f "$ENGINE_DIR/dockerd.pid" ] && kill "$(cat "$ENGINE_DIR/dockerd.pid")" 2>/dev/null && sleep 1
  echo '{}' >"$ENGINE_DIR/daemon.json"   # so a stray /etc/docker/daemon.json changes nothing
  for driver in overlay2 fuse-overlayfs vfs; do
    rm -f "$sock"
    # --bridge=none: no docker0 and no NAT; every container still gets its own loopback-only network namespace
    setsid nohup dockerd --config-file "$ENGINE_DIR/daemon.json" \
      --data-root "$ENGINE_DIR/data-$driver" --exec-root "$ENGINE_DIR/exec" --pidfile "$ENGINE_DIR/dockerd.pid" \
      -H "unix://$sock" --storage-driver "$driver" --iptables=false --ip-masq=false --bridge=none \
      >>"$ENGINE_DIR/dockerd.log" 2>&1 </dev/null &
    pid=$!
    for _ in $(seq 1 300); do engine_answers && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
    if engine_answers && [ "$(docker info --format '{{.Driver}}')" = "$driver" ]; then
      log "started dockerd (pid $pid, storage $driver) on $sock"; return
    fi
    log "dockerd with storage $driver did not come up; trying the next driver"
    kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
  done
  die "no Docker storage driver worked; see $ENGINE_DIR/dockerd.log"
}

ensure_engine() {
  if [ -z "${DOCKER_HOST:-}" ] && engine_answers; then
    log "reusing the Docker engine at the default socket"
    return
  fi
  start_engine
}

# ------------------------------------------------------------------------------------------- images
image_env() {  # the value of environment variable $2 in image $1, empty when the image or the variable is missing
  docker image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$1" 2>/dev/null | sed -n "s/^$2=//p"
}

build_images() {
  if ! docker image inspect "$BUSYBOX_IMAGE" >/dev/null 2>&1; then
    bash "$ROOT/scripts/rootfs.sh" busybox "$DIR/busybox-rootfs.tar"
    docker import -c 'CMD ["sh"]' "$DIR/busybox-rootfs.tar" "$BUSYBOX_IMAGE" >/dev/null
    log "imported $BUSYBOX_IMAGE"
  fi
  # the python image carries the hash of the script that made its root filesystem: a changed recipe rebuilds it
  local recipe
  recipe=$(sha256sum <"$ROOT/scripts/rootfs.sh" | cut -c1-12)
  if [ "$(image_env "$PYTHON_IMAGE" KANMON_ROOTFS_RECIPE)" != "$recipe" ]; then
    bash "$ROOT/scripts/rootfs.sh" python "$DIR/python-rootfs.tar"
    docker import -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' -c 'ENV LANG=C.UTF-8' -c 'ENV PYTHONDONTWRITEBYTECODE=1' \
      -c "ENV KANMON_ROOTFS_RECIPE=$recipe" -c 'CMD ["python3"]' "$DIR/python-rootfs.tar" "$PYTHON_IMAGE" >/dev/null
    rm -f "$DIR/python-rootfs.tar"
    log "imported $PYTHON_IMAGE (root filesystem recipe $recipe)"
  fi
  local out
  out=$(echo '{"ok": [1, 2]}' | docker run --rm -i --pull=never "$PYTHON_IMAGE" python3 -c 'import json,sys; print(json.load(sys.stdin))')
  [ "$out" = "{'ok': [1, 2]}" ] || die "the python test image does not run: $out"
  log "images ready: $BUSYBOX_IMAGE $PYTHON_IMAGE"
}

# ------------------------------------------------------------------------------------------- PostgreSQL
pg_url() { echo "postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/postgres"; }
pg_answers() { timeout 5 psql "postgresql://postgres@127.0.0.1:$PG_PORT/postgres" -Atqc 'select 1' >/dev/null 2>&1; }

start_postgres() {
  if [ -n "${KANMON_TEST_PG_URL:-}" ]; then log "using KANMON_TEST_PG_URL"; return; fi
  if pg_answers; then
    # shared from now on: whoever started it must not stop it under this run's feet, so no `down` stops it
    rm -f "$PG_DIR/started-by-us"
    log "reusing PostgreSQL on 127.0.0.1:$PG_PORT (left running afterwards)"
    return
  fi
  local bin run=()
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)   # initdb and postgres refuse to run as root
  rm -rf "$PG_DIR"; mkdir -p "$PG_DIR/sock"; chmod 700 "$PG_DIR"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$PG_DIR"
  "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync --no-instructions \
    >"$PG_DIR/initdb.log"
  "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 30 \
    -o "-k $PG_DIR/sock -p $PG_PORT -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null
  pg_answers || die "PostgreSQL did not answer; see $PG_DIR/postgres.log"
  touch "$PG_DIR/started-by-us"
  log "started PostgreSQL on 127.0.0.1:$PG_PORT"
}

stop_postgres() {
  [ -f "$PG_DIR/started-by-us" ] || return 0
  local bin run=()
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  [ "$(id -u)" = 0 ] && run=(runuser -u postgres --)
  "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  log "stopped PostgreSQL"
}

case ${1:-up} in
up)
  [ "$(id -u)" = 0 ] || die "run as root: it may install packages and start dockerd"
  mkdir -p "$DIR"
  ensure_packages
  ensure_engine
  build_images
  # the compose deployment's images and compose CLI (tests/deploy): built here once, found cached by the test
  bash "$ROOT/scripts/images.sh" all >/dev/null
  start_postgres
  bash "$ROOT/scripts/synapse.sh" up
  {
    [ -n "${DOCKER_HOST:-}" ] && printf 'export DOCKER_HOST=%q\n' "$DOCKER_HOST"
    printf 'export KANMON_TEST_PG_URL=%q\n' "${KANMON_TEST_PG_URL:-$(pg_url)}"
    printf 'export KANMON_TEST_BUSYBOX_IMAGE=%q\nexport KANMON_TEST_PYTHON_IMAGE=%q\n' "$BUSYBOX_IMAGE" "$PYTHON_IMAGE"
    cat "$DIR/synapse/env"
  } >"$DIR/env"
  log "ready: source $DIR/env"
  ;;
down) stop_postgres ;;
*) die "usage: $0 up|down" ;;
esac
