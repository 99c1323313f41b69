"""BYE requests the proxy makes itself to end a confirmed call (maximum duration reached,
or an operator's request), one towards each side.

Each BYE is built from the :class:`~sipedge.dialog.Dialog` record as that side's peer
would send it (RFC 3261 §12.2.1.1): Request-URI the side's remote target, Route the
Record-Route entries between us and it, From/To swapped accordingly, a CSeq one above the
highest the *other* side used, and a Reason header (RFC 3326) saying why.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..dialog import Dialog, Leg
from ..sip.errors import ParseError
from ..sip.hdr.nameaddr import parse_name_addr
from ..sip.locate import Hop
from ..sip.message import Request
from ..sip.parser import parse_message
from ..sip.transaction.layer import TransactionLayer
from ..sip.uri import URI, parse_uri
from ..transport.base import Flow
from .targets import Dest, Locator

log = logging.getLogger("sipedge.proxy")


def build_bye(dialog: Dialog, toward_callee: bool, reason: str) -> Request:
    """The BYE towards one side of ``dialog`` (without our Via; the sender adds it)."""
    to_leg, from_leg = (
        (dialog.callee, dialog.caller) if toward_callee else (dialog.caller, dialog.callee)
    )
    lines = [f"BYE {to_leg.target} SIP/2.0", "Max-Forwards: 70"]
    lines += [f"Route: {r}" for r in to_leg.route]
    lines += [
        f"From: {from_leg.uri}",
        f"To: {to_leg.uri}",
        f"Call-ID: {dialog.call_id}",
        f"CSeq: {from_leg.cseq + 1} BYE",
        f'Reason: SIP;cause=200;text="{_quoted(reason)}"',
        "Content-Length: 0",
    ]
    # A Via is required by the parser; it is replaced by our real one before sending.
    text = "\r\n".join([lines[0], "Via: SIP/2.0/UDP 0.0.0.0;branch=z9hG4bKx", *lines[1:]])
    req = parse_message((text + "\r\n\r\n").encode())
    if not isinstance(req, Request):  # pragma: no cover - the text is a request
        raise ParseError("not a request")
    req.pop_via()
    return req


def next_hop_of(leg: Leg) -> URI:
    """Where a request to ``leg`` goes first: its first route, else its remote target."""
    if leg.route:
        return parse_name_addr(leg.route[0]).uri
    return parse_uri(leg.target)


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")


class LocalSender:
    """Sends requests the proxy originates (the BYEs above) through the transaction layer.

    A side without a route is reached over the flow the dialog learnt for it (the flow its
    INVITE came on, or the one we sent the INVITE on): that works behind NAT and for
    clients on their own connection. Otherwise the first route or the target is located
    as for any request (RFC 3263). Responses to these requests match no branch of the
    proxy and are absorbed there.
    """

    def __init__(
        self,
        layer: TransactionLayer,
        locator: Locator,
        clock: Callable[[], float],
        spawn: Callable[[Awaitable[Any]], None],
        new_branch: Callable[[], str],
        flow_alive: Callable[[Flow], bool],
        after_async: Callable[[], Callable[[], None]],
    ) -> None:
        self.layer = layer
        self.locator = locator
        self.clock = clock
        self.spawn = spawn
        self.new_branch = new_branch
        self.flow_alive = flow_alive
        self.after_async = after_async

    def send_byes(self, dialog: Dialog, reason: str) -> None:
        """BYE to the callee and to the caller of a confirmed dialog."""
        for toward_callee in (True, False):
            leg = dialog.callee if toward_callee else dialog.caller
            try:
                self.send(build_bye(dialog, toward_callee, reason), leg)
            except ParseError as exc:
                log.warning("call %s: cannot build BYE: %s", dialog.call_id, exc.reason)

    def send(self, req: Request, leg: Leg) -> None:
        """Send ``req`` towards ``leg`` (see the class text)."""
        flow = leg.flow
        if (
            not leg.route
            and flow is not None
            and (flow.transport == "udp" or self.flow_alive(flow))
        ):
            self._on_flow(req, flow)
            return
        hop = self.locator.plan(next_hop_of(leg), req.size_hint + 150)
        targets = self.locator.resolve_now(hop)
        if targets is None:
            self.spawn(self._resolve_and_send(req, hop))
        elif targets:
            self._on_flow(req, self.locator.flow_for(targets[0])[0])

    async def _resolve_and_send(self, req: Request, hop: Hop) -> None:
        targets = await self.locator.resolve(hop)
        if targets:
            self._on_flow(req, self.locator.flow_for(targets[0])[0])
            self.after_async()()

    def _on_flow(self, req: Request, flow: Flow) -> None:
        iface = self.locator.interface_of(flow)
        req.push_via(
            f"SIP/2.0/{flow.transport.upper()} {iface.via_host()};branch={self.new_branch()}"
        )
        self.layer.send_request(req, Dest(flow), self.clock(), reliable=flow.transport != "udp")
