"""Clients reachable only over their own connection: flow tokens and flow targets."""

from __future__ import annotations

from sipedge.proxy.core import Proxy, ProxySettings
from sipedge.proxy.default_router import DefaultRouter, DefaultRouterConfig
from sipedge.proxy.flowtoken import FlowTokens
from sipedge.proxy.hooks import BaseRouter, Decision, Relay, RequestContext, Target
from sipedge.proxy.routing import Identity, Interface
from sipedge.proxy.targets import LocalListener, Locator
from sipedge.sip.message import Request
from sipedge.sip.parser import parse_message
from sipedge.sip.uri import parse_uri
from sipedge.transport.base import Flow

from .harness import ME, TCP, UDP, Harness, invite

WS = Interface("ws", ME, 8080)
BROWSER = Flow("ws", (ME, 8080), ("127.0.0.1", 40000), 42)


def test_token_round_trip_and_forgery() -> None:
    tokens = FlowTokens(b"k" * 32)
    tok = tokens.encode(BROWSER)
    assert tokens.decode(tok) == BROWSER
    assert FlowTokens(b"x" * 32).decode(tok) is None  # another node's secret
    forged = tok[:-2] + ("a" if tok[-2] != "a" else "b") + tok[-1]
    assert tokens.decode(forged) is None
    assert tokens.decode("alice") is None


class WsHarness(Harness):
    """A harness whose proxy also listens on WS and knows which flows are alive."""

    def __init__(self, router: object | None = None, alive: bool = True) -> None:
        super().__init__()
        listeners = [
            LocalListener((ME, 5060), UDP),
            LocalListener((ME, 5060), TCP),
            LocalListener((ME, 8080), WS),
        ]
        self.tokens = FlowTokens(b"s" * 32)
        self.proxy = Proxy(
            layer=self.layer,
            locator=Locator(listeners, None),
            identity=Identity([UDP, TCP, WS], ["example.org"]),
            router=router or DefaultRouter(DefaultRouterConfig()),  # type: ignore[arg-type]
            settings=ProxySettings(),
            clock=lambda: self.now,
            spawn=lambda aw: None,
            is_trusted=lambda ip: True,
            flow_alive=lambda flow: alive,
            tokens=self.tokens,
        )


class ToBrowser(BaseRouter):
    def on_request(self, ctx: RequestContext) -> Decision:
        uri = parse_uri("sip:x7k2@df7jal23ls0d.invalid;transport=ws")
        return Relay([Target(uri=uri, flow=BROWSER)])


def test_call_to_a_browser_goes_over_its_connection() -> None:
    h = WsHarness(router=ToBrowser())
    h.feed(invite())
    out, dest = h.take_one(Request)
    assert dest.flow == BROWSER
    assert out.vias[0].transport == "WS"
    # RFC 5658: UDP in, WS out -> two entries; the WS one names the browser's flow.
    top, bottom = out.record_routes
    assert top.uri.transport == "ws" and h.tokens.decode(top.uri.user or "") == BROWSER
    assert bottom.uri.user is None


def test_dead_browser_connection_fails_fast_with_480() -> None:
    h = WsHarness(router=ToBrowser(), alive=False)
    h.feed(invite())
    resp = [m for m, _ in h.take() if not isinstance(m, Request) and m.status >= 200]
    assert [r.status for r in resp] == [480]


def test_outbound_flow_gone_gives_430() -> None:
    class ToOutbound(BaseRouter):
        def on_request(self, ctx: RequestContext) -> Decision:
            uri = parse_uri("sip:x@abc.invalid;transport=ws")
            return Relay([Target(uri=uri, flow=BROWSER, outbound=True)])

    h = WsHarness(router=ToOutbound(), alive=False)
    h.feed(invite())
    assert [m.status for m, _ in h.take() if not isinstance(m, Request)][-1] == 430


def test_bye_from_the_callee_follows_the_token_to_the_browser() -> None:
    h = WsHarness()
    tok = h.tokens.encode(BROWSER)
    bye = invite(
        method="BYE",
        branch="z9hG4bKbye",
        cseq=2,
        to_tag="b1",
        uri="sip:x7k2@df7jal23ls0d.invalid;transport=ws",
        extra=f"Route: <sip:127.0.0.1:5060;lr>, <sip:{tok}@127.0.0.1:8080;transport=ws;lr>\r\n",
    )
    h.feed(bye)
    fwd, dest = h.take_one(Request)
    assert fwd.method == "BYE" and fwd.routes == []
    assert dest.flow == BROWSER  # never resolved or dialled: the .invalid host is not used
    assert fwd.vias[0].transport == "WS"


def test_bye_from_the_browser_ignores_its_own_token() -> None:
    h = WsHarness()
    tok = h.tokens.encode(BROWSER)
    bye = invite(
        method="BYE",
        branch="z9hG4bKbye2",
        cseq=2,
        to_tag="b1",
        uri="sip:bob@127.0.0.1:5070",
        extra=f"Route: <sip:{tok}@127.0.0.1:8080;transport=ws;lr>, <sip:127.0.0.1:5060;lr>\r\n",
    )
    h.layer.receive_message(parse_message(bye), BROWSER, h.now)
    h.pump()
    _, dest = h.take_one(Request)
    assert dest.flow.transport == "udp" and dest.flow.remote == ("127.0.0.1", 5070)


def test_request_to_an_invalid_host_without_a_flow_is_480_not_dns() -> None:
    h = WsHarness()
    h.feed(invite(uri="sip:x@abc.invalid;transport=ws"))
    statuses = [m.status for m, _ in h.take() if not isinstance(m, Request)]
    assert statuses[-1] == 480


def test_responses_to_a_ws_client_never_fall_back_to_dialling() -> None:
    h = WsHarness()
    h.layer.receive_message(parse_message(invite()), BROWSER, h.now)
    h.pump()
    trying = [(m, d) for m, d in h.take() if not isinstance(m, Request)]
    assert trying and trying[0][1].flow == BROWSER and trying[0][1].fallback is None
