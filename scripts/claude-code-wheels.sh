#!/usr/bin/env bash
# The wheelhouse of the reference Claude Code agent's images (agents/claude-code/Dockerfile and Dockerfile.test): pip
# and pyproject's `agents` extra (the mcp SDK of kanmon_mcp.py, and of the fake claude's client) with everything they
# need, as wheels, by `pip download` from the package index (versions pinned to .venv's when it exists), plus a
# requirements.txt naming what to install. The images install it with --network none, pip running from its own wheel.
#
#   scripts/claude-code-wheels.sh        prints the directory: $KANMON_SERVICES_DIR/cache/claude-code-wheels-<key>
#
# The key is a hash of the requirements and the pins, so an unchanged set is downloaded once (and a directory is only
# ever complete: it is filled beside and renamed into place).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${KANMON_SERVICES_DIR:-/tmp/kanmon-services}/cache
if [ -x "$ROOT/.venv/bin/python" ]; then py=$ROOT/.venv/bin/python; else py=python3; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" - "$ROOT/pyproject.toml" >"$work/requirements.txt" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["agents"]))
PY
# the image gets the versions the tests run with
if [ -x "$ROOT/.venv/bin/python" ]; then
  "$ROOT/.venv/bin/python" -m pip freeze --exclude-editable >"$work/constraints.txt"
else
  : >"$work/constraints.txt"
fi
key=$(cat "$work/requirements.txt" "$work/constraints.txt" | sha256sum | cut -c1-12)
dir=$CACHE/claude-code-wheels-$key
if [ ! -s "$dir/requirements.txt" ]; then
  mkdir -p "$CACHE" "$work/wheels"
  echo "pip download into $dir" >&2
  "$py" -m pip download --quiet --disable-pip-version-check --only-binary=:all: -d "$work/wheels" \
    -c "$work/constraints.txt" -r "$work/requirements.txt" pip \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  cp "$work/requirements.txt" "$work/wheels/requirements.txt"
  rm -rf "$dir.partial.$$"
  mv "$work/wheels" "$dir.partial.$$"
  mv -T "$dir.partial.$$" "$dir" 2>/dev/null || rm -rf "$dir.partial.$$"  # another run made it meanwhile
fi
echo "$dir"
