"""An in-process proxy driver for unit tests: a manual clock and no sockets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sipedge.dialog import DialogTracker
from sipedge.media.session import MediaSession
from sipedge.proxy.core import Proxy, ProxySettings
from sipedge.proxy.default_router import DefaultRouter, DefaultRouterConfig, StaticRoute
from sipedge.proxy.hooks import Router
from sipedge.proxy.routing import Identity, Interface
from sipedge.proxy.targets import Dest, LocalListener, Locator
from sipedge.sip.message import Request, Response
from sipedge.sip.parser import parse_message
from sipedge.sip.transaction.events import SendMessage
from sipedge.sip.transaction.layer import TransactionLayer
from sipedge.sip.uri import parse_uri
from sipedge.transport.base import Flow

ME = "127.0.0.1"
UDP = Interface("udp", ME, 5060)
TCP = Interface("tcp", ME, 5060)


class Harness:
    """Feeds bytes to a Proxy over a TransactionLayer and records what it sends."""

    def __init__(
        self,
        routes: tuple[StaticRoute, ...] = (),
        trusted: bool = True,
        router: Router | None = None,
        settings: ProxySettings | None = None,
        dialogs: DialogTracker | None = None,
        media: MediaSession | None = None,
        spawn: Callable[[Awaitable[Any]], None] | None = None,
    ) -> None:
        self.now = 1000.0
        self.layer = TransactionLayer()
        listeners = [LocalListener((ME, 5060), UDP), LocalListener((ME, 5060), TCP)]
        self.identity = Identity([UDP, TCP], ["example.org"])
        self.proxy = Proxy(
            layer=self.layer,
            locator=Locator(listeners, None),
            identity=self.identity,
            router=router or DefaultRouter(DefaultRouterConfig(routes=routes)),
            settings=settings or ProxySettings(),
            clock=lambda: self.now,
            spawn=spawn or (lambda aw: None),
            is_trusted=lambda ip: trusted,
            dialogs=dialogs,
            media=media,
        )
        self.proxy.after_async = self.pump
        self.sent: list[tuple[Request | Response, Dest]] = []

    def recorded(self, uri: str, call_id: str = "call-1", tag: str = "a1") -> str:
        """``uri``, one of our Record-Route URIs, as the proxy records it for the dialog of
        ``call_id`` and From tag ``tag``: with its ``dlg`` MAC (see proxy.flowtoken)."""
        return f"{uri};dlg={self.proxy.tokens.dialog_mac(call_id, tag)}"

    def feed(
        self, data: bytes, remote: tuple[str, int] = ("127.0.0.1", 5061), transport: str = "udp"
    ) -> None:
        conn = 7 if transport != "udp" else None
        flow = Flow(transport, (ME, 5060), remote, conn)
        self.layer.receive_message(parse_message(data), flow, self.now)
        self.pump()

    def pump(self) -> None:
        while (ev := self.layer.next_event()) is not None:
            if isinstance(ev, SendMessage):
                assert isinstance(ev.dest, Dest)
                self.sent.append((parse_message(ev.data), ev.dest))
            else:
                self.proxy.on_event(ev)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.layer.handle_timer(self.now)
        self.proxy.handle_timer(self.now)
        self.pump()

    def take(self) -> list[tuple[Request | Response, Dest]]:
        out, self.sent = self.sent, []
        return out

    def take_one(
        self, kind: type[Request] | type[Response], **match: object
    ) -> tuple[Request | Response, Dest]:
        for i, (msg, dest) in enumerate(self.sent):
            if isinstance(msg, kind) and all(getattr(msg, k) == v for k, v in match.items()):
                del self.sent[i]
                return msg, dest
        raise AssertionError(f"no {kind.__name__} {match} among {[m for m, _ in self.sent]}")


def invite(
    uri: str = "sip:bob@127.0.0.1:5070",
    branch: str = "z9hG4bKc1",
    extra: str = "",
    method: str = "INVITE",
    cseq: int = 1,
    to_tag: str = "",
    call_id: str = "call-1",
) -> bytes:
    to = f"<sip:bob@example.org>{';tag=' + to_tag if to_tag else ''}"
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5061;branch={branch};rport\r\n"
        f"From: <sip:alice@example.com>;tag=a1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"Max-Forwards: 70\r\n"
        f"Contact: <sip:alice@127.0.0.1:5061>\r\n"
        f"{extra}"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def answer(req: Request, status: int, to_tag: str = "b1", extra: str = "") -> bytes:
    """A response from the downstream UAS to a request the proxy forwarded."""
    vias = "".join(f"Via: {v}\r\n" for v in req.header_list("Via"))
    rr = "".join(f"Record-Route: {v}\r\n" for v in req.header_list("Record-Route"))
    tag = f";tag={to_tag}" if status > 100 else ""
    return (
        f"SIP/2.0 {status} Whatever\r\n{vias}{rr}"
        f"From: {req.header('From')}\r\nTo: {req.header('To')}{tag}\r\n"
        f"Call-ID: {req.call_id}\r\nCSeq: {req.cseq.number} {req.cseq.method}\r\n"
        f"Contact: <sip:bob@127.0.0.1:5070>\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()


def route(uri: str) -> StaticRoute:
    return StaticRoute(name="r", to=(parse_uri(uri),))
