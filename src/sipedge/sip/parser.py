"""Datagram (or framed stream message) to :class:`Request` / :class:`Response`.

RFC 3261 §7 (message format), §18.3 (framing by Content-Length), §25 (grammar). The start
line and the fields a proxy needs on every message are decoded here; the rest is decoded
lazily by :mod:`sipedge.sip.message`. Every limit is a parameter (:class:`Limits`) and
parsing is linear in the input.

When the optional C accelerator is built (:mod:`sipedge.sip._accel`), it recognises the
usual well-formed messages and this module only assembles the result; the accelerator
leaves every other message, malformed ones included, to the Python code below, so both
paths give the same message or the same :class:`ParseError`.

Fault statuses (RFC 4475 §3.1.2, §3.3): malformed syntax 400 with a reason naming the fault,
unknown SIP version 505, over a size limit 513. Unknown Request-URI schemes parse fine; the
proxy answers them 416 (RFC 3261 §16.3 step 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import _accel
from ._accel import ScanResult
from .errors import LimitExceeded, ParseError
from .hdr.cseq import CSeq, parse_cseq, parse_uint
from .hdr.nameaddr import parse_name_addr_list
from .hdr.via import parse_via
from .headers import COMPACT_FORMS, pretty_name
from .message import Field, Message, Request, Response, quick_tag, via_from_parts

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT  (RFC 3261 §25.1; "SIP" is case-insensitive)
_VERSION_RE = re.compile(r"[Ss][Ii][Pp]/[0-9]+\.[0-9]+")
_STATUS_RE = re.compile(r"[1-6][0-9][0-9]")
_CSEQ_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Limits:
    """Parser limits, each with a safe default (ARCHITECTURE.md §4.5).

    RFC 3261 §18.1.1 requires accepting UDP messages up to 65,535 bytes.
    """

    max_message_size: int = 65535
    max_headers: int = 256
    max_line_length: int = 8192
    max_vias: int = 70
    max_routes: int = 64


DEFAULT_LIMITS = Limits()


def parse_message(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Request | Response:
    """Parse one SIP message from ``data`` (a datagram or one framed stream message).

    Octets after the body announced by Content-Length are ignored (RFC 3261 §18.3,
    RFC 4475 §3.1.1.8). Without Content-Length the body runs to the end of ``data``.
    Raises :class:`ParseError` (or its subclass :class:`LimitExceeded`), never anything else.
    """
    if len(data) > limits.max_message_size:
        raise LimitExceeded(f"message of {len(data)} bytes exceeds {limits.max_message_size}")
    speedups = _accel.SPEEDUPS
    if speedups is not None:
        scanned = speedups.scan(data, limits.max_headers, limits.max_line_length, limits.max_vias)
        if scanned is not None:
            return _from_scan(scanned, limits)
    return _parse_python(data, limits)


def _parse_python(data: bytes, limits: Limits) -> Request | Response:
    start = _leading(data)  # RFC 3261 §7.5: CRLFs before the start line are ignored.
    end = data.find(b"\r\n\r\n", start)
    sep = "\r\n"
    if end < 0:
        end = data.find(b"\n\n", start)
        if end < 0:
            raise ParseError("no empty line after the header fields")
        sep = "\n"
        body_start = end + 2
    else:
        body_start = end + 4
    head = data[start:end].decode("utf-8", "surrogateescape")
    eol = head.find(sep)
    first = head if eol < 0 else head[:eol]
    fields, eager = _all_fields(head, sep, eol, limits)
    msg = _start_line(first, fields)
    _eager(msg, eager, limits)
    _body(msg, data, body_start)
    return msg


def _from_scan(r: ScanResult, limits: Limits) -> Request | Response:
    """Build the message the accelerator recognised (the same one the Python path builds)."""
    status, version, word, uri, vias, routes, call_id, num, method, frm, ftag, to, ttag = r[:13]
    msg: Request | Response
    if status:
        msg = Response.__new__(Response)
        msg.status = status
        msg.reason = word
    else:
        msg = Request.__new__(Request)
        msg.method = word
        msg._uri = None
        msg._uri_text = uri
    msg.version = version
    msg._fields = None
    msg._cache = {}
    msg.vias = [via_from_parts(v) for v in vias]
    msg.routes = []
    if routes is not None:
        for value in routes:
            msg.routes.extend(parse_name_addr_list(value))
            if len(msg.routes) > limits.max_routes:
                raise ParseError(f"more than {limits.max_routes} Route values")
    msg.call_id = call_id
    msg.cseq = CSeq(num, method)
    unknown, msg.max_forwards, msg.content_length, msg.body, msg._data, msg._hlen = r[13:]
    msg._from = msg._to = None
    msg._from_raw = frm
    msg._to_raw = to
    msg.from_tag = quick_tag(frm) if unknown & 1 else ftag
    msg.to_tag = quick_tag(to) if unknown & 2 else ttag
    msg._dirty = False
    return msg


# Keys of header names seen on most messages, by their lower-case spelling: a known name
# is a valid token, so only other names need the token check.
_KNOWN: dict[str, str] = {
    name: name
    for name in (
        "via",
        "from",
        "to",
        "call-id",
        "cseq",
        "max-forwards",
        "contact",
        "content-type",
        "content-length",
        "user-agent",
        "server",
        "allow",
        "supported",
        "require",
        "proxy-require",
        "route",
        "record-route",
        "expires",
        "min-expires",
        "authorization",
        "proxy-authorization",
        "www-authenticate",
        "proxy-authenticate",
        "accept",
        "date",
        "subject",
        "event",
        "allow-events",
        "path",
        "session-expires",
        "min-se",
        "reason",
        "p-asserted-identity",
        "privacy",
        "rack",
        "rseq",
        "refer-to",
        "referred-by",
        "unsupported",
        "warning",
        "organization",
        "content-disposition",
        "timestamp",
    )
}
_KNOWN.update(COMPACT_FORMS)
# The same names in the spellings met on the wire, so that most lines need no lower().
_SPELLED: dict[str, str] = {
    spelling: key
    for name, key in _KNOWN.items()
    for spelling in (
        name,
        name.upper(),
        pretty_name(name),
        "-".join(part.capitalize() for part in name.split("-")),
    )
}
# Keys read eagerly: decoded and checked while parsing (see _eager).
_EAGER_KEYS = frozenset(
    {"via", "route", "call-id", "cseq", "from", "to", "max-forwards", "content-length"}
)


def _all_fields(head: str, sep: str, eol: int, limits: Limits) -> tuple[list[Field], list[Field]]:
    """The header fields of ``head`` (its first line ends at ``eol``) and, apart, those
    read eagerly. The fast splitters hand anything unusual (odd names, limits) to
    :func:`_split_fields`, which names the fault precisely."""
    if sep == "\r\n" and eol >= 0:
        if "\r\n " not in head and "\r\n\t" not in head:
            split = _fast_fields(head, eol + 2, limits)
            if split is not None:
                return split
        else:
            fields = _regex_fields(head, eol + 2, limits)
            if fields is not None:
                return fields, [f for f in fields if f.key in _EAGER_KEYS]
    fields = _split_fields(head.split(sep), limits)
    return fields, [f for f in fields if f.key in _EAGER_KEYS]


def _fast_fields(head: str, pos: int, limits: Limits) -> tuple[list[Field], list[Field]] | None:
    """Split unfolded fields with str.split; None for anything unusual."""
    lines = head[pos:].split("\r\n")
    if len(lines) > limits.max_headers:
        return None
    check_len = len(head) > limits.max_line_length
    fields: list[Field] = []
    eager: list[Field] = []
    append = fields.append
    spelled = _SPELLED
    eager_keys = _EAGER_KEYS
    for line in lines:
        colon = line.find(":")
        if colon <= 0:
            return None
        name = line[:colon]
        key = spelled.get(name)
        if key is None:
            name = name.rstrip(" \t")
            if not _TOKEN_RE.fullmatch(name):
                return None
            low = name.lower()
            key = _KNOWN.get(low, low)
        if check_len and len(line) > limits.max_line_length:
            return None
        f = Field(key, name, line, colon + 1)
        append(f)
        if key in eager_keys:
            eager.append(f)
    return fields, eager


# One header field: name, optional WS, colon, value up to the line end, folded lines.
_FIELD_RE = re.compile(r"([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)")


def _regex_fields(head: str, pos: int, limits: Limits) -> list[Field] | None:
    """Split fields that may be folded, one regex match per field."""
    fields: list[Field] = []
    append = fields.append
    match = _FIELD_RE.match
    end = len(head)
    maxlen = limits.max_line_length
    compact = COMPACT_FORMS
    while pos < end:
        m = match(head, pos)
        if m is None:
            return None
        raw = m.group()
        name = m.group(1)
        low = name.lower()
        if len(raw) > maxlen and "\n" not in raw:
            return None
        append(Field(compact.get(low, low), name, raw, m.start(2) - pos))
        pos = m.end()
        if pos < end:
            if head[pos] != "\r":
                return None
            pos += 2
    if len(fields) > limits.max_headers:
        return None
    return fields


def _split_fields(lines: list[str], limits: Limits) -> list[Field]:
    if len(lines) - 1 > limits.max_headers:
        raise LimitExceeded(f"more than {limits.max_headers} header lines")
    fields: list[Field] = []
    maxlen = limits.max_line_length
    for line in lines[1:]:
        if len(line) > maxlen:
            raise LimitExceeded(f"header line longer than {maxlen} characters")
        c0 = line[:1]
        if c0 == " " or c0 == "\t":
            # RFC 3261 §7.3.1: a line starting with whitespace continues the previous field.
            if not fields:
                raise ParseError("continuation line before the first header field")
            prev = fields[-1]
            prev.raw = f"{prev.raw}\r\n{line}"
            continue
        colon = line.find(":")
        if colon <= 0:
            raise ParseError("header line without a name and ':'")
        name = line[:colon].rstrip(" \t")
        if not _TOKEN_RE.fullmatch(name):
            raise ParseError(f"invalid header name {name[:40]!r}")
        low = name.lower()
        fields.append(Field(COMPACT_FORMS.get(low, low), name, line, colon + 1))
    return fields


def _start_line(line: str, fields: list[Field]) -> Request | Response:
    if line[:4].upper() == "SIP/":
        return _status_line(line, fields)
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        # RFC 4475 §3.1.2.8-§3.1.2.10: LWS inside the URI, runs of SP, trailing SP.
        raise ParseError("malformed request line: expected 'Method SP Request-URI SP SIP/2.0'")
    method, uri, version = parts
    if method not in _METHODS and not _TOKEN_RE.fullmatch(method):
        raise ParseError(f"invalid method {method[:40]!r}")
    _check_version(version)
    if uri[0] == "<":
        raise ParseError("Request-URI must not be enclosed in '<>'")  # RFC 4475 §3.1.2.7
    if uri[:4].lower() in ("sip:", "sips") and "?" in uri[uri.rfind("@") + 1 :]:
        # RFC 3261 §19.1.1 (table): headers are not allowed in a Request-URI;
        # RFC 4475 §3.1.2.11. A '?' before the '@' is part of the user (user-unreserved).
        raise ParseError("Request-URI must not carry headers")
    return Request(method, uri, fields, version=version)


def _status_line(line: str, fields: list[Field]) -> Response:
    parts = line.split(" ", 2)
    if len(parts) < 2:
        raise ParseError("malformed status line")
    _check_version(parts[0])
    code = parts[1]
    if len(code) != 3 or not _STATUS_RE.fullmatch(code):
        raise ParseError(f"invalid status code {code[:20]!r}")  # RFC 4475 §3.1.2.19
    reason = parts[2] if len(parts) == 3 else ""
    return Response(int(code), reason, fields, version=parts[0])


# Methods known to be tokens, so that most request lines need no regex.
_METHODS = frozenset(
    {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE"}
    | {"NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE"}
)


def _check_version(version: str) -> None:
    if version == "SIP/2.0":
        return  # the usual case, without a regex
    if not _VERSION_RE.fullmatch(version):
        raise ParseError(f"malformed SIP version {version[:20]!r}")
    if version.upper() != "SIP/2.0":
        raise ParseError(f"SIP version {version} not supported", 505)


def _eager(msg: Message, eager: list[Field], limits: Limits) -> None:
    """Decode the fields every message needs (``eager``, in order: those whose key is in
    ``_EAGER_KEYS``) and check the single-valued ones."""
    seen: dict[str, Field] = {}
    vias = msg.vias
    routes = msg.routes
    for f in eager:
        key = f.key
        if key == "via":
            vias.extend(parse_via(f.value))
            if len(vias) > limits.max_vias:
                raise ParseError(f"more than {limits.max_vias} Via values")
        elif key == "route":
            routes.extend(parse_name_addr_list(f.value))
            if len(routes) > limits.max_routes:
                raise ParseError(f"more than {limits.max_routes} Route values")
        else:
            if key in seen:
                # RFC 4475 §3.3.8 / §3.3.9: two values of a single-valued header.
                raise ParseError(f"multiple {f.name} header fields")
            seen[key] = f
    for key in _REQUIRED:
        if key not in seen:
            raise ParseError(f"missing {_REQUIRED[key]} header")
    if not vias:
        raise ParseError("missing Via header")
    msg.call_id = seen["call-id"].value
    if not msg.call_id:
        raise ParseError("empty Call-ID")
    msg.cseq = cseq = parse_cseq(seen["cseq"].value)
    msg.set_from_raw(seen["from"].value)
    msg.set_to_raw(seen["to"].value)
    mf = seen.get("max-forwards")
    if mf is not None:
        msg.max_forwards = parse_uint(mf.value, "Max-Forwards", 255)
    cl = seen.get("content-length")
    if cl is not None:
        msg.content_length = parse_uint(cl.value, "Content-Length", _CSEQ_MAX)
    if isinstance(msg, Request) and cseq.method != msg.method:
        # RFC 4475 §3.1.2.17 / §3.1.2.18.
        raise ParseError(f"CSeq method {cseq.method} does not match {msg.method}")


_REQUIRED = {"call-id": "Call-ID", "cseq": "CSeq", "from": "From", "to": "To"}


def _body(msg: Message, data: bytes, body_start: int) -> None:
    cl = msg.content_length
    if cl is None:
        msg.body = data[body_start:]
        end = len(data)
    else:
        end = body_start + cl
        if end > len(data):
            # RFC 4475 §3.1.2.2: Content-Length larger than the message.
            raise ParseError(f"Content-Length {cl} exceeds the {len(data) - body_start} body bytes")
        msg.body = data[body_start:end]
    lead = _leading(data)
    msg._data = data if lead == 0 and end == len(data) else data[lead:end]
    msg._hlen = 0
    msg._dirty = False


def _leading(data: bytes) -> int:
    i = 0
    while data.startswith(b"\r\n", i):
        i += 2
    return i
