"""The location service's storage: the :class:`LocationStore` boundary and its embedded
default, :class:`MemoryLocationStore` (a dict, optionally written through to SQLite).

The protocol is async so that a shared backend (Redis) can implement it; the memory store
never awaits. ``replace`` is atomic per AOR: readers see the old bindings or the new ones,
never a mix (RFC 3261 §10.3 step 7: "made visible ... if and only if all binding updates
and additions succeed").

Expiry uses a min-heap of ``(expires_at, aor)`` with lazy deletion: a refresh pushes a new
entry and leaves the old one in place; when an entry comes due, only the bindings of that
AOR whose ``expires_at`` has passed are removed, so a stale entry removes nothing.
``expire(now)`` therefore costs O(k log n) for k due entries instead of a scan of every
binding. The heap is rebuilt when stale entries outnumber live bindings.

Persistence: with ``persist`` set, each ``replace`` runs one SQLite transaction (delete
the AOR's rows, insert the new ones) before the memory copy changes, so a failed write
leaves both unchanged. WAL journaling with ``synchronous=NORMAL`` keeps a commit to a
page append without an fsync (durable across a process crash; a power loss may lose the
last commits, which the UAs' next refresh restores). Times must come from a wall clock
(``time.time``) for the file to survive a reboot.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..transport.base import Address
from .binding import Binding


class StoreError(Exception):
    """The location store could not read or write its backing storage."""


class LocationStore(Protocol):
    """Where bindings live (ARCHITECTURE.md §4.9): the registrar's only dependency."""

    async def lookup(self, aor: str) -> list[Binding]:
        """Every stored binding of ``aor`` (expired ones not yet swept included)."""
        ...

    async def replace(self, aor: str, bindings: list[Binding]) -> None:
        """Set the bindings of ``aor`` atomically; an empty list deletes the AOR."""
        ...

    async def expire(self, now: float) -> list[Binding]:
        """Remove and return every binding with ``expires_at <= now``."""
        ...

    async def count(self) -> int:
        """Number of stored bindings."""
        ...

    async def aors(self) -> list[str]:
        """Every AOR that has at least one stored binding."""
        ...


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS bindings ("
    " aor TEXT NOT NULL, contact TEXT NOT NULL, expires_at REAL NOT NULL, q REAL NOT NULL,"
    " call_id TEXT NOT NULL, cseq INTEGER NOT NULL, instance TEXT, reg_id INTEGER,"
    " path TEXT, transport TEXT NOT NULL, local_ip TEXT NOT NULL, local_port INTEGER NOT NULL,"
    " remote_ip TEXT NOT NULL, remote_port INTEGER NOT NULL, conn_id INTEGER,"
    " user_agent TEXT, registered_at REAL NOT NULL, nat INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS bindings_aor ON bindings (aor)",
    "CREATE INDEX IF NOT EXISTS bindings_expiry ON bindings (expires_at)",
)
_COLUMNS = (
    "aor, contact, expires_at, q, call_id, cseq, instance, reg_id, path, transport,"
    " local_ip, local_port, remote_ip, remote_port, conn_id, user_agent, registered_at, nat"
)
_INSERT = f"INSERT INTO bindings ({_COLUMNS}) VALUES ({', '.join('?' * 18)})"
#: Columns added after the first release, created in an older file when it is opened.
_ADDED = {"nat": "ALTER TABLE bindings ADD COLUMN nat INTEGER NOT NULL DEFAULT 0"}


def _row(b: Binding) -> tuple[Any, ...]:
    path = json.dumps(list(b.path)) if b.path else None
    return (
        b.aor, b.contact, b.expires_at, b.q, b.call_id, b.cseq, b.instance, b.reg_id, path,
        b.transport, b.local[0], b.local[1], b.remote[0], b.remote[1], b.conn_id,
        b.user_agent, b.registered_at, int(b.nat),
    )  # fmt: skip


def _binding(row: Sequence[Any], locals_: dict[Address, Address]) -> Binding:
    (aor, contact, expires_at, q, call_id, cseq, instance, reg_id, path,
     transport, lip, lport, rip, rport, conn_id, ua, registered_at, nat) = row  # fmt: skip
    local = (lip, lport)
    return Binding(
        aor=sys.intern(aor),
        contact=contact,
        expires_at=expires_at,
        q=q,
        call_id=call_id,
        cseq=cseq,
        instance=instance,
        reg_id=reg_id,
        path=tuple(json.loads(path)) if path else (),
        transport=sys.intern(transport),
        local=locals_.setdefault(local, local),
        remote=(rip, rport),
        conn_id=conn_id,
        user_agent=None if ua is None else sys.intern(ua),
        registered_at=registered_at,
        nat=bool(nat),
    )


