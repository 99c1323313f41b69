"""The local REGISTER lane: REGISTERs our registrar answers, without a server transaction.

A REGISTER for one of our domains, with no Route and an RFC 3261 branch, that the router
answers itself (:meth:`LocalRegisterRouter.answers_register`, true for the default router
with a registrar) never leaves sipedge, so it needs none of what a proxied request needs:
no response context, no branches, and no :class:`ServerTransaction` object living for
64×T1. This lane keeps only what RFC 3261 §17.2.2 asks of a non-INVITE server transaction,
in :class:`AnswerCache`: a retransmission that arrives while the answer is being worked out
is absorbed (Trying state), one that arrives after it gets the same response bytes again
(Completed state, Timer J = 64×T1 on unreliable transports, 0 on reliable ones). Kamailio
answers REGISTER statelessly (``sl_send_reply``) for the same reason.

Everything else a request goes through is the same as on the proxy's normal path: the
security screen, Via fixing (§18.2.1, RFC 3581), the §16.3 checks, the draining refusal and
the router's decision. A router decision other than a response (a custom router relaying the
REGISTER) is handed to the proxy with a server transaction made at that point.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from ..security import Action
from ..sip.build import response_bytes
from ..sip.errors import ParseError
from ..sip.message import Request
from ..transport.base import Flow
from .checks import validate_request
from .hooks import Decision, RequestContext, Respond
from .targets import Dest
from .vias import fix_via, response_dest

if TYPE_CHECKING:
    from .core import Proxy

log = logging.getLogger("sipedge.proxy")

_CHALLENGES = frozenset({401, 407})
_MAGIC = "z9hG4bK"  # RFC 3261 §8.1.1.7: branches made by RFC 3261 clients
AnswerKey = tuple[str, str, int | None]


class LocalRegisterRouter(Protocol):
    """A router that may declare REGISTERs it answers itself (see the module docstring)."""

    def answers_register(self, ctx: RequestContext) -> bool: ...


async def _carry_on(coro: Coroutine[Any, Any, Decision], step: object) -> Decision:
    """Finish a coroutine that was started outside any task and stopped at ``step`` (the
    future it waits for, or None for a bare yield), as the task running it would have."""
    while True:
        if step is None:
            await asyncio.sleep(0)
        elif isinstance(step, asyncio.Future):
            step._asyncio_future_blocking = False  # taken over, as Task.__step does
            try:
                await step
            except asyncio.CancelledError:
                if not step.cancelled():  # we were cancelled, not what it waits for
                    coro.close()
                    raise
            except Exception:  # the coroutine gets it when resumed below
                pass
        else:
            coro.close()
            raise RuntimeError(f"coroutine yielded {step!r}, not a future")
        try:
            step = coro.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


class _Pending:
    """Marks a request whose answer is being worked out (retransmissions are absorbed)."""


PENDING = _Pending()
#: Marks a request handed to the transaction layer: its retransmissions go there too.
DELEGATED = _Pending()


class AnswerCache:
    """Final responses of locally answered requests by §17.2.3 key, kept for ``linger``.

    Pure data structure (``now`` is passed in). Every entry lives ``linger`` seconds after
    its last change, so the expiry queue is in time order and its front always goes first.
    At most ``max_entries`` are kept (the oldest go first), which bounds the memory a flood
    of distinct REGISTERs can take; an evicted answer only means that a late retransmission
    is worked out afresh.
    """

    def __init__(self, linger: float, max_entries: int = 200_000) -> None:
        self.linger = linger
        self.max_entries = max_entries
        self._entries: dict[AnswerKey, tuple[float, tuple[bytes, Dest] | _Pending]] = {}
        self._expiry: deque[tuple[float, AnswerKey]] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: AnswerKey, now: float) -> tuple[bytes, Dest] | _Pending | None:
        """The entry of ``key``: PENDING, DELEGATED, (response bytes, where to), or None."""
        self.expire(now)
        entry = self._entries.get(key)
        return None if entry is None else entry[1]

    def begin(self, key: AnswerKey, now: float) -> None:
        """``key`` is being answered: absorb its retransmissions until :meth:`answered`."""
        self._put(key, PENDING, now)

    def delegate(self, key: AnswerKey, now: float) -> None:
        """``key`` went to a server transaction: let its retransmissions through."""
        self._put(key, DELEGATED, now)

    def answered(self, key: AnswerKey, data: bytes, dest: Dest, now: float, keep: bool) -> None:
        """The final response of ``key`` was sent; ``keep`` it for retransmissions (an
        unreliable transport) or forget the request at once (a reliable one)."""
        if keep:
            self._put(key, (data, dest), now)
        else:
            self._entries.pop(key, None)

    def forget(self, key: AnswerKey) -> None:
        """Drop ``key`` (a silently dropped request: a retransmission is judged afresh)."""
        self._entries.pop(key, None)

    def _put(self, key: AnswerKey, value: tuple[bytes, Dest] | _Pending, now: float) -> None:
        entries = self._entries
        if key not in entries:
            while len(entries) >= self.max_entries and self._expiry:
                self._drop_front()
        expires = now + self.linger
        entries[key] = (expires, value)
        self._expiry.append((expires, key))

    def _drop_front(self) -> None:
        """Remove the queue's front record and its entry, unless the entry was renewed
        since (a later record of its own then removes it)."""
        expires, key = self._expiry.popleft()
        entry = self._entries.get(key)
        if entry is not None and entry[0] == expires:
            del self._entries[key]

    def expire(self, now: float) -> None:
        """Forget the answers whose time is up at ``now``."""
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            self._drop_front()


class RegisterLane:
    """Takes the REGISTERs the router answers itself off the transaction layer.

    ``send`` puts response bytes on the wire (the engine's sender); everything else comes
    from ``proxy``, whose checks and router the lane shares.
    """

    def __init__(
        self,
        proxy: Proxy,
        send: Callable[[bytes, Dest], None],
        linger: float,
        *,
        eager: bool = False,
    ) -> None:
        self.proxy = proxy
        #: Run the router's coroutine at once instead of in a task of its own (a task
        #: takes over only if it has to wait). Only for routers and stores that never need
        #: ``asyncio.current_task()`` before their first wait (``asyncio.timeout`` does):
        #: the default router over in-process stores.
        self.eager = eager
        self.send = send
        self.answers = AnswerCache(linger)
        router = proxy.router
        self._answers_register: Callable[[RequestContext], bool] | None = getattr(
            router, "answers_register", None
        )

    def take(self, req: Request, flow: Flow) -> bool:
        """Handle ``req`` here if it belongs to the lane; False sends it the usual way."""
        if self._answers_register is None or req.to_tag is not None or req.routes:
            return False
        via = req.vias[0] if req.vias else None
        branch = via.branch if via is not None else None
        if via is None or branch is None or not branch.startswith(_MAGIC):
            return False
        proxy = self.proxy
        try:
            if not proxy.identity.is_domain(req.uri):
                return False
        except ParseError:
            return False  # the normal path answers a bad Request-URI
        ctx = proxy.context_for(req, flow)
        ctx.for_us = True
        if not self._answers_register(ctx):
            return False
        host, port = via.sent_by
        key = (branch, host.lower(), port)
        now = proxy.clock()
        seen = self.answers.get(key, now)
        if seen is DELEGATED:
            return False
        if seen is not None:
            if not isinstance(seen, _Pending):
                self.send(*seen)  # §17.2.2 Completed: the same final response again
            return True  # PENDING: §17.2.2 Trying absorbs the retransmission
        self._start(req, flow, ctx, key, now)
        return True

    def _start(
        self, req: Request, flow: Flow, ctx: RequestContext, key: AnswerKey, now: float
    ) -> None:
        proxy = self.proxy
        verdict = proxy.screen(req, flow, now)
        if verdict is not None and verdict.action in (Action.DROP, Action.BAN):
            return  # scanners and floods get silence
        try:
            fix_via(req, flow)
            dest = response_dest(req, flow)
        except (ParseError, ValueError) as exc:
            log.info("call %s: %s", req.call_id, exc)
            return
        if verdict is not None and verdict.action is Action.REJECT:
            self._answer(req, dest, key, Respond(verdict.status or 403, verdict.reason or None))
            return
        early = self._early_answer(req)
        if early is not None:
            self._answer(req, dest, key, early)
            return
        try:
            decision = proxy.router.on_request(ctx)
        except ParseError as exc:
            decision = Respond(exc.status_hint, exc.reason)
        if inspect.iscoroutine(decision) and self.eager:
            try:
                step = decision.send(None)  # as far as it goes without waiting
            except StopIteration as stop:
                decision = stop.value
            except ParseError as exc:
                decision = Respond(exc.status_hint, exc.reason)
            except Exception:
                log.exception("call %s: REGISTER handling failed", req.call_id)
                return
            else:
                decision = _carry_on(decision, step)
        if inspect.isawaitable(decision):
            self.answers.begin(key, now)
            proxy.spawn(self._await(ctx, dest, key, decision))
        else:
            self._decided(ctx, dest, key, decision)

    def _early_answer(self, req: Request) -> Respond | None:
        """The §16.3 checks and the shutdown refusal, as on the proxy's normal path."""
        reject = validate_request(req, addressed_to_us=False)
        if reject is not None:
            return Respond(reject.status, reject.reason, reject.headers)
        if self.proxy.draining:
            return Respond(503, "Shutting Down", [("Retry-After", "5")])
        return None

    async def _await(
        self, ctx: RequestContext, dest: Dest, key: AnswerKey, pending: Awaitable[Decision]
    ) -> None:
        try:
            decision = await pending
        except ParseError as exc:
            decision = Respond(exc.status_hint, exc.reason)
        except Exception:
            self.answers.forget(key)
            raise
        self._decided(ctx, dest, key, decision)
        self.proxy.after_async()

    def _decided(self, ctx: RequestContext, dest: Dest, key: AnswerKey, decision: Decision) -> None:
        if isinstance(decision, Respond):
            self._answer(ctx.request, dest, key, decision)
            return
        self.answers.delegate(key, self.proxy.clock())
        self.proxy.adopt(ctx.request, dest, ctx, decision)
        self.proxy.after_async()  # the transaction layer has output to send

    def _answer(self, req: Request, dest: Dest, key: AnswerKey, decision: Respond) -> None:
        """Send the final response and keep it for retransmissions (§17.2.2)."""
        proxy = self.proxy
        status = decision.status
        tag = proxy.new_tag() if status > 100 else None
        data = response_bytes(req, status, decision.reason, to_tag=tag, headers=decision.headers)
        self.send(data, dest)
        # A challenge is not kept: a retransmitted REGISTER without credentials just gets a
        # fresh one (nonces are stateless), which spares the memory of most answers.
        keep = dest.flow.transport == "udp" and status not in _CHALLENGES
        self.answers.answered(key, data, dest, proxy.clock(), keep)

    async def sweep(self, every: float = 1.0) -> None:
        """Forget expired answers every ``every`` seconds, also when no REGISTER comes to
        do it (run as a background task)."""
        while True:
            await asyncio.sleep(every)
            self.answers.expire(self.proxy.clock())
