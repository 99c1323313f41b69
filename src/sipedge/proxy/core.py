"""The stateful proxy core (RFC 3261 §16) driven by transaction-layer events.

Theory of operation. The engine feeds every event of the transaction layer to
:meth:`Proxy.on_event`. A new request gets a server transaction (100 Trying for INVITE),
the §16.3 checks, route pre-processing (§16.4) and then the router's ``on_request``. A
:class:`Relay` decision opens a :class:`ResponseContext`; each target becomes a branch: a
copy of the request with Max-Forwards decremented, Record-Route (two entries when the
interface or transport changes, RFC 5658), a new top Via and its own client transaction.
Responses come back through the client transactions: provisionals and every 2xx are
forwarded at once; other finals are kept until every branch is done, and then the best one
goes upstream (§16.7). CANCEL cancels every pending branch (§16.10); Timer C (§16.8)
cancels a branch that rings too long. ACKs for 2xx and responses that match no transaction
are forwarded statelessly (§16.11).

Router hooks may be coroutines; the proxy awaits them in a task of their own (``spawn``),
so one slow hook never holds up other messages.
"""

from __future__ import annotations

import heapq
import inspect
import itertools
import logging
import secrets
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..dialog import Dialog, DialogTracker
from ..media.ng import RelayError
from ..media.session import MediaSession
from ..nat.policy import NatTraversal
from ..security import Action, Security, Verdict
from ..sip.build import build_response
from ..sip.errors import ParseError
from ..sip.locate import Hop
from ..sip.locate import Target as Addr
from ..sip.message import Request, Response
from ..sip.transaction.client import ClientTransaction
from ..sip.transaction.events import (
    AckReceived,
    CancelReceived,
    Output,
    RequestReceived,
    ResponseReceived,
    StrayResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from ..sip.transaction.layer import TransactionLayer
from ..sip.transaction.server import ServerTransaction
from ..transport.base import Flow
from .best import choose_best
from .calls import CallControl
from .checks import validate_request
from .context import Branch, BranchState, ResponseContext, group_by_q
from .flowtoken import DIALOG_PARAM, FlowTokens
from .hangup import LocalSender
from .hooks import Decision, Drop, Relay, RequestContext, Respond, Router, Target
from .routing import Identity, Interface, preprocess_routes
from .stateless import StatelessForwarder
from .targets import Dest, Locator
from .vias import fix_via, response_dest

log = logging.getLogger("sipedge.proxy")

DIALOG_FORMING = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})
ALLOW = (
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, PRACK, SUBSCRIBE, NOTIFY,"
    " REFER, MESSAGE"
)


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """What the proxy core takes from the config."""

    record_route: bool = True
    double_record_route: bool = True
    max_forwards: int = 70
    timer_c: float = 180.0
    user_agent: str = ""