class _SQLiteFile:
    """The write-through copy of a :class:`MemoryLocationStore` (one row per binding)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            for stmt in _SCHEMA:
                self.db.execute(stmt)
            have = {row[1] for row in self.db.execute("PRAGMA table_info(bindings)")}
            for column, stmt in _ADDED.items():
                if column not in have:
                    self.db.execute(stmt)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open location store {path}: {exc}") from exc

    def load(self, now: float) -> list[Binding]:
        """Every row still live at ``now``; expired rows are deleted."""
        locals_: dict[Address, Address] = {}
        try:
            self._write([("DELETE FROM bindings WHERE expires_at <= ?", [(now,)])])
            rows = self.db.execute(f"SELECT {_COLUMNS} FROM bindings ORDER BY rowid")
            return [_binding(row, locals_) for row in rows]
        except (sqlite3.Error, ValueError, TypeError) as exc:
            raise StoreError(f"cannot load location store {self.path}: {exc}") from exc

    def replace(self, aor: str, bindings: Iterable[Binding]) -> None:
        self._write(
            [
                ("DELETE FROM bindings WHERE aor = ?", [(aor,)]),
                (_INSERT, [_row(b) for b in bindings]),
            ]
        )

    def delete_expired(self, now: float) -> None:
        self._write([("DELETE FROM bindings WHERE expires_at <= ?", [(now,)])])

    def _write(self, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        """Run the statements in one transaction; roll back and raise StoreError on error."""
        db = self.db
        try:
            db.execute("BEGIN")
            try:
                for sql, params in statements:
                    if params:
                        db.executemany(sql, params)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"location store {self.path}: {exc}") from exc

    def close(self) -> None:
        self.db.close()


class MemoryLocationStore:
    """Bindings in a dict keyed by AOR, with an expiry heap and optional SQLite persistence.

    With ``persist`` the file is opened (and created) now, its bindings still live at
    ``clock()`` are loaded and expired rows deleted. Raises :class:`StoreError` when the
    file cannot be opened or read, and from ``replace``/``expire`` when a write fails (the
    memory copy is then left unchanged).
    """

    def __init__(
        self, persist: Path | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._data: dict[str, tuple[Binding, ...]] = {}
        self._heap: list[tuple[float, str]] = []
        self._count = 0
        self._file = None if persist is None else _SQLiteFile(persist)
        if self._file is not None:
            self._load(self._file.load(clock()))

    def _load(self, bindings: list[Binding]) -> None:
        grouped: dict[str, list[Binding]] = {}
        for b in bindings:
            grouped.setdefault(b.aor, []).append(b)
        self._data = {aor: tuple(bs) for aor, bs in grouped.items()}
        self._count = len(bindings)
        self._heap = [(b.expires_at, b.aor) for b in bindings]
        heapq.heapify(self._heap)

    async def lookup(self, aor: str) -> list[Binding]:
        """Every stored binding of ``aor`` (those past expiry but not yet swept included)."""
        return list(self._data.get(aor, ()))

    async def replace(self, aor: str, bindings: list[Binding]) -> None:
        """Set the bindings of ``aor`` (written through first when persistent)."""
        if self._file is not None:
            self._file.replace(aor, bindings)
        old = self._data.get(aor, ())
        if bindings:
            self._data[aor] = tuple(bindings)
        else:
            self._data.pop(aor, None)
        self._count += len(bindings) - len(old)
        known = {id(b) for b in old} if old else ()
        for b in bindings:
            if id(b) not in known:  # unchanged bindings already have their heap entry
                heapq.heappush(self._heap, (b.expires_at, aor))
        if len(self._heap) > 2 * self._count + 1024:
            self._rebuild_heap()

    async def expire(self, now: float) -> list[Binding]:
        """Remove and return the bindings with ``expires_at <= now`` (lazy heap deletion)."""
        heap = self._heap
        removed: list[Binding] = []
        while heap and heap[0][0] <= now:
            _, aor = heapq.heappop(heap)
            current = self._data.get(aor)
            if current is None:
                continue
            keep = tuple(b for b in current if b.expires_at > now)
            if len(keep) == len(current):
                continue  # stale entry: the binding was refreshed or removed
            removed.extend(b for b in current if b.expires_at <= now)
            if keep:
                self._data[aor] = keep
            else:
                del self._data[aor]
        self._count -= len(removed)
        if removed and self._file is not None:
            # A failed delete is harmless: expired rows are dropped at load, and the next
            # expire deletes every row due by then.
            with contextlib.suppress(StoreError):
                self._file.delete_expired(now)
        return removed

    async def count(self) -> int:
        """Number of stored bindings."""
        return self._count

    async def aors(self) -> list[str]:
        """Every AOR with at least one stored binding."""
        return list(self._data)

    def close(self) -> None:
        """Close the SQLite file (nothing to do without persistence)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _rebuild_heap(self) -> None:
        self._heap = [(b.expires_at, aor) for aor, bs in self._data.items() for b in bs]
        heapq.heapify(self._heap)
