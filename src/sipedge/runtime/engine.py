"""The engine: feeds transport input into the SIP core and carries its output out.

Bytes and a flow come in from the transport layer; the engine parses them, feeds the
transaction layer, hands every event to the proxy and sends every queued message. One
``loop.call_at`` handle is re-armed from the earliest deadline of the transaction layer
and the proxy (ARCHITECTURE.md §4.1).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable
from typing import Any, Protocol

from ..proxy.core import Proxy
from ..proxy.targets import Dest
from ..sip.build import build_error_from_raw
from ..sip.errors import ParseError
from ..sip.message import Request
from ..sip.parser import DEFAULT_LIMITS, Limits, parse_message
from ..sip.transaction.events import SendMessage
from ..sip.transaction.layer import TransactionLayer
from ..transport.base import Flow, TransportError
from ..transport.manager import TransportManager
from .logs import CALL_ID

log = logging.getLogger("sipedge.engine")


class BanCheck(Protocol):
    """The part of the ban list the engine needs."""

    def is_banned(self, ip: str, now: float) -> bool: ...


class Tap(Protocol):
    """Sees every message in and out (metrics, capture); must be cheap (the hot path)."""

    def message(self, inbound: bool, data: bytes, flow: Flow) -> None: ...

    def dropped(self, reason: str) -> None: ...


class Lane(Protocol):
    """Requests handled outside the transaction layer (:class:`sipedge.proxy.lane.RegisterLane`)."""

    def take(self, req: Request, flow: Flow) -> bool: ...


class Engine:
    """Glue between the transport manager, the transaction layer and the proxy."""

    def __init__(
        self,
        layer: TransactionLayer,
        loop: asyncio.AbstractEventLoop,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.layer = layer
        self.loop = loop
        self.limits = limits
        self.proxy: Proxy | None = None
        self.transport: TransportManager | None = None
        #: Answers ``is_banned(ip, now)``: banned sources are dropped before parsing.
        self.bans: BanCheck | None = None
        #: Told of every message in and out and of drops (the management API's metrics).
        self.tap: Tap | None = None
        #: Takes REGISTERs our registrar answers past the transaction layer (set by the app).
        self.lane: Lane | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._armed: float | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tag = secrets.token_hex(4)
        self.stats = {"received": 0, "parse_errors": 0, "sent": 0, "send_errors": 0}

    # ------------------------------------------------------------------ input
    def on_message(self, data: bytes, flow: Flow) -> None:
        """A datagram or framed stream message arrived on ``flow``."""
        self.stats["received"] += 1
        tap = self.tap
        if self.bans is not None and self.bans.is_banned(flow.remote[0], self.loop.time()):
            if tap is not None:
                tap.dropped("banned")
            return  # silence: a banned source learns nothing and costs one dict look-up
        if tap is not None:
            tap.message(True, data, flow)
        try:
            msg = parse_message(data, self.limits)
        except ParseError as exc:
            self._reject(data, flow, exc)
            return
        token = CALL_ID.set(msg.call_id)  # log lines and tasks of this message carry it
        try:
            lane = self.lane
            register = type(msg) is Request and msg.method == "REGISTER"
            if register and lane is not None and lane.take(msg, flow):  # type: ignore[arg-type]
                return
            self.layer.receive_message(msg, flow, self.loop.time())
            self.pump()
        finally:
            CALL_ID.reset(token)

    def _reject(self, data: bytes, flow: Flow, exc: ParseError) -> None:
        self.stats["parse_errors"] += 1
        log.info("bad message from %s:%s: %s", flow.remote[0], flow.remote[1], exc.reason)
        if self.tap is not None:
            self.tap.dropped("parse_error")
        out = build_error_from_raw(data, exc.status_hint, exc.reason, self._tag)
        if out is not None and self.transport is not None:
            if self.tap is not None:
                self.tap.message(False, out, flow)
            self.transport.send(out, flow)

    # ------------------------------------------------------------------ output
    def pump(self) -> None:
        """Hand every queued event to the proxy and send every queued message."""
        layer = self.layer
        proxy = self.proxy
        while True:
            out = layer.next_event()
            if out is None:
                break
            if isinstance(out, SendMessage):
                self._send(out.data, out.dest)
            elif proxy is not None:
                try:
                    proxy.on_event(out)
                except Exception:  # a bug must not stop the message pump: log and go on
                    log.exception("error handling %s", type(out).__name__)
        self._rearm()

    def send(self, data: bytes, dest: Dest) -> None:
        """Send ``data`` to ``dest`` outside any transaction (counted and tapped)."""
        self._send(data, dest)

    def _send(self, data: bytes, dest: object) -> None:
        assert isinstance(dest, Dest) and self.transport is not None
        flow = dest.flow
        self.stats["sent"] += 1
        if self.tap is not None:
            self.tap.message(False, data, flow)
        if flow.conn_id is not None or flow.transport == "udp":
            if self.transport.send(data, flow):
                return
            if dest.fallback is None or flow.transport == "udp":
                self._send_failed(dest)
                return
            ip, port = dest.fallback
            self.spawn(
                self._send_to(
                    data, Dest(Flow(flow.transport, flow.local, (ip, port)), dest.branch_ref)
                )
            )
            return
        self.spawn(self._send_to(data, dest))

    async def _send_to(self, data: bytes, dest: Dest) -> None:
        assert self.transport is not None
        CALL_ID.set(None)  # a connection opened here outlives the call: keep its logs free of it
        flow = dest.flow
        try:
            await self.transport.send_to(
                data,
                flow.transport,
                flow.remote[0],
                flow.remote[1],
                server_name=dest.server_name,
                tls_profile=dest.tls_profile,
            )
        except (TransportError, OSError, ValueError) as exc:
            log.info("send to %s:%s/%s failed: %s", *flow.remote, flow.transport, exc)
            self._send_failed(dest)

    def _send_failed(self, dest: Dest) -> None:
        self.stats["send_errors"] += 1
        if self.tap is not None:
            self.tap.dropped("send_error")
        if self.proxy is not None:
            self.proxy.send_failed(dest)
            self.pump()

    # ------------------------------------------------------------------ tasks and timers
    def spawn(self, aw: Awaitable[Any]) -> None:
        """Run ``aw`` in a task of its own; errors are logged, never raised into the loop."""
        task = asyncio.ensure_future(aw)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task failed", exc_info=task.exception())
        self.pump()

    def _rearm(self) -> None:
        deadline = self.layer.get_timer()
        if self.proxy is not None:
            pd = self.proxy.get_timer()
            if pd is not None and (deadline is None or pd < deadline):
                deadline = pd
        if deadline == self._armed:
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._armed = deadline
        if deadline is not None:
            self._handle = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._handle = None
        self._armed = None
        now = self.loop.time()
        self.layer.handle_timer(now)
        if self.proxy is not None:
            self.proxy.handle_timer(now)
        self.pump()

    @property
    def busy(self) -> int:
        """Requests still waiting for their final response, plus running tasks.

        Graceful shutdown waits for zero; transactions that only linger for
        retransmissions (Timers D, K, L) do not hold it up.
        """
        pending = 0
        if self.proxy is not None:
            pending = sum(1 for r in self.proxy.contexts.values() if not r.final_sent)
        return pending + len(self._tasks)

    def close(self) -> None:
        """Stop the timer and cancel running tasks."""
        if self._handle is not None:
            self._handle.cancel()
        for task in list(self._tasks):
            task.cancel()
