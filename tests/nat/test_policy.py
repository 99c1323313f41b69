"""The NAT policy object and the [nat] section."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from sipedge.config import Config, ConfigError
from sipedge.config.loader import parse_config
from sipedge.nat.policy import NatSettings, NatTraversal
from sipedge.nat.setup import build_nat, pings_answered
from sipedge.proxy.flowtoken import FlowTokens
from sipedge.sip.errors import ProtocolError
from sipedge.transport.base import Flow

from .support import NATED, SDP, request, response

TOKENS = FlowTokens(b"p" * 32)
CALLEE = Flow("udp", NATED.local, ("198.51.100.7", 5080))


def policy(**kw: Any) -> NatTraversal:
    return NatTraversal(NatSettings(**kw), TOKENS)


def test_unknown_test_name_is_local_misuse() -> None:
    with pytest.raises(ProtocolError):
        NatSettings(tests=("contact-privat",))


def test_register_is_never_rewritten() -> None:
    reg = request(method="REGISTER", body=SDP)
    before = reg.to_bytes()
    policy(contact="rewrite", fix_sdp=True).on_request(reg, NATED)
    assert reg.to_bytes() == before


def test_sdp_only_detection_fixes_sdp_but_takes_no_token() -> None:
    nat = policy(tests=("sdp-private",), fix_sdp=True)
    req = request(via="203.0.113.1:40000", contact="<sip:alice@203.0.113.1:40000>", body=SDP)
    nat.on_request(req, NATED)
    assert b"a=oldcip:192.168.1.20" in req.body
    assert not nat.wants_token(req, NATED)
    assert policy().wants_token(request(), NATED)
    assert not policy(contact="rewrite").wants_token(request(), NATED)
    assert not policy().wants_token(request(), Flow("tcp", NATED.local, NATED.remote, 3))


def branch(sent: object, flow: Flow) -> SimpleNamespace:
    return SimpleNamespace(request=sent, txn=SimpleNamespace(dest=SimpleNamespace(flow=flow)))


def test_response_token_only_in_our_own_top_entry() -> None:
    sent = request(extra="Record-Route: <sip:198.51.100.10:5060;lr>\r\n")
    ours = response(extra="Record-Route: <sip:198.51.100.10:5060;lr>\r\n")
    policy().on_response(ours, branch(sent, CALLEE), recorded=True)
    (entry,) = ours.header_list("Record-Route")
    assert TOKENS.decode(entry.removeprefix("<sip:").split("@")[0]) == CALLEE
    # A downstream proxy record-routed above us: it handles its own side.
    theirs = response(extra="Record-Route: <sip:edge.example;lr>, <sip:198.51.100.10:5060;lr>\r\n")
    before = theirs.to_bytes()
    policy().on_response(theirs, branch(sent, CALLEE), recorded=True)
    assert theirs.to_bytes() == before
    # Not record-routed, a 100, a REGISTER response, or no flow known: untouched.
    for resp, rec, b in (
        (
            response(extra="Record-Route: <sip:198.51.100.10:5060;lr>\r\n"),
            False,
            branch(sent, CALLEE),
        ),
        (response(status=100), True, branch(sent, CALLEE)),
        (response(method="REGISTER"), True, branch(sent, CALLEE)),
        (response(), True, SimpleNamespace(request=sent, txn=None)),
    ):
        before = resp.to_bytes()
        policy(contact="flow-token", fix_sdp=True).on_response(resp, b, recorded=rec)
        assert resp.to_bytes() == before


def test_path_added_once_for_natted_and_stream_senders_only() -> None:
    nat = policy()
    out = request(method="REGISTER")
    out.push_via("SIP/2.0/UDP 198.51.100.10:5060;branch=z9hG4bKout")
    assert nat.add_path(out, request(method="REGISTER"), NATED)
    assert not nat.add_path(out, request(method="REGISTER"), NATED)  # a resend: once only
    assert len(out.header_list("Path")) == 1
    public = request(method="REGISTER", via="198.51.100.7:5060", contact="<sip:a@198.51.100.7>")
    direct = Flow("udp", NATED.local, ("198.51.100.7", 5060))
    out2 = request(method="REGISTER")
    out2.push_via("SIP/2.0/TCP 198.51.100.10:5060;branch=z9hG4bKout2")
    assert not nat.add_path(out2, public, direct)
    tcp = Flow("tcp", NATED.local, ("198.51.100.7", 50123), 5)
    assert nat.add_path(out2, public, tcp)
    path = out2.header("Path") or ""
    assert path.endswith("@198.51.100.10:5060;transport=tcp;lr>")


def test_config_section_and_build() -> None:
    c = parse_config({"nat": {"contact": "rewrite", "tests": ["ws", "sdp-address"]}})
    tokens, nat = build_nat(c)
    assert nat is not None and nat.settings.contact == "rewrite" and nat.tokens is tokens
    assert nat.settings.tests == ("ws", "sdp-address")
    assert pings_answered(c) and pings_answered(Config.default())
    off = parse_config({"nat": {"enabled": False}})
    assert build_nat(off)[1] is None and not pings_answered(off)
    same = parse_config({"nat": {"token_secret": "x" * 16}})
    assert build_nat(same)[0].encode(NATED) == build_nat(same)[0].encode(NATED)
    with pytest.raises(ConfigError, match=r"nat\.token_secret"):
        parse_config({"nat": {"token_secret": "short"}})
    with pytest.raises(ConfigError, match=r"nat\.tests"):
        parse_config({"nat": {"tests": ["private-contact"]}})
    relay = parse_config({"nat": {"fix_sdp": True}, "media": {"enabled": True}})
    nat_relay = build_nat(relay)[1]
    assert nat_relay is not None and not nat_relay.settings.fix_sdp  # the relay does media
