"""Routing to users registered on another active node: this node's Path entries.

A client on a stream (TCP, TLS, WS, WSS), an RFC 5626 Outbound flow or behind a NAT can
only be reached over the flow its REGISTER came on, and only the node holding that flow
can use it. So when such a binding is written to the shared store, this node puts in front
of it a Path entry naming itself, with the flow's token in the user part (the token format
of :mod:`sipedge.proxy.flowtoken`, the one of our Record-Route entries)::

    <sip:ft-...@10.0.0.11:5060;lr>

Another node looking the AOR up finds an ordinary stored Path (RFC 3327 §5.3): it preloads
it as a Route and sends the request here; this node's route pre-processing consumes its
own entry, checks the token's signature and relays over the flow (RFC 5626 §5.3). Looking
up its own bindings, this node drops its entry and uses the flow directly, which also makes
ownership fall out of the data: the NAT keepalives, which skip bindings behind a Path, ping
only the bindings of this node. After a takeover of a floating IP every node advertises the
same address, so the survivor recognises every entry as its own and adopts them all.

:class:`NodeLocationStore` does this around the Redis store, so the registrar, the pinger
and the management API need no change: the Path is added on write and dropped on read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from ..config.values import parse_listen
from ..proxy.flowtoken import FlowTokens
from ..proxy.routing import Identity, Interface
from ..proxy.targets import LocalListener
from ..registrar.binding import Binding
from ..sip.errors import ParseError
from ..sip.hdr.nameaddr import parse_name_addr
from ..transport.base import Flow
from .location import RedisLocationStore

__all__ = ["NodeLocationStore", "NodePaths", "peer_interface"]

_PREFERRED = ("udp", "tcp", "tls")


def peer_interface(listeners: Iterable[LocalListener], wanted: str = "") -> Interface:
    """The interface other nodes reach this one on: that of the listener ``wanted`` names
    (as written in ``server.listen``), else the first UDP one, else TCP, else TLS.
    Raises ValueError when there is none."""
    bound = list(listeners)
    if wanted:
        want = parse_listen(wanted)
        for lst in bound:
            if (lst.iface.transport, *lst.bound) == (want.proto, want.host, want.port):
                return lst.iface
        raise ValueError(f"ha.peer_listener {wanted} is not one of server.listen")
    for transport in _PREFERRED:
        for lst in bound:
            if lst.iface.transport == transport:
                return lst.iface
    raise ValueError("no UDP, TCP or TLS listener for the other nodes to reach this one")


class NodePaths:
    """Builds and recognises this node's Path entries (see the module text).

    ``iface`` is where the other nodes send (see :func:`peer_interface`); ``identity``
    says which URIs name this node; ``tokens`` must be the proxy's own, so that its route
    pre-processing accepts the tokens written here.
    """

    def __init__(self, tokens: FlowTokens, iface: Interface, identity: Identity) -> None:
        self.tokens = tokens
        self.iface = iface
        self.identity = identity

    def entry(self, flow: Flow) -> str:
        """``<sip:TOKEN@host:port;transport=..;lr>``: this node, relaying over ``flow``."""
        return self.iface.rr_uri(user=self.tokens.encode(flow))

    def stamp(self, b: Binding) -> Binding:
        """``b`` with our entry as its Path when only this node can reach it, else ``b``."""
        if not b.reached_by_flow:
            return b
        return dataclasses.replace(b, path=(self.entry(b.flow),))

    def is_own(self, value: str) -> bool:
        """Whether a Path value is one of this node's entries (a flow token at one of our
        addresses; the signature is checked when a request comes back through it)."""
        if "ft-" not in value:
            return False  # no token at all: skip the parse (every lookup passes here)
        try:
            uri = parse_name_addr(value).uri
        except ParseError:
            return False
        user = uri.user or ""
        return FlowTokens.looks_like(user) and self.identity.is_myself(uri)

    def unstamp(self, b: Binding) -> Binding:
        """``b`` without our entry on top of its Path (then reached over its flow)."""
        if b.path and self.is_own(b.path[0]):
            return dataclasses.replace(b, path=b.path[1:])
        return b


class NodeLocationStore:
    """A :class:`~sipedge.registrar.store.LocationStore` over a :class:`RedisLocationStore`
    that adds this node's Path entry on write and drops it on read (see the module text)."""

    def __init__(self, inner: RedisLocationStore, paths: NodePaths) -> None:
        self.inner = inner
        self.paths = paths

    async def lookup(self, aor: str) -> list[Binding]:
        """The stored bindings of ``aor``; ours without our Path entry."""
        return [self.paths.unstamp(b) for b in await self.inner.lookup(aor)]

    async def lookup_many(self, aors: Iterable[str]) -> dict[str, list[Binding]]:
        """:meth:`RedisLocationStore.lookup_many`, ours without our Path entry."""
        found = await self.inner.lookup_many(aors)
        return {aor: [self.paths.unstamp(b) for b in bs] for aor, bs in found.items()}

    async def all_bindings(self) -> dict[str, list[Binding]]:
        """Every stored binding by AOR (two Redis commands per 500 AORs)."""
        return await self.lookup_many(await self.inner.aors())

    async def replace(self, aor: str, bindings: list[Binding]) -> None:
        """Store the bindings of ``aor``, ours reached over a flow with our Path entry."""
        await self.inner.replace(aor, [self.paths.stamp(b) for b in bindings])

    async def expire(self, now: float) -> list[Binding]:
        """Remove and return the bindings expired at ``now`` (every node's)."""
        return [self.paths.unstamp(b) for b in await self.inner.expire(now)]

    async def count(self) -> int:
        """Number of stored bindings (all nodes)."""
        return await self.inner.count()

    async def aors(self) -> list[str]:
        """Every AOR with at least one stored binding (all nodes)."""
        return await self.inner.aors()

    def close(self) -> None:
        """Nothing to do: the connection belongs to the shared state."""
        self.inner.close()
