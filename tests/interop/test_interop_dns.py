"""Routing by name through sipedge (RFC 3263), with SIPp user agents and a loopback DNS.

A static route sends users ``dns*`` to a URI with a host name and neither port nor
transport, so sipedge asks NAPTR, then SRV, then A/AAAA (RFC 3263 §4.1, §4.2) of the
DNS server in interop_dns, which serves a test zone on 127.0.0.1. SRV records point at
SIPp UASes (or at a black hole) on loopback ports; failover on 503 and on a timeout follows
RFC 3263 §4.3. No outside DNS is ever asked.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from interop_dns import DnsProxy, DnsServer, NameRoute, UdpSink, Zone, dns_toml
from interop_net import HOST
from interop_proxy import Topology, proxy_kind
from interop_sipmsg import Traced, branch, entries, find, parse_trace
from interop_sipp import SippRun, Sipps, expect_success

T1 = 0.05
TIMER_B = 64 * T1  # RFC 3261 §17.1.1.2
TTL = 300
BYNAME = NameRoute("byname", "dns", "sip:uas.sipedge.test")
SRV_UDP = "_sip._udp.uas.sipedge.test."

StartProxy = Callable[[list[NameRoute]], DnsProxy]


@pytest.fixture
def zone() -> Zone:
    return Zone(negative_ttl=TTL)


@pytest.fixture
def dns_server(zone: Zone) -> Iterator[DnsServer]:
    server = DnsServer(zone)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def start_proxy(topo: Topology, tmp_path: Path, dns_server: DnsServer) -> Iterator[StartProxy]:
    """start_proxy(routes): sipedge resolving through `dns_server`, stopped at teardown."""
    if proxy_kind() != "sipedge":
        pytest.skip("DNS routing tests need sipedge's [dns] configuration")
    started: list[DnsProxy] = []

    def start(routes: list[NameRoute]) -> DnsProxy:
        toml = dns_toml(topo.proxy, dns_server.port, routes, t1=T1)
        proxy = DnsProxy(topo, tmp_path / "proxy", toml)
        started.append(proxy)
        proxy.start()
        return proxy

    try:
        yield start
    finally:
        for proxy in started:
            proxy.stop()


def trace(run: SippRun) -> list[Traced]:
    return parse_trace(run.read("messages.log"))


def context(proxy: DnsProxy, zone: Zone) -> str:
    """Failure context: the proxy's output and what the DNS server was asked."""
    return f"{proxy.describe()}\n--- DNS queries: {dict(zone.counts())}"


def expect_ok(proxy: DnsProxy, zone: Zone, *runs: SippRun) -> None:
    """expect_success, with the proxy log and DNS queries read after the runs ended."""
    try:
        expect_success("", *runs)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{context(proxy, zone)}") from None


def srv_zone(zone: Zone, *targets: tuple[int, int, str]) -> None:
    """_sip._udp.uas.sipedge.test with (priority, port, host) records; hosts -> 127.0.0.1."""
    zone.add(SRV_UDP, "SRV", TTL, *(f"{pri} 10 {port} {host}." for pri, port, host in targets))
    for _, _, host in targets:
        zone.add(f"{host}.", "A", TTL, HOST)


def ruri(topo: Topology, user: str = "dnsuser") -> str:
    return f"sip:{user}@{HOST}:{topo.proxy}"


def top_branch(msg: Traced) -> str | None:
    return branch(entries(msg.text, "via")[0])


@pytest.mark.interop
def test_srv_routing_and_ttl_cache(
    start_proxy: StartProxy, topo: Topology, zone: Zone, sipps: Sipps
) -> None:
    # The UAS listens only on the port named by the SRV record, so every call that
    # completes went through the SRV look-up (RFC 3263 §4.2).
    srv_zone(zone, (10, topo.uas, "uas-a.sipedge.test"))
    proxy = start_proxy([BYNAME])
    uas = sipps.uas("uas_call.xml", topo.uas, calls=10)
    first = sipps.uac("uac_call.xml", topo.proxy, ruri(topo), calls=5, rate=20, pause_ms=100)
    expect_ok(proxy, zone, first)

    asked = zone.counts()
    assert asked[("uas.sipedge.test.", "NAPTR")] == 1, asked  # §4.1: no transport, no port
    assert asked[(SRV_UDP, "SRV")] == 1, asked
    assert asked[("uas-a.sipedge.test.", "A")] == 1, asked
    assert ("uas.sipedge.test.", "A") not in asked, asked  # §4.2: SRV found, no A fallback
    # Five calls, yet each question went out once: shared in-flight look-ups, then cache.
    assert set(asked.values()) == {1}, asked

    second = sipps.uac("uac_call.xml", topo.proxy, ruri(topo), calls=5, rate=20, pause_ms=100)
    expect_ok(proxy, zone, second, uas)
    assert zone.counts() == asked, "calls within the TTL must not query DNS again"
    got = trace(uas)
    assert len(find(got, sent=False, method="INVITE")) == 10
    assert len(find(got, sent=False, method="BYE")) == 10


