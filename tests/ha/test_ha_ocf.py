"""The Pacemaker resource agent (src/sipedge/ha/ocf/sipedge): its meta-data, its actions
against a real sipedge, and ocf-tester (resource-agents) when installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from ha_support import HOST, free_port

AGENT = Path(__file__).resolve().parents[2] / "src" / "sipedge" / "ha" / "ocf" / "sipedge"
OCF_ROOT = Path("/usr/lib/ocf")
OCF_SUCCESS, OCF_ERR_GENERIC, OCF_ERR_CONFIGURED, OCF_NOT_RUNNING = 0, 1, 6, 7

pytestmark = pytest.mark.skipif(
    not (OCF_ROOT / "lib" / "heartbeat" / "ocf-shellfuncs").exists(),
    reason="resource-agents is not installed (no ocf-shellfuncs)",
)


def params(tmp_path: Path, port: int) -> dict[str, str]:
    config = tmp_path / "sipedge.toml"
    config.write_text(
        f'[server]\nlisten = ["udp:{HOST}:{port}"]\nstate_dir = "{tmp_path / "state"}"\n'
        "[api]\nenabled = false\n"
    )
    return {
        "config": str(config),
        "python": sys.executable,
        "ip": HOST,
        "port": str(port),
        "pidfile": str(tmp_path / "sipedge.pid"),
        "logfile": str(tmp_path / "sipedge.log"),
        "workdir": str(tmp_path),
    }


def action(name: str, p: dict[str, str]) -> int:
    env = dict(os.environ, OCF_ROOT=str(OCF_ROOT), OCF_RESOURCE_INSTANCE="t1")
    env.update({f"OCF_RESKEY_{k}": v for k, v in p.items()})
    done = subprocess.run(["sh", str(AGENT), name], env=env, capture_output=True, timeout=60)
    return done.returncode


def test_meta_data_lists_the_actions_and_parameters() -> None:
    out = subprocess.run(
        ["sh", str(AGENT), "meta-data"],
        env=dict(os.environ, OCF_ROOT=str(OCF_ROOT)),
        capture_output=True,
        check=True,
    ).stdout
    root = ET.fromstring(out)
    actions = {a.get("name") for a in root.iter("action")}
    assert {"start", "stop", "monitor", "validate-all", "meta-data"} <= actions
    names = {p.get("name") for p in root.iter("parameter")}
    assert {"config", "python", "ip", "port", "proto", "pidfile"} <= names


def test_start_monitor_stop(tmp_path: Path) -> None:
    p = params(tmp_path, free_port())
    assert action("monitor", p) == OCF_NOT_RUNNING
    try:
        assert action("start", p) == OCF_SUCCESS
        assert action("monitor", p) == OCF_SUCCESS
        assert action("start", p) == OCF_SUCCESS  # already running: still success
        # Alive but deaf (stopped): the OPTIONS health check fails the monitor.
        pid = int(Path(p["pidfile"]).read_text())
        os.kill(pid, 19)  # SIGSTOP
        assert action("monitor", dict(p, probe_timeout="1")) == OCF_ERR_GENERIC
        os.kill(pid, 18)  # SIGCONT
    finally:
        assert action("stop", p) == OCF_SUCCESS
    assert action("monitor", p) == OCF_NOT_RUNNING
    assert action("stop", p) == OCF_SUCCESS  # stopping a stopped resource succeeds


def test_validate_all_rejects_a_bad_configuration(tmp_path: Path) -> None:
    p = params(tmp_path, free_port())
    Path(p["config"]).write_text("[server]\nlisten = 5\n")
    assert action("validate-all", p) == OCF_ERR_CONFIGURED
    assert action("validate-all", dict(p, config=str(tmp_path / "missing.toml"))) == 6


@pytest.mark.skipif(shutil.which("ocf-tester") is None, reason="ocf-tester is not installed")
@pytest.mark.skipif(shutil.which("xmllint") is None, reason="xmllint (libxml2-utils) is missing")
def test_ocf_tester_passes(tmp_path: Path) -> None:
    p = params(tmp_path, free_port())
    cmd = ["ocf-tester", "-n", "sipedge_test"]
    for key, value in p.items():
        cmd += ["-o", f"{key}={value}"]
    done = subprocess.run([*cmd, str(AGENT)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed all tests" in done.stdout
