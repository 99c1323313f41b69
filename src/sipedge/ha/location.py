""":class:`RedisLocationStore`: the registrar's bindings in Redis, shared by every node.

Layout under the key prefix ``P``:

* ``P loc:<aor>``: the AOR's bindings, one compact JSON array (see :func:`encode`);
* ``P loc:exp``: sorted set, member AOR, score the earliest ``expires_at`` of its bindings;
* ``P loc:n``: hash AOR -> number of bindings; ``P loc:total``: their sum.

Every write goes through one Lua script, so an AOR's value, its expiry score and the counts
change together (RFC 3261 §10.3 step 7: all binding updates of a REGISTER become visible
at once or not at all). ``expire`` is a compare-and-set: it rewrites an AOR only if the
value is still the one it read, so two nodes expiring at once, or a REGISTER arriving on
another node meanwhile, never lose a binding.

A write that fails (Redis unreachable or too slow) raises
:class:`~sipedge.registrar.store.StoreError`, which the registrar answers with 500 (§10.3);
``expire`` alone does not raise (it removes nothing until Redis is back).
A read that fails is answered from a local copy of what this node last read or wrote, so
calls to users it knows keep being routed during an outage.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from typing import Any, cast

from ..registrar.binding import Binding
from ..registrar.store import StoreError
from .client import REDIS_ERRORS, RedisLink

__all__ = ["RedisLocationStore", "decode", "encode"]

log = logging.getLogger("sipedge.ha")

_REPLACE = """
if ARGV[5] == '1' then
  local cur = redis.call('GET', KEYS[1])
  if cur == false then cur = '' end
  if cur ~= ARGV[6] then return -1 end
end
local old = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
local n = tonumber(ARGV[3])
if n > 0 then
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
  redis.call('HSET', KEYS[3], ARGV[1], n)
