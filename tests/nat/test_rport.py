"""Symmetric response routing (RFC 3581), always honoured, forced for private senders."""

from __future__ import annotations

from sipedge.proxy.vias import fix_via, response_dest
from sipedge.transport.base import Flow

from .support import NATED, PUBLIC, request

LOCAL = NATED.local


def via_of(via: str, flow: Flow) -> tuple[str, tuple[str, int], tuple[str, int] | None]:
    req = request(via=via)
    fix_via(req, flow)
    dest = response_dest(req, flow)
    return req.header_list("Via")[0], dest.flow.remote, dest.fallback


def test_rport_asked_is_filled_and_honoured() -> None:
    via, to, fallback = via_of(
        "198.51.100.7:5060;rport", Flow("udp", LOCAL, ("198.51.100.7", 6000))
    )
    # RFC 3581 §4: received is added even though the address matches.
    assert via == (
        "SIP/2.0/UDP 198.51.100.7:5060;rport=6000;branch=z9hG4bK-nat-1;received=198.51.100.7"
    )
    assert to == ("198.51.100.7", 6000) and fallback == ("198.51.100.7", 5060)


def test_without_rport_the_sent_by_port_is_used() -> None:
    flow = Flow("udp", LOCAL, ("198.51.100.7", 6000))
    via, to, _ = via_of("198.51.100.7:5062", flow)
    assert "rport" not in via and "received" not in via
    assert to == ("198.51.100.7", 5062)  # RFC 3261 §18.2.2


def test_private_sent_by_is_answered_at_the_nat_binding() -> None:
    via, to, _ = via_of("192.168.1.20:5060", NATED)
    assert "rport=40000" in via and "received=203.0.113.1" in via
    assert to == PUBLIC


def test_public_sent_by_elsewhere_gets_received_only() -> None:
    via, to, _ = via_of("198.51.100.99:5062", NATED)
    assert "rport" not in via and "received=203.0.113.1" in via
    assert to == ("203.0.113.1", 5062)


def test_streams_answer_on_their_connection() -> None:
    tcp = Flow("tcp", LOCAL, ("203.0.113.1", 51000), 4)
    via, to, fallback = via_of("192.168.1.20:5060", tcp)
    assert "rport" not in via and to == ("203.0.113.1", 51000)
    assert fallback == ("203.0.113.1", 5060)
