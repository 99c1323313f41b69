"""NAT detection: private address space and each configurable test."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipedge.nat.addresses import is_private, same_ip
from sipedge.nat.detect import DEFAULT_TESTS, NAT_TESTS, detect
from sipedge.sip.message import Message
from sipedge.transport.base import Flow

from .support import DIRECT, NATED, PUBLIC, SDP, request, response


@pytest.mark.parametrize(
    ("host", "private"),
    [
        ("10.0.0.1", True),
        ("10.255.255.255", True),
        ("172.16.0.1", True),
        ("172.31.255.254", True),
        ("172.15.255.255", False),
        ("172.32.0.0", False),
        ("192.168.0.1", True),
        ("192.169.0.1", False),
        ("100.64.0.1", True),  # RFC 6598 carrier-grade NAT
        ("100.127.255.254", True),
        ("100.63.255.255", False),
        ("100.128.0.0", False),
        ("192.0.0.8", True),  # 192.0.0.0/24 (RFC 6890, DS-Lite)
        ("192.0.1.1", False),
        ("127.0.0.1", False),  # loopback talks to us directly
        ("203.0.113.1", False),
        ("[fd00::1]", True),  # RFC 4193 unique local
        ("fe80::1", True),
        ("2001:db8::1", False),
        ("::ffff:192.168.1.1", True),  # IPv4-mapped
        ("pc33.atlanta.example", False),
        ("", False),
    ],
)
def test_private_space(host: str, private: bool) -> None:
    assert is_private(host) is private


def test_same_ip_normalises_and_never_matches_names() -> None:
    assert same_ip("[2001:db8::1]", "2001:db8:0::1")
    assert same_ip("192.0.2.1", "192.0.2.1")
    assert not same_ip("host.example", "192.0.2.1")
    assert not same_ip("192.0.2.1", "192.0.2.2")


@given(st.integers(0, 2**32 - 1))
def test_private_v4_matches_the_ranges(n: int) -> None:
    ip = ".".join(str((n >> s) & 255) for s in (24, 16, 8, 0))
    a, b, c = n >> 24, (n >> 16) & 255, (n >> 8) & 255
    expected = (
        a == 10
        or (a == 172 and 16 <= b <= 31)
        or (a == 192 and b == 168)
        or (a == 100 and 64 <= b <= 127)
        or (a == 192 and b == 0 and c == 0)
    )
    assert is_private(ip) is expected


def fired(msg: Message, flow: Flow = NATED, tests: tuple[str, ...] = NAT_TESTS) -> set[str]:
    return set(detect(msg, flow, tests))


def test_natted_request_fires_contact_and_via_tests() -> None:
    assert fired(request()) == {"contact-private", "via-address", "via-port"}


def test_direct_client_fires_nothing() -> None:
    req = request(via="198.51.100.7:5060", contact="<sip:alice@198.51.100.7>")
    assert fired(req, DIRECT) == set()


def test_each_test_alone() -> None:
    # Public Contact, sent-by on the right address but the wrong port: via-port only.
    req = request(via="203.0.113.1:5060", contact="<sip:alice@203.0.113.1:40000>")
    assert fired(req) == {"via-port"}
    # The sent-by port matches; only the address differs.
    req = request(via="192.0.2.9:40000", contact="<sip:alice@203.0.113.1:40000>")
    assert fired(req) == {"via-address"}
    # A host name in Via is not the source address (RFC 3261 §18.2.1 adds received).
    req = request(via="alice-pc.example:40000", contact="<sip:alice@203.0.113.1:40000>")
    assert fired(req) == {"via-address"}
    # Only the Contact is private (a NAT that keeps the sent-by right, e.g. an ALG).
    req = request(via="203.0.113.1:40000", contact="<sip:alice@100.64.3.4:5060>")
    assert fired(req) == {"contact-private"}


def test_via_port_defaults_and_streams() -> None:
    # No port in the sent-by means 5060 for UDP (RFC 3261 §18.2.1).
    req = request(via="203.0.113.1", contact="<sip:alice@203.0.113.1>")
    assert fired(req, Flow("udp", NATED.local, ("203.0.113.1", 5060))) == set()
    assert fired(req, Flow("udp", NATED.local, ("203.0.113.1", 5061))) == {"via-port"}
    # A stream client always sends from an ephemeral port: via-port never fires.
    tcp = Flow("tcp", NATED.local, ("203.0.113.1", 51234), 7)
    assert fired(req, tcp) == set()


def test_sdp_tests() -> None:
    public = request(via="203.0.113.1:40000", contact="<sip:alice@203.0.113.1:40000>", body=SDP)
    assert fired(public) == {"sdp-private", "sdp-address"}
    own = SDP.replace("192.168.1.20", "203.0.113.1")
    assert fired(request(via="203.0.113.1:40000", contact="", body=own)) == set()
    other = SDP.replace("192.168.1.20", "198.51.100.99")
    assert fired(request(via="203.0.113.1:40000", contact="", body=other)) == {"sdp-address"}
    hold = SDP.replace("c=IN IP4 192.168.1.20", "c=IN IP4 0.0.0.0")
    hold = hold.replace("192.168.1.20", "203.0.113.1")
    assert fired(request(via="203.0.113.1:40000", contact="", body=hold)) == set()


def test_websocket_is_always_natted() -> None:
    ws = Flow("ws", ("198.51.100.10", 8080), PUBLIC, 9)
    req = request(via="df7jal23ls0d.invalid", contact="<sip:x@df7jal23ls0d.invalid;transport=ws>")
    assert "ws" in fired(req, ws)
    assert fired(req, ws, ("ws",)) == {"ws"}


def test_responses_skip_the_via_tests() -> None:
    assert fired(response(contact="<sip:bob@198.51.100.7>")) == set()
    assert fired(response()) == {"contact-private"}


def test_only_configured_tests_run() -> None:
    assert fired(request(), tests=("via-port",)) == {"via-port"}
    assert fired(request(), tests=()) == set()
    assert set(DEFAULT_TESTS) == {"contact-private", "via-address", "via-port", "ws"}


def test_malformed_parts_never_raise() -> None:
    bad_contact = request(contact="<sip:alice@192.168.1.20")  # no closing '>'
    assert "contact-private" not in fired(bad_contact)
    star = request(method="REGISTER", contact="*", via="203.0.113.1:40000")
    assert fired(star) == set()
    bad_sdp = request(via="203.0.113.1:40000", contact="", body="v=0\r\nnonsense\r\n")
    assert fired(bad_sdp) == set()
