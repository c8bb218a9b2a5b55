#!/usr/bin/env bash
# Install kanmon into .venv and run it on the embedded default (SQLite in ./kanmon-data).
# Until `gated run`/`gated demo` land, this migrates the store, registers a demo group and shows the store's status.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
export KANMON_DATA_DIR=${KANMON_DATA_DIR:-$PWD/kanmon-data}
.venv/bin/gated migrate
.venv/bin/gated group list | grep -q '^demo' || .venv/bin/gated group add demo --runtime process --command "$PWD/.venv/bin/gated agent echo"
.venv/bin/gated send web:demo "hello from the demo" --sender demo-user
.venv/bin/gated status
