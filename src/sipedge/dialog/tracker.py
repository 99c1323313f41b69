"""The live dialog table with its timers (sans-I/O: times come in as ``now``).

Operations mirror a call's life: :meth:`DialogTracker.started` when the proxy relays an
initial INVITE, :meth:`early`/:meth:`confirmed` on responses, :meth:`ended` on BYE, CANCEL
or a final failure. Each dialog carries one deadline: for an unanswered call the time after
which the record is dropped as stale (``setup_timeout``), for a confirmed one the maximum
call duration (ended with BYE both ways by the proxy) or, without one, ``idle_timeout``
(Kamailio's dialog ``default_timeout``: the record and its media are dropped, no BYE).
:meth:`due` hands out the dialogs whose deadline passed. Every change is mirrored to the
:class:`~sipedge.dialog.store.DialogStore` through ``spawn`` (write-behind).
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .model import Dialog, DialogState, Leg
from .store import DialogStore

log = logging.getLogger("sipedge.dialog")


@dataclass(frozen=True, slots=True)
class DialogSettings:
    """Timer settings; 0 for ``max_call_duration`` means no limit."""

    max_call_duration: float = 0.0
    setup_timeout: float = 300.0
    idle_timeout: float = 43200.0
    keep_ended: int = 200


@dataclass(frozen=True, slots=True)
class Expiry:
    """A dialog whose deadline passed: ``hangup`` says whether to send BYE both ways."""

    dialog: Dialog
    hangup: bool


class DialogTracker:
    """In-memory authority over live dialogs; see the module text."""

    def __init__(
        self,
        settings: DialogSettings | None = None,
        *,
        store: DialogStore | None = None,
        spawn: Callable[[Awaitable[Any]], None] | None = None,
    ) -> None:
        self.settings = settings or DialogSettings()
        self.store = store
        self._spawn = spawn
        self._live: dict[str, Dialog] = {}
        self._deadline: dict[str, float] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self.recent: deque[Dialog] = deque(maxlen=self.settings.keep_ended)
        #: Changes not yet written to the store: key -> latest record (None = removed).
        self._dirty: dict[str, Dialog | None] = {}
        self._flushing = False
        self.counters = {"started": 0, "confirmed": 0, "ended": 0, "expired": 0}

    # -- queries -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._live)

    def get(self, key: str) -> Dialog | None:
        """The live dialog ``call-id;from-tag``."""
        return self._live.get(key)

    def find(self, call_id: str, tag_a: str | None, tag_b: str | None = None) -> Dialog | None:
        """The live dialog of a request of either direction (its From and To tags)."""
        for tag in (tag_a, tag_b):
            if tag:
                found = self._live.get(f"{call_id};{tag}")
                if found is not None:
                    return found
        return None

    def active(self) -> list[Dialog]:
        """Every live dialog, oldest first."""
        return sorted(self._live.values(), key=lambda d: d.created)

    def count(self, state: DialogState) -> int:
        """How many live dialogs are in ``state``."""
        return sum(1 for d in self._live.values() if d.state is state)

    # -- life cycle ------------------------------------------------------------------------
    def started(self, dialog: Dialog, now: float) -> Dialog:
        """An initial INVITE was relayed; an existing record (a retry) is kept."""
        old = self._live.get(dialog.key)
        if old is not None:
            return old
        self.counters["started"] += 1
        self._put(dialog, now + self.settings.setup_timeout)
        return dialog

    def early(self, key: str, callee: Leg) -> Dialog | None:
        """A provisional with a To tag came back (first one wins the callee fields)."""
        d = self._live.get(key)
        if d is None or d.state not in (DialogState.TRYING, DialogState.EARLY):
            return d
        d = d.with_(state=DialogState.EARLY, callee=callee)
        self._put(d, None)
        return d

    def confirmed(self, key: str, callee: Leg, now: float) -> Dialog | None:
        """The first 2xx: the dialog is confirmed with this callee; later 2xx change nothing."""
        d = self._live.get(key)
        if d is None or d.state is DialogState.CONFIRMED:
            return d
        self.counters["confirmed"] += 1
        d = d.with_(state=DialogState.CONFIRMED, callee=callee, confirmed_at=now)
        limit = self.settings.max_call_duration or self.settings.idle_timeout
        self._put(d, now + limit)
        return d

    def update(self, dialog: Dialog) -> None:
        """Store changed fields of a live dialog (relay node, CSeqs, targets)."""
        if dialog.key in self._live:
            self._put(dialog, None)

    def ended(self, key: str, reason: str, now: float) -> Dialog | None:
        """The call is over (BYE, CANCEL, failure, expiry); returns the final record."""
        d = self._live.pop(key, None)
        self._deadline.pop(key, None)
        if d is None:
            return None
        self.counters["ended"] += 1
        d = d.with_(state=DialogState.TERMINATED, ended_at=now, end_reason=reason)
        self.recent.append(d)
        self._mirror(key, None)
        return d

    def adopt(self, dialogs: list[Dialog], now: float) -> int:
        """Take over dialogs loaded from a shared store (another node's calls)."""
        taken = 0
        for d in dialogs:
            if d.state is DialogState.TERMINATED or d.key in self._live:
                continue
            if d.state is DialogState.CONFIRMED and d.confirmed_at is not None:
                limit = self.settings.max_call_duration or self.settings.idle_timeout
                deadline = d.confirmed_at + limit
            else:
                deadline = d.created + self.settings.setup_timeout
            self._live[d.key] = d
            self._arm(d.key, max(deadline, now))
            taken += 1
        return taken

    # -- timers ----------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        """The next deadline (stale heap entries dropped lazily)."""
        heap = self._heap
        while heap and self._deadline.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def due(self, now: float) -> list[Expiry]:
        """Remove and return the dialogs whose deadline is ``<= now``."""
        out: list[Expiry] = []
        while (when := self.get_timer()) is not None and when <= now:
            _, _, key = heapq.heappop(self._heap)
            d = self._live.get(key)
            if d is None:
                continue
            hangup = d.state is DialogState.CONFIRMED and self.settings.max_call_duration > 0
            reason = "max duration" if hangup else "timeout"
            self.counters["expired"] += 1
            final = self.ended(key, reason, now)
            if final is not None:
                out.append(Expiry(final, hangup))
        return out

    # -- internals -------------------------------------------------------------------------
    def _put(self, d: Dialog, deadline: float | None) -> None:
        self._live[d.key] = d
        if deadline is not None:
            self._arm(d.key, deadline)
        self._mirror(d.key, d)

    def _mirror(self, key: str, d: Dialog | None) -> None:
        """Queue the latest state of ``key`` for the store. One writer drains the queue in
        order, so a later state can never be overtaken by an earlier one (two concurrent
        writes of one key could land in either order on a pooled connection)."""
        if self.store is None or self._spawn is None:
            return
        self._dirty[key] = d
        if not self._flushing:
            self._flushing = True
            self._spawn(self._flush())

    async def _flush(self) -> None:
        store = self.store
        assert store is not None
        try:
            while self._dirty:
                key = next(iter(self._dirty))
                d = self._dirty.pop(key)
                try:
                    await (store.remove(key) if d is None else store.save(d))
                except Exception as exc:  # a store outage must not stop later writes
                    log.warning("dialog store write of %s failed: %s", key, exc)
        finally:
            self._flushing = False

    def _arm(self, key: str, deadline: float) -> None:
        self._deadline[key] = deadline
        heapq.heappush(self._heap, (deadline, next(self._seq), key))
