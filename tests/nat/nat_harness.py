"""An in-process proxy with NAT traversal for unit tests: manual clock, no sockets.

The proxy listens (as far as it knows) on 198.51.100.10:5060 UDP; coroutines the router
starts (registrar, upstream decisions) run on a private event loop after each input.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from sipedge.nat.policy import NatSettings, NatTraversal
from sipedge.proxy.core import Proxy, ProxySettings
from sipedge.proxy.default_router import DefaultRouter, DefaultRouterConfig, StaticRoute
from sipedge.proxy.flowtoken import FlowTokens
from sipedge.proxy.routing import Identity, Interface
from sipedge.proxy.targets import Dest, LocalListener, Locator
from sipedge.registrar import MemoryLocationStore, Registrar
from sipedge.sip.message import Request, Response
from sipedge.sip.parser import parse_message
from sipedge.sip.transaction.events import SendMessage
from sipedge.sip.transaction.layer import TransactionLayer
from sipedge.sip.uri import parse_uri
from sipedge.transport.base import Flow

ME = "198.51.100.10"
UDP = Interface("udp", ME, 5060)
LOCAL = (ME, 5060)
CALLEE = ("198.51.100.7", 5080)


class NatHarness:
    """Feeds bytes to a Proxy (with ``nat``) and records what it sends."""

    def __init__(
        self,
        nat: NatSettings | None = NatSettings(),  # noqa: B008 - frozen
        *,
        registrar: bool = False,
        upstream: str | None = None,
        routes: tuple[StaticRoute, ...] = (),
    ) -> None:
        self.now = 1000.0
        self.loop = asyncio.new_event_loop()
        self.pending: list[Awaitable[Any]] = []
        self.layer = TransactionLayer()
        self.tokens = FlowTokens(b"n" * 32)
        self.nat = NatTraversal(nat, self.tokens) if nat is not None else None
        self.registrar = (
            Registrar(MemoryLocationStore(clock=lambda: self.now), clock=lambda: self.now)
            if registrar
            else None
        )
        router = DefaultRouter(
            DefaultRouterConfig(
                routes=routes,
                default_upstream=parse_uri(upstream) if upstream else None,
                registrar=self.registrar,
                nat=self.nat,
            )
        )
        self.proxy = Proxy(
            layer=self.layer,
            locator=Locator([LocalListener(LOCAL, UDP)], None),
            identity=Identity([UDP], ["example.org"]),
            router=router,
            settings=ProxySettings(),
            clock=lambda: self.now,
            spawn=self.pending.append,
            is_trusted=lambda ip: True,
            tokens=self.tokens,
            nat=self.nat,
        )
        self.proxy.after_async = self.pump
        self.sent: list[tuple[Request | Response, Dest]] = []

    def close(self) -> None:
        self.loop.close()

    def feed(self, data: bytes | Request | Response, remote: tuple[str, int]) -> None:
        """One datagram from ``remote``; spawned work runs to completion."""
        msg = parse_message(data if isinstance(data, bytes) else data.to_bytes())
        self.layer.receive_message(msg, Flow("udp", LOCAL, remote), self.now)
        self.pump()
        while self.pending:
            self.loop.run_until_complete(self._wrap(self.pending.pop(0)))

    @staticmethod
    async def _wrap(aw: Awaitable[Any]) -> None:
        await aw

    def pump(self) -> None:
        while (ev := self.layer.next_event()) is not None:
            if isinstance(ev, SendMessage):
                assert isinstance(ev.dest, Dest)
                msg = parse_message(ev.data)
                self.sent.append((msg, ev.dest))
            else:
                self.proxy.on_event(ev)

    def take(self) -> list[tuple[Request | Response, Dest]]:
        out, self.sent = self.sent, []
        return out

    def requests(self) -> list[tuple[Request, Dest]]:
        return [(m, d) for m, d in self.take() if isinstance(m, Request)]

    def finals(self) -> list[tuple[Response, Dest]]:
        return [(m, d) for m, d in self.take() if isinstance(m, Response) and m.status >= 200]


def reply(req: Request, status: int, contact: str, body: str = "") -> bytes:
    """The callee's response to a request the proxy forwarded (Vias and RR copied)."""
    vias = "".join(f"Via: {v}\r\n" for v in req.header_list("Via"))
    rr = "".join(f"Record-Route: {v}\r\n" for v in req.header_list("Record-Route"))
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    return (
        f"SIP/2.0 {status} Whatever\r\n{vias}{rr}"
        f"From: {req.header('From')}\r\nTo: {req.header('To')};tag=b1\r\n"
        f"Call-ID: {req.call_id}\r\nCSeq: {req.cseq.number} {req.cseq.method}\r\n"
        f"Contact: {contact}\r\n{ctype}Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()