class Proxy:
    """RFC 3261 §16 on top of a :class:`TransactionLayer` (see the module docstring)."""

    def __init__(
        self,
        *,
        layer: TransactionLayer,
        locator: Locator,
        identity: Identity,
        router: Router,
        settings: ProxySettings,
        clock: Callable[[], float],
        spawn: Callable[[Awaitable[Any]], None],
        is_trusted: Callable[[str], bool],
        flow_alive: Callable[[Flow], bool] = lambda flow: True,
        tokens: FlowTokens | None = None,
        security: Security | None = None,
        dialogs: DialogTracker | None = None,
        media: MediaSession | None = None,
        nat: NatTraversal | None = None,
    ) -> None:
        self.nat = nat  # NAT traversal ([nat]); None = off
        self.layer = layer
        self.locator = locator
        self.identity = identity
        self.router = router
        self.settings = settings
        self.clock = clock
        self.spawn = spawn
        self.is_trusted = is_trusted
        self.flow_alive = flow_alive
        self.security = security
        self._proxy_ips = tuple(dict.fromkeys(i.host for i in identity.interfaces))
        self.tokens = tokens or FlowTokens()
        self.contexts: dict[ServerTransaction, ResponseContext] = {}
        self.branches: dict[ClientTransaction, tuple[ResponseContext, Branch]] = {}
        self._timer_c: list[tuple[float, int]] = []
        self._timer_c_live: dict[int, tuple[Branch, ResponseContext]] = {}
        self._seq = itertools.count()
        self._prefix = "z9hG4bK" + secrets.token_hex(4)
        self.stateless = StatelessForwarder(
            layer, locator, identity, self._prefix, self.tokens, self.settings.record_route
        )
        self.draining = False
        self.calls = CallControl(
            dialogs if dialogs is not None else DialogTracker(),
            identity,
            clock,
            media=media,
            send_bye=self._send_byes,
        )
        self.local = LocalSender(
            layer, locator, clock, spawn, self.new_branch, flow_alive, lambda: self.after_async
        )
        #: Set by the engine: called after work done in a task so its outputs get sent.
        self.after_async: Callable[[], None] = _nothing

    # ------------------------------------------------------------------ dispatch
    def on_event(self, ev: Output) -> None:
        """Handle one event of the transaction layer."""
        try:
            if isinstance(ev, ResponseReceived):
                self._on_response(ev.response, ev.transaction)
            elif isinstance(ev, RequestReceived):
                assert isinstance(ev.source, Flow)
                self._on_request(ev.request, ev.source)
            elif isinstance(ev, AckReceived):
                assert isinstance(ev.source, Flow)
                self._on_ack(ev.request, ev.source)
            elif isinstance(ev, CancelReceived):
                assert isinstance(ev.source, Flow)
                self._on_cancel(ev.request, ev.source, ev.invite)
            elif isinstance(ev, StrayResponseReceived):
                self.stateless.forward_response(ev.response)
            elif isinstance(ev, TransactionTimedOut | TransportFailed):
                self._on_client_failure(
                    ev.transaction, 408 if isinstance(ev, TransactionTimedOut) else 503
                )
            elif isinstance(ev, TransactionTerminated):
                self._on_terminated(ev.transaction)
        except ParseError as exc:
            log.info("call %s: %s", _call_id(ev), exc.reason)

    def end_dialog(self, key: str, reason: str = "ended by operator") -> bool:
        """End the confirmed call ``call-id;from-tag`` with BYE both ways (and delete its
        media); False when there is no such call."""
        ended = self.calls.end(key, reason)
        self.after_async()
        return ended

    def _send_byes(self, dialog: Dialog, reason: str) -> None:
        self.local.send_byes(dialog, reason)

    def _on_ack(self, ack: Request, flow: Flow) -> None:
        work = self.calls.ack_work(ack, flow)
        if work is None:
            self.stateless.forward_ack(ack, flow, self.router, self.context_for)
        else:
            self.spawn(self._ack_after(work, ack, flow))

    async def _ack_after(self, work: Awaitable[None], ack: Request, flow: Flow) -> None:
        try:
            await work
        except RelayError as exc:
            log.warning("call %s: media answer in ACK failed: %s", ack.call_id, exc)
        self.stateless.forward_ack(ack, flow, self.router, self.context_for)
        self.after_async()

    def send_failed(self, dest: Dest) -> None:
        """The engine could not send on ``dest`` (connect refused, connection gone)."""
        branch = dest.branch
        if branch is not None and branch.txn is not None:
            self.layer.transport_error(branch.txn, self.clock(), "send failed")

    # ------------------------------------------------------------------ requests
    def screen(self, req: Request, flow: Flow, now: float) -> Verdict | None:
        """The security check that runs before routing and authentication (None: off)."""
        if self.security is None:
            return None
        try:
            return self.security.check_request(
                req,
                flow.remote[0],
                now,
                trusted=self.is_trusted(flow.remote[0]),
                proxy_ips=self._proxy_ips,
            )
        except ParseError:
            return None  # malformed parts are answered 400 by the §16.3 checks

    def context_for(self, req: Request, flow: Flow) -> RequestContext:
        """What the router's hooks see of ``req``."""
        return RequestContext(
            request=req,
            flow=flow,
            identity=self.identity,
            trusted=self.is_trusted(flow.remote[0]),
            in_dialog=req.to_tag is not None,
        )

    def _on_request(self, req: Request, flow: Flow) -> None:
        now = self.clock()
        verdict = self.screen(req, flow, now)
        if verdict is not None and verdict.action in (Action.DROP, Action.BAN):
            return  # scanners and floods get silence (no transaction, nothing sent)
        fix_via(req, flow)
        stx = self.layer.create_server_transaction(req, response_dest(req, flow), now)
        if verdict is not None and verdict.action is Action.REJECT:
            self._respond(stx, verdict.status or 403, verdict.reason or None)
            return
        if req.method == "BYE" and self.security is not None:
            self.security.call_ended(req.call_id)
        if req.to_tag is not None:
            self.calls.request_seen(req)
        try:
            if self.nat is not None:
                self.nat.on_request(req, flow)  # Contact/SDP of a NATed sender
            self._route_request(req, flow, stx)
        except ParseError as exc:
            log.info("call %s: %s", req.call_id, exc.reason)
            self._respond(stx, exc.status_hint, exc.reason)

    def _route_request(self, req: Request, flow: Flow, stx: ServerTransaction) -> None:
        me = self.identity
        to_us = req.method == "OPTIONS" and not req.routes and me.is_myself(req.uri)
        reject = validate_request(req, addressed_to_us=to_us)
        if reject is not None:
            self._respond(stx, reject.status, reject.reason, reject.headers)
            return
        if self.draining and req.to_tag is None:
            self._respond(stx, 503, "Shutting Down", [("Retry-After", "5")])
            return
        info = preprocess_routes(req, me, self.tokens, flow)
        ctx = self.context_for(req, flow)
        ctx.loose_routed = info.consumed > 0
        ctx.flow_routed = info.flow is not None
        ctx.dialog_routed = ctx.in_dialog and (info.dialog or not self.settings.record_route)
        ctx.for_us = not req.routes and me.is_domain(req.uri)
        if (
            req.method == "OPTIONS"
            and not req.routes
            and me.is_myself(req.uri)
            and not req.uri.user
        ):
            self._respond(stx, 200, None, self._capabilities())
            return
        decision = self.router.on_request(ctx)
        rctx = ResponseContext(ctx, stx, forced_iface=info.out_iface, route_flow=info.flow)
        if inspect.isawaitable(decision):
            self.spawn(self._await_decision(rctx, decision))
        else:
            self._apply(rctx, decision)

    async def _await_decision(self, rctx: ResponseContext, pending: Awaitable[Decision]) -> None:
        try:
            decision = await pending
        except ParseError as exc:
            decision = Respond(exc.status_hint, exc.reason)
        self._apply(rctx, decision)
        self.after_async()

    def _apply(self, rctx: ResponseContext, decision: Decision) -> None:
        stx = rctx.server_txn
        if isinstance(decision, Respond):
            self._respond(stx, decision.status, decision.reason, decision.headers)
        elif isinstance(decision, Drop):
            self.layer.abandon(stx, self.clock())
        elif isinstance(decision, Relay):
            if not decision.targets:
                self._respond(stx, 480)
                return
            rctx.pending_groups = group_by_q(decision.targets)
            self.contexts[stx] = rctx
            self.calls.invite_relayed(rctx)
            self._next_group(rctx)

    def _respond(
        self,
        stx: ServerTransaction,
        status: int,
        reason: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        req = stx.request
        if stx.terminated or not isinstance(req, Request):
            return  # already answered with a final response
        tag = self.new_tag() if status > 100 else None
        resp = build_response(req, status, reason, to_tag=tag, headers=headers)
        self.layer.send_response(stx, resp, self.clock())

    def new_tag(self) -> str:
        """A To tag for a response we make ourselves (unique per node and response)."""
        return self._prefix[7:] + format(next(self._seq), "x")

    def adopt(self, req: Request, dest: Dest, ctx: RequestContext, decision: Decision) -> None:
        """Carry out ``decision`` for a request that arrived outside the transaction layer
        (the local REGISTER lane): it gets its server transaction now."""
        stx = self.layer.create_server_transaction(req, dest, self.clock())
        self._apply(ResponseContext(ctx, stx), decision)

    def _capabilities(self) -> list[tuple[str, str]]:
        caps = [
            ("Allow", ALLOW),
            ("Supported", "path, outbound"),
            ("Accept", "application/sdp"),
        ]
        if self.settings.user_agent:  # no server signature unless configured
            caps.append(("Server", self.settings.user_agent))
        return caps

    # ------------------------------------------------------------------ branches
    def _next_group(self, rctx: ResponseContext) -> None:
        group = rctx.pending_groups.pop(0)
        for target in group:
            self._start_branch(rctx, target)

    def _start_branch(self, rctx: ResponseContext, target: Target) -> None:
        req = rctx.request.copy()
        if target.uri is not None:
            req.set_uri(target.uri)
        for value in reversed(target.routes):
            req.add_header("Route", value, top=True)
        mf = req.max_forwards
        req.set_max_forwards(mf - 1 if mf is not None else self.settings.max_forwards)
        branch = Branch(len(rctx.branches), target, req)
        rctx.branches.append(branch)
        flow = target.flow
        if flow is None and target.dst is None and not req.routes:
            flow = rctx.route_flow
        if flow is not None:
            if self.flow_alive(flow):
                self._send_branch(rctx, branch, [], on_flow=flow)
                return
            if flow.transport in ("ws", "wss") or req.uri.host.lower().endswith(".invalid"):
                # RFC 5626 §5.3 / RFC 7118 §5: never dial a client that reached us over its
                # own connection; fail fast (430 for an Outbound flow).
                self._branch_final(rctx, branch, 430 if target.outbound else 480)
                return
        nh = target.dst or (req.routes[0].uri if req.routes else req.uri)
        try:
            # Our Via and Record-Route add about 150 bytes (RFC 3261 §18.1.1 threshold).
            hop = self.locator.plan(nh, rctx.request.size_hint + 150, rctx.forced_iface)
        except ParseError as exc:
            self._branch_final(rctx, branch, exc.status_hint if exc.status_hint >= 400 else 503)
            return
        targets = self.locator.resolve_now(hop)
        if targets is None:
            self.spawn(self._resolve_branch(rctx, branch, hop))
        else:
            self._send_branch(rctx, branch, with_udp_fallback(hop, targets, nh.transport))

    async def _resolve_branch(self, rctx: ResponseContext, branch: Branch, hop: Hop) -> None:
        targets = await self.locator.resolve(hop)
        if branch.state is BranchState.RESOLVING:
            self._send_branch(rctx, branch, with_udp_fallback(hop, targets, None))
        self.after_async()

    def _send_branch(
        self,
        rctx: ResponseContext,
        branch: Branch,
        targets: list[Addr],
        on_flow: Flow | None = None,
    ) -> None:
        if branch.cancel_wanted or (rctx.final_sent and not rctx.is_invite):
            self._branch_final(rctx, branch, 487)
            return
        if on_flow is not None:
            flow, out_iface = on_flow, self.locator.interface_of(on_flow)
        elif not targets:
            self._branch_final(rctx, branch, 503, "Unresolvable destination")
            return
        else:
            branch.alternatives = targets[1:]
            flow, out_iface = self.locator.flow_for(targets[0], rctx.forced_iface)
            branch.server_name = targets[0].name
        req = branch.request
        if branch.sent_once:
            req.pop_via()
        elif self._records_route(rctx):
            for value in reversed(self._rr_values(rctx, out_iface, on_flow)):
                req.add_record_route(value)
        branch.via_branch = self.new_branch()
        req.push_via(
            f"SIP/2.0/{flow.transport.upper()} {out_iface.via_host()};branch={branch.via_branch}"
        )
        branch.sent_once = True
        hook = self.router.on_branch(rctx.ctx, branch.info)
        media = self.calls.offer_work(rctx, branch, flow)
        if inspect.isawaitable(hook) or media is not None:
            self.spawn(self._await_branch(rctx, branch, hook, flow, media))
        else:
            self._transmit(rctx, branch, flow)

    def _rr_values(
        self, rctx: ResponseContext, out_iface: Interface, out_flow: Flow | None
    ) -> list[str]:
        """Record-Route entries, top first: one per interface (RFC 5658), each facing a
        client that is reachable only over its own flow carrying that flow's token. A
        NATed UDP caller's token always gets an entry of its own (two entries), so the
        direction of a later request never depends on its NAT binding staying the same."""
        in_flow = rctx.ctx.flow
        in_iface = self.locator.interface_of(in_flow)
        nat_in = self.nat is not None and self.nat.wants_token(rctx.request, in_flow)
        in_token = self.tokens.encode(in_flow) if in_flow.is_stream or nat_in else None
        out_token = self.tokens.encode(out_flow) if out_flow is not None else None
        sig = self._dialog_param(rctx.request)
        if in_iface == out_iface and out_token is None and not nat_in:
            return [in_iface.rr_uri(sig, in_token)]
        if in_iface == out_iface and not self.settings.double_record_route and not in_token:
            return [in_iface.rr_uri(sig, out_token)]
        return [out_iface.rr_uri(sig, out_token), in_iface.rr_uri(sig, in_token)]

    def _dialog_param(self, req: Request) -> str:
        """``;dlg=MAC`` binding our Record-Route to this dialog (see :mod:`.flowtoken`)."""
        if req.from_tag is None:
            return ""  # an RFC 2543 caller: its sequential requests are judged by policy
        return f";{DIALOG_PARAM}={self.tokens.dialog_mac(req.call_id, req.from_tag)}"

    async def _await_branch(
        self,
        rctx: ResponseContext,
        branch: Branch,
        hook: Awaitable[None] | None,
        flow: Flow,
        media: Awaitable[None] | None,
    ) -> None:
        if hook is not None:
            await hook
        if media is not None:
            try:
                await media
            except RelayError as exc:
                log.warning("call %s: media relay failed: %s", rctx.request.call_id, exc)
                self._branch_final(rctx, branch, 503, "Media Relay Unavailable")
                self.after_async()
                return
        if branch.cancel_wanted:
            self._branch_final(rctx, branch, 487)
        else:
            self._transmit(rctx, branch, flow)
        self.after_async()

    def _transmit(self, rctx: ResponseContext, branch: Branch, flow: Flow) -> None:
        now = self.clock()
        dest = Dest(
            flow,
            weakref.ref(branch),
            server_name=branch.server_name,
            tls_profile=branch.target.tls_profile or None,
        )
        txn = self.layer.send_request(branch.request, dest, now, reliable=flow.transport != "udp")
        branch.txn = txn
        branch.flow = flow
        branch.state = BranchState.CALLING
        self.branches[txn] = (rctx, branch)
        if rctx.is_invite:
            self._arm_timer_c(branch, rctx, now)

    def _records_route(self, rctx: ResponseContext) -> bool:
        req = rctx.request
        return self.settings.record_route and req.method in DIALOG_FORMING and req.to_tag is None

    def new_branch(self) -> str:
        """A fresh RFC 3261 §8.1.1.7 branch (magic cookie, unique per process)."""
        return f"{self._prefix}.{next(self._seq):x}"

    # ------------------------------------------------------------------ responses
    def _on_response(self, resp: Response, txn: ClientTransaction) -> None:
        entry = self.branches.get(txn)
        if entry is None:
            # A response to our own CANCEL is hop by hop. A 2xx retransmitted after the
            # context was released still goes upstream (every 2xx is forwarded, §16.7).
            if 200 <= resp.status < 300 and resp.cseq.method == "INVITE":
                self.stateless.forward_response(resp)
            return
        rctx, branch = entry
        if len(resp.vias) < 2:
            return  # §16.7 step 3: no Via left for upstream; it was for us alone
        resp.pop_via()
        if self.nat is not None:
            self.nat.on_response(resp, branch, self._records_route(rctx))  # NATed callee
        hook = self.router.on_reply(rctx.ctx, branch.info, resp)
        if inspect.isawaitable(hook):
            self.spawn(hook)
        status = resp.status
        work = self.calls.response_work(rctx, branch, resp) if status > 100 else None
        if status < 200:
            self._on_provisional(rctx, branch, resp, work)
        elif status < 300:
            self._on_2xx(rctx, branch, resp, work)
        else:
            if status == 503 and branch.alternatives:
                self._failover(rctx, branch)
                return
            branch.final = resp
            branch.state = BranchState.DONE
            if status >= 600:
                rctx.pending_groups.clear()
                self._cancel_all(rctx)
            self._check_done(rctx)

    def _on_provisional(
        self,
        rctx: ResponseContext,
        branch: Branch,
        resp: Response,
        work: Awaitable[None] | None = None,
    ) -> None:
        branch.state = BranchState.PROCEEDING
        if resp.status == 100:
            return
        if rctx.is_invite:
            self._arm_timer_c(branch, rctx, self.clock())  # §16.7 step 2: reset Timer C
        if not rctx.final_sent and not rctx.server_txn.terminated:
            self._upstream(rctx, resp, work)
        elif work is not None:
            self.spawn(work)  # still tell the relay; the response itself goes nowhere

    def _on_2xx(
        self,
        rctx: ResponseContext,
        branch: Branch,
        resp: Response,
        work: Awaitable[None] | None = None,
    ) -> None:
        branch.state = BranchState.DONE
        self._upstream(rctx, resp, work)
        if not rctx.final_sent:
            rctx.final_sent = True
            rctx.pending_groups.clear()
            self._cancel_all(rctx)  # §16.7 step 10
        self._maybe_release(rctx)

    def _check_done(self, rctx: ResponseContext) -> None:
        if rctx.final_sent:
            self._maybe_release(rctx)
            return
        if any(b.state is not BranchState.DONE for b in rctx.branches):
            return
        if rctx.pending_groups and not rctx.cancelled:
            self._next_group(rctx)
            return
        best = choose_best(rctx.finals(), rctx.local_finals) or self._local_response(rctx, 408)
        if not rctx.cancelled and not rctx.failure_hook_ran:
            rctx.failure_hook_ran = True
            again = self.router.on_failure(rctx.ctx, best)
            if inspect.isawaitable(again):
                self.spawn(self._await_failure(rctx, again, best))
                return
            if isinstance(again, Relay) and again.targets:
                rctx.pending_groups = group_by_q(again.targets)
                self._next_group(rctx)
                return
        self._send_final(rctx, best)

    async def _await_failure(
        self, rctx: ResponseContext, pending: Awaitable[Decision | None], best: Response
    ) -> None:
        again = await pending
        if isinstance(again, Relay) and again.targets and not rctx.cancelled:
            rctx.pending_groups = group_by_q(again.targets)
            self._next_group(rctx)
        else:
            self._send_final(rctx, best)
        self.after_async()

    def _send_final(self, rctx: ResponseContext, best: Response) -> None:
        rctx.final_sent = True
        if rctx.is_invite:
            if self.security is not None:
                self.security.call_ended(rctx.request.call_id)  # the call failed
            self.calls.failed(rctx, best.status)
        self._upstream(rctx, best)
        self._maybe_release(rctx)

    def _upstream(
        self, rctx: ResponseContext, resp: Response, work: Awaitable[None] | None = None
    ) -> None:
        """Send a response upstream, after ``work`` (the relay rewriting its SDP) and after
        every response queued before it: responses keep their order."""
        if work is None and not rctx.outbox_busy:
            if not rctx.server_txn.terminated:
                self.layer.send_response(rctx.server_txn, resp, self.clock())
            return
        rctx.outbox.append((resp, work))
        if not rctx.outbox_busy:
            rctx.outbox_busy = True
            self.spawn(self._drain_outbox(rctx))

    async def _drain_outbox(self, rctx: ResponseContext) -> None:
        try:
            while rctx.outbox:
                resp, work = rctx.outbox.pop(0)
                if work is not None:
                    try:
                        await work
                    except RelayError as exc:
                        log.warning("call %s: media answer failed: %s", resp.call_id, exc)
                if not rctx.server_txn.terminated:
                    self.layer.send_response(rctx.server_txn, resp, self.clock())
                self.after_async()
        finally:
            rctx.outbox_busy = False

    def _local_response(
        self, rctx: ResponseContext, status: int, reason: str | None = None
    ) -> Response:
        tag = self._prefix[7:] + format(next(self._seq), "x")
        return build_response(rctx.request, status, reason, to_tag=tag)

    def _branch_final(
        self, rctx: ResponseContext, branch: Branch, status: int, reason: str | None = None
    ) -> None:
        branch.final = self._local_response(rctx, status, reason)
        rctx.local_finals.append(branch.final)
        branch.state = BranchState.DONE
        self._check_done(rctx)

    def _failover(self, rctx: ResponseContext, branch: Branch) -> None:
        """RFC 3263 §4.3: try the next resolved target of this branch."""
        alternatives = branch.alternatives
        old = branch.txn
        if old is not None:
            self.branches.pop(old, None)
        branch.state = BranchState.RESOLVING
        self._send_branch(rctx, branch, alternatives)

    def _on_client_failure(self, txn: object, status: int) -> None:
        if not isinstance(txn, ClientTransaction):
            return
        entry = self.branches.get(txn)
        if entry is None:
            return
        rctx, branch = entry
        if branch.state is BranchState.DONE:
            return
        if branch.alternatives and branch.state is BranchState.CALLING:
            self._failover(rctx, branch)
            return
        self._branch_final(rctx, branch, status)

    def _on_terminated(self, txn: object) -> None:
        if isinstance(txn, ServerTransaction):
            self.contexts.pop(txn, None)
        elif isinstance(txn, ClientTransaction):
            self.branches.pop(txn, None)

    # ------------------------------------------------------------------ CANCEL, Timer C
    def _on_cancel(self, cancel: Request, flow: Flow, invite: ServerTransaction | None) -> None:
        fix_via(cancel, flow)
        stx = self.layer.create_server_transaction(
            cancel, response_dest(cancel, flow), self.clock()
        )
        rctx = self.contexts.get(invite) if invite is not None else None
        if rctx is None:
            # §9.2: no such transaction -> 481; one already answered -> 200, no effect.
            self._respond(stx, 481 if invite is None else 200)
            return
        self._respond(stx, 200)  # §16.10: answer the CANCEL, then cancel every branch
        rctx.cancelled = True
        self.calls.cancelled(rctx)
        rctx.pending_groups.clear()
        self._cancel_all(rctx)

    def _cancel_all(self, rctx: ResponseContext) -> None:
        now = self.clock()
        for b in rctx.branches:
            if b.state is BranchState.DONE or b.cancelled:
                continue
            b.cancelled = True
            if b.txn is None:
                b.cancel_wanted = True
            elif b.txn.is_invite:
                self.layer.cancel(b.txn, now)

    def _arm_timer_c(self, branch: Branch, rctx: ResponseContext, now: float) -> None:
        """(Re)arm Timer C. The heap holds only (deadline, key): a finished branch is
        dropped from ``_timer_c_live`` at once, so nothing of a call outlives it for the
        180 s of Timer C (that would keep every call's objects alive for the GC to scan)."""
        self._disarm_timer_c(branch)
        key = next(self._seq)
        branch.timer_c = now + self.settings.timer_c
        branch.timer_c_key = key
        self._timer_c_live[key] = (branch, rctx)
        heapq.heappush(self._timer_c, (branch.timer_c, key))

    def _disarm_timer_c(self, branch: Branch) -> None:
        if branch.timer_c_key is not None:
            self._timer_c_live.pop(branch.timer_c_key, None)
            branch.timer_c_key = None
            branch.timer_c = None

    def get_timer(self) -> float | None:
        """The next Timer C or dialog deadline (stale heap entries dropped lazily)."""
        heap = self._timer_c
        live = self._timer_c_live
        while heap and heap[0][1] not in live:
            heapq.heappop(heap)
        mine = heap[0][0] if heap else None
        calls = self.calls.get_timer()
        if calls is None or (mine is not None and mine <= calls):
            return mine
        return calls

    def handle_timer(self, now: float) -> None:
        """Fire due Timer C entries (RFC 3261 §16.8) and dialog deadlines."""
        self.calls.handle_timer(now)
        heap = self._timer_c
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            entry = self._timer_c_live.pop(key, None)
            if entry is None:
                continue
            branch, rctx = entry
            branch.timer_c = branch.timer_c_key = None
            if branch.state is BranchState.DONE:
                continue
            if branch.state is BranchState.PROCEEDING and branch.txn is not None:
                branch.cancelled = True
                self.layer.cancel(branch.txn, now)
            elif branch.txn is not None:
                self.layer.abandon(branch.txn, now)
                self._branch_final(rctx, branch, 408)

    def _maybe_release(self, rctx: ResponseContext) -> None:
        """Forget a context once its final response went upstream and every branch is
        done: late 2xx retransmissions are then forwarded statelessly (§16.7 step 5)."""
        if not rctx.final_sent or any(b.state is not BranchState.DONE for b in rctx.branches):
            return
        self.contexts.pop(rctx.server_txn, None)
        for b in rctx.branches:
            self._disarm_timer_c(b)
            if b.txn is not None:
                self.branches.pop(b.txn, None)


def _nothing() -> None:
    return None


def with_udp_fallback(hop: Hop, targets: list[Addr], asked: str | None) -> list[Addr]:
    """RFC 3261 §18.1.1: a request sent over TCP only because it is larger than 1300 bytes
    is retried over UDP when the TCP connection cannot be made (not when the URI asked for
    TCP itself: ``asked`` is its transport parameter)."""
    if not hop.oversize or hop.secure or (asked is not None and asked.lower() != "udp"):
        return targets
    extra = [
        Addr("udp", t.host, t.port, t.name)
        for t in targets
        if t.transport == "tcp" and "udp" in hop.transports
    ]
    return [*targets, *[t for t in extra if t not in targets]]


def _call_id(ev: Output) -> str:
    for name in ("request", "response"):
        msg = getattr(ev, name, None)
        if msg is not None:
            return str(msg.call_id)
    txn = getattr(ev, "transaction", None)
    req = getattr(txn, "request", None)
    return str(getattr(req, "call_id", "-"))