else
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
end
return redis.call('INCRBY', KEYS[4], n - old)
"""

_BATCH = 500


def encode(bindings: list[Binding]) -> str:
    """The stored text of an AOR's bindings: a JSON array of positional arrays (the AOR is
    the key, so it is not repeated); about 200 bytes for a typical UDP binding. The last
    field, the NAT flag, may be missing from records written by older versions."""
    rows = [
        [
            b.contact, b.expires_at, b.q, b.call_id, b.cseq, b.instance, b.reg_id,
            list(b.path), b.transport, b.local[0], b.local[1], b.remote[0], b.remote[1],
            b.conn_id, b.user_agent, b.registered_at, 1 if b.nat else 0,
        ]
        for b in bindings
    ]  # fmt: skip
    return json.dumps(rows, separators=(",", ":"), ensure_ascii=False)


def decode(aor: str, text: str | bytes) -> list[Binding]:
    """The inverse of :func:`encode`; raises ``ValueError`` on text it did not write."""
    rows = json.loads(text)
    if not isinstance(rows, list):
        raise ValueError("bindings are not a JSON array")
    aor = sys.intern(aor)
    try:
        return [_binding(aor, row) for row in rows]
    except (TypeError, IndexError, KeyError) as exc:
        raise ValueError(f"malformed binding: {exc}") from exc


def _binding(aor: str, row: list[Any]) -> Binding:
    (contact, expires_at, q, call_id, cseq, instance, reg_id, path, transport,
     lip, lport, rip, rport, conn_id, ua, registered_at) = row[:16]  # fmt: skip
    if len(row) < 16:
        raise IndexError(f"{len(row)} fields")
    return Binding(
        aor=aor,
        contact=str(contact),
        expires_at=float(expires_at),
        q=float(q),
        call_id=str(call_id),
        cseq=int(cseq),
        instance=instance,
        reg_id=reg_id,
        path=tuple(str(p) for p in path),
        transport=sys.intern(str(transport)),
        local=(str(lip), int(lport)),
        remote=(str(rip), int(rport)),
        conn_id=conn_id,
        user_agent=None if ua is None else sys.intern(str(ua)),
        registered_at=float(registered_at),
        nat=len(row) > 16 and bool(row[16]),  # 16 fields: written before NAT flags
    )


class RedisLocationStore:
    """A :class:`~sipedge.registrar.store.LocationStore` in Redis (see the module text).

    ``cache_size`` bounds the local copy used for reads while Redis is unreachable.
    """

    def __init__(self, link: RedisLink, *, cache_size: int = 100_000) -> None:
        self.link = link
        self._replace = link.redis.register_script(_REPLACE)
        self._exp = link.key("loc", "exp")
        self._counts = link.key("loc", "n")
        self._total = link.key("loc", "total")
        self._cache: dict[str, list[Binding]] = {}
        self._cache_size = cache_size

    def _key(self, aor: str) -> str:
        return self.link.key("loc", aor)

    async def lookup(self, aor: str) -> list[Binding]:
        """The stored bindings of ``aor``; this node's last copy while Redis is down."""
        try:
            raw = await self.link.redis.get(self._key(aor))
        except REDIS_ERRORS as exc:
            self.link.failed("location lookup", exc)
            cached = self._cache.get(aor)
            if cached is None:
                raise StoreError(f"redis unreachable: {exc!r}") from exc
            self.link.counters["location.cache_reads"] += 1
            return list(cached)
        self.link.succeeded()
        bindings = self._decode(aor, raw)
        self._remember(aor, bindings)
        return bindings

    async def lookup_many(self, aors: Iterable[str]) -> dict[str, list[Binding]]:
        """The stored bindings of several AORs in one round trip per 500 (``MGET``): what a
        periodic pass over every binding (NAT keepalives) reads instead of one ``GET`` per
        AOR. AORs without bindings are left out. While Redis is down: this node's copies."""
        wanted = list(dict.fromkeys(aors))
        out: dict[str, list[Binding]] = {}
        try:
            for i in range(0, len(wanted), _BATCH):
                chunk = wanted[i : i + _BATCH]
                values = await self.link.redis.mget([self._key(a) for a in chunk])
                for aor, raw in zip(chunk, values, strict=True):
                    bindings = self._decode(aor, raw)
                    self._remember(aor, bindings)
                    if bindings:
                        out[aor] = bindings
        except REDIS_ERRORS as exc:
            self.link.failed("location lookup", exc)
            self.link.counters["location.cache_reads"] += 1
            for aor in wanted:
                if aor not in out and aor in self._cache:
                    out[aor] = list(self._cache[aor])
            return out
        self.link.succeeded()
        return out

    async def all_bindings(self) -> dict[str, list[Binding]]:
        """Every stored binding by AOR: ``aors`` then :meth:`lookup_many` (two commands
        per 500 AORs). Raises StoreError when Redis is down and nothing was read."""
        return await self.lookup_many(await self.aors())

    async def replace(self, aor: str, bindings: list[Binding]) -> None:
        """Set the bindings of ``aor`` atomically (confirmed by Redis before returning)."""
        await self._write(aor, bindings, None)
        self._remember(aor, bindings)

    async def expire(self, now: float) -> list[Binding]:
        """Remove and return the bindings with ``expires_at <= now`` (compare-and-set per
        AOR; an AOR changed meanwhile is left to the next call). While Redis is unreachable
        this returns what it removed so far, [] at worst, without raising: the periodic
        caller catches up once Redis is back, and the outage is alarmed once."""
        removed: list[Binding] = []
        try:
            while True:
                due = await self.link.redis.zrangebyscore(
                    self._exp, "-inf", now, start=0, num=_BATCH
                )
                for member in due:
                    removed.extend(await self._expire_aor(_text(cast(bytes, member)), now))
                if len(due) < _BATCH:
                    break
        except REDIS_ERRORS as exc:
            self.link.failed("location expire", exc)
            return removed
        self.link.succeeded()
        return removed

    async def _expire_aor(self, aor: str, now: float) -> list[Binding]:
        raw = await self.link.redis.get(self._key(aor))
        current = self._decode(aor, raw)
        keep = [b for b in current if b.expires_at > now]
        gone = [b for b in current if b.expires_at <= now]
        expected = "" if raw is None else _text(raw)
        done = await self._run(aor, keep, expected)
        if done == -1:
            return []  # changed by someone else since we read it
        self._remember(aor, keep)
        return gone

    async def count(self) -> int:
        """Number of stored bindings (all nodes)."""
        try:
            value = await self.link.redis.get(self._total)
        except REDIS_ERRORS as exc:
            self.link.failed("location count", exc)
            raise StoreError(f"redis unreachable: {exc!r}") from exc
        self.link.succeeded()
        return int(value or 0)

    async def aors(self) -> list[str]:
        """Every AOR with at least one stored binding (all nodes)."""
        try:
            members = await self.link.redis.hkeys(self._counts)
        except REDIS_ERRORS as exc:
            self.link.failed("location aors", exc)
            raise StoreError(f"redis unreachable: {exc!r}") from exc
        self.link.succeeded()
        return [_text(m) for m in members]

    def close(self) -> None:
        """Nothing to do: the connection belongs to the :class:`RedisLink`."""

    # -- internals -----------------------------------------------------------------------
    async def _write(self, aor: str, bindings: list[Binding], expected: str | None) -> int:
        try:
            done = await self._run(aor, bindings, expected)
        except REDIS_ERRORS as exc:
            self.link.failed("location write", exc)
            raise StoreError(f"redis unreachable: {exc!r}") from exc
        self.link.succeeded()
        return done

    async def _run(self, aor: str, bindings: list[Binding], expected: str | None) -> int:
        first = min((b.expires_at for b in bindings), default=0.0)
        args: list[str | int] = [
            aor,
            encode(bindings) if bindings else "",
            len(bindings),
            repr(first),
            "0" if expected is None else "1",
            expected or "",
        ]
        keys = [self._key(aor), self._exp, self._counts, self._total]
        return int(await self._replace(keys=keys, args=args))

    def _decode(self, aor: str, raw: str | bytes | None) -> list[Binding]:
        if raw is None:
            return []
        try:
            return decode(aor, raw)
        except ValueError as exc:
            self.link.counters["location.bad_records"] += 1
            log.error("unreadable bindings of %s in redis, ignored: %s", aor, exc)
            return []

    def _remember(self, aor: str, bindings: list[Binding]) -> None:
        cache = self._cache
        if not bindings:
            cache.pop(aor, None)
            return
        if aor not in cache and len(cache) >= self._cache_size:
            cache.pop(next(iter(cache)))  # oldest insertion first
        cache[aor] = list(bindings)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
