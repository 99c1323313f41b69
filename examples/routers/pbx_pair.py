"""A custom sipedge router: a pair of PBXes behind the edge, with failover.

Load it with ``server.router = "pbx_pair:PbxPairRouter"`` and this file's directory on
``PYTHONPATH`` (docs/concepts.md walks through it). Policy, in the order of the hooks:

* ``on_request``: a sequential request that follows our Record-Route goes on to its next
  hop; only trusted sources (``server.trusted``: the carrier's SBCs) may start anything;
  emergency numbers go to the emergency gateway; every other call goes to the first PBX;
* ``on_branch``: each branch carries an ``X-Edge-Route`` header saying which PBX it went
  to (the PBXes log it in their CDRs);
* ``on_reply``: a 503 from a PBX is logged with the PBX's Retry-After;
* ``on_failure``: when the first PBX is down (408 timeout, 500, 503), the call goes to the
  second one; any other failure (486 busy, 404...) goes back to the caller as it is.
"""

from __future__ import annotations

import logging

from sipedge.config import Config
from sipedge.proxy.hooks import (
    BaseRouter,
    BranchInfo,
    Decision,
    Relay,
    RequestContext,
    Respond,
    Target,
)
from sipedge.sip.message import Response
from sipedge.sip.uri import parse_uri

log = logging.getLogger("sipedge.router.pbx_pair")

PBX_A = "sip:10.0.0.20:5060;transport=udp"
PBX_B = "sip:10.0.0.21:5060;transport=udp"
EMERGENCY_GATEWAY = "sip:10.0.0.30:5060;transport=udp"
EMERGENCY_NUMBERS = frozenset({"112", "911", "999"})
#: Final responses that mean "this PBX is down", not "the callee said no".
PBX_DOWN = frozenset({408, 500, 503})


class PbxPairRouter(BaseRouter):
    """Send calls to PBX A, fail over to PBX B (see the module docstring)."""

    def __init__(self, config: Config) -> None:
        # sipedge passes the loaded configuration to a constructor that takes one.
        first = config.proxy.default_upstream or PBX_A
        self.pbxes = (parse_uri(first), parse_uri(PBX_B))
        self.emergency = parse_uri(EMERGENCY_GATEWAY)

    def on_request(self, ctx: RequestContext) -> Decision:
        if ctx.loose_routed and ctx.dialog_routed:  # ACK, BYE, re-INVITE of our dialogs
            return Relay([Target()])  # (a preloaded Route or a To tag alone proves nothing)
        if not ctx.trusted:
            return Respond(403, "Trusted Peers Only")
        if ctx.request.method == "REGISTER":
            return Respond(405, "Registrations Go To The PBX")
        if (ctx.request.uri.user or "") in EMERGENCY_NUMBERS:
            return Relay([Target(dst=self.emergency)])
        ctx.extra["pbx"] = 0
        return Relay([Target(dst=self.pbxes[0])])

    def on_branch(self, ctx: RequestContext, branch: BranchInfo) -> None:
        pbx = ctx.extra.get("pbx")
        name = "emergency" if pbx is None else ("pbx-a", "pbx-b")[pbx == 1]
        branch.request.set_header("X-Edge-Route", name)

    def on_reply(self, ctx: RequestContext, branch: BranchInfo, response: Response) -> None:
        if response.status == 503:
            retry = response.header("Retry-After") or "-"
            log.warning("%s answered 503 (Retry-After %s)", branch.target.dst, retry)

    def on_failure(self, ctx: RequestContext, best: Response) -> Decision | None:
        if ctx.extra.get("pbx") == 0 and best.status in PBX_DOWN:
            ctx.extra["pbx"] = 1
            return Relay([Target(dst=self.pbxes[1])])
        return None  # forward the best response upstream
