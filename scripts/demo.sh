#!/usr/bin/env bash
# Install kanmon into .venv and run `gated demo` on the embedded default (SQLite in ./kanmon-data): a demo group
# answered by the echo agent on the process runtime. Type a message and press Enter; Ctrl-D ends the chat (gated
# keeps serving the web chat), Ctrl-C stops it. venv.sh installs only when .venv is new or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/venv.sh
export KANMON_DATA_DIR=${KANMON_DATA_DIR:-$PWD/kanmon-data}
exec .venv/bin/gated demo "$@"
