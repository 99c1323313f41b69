"""sipedge.transport.dns against a small authoritative DNS server on loopback.

The server answers from an in-test zone, counts queries, and stays silent for chosen names
so that timeouts can be tested. No outside DNS is ever asked.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from sipedge.sip.locate import Target, plan_hop
from sipedge.transport.dns import Resolver, TargetIterator

T = TypeVar("T")
SOA = "ns.test. admin.test. 1 3600 600 86400 {minimum}"


@dataclass
class Zone:
    """Records as {(owner, rdtype): (ttl, [rdata text])}; owners absolute, lower-case."""

    records: dict[tuple[str, str], tuple[int, list[str]]] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)
    negative_ttl: int = 60
    queries: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, owner: str, rdtype: str, ttl: int, *rdata: str) -> None:
        self.records[(owner, rdtype)] = (ttl, list(rdata))

    def sent(self) -> int:
        return sum(self.queries.values())

    def answer(self, wire: bytes) -> bytes | None:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries[(name, rdtype)] += 1
        if name in self.silent:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        found = self.records.get((name, rdtype))
        if found is not None:
            ttl, rdata = found
            response.answer.append(dns.rrset.from_text_list(name, ttl, "IN", rdtype, rdata))
        else:
            if not any(owner == name for owner, _ in self.records):
                response.set_rcode(dns.rcode.NXDOMAIN)
            soa = SOA.format(minimum=self.negative_ttl)
            response.authority.append(dns.rrset.from_text("test.", 3600, "IN", "SOA", soa))
        return response.to_wire()


class _ZoneProtocol(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.zone.answer(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


Scenario = Callable[[Resolver, Clock], Awaitable[T]]


@pytest.fixture
def zone() -> Zone:
    return Zone()


@pytest.fixture
def run(zone: Zone) -> Iterator[Callable[..., Any]]:
    """run(scenario, **resolver_kwargs): serve ``zone`` on loopback, run scenario once."""

    def runner(scenario: Scenario[T], **kwargs: Any) -> T:
        async def main() -> T:
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _ZoneProtocol(zone), local_addr=("127.0.0.1", 0)
            )
            port = transport.get_extra_info("sockname")[1]
            clock = Clock()
            options: dict[str, Any] = {"timeout": 0.1, "lifetime": 0.25, "clock": clock}
            options.update(kwargs)
            resolver = Resolver(nameservers=["127.0.0.1"], port=port, **options)
            try:
                return await scenario(resolver, clock)
            finally:
                transport.close()

        return asyncio.run(main())

    yield runner


def scripted(*values: float) -> Callable[[], float]:
    it = iter(values)
    return lambda: next(it)


def srv_zone(zone: Zone) -> None:
    """_sip._udp.example.test: two priority-10 records (weights 75/25), one priority 20."""
    zone.add(
        "_sip._udp.example.test.",
        "SRV",
        300,
        "10 75 5070 a.example.test.",
        "10 25 5071 b.example.test.",
        "20 0 5072 c.example.test.",
    )
    zone.add("a.example.test.", "A", 300, "192.0.2.1")
    zone.add("b.example.test.", "A", 300, "192.0.2.2")
    zone.add("c.example.test.", "A", 300, "192.0.2.3")


# --- the RFC 3263 chain -----------------------------------------------------------------


def test_numeric_hosts_skip_dns(zone: Zone, run: Callable[..., Any]) -> None:
    async def scenario(resolver: Resolver, _: Clock) -> list[list[Target]]:
        return [
            await resolver.resolve_uri("sip", "192.0.2.7"),
            await resolver.resolve_uri("sips", "[2001:db8::7]", 5071),
            await resolver.resolve_uri("sip", "example.test", maddr="192.0.2.8", transport="tcp"),
        ]

    assert run(scenario) == [
        [Target("udp", "192.0.2.7", 5060)],
        [Target("tls", "2001:db8::7", 5071)],
        [Target("tcp", "192.0.2.8", 5060)],
    ]
    assert zone.sent() == 0


def test_srv_priority_and_weights_order_targets(zone: Zone, run: Callable[..., Any]) -> None:
    srv_zone(zone)
    hop = plan_hop("sip", "example.test", transport="udp")

    async def scenario(resolver: Resolver, _: Clock) -> tuple[list[Target], list[Target]]:
        # draw 0.9 * 100 = 90 > 75 picks b; draw 0.5 * 75 picks a
        first = await resolver.resolve(hop)
        # draw 0.1 * 100 = 10 picks a, then b
        second = await resolver.resolve(hop)
        return first, second

    first, second = run(scenario, rand=scripted(0.9, 0.5, 0.3, 0.1, 0.5, 0.3))
    a = Target("udp", "192.0.2.1", 5070)
    b = Target("udp", "192.0.2.2", 5071)
    c = Target("udp", "192.0.2.3", 5072)
    assert first == [b, a, c]
    assert second == [a, b, c]
    assert {t.name for t in first} == {"example.test"}  # for TLS/WS identity checks
    assert zone.queries[("_sip._udp.example.test.", "SRV")] == 1
    assert ("example.test.", "NAPTR") not in zone.queries  # transport given: no NAPTR


def test_naptr_srv_address_chain(zone: Zone, run: Callable[..., Any]) -> None:
    zone.add(
        "example.test.",
        "NAPTR",
        300,
        '20 10 "s" "SIP+D2U" "" _sip._udp.example.test.',
        '10 10 "s" "SIPS+D2T" "" _sips._tcp.example.test.',
        '10 20 "s" "SIP+D2T" "" _sip._tcp.example.test.',
        '5 10 "s" "SIP+D2S" "" _sip._sctp.example.test.',
    )
    zone.add("_sips._tcp.example.test.", "SRV", 300, "0 0 5061 tls.example.test.")
    zone.add("_sip._tcp.example.test.", "SRV", 300, "0 0 5060 tcp.example.test.")
    zone.add("_sip._udp.example.test.", "SRV", 300, "0 0 5060 tcp.example.test.")
    zone.add("tls.example.test.", "A", 300, "192.0.2.10")
    zone.add("tls.example.test.", "AAAA", 300, "2001:db8::10")
    zone.add("tcp.example.test.", "A", 300, "192.0.2.11")

    async def scenario(resolver: Resolver, _: Clock) -> list[Target]:
        return await resolver.resolve_uri("sip", "example.test")

    assert run(scenario) == [
        Target("tls", "192.0.2.10", 5061),
        Target("tls", "2001:db8::10", 5061),
        Target("tcp", "192.0.2.11", 5060),
        Target("udp", "192.0.2.11", 5060),
    ]
    assert zone.queries[("example.test.", "NAPTR")] == 1
    assert ("_sip._sctp.example.test.", "SRV") not in zone.queries
    assert zone.queries[("tcp.example.test.", "A")] == 1  # shared SRV target asked once


def test_sips_uri_uses_only_sips_naptr(zone: Zone, run: Callable[..., Any]) -> None:
    zone.add(
        "example.test.",
        "NAPTR",
        300,
        '10 10 "s" "SIP+D2U" "" _sip._udp.example.test.',
        '20 10 "s" "SIPS+D2T" "" _sips._tcp.example.test.',
    )
    zone.add("_sips._tcp.example.test.", "SRV", 300, "0 0 5061 tls.example.test.")
    zone.add("tls.example.test.", "A", 300, "192.0.2.10")

    async def scenario(resolver: Resolver, _: Clock) -> list[Target]:
        return await resolver.resolve_uri("sips", "example.test")

    assert run(scenario) == [Target("tls", "192.0.2.10", 5061)]
    assert ("_sip._udp.example.test.", "SRV") not in zone.queries


def test_without_naptr_srv_is_probed_per_transport(zone: Zone, run: Callable[..., Any]) -> None:
    zone.add("_sip._tcp.example.test.", "SRV", 300, "0 0 5080 tcp.example.test.")
    zone.add("tcp.example.test.", "A", 300, "192.0.2.11")

    async def scenario(resolver: Resolver, _: Clock) -> list[Target]:
        return await resolver.resolve_uri("sip", "example.test")

    assert run(scenario) == [Target("tcp", "192.0.2.11", 5080)]
    for name in ("_sip._udp.", "_sip._tcp.", "_sips._tcp."):
        assert zone.queries[(name + "example.test.", "SRV")] == 1
    assert ("example.test.", "A") not in zone.queries  # SRV found: no A fallback


def test_no_srv_falls_back_to_addresses(zone: Zone, run: Callable[..., Any]) -> None:
    zone.add("example.test.", "A", 300, "192.0.2.20")

    async def scenario(resolver: Resolver, _: Clock) -> list[list[Target]]:
        return [
            await resolver.resolve_uri("sip", "example.test"),
            await resolver.resolve_uri("sip", "example.test", oversize=True),
            await resolver.resolve_uri("sips", "example.test"),
            await resolver.resolve_uri("sip", "example.test", transport="ws"),
        ]

    assert run(scenario) == [
        [Target("udp", "192.0.2.20", 5060)],
        [Target("tcp", "192.0.2.20", 5060)],  # RFC 3261 §18.1.1
        [Target("tls", "192.0.2.20", 5061)],
        [Target("ws", "192.0.2.20", 5060)],
    ]
    assert zone.queries[("example.test.", "NAPTR")] == 1  # the negative answer was cached


def test_explicit_port_asks_only_addresses(zone: Zone, run: Callable[..., Any]) -> None:
    zone.add("example.test.", "A", 300, "192.0.2.20")
    zone.add("example.test.", "AAAA", 300, "2001:db8::20")

    async def scenario(resolver: Resolver, _: Clock) -> list[Target]:
        return await resolver.resolve_uri("sip", "example.test", 5090, "tcp")

    assert run(scenario) == [
        Target("tcp", "192.0.2.20", 5090),
        Target("tcp", "2001:db8::20", 5090),
    ]
    assert {rdtype for _, rdtype in zone.queries} == {"A", "AAAA"}


def test_dot_srv_target_means_no_service_and_no_fallback(
    zone: Zone, run: Callable[..., Any]
) -> None:
    zone.add("_sip._udp.example.test.", "SRV", 300, "0 0 0 .")
    zone.add("example.test.", "A", 300, "192.0.2.20")

    async def scenario(resolver: Resolver, _: Clock) -> list[Target]:
        return await resolver.resolve_uri("sip", "example.test", transport="udp")

    assert run(scenario) == []
    assert ("example.test.", "A") not in zone.queries


# --- address families -------------------------------------------------------------------


def test_aaaa_and_family_preference(zone: Zone, run: Callable[..., Any]) -> None:
    zone.add("dual.test.", "A", 300, "192.0.2.30")
    zone.add("dual.test.", "AAAA", 300, "2001:db8::30", "2001:db8::31")
    zone.add("v6.test.", "AAAA", 300, "2001:db8::40")

    async def addresses(resolver: Resolver, _: Clock) -> list[list[str]]:
        return [await resolver.addresses("dual.test"), await resolver.addresses("v6.test")]

    v4_first = run(addresses)
    assert v4_first[0][0] == "192.0.2.30" and v4_first[1] == ["2001:db8::40"]
    assert sorted(v4_first[0][1:]) == ["2001:db8::30", "2001:db8::31"]
    v6_first = run(addresses, families=("AAAA", "A"))
    assert sorted(v6_first[0][:2]) == ["2001:db8::30", "2001:db8::31"]  # RRset order is free
    assert v6_first[0][2:] == ["192.0.2.30"] and v6_first[1] == ["2001:db8::40"]
    zone.queries.clear()
    assert run(addresses, families=("A",)) == [["192.0.2.30"], []]
    assert {rdtype for _, rdtype in zone.queries} == {"A"}


def test_bad_families_are_refused() -> None:
    with pytest.raises(ValueError):
        Resolver(nameservers=["127.0.0.1"], families=("MX",))
    with pytest.raises(ValueError):
        Resolver(nameservers=["127.0.0.1"], families=())


# --- caching ----------------------------------------------------------------------------


def test_positive_answers_are_cached_for_their_ttl(zone: Zone, run: Callable[..., Any]) -> None:
    srv_zone(zone)
    zone.records[("a.example.test.", "A")] = (5, ["192.0.2.1"])  # shorter TTL
    hop = plan_hop("sip", "example.test", transport="udp")

    async def scenario(resolver: Resolver, clock: Clock) -> list[int]:
        sent = []
        await resolver.resolve(hop)
        sent.append(zone.sent())
        await resolver.resolve(hop)
        sent.append(zone.sent())  # all from cache
        clock.now += 4.9
        await resolver.resolve(hop)
        sent.append(zone.sent())  # still fresh
        clock.now += 0.2
        await resolver.resolve(hop)
        sent.append(zone.sent())  # a.example.test A (and AAAA, negative TTL 60) expired
        clock.now += 300
        await resolver.resolve(hop)
        sent.append(zone.sent())  # everything expired: all asked again
        return sent

    sent = run(scenario)
    assert sent[0] > 0
    assert sent[1] == sent[0] and sent[2] == sent[0]
    assert sent[3] == sent[0] + 1
    assert zone.queries[("a.example.test.", "A")] == 3
    assert zone.queries[("_sip._udp.example.test.", "SRV")] == 2
    assert sent[4] == sent[3] + sent[0]


def test_ttl_is_capped_by_max_ttl(zone: Zone, run: Callable[..., Any]) -> None:
    zone.add("host.test.", "A", 86400, "192.0.2.50")

    async def scenario(resolver: Resolver, clock: Clock) -> None:
        await resolver.addresses("host.test")
        clock.now += 11
        await resolver.addresses("host.test")

    run(scenario, max_ttl=10, families=("A",))
    assert zone.queries[("host.test.", "A")] == 2


def test_negative_answers_are_cached_for_the_soa_ttl(zone: Zone, run: Callable[..., Any]) -> None:
    zone.negative_ttl = 60
    zone.add("nodata.test.", "TXT", 300, '"x"')

    async def scenario(resolver: Resolver, clock: Clock) -> list[list[str]]:
        out = [await resolver.addresses("missing.test"), await resolver.addresses("nodata.test")]
        out += [await resolver.addresses("missing.test"), await resolver.addresses("nodata.test")]
        clock.now += 59
        await resolver.addresses("missing.test")
        await resolver.addresses("nodata.test")
        assert zone.queries[("missing.test.", "A")] == 1
        assert zone.queries[("nodata.test.", "A")] == 1
        clock.now += 2
        await resolver.addresses("missing.test")
        await resolver.addresses("nodata.test")
        return out

    assert run(scenario, families=("A",)) == [[], [], [], []]
    assert zone.queries[("missing.test.", "A")] == 2  # NXDOMAIN
    assert zone.queries[("nodata.test.", "A")] == 2  # NODATA


def test_negative_ttl_is_capped(zone: Zone, run: Callable[..., Any]) -> None:
    zone.negative_ttl = 3600

    async def scenario(resolver: Resolver, clock: Clock) -> None:
        await resolver.addresses("missing.test")
        clock.now += 6
        await resolver.addresses("missing.test")

    run(scenario, families=("A",), max_negative_ttl=5)
    assert zone.queries[("missing.test.", "A")] == 2


def test_cache_is_bounded_lru(zone: Zone, run: Callable[..., Any]) -> None:
    for i in range(3):
        zone.add(f"h{i}.test.", "A", 300, f"192.0.2.{60 + i}")

    async def scenario(resolver: Resolver, _: Clock) -> int:
        await resolver.addresses("h0.test")
        await resolver.addresses("h1.test")
        await resolver.addresses("h0.test")  # h0 becomes most recent
        await resolver.addresses("h2.test")  # evicts h1
        size = resolver.cache_size
        await resolver.addresses("h0.test")
        await resolver.addresses("h1.test")
        return size

    assert run(scenario, families=("A",), max_entries=2) == 2
    assert zone.queries[("h0.test.", "A")] == 1
    assert zone.queries[("h1.test.", "A")] == 2


def test_concurrent_lookups_share_one_query(zone: Zone, run: Callable[..., Any]) -> None:
    srv_zone(zone)
    hop = plan_hop("sip", "example.test", transport="udp")

    async def scenario(resolver: Resolver, _: Clock) -> list[list[Target]]:
        return list(await asyncio.gather(*(resolver.resolve(hop) for _ in range(5))))

    results = run(scenario)
    assert all(len(r) == 3 for r in results)
    assert zone.queries[("_sip._udp.example.test.", "SRV")] == 1
    assert zone.queries[("a.example.test.", "A")] == 1


# --- timeouts and failover --------------------------------------------------------------


def test_timeout_gives_no_targets_quickly_and_is_not_cached(
    zone: Zone, run: Callable[..., Any]
) -> None:
    zone.silent.add("slow.test.")

    async def scenario(resolver: Resolver, _: Clock) -> tuple[list[Target], float]:
        start = time.monotonic()
        targets = await resolver.resolve_uri("sip", "slow.test", 5060)
        elapsed = time.monotonic() - start
        await resolver.resolve_uri("sip", "slow.test", 5060)
        return targets, elapsed

    targets, elapsed = run(scenario, families=("A",))
    assert targets == []
    assert elapsed < 0.4  # lifetime 0.25 s, enforced even through dnspython's back-off
    assert zone.queries[("slow.test.", "A")] >= 2  # asked again: timeouts are not cached


def test_one_silent_srv_target_does_not_block_the_others(
    zone: Zone, run: Callable[..., Any]
) -> None:
    srv_zone(zone)
    zone.silent.add("a.example.test.")
    hop = plan_hop("sip", "example.test", transport="udp")

    async def scenario(resolver: Resolver, _: Clock) -> list[Target]:
        return await resolver.resolve(hop)

    assert run(scenario, rand=scripted(0.0, 0.0, 0.0), families=("A",)) == [
        Target("udp", "192.0.2.2", 5071),
        Target("udp", "192.0.2.3", 5072),
    ]


def test_iterate_fails_over_through_srv_targets(zone: Zone, run: Callable[..., Any]) -> None:
    srv_zone(zone)
    hop = plan_hop("sip", "example.test", transport="udp")

    async def scenario(resolver: Resolver, _: Clock) -> TargetIterator:
        return await resolver.iterate(hop)

    it = run(scenario, rand=scripted(0.1, 0.0, 0.0), families=("A",))
    assert it.next() == Target("udp", "192.0.2.1", 5070)
    assert it.fail_over(503) == Target("udp", "192.0.2.2", 5071)
    assert it.fail_over(None) == Target("udp", "192.0.2.3", 5072)
    assert it.fail_over(None) is None and it.exhausted


def test_unreachable_nameserver_gives_empty_list() -> None:
    async def scenario() -> list[Target]:
        # a port nothing listens on: ICMP refusals or timeouts, never an exception
        resolver = Resolver(nameservers=["127.0.0.1"], port=9, timeout=0.05, lifetime=0.15)
        return await resolver.resolve_uri("sip", "example.test")

    assert asyncio.run(scenario()) == []
