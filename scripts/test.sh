#!/usr/bin/env bash
# Install everything the tests need (Debian packages, virtual environment) and run the
# whole suite: lint, types, unit and interop tests. Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
# WebSocket interop clients: Chromium, and Node/npm unless some (e.g. NodeSource's nodejs,
# which bundles npm and conflicts with Debian's npm) is already installed.
JS_APT="chromium"
command -v node >/dev/null 2>&1 || JS_APT="$JS_APT nodejs"
command -v npm >/dev/null 2>&1 || JS_APT="$JS_APT npm"
SIPEDGE_APT="sip-tester baresip-core stunnel4 rtpengine-daemon socat iproute2 iptables redis-server pacemaker corosync pacemaker-cli-utils resource-agents libxml2-utils $JS_APT ${SIPEDGE_APT:-}" SIPEDGE_EXTRAS="fast,dev,docs" bash scripts/setup.sh

# npm packages of tests/interop/js (pinned by its package-lock.json; postinstall bundles
# jssip): only when node_modules is missing or the lock file changed since the last install.
JS_DIR=tests/interop/js
JS_LOCK=$(sha256sum "$JS_DIR/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$JS_DIR/node_modules/.sipedge-lock.sha256" 2>/dev/null || true)" != "$JS_LOCK" ]; then
    echo "setup: npm ci in $JS_DIR"
    if (cd "$JS_DIR" && npm ci --no-audit --no-fund --loglevel=error); then
        echo "$JS_LOCK" >"$JS_DIR/node_modules/.sipedge-lock.sha256"
    else
        echo "setup: npm ci failed; the WebSocket interop tests will skip" >&2
    fi
fi

echo "== ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest -q "$@"
echo "== docs (mkdocs build --strict)"
site_dir=$(mktemp -d)
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$site_dir"
rm -rf "$site_dir"
