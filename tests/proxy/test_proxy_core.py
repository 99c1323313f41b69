"""The stateful proxy core (RFC 3261 §16) driven in-process with a manual clock."""

from __future__ import annotations

from sipedge.proxy.default_router import StaticRoute
from sipedge.proxy.hooks import BaseRouter, Decision, Relay, RequestContext, Target
from sipedge.sip.message import Request, Response
from sipedge.sip.uri import parse_uri

from .harness import Harness, answer, invite


def forwarded(h: Harness) -> Request:
    msg, _ = h.take_one(Request)
    assert isinstance(msg, Request)
    return msg


def upstream(h: Harness, status: int) -> Response:
    msg, _ = h.take_one(Response, status=status)
    assert isinstance(msg, Response)
    return msg


def test_invite_forwarded_with_via_rr_and_max_forwards() -> None:
    h = Harness()
    h.feed(invite())
    upstream(h, 100)  # 100 Trying at once (RFC 3261 §16.2)
    out = forwarded(h)
    assert out.method == "INVITE" and out.uri_text == "sip:bob@127.0.0.1:5070"
    assert out.max_forwards == 69
    assert len(out.vias) == 2 and out.vias[0].branch.startswith("z9hG4bK")
    assert out.vias[0].host == "127.0.0.1" and out.vias[0].port == 5060
    assert out.vias[1].received == "127.0.0.1" and out.vias[1].rport == 5061  # RFC 3581
    assert [str(r.uri) for r in out.record_routes] == [h.recorded("sip:127.0.0.1:5060;lr")]


def test_responses_relayed_upstream_with_our_via_removed() -> None:
    h = Harness()
    h.feed(invite())
    h.take_one(Response, status=100)
    out = forwarded(h)
    h.feed(answer(out, 180), remote=("127.0.0.1", 5070))
    ringing = upstream(h, 180)
    assert len(ringing.vias) == 1 and ringing.vias[0].branch == "z9hG4bKc1"
    h.feed(answer(out, 200), remote=("127.0.0.1", 5070))
    ok = upstream(h, 200)
    assert ok.to_tag == "b1"
    _, dest = h.take()[0] if h.sent else (None, None)
    assert dest is None


def test_validation_statuses() -> None:
    h = Harness()
    h.feed(invite().replace(b"Max-Forwards: 70", b"Max-Forwards: 0"))
    assert upstream(h, 483)
    h.feed(invite(uri="nope:opaque", branch="z9hG4bK2"))
    assert upstream(h, 416)
    h.feed(invite(branch="z9hG4bK3", extra="Proxy-Require: foo, bar\r\n"))
    r = upstream(h, 420)
    assert r.header("Unsupported") == "foo, bar"


def test_options_to_the_proxy_answered_200() -> None:
    h = Harness()
    h.feed(invite(uri="sip:127.0.0.1:5060", method="OPTIONS"))
    r = upstream(h, 200)
    allow = r.header("Allow")
    assert allow is not None and "INVITE" in allow
    assert r.header("Accept") == "application/sdp"
    assert not h.sent


def test_untrusted_source_never_relays_to_a_foreign_domain() -> None:
    h = Harness(trusted=False)
    h.feed(invite(uri="sip:victim@203.0.113.9"))
    assert upstream(h, 403)
    assert not any(isinstance(m, Request) for m, _ in h.sent)


def test_request_for_our_domain_without_upstream_is_404() -> None:
    h = Harness(trusted=False)
    h.feed(invite(uri="sip:bob@example.org"))
    assert upstream(h, 404)


