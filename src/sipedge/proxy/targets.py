"""Turning a next-hop URI into flows to send on (RFC 3263 via :mod:`sipedge.sip.locate`).

A numeric host needs no DNS and is answered at once; a host name goes through the async
resolver (NAPTR, SRV, A/AAAA with TTL caching) and the caller awaits it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..sip.errors import ParseError
from ..sip.locate import Hop, Target, plan_hop
from ..sip.uri import URI
from ..transport.base import Address, Flow, ip_family
from ..transport.dns import Resolver
from .routing import Interface

#: RFC 3261 §18.1.1: a request within 200 bytes of a 1500-byte path MTU goes over TCP.
UDP_SIZE_THRESHOLD = 1300


@dataclass(eq=False, slots=True)
class Dest:
    """The opaque destination the proxy gives the transaction layer with a message.

    ``flow`` is where to send; ``branch_ref`` (a weak reference to a client branch) names
    the branch to tell when sending fails;
    ``fallback`` is the (ip, port) a response falls back to over a new connection when
    the stream it should go back on has gone (RFC 3261 §18.2.2).
    """

    flow: Flow
    branch_ref: Callable[[], Any] | None = None
    fallback: Address | None = None
    #: For TLS: the name to verify the peer certificate against (RFC 5922) and the client
    #: profile ([[tls.profiles]], e.g. mutual TLS to a trunk); None = the defaults.
    server_name: str | None = None
    tls_profile: str | None = None

    @property
    def branch(self) -> Any:
        """The branch to tell about a failed send, if it still exists. Held weakly: a
        client transaction lingers 32 s after its final response and must not keep the
        whole call alive for the garbage collector that long."""
        return self.branch_ref() if self.branch_ref is not None else None


@dataclass(frozen=True, slots=True)
class LocalListener:
    """A bound listener: its socket address and how others reach it."""

    bound: Address
    iface: Interface


class Locator:
    """Chooses the flow(s) for a next hop, and our interface on each."""

    def __init__(self, listeners: list[LocalListener], resolver: Resolver | None) -> None:
        self.listeners = listeners
        self.resolver = resolver
        self.transports = tuple(dict.fromkeys(lst.iface.transport for lst in listeners))

    def plan(self, uri: URI, size: int, forced: Interface | None = None) -> Hop:
        """RFC 3263 §4.1 decision for ``uri``; raises ParseError (416, 400, 503)."""
        if uri.host.lower().rstrip(".").endswith(".invalid"):
            # RFC 7118 §5: a WebSocket client's made-up host; only its own flow reaches it.
            raise ParseError("no live connection to the client", 480)
        transport = uri.transport
        if forced is not None and transport is None:
            transport = forced.transport
        return plan_hop(
            uri.scheme,
            uri.host,
            uri.port,
            transport,
            uri.maddr,
            oversize=size > UDP_SIZE_THRESHOLD and "tcp" in self.transports,
            supported=self.transports,
        )

    def resolve_now(self, hop: Hop) -> list[Target] | None:
        """The target of a numeric hop, or None when DNS is needed."""
        if hop.numeric:
            t = hop.numeric_target()
            return [t] if t is not None else []
        return None

    async def resolve(self, hop: Hop) -> list[Target]:
        """Resolve a host name (empty list when it does not resolve)."""
        if self.resolver is None:
            return []
        return await self.resolver.resolve(hop)

    def flow_for(self, target: Target, forced: Interface | None = None) -> tuple[Flow, Interface]:
        """The flow towards ``target`` from the best local listener (same transport and
        family; ``forced`` when RFC 5658 route entries named one)."""
        lst = self._listener(target, forced)
        return Flow(target.transport, lst.bound, (target.host, target.port)), lst.iface

    def _listener(self, target: Target, forced: Interface | None) -> LocalListener:
        family = ip_family(target.host)
        best: LocalListener | None = None
        for lst in self.listeners:
            if lst.iface.transport != target.transport or ip_family(lst.bound[0]) != family:
                continue
            if forced is not None and lst.iface == forced:
                return lst
            if best is None:
                best = lst
        if best is None:
            raise ParseError(f"no {target.transport} listener for {target.host}", 503)
        return best

    def interface_of(self, flow: Flow) -> Interface:
        """Our interface for a flow a message arrived on."""
        for lst in self.listeners:
            if lst.bound == flow.local and lst.iface.transport == flow.transport:
                return lst.iface
        for lst in self.listeners:
            if lst.iface.transport == flow.transport:
                return lst.iface
        return self.listeners[0].iface
