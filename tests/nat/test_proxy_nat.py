"""The proxy with NAT traversal: record-route tokens, routing to the NAT binding, forged
tokens refused, REGISTER bindings and Path, Contact rewriting and SDP fixing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sipedge.nat.policy import NatSettings
from sipedge.proxy.default_router import StaticRoute
from sipedge.proxy.flowtoken import FlowTokens
from sipedge.sip.message import Request, Response
from sipedge.sip.uri import parse_uri
from sipedge.transport.base import Flow

from .nat_harness import CALLEE, LOCAL, ME, NatHarness, reply
from .support import NATED, PUBLIC, SDP, request

TO_CALLEE = (StaticRoute("callee", (parse_uri(f"sip:{CALLEE[0]}:{CALLEE[1]}"),)),)
CALLEE_FLOW = Flow("udp", LOCAL, CALLEE)
RR = f"<sip:{ME}:5060;lr>"


def recorded(h: NatHarness, msg: Request | Response) -> list[str]:
    """``msg``'s Record-Route entries without the dialog MAC, which each must carry (signed
    for its Call-ID and From tag, see :mod:`sipedge.proxy.flowtoken`)."""
    assert msg.from_tag is not None
    mac = h.tokens.dialog_mac(msg.call_id, msg.from_tag)
    entries = msg.header_list("Record-Route")
    assert all(e.endswith(f";dlg={mac}>") for e in entries), entries
    return [e.replace(f";dlg={mac}>", ">") for e in entries]


@pytest.fixture
def made() -> Iterator[list[NatHarness]]:
    harnesses: list[NatHarness] = []
    yield harnesses
    for h in harnesses:
        h.close()


def harness(made: list[NatHarness], **kw: Any) -> NatHarness:
    h = NatHarness(**kw)
    made.append(h)
    return h


def test_invite_from_a_natted_caller(made: list[NatHarness]) -> None:
    h = harness(made, routes=TO_CALLEE)
    h.feed(request(body=SDP), PUBLIC)
    sent = h.take()
    trying = [(m, d) for m, d in sent if isinstance(m, Response)]
    # No rport asked, but the sent-by is private: answered at the NAT binding.
    assert [(m.status, d.flow.remote) for m, d in trying] == [(100, PUBLIC)]
    [(out, dest)] = [(m, d) for m, d in sent if isinstance(m, Request)]
    assert dest.flow == CALLEE_FLOW
    assert (out.vias[1].received, out.vias[1].rport) == ("203.0.113.1", 40000)
    # Contact and SDP as sent (flow-token mode, no SDP fixing by default) ...
    assert out.header("Contact") == "<sip:alice@192.168.1.20:5060>"
    assert out.body == SDP.encode()
    # ... and the caller's NAT binding in our Record-Route, in an entry of its own.
    top, bottom = recorded(h, out)
    assert top == RR
    tok = bottom.removeprefix("<sip:").split("@")[0]
    assert bottom == f"<sip:{tok}@{ME}:5060;lr>" and h.tokens.decode(tok) == NATED


def callee_request(
    h: NatHarness, method: str, routes: str, uri: str, remote: tuple[str, int]
) -> None:
    data = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {remote[0]}:{remote[1]};branch=z9hG4bK-{method}-{remote[1]}\r\n"
        f"Route: {routes}\r\nMax-Forwards: 70\r\n"
        "From: <sip:bob@example.org>;tag=b1\r\nTo: <sip:alice@example.org>;tag=a1\r\n"
        f"Call-ID: nat-call-1\r\nCSeq: 7 {method}\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    h.feed(data, remote)


def test_in_dialog_requests_follow_the_nat_binding(made: list[NatHarness]) -> None:
    h = harness(made)
    tok = h.tokens.encode(NATED)
    # The callee's BYE: its route set is the Record-Route as received (RFC 3261 §12.1.1).
    routes = f"{RR}, <sip:{tok}@{ME}:5060;lr>"
    callee_request(h, "BYE", routes, "sip:alice@192.168.1.20:5060", CALLEE)
    [(bye, dest)] = h.requests()
    assert dest.flow == NATED and bye.uri_text == "sip:alice@192.168.1.20:5060"
    assert bye.routes == []


def test_the_caller_own_token_is_ignored_even_after_its_binding_changed(
    made: list[NatHarness],
) -> None:
    h = harness(made)
    tok = h.tokens.encode(NATED)
    routes = f"<sip:{tok}@{ME}:5060;lr>, {RR}"  # the caller's route set: reversed
    moved = ("203.0.113.1", 40123)  # the NAT gave the caller a new port meanwhile
    callee_request(h, "BYE", routes, f"sip:bob@{CALLEE[0]}:{CALLEE[1]}", moved)
    [(_, dest)] = h.requests()
    assert dest.flow == CALLEE_FLOW


@pytest.mark.parametrize(
    "user",
    [
        "ft-" + "a" * 40,  # not base32 of anything signed
        FlowTokens(b"attacker-secret!" * 2).encode(Flow("udp", LOCAL, ("192.0.2.66", 5060))),
    ],
)
def test_a_forged_token_is_refused(made: list[NatHarness], user: str) -> None:
    h = harness(made)
    callee_request(h, "INVITE", f"<sip:{user}@{ME}:5060;lr>", "sip:victim@192.0.2.66", CALLEE)
    sent = h.take()
    assert [m.status for m, _ in sent if isinstance(m, Response) and m.status >= 200] == [403]
    assert not [m for m, _ in sent if isinstance(m, Request)]


def test_a_direct_client_is_left_alone(made: list[NatHarness]) -> None:
    h = harness(made, routes=TO_CALLEE)
    direct = ("198.51.100.7", 5060)
    h.feed(request(via="198.51.100.7:5060", contact="<sip:alice@198.51.100.7>"), direct)
    [(out, _)] = h.requests()
    assert recorded(h, out) == [RR]
    assert "rport" not in str(out.vias[1]) and "received" not in str(out.vias[1])


def test_nat_off_adds_no_token_but_still_answers_the_binding(made: list[NatHarness]) -> None:
    h = harness(made, nat=None, routes=TO_CALLEE)
    h.feed(request(), PUBLIC)
    sent = h.take()
    out = next(m for m, _ in sent if isinstance(m, Request))
    assert recorded(h, out) == [RR]
    assert [d.flow.remote for m, d in sent if isinstance(m, Response)] == [PUBLIC]


def register(contact: str = "<sip:alice@192.168.1.20:5060>") -> Request:
    """A REGISTER of the AOR sip:bob@example.org (the To of :func:`request`)."""
    return request(
        method="REGISTER", uri="sip:example.org", contact=contact, extra="Expires: 60\r\n"
    )


def test_register_from_behind_nat_and_a_call_to_it(made: list[NatHarness]) -> None:
    h = harness(made, registrar=True)
    h.feed(register(), PUBLIC)
    [(ok, dest)] = h.finals()
    assert ok.status == 200 and dest.flow.remote == PUBLIC
    assert ok.header_list("Contact") == [
        '<sip:alice@192.168.1.20:5060>;expires=60;received="sip:203.0.113.1:40000"'
    ]
    invite = request(
        via=f"{CALLEE[0]}:{CALLEE[1]}",
        contact=f"<sip:bob@{CALLEE[0]}:{CALLEE[1]}>",
        uri="sip:bob@example.org",
    )
    h.feed(invite, CALLEE)
    [(out, dest)] = h.requests()
    assert dest.flow == NATED  # the NAT binding, not the private Contact
    assert out.uri_text == "sip:alice@192.168.1.20:5060"
    top, bottom = recorded(h, out)
    assert h.tokens.decode(top.removeprefix("<sip:").split("@")[0]) == NATED
    assert bottom == RR


def test_register_from_a_public_client_keeps_the_contact(made: list[NatHarness]) -> None:
    h = harness(made, registrar=True)
    direct = ("198.51.100.7", 5060)
    reg = request(
        method="REGISTER",
        uri="sip:example.org",
        via="198.51.100.7:5060",
        contact="<sip:alice@198.51.100.7>",
        extra="Expires: 60\r\n",
    )
    h.feed(reg, direct)
    [(ok, _)] = h.finals()
    assert ok.header_list("Contact") == ["<sip:alice@198.51.100.7>;expires=60"]


def test_register_relayed_to_a_registrar_gets_path_with_the_flow(made: list[NatHarness]) -> None:
    h = harness(made, upstream="sip:198.51.100.20:5060")
    h.feed(register(), PUBLIC)
    [(out, dest)] = h.requests()
    assert dest.flow.remote == ("198.51.100.20", 5060)
    path = out.header("Path")
    assert path is not None
    tok = path.removeprefix("<sip:").split("@")[0]
    assert path == f"<sip:{tok}@{ME}:5060;lr>" and h.tokens.decode(tok) == NATED
    assert out.header("Contact") == "<sip:alice@192.168.1.20:5060>"
    # The registrar's INVITE preloads the Path as Route (RFC 3327 §5.3): to the binding.
    registrar = ("198.51.100.20", 5060)
    callee_request(h, "INVITE", path, "sip:alice@192.168.1.20:5060", registrar)
    [(_, dest)] = h.requests()
    assert dest.flow == NATED


def test_rewrite_mode_and_sdp_fixing(made: list[NatHarness]) -> None:
    settings = NatSettings(contact="rewrite", fix_sdp=True)
    h = harness(made, nat=settings, routes=TO_CALLEE)
    h.feed(request(body=SDP), PUBLIC)
    [(out, _)] = h.requests()
    assert out.header("Contact") == "<sip:alice@203.0.113.1:40000>"
    assert recorded(h, out) == [RR]  # no token needed
    assert b"c=IN IP4 203.0.113.1\r\n" in out.body and b"a=oldcip:192.168.1.20\r\n" in out.body
    assert out.header("Content-Length") == str(len(out.body))


def answer_from_callee(h: NatHarness, contact: str) -> Response:
    h.feed(
        request(via="198.51.100.7:5060", contact="<sip:alice@198.51.100.7>"), ("198.51.100.7", 5060)
    )
    [(out, _)] = h.requests()
    h.feed(reply(out, 200, contact, SDP), CALLEE)
    [(ok, _)] = h.finals()
    return ok


def test_natted_callee_answer_gets_the_token_in_our_record_route(made: list[NatHarness]) -> None:
    h = harness(made, routes=TO_CALLEE)
    ok = answer_from_callee(h, "<sip:bob@10.1.2.3:5062>")
    assert ok.header("Contact") == "<sip:bob@10.1.2.3:5062>"
    (entry,) = recorded(h, ok)
    tok = entry.removeprefix("<sip:").split("@")[0]
    assert entry == f"<sip:{tok}@{ME}:5060;lr>" and h.tokens.decode(tok) == CALLEE_FLOW
    assert ok.body == SDP.encode()  # no SDP fixing unless asked


def test_natted_callee_answer_in_rewrite_mode(made: list[NatHarness]) -> None:
    h = harness(made, nat=NatSettings(contact="rewrite", fix_sdp=True), routes=TO_CALLEE)
    ok = answer_from_callee(h, "<sip:bob@10.1.2.3:5062>")
    assert ok.header("Contact") == "<sip:bob@198.51.100.7:5080>"
    assert recorded(h, ok) == [RR]
    assert b"c=IN IP4 198.51.100.7\r\n" in ok.body


def test_public_callee_answer_untouched(made: list[NatHarness]) -> None:
    h = harness(made, routes=TO_CALLEE)
    ok = answer_from_callee(h, "<sip:bob@198.51.100.7:5080>")
    assert recorded(h, ok) == [RR]
