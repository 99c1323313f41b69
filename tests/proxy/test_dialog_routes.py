"""Sequential requests are relayed along our Route only when it is the Record-Route we signed
for their dialog (``dlg``, see sipedge.proxy.flowtoken). A To tag and a Route naming us cost
a caller nothing to write: without the MAC an untrusted, unauthenticated request to another
domain is refused like an initial one (403), never relayed (toll fraud through a made-up
dialog). Both directions of a dialog the policy let through keep working."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sipedge.nat.setup import node_key
from sipedge.proxy.core import ProxySettings
from sipedge.proxy.default_router import StaticRoute
from sipedge.proxy.flowtoken import FlowTokens
from sipedge.sip.message import Request, Response
from sipedge.sip.uri import parse_uri

from .harness import Harness, answer, invite

FOREIGN = "sip:+88213000001@198.51.100.66:5060"
OUR_ROUTE = "<sip:127.0.0.1:5060;lr>"
TO_PBX = (StaticRoute("pbx", (parse_uri("sip:127.0.0.1:5070"),), domain="example.org"),)


def relayed(h: Harness) -> list[Request]:
    return [m for m, _ in h.take() if isinstance(m, Request)]


def finals(sent: list[tuple[Request | Response, object]]) -> list[int]:
    return [m.status for m, _ in sent if isinstance(m, Response) and m.status >= 200]


def sequential(method: str, route: str, *, call_id: str = "call-1", cseq: int = 2) -> bytes:
    """A request of the caller's dialog (From tag a1, To tag b1) along ``route``."""
    return invite(
        method=method,
        branch=f"z9hG4bK-{method.lower()}-{call_id}",
        cseq=cseq,
        to_tag="b1",
        uri=FOREIGN,
        call_id=call_id,
        extra=f"Route: {route}\r\n",
    )


def test_made_up_dialog_through_our_route_is_refused() -> None:
    h = Harness(trusted=False)
    h.feed(sequential("INVITE", OUR_ROUTE))
    sent = h.take()
    assert not [m for m, _ in sent if isinstance(m, Request)]  # nothing forwarded
    assert finals(sent) == [403]


def test_made_up_ack_through_our_route_is_not_forwarded() -> None:
    h = Harness(trusted=False)
    h.feed(sequential("ACK", OUR_ROUTE, cseq=1))
    assert h.take() == []  # an ACK is never answered, and not relayed either


def test_mac_of_another_dialog_is_refused() -> None:
    h = Harness(trusted=False)
    stolen = f"<{h.recorded('sip:127.0.0.1:5060;lr', call_id='call-other')}>"
    h.feed(sequential("INVITE", stolen))
    assert finals(h.take()) == [403]
    forged = "<sip:127.0.0.1:5060;lr;dlg=0123456789abcdef>"
    h.feed(sequential("BYE", forged, call_id="call-2"))
    assert finals(h.take()) == [403]


def test_both_sides_of_a_recorded_dialog_are_relayed_for_untrusted_callers() -> None:
    h = Harness(trusted=False, routes=TO_PBX)
    h.feed(invite(uri="sip:bob@example.org"))  # an outside caller to one of our users
    out, dest = h.take_one(Request, method="INVITE")
    assert isinstance(out, Request) and dest.flow.remote == ("127.0.0.1", 5070)
    [rr] = out.header_list("Record-Route")
    assert rr == f"<{h.recorded('sip:127.0.0.1:5060;lr')}>"
    h.feed(answer(out, 200), ("127.0.0.1", 5070))
    ok, _ = h.take_one(Response, status=200)
    assert isinstance(ok, Response) and ok.header_list("Record-Route") == [rr]

    h.feed(sequential("ACK", rr, cseq=1).replace(FOREIGN.encode(), b"sip:bob@127.0.0.1:5070"))
    _, dest = h.take_one(Request, method="ACK")
    assert dest.flow.remote == ("127.0.0.1", 5070)

    callee_bye = (
        "BYE sip:alice@127.0.0.1:5061 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-callee-bye;rport\r\n"
        f"Route: {rr}\r\n"
        "From: <sip:bob@example.org>;tag=b1\r\nTo: <sip:alice@example.com>;tag=a1\r\n"
        "Call-ID: call-1\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    h.feed(callee_bye, ("127.0.0.1", 5070))  # the callee's side: tags swapped
    bye, dest = h.take_one(Request, method="BYE")
    assert dest.flow.remote == ("127.0.0.1", 5061) and not bye.routes

    h.feed(sequential("BYE", rr, cseq=3).replace(FOREIGN.encode(), b"sip:bob@127.0.0.1:5070"))
    _, dest = h.take_one(Request, method="BYE")
    assert dest.flow.remote == ("127.0.0.1", 5070)


def test_without_record_route_there_is_nothing_to_check() -> None:
    """record_route off: our address only comes preloaded by phones using us as their
    outbound proxy, and in-dialog requests along it are relayed (Kamailio's loose_route)."""
    h = Harness(trusted=False, settings=ProxySettings(record_route=False))
    h.feed(sequential("BYE", OUR_ROUTE))
    assert [m.method for m in relayed(h)] == ["BYE"]


def test_dialog_mac_checks() -> None:
    ours, theirs = FlowTokens(b"k" * 32), FlowTokens(b"j" * 32)
    mac = ours.dialog_mac("c@h", "a1")
    assert len(mac) == 16 and int(mac, 16) >= 0
    assert ours.dialog_signed(mac, "c@h", (None, "a1"))
    assert ours.dialog_signed(mac, "c@h", ("b1", "a1"))  # the other side's request
    assert not ours.dialog_signed(mac, "c@h", ("b1", "x"))
    assert not ours.dialog_signed(mac, "c@h2", ("a1", "b1"))
    assert not theirs.dialog_signed(mac, "c@h", ("a1", "b1"))
    for bad in ("", mac[:-1], mac + "0", "é" * 16, mac.upper() + "!"):
        assert not ours.dialog_signed(bad, "c@h", ("a1",))


def test_node_key_is_kept_across_starts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = node_key(state)
    assert first is not None and len(first) == 32
    assert node_key(state) == first  # the next start signs with the same key
    assert stat.S_IMODE(os.stat(state / "route.key").st_mode) == 0o600
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    assert node_key(blocked) is None  # unusable: a random key per start, with a warning
