"""The wheel, a fresh virtual environment, and the quick start's commands, offline.

The wheel is built once per session from a copy of the source (``pip wheel --no-deps
--no-build-isolation``: the build backend comes from the project's venv, nothing is
downloaded). Fresh venvs get sipedge from that wheel only; its dependencies are not
downloaded either: a ``.pth`` file points the new venv at a directory of links to the
project venv's installed packages, sipedge's own left out. So what runs is the installed
wheel (entry point, package data, metadata), never the source tree.

The quick start test runs every ``sh`` block of docs/quickstart.md, in order, in one bash
with ``set -e``; the only changes are the ports (5060 and 8080 become free ones). Its
``python3`` is a shim that runs this interpreter and adds the ``.pth`` file to each venv it
creates.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import tomllib
import uuid
import zipfile
from collections.abc import Iterator
from importlib.metadata import version as dist_version
from pathlib import Path

import pytest
from docs_support import DOCS, ROOT, code_blocks, heredoc

pytestmark = pytest.mark.packaging

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
QUICKSTART = DOCS / "quickstart.md"
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)
OFFLINE_PIP = {"PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INPUT": "1"}


def _setuptools_ok() -> bool:
    try:
        major = int(dist_version("setuptools").split(".")[0])
    except Exception:
        return False
    return major >= 77


def run(cmd: list[str], timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kw)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{cmd} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done  # type: ignore[no-any-return]


def free_port(kind: socket.SocketKind = socket.SOCK_DGRAM) -> int:
    """A port free for UDP and TCP on 127.0.0.1."""
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, other) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sipedge's wheel, built from a copy of the source tree."""
    if not _setuptools_ok():
        pytest.skip("the offline wheel build needs setuptools>=77 (pip install -e '.[docs]')")
    src = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "MANIFEST.in", "setup.py"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.so", "*.pyc")
    shutil.copytree(ROOT / "src", src / "src", ignore=ignore)
    out = tmp_path_factory.mktemp("wheelhouse")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    run([*cmd, "-w", str(out), str(src)], timeout=120, env={**os.environ, **OFFLINE_PIP})
    [built] = out.glob("sipedge-*.whl")
    return built


