"""Routing hooks: the ``Router`` protocol operators implement (ARCHITECTURE.md §4.10).

The hooks are the ones kamailio.cfg and opensips.cfg users know: ``on_request`` (the
request route), ``on_branch`` (branch route), ``on_reply`` (onreply route) and
``on_failure`` (failure route). Each may be a plain function or a coroutine function; a
hook that awaits never blocks other messages.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeAlias

from ..sip.message import Request, Response
from ..sip.uri import URI
from ..transport.base import Flow

if TYPE_CHECKING:
    from .routing import Identity


@dataclass(slots=True)
class Target:
    """One branch to try.

    ``uri`` replaces the Request-URI when set; ``dst`` is the next hop (an outbound proxy,
    Kamailio's ``$du``) when set; ``routes`` are preloaded. ``q`` orders serial forking:
    targets of the highest q are tried first, in parallel (RFC 3261 §16.6)."""

    uri: URI | None = None
    dst: URI | None = None
    q: float = 1.0
    #: Route values preloaded on this branch, top first (e.g. a stored Path, RFC 3327 §5.3).
    routes: tuple[str, ...] = ()
    #: The flow a registered client is reachable on (its own WS/TCP/TLS connection): when
    #: set, the branch goes over it and never to the Contact host (RFC 5626 §5.3).
    flow: Flow | None = None
    #: Whether that flow is an RFC 5626 Outbound flow (a dead one then answers 430).
    outbound: bool = False
    #: Client TLS profile for a TLS next hop ("" = the default profile).
    tls_profile: str = ""
    #: rtpengine node set for this branch's media ("" = the default set, "off" = no relay).
    media_set: str = ""


@dataclass(frozen=True, slots=True)
class Relay:
    """Forward the request to these targets (several = forking)."""

    targets: list[Target]


@dataclass(frozen=True, slots=True)
class Respond:
    """Answer the request with this status instead of forwarding it."""

    status: int
    reason: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Drop:
    """Drop the request silently (no response at all)."""


Decision: TypeAlias = Relay | Respond | Drop


@dataclass(slots=True)
class RequestContext:
    """What a hook sees of an incoming request."""

    request: Request
    flow: Flow
    identity: Identity
    trusted: bool
    in_dialog: bool
    #: Set by the proxy after route pre-processing: whether the Request-URI is ours.
    for_us: bool = False
    #: Whether route pre-processing consumed our own Route entries (a sequential request
    #: that follows a route set we recorded, RFC 3261 §16.4).
    loose_routed: bool = False
    #: Whether one of the Route entries consumed carried our flow token naming another
    #: flow: the request follows a Path or Record-Route entry we made (RFC 5626 §5.3).
    flow_routed: bool = False
    #: Whether the request is in a dialog (To tag) and one of the Route entries consumed
    #: is a Record-Route entry we signed for this dialog (``dlg``, see
    #: :mod:`sipedge.proxy.flowtoken`): a sequential request of a dialog our policy let
    #: through. Always true for in-dialog requests when record_route is off (nothing to
    #: check against). A To tag alone proves nothing: anyone can write one.
    dialog_routed: bool = False
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class BranchInfo:
    """What ``on_branch``/``on_reply`` see of one branch."""

    index: int
    request: Request
    target: Target


class Router(Protocol):
    """Routing logic plugged into the proxy (``router = "module:Class"`` in the config)."""

    def on_request(self, ctx: RequestContext) -> Decision | Awaitable[Decision]:
        """Decide what to do with a request that passed the RFC 3261 §16.3 checks."""
        ...

    def on_branch(self, ctx: RequestContext, branch: BranchInfo) -> Awaitable[None] | None:
        """Last look at a branch before it is sent (edit ``branch.request``)."""
        ...

    def on_reply(
        self, ctx: RequestContext, branch: BranchInfo, response: Response
    ) -> Awaitable[None] | None:
        """See every response of a branch before the proxy handles it."""
        ...

    def on_failure(
        self, ctx: RequestContext, best: Response
    ) -> Decision | Awaitable[Decision | None] | None:
        """All branches failed with ``best`` as the chosen response: return a new
        Relay to try further targets (serial forking, failover) or None to forward it."""
        ...


class BaseRouter:
    """A Router with do-nothing hooks; subclass it and override what you need."""

    def on_request(self, ctx: RequestContext) -> Decision | Awaitable[Decision]:
        return Respond(404)

    def on_branch(self, ctx: RequestContext, branch: BranchInfo) -> Awaitable[None] | None:
        return None

    def on_reply(
        self, ctx: RequestContext, branch: BranchInfo, response: Response
    ) -> Awaitable[None] | None:
        return None

    def on_failure(
        self, ctx: RequestContext, best: Response
    ) -> Decision | Awaitable[Decision | None] | None:
        return None
