"""Per-request proxy state: the response context and its branches (RFC 3261 §16.7).

One :class:`ResponseContext` exists per proxied request (INVITE or non-INVITE) for as long
as its server transaction lives. Each forwarded copy is a :class:`Branch` with its client
transaction. Nothing here does I/O; :mod:`sipedge.proxy.core` drives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..sip.locate import Target as Target4
from ..sip.message import Request, Response
from ..transport.base import Flow
from .hooks import BranchInfo, RequestContext, Target
from .routing import Interface


class BranchState(Enum):
    """Where a branch stands, as the response context sees it."""

    RESOLVING = "resolving"  # target being resolved (DNS) or hook running; nothing sent
    CALLING = "calling"  # request sent, no response yet
    PROCEEDING = "proceeding"  # a provisional response arrived
    DONE = "done"  # a final response arrived (or was synthesised: 408, 503)


@dataclass(slots=True, weakref_slot=True)
class Branch:
    """One forwarded copy of the request."""

    index: int
    target: Target
    request: Request
    state: BranchState = BranchState.RESOLVING
    txn: Any = None  # the client transaction
    final: Response | None = None
    cancel_wanted: bool = False  # CANCEL it as soon as a provisional response arrives
    cancelled: bool = False
    timer_c: float | None = None  # RFC 3261 §16.8 deadline (INVITE only)
    timer_c_key: int | None = None
    alternatives: list[Target4] = field(default_factory=list)  # RFC 3263 failover targets
    sent_once: bool = False  # our Via and Record-Route are on the request already
    server_name: str | None = None  # the domain a TLS peer must prove (RFC 5922)
    flow: Flow | None = None  # where the request went (set when it is sent)
    via_branch: str = ""  # the branch parameter of our Via on it
    media_offered: bool = False  # its SDP went through the media relay already

    @property
    def info(self) -> BranchInfo:
        """The view of this branch that router hooks get."""
        return BranchInfo(self.index, self.request, self.target)


@dataclass(slots=True)
class ResponseContext:
    """The state of one proxied request (RFC 3261 §16.7)."""

    ctx: RequestContext
    server_txn: Any
    branches: list[Branch] = field(default_factory=list)
    #: Targets not yet tried (serial forking by q-value groups).
    pending_groups: list[list[Target]] = field(default_factory=list)
    answered: bool = False  # a 2xx (or 6xx) went upstream: no further final but 2xx
    final_sent: bool = False
    cancelled: bool = False  # the request itself was CANCELled by the caller
    failure_hook_ran: bool = False
    #: Final responses the proxy made itself (timeouts, unresolvable targets).
    local_finals: list[Response] = field(default_factory=list)
    #: The interface our second Route entry named (RFC 5658), used for every branch.
    forced_iface: Interface | None = None
    #: The client flow a token in our Route entries named (RFC 5626 §5.3).
    route_flow: Flow | None = None
    #: Responses waiting to go upstream in order while the media relay rewrites one.
    outbox: list[tuple[Response, Any]] = field(default_factory=list)
    outbox_busy: bool = False

    @property
    def request(self) -> Request:
        """The request as received (before per-branch edits)."""
        return self.ctx.request

    @property
    def is_invite(self) -> bool:
        """Whether this context proxies an INVITE (Timer C, CANCEL apply)."""
        return self.ctx.request.method == "INVITE"

    def all_done(self) -> bool:
        """Every branch has a final response and no target group is left to try."""
        return not self.pending_groups and all(b.state is BranchState.DONE for b in self.branches)

    def finals(self) -> list[Response]:
        """The final responses stored so far."""
        return [b.final for b in self.branches if b.final is not None]

    def live_branches(self) -> list[Branch]:
        """Branches still waiting for a final response."""
        return [b for b in self.branches if b.state is not BranchState.DONE]


def group_by_q(targets: list[Target]) -> list[list[Target]]:
    """Split targets into groups of equal q, highest first (RFC 3261 §16.6, §16.7 step 2:
    each group is tried in parallel; the next only when all of a group failed)."""
    groups: dict[float, list[Target]] = {}
    for t in targets:
        groups.setdefault(t.q, []).append(t)
    return [groups[q] for q in sorted(groups, reverse=True)]
