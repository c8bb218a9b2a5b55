#!/usr/bin/env bash
# The whole test suite on a fresh machine of this kind: a virtualenv with kanmon and its test extra, a Docker engine and
# a PostgreSQL server (started here when none answers), then ruff, mypy --strict and pytest. Idempotent.
#   scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/venv.sh test
bash scripts/services.sh up
# shellcheck disable=SC1091
source "${KANMON_SERVICES_DIR:-/tmp/kanmon-services}/env"
trap 'bash scripts/services.sh down' EXIT

echo "== ruff"
.venv/bin/ruff check kanmon tests bench agents
.venv/bin/ruff format --check kanmon tests bench agents
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
# two workers (tests/conftest.py keeps Docker tests, and the heaviest ones, each to one worker); the 25 slowest
# tests are listed, to keep the suite inside its 20 minutes
.venv/bin/python -m pytest -n 2 --dist loadgroup --durations=25 "$@"
