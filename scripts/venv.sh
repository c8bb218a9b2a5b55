#!/usr/bin/env bash
# Create .venv (if missing) and install kanmon into it, editable; "test" adds the test extra.
#   scripts/venv.sh [test]
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
.venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec"
