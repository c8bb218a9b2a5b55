#!/usr/bin/env bash
# Create .venv (if missing) and install kanmon into it, editable; "test" adds the test extra.
#   scripts/venv.sh [test]
# The install is editable, so code changes need none: it runs only when .venv is new or pyproject.toml, the extra
# asked for or the Python changed since the last one (a stamp in .venv records them). KANMON_REINSTALL=1 forces it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv 2>/dev/null || {
    # Debian's own python3 needs python3-venv for ensurepip
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    "$PY" -m venv .venv
  }
fi
spec=.
[ "${1:-}" = test ] && spec='.[test]'
stamp=.venv/.kanmon-install-stamp
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $spec $(.venv/bin/python -VV | tr -d '\n')"
# the test extra includes the plain install: a stamp of '.[test]' also serves '.'
if [ "${KANMON_REINSTALL:-}" != 1 ] && [ -x .venv/bin/gated ] && [ -f "$stamp" ] &&
   { [ "$(cat "$stamp")" = "$want" ] || [ "$(cat "$stamp")" = "${want/ . / .[test] }" ]; }; then
  exit 0
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec"
printf '%s' "$want" > "$stamp"
