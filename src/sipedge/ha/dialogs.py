""":class:`RedisDialogStore`: dialog records in the Redis hash ``P dialogs``.

Field ``call-id;from-tag`` (:attr:`~sipedge.dialog.Dialog.key`), value the JSON of
:meth:`~sipedge.dialog.Dialog.to_dict` plus ``node``, the name of the node that wrote it
(its owner: in active-active mode a restarting node takes back only its own calls). The
tracker writes behind (it does not wait for the store), so a write that fails is queued,
newest record per key, and written by :meth:`flush` when Redis answers again; nothing a
caller awaits ever raises because Redis is down.

The tracker's times (``created``, ``confirmed_at``, ``ended_at``) are on the proxy's clock,
the event loop's monotonic one, whose origin differs between hosts; they are stored as
wall-clock times (``time.time``) and converted back to the reading node's clock, so a
node taking over computes the right call durations and timeouts.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from ..dialog.model import Dialog
from .client import REDIS_ERRORS, RedisLink

__all__ = ["RedisDialogStore"]

log = logging.getLogger("sipedge.ha")


class RedisDialogStore:
    """A :class:`~sipedge.dialog.store.DialogStore` in Redis (see the module text)."""

    def __init__(
        self,
        link: RedisLink,
        clock: Callable[[], float] = time.monotonic,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.link = link
        self._clock = clock
        self._wall = wall
        self._hash = link.key("dialogs")
        self._pending: dict[str, Dialog | None] = {}  # None: a removal

    @property
    def pending(self) -> int:
        """Writes waiting for Redis."""
        return len(self._pending)

    async def save(self, dialog: Dialog) -> None:
        """Insert or overwrite ``dialog`` (queued while Redis is unreachable)."""
        self._pending[dialog.key] = dialog
        if self.link.up:  # while down the health loop of SharedState flushes
            await self.flush()

    async def remove(self, key: str) -> None:
        """Forget the dialog ``key`` (queued while Redis is unreachable)."""
        self._pending[key] = None
        if self.link.up:
            await self.flush()

    async def load_all(self, owner: str | None = None) -> list[Dialog]:
        """Every stored dialog, or only those last written by node ``owner``; []
        (logged) when Redis is unreachable."""
        try:
            stored = await self.link.redis.hgetall(self._hash)
        except REDIS_ERRORS as exc:
            self.link.failed("dialog load", exc)
            return []
        self.link.succeeded()
        out = []
        for raw_key, raw in stored.items():
            try:
                record = json.loads(raw)
                node = record.pop("node", None)
                if owner is None or node == owner:
                    out.append(_shift(Dialog.from_dict(record), -self._offset()))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                log.error("unreadable dialog %r in redis, ignored: %s", raw_key, exc)
        return out

    async def flush(self) -> bool:
        """Write the queued records; False (queue kept) when Redis fails."""
        while self._pending:
            key, dialog = next(iter(self._pending.items()))
            try:
                if dialog is None:
                    await self.link.redis.hdel(self._hash, key)
                else:
                    record = _shift(dialog, self._offset()).to_dict()
                    record["node"] = self.link.node
                    await self.link.redis.hset(self._hash, key, json.dumps(record))
            except REDIS_ERRORS as exc:
                self.link.failed("dialog write", exc)
                return False
            if self._pending.get(key, ...) is dialog:  # not changed while we awaited
                del self._pending[key]
        self.link.succeeded()
        return True

    def _offset(self) -> float:
        """Wall-clock time minus this node's clock."""
        return self._wall() - self._clock()


def _shift(d: Dialog, by: float) -> Dialog:
    """``d`` with its times moved by ``by`` seconds."""
    return d.with_(
        created=d.created + by,
        confirmed_at=None if d.confirmed_at is None else d.confirmed_at + by,
        ended_at=None if d.ended_at is None else d.ended_at + by,
    )
