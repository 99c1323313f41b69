"""HaRegistrar: in HA mode stream clients get short registrations and Outbound stream
clients a Flow-Timer, so that after a failover they register again soon (RFC 5626 §4.4.1)."""

from __future__ import annotations

import asyncio

import pytest
from ha_support import FLOW, register

from sipedge.config import parse_config
from sipedge.ha.registrar import HaRegistrar, stream_policy, with_flow_timer
from sipedge.registrar import MemoryLocationStore, RegisterOutcome, RegistrarPolicy
from sipedge.transport.base import Flow

NOW = 1_800_000_000.0
TCP = Flow("tcp", ("192.0.2.1", 5060), ("198.51.100.7", 40001), 7)
WSS = Flow("wss", ("192.0.2.1", 443), ("198.51.100.7", 40002), 8)
PLAIN = "<sip:alice@198.51.100.7:40000;transport=tcp>;expires=3600"
OUTBOUND = PLAIN + ';+sip.instance="<urn:uuid:00000000-0000-1000-8000-000a95a0e128>";reg-id=1'


def registrar(**kw: int) -> HaRegistrar:
    return HaRegistrar(MemoryLocationStore(), RegistrarPolicy(), lambda: NOW, **kw)


def answer(reg: HaRegistrar, contact: str, flow: Flow) -> RegisterOutcome:
    return asyncio.run(reg.register(register(contact), flow))


def header(outcome: RegisterOutcome, name: str) -> list[str]:
    return [v for n, v in outcome.headers if n.lower() == name.lower()]


@pytest.mark.parametrize("flow", [TCP, WSS])
def test_stream_clients_are_granted_at_most_stream_max_expires(flow: Flow) -> None:
    reg = registrar(stream_max_expires=300)
    outcome = answer(reg, PLAIN, flow)
    assert outcome.status == 200
    assert header(outcome, "Contact") == [
        "<sip:alice@198.51.100.7:40000;transport=tcp>;expires=300"
    ]
    [stored] = asyncio.run(reg.store.lookup("sip:alice@example.com"))
    assert stored.expires_at == NOW + 300


def test_udp_clients_keep_the_configured_maximum() -> None:
    outcome = answer(registrar(stream_max_expires=300), PLAIN, FLOW)
    assert header(outcome, "Contact")[0].endswith(";expires=3600")
    assert header(outcome, "Flow-Timer") == []


def test_zero_means_no_cap_and_the_cap_never_goes_below_min_expires() -> None:
    assert header(answer(registrar(stream_max_expires=0), PLAIN, TCP), "Contact")[0].endswith(
        ";expires=3600"
    )
    base = RegistrarPolicy(min_expires=120, max_expires=3600, default_expires=3600)
    capped = stream_policy(base, 60)
    assert (capped.min_expires, capped.max_expires, capped.default_expires) == (120, 120, 120)
    assert stream_policy(base, 600).max_expires == 600
    assert stream_policy(base, 7200).max_expires == 3600
    assert stream_policy(base, 0) is base


def test_outbound_stream_clients_get_a_flow_timer() -> None:
    outcome = answer(registrar(flow_timer=25), OUTBOUND, TCP)
    assert outcome.status == 200
    assert "outbound" in header(outcome, "Supported")[0]
    assert header(outcome, "Flow-Timer") == ["25"]


def test_no_flow_timer_without_outbound_over_udp_or_when_off() -> None:
    assert header(answer(registrar(flow_timer=25), PLAIN, TCP), "Flow-Timer") == []
    assert header(answer(registrar(flow_timer=25), OUTBOUND, FLOW), "Flow-Timer") == []
    assert header(answer(registrar(flow_timer=0), OUTBOUND, TCP), "Flow-Timer") == []
    refused = RegisterOutcome(423, "Interval Too Brief", [("Supported", "outbound")])
    assert with_flow_timer(refused, TCP, 25) is refused


def test_the_defaults_come_from_the_ha_section() -> None:
    ha = parse_config({}).ha
    assert (ha.stream_max_expires, ha.flow_timer, ha.mode) == (300, 30, "single-active")
    with pytest.raises(Exception, match="stream_max_expires"):
        parse_config({"ha": {"stream_max_expires": -1}})
