"""Asynchronous RFC 3263 server location over dnspython, with a bounded TTL cache.

:class:`Resolver` turns a :class:`~sipedge.sip.locate.Hop` into the list of
:class:`~sipedge.sip.locate.Target` to try, in order: NAPTR (no transport, no port) ->
SRV -> A/AAAA, while a numeric host needs no DNS at all (RFC 3263 §4.1, §4.2).
:class:`~sipedge.sip.locate.TargetIterator` (re-exported here) walks that list for failover.

Failure policy: :meth:`Resolver.resolve` never raises on DNS trouble. A name that does not
exist, has no usable records, or whose servers time out or fail yields no targets, so the
result is an empty list and the proxy answers as for an unreachable destination. Only
building a :class:`Resolver` can raise :class:`ResolveError` (no usable system resolver
configuration).

Caching: answers are cached per (name, rdtype) for their TTL (capped by ``max_ttl``);
NXDOMAIN and NODATA are cached for the SOA negative TTL (RFC 2308 §5), capped by
``max_negative_ttl``; timeouts and server failures are not cached. The cache holds at most
``max_entries`` entries, evicting the least recently used. Concurrent look-ups of one
(name, rdtype) share a single query.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.rdtypes.IN.NAPTR
import dns.rdtypes.IN.SRV
import dns.resolver

from sipedge.sip.errors import ParseError
from sipedge.sip.locate import (
    Hop,
    NaptrRecord,
    SrvRecord,
    Target,
    TargetIterator,
    order_srv,
    plan_hop,
    select_naptr,
)

__all__ = ["ResolveError", "Resolver", "TargetIterator"]

Record = str | SrvRecord | NaptrRecord
_FAMILIES = ("A", "AAAA")


class ResolveError(Exception):
    """The resolver could not be set up (no usable nameserver configuration)."""


@dataclass(frozen=True, slots=True)
class _Entry:
    expires: float
    records: tuple[Record, ...]  # empty: a cached negative answer


class _Cache:
    """(name, rdtype) -> records until expiry; least recently used evicted past ``size``."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[str, str], now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple[str, str], entry: _Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


