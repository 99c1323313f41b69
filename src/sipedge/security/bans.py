"""Temporary bans of source addresses: the :class:`BanList` boundary and its memory default.

:meth:`BanList.is_banned` is synchronous and O(1) (one dict look-up) so that a transport
can drop a banned source's datagram before parsing it. ``ban`` and ``unban`` are coroutines
so that a shared implementation (Redis) can publish the ban to other nodes; such an
implementation keeps a local mirror for ``is_banned`` and ``list``.

Every ban is logged in one line that a fail2ban filter can match (:func:`ban_line`)::

    sipedge BAN ip=203.0.113.7 reason=flood seconds=300
    sipedge UNBAN ip=203.0.113.7

e.g. ``failregex = sipedge BAN ip=<HOST> reason=\\S+ seconds=\\d+``. ``reason`` is a single
token (``flood``, ``auth``, ``auth-user``, ``rule:<name>``, ``manual``...).
"""

from __future__ import annotations

import builtins
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Ban", "BanList", "MemoryBanList", "ban_line", "log_token", "unban_line"]

log = logging.getLogger("sipedge.security")

_NOT_TOKEN = re.compile(r"[^A-Za-z0-9_.:@/+-]")


def log_token(text: str) -> str:
    """``text`` as one safe log token: no spaces or line ends a peer could use to forge a
    ``sipedge BAN`` line (anything outside ``[A-Za-z0-9_.:@/+-]`` becomes ``_``)."""
    return _NOT_TOKEN.sub("_", text) or "-"


def ban_line(ip: str, reason: str, seconds: float) -> str:
    """The one-line log record of a ban: ``sipedge BAN ip=... reason=... seconds=...``."""
    return f"sipedge BAN ip={log_token(ip)} reason={log_token(reason)} seconds={round(seconds)}"


def unban_line(ip: str) -> str:
    """The one-line log record of an unban: ``sipedge UNBAN ip=...``."""
    return f"sipedge UNBAN ip={log_token(ip)}"


@dataclass(frozen=True, slots=True)
class Ban:
    """One active ban; ``until`` is on the same clock as the ``now`` arguments."""

    ip: str
    until: float
    reason: str


@runtime_checkable
class BanList(Protocol):
    """Where bans live (ARCHITECTURE.md §4.9). Addresses are compared as given: pass the
    same normalised text (``normalize_ip``) to every method."""

    async def ban(self, ip: str, seconds: float, reason: str, *, now: float | None = None) -> None:
        """Ban ``ip`` for ``seconds`` (a longer running ban is kept); log :func:`ban_line`."""
        ...

    async def unban(self, ip: str) -> bool:
        """Lift the ban on ``ip``; return whether there was one."""
        ...

    def is_banned(self, ip: str, now: float) -> bool:
        """Whether ``ip`` is banned at ``now``: synchronous, O(1)."""
        ...

    def list(self, now: float | None = None) -> builtins.list[Ban]:
        """The bans active at ``now``, soonest expiry first."""
        ...


class MemoryBanList:
    """The embedded :class:`BanList`: a dict of address to expiry time.

    Expired entries are removed lazily (on ``list``, and by a sweep when the dict reaches
    ``max_entries``; if it is still full, the entries expiring soonest are dropped).
    ``counters``: ``bans.added``, ``bans.extended``, ``bans.removed``, ``bans.evicted``.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, max_entries: int = 100_000
    ) -> None:
        self._clock = clock
        self._max = max_entries
        self._until: dict[str, float] = {}
        self._reason: dict[str, str] = {}
        self.counters: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._until)

    async def ban(self, ip: str, seconds: float, reason: str, *, now: float | None = None) -> None:
        """Ban ``ip`` until ``now + seconds`` (keeping a later expiry); log the ban line."""
        self.ban_now(ip, seconds, reason, self._clock() if now is None else now)

    def ban_now(
        self, ip: str, seconds: float, reason: str, now: float, *, log_line: bool = True
    ) -> None:
        """The synchronous body of :meth:`ban`; ``log_line=False`` skips the fail2ban line
        (a ban another node made and logged, mirrored here)."""
        until = now + seconds
        old = self._until.get(ip)
        if old is not None and old > now:
            if old >= until:
                return
            self.counters["bans.extended"] += 1
        else:
            if len(self._until) >= self._max:
                self._make_room(now)
            self.counters["bans.added"] += 1
        self._until[ip] = until
        self._reason[ip] = reason
        if log_line:
            log.warning("%s", ban_line(ip, reason, seconds))

    def _make_room(self, now: float) -> None:
        self._sweep(now)
        excess = len(self._until) - self._max + 1
        if excess > 0:
            for ip in sorted(self._until, key=self._until.__getitem__)[:excess]:
                self._forget(ip)
                self.counters["bans.evicted"] += 1

    def _sweep(self, now: float) -> None:
        for ip in [ip for ip, until in self._until.items() if until <= now]:
            self._forget(ip)

    def _forget(self, ip: str) -> None:
        del self._until[ip]
        self._reason.pop(ip, None)

    async def unban(self, ip: str) -> bool:
        """Lift the ban on ``ip`` (logged); return whether there was one."""
        return self.unban_now(ip)

    def unban_now(self, ip: str, *, log_line: bool = True) -> bool:
        """The synchronous body of :meth:`unban` (``log_line`` as for :meth:`ban_now`)."""
        if ip not in self._until:
            return False
        self._forget(ip)
        self.counters["bans.removed"] += 1
        if log_line:
            log.warning("%s", unban_line(ip))
        return True

    def is_banned(self, ip: str, now: float) -> bool:
        """Whether ``ip`` is banned at ``now`` (one dict look-up)."""
        until = self._until.get(ip)
        return until is not None and now < until

    def list(self, now: float | None = None) -> builtins.list[Ban]:
        """The active bans, soonest expiry first (expired ones are removed)."""
        now = self._clock() if now is None else now
        self._sweep(now)
        bans = [Ban(ip, until, self._reason.get(ip, "")) for ip, until in self._until.items()]
        return sorted(bans, key=lambda b: b.until)
