#!/usr/bin/env bash
# Install sipedge into .venv and run it on its embedded defaults.
# Usage: bash scripts/run.sh [sipedge run options, e.g. --listen udp:127.0.0.1:5060]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sipedge run "$@"
