"""Stateless forwarding (RFC 3261 §16.11): ACKs for 2xx and stray responses.

An ACK for a 2xx is a request of its own with no transaction; it follows the route set
like any sequential request. Its branch is derived from the incoming one so that a
retransmitted ACK leaves with the same branch (§16.11). A response that matches no client
transaction (a 2xx retransmitted after the transaction ended) goes to the next Via when
the top Via is ours.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Callable

from ..sip.errors import ParseError
from ..sip.message import Request, Response
from ..sip.transaction.layer import TransactionLayer
from ..transport.base import Flow, normalize_ip
from .flowtoken import FlowTokens
from .hooks import Relay, RequestContext, Router
from .routing import Identity, preprocess_routes
from .targets import Dest, Locator

log = logging.getLogger("sipedge.proxy")


class StatelessForwarder:
    """Forwards ACKs for 2xx and stray responses without transaction state."""

    def __init__(
        self,
        layer: TransactionLayer,
        locator: Locator,
        identity: Identity,
        prefix: str,
        tokens: FlowTokens | None = None,
        signed_dialogs: bool = True,
    ) -> None:
        self.layer = layer
        #: Whether our Record-Route entries carry the dialog MAC, so that an ACK naming us
        #: in its Route must carry it too (see :mod:`sipedge.proxy.flowtoken`).
        self.signed_dialogs = signed_dialogs
        self.locator = locator
        self.identity = identity
        self.prefix = prefix
        self.tokens = tokens

    def forward_ack(
        self,
        ack: Request,
        flow: Flow,
        router: Router,
        make_ctx: Callable[[Request, Flow], RequestContext],
    ) -> None:
        """Route an ACK for a 2xx: along our route set, or as the router says."""
        if ack.max_forwards == 0 or not ack.vias:
            return
        try:
            scheme = ack.uri.scheme
        except ParseError:
            return
        if scheme not in ("sip", "sips"):
            return
        info = preprocess_routes(ack, self.identity, self.tokens, flow)
        ours = info.dialog or info.flow is not None or not self.signed_dialogs
        dst = None
        if info.consumed == 0 or not ours:
            # No route set of ours (or one we did not record for this dialog): the router
            # decides, as for any request (never an open relay for a written-in Route).
            ctx = make_ctx(ack, flow)
            decision = router.on_request(ctx)
            if inspect.isawaitable(decision) or not isinstance(decision, Relay):
                if inspect.iscoroutine(decision):
                    decision.close()
                return  # never answer an ACK; async routing of a lone ACK is not waited for
            if not decision.targets:
                return
            first = decision.targets[0]
            if first.uri is not None:
                ack.set_uri(first.uri)
            dst = first.dst
        mf = ack.max_forwards
        ack.set_max_forwards(mf - 1 if mf is not None else 70)
        if info.flow is not None and dst is None and not ack.routes:
            out, iface = info.flow, self.locator.interface_of(info.flow)
        else:
            nh = dst or (ack.routes[0].uri if ack.routes else ack.uri)
            hop = self.locator.plan(nh, ack.size_hint + 100, info.out_iface)
            targets = self.locator.resolve_now(hop)
            if not targets:
                log.info("call %s: ACK next hop %s unusable; dropped", ack.call_id, nh)
                return
            out, iface = self.locator.flow_for(targets[0], info.out_iface)
        branch = (
            self.prefix
            + "a"
            + hashlib.blake2s(
                (ack.vias[0].branch or ack.call_id).encode(), digest_size=8
            ).hexdigest()
        )
        ack.push_via(f"SIP/2.0/{out.transport.upper()} {iface.via_host()};branch={branch}")
        self.layer.send_stateless(ack, Dest(out))

    def forward_response(self, resp: Response) -> None:
        """Forward a response that matches no transaction to the next Via (§16.11)."""
        if len(resp.vias) < 2 or not self._is_ours(resp):
            return
        resp.pop_via()
        via = resp.vias[0]
        transport = via.transport.lower()
        ip = via.received or via.host.strip("[]")
        rport = via.rport
        port = rport if rport is not None and rport > 0 else (via.port or 5060)
        try:
            ip = normalize_ip(ip)
        except ValueError:
            return  # a host name: a stateless proxy would resolve it; we drop (§18.2.2)
        if transport not in self.locator.transports:
            return
        for lst in self.locator.listeners:
            if lst.iface.transport == transport:
                self.layer.send_stateless(resp, Dest(Flow(transport, lst.bound, (ip, port))))
                return

    def _is_ours(self, resp: Response) -> bool:
        via = resp.vias[0]
        host = via.host.strip("[]")
        try:
            host = normalize_ip(host)
        except ValueError:
            host = host.lower()
        sent_by = (host, via.port or 5060)
        return any(
            (lst.iface.host.strip("[]"), lst.iface.port) == sent_by
            for lst in self.locator.listeners
        )
