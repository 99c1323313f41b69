"""Who we are, route pre-processing and Record-Route (RFC 3261 §16.4, §16.6; RFC 5658).

sipedge records the route with one entry per interface it uses. When a request leaves on
another transport or interface than it arrived on, two entries are added (RFC 5658 §4): the
top one names the outgoing interface (the callee reaches us there), the lower one the
incoming interface (the caller reaches us there). Both are consumed on sequential requests,
and the second one tells which interface and transport to send on.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from ..sip.errors import ParseError
from ..sip.hdr.nameaddr import NameAddr
from ..sip.message import Request
from ..sip.uri import URI
from ..transport.base import Flow
from .flowtoken import DIALOG_PARAM, FlowTokens

DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061, "ws": 80, "wss": 443}


@dataclass(frozen=True, slots=True)
class Interface:
    """A local listener as others reach it: transport, advertised host and port."""

    transport: str
    host: str
    port: int

    def rr_uri(self, params: str = "", user: str | None = None) -> str:
        """The Record-Route value naming this interface (``lr``, RFC 3261 §16.6 step 4);
        ``user`` carries a flow token when the peer on this side is reachable only over
        its own connection."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        tp = "" if self.transport == "udp" else f";transport={self.transport}"
        who = f"{user}@" if user else ""
        return f"<sip:{who}{host}:{self.port}{tp};lr{params}>"

    def via_host(self) -> str:
        """``host:port`` for a Via sent-by."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"


@functools.lru_cache(maxsize=4096)
def _norm_host(host: str) -> str:
    h = host.lower().strip("[]")
    try:
        return ipaddress.ip_address(h).compressed
    except ValueError:
        return h.rstrip(".")


class Identity:
    """Decides whether a URI names this proxy (``is_myself`` in Kamailio/OpenSIPS terms)."""

    def __init__(self, interfaces: Iterable[Interface], domains: Iterable[str] = ()) -> None:
        self.interfaces = list(interfaces)
        self._addrs = {(_norm_host(i.host), i.port) for i in self.interfaces}
        self._hosts = {_norm_host(i.host) for i in self.interfaces}
        self._domains = {_norm_host(d) for d in domains}

    def add_interface(self, iface: Interface) -> None:
        """Register a listener once it is bound (its port may have been chosen then)."""
        self.interfaces.append(iface)
        self._addrs.add((_norm_host(iface.host), iface.port))
        self._hosts.add(_norm_host(iface.host))

    def is_domain(self, uri: URI) -> bool:
        """Whether ``uri`` is for us: one of our domains (any port) or one of our
        listener addresses with its port."""
        host = _norm_host(uri.host)
        if host in self._domains:
            return True
        return host in self._hosts and self.is_myself(uri)

    def is_local_host(self, uri: URI) -> bool:
        """Whether ``uri``'s host is one of our domains or addresses, whatever the port:
        the test for "is this one of our users" on From (an AOR has no port)."""
        host = _norm_host(uri.host)
        return host in self._domains or host in self._hosts

    def is_myself(self, uri: URI) -> bool:
        """Whether ``uri`` addresses this proxy itself (a domain, or address and port)."""
        if uri.scheme not in ("sip", "sips"):
            return False
        host = _norm_host(uri.host)
        if host in self._domains and uri.port is None:
            return True
        tp = (uri.transport or ("tls" if uri.scheme == "sips" else "udp")).lower()
        port = uri.port if uri.port is not None else DEFAULT_PORTS.get(tp, 5060)
        return (host, port) in self._addrs

    def interface_for(self, uri: URI) -> Interface | None:
        """Our interface that ``uri`` (one of our Record-Route entries) names."""
        host = _norm_host(uri.host)
        tp = (uri.transport or "udp").lower()
        for iface in self.interfaces:
            if (
                _norm_host(iface.host) == host
                and iface.port == (uri.port or 5060)
                and iface.transport == tp
            ):
                return iface
        for iface in self.interfaces:
            if _norm_host(iface.host) == host and iface.port == (uri.port or 5060):
                return iface
        return None


@dataclass(slots=True)
class RouteInfo:
    """What route pre-processing found: ``out_iface`` is set when our second Record-Route
    entry (RFC 5658) named the interface to send on."""

    consumed: int = 0
    out_iface: Interface | None = None
    strict_fixed: bool = False
    #: The flow a token in one of our entries named, when it is not the flow the request
    #: came on: the request goes to that client over its own connection (RFC 5626 §5.3).
    flow: Flow | None = None
    #: Whether one of our popped entries carries the ``dlg`` MAC of this request's dialog
    #: (see :mod:`sipedge.proxy.flowtoken`): the route set is one we recorded.
    dialog: bool = False


def preprocess_routes(
    req: Request,
    me: Identity,
    tokens: FlowTokens | None = None,
    came_on: Flow | None = None,
) -> RouteInfo:
    """RFC 3261 §16.4: undo a strict router's rewrite, then pop our own Route entries.

    A flow token in a popped entry (see :mod:`sipedge.proxy.flowtoken`) that names another
    flow than ``came_on`` becomes :attr:`RouteInfo.flow`. When two entries were popped
    (RFC 5658), only the second one faces the destination (the first faces the sender,
    whose own token may name an older flow of it), so only its token counts. An entry
    whose user part looks like a token but fails its signature is refused: ParseError
    with status 403, never a relay to whatever the forged token names.
    """
    info = RouteInfo()
    if req.routes and me.is_myself(req.uri) and req.uri.lr:
        # A strict router put our Record-Route URI into the Request-URI: the real target
        # is the last Route value.
        last = req.pop_last_route()
        req.set_uri(last.uri)
        info.strict_fixed = True
    popped: list[NameAddr] = []
    while req.routes and len(popped) < 2 and me.is_myself(req.routes[0].uri):
        popped.append(req.pop_route())
    info.consumed = len(popped)
    if len(popped) == 2:
        # RFC 5658: the second of our entries names the interface to send on.
        info.out_iface = me.interface_for(popped[1].uri)
    if tokens is not None:
        info.dialog = any(_signed_for_dialog(req, e, tokens) for e in popped)
        for i, entry in enumerate(popped):
            user = entry.uri.user
            if not user or not tokens.looks_like(user):
                continue
            flow = tokens.decode(user)
            if flow is None:
                raise ParseError("invalid flow token in Route", 403)
            facing_sender = i == 0 and len(popped) == 2
            if not facing_sender and not same_flow(flow, came_on):
                info.flow = flow
    return info


def _signed_for_dialog(req: Request, entry: NameAddr, tokens: FlowTokens) -> bool:
    mac = entry.uri.params.get(DIALOG_PARAM)
    if not mac or req.to_tag is None:
        return False
    return tokens.dialog_signed(mac, req.call_id, (req.from_tag, req.to_tag))


def same_flow(a: Flow, b: Flow | None) -> bool:
    """Whether two flows are the same path (same connection for streams)."""
    if b is None:
        return False
    if a.conn_id is not None or b.conn_id is not None:
        return a.conn_id == b.conn_id and a.transport == b.transport
    return a.transport == b.transport and a.remote == b.remote


def next_hop(req: Request) -> URI:
    """Where a request goes (§16.6 step 6/7): the top Route when present, else the R-URI."""
    return req.routes[0].uri if req.routes else req.uri
