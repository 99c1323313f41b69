"""RFC 3263 decisions of sipedge.sip.locate: pure, no DNS."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipedge.sip.errors import ParseError
from sipedge.sip.locate import (
    NaptrRecord,
    SrvRecord,
    Target,
    TargetIterator,
    default_port,
    order_srv,
    plan_hop,
    select_naptr,
    srv_name,
)


def scripted(*values: float) -> Callable[[], float]:
    """A rand() that returns ``values`` in turn."""
    it: Iterator[float] = iter(values)
    return lambda: next(it)


# --- plan_hop: transport, port and look-ups (RFC 3263 §4.1, §4.2) -----------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        # numeric TARGET: no DNS, UDP for SIP, TLS for SIPS, default ports
        (("sip", "192.0.2.1"), {}, Target("udp", "192.0.2.1", 5060)),
        (("sips", "192.0.2.1"), {}, Target("tls", "192.0.2.1", 5061)),
        (("sip", "[2001:DB8::1]", 5070), {}, Target("udp", "2001:db8::1", 5070)),
        (("sip", "2001:db8::1"), {}, Target("udp", "2001:db8::1", 5060)),
        (("sip", "192.0.2.1", "5080", "TCP"), {}, Target("tcp", "192.0.2.1", 5080)),
        (("sip", "192.0.2.1", None, "ws"), {}, Target("ws", "192.0.2.1", 5060)),
        (("sip", "192.0.2.1", None, "wss"), {}, Target("wss", "192.0.2.1", 5061)),
        (("sips", "192.0.2.1", None, "tcp"), {}, Target("tls", "192.0.2.1", 5061)),
        (("sips", "192.0.2.1", None, "ws"), {}, Target("wss", "192.0.2.1", 5061)),
        (("sip", "192.0.2.1", None, "tls"), {}, Target("tls", "192.0.2.1", 5061)),
        # maddr replaces the host as TARGET
        (("sip", "example.com", None, None, "10.0.0.9"), {}, Target("udp", "10.0.0.9", 5060)),
        # oversize: TCP instead of UDP, even when transport=udp (RFC 3261 §18.1.1)
        (("sip", "192.0.2.1"), {"oversize": True}, Target("tcp", "192.0.2.1", 5060)),
        (("sip", "192.0.2.1", None, "udp"), {"oversize": True}, Target("tcp", "192.0.2.1", 5060)),
        (("sips", "192.0.2.1"), {"oversize": True}, Target("tls", "192.0.2.1", 5061)),
        # the node supports no UDP: the SIP default moves on to TCP
        (("sip", "192.0.2.1"), {"supported": ("tcp", "tls")}, Target("tcp", "192.0.2.1", 5060)),
    ],
)
def test_numeric_targets_need_no_dns(
    args: tuple[object, ...], kwargs: dict[str, object], expected: Target
) -> None:
    hop = plan_hop(*args, **kwargs)  # type: ignore[arg-type]
    assert hop.numeric
    assert not hop.needs_naptr and not hop.needs_srv
    assert hop.srv_queries() == []
    assert hop.numeric_target() == expected


def test_hostname_without_transport_or_port_asks_naptr_then_probes_srv() -> None:
    hop = plan_hop("SIP", "Example.COM.")
    assert (hop.target, hop.transport, hop.port, hop.numeric) == ("example.com", None, None, False)
    assert hop.needs_naptr and hop.needs_srv
    assert hop.numeric_target() is None
    # §4.1: one SRV query per supported transport; ws/wss have no standard SRV name
    assert hop.srv_queries() == [
        ("udp", "_sip._udp.example.com."),
        ("tcp", "_sip._tcp.example.com."),
        ("tls", "_sips._tcp.example.com."),
    ]
    assert hop.fallback() == ("udp", 5060)


def test_sips_hostname_only_considers_secure_transports() -> None:
    hop = plan_hop("sips", "example.com")
    assert hop.transports == ("tls", "wss")
    assert hop.srv_queries() == [("tls", "_sips._tcp.example.com.")]
    assert hop.fallback() == ("tls", 5061)


def test_oversize_puts_udp_last() -> None:
    hop = plan_hop("sip", "example.com", oversize=True)
    assert [t for t, _ in hop.srv_queries()] == ["tcp", "tls", "udp"]
    assert hop.fallback() == ("tcp", 5060)


def test_explicit_port_skips_naptr_and_srv() -> None:
    hop = plan_hop("sip", "example.com", 5070)
    assert (hop.transport, hop.port) == ("udp", 5070)
    assert not hop.needs_naptr and not hop.needs_srv
    assert hop.srv_queries() == []
    assert hop.fallback() == ("udp", 5070)


@pytest.mark.parametrize(
    ("scheme", "transport", "query", "fallback"),
    [
        ("sip", "udp", ("udp", "_sip._udp.example.com."), ("udp", 5060)),
        ("sip", "TCP", ("tcp", "_sip._tcp.example.com."), ("tcp", 5060)),
        ("sip", "tls", ("tls", "_sips._tcp.example.com."), ("tls", 5061)),
        ("sips", "tcp", ("tls", "_sips._tcp.example.com."), ("tls", 5061)),
        ("sip", "ws", ("ws", "_sip._ws.example.com."), ("ws", 5060)),
        ("sip", "wss", ("wss", "_sips._ws.example.com."), ("wss", 5061)),
        ("sips", "ws", ("wss", "_sips._ws.example.com."), ("wss", 5061)),
    ],
)
def test_explicit_transport_queries_only_its_srv(
    scheme: str, transport: str, query: tuple[str, str], fallback: tuple[str, int]
) -> None:
    hop = plan_hop(scheme, "example.com", transport=transport)
    assert not hop.needs_naptr and hop.needs_srv
    assert hop.srv_queries() == [query]
    assert hop.fallback() == fallback


@pytest.mark.parametrize(
    ("args", "kwargs", "status"),
    [
        (("tel", "+15551234"), {}, 416),
        (("http", "example.com"), {}, 416),
        (("sips", "example.com", None, "udp"), {}, 400),  # §4.1: no UDP for SIPS
        (("sip", "example.com", None, "sctp"), {}, 503),
        (("sip", "example.com", None, ""), {}, 400),
        (("sip", "example.com", None, "ws"), {"supported": ("udp",)}, 503),
        (("sip", "192.0.2.1"), {"supported": ("ws",)}, 503),
        (("sips", "example.com"), {"supported": ("udp", "tcp")}, 503),
        (("sip", "example.com", 0), {}, 400),
        (("sip", "example.com", 65536), {}, 400),
        (("sip", "example.com", "50x0"), {}, 400),
        (("sip", "example.com", "٥٠٦٠"), {}, 400),  # non-ASCII digits
        (("sip", ""), {}, 400),
        (("sip", "exa mple.com"), {}, 400),
        (("sip", "-bad.example.com"), {}, 400),
        (("sip", "a..b"), {}, 400),
        (("sip", "[192.0.2.1]"), {}, 400),
        (("sip", "[example.com]"), {}, 400),
        (("sip", "192.0.2.300"), {}, 400),  # not an IP, and 300 is no top label
        (("sip", "ex\u00e4mple.com"), {}, 400),
        (("sip", "a" * 64 + ".com"), {}, 400),
    ],
)
def test_bad_uri_parts_raise_parse_error(
    args: tuple[object, ...], kwargs: dict[str, object], status: int
) -> None:
    with pytest.raises(ParseError) as info:
        plan_hop(*args, **kwargs)  # type: ignore[arg-type]
    assert info.value.status_hint == status


@given(
    scheme=st.sampled_from(["sip", "sips", "SIP", "tel", ""]),
    host=st.text(max_size=40),
    port=st.none() | st.integers(-5, 70000) | st.text(max_size=6),
    transport=st.none() | st.text(max_size=6) | st.sampled_from(["udp", "tcp", "tls", "ws"]),
    maddr=st.none() | st.text(max_size=20),
    oversize=st.booleans(),
)
def test_plan_hop_only_raises_parse_error(
    scheme: str,
    host: str,
    port: int | str | None,
    transport: str | None,
    maddr: str | None,
    oversize: bool,
) -> None:
    try:
        hop = plan_hop(scheme, host, port, transport, maddr, oversize=oversize)
    except ParseError:
        return
    assert hop.numeric == (hop.numeric_target() is not None)
    assert hop.port is None or 0 < hop.port < 65536
    assert hop.transport is None or hop.transport in hop.transports


def test_helpers() -> None:
    assert [default_port(t) for t in ("udp", "tcp", "tls", "ws", "wss")] == [
        5060,
        5060,
        5061,
        5060,
        5061,
    ]
    assert srv_name("tls", "example.com.") == "_sips._tcp.example.com."


def test_target_equality_ignores_the_resolved_name() -> None:
    assert Target("udp", "192.0.2.1", 5060, "example.com") == Target("udp", "192.0.2.1", 5060)
    assert len({Target("udp", "192.0.2.1", 5060, "a"), Target("udp", "192.0.2.1", 5060)}) == 1


# --- NAPTR (RFC 3263 §4.1, RFC 3403) ----------------------------------------------------


def naptr(order: int, pref: int, service: str, repl: str, flags: str = "s") -> NaptrRecord:
    return NaptrRecord(order, pref, flags, service, "", repl)


RECORDS = [
    naptr(20, 10, "SIP+D2U", "_sip._udp.example.com."),
    naptr(10, 20, "SIP+D2T", "_sip._tcp.example.com"),
    naptr(10, 10, "SIPS+D2T", "_sips._tcp.Example.com"),
    naptr(5, 10, "SIP+D2W", "_sip._ws.example.com"),
    naptr(1, 1, "SIP+D2S", "_sip._sctp.example.com"),  # SCTP: not supported
    naptr(1, 1, "SIP+D2T", "_x.example.com", flags="u"),  # not an "s" record
    naptr(1, 2, "E2U+sip", "_y.example.com"),  # some other application
    naptr(1, 3, "SIP+D2T", "."),  # no replacement
]


def test_naptr_sorted_by_order_then_preference_and_filtered() -> None:
    hop = plan_hop("sip", "example.com")
    assert select_naptr(RECORDS, hop) == [
        ("ws", "_sip._ws.example.com"),
        ("tls", "_sips._tcp.example.com"),
        ("tcp", "_sip._tcp.example.com"),
        ("udp", "_sip._udp.example.com"),
    ]


def test_naptr_for_sips_keeps_only_sips_services() -> None:
    hop = plan_hop("sips", "example.com")
    assert select_naptr(RECORDS, hop) == [("tls", "_sips._tcp.example.com")]


def test_naptr_honours_supported_transports_and_oversize() -> None:
    hop = plan_hop("sip", "example.com", supported=("udp", "tcp"))
    assert [t for t, _ in select_naptr(RECORDS, hop)] == ["tcp", "udp"]
    records = [naptr(1, 1, "SIP+D2U", "u.example.com"), naptr(2, 1, "SIP+D2T", "t.example.com")]
    big = plan_hop("sip", "example.com", oversize=True)
    assert select_naptr(records, big) == [("tcp", "t.example.com"), ("udp", "u.example.com")]


# --- SRV ordering (RFC 2782) ------------------------------------------------------------


def test_srv_sorted_by_priority_then_weighted_pick() -> None:
    a = SrvRecord(10, 60, 5060, "a.example.com")
    b = SrvRecord(10, 20, 5060, "b.example.com")
    c = SrvRecord(10, 20, 5060, "c.example.com")
    low = SrvRecord(20, 0, 5060, "backup.example.com")
    first = SrvRecord(5, 0, 5060, "first.example.com")
    records = [low, a, b, c, first]
    # running sums a:60 b:80 c:100 -> 0.7*100=70 picks b; then a:60 c:80 -> 0.9*80=72 picks c
    assert order_srv(records, scripted(0.0, 0.7, 0.9, 0.5, 0.0)) == [first, b, c, a, low]
    assert order_srv(records, scripted(0.0, 0.1, 0.1, 0.1, 0.0)) == [first, a, b, c, low]


def test_srv_zero_weight_goes_last_unless_the_draw_is_zero() -> None:
    zero = SrvRecord(1, 0, 5060, "zero.example.com")
    one = SrvRecord(1, 1, 5060, "one.example.com")
    assert order_srv([one, zero], scripted(0.5, 0.5)) == [one, zero]
    assert order_srv([one, zero], scripted(0.0, 0.5)) == [zero, one]


def test_srv_all_zero_weights_pick_uniformly() -> None:
    recs = [SrvRecord(1, 0, 5060, f"h{i}.example.com") for i in range(3)]
    assert order_srv(recs, scripted(0.99, 0.0, 0.0)) == [recs[2], recs[0], recs[1]]


def test_srv_dot_target_means_no_service() -> None:
    assert order_srv([SrvRecord(0, 0, 0, ".")], scripted()) == []
    assert order_srv([SrvRecord(0, 0, 0, "")], scripted()) == []


def test_srv_weights_give_proportional_first_picks() -> None:
    recs = [SrvRecord(1, w, 5060, f"w{w}.example.com") for w in (10, 30, 60)]
    rng = random.Random(3263)
    firsts = Counter(order_srv(recs, rng.random)[0].weight for _ in range(6000))
    for weight in (10, 30, 60):
        assert abs(firsts[weight] / 6000 - weight / 100) < 0.03


def test_srv_tolerates_out_of_range_rand() -> None:
    recs = [SrvRecord(1, 1, 5060, "a.example.com"), SrvRecord(1, 3, 5060, "b.example.com")]
    assert len(order_srv(recs, scripted(1.5, -2.0))) == 2


srv_records = st.builds(
    SrvRecord,
    priority=st.integers(0, 3),
    weight=st.integers(0, 5),
    port=st.integers(1, 65535),
    target=st.sampled_from(["a", "b", "c", "d", "."]),
)


@given(records=st.lists(srv_records, max_size=8), seed=st.integers(0, 2**32))
def test_srv_order_is_a_priority_sorted_permutation(records: list[SrvRecord], seed: int) -> None:
    out = order_srv(records, random.Random(seed).random)
    assert Counter(out) == Counter(r for r in records if r.target != ".")
    assert [r.priority for r in out] == sorted(r.priority for r in out)


# --- failover (RFC 3263 §4.3) -----------------------------------------------------------


def test_target_iterator_fails_over_on_timeout_and_503_only() -> None:
    t1, t2, t3 = (Target("udp", f"192.0.2.{i}", 5060) for i in (1, 2, 3))
    it = TargetIterator([t1, t2, t1, t3])  # duplicates are tried once
    assert len(it) == 3 and it.current is None and not it.exhausted
    assert it.next() == t1 and it.current == t1
    assert it.fail_over(None) == t2  # timeout or transport error
    assert it.fail_over(486) is None  # a real answer: stop, stay on t2
    assert it.current == t2 and not it.exhausted
    assert it.fail_over(503) == t3
    assert it.fail_over(503) is None
    assert it.exhausted and it.current is None
    assert it.next() is None


def test_target_iterator_empty() -> None:
    it = TargetIterator([])
    assert it.next() is None and it.exhausted and it.current is None
    assert it.fail_over(None) is None
