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
        probe = 100  # a fresh branch per probe (see test_interop_ipv6.options_v6)
        while not answered(port, "Good/1.0", probe):
            assert time.monotonic() < deadline, "sipedge did not answer"
            probe += 1
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


def invite(port: int, n: int) -> bytes:
    return (
        f"INVITE sip:1000@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKrr{n};rport\r\n"
        f"From: <sip:caller@example.net>;tag=r{n}\r\nTo: <sip:1000@127.0.0.1:{port}>\r\n"
        f"Call-ID: route-reload-{n}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
        f"Contact: <sip:caller@127.0.0.1:9>\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def routes_config(port: int, state: Path, pbx: int, broken: bool = False) -> str:
    to = "not a uri" if broken else f"sip:127.0.0.1:{pbx}"
    return (
        f'[server]\nlisten = ["udp:127.0.0.1:{port}"]\nstate_dir = "{state}"\n'
        f'[[proxy.routes]]\nname = "pbx"\nuser_prefix = "1"\nto = "{to}"\n'
    )


def reaches(pbxes: dict[str, socket.socket], sender: socket.socket, port: int, n: int) -> str:
    """Send INVITE n through the proxy; the name of the PBX socket that received it."""
    sender.sendto(invite(port, n), ("127.0.0.1", port))
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        for name, sock in pbxes.items():
            try:
                data = sock.recv(65535)
            except OSError:
                continue
            if f"route-reload-{n}".encode() in data:
                return name
    return "none"


@pytest.mark.interop
def test_routes_reload_on_sighup_and_a_bad_file_keeps_the_old_ones(tmp_path: Path) -> None:
    port = free_port()
    pbxes = {}
    for name in ("a", "b"):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.05)
        pbxes[name] = sock
    pbx_port = {name: s.getsockname()[1] for name, s in pbxes.items()}
    cfg = tmp_path / "sipedge.toml"
    cfg.write_text(routes_config(port, tmp_path / "state", pbx_port["a"]))
    log = tmp_path / "sipedge.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sipedge", "run", "--config", str(cfg)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    try:
        deadline = time.monotonic() + 10
        probe = 100  # a fresh branch per probe (see test_interop_ipv6.options_v6)
        while not answered(port, "probe", probe) and time.monotonic() < deadline:
            probe += 1
            time.sleep(0.1)
        assert reaches(pbxes, sender, port, 1) == "a", log.read_text()
        cfg.write_text(routes_config(port, tmp_path / "state", pbx_port["b"]))
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert reaches(pbxes, sender, port, 2) == "b", log.read_text()
        cfg.write_text(routes_config(port, tmp_path / "state", pbx_port["a"], broken=True))
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert reaches(pbxes, sender, port, 3) == "b", log.read_text()
        text = log.read_text()
        assert "routes reloaded" in text and "keeping the old routes" in text, text
        assert "proxy.routes[0].to" in text, text
    finally:
        proc.terminate()
        proc.wait(10)
        sender.close()
        for sock in pbxes.values():
            sock.close()
