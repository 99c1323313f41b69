"""Two active sipedge nodes sharing Redis behind DNS SRV (``ha.mode = "active-active"``).

The SRV records of the domain name both nodes. A SIPp UA registers over TCP on the first
SRV target and is called by a SIPp UAC through the second: that node finds the binding in
Redis with the first node's Path entry, sends the INVITE there as a preloaded Route, and
the first node relays it over the UA's connection; ACK and BYE follow the recorded route
through both. Then the reverse (a UA on the second node called through the first).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from interop_ha_aa import DOMAIN, NODES, REG_UAS_XML, UAC_XML, AaLab, free_on_all
from interop_net import HOST, PortAllocator
from interop_sipp import SippRun, expect_success

BOUND = 60.0  # the whole test, seconds


@pytest.fixture
def lab(tmp_path: Path, ports: PortAllocator) -> Iterator[AaLab]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    port = next(p for p in iter(ports.take, None) if free_on_all(p))
    lab = AaLab(tmp_path, port, ports.take())
    try:
        lab.start()
        yield lab
    finally:
        lab.close()


def scenario(tmp_path: Path, name: str, text: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    path.write_text(text)
    return path


def common(path: Path, port: int) -> list[str]:
    return ["-sf", str(path), "-i", HOST, "-p", str(port), "-m", "1", "-nostdin"]


def registered_uas(
    tmp_path: Path, user: str, node: tuple[str, int], port: int, callid: str
) -> SippRun:
    """SIPp registering ``user`` over TCP on ``node``, then waiting for the call."""
    args = [f"{node[0]}:{node[1]}", *common(scenario(tmp_path, "uas.xml", REG_UAS_XML), port)]
    args += ["-t", "t1", "-s", user, "-cid_str", callid, "-timeout", "30s"]
    return SippRun(f"uas-{user}", [*args, "-timeout_error"], tmp_path / f"uas-{user}", 35)


def caller(tmp_path: Path, user: str, node: tuple[str, int], port: int, callid: str) -> SippRun:
    """SIPp calling ``sip:USER@sipedge.test`` over UDP through ``node``."""
    args = [f"{node[0]}:{node[1]}", *common(scenario(tmp_path, "uac.xml", UAC_XML), port)]
    args += ["-t", "u1", "-key", "ruri", f"sip:{user}@{DOMAIN}", "-cid_str", callid]
    args += ["-timeout", "20s", "-timeout_error"]
    return SippRun(f"uac-{user}", args, tmp_path / f"uac-{user}", 25)


def wait_registered(uas: SippRun, timeout: float = 10.0) -> bool:
    """Whether the UAS got its 200 to REGISTER in time (then the binding is in Redis)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "SIP/2.0 200" in uas.read("messages.log"):
            return True
        if uas.proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


@pytest.mark.interop
def test_each_node_routes_to_users_registered_on_the_other(
    lab: AaLab, tmp_path: Path, ports: PortAllocator
) -> None:
    tcp, udp = lab.srv_targets("tcp"), lab.srv_targets("udp")
    assert sorted(tcp) == sorted(udp) == sorted((ip, lab.port) for ip in NODES.values())
    first, second = tcp[0], tcp[1]
    for n, (home, via) in enumerate(((first, second), (second, first))):
        user, callid = f"user{n}", f"aa-{n}-{ports.take()}@{HOST}"
        uas_port = ports.take()
        uas = registered_uas(tmp_path / user, user, home, uas_port, callid)
        runs = [uas]
        try:
            assert wait_registered(uas), uas.report() + lab.report()
            uac = caller(tmp_path / user, user, via, ports.take(), callid)
            runs.insert(0, uac)
            expect_success(f"call {via} -> {home}\n{lab.report()}", uac, uas)
        finally:
            for run in runs:
                run.kill()
        # The INVITE reached the UA through both nodes: the caller's node, then its own.
        invite = next(m for m in uas.read("messages.log").split("\n\n") if "INVITE sip:" in m)
        vias = [line for line in invite.splitlines() if line.lower().startswith("via:")]
        assert f"{home[0]}:{lab.port}" in vias[0] and f"{via[0]}:{lab.port}" in vias[1], invite