@pytest.mark.interop
def test_srv_failover_on_503(
    start_proxy: StartProxy, topo: Topology, zone: Zone, sipps: Sipps
) -> None:
    srv_zone(zone, (10, topo.fork_a, "uas-a.sipedge.test"), (20, topo.fork_b, "uas-b.sipedge.test"))
    proxy = start_proxy([BYNAME])
    busy = sipps.uas("dns_uas_503.xml", topo.fork_a)
    good = sipps.uas("uas_call.xml", topo.fork_b)
    uac = sipps.uac("uac_call.xml", topo.proxy, ruri(topo), pause_ms=100)
    # SIPp checks that the 503 was ACKed hop by hop and that the call completed.
    expect_ok(proxy, zone, uac, good, busy)

    first = find(trace(busy), sent=False, method="INVITE")
    second = find(trace(good), sent=False, method="INVITE")
    assert first and second, "both SRV targets must have seen the INVITE"
    # §4.3: a new client transaction (new branch) to the next target, and only our own Via
    # on top of the UAC's: nothing stale from the first attempt.
    assert top_branch(first[0]) != top_branch(second[0])
    assert len(entries(second[0].text, "via")) == 2, second[0].text
    statuses = {m.status for m in find(trace(uac), sent=False)}
    assert 200 in statuses and 503 not in statuses, statuses


@pytest.mark.interop
@pytest.mark.parametrize("dead", ["black-hole", "closed-port"])
def test_srv_failover_on_timeout(
    start_proxy: StartProxy, topo: Topology, zone: Zone, sipps: Sipps, dead: str
) -> None:
    # The first target never answers: after Timer B (64*T1) the proxy must try the next
    # one (RFC 3263 §4.3). Its 100 Trying stops the UAC's retransmissions meanwhile, and
    # the UAC's own bound (-timeout) is well above Timer B.
    srv_zone(zone, (10, topo.fork_a, "uas-a.sipedge.test"), (20, topo.fork_b, "uas-b.sipedge.test"))
    proxy = start_proxy([BYNAME])
    with contextlib.ExitStack() as stack:
        sink = UdpSink(topo.fork_a) if dead == "black-hole" else None
        if sink is not None:
            stack.callback(sink.close)
        good = sipps.uas("uas_call.xml", topo.fork_b, timeout_s=15)
        started = time.monotonic()
        uac = sipps.uac("uac_call.xml", topo.proxy, ruri(topo), pause_ms=100, timeout_s=15)
        expect_ok(proxy, zone, uac, good)
        elapsed = time.monotonic() - started
        lost = sink.first_lines() if sink is not None else []

    assert elapsed < TIMER_B + 3.0, f"call took {elapsed:.1f} s\n{context(proxy, zone)}"
    if sink is not None:
        assert elapsed > TIMER_B * 0.9, f"failed over after {elapsed:.1f} s, before Timer B"
        # Retransmitted at T1 intervals over UDP (RFC 3261 §17.1.1.2) until Timer B.
        assert len(lost) >= 3 and all(line.startswith("INVITE ") for line in lost), lost
    statuses = {m.status for m in find(trace(uac), sent=False)}
    assert 200 in statuses and not statuses & {408, 503}, statuses


@pytest.mark.interop
def test_nxdomain_gives_503_not_a_hang(
    start_proxy: StartProxy, topo: Topology, zone: Zone, sipps: Sipps
) -> None:
    srv_zone(zone, (10, topo.uas, "uas-a.sipedge.test"))  # the zone exists; this name not
    proxy = start_proxy([NameRoute("nowhere", "dns", "sip:nowhere.sipedge.test")])
    started = time.monotonic()
    uac = sipps.uac("dns_uac_503.xml", topo.proxy, ruri(topo), timeout_s=8)
    expect_ok(proxy, zone, uac)
    elapsed = time.monotonic() - started

    assert elapsed < 3.0, f"final response took {elapsed:.1f} s\n{context(proxy, zone)}"
    asked = zone.names_asked()
    finals = [m.first_line for m in find(trace(uac), sent=False) if (m.status or 0) >= 200]
    # sipedge's own answer for a branch with no target (proxy/core.py _send_branch).
    assert finals[:1] == ["SIP/2.0 503 Unresolvable destination"], (
        f"final responses at the UAC: {finals}; DNS names asked: {sorted(asked)}\n"
        f"{context(proxy, zone)}"
    )
    assert "nowhere.sipedge.test." in asked, asked
    assert all(name.endswith("nowhere.sipedge.test.") for name in asked), asked
