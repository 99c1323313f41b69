"""REGISTER processing (RFC 3261 §10.3 steps 6-8, RFC 3327, RFC 5626 §6).

:func:`apply_register` is pure: the existing bindings, the flow and ``now`` come in, the
response and the new binding set come out; nothing is stored and nothing is awaited. The
async :class:`~sipedge.registrar.location.Registrar` wraps it with a store and a lock.

Choices where the RFCs leave room (each documented where it is made):

* An update that is out of order (same Call-ID, CSeq not higher than the stored one) is
  ignored rather than failing the whole request, and the 200 lists the current bindings.
  RFC 3261 §10.3 step 7 lets such a request "fail"; ignoring it is what keeps a late
  retransmission or a reordered refresh harmless.
* Path without ``Supported: path`` is accepted and stored (RFC 3327 §5.3 leaves the choice
  to the registrar) unless ``path_strict``, which answers 420 with ``Unsupported: path``.
* A contact with ``+sip.instance`` and ``reg-id`` is matched by that pair only, so two
  flows of one device registering the same Contact URI stay two bindings (RFC 5626 §6);
  ``reg-id`` without ``+sip.instance`` is ignored (RFC 3261 rules apply).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import is_

from ..nat.rewrite import received_uri
from ..sip._scan import split_commas
from ..sip.errors import ParseError
from ..sip.hdr.cseq import parse_uint
from ..sip.hdr.nameaddr import NameAddr
from ..sip.message import Request
from ..sip.params import Params
from ..sip.uri import URI, unescape, uri_key
from ..transport.base import Flow
from .binding import Binding
from .match import same_contact

# RFC 3261 §25.1: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
_QVALUE_RE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?", re.ASCII)
# delta-seconds = 1*DIGIT (RFC 3261 §20.10); longer than 10 digits is past any maximum.
_DELTA_RE = re.compile(r"0*([0-9]{1,10})|[0-9]+", re.ASCII)
# RFC 5626 §4.2: reg-id = 1*DIGIT, 1 to 2**31-1.
_REG_ID_RE = re.compile(r"0*([1-9][0-9]{0,9})", re.ASCII)
_REG_ID_MAX = 2**31 - 1
_U32 = 2**32 - 1  # the largest Expires header (RFC 3261 §20.19, as Request.expires reads it)


@dataclass(frozen=True, slots=True)
class RegistrarPolicy:
    """Registrar limits (the ``[registrar]`` config section); times in seconds.

    ``overwrite_oldest``: a REGISTER that would take an AOR past ``max_contacts`` drops
    the AOR's oldest bindings (by ``registered_at``) instead of being refused with 403.
    ``path_strict``: refuse Path from a UA that did not say ``Supported: path`` (420).
    """

    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts: int = 10
    overwrite_oldest: bool = False
    path_strict: bool = False


@dataclass(frozen=True, slots=True)
class RegisterOutcome:
    """The answer to a REGISTER: status, reason and extra response headers, plus the AOR's
    new binding set to store, or None when the bindings did not change."""

    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    bindings: list[Binding] | None = None


class _Reject(Exception):
    """Internal: refuse the whole REGISTER with this status (nothing is committed)."""

    def __init__(self, status: int, reason: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = list(headers)


@dataclass(slots=True)
class _Spec:
    """One Contact of the REGISTER, validated; ``key`` is its :func:`~sipedge.sip.uri.uri_key`."""

    uri: URI
    text: str
    key: str | None
    expires: int
    q: float
    instance: str | None
    reg_id: int | None


def aor_of(uri: URI) -> str:
    """The AOR key of a To (or Request-URI) URI: ``sip:user@host`` with the host lower-cased,
    the user's %-escapes decoded, port and parameters dropped and ``sips`` folded into
    ``sip``; ``sip:host`` when there is no user. Raises ParseError (416) for other schemes.
    """
    if not uri.is_sip:
        raise ParseError(f"address-of-record must be a SIP URI, not {uri.scheme}:", 416)
    host = uri.host.lower()
    if uri.user is None:
        return sys.intern("sip:" + host)
    return sys.intern(f"sip:{unescape(uri.user)}@{host}")


def apply_register(
    req: Request,
    existing: list[Binding],
    flow: Flow,
    now: float,
    policy: RegistrarPolicy,
    *,
    nat: bool = False,
    aor: str | None = None,
) -> RegisterOutcome:
    """Process a REGISTER against the AOR's ``existing`` bindings (RFC 3261 §10.3 6-8).

    The AOR is taken from the To URI (``aor``: its :func:`aor_of`, when the caller has
    it already). Every check runs before any binding changes: a request that fails (400,
    403, 416, 420, 423) leaves the bindings as they were (§10.3 step 7: all updates or
    none). On success the 200 lists every current binding with its remaining ``expires``
    (step 8). ``nat`` marks the bindings it writes as behind a NAT (reached over
    ``flow``; the 200 shows ``received`` on them).
    """
    try:
        return _register(req, existing, flow, now, policy, nat, aor)
    except _Reject as r:
        return RegisterOutcome(r.status, r.reason, r.headers)
    except ParseError as exc:
        return RegisterOutcome(exc.status_hint, exc.reason)


def _register(
    req: Request,
    existing: list[Binding],
    flow: Flow,
    now: float,
    policy: RegistrarPolicy,
    nat: bool,
    aor: str | None,
) -> RegisterOutcome:
    if aor is None:
        aor = aor_of(req.to.uri)
    contacts = req.contacts
    raw_expires, raw_supported, user_agent = _scan(req)
    # As req.expires, req.paths and req.option_tags("supported") read them, in that order.
    header_expires = None if raw_expires is None else parse_uint(raw_expires, "Expires", _U32)
    found_paths = req.paths
    paths = tuple(map(str, found_paths)) if found_paths else ()
    supported = [t.lower() for v in raw_supported if v for t in split_commas(v)]
    if paths and "path" not in supported and policy.path_strict:
        # RFC 3327 §5.3: the registrar may refuse a Path the UA did not ask for.
        raise _Reject(420, "Bad Extension", [("Unsupported", "path")])
    live = [b for b in existing if b.expires_at > now]
    new: list[Binding] | None = None
    outbound = False
    if contacts == "*":
        new = _wildcard(req, live, header_expires)
    elif contacts:
        specs = [_spec(c, header_expires, policy) for c in contacts]
        outbound = any(s.reg_id is not None for s in specs)
        new = _update(req, aor, specs, live, flow, now, paths, nat, user_agent)
        new = _limit(new, live, policy)
    current = live if new is None else new
    headers = [("Contact", _contact_value(b, now)) for b in current]
    tags = []
    if paths and "path" in supported:
        headers.extend(("Path", p) for p in paths)  # RFC 3327 §5.3: echo in order
        tags.append("path")
    if outbound:
        tags.append("outbound")  # RFC 5626 §6: outbound processing was performed
    if tags:
        headers.append(("Supported", ", ".join(tags)))
    changed = new is not None and (len(new) != len(existing) or not all(map(is_, new, existing)))
    return RegisterOutcome(200, "OK", headers, new if changed else None)


def _scan(req: Request) -> tuple[str | None, list[str], str | None]:
    """The first Expires value, every Supported value and the first User-Agent value of
    ``req``: one pass over its header fields instead of one per header."""
    expires = user_agent = None
    supported = []
    for f in req.fields:
        key = f.key
        if key == "expires":
            if expires is None:
                expires = f.value
        elif key == "supported":
            supported.append(f.value)
        elif key == "user-agent" and user_agent is None:
            user_agent = f.value
    return expires, supported, user_agent


def _wildcard(req: Request, live: list[Binding], header_expires: int | None) -> list[Binding]:
    """``Contact: *`` (RFC 3261 §10.3 step 6): remove every binding, except those a newer
    request of the same Call-ID wrote (this one is then old and ignored for them)."""
    if header_expires != 0:
        raise _Reject(400, "Contact '*' requires Expires: 0")
    cseq = req.cseq.number
    return [b for b in live if b.call_id == req.call_id and b.cseq >= cseq]


def _spec(c: NameAddr, header_expires: int | None, policy: RegistrarPolicy) -> _Spec:
    """Validate one Contact: expiry (§10.3 step 7), q (§20.10) and RFC 5626 parameters."""
    params = c.params
    uri = c.uri
    text = str(uri)
    if not params:  # the common case: nothing to look up
        expires = policy.default_expires if header_expires is None else header_expires
        expires = _clamp(expires, policy)
        return _Spec(uri, text, uri_key(uri, text), expires, 1.0, None, None)
    raw = params.get("expires")
    if raw is not None:
        expires = _delta_seconds(raw)
    elif "expires" in params:
        raise ParseError("Contact 'expires' parameter without a value")
    elif header_expires is not None:
        expires = header_expires
    else:
        expires = policy.default_expires
    expires = _clamp(expires, policy)
    instance = params.get("+sip.instance")
    reg_id = _reg_id(params.get("reg-id")) if "reg-id" in params else None
    if instance is None:
        reg_id = None  # RFC 5626 §6: reg-id without an instance is ignored
    q = _qvalue(params)
    return _Spec(uri, text, uri_key(uri, text), expires, q, instance, reg_id)


def _clamp(expires: int, policy: RegistrarPolicy) -> int:
    """RFC 3261 §10.3 step 7: too brief -> 423 with the minimum we accept; too long is
    shortened to the maximum."""
    if 0 < expires < policy.min_expires:
        raise _Reject(423, "Interval Too Brief", [("Min-Expires", str(policy.min_expires))])
    return min(expires, policy.max_expires)


def _delta_seconds(raw: str) -> int:
    m = _DELTA_RE.fullmatch(raw)
    if m is None:
        raise ParseError("Contact 'expires' parameter is not a number of seconds")
    return int(m.group(1)) if m.group(1) is not None else 2**32 - 1


def _qvalue(params: Params) -> float:
    if "q" not in params:
        return 1.0
    raw = params.get("q")
    if raw is None or _QVALUE_RE.fullmatch(raw) is None:
        raise ParseError("Contact 'q' must be a qvalue between 0 and 1 (RFC 3261 §20.10)")
    return float(raw)


def _reg_id(raw: str | None) -> int:
    m = None if raw is None else _REG_ID_RE.fullmatch(raw)
    if m is None or int(m.group(1)) > _REG_ID_MAX:
        raise ParseError("Contact 'reg-id' must be an integer from 1 to 2^31-1 (RFC 5626)")
    return int(m.group(1))


def _update(
    req: Request,
    aor: str,
    specs: list[_Spec],
    live: list[Binding],
    flow: Flow,
    now: float,
    paths: tuple[str, ...],
    nat: bool,
    user_agent: str | None,
) -> list[Binding]:
    """Apply each Contact in order (RFC 3261 §10.3 step 7) to a working copy of ``live``;
    ``nat`` marks the bindings written as reached over ``flow``."""
    work = list(live)
    parsed: dict[str, URI] = {}  # stored Contacts parsed for comparison, by text
    fresh: set[int] = set()  # bindings written by this request
    call_id, cseq = req.call_id, req.cseq.number
    shared_ua = None if user_agent is None else sys.intern(user_agent)
    transport = sys.intern(flow.transport)
    for spec in specs:
        hits = _hits(work, spec, parsed)
        at, born = len(work), now
        if hits:
            taken = _take(work, hits, fresh, call_id, cseq, now)
            if taken is None:
                continue  # out of order for this binding: ignored (see the module docstring)
            at, born = hits[0], taken
        if spec.expires == 0:
            continue  # removal
        # Every field, positionally (17 keyword arguments cost 60% more): aor, contact,
        # expires_at, q, call_id, cseq, instance, reg_id, path, transport, local, remote,
        # conn_id, user_agent, registered_at, nat, contact_key.
        binding = Binding(
            aor, spec.text, now + spec.expires, spec.q, call_id, cseq, spec.instance,
            spec.reg_id, paths, transport, flow.local, flow.remote, flow.conn_id, shared_ua,
            born, nat, spec.key,
        )  # fmt: skip
        work.insert(at, binding)  # where the binding it replaces was, else last
        fresh.add(id(binding))
    return work


def _take(
    work: list[Binding], hits: list[int], fresh: set[int], call_id: str, cseq: int, now: float
) -> float | None:
    """Remove the bindings at ``hits`` (ascending) from ``work`` for a Contact that names
    them; return the earliest ``registered_at`` among those this request did not write
    (``fresh``), ``now`` when none. None, with nothing removed, when the Contact is out of
    order for one of those (same Call-ID, CSeq not higher: RFC 3261 §10.3 step 7)."""
    born: float | None = None
    for i in hits:
        b = work[i]
        if id(b) in fresh:
            continue
        if b.call_id == call_id and b.cseq >= cseq:
            return None
        born = b.registered_at if born is None else min(born, b.registered_at)
    for i in reversed(hits):
        del work[i]
    return now if born is None else born


def _hits(work: list[Binding], spec: _Spec, parsed: dict[str, URI]) -> list[int]:
    """Where in ``work`` the bindings ``spec`` names are: by (instance, reg-id) for an
    outbound contact (RFC 5626 §6), else by Contact URI equivalence (RFC 3261 §10.3 step
    6, §19.1.4), equal text being the usual and cheapest case."""
    if spec.reg_id is not None:
        instance, reg_id = spec.instance, spec.reg_id
        return [i for i, b in enumerate(work) if b.instance == instance and b.reg_id == reg_id]
    uri, text, key = spec.uri, spec.text, spec.key
    return [
        i
        for i, b in enumerate(work)
        if b.contact == text or same_contact(b, uri, text, key, parsed)
    ]


def _limit(new: list[Binding], live: list[Binding], policy: RegistrarPolicy) -> list[Binding]:
    """Enforce ``max_contacts`` on a REGISTER that adds bindings (Kamailio/OpenSIPS style).

    A REGISTER that only refreshes or removes is never refused, even over the limit."""
    if len(new) <= policy.max_contacts or len(new) <= len(live):
        return new
    if policy.overwrite_oldest:
        kept = {id(b) for b in live}
        older = sorted((b for b in new if id(b) in kept), key=lambda b: b.registered_at)
        drop = {id(b) for b in older[: len(new) - policy.max_contacts]}
        trimmed = [b for b in new if id(b) not in drop]
        if len(trimmed) <= policy.max_contacts:
            return trimmed
    raise _Reject(403, "Too many registered contacts")


def _contact_value(b: Binding, now: float) -> str:
    """A Contact of the 200 OK: the URI, its remaining expiry, q when not 1, the
    RFC 5626 parameters the UA uses to recognise its flows (RFC 3261 §10.3 step 8) and,
    for a NATed binding, the address it is reached at as ``received`` (as OpenSIPS and
    Kamailio report it: a quoted SIP URI)."""
    value = f"<{b.contact}>;expires={max(1, round(b.expires_at - now))}"
    if b.nat:
        value += f';received="{received_uri(b.flow)}"'
    if b.q != 1.0:
        value += f";q={_format_q(b.q)}"
    if b.instance is not None:
        value += f";+sip.instance={b.instance}"
    if b.reg_id is not None:
        value += f";reg-id={b.reg_id}"
    return value


def _format_q(q: float) -> str:
    text = f"{q:.3f}".rstrip("0").rstrip(".")
    return text or "0"