def test_parallel_fork_cancels_the_other_branch_on_200() -> None:
    rule = StaticRoute("fork", (parse_uri("sip:127.0.0.1:5071"), parse_uri("sip:127.0.0.1:5072")))
    h = Harness(routes=(rule,))
    h.feed(invite())
    h.take_one(Response, status=100)
    a = forwarded(h)
    b = forwarded(h)
    assert {a.uri_text} == {"sip:bob@127.0.0.1:5070"}  # R-URI kept, next hops differ
    h.feed(answer(a, 180, "ta"), remote=("127.0.0.1", 5071))
    h.feed(answer(b, 180, "tb"), remote=("127.0.0.1", 5072))
    h.take()
    h.feed(answer(a, 200, "ta"), remote=("127.0.0.1", 5071))
    upstream(h, 200)
    cancel = forwarded(h)
    assert cancel.method == "CANCEL" and cancel.vias[0].branch == b.vias[0].branch
    h.feed(answer(b, 487, "tb"), remote=("127.0.0.1", 5072))
    ack = forwarded(h)  # hop-by-hop ACK for the 487, not forwarded upstream
    assert ack.method == "ACK"
    assert not any(isinstance(m, Response) and m.status == 487 for m, _ in h.sent)


def test_best_response_prefers_lowest_class_and_turns_503_into_500() -> None:
    rule = StaticRoute("fork", (parse_uri("sip:127.0.0.1:5071"), parse_uri("sip:127.0.0.1:5072")))
    h = Harness(routes=(rule,))
    h.feed(invite())
    a = forwarded(h)
    b = forwarded(h)
    h.feed(answer(a, 503, "ta"), remote=("127.0.0.1", 5071))
    h.feed(answer(b, 486, "tb"), remote=("127.0.0.1", 5072))
    assert upstream(h, 486)
    h2 = Harness(routes=(rule,))
    h2.feed(invite())
    a = forwarded(h2)
    b = forwarded(h2)
    h2.feed(answer(a, 503, "ta"), remote=("127.0.0.1", 5071))
    h2.feed(answer(b, 503, "tb"), remote=("127.0.0.1", 5072))
    assert upstream(h2, 500)


def test_6xx_cancels_other_branches_and_wins() -> None:
    rule = StaticRoute("fork", (parse_uri("sip:127.0.0.1:5071"), parse_uri("sip:127.0.0.1:5072")))
    h = Harness(routes=(rule,))
    h.feed(invite())
    a = forwarded(h)
    b = forwarded(h)
    h.feed(answer(b, 180, "tb"), remote=("127.0.0.1", 5072))
    h.feed(answer(a, 603, "ta"), remote=("127.0.0.1", 5071))
    cancel = next(m for m, _ in h.take() if isinstance(m, Request) and m.method == "CANCEL")
    assert cancel.vias[0].branch == b.vias[0].branch
    h.feed(answer(b, 487, "tb"), remote=("127.0.0.1", 5072))
    assert upstream(h, 603)


def test_cancel_from_caller() -> None:
    h = Harness()
    h.feed(invite())
    out = forwarded(h)
    h.feed(answer(out, 180), remote=("127.0.0.1", 5070))
    h.take()
    cancel = invite(method="CANCEL").replace(b"Contact: <sip:alice@127.0.0.1:5061>\r\n", b"")
    h.feed(cancel)
    ok = upstream(h, 200)
    assert ok.cseq.method == "CANCEL"
    down = forwarded(h)
    assert down.method == "CANCEL" and down.vias[0].branch == out.vias[0].branch
    h.feed(answer(out, 487), remote=("127.0.0.1", 5070))
    assert upstream(h, 487)


def test_cancel_without_transaction_gets_481() -> None:
    h = Harness()
    h.feed(invite(method="CANCEL", branch="z9hG4bKnone"))
    assert upstream(h, 481)


