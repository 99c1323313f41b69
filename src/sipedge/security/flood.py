"""Rate detection per source: request floods (like pike) and repeated auth failures.

Flood, theory of operation. Time is cut into buckets of ``sampling_time_unit`` seconds on
one grid shared by all sources (pike's timer). Each source keeps two counters, this bucket
and the previous one, and a request is over the limit when the sliding estimate

    count(this bucket) + count(previous bucket) * (1 - elapsed part of this bucket)

reaches ``reqs_density_per_unit + 1``: a source may send ``density`` requests in any window of
one unit, give or take the approximation (pike itself allows between 1x and 3x). That is
O(1) per request and three numbers per source; sources live in an LRU of ``max_sources``
(the least recently seen is forgotten first), so memory is bounded under a spoofed-source
flood. Defaults follow pike: 2 s, 30 requests.

Auth failures (as fail2ban would): ``max_failures`` failures from one source within
``window`` seconds ban that source; ``user_max_failures`` failures for one user from any
sources within ``user_window`` ban every source that failed for that user in the window
(a distributed guess of one password), and any further source that fails for that user
while the count stays over the limit.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["AuthFailSettings", "AuthFailures", "FloodDetector", "FloodSettings"]

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class FloodSettings:
    """Pike-like flood limits; ``ban_seconds`` is how long a flooding source is banned."""

    sampling_time_unit: float = 2.0
    reqs_density_per_unit: int = 30
    ban_seconds: float = 300.0
    max_sources: int = 100_000


class _Rate:
    __slots__ = ("bucket", "cur", "prev")

    def __init__(self, bucket: int) -> None:
        self.bucket = bucket
        self.cur = 0
        self.prev = 0


class FloodDetector:
    """Counts requests per source; :meth:`hit` says when a source goes over the limit."""

    def __init__(self, settings: FloodSettings | None = None) -> None:
        self.settings = s = settings or FloodSettings()
        if s.sampling_time_unit <= 0 or s.reqs_density_per_unit < 1 or s.max_sources < 1:
            raise ValueError("flood limits must be positive")
        self._unit = s.sampling_time_unit
        self._density = s.reqs_density_per_unit
        self._sources: OrderedDict[str, _Rate] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sources)

    def hit(self, ip: str, now: float) -> bool:
        """Count one request from ``ip`` at ``now``; True when the source is over the limit."""
        pos = now / self._unit
        bucket = int(pos // 1)
        sources = self._sources
        rate = sources.get(ip)
        if rate is None:
            rate = sources[ip] = _Rate(bucket)
            if len(sources) > self.settings.max_sources:
                sources.popitem(last=False)
        else:
            sources.move_to_end(ip)
            if bucket != rate.bucket:
                rate.prev = rate.cur if bucket == rate.bucket + 1 else 0
                rate.cur = 0
                rate.bucket = bucket
        rate.cur += 1
        # Over when the estimate reaches one request past the density: a steady rate of
        # exactly ``density`` per unit (estimate up to density + a fraction) never trips.
        estimate = rate.cur + rate.prev * (1.0 - (pos - bucket))
        return estimate >= self._density + 1

    def forget(self, ip: str) -> None:
        """Drop the counters of ``ip`` (e.g. once it is banned)."""
        self._sources.pop(ip, None)


@dataclass(frozen=True, slots=True)
class AuthFailSettings:
    """Auth-failure ban limits (per source and per user across sources)."""

    max_failures: int = 5
    window: float = 60.0
    ban_seconds: float = 900.0
    user_max_failures: int = 20
    user_window: float = 300.0
    max_tracked: int = 100_000  # sources and users each
    max_sources_per_user: int = 64


class _Window:
    """The last ``limit`` event times; full within ``span`` seconds means over the limit."""

    __slots__ = ("span", "times")

    def __init__(self, limit: int, span: float) -> None:
        self.times: deque[float] = deque(maxlen=limit)
        self.span = span

    def add(self, now: float) -> bool:
        t = self.times
        t.append(now)
        return len(t) == t.maxlen and now - t[0] < self.span


class _UserRecord:
    __slots__ = ("sources", "window")

    def __init__(self, window: _Window) -> None:
        self.window = window
        self.sources: OrderedDict[str, float] = OrderedDict()  # source -> last failure


class AuthFailures:
    """Tracks failed authentications; :meth:`failed` returns the sources to ban."""

    def __init__(self, settings: AuthFailSettings | None = None) -> None:
        self.settings = s = settings or AuthFailSettings()
        if min(s.max_failures, s.user_max_failures, s.max_tracked) < 1:
            raise ValueError("auth-failure limits must be positive")
        self._by_source: OrderedDict[str, _Window] = OrderedDict()
        self._by_user: OrderedDict[str, _UserRecord] = OrderedDict()

    def failed(self, ip: str, username: str | None, now: float) -> list[tuple[str, str]]:
        """Record one failure; return ``(source, reason)`` pairs to ban now.

        ``reason`` is ``auth`` (too many failures from that source) or ``auth-user`` (too
        many failures for ``username`` from many sources). A malformed Authorization is a
        failure too (pass ``username=None`` when it could not be read).
        """
        s = self.settings
        out: list[tuple[str, str]] = []
        win = _lru_get(self._by_source, ip)
        if win is None:
            win = _lru_put(self._by_source, ip, _Window(s.max_failures, s.window), s.max_tracked)
        if win.add(now):
            del self._by_source[ip]
            out.append((ip, "auth"))
        if username is not None:
            out += self._user_failed(ip, username, now, done={ip for ip, _ in out})
        return out

    def _user_failed(
        self, ip: str, username: str, now: float, done: set[str]
    ) -> list[tuple[str, str]]:
        s = self.settings
        rec = _lru_get(self._by_user, username)
        if rec is None:
            window = _Window(s.user_max_failures, s.user_window)
            rec = _lru_put(self._by_user, username, _UserRecord(window), s.max_tracked)
        rec.sources[ip] = now
        rec.sources.move_to_end(ip)
        if len(rec.sources) > s.max_sources_per_user:
            rec.sources.popitem(last=False)
        if not rec.window.add(now):
            return []
        recent = [src for src, t in rec.sources.items() if now - t < s.user_window]
        for src in recent:
            del rec.sources[src]
        return [(src, "auth-user") for src in recent if src not in done]

    def forget(self, ip: str) -> None:
        """Drop the per-source failure count of ``ip``."""
        self._by_source.pop(ip, None)


def _lru_get(d: OrderedDict[K, V], key: K) -> V | None:
    value = d.get(key)
    if value is not None:
        d.move_to_end(key)
    return value


def _lru_put(d: OrderedDict[K, V], key: K, value: V, limit: int) -> V:
    d[key] = value
    if len(d) > limit:
        d.popitem(last=False)
    return value
