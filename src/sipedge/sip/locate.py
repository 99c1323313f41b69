"""Locating SIP servers: the pure decisions of RFC 3263 (no DNS traffic here).

:func:`plan_hop` turns the parts of a next-hop URI into a :class:`Hop`: the TARGET, the
transport when it is already decided (RFC 3263 §4.1), the port when it is explicit, and
which look-ups remain (NAPTR, SRV, A/AAAA). The DNS side (``sipedge.transport.dns``) runs
those look-ups and feeds the records back through :func:`select_naptr` and
:func:`order_srv`; :class:`TargetIterator` then walks the resulting targets, failing over on
a timeout, a transport error or a 503 (RFC 3263 §4.3).

Transports are lower-case strings: ``"udp"``, ``"tcp"``, ``"tls"``, ``"ws"``, ``"wss"``.
Randomness comes in as ``rand``, a callable returning floats in ``[0, 1)``.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .errors import ParseError

TRANSPORTS: tuple[str, ...] = ("udp", "tcp", "tls", "ws", "wss")
"""Every transport sipedge knows, in the default client preference order."""

SECURE_TRANSPORTS: frozenset[str] = frozenset({"tls", "wss"})

NAPTR_SERVICES: dict[str, str] = {
    "SIP+D2U": "udp",  # RFC 3263 §4.1
    "SIP+D2T": "tcp",
    "SIPS+D2T": "tls",
    "SIP+D2W": "ws",  # RFC 7118 §10.1
    "SIPS+D2W": "wss",
}
"""NAPTR service field -> transport."""

SRV_PREFIXES: dict[str, str] = {
    "udp": "_sip._udp.",  # RFC 3263 §4.1, §4.2
    "tcp": "_sip._tcp.",
    "tls": "_sips._tcp.",
    # RFC 7118 defines no SRV owner names; these follow the _sip/_sips pattern and are only
    # queried for an explicit transport=ws/wss.
    "ws": "_sip._ws.",
    "wss": "_sips._ws.",
}

_PROBED = ("udp", "tcp", "tls")  # RFC 3263 §4.1: SRV probes when there is no NAPTR record


def default_port(transport: str) -> int:
    """Default port for a transport: 5061 for TLS and WSS, else 5060 (RFC 3261 §19.1.2)."""
    return 5061 if transport in SECURE_TRANSPORTS else 5060


def srv_name(transport: str, domain: str) -> str:
    """The absolute SRV owner name for ``transport`` at ``domain``, e.g. ``_sip._udp.a.b.``."""
    return f"{SRV_PREFIXES[transport]}{domain.rstrip('.')}."


@dataclass(frozen=True, slots=True)
class Target:
    """One place to send a request: an IP literal (IPv6 without brackets), port, transport.

    ``name`` is the domain the target was resolved from (the URI host), which TLS checks the
    certificate against (RFC 5922 §4) and WebSocket sends as Host; None for numeric hosts.
    It takes no part in equality or hashing.
    """

    transport: str
    host: str
    port: int
    name: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class SrvRecord:
    """An SRV record (RFC 2782); ``target`` is ``""`` for the "." no-service target."""

    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True, slots=True)
class NaptrRecord:
    """A NAPTR record (RFC 3403); ``replacement`` without the final dot."""

    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str


@dataclass(frozen=True, slots=True)
class Hop:
    """The pre-resolution decision for a next-hop URI (RFC 3263 §4.1, §4.2).

    ``target`` is the maddr or host, lower-case, IPv6 without brackets, no final dot.
    ``transport`` is None while NAPTR/SRV are to choose it; ``port`` is the explicit port or
    None. ``transports`` are the candidate transports in client preference order.
    """

    target: str
    secure: bool
    numeric: bool
    transport: str | None
    port: int | None
    transports: tuple[str, ...]
    oversize: bool = False

    @property
    def needs_naptr(self) -> bool:
        """A NAPTR query comes first: hostname, no transport and no port (§4.1)."""
        return not self.numeric and self.transport is None and self.port is None

    @property
    def needs_srv(self) -> bool:
        """SRV queries are due: hostname without an explicit port (§4.2)."""
        return not self.numeric and self.port is None

    def srv_queries(self) -> list[tuple[str, str]]:
        """(transport, SRV name) pairs to query when NAPTR gave nothing usable (§4.1, §4.2)."""
        if not self.needs_srv:
            return []
        if self.transport is not None:
            return [(self.transport, srv_name(self.transport, self.target))]
        return [(t, srv_name(t, self.target)) for t in self.transports if t in _PROBED]

    def fallback(self) -> tuple[str, int] | None:
        """Transport and port for A/AAAA results when SRV gave nothing (§4.1, §4.2).

        UDP for SIP and TLS for SIPS, but TCP for a message too big for UDP (RFC 3261
        §18.1.1); an explicit port overrides the transport's default port. None when no
        supported transport fits (e.g. only WebSocket is supported and NAPTR found none).
        """
        transport = self.transport or _default_transport(
            self.secure, self.oversize, self.transports
        )
        if transport is None:
            return None
        return transport, self.port if self.port is not None else default_port(transport)

    def numeric_target(self) -> Target | None:
        """The single target of a numeric host (no DNS at all), else None (§4.2)."""
        fallback = self.fallback() if self.numeric else None
        return None if fallback is None else Target(fallback[0], self.target, fallback[1])


def plan_hop(
    scheme: str,
    host: str,
    port: int | str | None = None,
    transport: str | None = None,
    maddr: str | None = None,
    *,
    oversize: bool = False,
    supported: Sequence[str] = TRANSPORTS,
) -> Hop:
    """Decide what RFC 3263 §4.1/§4.2 says about a URI before any DNS query.

    ``oversize`` marks a request over the UDP size threshold: UDP then gives way to TCP,
    even for ``transport=udp`` (RFC 3261 §18.1.1). ``supported`` lists the transports this
    node can use, in preference order. Raises :class:`ParseError`: 416 for a scheme other
    than sip/sips, 400 for a malformed host or port or ``sips`` with UDP, 503 when no
    supported transport fits.
    """
    scheme_l = scheme.lower()
    if scheme_l not in ("sip", "sips"):
        raise ParseError(f"unsupported URI scheme {scheme!r}", 416)
    secure = scheme_l == "sips"
    target, numeric = _normalize_host(maddr if maddr is not None else host)
    usable = [t for t in supported if t in TRANSPORTS and (not secure or t in SECURE_TRANSPORTS)]
    if oversize:
        usable = _udp_last(usable)
    chosen = _explicit_transport(transport, secure, oversize, usable)
    number = _parse_port(port)
    if chosen is None and (numeric or number is not None):
        # §4.1: numeric TARGET or explicit port -> UDP for SIP, TLS (over TCP) for SIPS.
        chosen = _default_transport(secure, oversize, usable)
        if chosen is None:
            raise ParseError("no supported transport for the URI", 503)
    if not usable:
        raise ParseError("no supported transport for the URI", 503)
    return Hop(target, secure, numeric, chosen, number, tuple(usable), oversize)


def select_naptr(records: Iterable[NaptrRecord], hop: Hop) -> list[tuple[str, str]]:
    """Usable NAPTR records as (transport, SRV name), best first (RFC 3263 §4.1, RFC 3403).

    Keeps ``s``-flag records whose service maps to a transport in ``hop.transports`` (so a
    SIPS URI keeps only SIPS services), sorted by order then preference. For an oversize
    message UDP services move to the end (RFC 3261 §18.1.1).
    """
    ranked = sorted(records, key=lambda r: (r.order, r.preference))
    out: list[tuple[str, str]] = []
    for rec in ranked:
        transport = NAPTR_SERVICES.get(rec.service.upper())
        name = rec.replacement.rstrip(".").lower()
        if rec.flags.lower() != "s" or transport not in hop.transports or not name:
            continue
        if (transport, name) not in out:
            out.append((transport, name))
    if hop.oversize:
        out = [p for p in out if p[0] != "udp"] + [p for p in out if p[0] == "udp"]
    return out


def order_srv(records: Iterable[SrvRecord], rand: Callable[[], float]) -> list[SrvRecord]:
    """Order SRV records for trying (RFC 2782): by priority, then weighted random.

    Within a priority each pick takes a record with probability weight / total weight;
    records of weight 0 go first in the running sum, so they are picked only on a zero draw
    while heavier records remain; if all weights are 0 the pick is uniform. The running sum
    follows a canonical order (not the DNS answer order), so the result depends only on
    the records and ``rand``. Records with the "." target (service not offered) are dropped.
    """
    usable = [r for r in records if r.target not in ("", ".")]
    out: list[SrvRecord] = []
    for priority in sorted({r.priority for r in usable}):
        group = sorted((r for r in usable if r.priority == priority), key=_srv_key)
        while group:
            out.append(group.pop(_weighted_index(group, rand)))
    return out


class TargetIterator:
    """Walk targets in try order, failing over as RFC 3263 §4.3 says.

    Call :meth:`next` for the first target and :meth:`fail_over` after each failure. A
    request, its CANCEL and a non-2xx ACK belong to the same target (RFC 3263 §4), so the
    caller keeps :attr:`current` for those.
    """

    def __init__(self, targets: Iterable[Target]) -> None:
        self._targets = tuple(dict.fromkeys(targets))
        self._index = -1

    def __len__(self) -> int:
        return len(self._targets)

    @property
    def current(self) -> Target | None:
        """The target last returned, or None before the first call / once exhausted."""
        return self._targets[self._index] if 0 <= self._index < len(self._targets) else None

    @property
    def exhausted(self) -> bool:
        """True once every target has been handed out and the last one given up on."""
        return self._index >= len(self._targets)

    def next(self) -> Target | None:
        """Advance to the next target and return it, or None when none is left."""
        if self._index < len(self._targets):
            self._index += 1
        return self.current

    @staticmethod
    def should_fail_over(status: int | None) -> bool:
        """True for a timeout or transport error (``None``) or a 503 (RFC 3263 §4.3)."""
        return status is None or status == 503

    def fail_over(self, status: int | None) -> Target | None:
        """After the current target failed: the next one, or None to stop trying.

        ``status`` is None for a timeout (Timer B/F) or transport error, else the final
        response code; only those and 503 move on to the next target.
        """
        return self.next() if self.should_fail_over(status) else None


def _srv_key(rec: SrvRecord) -> tuple[bool, str, int, int]:
    """Zero weights first (RFC 2782), then a canonical order so only ``rand`` matters."""
    return rec.weight != 0, rec.target, rec.port, rec.weight


def _weighted_index(group: list[SrvRecord], rand: Callable[[], float]) -> int:
    """RFC 2782 running-sum selection within one priority."""
    total = sum(r.weight for r in group)
    draw = min(max(rand(), 0.0), 1.0)
    if total == 0:
        return min(int(draw * len(group)), len(group) - 1)
    pick = draw * total
    running = 0
    for index, rec in enumerate(group):
        running += rec.weight
        if running >= pick:
            return index
    return len(group) - 1


def _udp_last(transports: list[str]) -> list[str]:
    return [t for t in transports if t != "udp"] + [t for t in transports if t == "udp"]


def _default_transport(secure: bool, oversize: bool, usable: Sequence[str]) -> str | None:
    """UDP for SIP, TLS for SIPS, TCP first when oversize (§4.1), limited to ``usable``."""
    if secure:
        order: tuple[str, ...] = ("tls",)
    else:
        order = ("tcp", "udp", "tls") if oversize else ("udp", "tcp", "tls")
    return next((t for t in order if t in usable), None)


def _explicit_transport(
    value: str | None, secure: bool, oversize: bool, usable: Sequence[str]
) -> str | None:
    """The transport= parameter mapped onto a transport (RFC 3263 §4.1), or None."""
    if value is None:
        return None
    name = value.strip().lower()
    if secure:
        if name == "udp":
            raise ParseError("UDP is not a valid transport for a SIPS URI")  # RFC 3263 §4.1
        name = {"tcp": "tls", "ws": "wss"}.get(name, name)
    elif name == "udp" and oversize:
        name = "tcp"  # RFC 3261 §18.1.1: too large for UDP
    if not name:
        raise ParseError("empty transport parameter")
    if name not in usable:
        raise ParseError(f"unsupported transport {value!r}", 503)
    return name


def _parse_port(port: int | str | None) -> int | None:
    if port is None:
        return None
    if isinstance(port, str):
        if not port.isascii() or not port.isdigit() or len(port) > 5:
            raise ParseError(f"invalid port {port!r}")
        port = int(port)
    if not 0 < port < 65536:
        raise ParseError(f"port {port} out of range")
    return port


@functools.lru_cache(maxsize=4096)
def _normalize_host(host: str) -> tuple[str, bool]:
    """(TARGET, numeric): IP literals normalised, host names checked and lower-cased.

    Cached (a pure function of its argument): next hops repeat on every message."""
    text = host.strip()
    bracketed = text.startswith("[") and text.endswith("]")
    inner = text[1:-1] if bracketed else text
    try:
        address = ipaddress.ip_address(inner)
    except ValueError:
        address = None
    if address is not None:
        if bracketed and address.version != 6:
            raise ParseError(f"bracketed host {host!r} is not an IPv6 address")
        return address.compressed, True
    if bracketed:
        raise ParseError(f"bracketed host {host!r} is not an IPv6 address")
    return _check_hostname(text.rstrip(".").lower(), host), False


def _check_hostname(name: str, original: str) -> str:
    """RFC 3261 §25.1 hostname: alphanumeric labels with inner hyphens, alpha top label."""
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_label_ok(lab) for lab in labels):
        raise ParseError(f"invalid host {original!r}")
    if not labels[-1][0].isalpha():
        raise ParseError(f"invalid host {original!r}")
    return name


def _label_ok(label: str) -> bool:
    return (
        0 < len(label) < 64
        and label.isascii()
        and label.replace("-", "").replace("_", "").isalnum()
        and label[0] != "-"
        and label[-1] != "-"
    )