def test_transport_change_adds_two_record_routes_and_loose_routing_consumes_both() -> None:
    h = Harness(routes=(StaticRoute("tcp", (parse_uri("sip:127.0.0.1:5073;transport=tcp"),)),))
    h.feed(invite())
    out, dest = h.take_one(Request)
    assert dest.flow.transport == "tcp" and out.vias[0].transport == "TCP"
    rrs = [str(r.uri) for r in out.record_routes]
    tcp, udp = (
        h.recorded("sip:127.0.0.1:5060;transport=tcp;lr"),
        h.recorded("sip:127.0.0.1:5060;lr"),
    )
    assert rrs == [tcp, udp]  # RFC 5658
    # The caller's BYE carries the reversed route set: both entries are ours.
    bye = invite(
        method="BYE",
        branch="z9hG4bKbye",
        cseq=2,
        to_tag="b1",
        uri="sip:bob@127.0.0.1:5073;transport=tcp",
        extra=f"Route: <{udp}>, <{tcp}>\r\n",
    )
    h.feed(bye)
    fwd, dest = h.take_one(Request)
    assert fwd.method == "BYE" and fwd.routes == []
    assert dest.flow.transport == "tcp" and dest.flow.remote == ("127.0.0.1", 5073)
    assert fwd.record_routes == []  # no Record-Route on in-dialog requests


def test_second_route_entry_selects_the_outgoing_transport() -> None:
    h = Harness()
    bye = invite(
        method="BYE",
        branch="z9hG4bKbye2",
        cseq=2,
        to_tag="b1",
        uri="sip:alice@127.0.0.1:5061",
        extra="Route: <sip:127.0.0.1:5060;transport=tcp;lr>, <sip:127.0.0.1:5060;lr>\r\n",
    )
    h.feed(bye, transport="tcp")
    _fwd, dest = h.take_one(Request)
    assert dest.flow.transport == "udp" and dest.flow.remote == ("127.0.0.1", 5061)


def test_loose_routed_request_follows_remaining_route() -> None:
    h = Harness(trusted=False)
    bye = invite(
        method="BYE",
        branch="z9hG4bKbye3",
        cseq=2,
        to_tag="b1",
        uri="sip:alice@192.0.2.7:5061",
        extra=f"Route: <{h.recorded('sip:127.0.0.1:5060;lr')}>, <sip:127.0.0.1:5090;lr>\r\n",
    )
    h.feed(bye)
    fwd, dest = h.take_one(Request)
    assert [str(r.uri) for r in fwd.routes] == ["sip:127.0.0.1:5090;lr"]
    assert dest.flow.remote == ("127.0.0.1", 5090)


def test_strict_router_request_uri_fixed() -> None:
    h = Harness()
    req = invite(
        method="BYE",
        branch="z9hG4bKs",
        cseq=2,
        to_tag="b1",
        uri="sip:127.0.0.1:5060;lr",
        extra="Route: <sip:bob@127.0.0.1:5070>\r\n",
    )
    h.feed(req)
    fwd, dest = h.take_one(Request)
    assert fwd.uri_text == "sip:bob@127.0.0.1:5070" and fwd.routes == []
    assert dest.flow.remote == ("127.0.0.1", 5070)


def test_ack_for_2xx_forwarded_statelessly() -> None:
    h = Harness()
    ack = invite(
        method="ACK",
        branch="z9hG4bKack",
        cseq=1,
        to_tag="b1",
        uri="sip:bob@127.0.0.1:5070",
        extra="Route: <sip:127.0.0.1:5060;lr>\r\n",
    )
    h.feed(ack)
    fwd, dest = h.take_one(Request)
    assert fwd.method == "ACK" and dest.flow.remote == ("127.0.0.1", 5070)
    first_branch = fwd.vias[0].branch
    h.feed(ack)  # a retransmitted ACK leaves with the same branch (§16.11)
    again, _ = h.take_one(Request)
    assert again.vias[0].branch == first_branch
    assert not [m for m, _ in h.sent if isinstance(m, Response)]  # never answered


