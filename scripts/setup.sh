#!/usr/bin/env bash
# Set-up shared by scripts/run.sh and scripts/test.sh: Debian packages, a virtual
# environment in .venv and sipedge installed into it. Safe to run again.
#   SIPEDGE_APT="pkg ..."   extra Debian packages to install
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "setup: installing Debian packages: ${missing[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

if command -v apt-get >/dev/null 2>&1; then
    base=(python3 python3-venv python3-dev gcc)
    # Only ask for Debian's python3 where no other python3 is on the PATH.
    if command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' 2>/dev/null; then
        base=()
    fi
    # shellcheck disable=SC2206
    extra=(${SIPEDGE_APT:-})
    if [ "${#base[@]}" -gt 0 ] || [ "${#extra[@]}" -gt 0 ]; then
        apt_install "${base[@]}" "${extra[@]}"
    fi
fi

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "setup: sipedge needs Python 3.11 or newer (found $(python3 --version))" >&2
    exit 1
}
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e ".[${SIPEDGE_EXTRAS:-fast}]"
