#!/usr/bin/env bash
# A Matrix homeserver (Synapse) for the Matrix adapter's tests, on 127.0.0.1 with SQLite, reused when it answers.
#   * installs matrix-synapse (pinned) into a virtualenv of its own, $DIR/synapse/venv (its dependencies never mix
#     with kanmon's), only when that virtualenv lacks the pinned version;
#   * writes a homeserver.yaml once (server name "localhost", no federation, no open registration, rate limits off
#     so a flood test measures kanmon, not Synapse's limiter, cheap password hashes), with a registration shared
#     secret of its own;
#   * starts it in the background (its own session, so it outlives this script) and waits until it answers;
#   * writes $DIR/synapse/env: KANMON_TEST_SYNAPSE_URL, KANMON_TEST_SYNAPSE_SECRET, KANMON_TEST_SYNAPSE_SERVER_NAME.
# Called by scripts/services.sh; safe to run again.
#   scripts/synapse.sh up | stop
set -euo pipefail

DIR=${KANMON_SERVICES_DIR:-/tmp/kanmon-services}/synapse
PORT=${KANMON_TEST_SYNAPSE_PORT:-58448}
VERSION=${KANMON_TEST_SYNAPSE_VERSION:-1.163.2}
PYTHON=${KANMON_TEST_SYNAPSE_PYTHON:-python3.11}
SERVER_NAME=localhost
URL=http://127.0.0.1:$PORT

t0=$(date +%s.%N)
log() { printf '[synapse %5.1fs] %s\n' "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$*"; }
die() { log "ERROR: $*" >&2; exit 1; }
answers() {  # the client API answers (python3, not curl: a fresh machine may have no curl)
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' \
    "$URL/_matrix/client/versions" >/dev/null 2>&1
}

install() {
  if "$DIR/venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('matrix-synapse') != '$VERSION')" \
      2>/dev/null; then
    return
  fi
  log "installing matrix-synapse $VERSION into $DIR/venv"
  rm -rf "$DIR/venv"
  "$PYTHON" -m venv "$DIR/venv" 2>/dev/null || {
    # Debian's own python3 needs python3-venv for ensurepip
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    rm -rf "$DIR/venv"
    "$PYTHON" -m venv "$DIR/venv"
  }
  "$DIR/venv/bin/pip" install -q "matrix-synapse==$VERSION" 2>&1 | grep -v "^WARNING: Location" || true
  "$DIR/venv/bin/python" -c "import synapse" || die "matrix-synapse did not install; see the pip output above"
  log "installed matrix-synapse $VERSION"
}

configure() {
  if [ -f "$DIR/homeserver.yaml" ]; then  # written by an earlier version of this script: add what it lacked
    grep -q '^bcrypt_rounds:' "$DIR/homeserver.yaml" || echo 'bcrypt_rounds: 4' >>"$DIR/homeserver.yaml"
    return
  fi
  local secret off='{per_second: 100000, burst_count: 1000000}'
  secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  mkdir -p "$DIR/media"
  cat >"$DIR/log.yaml" <<EOF
version: 1
formatters: {plain: {format: '%(asctime)s %(levelname)s %(name)s: %(message)s'}}
handlers: {file: {class: logging.FileHandler, filename: $DIR/homeserver.log, formatter: plain}}
root: {level: WARNING, handlers: [file]}
disable_existing_loggers: false
EOF
  cat >"$DIR/homeserver.yaml.tmp" <<EOF
# written by kanmon's scripts/synapse.sh for tests: local only, SQLite, no federation, rate limits off
server_name: $SERVER_NAME
public_baseurl: $URL/
pid_file: $DIR/homeserver.pid
listeners:
  - {port: $PORT, bind_addresses: ['127.0.0.1'], type: http, tls: false, x_forwarded: false,
     resources: [{names: [client], compress: false}]}
database: {name: sqlite3, args: {database: $DIR/homeserver.db}}
log_config: $DIR/log.yaml
media_store_path: $DIR/media
signing_key_path: $DIR/signing.key
registration_shared_secret: "$secret"
macaroon_secret_key: "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
form_secret: "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
report_stats: false
enable_registration: false
trusted_key_servers: []
suppress_key_server_warning: true
federation_domain_whitelist: []
presence: {enabled: false}
url_preview_enabled: false
enable_metrics: false
bcrypt_rounds: 4  # what Synapse's own tests use: registering and logging in a test user takes ms, not 0.45 s
rc_message: $off
rc_registration: $off
rc_login: {address: $off, account: $off, failed_attempts: $off}
rc_joins: {local: $off, remote: $off}
rc_joins_per_room: $off
rc_invites: {per_room: $off, per_user: $off, per_issuer: $off}
rc_media_create: $off
rc_room_creation: $off
rc_admin_redaction: $off
rc_profile: $off
rc_presence: {per_user: $off}
rc_key_requests: $off
rc_delayed_event_mgmt: $off
rc_reports: $off
rc_user_directory: $off
EOF
  "$DIR/venv/bin/python" -m synapse.app.homeserver -c "$DIR/homeserver.yaml.tmp" --generate-keys >/dev/null
  mv "$DIR/homeserver.yaml.tmp" "$DIR/homeserver.yaml"
  log "wrote $DIR/homeserver.yaml"
}

start() {
  if answers; then log "reusing Synapse at $URL"; return; fi
  [ -f "$DIR/synapse.pid" ] && kill "$(cat "$DIR/synapse.pid")" 2>/dev/null && sleep 1
  setsid nohup "$DIR/venv/bin/python" -m synapse.app.homeserver -c "$DIR/homeserver.yaml" \
    >>"$DIR/stdout.log" 2>&1 </dev/null &
  local pid=$!
  echo $pid >"$DIR/synapse.pid"
  for _ in $(seq 1 600); do answers && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  answers || die "Synapse did not answer at $URL; see $DIR/homeserver.log and $DIR/stdout.log"
  log "started Synapse (pid $pid) at $URL"
}

case ${1:-up} in
up)
  mkdir -p "$DIR"
  if ! answers; then install; configure; fi
  start
  {
    printf 'export KANMON_TEST_SYNAPSE_URL=%q\n' "$URL"
    printf 'export KANMON_TEST_SYNAPSE_SERVER_NAME=%q\n' "$SERVER_NAME"
    printf 'export KANMON_TEST_SYNAPSE_SECRET=%q\n' \
      "$(sed -n 's/^registration_shared_secret: "\(.*\)"$/\1/p' "$DIR/homeserver.yaml")"
  } >"$DIR/env"
  log "ready: $URL"
  ;;
stop)
  [ -f "$DIR/synapse.pid" ] && kill "$(cat "$DIR/synapse.pid")" 2>/dev/null || true
  ;;
*) die "usage: $0 up|stop" ;;
esac