def test_stray_2xx_forwarded_to_next_via() -> None:
    h = Harness()
    stray = (
        b"SIP/2.0 200 OK\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKgone\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKc1;received=127.0.0.1;rport=5061\r\n"
        b"From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.org>;tag=b1\r\n"
        b"Call-ID: call-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    h.feed(stray, remote=("127.0.0.1", 5070))
    fwd, dest = h.take_one(Response, status=200)
    assert len(fwd.vias) == 1 and dest.flow.remote == ("127.0.0.1", 5061)


def test_timeout_gives_408_upstream() -> None:
    h = Harness()
    h.feed(invite(extra=""))
    h.take()
    h.advance(40.0)  # Timer B (64*T1) fires: no response at all from downstream
    assert upstream(h, 408)


def test_timer_c_cancels_a_branch_ringing_too_long() -> None:
    h = Harness()
    h.feed(invite())
    out = forwarded(h)
    h.feed(answer(out, 180), remote=("127.0.0.1", 5070))
    h.take()
    for _ in range(17):
        h.advance(10.0)
    assert not any(isinstance(m, Request) and m.method == "CANCEL" for m, _ in h.sent)
    h.advance(11.0)  # 181 s > Timer C (180 s)
    assert any(isinstance(m, Request) and m.method == "CANCEL" for m, _ in h.take())


class FailoverRouter(BaseRouter):
    """Serial forking: first a target that fails, then on_failure a second one."""

    def on_request(self, ctx: RequestContext) -> Decision:
        return Relay([Target(dst=parse_uri("sip:127.0.0.1:5071"))])

    def on_failure(self, ctx: RequestContext, best: Response) -> Decision | None:
        return Relay([Target(dst=parse_uri("sip:127.0.0.1:5072"))])


def test_on_failure_hook_tries_another_target() -> None:
    h = Harness(router=FailoverRouter())
    h.feed(invite())
    first, d1 = h.take_one(Request)
    assert d1.flow.remote == ("127.0.0.1", 5071)
    h.feed(answer(first, 486, "t1"), remote=("127.0.0.1", 5071))
    second = [(m, d) for m, d in h.take() if isinstance(m, Request) and m.method == "INVITE"]
    assert second and second[0][1].flow.remote == ("127.0.0.1", 5072)
    h.feed(answer(second[0][0], 200, "t2"), remote=("127.0.0.1", 5072))
    assert upstream(h, 200)


def test_large_request_switches_from_udp_to_tcp() -> None:
    h = Harness()
    big = invite(extra="X-Pad: " + "p" * 1300 + "\r\n")
    h.feed(big)
    out, dest = h.take_one(Request)
    assert dest.flow.transport == "tcp"  # RFC 3261 §18.1.1: > 1300 bytes
    assert out.vias[0].transport == "TCP"
    small = Harness()
    small.feed(invite())
    _, dest = small.take_one(Request)
    assert dest.flow.transport == "udp"


def test_unparsable_lazy_part_answers_400() -> None:
    h = Harness()
    h.feed(invite(extra="Proxy-Require: ,,\r\n"))
    assert upstream(h, 400)


class PathRouter(BaseRouter):
    """Routes to a registered contact behind an edge proxy (a stored Path)."""

    def on_request(self, ctx: RequestContext) -> Decision:
        return Relay(
            [Target(uri=parse_uri("sip:bob@10.0.0.5:5062"), routes=("<sip:127.0.0.1:5095;lr>",))]
        )


def test_preloaded_route_from_path() -> None:
    h = Harness(router=PathRouter())
    h.feed(invite())
    out, dest = h.take_one(Request)
    assert out.uri_text == "sip:bob@10.0.0.5:5062"
    assert [str(r.uri) for r in out.routes] == ["sip:127.0.0.1:5095;lr"]
    assert dest.flow.remote == ("127.0.0.1", 5095)


def test_local_503_for_an_unusable_target_is_not_turned_into_500() -> None:
    rule = StaticRoute("ws", (parse_uri("sip:127.0.0.1:5071;transport=sctp"),))
    h = Harness(routes=(rule,))
    h.feed(invite())
    assert upstream(h, 503)


def test_large_request_falls_back_to_udp_when_tcp_fails() -> None:
    h = Harness()
    h.feed(invite(extra="X-Pad: " + "p" * 1300 + "\r\n"))
    _, dest = h.take_one(Request)
    assert dest.flow.transport == "tcp"
    h.proxy.send_failed(dest)  # the TCP connect was refused (RFC 3261 §18.1.1)
    h.pump()
    out, dest = h.take_one(Request)
    assert dest.flow.transport == "udp" and out.vias[0].transport == "UDP"
