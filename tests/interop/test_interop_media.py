"""Calls through sipedge with their media relayed by a real rtpengine (Debian
rtpengine-daemon, userspace mode, loopback): SDP rewritten on both sides over each ng
transport, the session gone after BYE, the maximum call duration ending a call with BYE
both ways, and a dead relay node that neither stalls other calls nor gets new ones."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from interop_media import BlackHole, MediaProxy, RtpEngineDaemon, connection, media_ports
from interop_net import PortAllocator
from interop_proxy import Topology
from interop_sipmsg import find, header_values, parse_trace
from interop_sipp import SippRun, Sipps, expect_success

pytestmark = pytest.mark.interop

HOST = "127.0.0.1"
StartProxy = Callable[..., MediaProxy]


@pytest.fixture
def start_proxy(topo: Topology, tmp_path: Path) -> Iterator[StartProxy]:
    started: list[MediaProxy] = []

    def start(nodes: list[str], extra: str = "") -> MediaProxy:
        proxy = MediaProxy(topo, tmp_path / f"proxy{len(started)}", nodes, extra)
        started.append(proxy)
        proxy.start()
        return proxy

    try:
        yield start
    finally:
        for proxy in started:
            proxy.stop()


def call_id_of(run: SippRun) -> str:
    sent = find(parse_trace(run.read("messages.log")), sent=True, method="INVITE")
    assert sent, run.report()
    return header_values(sent[0].text, "Call-ID")[0]


def wait_gone(rtpengine: RtpEngineDaemon, call_id: str, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if call_id not in rtpengine.calls():
            return True
        time.sleep(0.05)
    return False


def in_range(rtpengine: RtpEngineDaemon, ports: list[int]) -> bool:
    return bool(ports) and all(rtpengine.port_min <= p <= rtpengine.port_max for p in ports)


@pytest.mark.parametrize("transport", ["udp", "tcp", "ws"])
def test_call_media_goes_through_rtpengine(
    transport: str,
    rtpengine: RtpEngineDaemon,
    start_proxy: StartProxy,
    sipps: Sipps,
    topo: Topology,
) -> None:
    """Both SDPs carry rtpengine's address and ports; rtpengine holds the call while it is
    up and has no session left after BYE."""
    proxy = start_proxy([getattr(rtpengine, transport)])
    uas = sipps.uas("uas_call.xml", topo.uas, timeout_s=10)
    uac = sipps.uac("uac_call.xml", topo.proxy, f"sip:uas@{HOST}:{topo.uas}", pause_ms=1000)
    held: list[str] = []
    deadline = time.monotonic() + 5
    while not held and time.monotonic() < deadline and uac.proc.poll() is None:
        held = rtpengine.calls()
        time.sleep(0.05)
    expect_success(proxy.describe(), uac, uas)
    context = proxy.describe() + uac.report() + uas.report()

    offer = find(parse_trace(uas.read("messages.log")), sent=False, method="INVITE")[0].text
    ok = [m for m in find(parse_trace(uac.read("messages.log")), sent=False) if m.status == 200]
    answer = ok[0].text
    assert in_range(rtpengine, media_ports(offer)), offer
    assert in_range(rtpengine, media_ports(answer)), answer
    assert connection(offer) == [HOST] and connection(answer) == [HOST], context
    assert "a=rtcp:" in offer and "ICE" not in offer, offer  # plain RTP, RTCP demuxed
    call_id = call_id_of(uac)
    assert call_id in held, (held, context)
    assert wait_gone(rtpengine, call_id), context


def test_max_call_duration_ends_the_call_both_ways(
    rtpengine: RtpEngineDaemon, start_proxy: StartProxy, sipps: Sipps, topo: Topology
) -> None:
    """[dialog] max_call_duration = 1: one second after the 200 sipedge sends BYE to the
    caller and to the callee (each answers 200) and deletes the media session."""
    proxy = start_proxy([rtpengine.udp], extra="\n[dialog]\nmax_call_duration = 1.0\n")
    uas = sipps.uas("uas_call.xml", topo.uas, timeout_s=10)
    started = time.monotonic()
    uac = sipps.uac("md_uac_wait_bye.xml", topo.proxy, f"sip:uas@{HOST}:{topo.uas}")
    expect_success(proxy.describe(), uac, uas)
    elapsed = time.monotonic() - started
    context = proxy.describe() + uac.report() + uas.report()
    assert 0.9 < elapsed < 4.0, context
    for run in (uac, uas):
        bye = find(parse_trace(run.read("messages.log")), sent=False, method="BYE")
        assert bye and 'text="max duration"' in bye[0].text, context
    assert wait_gone(rtpengine, call_id_of(uac)), context


def rtt_values(run: SippRun) -> list[float]:
    """Per-call INVITE-to-200 times (ms) from SIPp's -trace_rtt file."""
    values = []
    for path in run.logdir.glob("*_rtt.csv"):
        for line in path.read_text().splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 2 and parts[1].strip():
                values.append(float(parts[1]))
    return values