class Resolver:
    """RFC 3263 resolver: NAPTR -> SRV -> A/AAAA with caching.

    ``nameservers``/``port`` point at specific servers (else /etc/resolv.conf is read);
    ``timeout`` bounds each try against one server and ``lifetime`` a whole query, in
    seconds. ``families`` lists the address record types to ask for, preferred first
    (``("A", "AAAA")``, ``("AAAA", "A")``, or just one). ``rand`` (floats in [0, 1)) drives
    the RFC 2782 weighted choice and ``clock`` (seconds, monotonic) the cache expiry.
    """

    def __init__(
        self,
        *,
        nameservers: Sequence[str] | None = None,
        port: int = 53,
        timeout: float = 2.0,
        lifetime: float = 5.0,
        families: Sequence[str] = _FAMILIES,
        max_entries: int = 4096,
        max_ttl: float = 3600.0,
        max_negative_ttl: float = 300.0,
        default_negative_ttl: float = 30.0,
        rand: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not families or any(f not in _FAMILIES for f in families):
            raise ValueError(f"families must be drawn from {_FAMILIES}, got {families!r}")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._dns = _make_dns(nameservers, port, timeout, lifetime)
        self._lifetime = lifetime
        self._families = tuple(dict.fromkeys(families))
        self._cache = _Cache(max_entries)
        self._max_ttl = max_ttl
        self._max_negative_ttl = max_negative_ttl
        self._default_negative_ttl = default_negative_ttl
        self._rand = rand if rand is not None else random.Random().random
        self._clock = clock
        self._inflight: dict[tuple[str, str], asyncio.Task[tuple[Record, ...]]] = {}

    @property
    def cache_size(self) -> int:
        """Number of cached (name, rdtype) entries, positive and negative."""
        return len(self._cache)

    def clear_cache(self) -> None:
        """Forget every cached answer."""
        self._cache.clear()

    async def resolve(self, hop: Hop) -> list[Target]:
        """Targets for ``hop`` in try order; ``[]`` when nothing resolves (RFC 3263 §4)."""
        numeric = hop.numeric_target()
        if numeric is not None or hop.numeric:
            return [numeric] if numeric is not None else []
        queries: list[tuple[str, str]] = []
        if hop.needs_naptr:
            queries = select_naptr(await self.naptr(hop.target), hop)
        if not queries:
            queries = hop.srv_queries()
        found, targets = await self._srv_targets(queries, hop.target)
        if not found:  # §4.2: A/AAAA only when no SRV record exists ("." counts as one)
            targets = await self._fallback_targets(hop)
        return list(dict.fromkeys(targets))

    async def resolve_uri(
        self,
        scheme: str,
        host: str,
        port: int | str | None = None,
        transport: str | None = None,
        maddr: str | None = None,
        *,
        oversize: bool = False,
    ) -> list[Target]:
        """:func:`~sipedge.sip.locate.plan_hop` then :meth:`resolve`.

        Raises :class:`~sipedge.sip.errors.ParseError` for an unusable URI, as plan_hop does.
        """
        hop = plan_hop(scheme, host, port, transport, maddr, oversize=oversize)
        return await self.resolve(hop)

    async def iterate(self, hop: Hop) -> TargetIterator:
        """A :class:`TargetIterator` over :meth:`resolve` for failover (RFC 3263 §4.3)."""
        return TargetIterator(await self.resolve(hop))

    async def addresses(self, name: str) -> list[str]:
        """IP addresses of ``name``, families in the configured preference order."""
        found = await asyncio.gather(*(self._lookup(name, rdtype) for rdtype in self._families))
        return [r for records in found for r in records if isinstance(r, str)]

    async def srv(self, name: str) -> list[SrvRecord]:
        """The SRV records at ``name``, unordered."""
        return [r for r in await self._lookup(name, "SRV") if isinstance(r, SrvRecord)]

    async def naptr(self, name: str) -> list[NaptrRecord]:
        """The NAPTR records at ``name``, unordered."""
        return [r for r in await self._lookup(name, "NAPTR") if isinstance(r, NaptrRecord)]

    async def _srv_targets(
        self, queries: list[tuple[str, str]], domain: str
    ) -> tuple[bool, list[Target]]:
        """(any SRV record found, targets from the SRV sets of ``queries`` in query order)."""
        sets = await asyncio.gather(*(self.srv(name) for _, name in queries))
        ordered = [
            (transport, rec)
            for (transport, _), records in zip(queries, sets, strict=True)
            for rec in order_srv(records, self._rand)
        ]
        hosts = list(dict.fromkeys(rec.target for _, rec in ordered))
        found = await asyncio.gather(*(self._host_addresses(h) for h in hosts))
        addresses = dict(zip(hosts, found, strict=True))
        targets = [
            Target(transport, ip, rec.port, domain)
            for transport, rec in ordered
            for ip in addresses[rec.target]
        ]
        return any(sets), targets

    async def _fallback_targets(self, hop: Hop) -> list[Target]:
        """A/AAAA of the TARGET at the fallback transport and port (RFC 3263 §4.2)."""
        fallback = hop.fallback()
        if fallback is None:
            return []
        transport, port = fallback
        return [Target(transport, ip, port, hop.target) for ip in await self.addresses(hop.target)]

    async def _host_addresses(self, host: str) -> list[str]:
        """Addresses of an SRV target; a numeric target (a zone error) is taken as is."""
        try:
            hop = plan_hop("sip", host, 5060)
        except ParseError:  # a malformed SRV target is skipped, not raised
            return []
        return [hop.target] if hop.numeric else await self.addresses(hop.target)

    async def _lookup(self, name: str, rdtype: str) -> tuple[Record, ...]:
        """Cached records of (name, rdtype); one query in flight per key."""
        key = (name.rstrip(".").lower(), rdtype)
        entry = self._cache.get(key, self._clock())
        if entry is not None:
            return entry.records
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._query(key))
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def _query(self, key: tuple[str, str]) -> tuple[Record, ...]:
        """Ask the servers, fill the cache, and turn every DNS failure into ``()``."""
        name, rdtype = key
        try:
            qname = dns.name.from_text(name + ".")
            # dnspython's retry back-off can overrun its lifetime; hold it to the bound.
            async with asyncio.timeout(self._lifetime):
                answer = await self._dns.resolve(
                    qname, rdtype, search=False, raise_on_no_answer=False
                )
        except dns.resolver.NXDOMAIN as exc:
            responses = list(exc.kwargs.get("responses", {}).values())
            self._store_negative(key, responses[0] if responses else None)
            return ()
        except (dns.exception.DNSException, OSError, ValueError, TimeoutError):
            return ()  # timeout, SERVFAIL, refused, unreachable: not cached
        if answer.rrset is None:
            self._store_negative(key, answer.response)
            return ()
        records = tuple(_convert(rdata) for rdata in answer.rrset)
        ttl = min(float(answer.chaining_result.minimum_ttl), self._max_ttl)
        self._cache.put(key, _Entry(self._clock() + ttl, records))
        return records

    def _store_negative(self, key: tuple[str, str], response: dns.message.Message | None) -> None:
        """Cache a negative answer for its SOA-derived TTL (RFC 2308 §5)."""
        ttl = _soa_negative_ttl(response)
        if ttl is None:
            ttl = self._default_negative_ttl
        self._cache.put(key, _Entry(self._clock() + min(ttl, self._max_negative_ttl), ()))


def _make_dns(
    nameservers: Sequence[str] | None, port: int, timeout: float, lifetime: float
) -> dns.asyncresolver.Resolver:
    try:
        resolver = dns.asyncresolver.Resolver(configure=nameservers is None)
        if nameservers is not None:
            resolver.nameservers = list(nameservers)
    except (dns.exception.DNSException, OSError, ValueError) as exc:
        raise ResolveError(f"no usable DNS configuration: {exc}") from exc
    resolver.port = port
    resolver.timeout = timeout
    resolver.lifetime = lifetime
    resolver.cache = None  # this module caches, with its own clock
    return resolver


def _soa_negative_ttl(response: dns.message.Message | None) -> float | None:
    """min(SOA TTL, SOA MINIMUM) from the authority section, per RFC 2308 §5."""
    if response is None:
        return None
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset) > 0:
            return float(min(rrset.ttl, rrset[0].minimum))
    return None


def _convert(rdata: object) -> Record:
    """dnspython rdata -> plain record (str address, SrvRecord or NaptrRecord)."""
    if isinstance(rdata, dns.rdtypes.IN.SRV.SRV):
        return SrvRecord(rdata.priority, rdata.weight, rdata.port, _name(rdata.target))
    if isinstance(rdata, dns.rdtypes.IN.NAPTR.NAPTR):
        return NaptrRecord(
            rdata.order,
            rdata.preference,
            rdata.flags.decode("ascii", "replace"),
            rdata.service.decode("ascii", "replace"),
            rdata.regexp.decode("ascii", "replace"),
            _name(rdata.replacement),
        )
    return str(getattr(rdata, "address", ""))


def _name(name: dns.name.Name) -> str:
    """A domain name as lower-case text without the final dot; the root becomes ``""``."""
    return "" if name == dns.name.root else name.to_text(omit_final_dot=True).lower()
