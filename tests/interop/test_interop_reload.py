"""Security rules reload on SIGHUP without a restart (and dry-run reports without acting)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def options(port: int, ua: str, n: int) -> bytes:
    return (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKrl{n};rport\r\n"
        f"From: <sip:probe@example.net>;tag=t{n}\r\nTo: <sip:127.0.0.1:{port}>\r\n"
        f"Call-ID: reload-{n}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        f"User-Agent: {ua}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def answered(port: int, ua: str, n: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.sendto(options(port, ua, n), ("127.0.0.1", port))
        try:
            return s.recv(65535).startswith(b"SIP/2.0 200")
        except OSError:
            return False


RULE = """
[[rule]]
name = "evil-ua"
field = "user_agent"
match = "exact"
value = "EvilUA/1.0"
action = "drop"
"""


@pytest.mark.interop
def test_rules_reload_on_sighup_and_dry_run(tmp_path: Path) -> None:
    port = free_port()
    rules = tmp_path / "rules.toml"
    rules.write_text("[settings]\ndry_run = true\n" + RULE)
    cfg = tmp_path / "sipedge.toml"
    cfg.write_text(
        f'[server]\nlisten = ["udp:127.0.0.1:{port}"]\ntrusted = []\n'
        f'state_dir = "{tmp_path}/state"\n[security]\nrules_file = "{rules}"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "sipedge", "run", "--config", str(cfg)],
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 8
        while not answered(port, "Good/1.0", 0):
            assert time.monotonic() < deadline, "sipedge did not answer"
        # Dry run: the rule matches, the request is still answered, and it is reported.
        assert answered(port, "EvilUA/1.0", 1)
        # The operator turns the rule on and sends SIGHUP: no restart needed.
        rules.write_text(RULE)
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        n = 2
        while answered(port, "EvilUA/1.0", n):
            assert time.monotonic() < deadline, "the reloaded rule never took effect"
            n += 1
            time.sleep(0.1)
        assert answered(port, "Good/1.0", 99)  # others are unaffected
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    text = err.decode()
    assert "sipedge DRYRUN rule=evil-ua" in text
    assert "Traceback" not in text