def test_dead_node_neither_stalls_other_calls_nor_gets_new_ones(
    rtpengine: RtpEngineDaemon,
    start_proxy: StartProxy,
    sipps: Sipps,
    topo: Topology,
    ports: PortAllocator,
) -> None:
    """Two nodes of equal weight, one a socket that never answers (ng timeout 1 s). Every
    call succeeds: a call that picked the dead node waits for its timeout and moves to the
    live one; the node is then disabled and gets nothing more. Calls on the live node,
    including those set up while another waits for the dead node, see no added delay."""
    hole = BlackHole()
    try:
        proxy = start_proxy([hole.spec, rtpengine.udp])
        calls = 30
        uas = sipps.uas("uas_call.xml", topo.uas, timeout_s=20, calls=calls)
        uac = sipps.uac(
            "uac_call.xml",
            topo.proxy,
            f"sip:uas@{HOST}:{topo.uas}",
            calls=calls,
            rate=15,
            timeout_s=20,
            extra=("-trace_rtt", "-rtt_freq", "1"),
        )
        expect_success(proxy.describe(), uac, uas)
        times = rtt_values(uac)
    finally:
        hole.close()
    context = f"setup times (ms): {sorted(times)}\n{proxy.describe()}"
    print(
        f"\n[dead node] setup times (ms): {sorted(times)}; dead-node commands: {len(hole.cookies)}"
    )
    assert len(times) == calls, context
    slow = [t for t in times if t > 500]
    fast = [t for t in times if t < 150]
    # The dead node takes new calls only until its first timeout (1 s) disables it (plus
    # the event loop's lag in firing that timeout under load).
    arrivals = sorted(hole.cookies.values())
    assert arrivals and arrivals[-1] < arrivals[0] + 1.3, (arrivals, context)
    assert len(slow) <= len(arrivals) < calls, context
    assert len(fast) >= calls - len(slow) - 2, context
    assert statistics.median(times) < 150, context


@pytest.mark.parametrize(
    ("uac_scenario", "uas_scenario"),
    [("md_uac_cancel.xml", "uas_cancel.xml"), ("md_uac_busy.xml", "uas_busy.xml")],
    ids=["cancel", "busy"],
)
def test_calls_that_never_connect_leave_no_session(
    uac_scenario: str,
    uas_scenario: str,
    rtpengine: RtpEngineDaemon,
    start_proxy: StartProxy,
    sipps: Sipps,
    topo: Topology,
) -> None:
    """The offer reaches rtpengine; a CANCEL or a final failure deletes the session."""
    proxy = start_proxy([rtpengine.tcp])
    uas = sipps.uas(uas_scenario, topo.uas, timeout_s=10)
    uac = sipps.uac(uac_scenario, topo.proxy, f"sip:uas@{HOST}:{topo.uas}", pause_ms=300)
    expect_success(proxy.describe(), uac, uas)
    context = proxy.describe() + uac.report() + uas.report()
    offer = find(parse_trace(uas.read("messages.log")), sent=False, method="INVITE")[0].text
    assert in_range(rtpengine, media_ports(offer)), offer
    assert wait_gone(rtpengine, call_id_of(uac)), context
