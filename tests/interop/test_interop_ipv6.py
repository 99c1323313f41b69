"""A call over IPv6 loopback: SIPp UAC -> sipedge on [::1] -> SIPp UAS (RFC 3261 §18, RFC 5118)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCENARIOS = Path(__file__).parent / "scenarios"


def free_port_v6() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::1", 0))
        return int(s.getsockname()[1])


def options_v6(port: int) -> bool:
    # A new branch and Call-ID per probe: a probe that reached the proxy while it was still
    # starting has a server transaction whose answers go to that probe's (closed) socket, and
    # a retransmission of it would be answered there too (RFC 3261 §17.2.2).
    n = time.monotonic_ns()
    msg = (
        f"OPTIONS sip:[::1]:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP [::1]:9;branch=z9hG4bKv6{n};rport\r\n"
        f"From: <sip:t@[::1]>;tag=1\r\nTo: <sip:t@[::1]>\r\nCall-ID: v6ping{n}\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.sendto(msg, ("::1", port))
        try:
            return s.recv(4096).startswith(b"SIP/2.0 200")
        except OSError:
            return False


@pytest.mark.interop
def test_call_over_ipv6(tmp_path: Path) -> None:
    proxy_port, uas_port, uac_port = free_port_v6(), free_port_v6(), free_port_v6()
    proxy = subprocess.Popen(
        [sys.executable, "-m", "sipedge", "run", "--listen", f"udp:[::1]:{proxy_port}"],
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 5
        while not options_v6(proxy_port):
            assert time.monotonic() < deadline, "sipedge did not answer OPTIONS on [::1]"
            time.sleep(0.05)
        uas = subprocess.Popen(
            [
                "sipp",
                "-sn",
                "uas",
                "-i",
                "::1",
                "-p",
                str(uas_port),
                "-m",
                "3",
                "-nostdin",
                "-timeout",
                "15s",
                "-timeout_error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=tmp_path,
        )
        time.sleep(0.3)
        uac = subprocess.run(
            [
                "sipp",
                f"[::1]:{proxy_port}",
                "-sf",
                str(SCENARIOS / "uac_call_v6.xml"),
                "-key",
                "uasaddr",
                f"[::1]:{uas_port}",
                "-i",
                "::1",
                "-p",
                str(uac_port),
                "-m",
                "3",
                "-r",
                "10",
                "-nostdin",
                "-timeout",
                "15s",
                "-timeout_error",
            ],
            capture_output=True,
            text=True,
            timeout=25,
            cwd=tmp_path,
        )
        assert uac.returncode == 0, uac.stdout[-2000:]
        assert uas.wait(timeout=20) == 0
    finally:
        proxy.terminate()
        _, err = proxy.communicate(timeout=10)
    assert b"Traceback" not in err
