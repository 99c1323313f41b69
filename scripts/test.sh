#!/usr/bin/env bash
# Install everything the tests need (Debian packages, virtual environment) and run the
# whole suite: lint, types, unit and interop tests. Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
SIPEDGE_APT="sip-tester baresip-core ${SIPEDGE_APT:-}" SIPEDGE_EXTRAS="fast,dev" bash scripts/setup.sh

echo "== ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest -q "$@"
