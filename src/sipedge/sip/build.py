"""Building responses, ACKs and CANCELs from the messages they answer.

Fields copied from the request are shared as they are, so they go out byte for byte as the
peer sent them (RFC 3261 §8.2.6.2 asks for Via, From, To, Call-ID and CSeq to be copied).
"""

from __future__ import annotations

from .hdr.cseq import CSeq
from .message import Field, Request, Response

REASONS: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    423: "Interval Too Brief",
    429: "Provide Referrer Identity",
    430: "Flow Failed",
    439: "First Hop Lacks Outbound Support",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

_COPIED = frozenset({"via", "from", "call-id", "cseq"})


def reason_phrase(status: int) -> str:
    """The RFC 3261 §21 reason phrase of ``status`` (or a generic one per class)."""
    return REASONS.get(status) or REASONS[status // 100 * 100 if status >= 200 else 100]


def build_response(
    req: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> Response:
    """Build a response to ``req`` (RFC 3261 §8.2.6).

    Via, From, Call-ID and CSeq are copied in their original order and bytes; To gets
    ``to_tag`` when it has no tag yet (never on 100 Trying, §8.2.6.2). ``headers`` are
    appended, then Content-Length.
    """
    fields: list[Field] = []
    to_value = ""
    for f in req.fields:
        if f.key in _COPIED:
            fields.append(f)
        elif f.key == "to":
            to_value = f.value
            if to_tag is not None and req.to_tag is None and status != 100:
                to_value = f"{to_value};tag={to_tag}"
                f = Field.make(f.name, to_value)
            fields.append(f)
    for name, value in headers or ():
        fields.append(Field.make(name, value))
    fields.append(Field.make("Content-Length", str(len(body))))
    resp = Response(status, reason if reason is not None else reason_phrase(status), fields, body)
    resp.vias = list(req.vias)
    resp.set_from_raw(req._from_raw)
    resp.set_to_raw(to_value)
    resp.call_id = req.call_id
    resp.cseq = req.cseq
    resp.content_length = len(body)
    return resp


def response_bytes(
    req: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> bytes:
    """``build_response(...).to_bytes()`` without building the :class:`Response` (for
    responses nothing else looks at, e.g. the registrar's answers); no body."""
    lines = [f"SIP/2.0 {status} {reason if reason is not None else reason_phrase(status)}"]
    tagged = to_tag is not None and req.to_tag is None and status != 100
    for f in req.fields:
        key = f.key
        if key in _COPIED:
            lines.append(f.raw)
        elif key == "to":
            lines.append(f"{f.name}: {f.value};tag={to_tag}" if tagged else f.raw)
    for name, value in headers or ():
        lines.append(f"{name}: {value}")
    lines.append("Content-Length: 0\r\n\r\n")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape")


def _request_like(orig: Request, method: str, to_field: Field) -> Request:
    """A request sharing ``orig``'s Request-URI, top Via, From and Call-ID (§9.1, §17.1.1.3)."""
    top_via = orig.vias[0]
    fields = [Field.make("Via", str(top_via))]
    for f in orig.fields:
        if f.key in ("from", "call-id"):
            fields.append(f)
    fields.append(to_field)
    fields.append(Field.make("CSeq", f"{orig.cseq.number} {method}"))
    fields.extend(f for f in orig.fields if f.key == "route")
    fields.append(Field.make("Max-Forwards", "70"))
    fields.append(Field.make("Content-Length", "0"))
    req = Request(method, orig.uri_text, fields)
    req.vias = [top_via]
    req.routes = list(orig.routes)
    req.set_from_raw(orig._from_raw)
    req.call_id = orig.call_id
    req.cseq = CSeq(orig.cseq.number, method)
    req.max_forwards = 70
    req.content_length = 0
    return req


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK a client transaction sends for a non-2xx final response (§17.1.1.3)."""
    to_field = next(f for f in response.fields if f.key == "to")
    ack = _request_like(invite, "ACK", to_field)
    ack.set_to_raw(to_field.value)
    return ack


def build_cancel(request: Request) -> Request:
    """A CANCEL for a pending ``request`` (RFC 3261 §9.1)."""
    to_field = next(f for f in request.fields if f.key == "to")
    cancel = _request_like(request, "CANCEL", to_field)
    cancel.set_to_raw(to_field.value)
    return cancel


_RAW_COPIED = {
    "via": "Via",
    "v": "Via",
    "from": "From",
    "f": "From",
    "to": "To",
    "t": "To",
    "call-id": "Call-ID",
    "i": "Call-ID",
    "cseq": "CSeq",
}


def build_error_from_raw(data: bytes, status: int, reason: str, to_tag: str) -> bytes | None:
    """A response to a request that failed to parse (RFC 3261 §16.3 step 1, §21.4.1).

    The Via, From, To, Call-ID and CSeq lines are copied as they came, without
    interpreting them, so the sender can match the answer. Returns None when the bytes
    are not a request or carry no Via to answer to.
    """
    if data.startswith(b"SIP/") or data.lstrip(b"\r\n").startswith(b"SIP/"):
        return None
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "surrogateescape")
    lines: list[str] = []
    for line in head.split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        pretty = _RAW_COPIED.get(name.strip().lower()) if sep else None
        if pretty is None:
            continue
        value = value.strip()
        if pretty == "To" and ";tag=" not in value.replace(" ", "").lower():
            value = f"{value};tag={to_tag}"
        lines.append(f"{pretty}: {value}")
    if not any(line.startswith("Via:") for line in lines):
        return None
    phrase = "".join(c if 32 <= ord(c) < 127 else "?" for c in reason)[:120]
    out = [f"SIP/2.0 {status} {phrase}", *lines, "Content-Length: 0", "", ""]
    return "\r\n".join(out).encode("utf-8", "surrogateescape")