@pytest.fixture(scope="session")
def deps_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Links to every package of the project venv except sipedge itself."""
    site = Path(sysconfig.get_paths()["purelib"])
    farm = tmp_path_factory.mktemp("deps")
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.startswith(("sipedge", "__editable__", "_sipedge")) or name.endswith(".pth"):
            continue
        (farm / entry.name).symlink_to(entry)
    return farm


def add_deps(venv: Path, deps: Path) -> None:
    """Make the dependencies of ``deps`` importable in ``venv`` (a .pth file)."""
    [site] = (venv / "lib").glob("python3*/site-packages")
    (site / "_test_dependencies.pth").write_text(f"{deps}\n")


@pytest.fixture(scope="session")
def installed(wheel: Path, deps_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed (by the project's pip, no index)."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    run([BASE_PYTHON, "-m", "venv", "--without-pip", str(venv)])
    add_deps(venv, deps_dir)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    run([*pip, "install", "-q", "--no-deps", str(wheel)], env={**os.environ, **OFFLINE_PIP})
    return venv


def test_wheel_has_the_entry_point_package_data_and_version(wheel: Path) -> None:
    # Pure Python, or tagged for this interpreter when the optional C parser was built.
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert re.fullmatch(
        rf"sipedge-{re.escape(VERSION)}-(py3-none-any|{tag}-{tag}-\w+)\.whl", wheel.name
    )
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(f"sipedge-{VERSION}.dist-info/METADATA").decode()
        entry = z.read(f"sipedge-{VERSION}.dist-info/entry_points.txt").decode()
    assert "sipedge/py.typed" in names and "sipedge/cli_install.py" in names
    static = ROOT / "src" / "sipedge" / "mgmt" / "static"
    for page in static.glob("*"):
        assert f"sipedge/mgmt/static/{page.name}" in names, "dashboard file missing"
    assert f"\nVersion: {VERSION}\n" in meta
    assert re.search(r"^sipedge = sipedge\.cli:main$", entry, re.M), entry


def test_installed_sipedge_reports_the_metadata_version(installed: Path) -> None:
    py = str(installed / "bin" / "python")
    where = run([py, "-c", "import sipedge; print(sipedge.__file__)"]).stdout.strip()
    assert where.startswith(str(installed)), f"sipedge imported from {where}, not the venv"
    meta = "import importlib.metadata as m; print(m.version('sipedge'))"
    assert run([py, "-c", meta]).stdout.strip() == VERSION
    shown = run([str(installed / "bin" / "sipedge"), "--version"]).stdout.strip()
    assert shown == f"sipedge, version {VERSION}"


def options(port: int, timeout: float = 5.0) -> int:
    """Send one OPTIONS for the proxy itself over UDP; the status of the answer."""
    tag = uuid.uuid4().hex[:8]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        me = s.getsockname()[1]
        msg = (
            f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-pkg-{tag};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:check@127.0.0.1:{me}>;tag={tag}\r\n"
            f"To: <sip:127.0.0.1:{port}>\r\nCall-ID: pkg-{tag}\r\nCSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.sendto(msg, ("127.0.0.1", port))
            s.settimeout(0.3)
            with contextlib.suppress(TimeoutError, ConnectionRefusedError):
                data = s.recv(65535)
                status = int(data.split(b" ", 2)[1])
                if status >= 200:
                    return status
        return 0


def quickstart_config(sip: int, api: int) -> str:
    """The sipedge.toml the quick start writes, on test ports."""
    text = QUICKSTART.read_text(encoding="utf-8")
    config = heredoc(text, "cat > sipedge.toml <<'END'", "END")
    return config.replace("5060", str(sip)).replace("8080", str(api))


@contextlib.contextmanager
def running(cmd: list[str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def test_installed_run_with_the_quickstart_config_answers_options(
    installed: Path, tmp_path: Path
) -> None:
    sip, api = free_port(), free_port(socket.SOCK_STREAM)
    (tmp_path / "sipedge.toml").write_text(quickstart_config(sip, api))
    exe = str(installed / "bin" / "sipedge")
    run([exe, "check", "--config", "sipedge.toml"], cwd=tmp_path)
    with running([exe, "run", "--config", "sipedge.toml"], tmp_path) as proc:
        status = options(sip)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=15)
        out = proc.stdout.read() if proc.stdout else ""
    assert status == 200, out
    assert rc == 0, out
    assert "Traceback" not in out, out


PYTHON_SHIM = """#!/bin/bash
# python3 for the quick-start test: the test's interpreter; a new venv gets the .pth file.
"{real}" "$@"
rc=$?
if [ $rc -eq 0 ] && [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    site=$(echo "${{@: -1}}"/lib/python3*/site-packages)
    echo "{deps}" >"$site/_test_dependencies.pth"
fi
exit $rc
"""


def quickstart_script(sip: int, api: int) -> str:
    """Every sh block of the quick start, in order, on test ports."""
    blocks = [b.text for b in code_blocks(QUICKSTART) if b.lang == "sh"]
    assert len(blocks) >= 4, "the quick start lost its commands"
    body = "\n".join(blocks).replace("5060", str(sip)).replace("8080", str(api))
    # Harness only: a failed step must not leave the background sipedge running.
    guard = "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
    return "set -euo pipefail\n" + guard + body


def test_quickstart_commands_run_in_a_fresh_venv(
    wheel: Path, deps_dir: Path, tmp_path: Path
) -> None:
    start = time.monotonic()
    home, work, shims = tmp_path / "home", tmp_path / "work", tmp_path / "shims"
    for d in (home, work, shims):
        d.mkdir()
    shutil.copy(wheel, work / wheel.name)
    shim = shims / "python3"
    shim.write_text(PYTHON_SHIM.format(real=BASE_PYTHON, deps=deps_dir))
    shim.chmod(0o755)
    sip, api = free_port(), free_port(socket.SOCK_STREAM)
    env = {
        "PATH": f"{shims}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        **OFFLINE_PIP,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    proc = subprocess.Popen(
        ["bash", "-c", quickstart_script(sip, api)],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=90)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out
    assert f"sipedge, version {VERSION}" in out, out
    assert "sipedge.toml: OK" in out, out
    assert f"200 from udp:127.0.0.1:{sip}" in out, out
    assert re.search(r"registrations\W+0\b", out), out  # sipedge ctl stats, over the API
    assert (home / "sipedge" / "bin" / "sipedge").is_file()
    assert (home / "sipedge-lab" / ".sipedge" / "users.db").is_file()
    assert time.monotonic() - start < 60, "the quick start test must stay under 60 s"
