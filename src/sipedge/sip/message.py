"""SIP requests and responses: lazy typed access and byte-preserving edits.

A message keeps the bytes it was parsed from. The fields a proxy needs on every message
(the start line, Via, From/To and their tags, Call-ID, CSeq, Route, Max-Forwards and
Content-Length) are decoded eagerly by :mod:`sipedge.sip.parser`; every other header is
decoded only when asked for. When the C accelerator parsed the message, even the header
block is split into :class:`Field` objects only on the first use of ``fields``.

Edits (push or pop a Via, pop a Route, add a Record-Route, set Max-Forwards, rewrite the
Request-URI, any header add/replace/remove) are recorded on the field list. When nothing was
edited :meth:`Message.to_bytes` returns the original bytes; otherwise only the touched fields
are written anew and every other field goes out byte for byte as it came in (the idea of
Kamailio's ``data_lump.c``, ARCHITECTURE.md §4.6).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Literal

from . import _accel
from ._scan import split_commas
from .errors import ParseError
from .hdr.cseq import CSeq, parse_cseq, parse_uint
from .hdr.nameaddr import NameAddr, parse_contact, parse_name_addr, parse_name_addr_list
from .hdr.via import Via, parse_via
from .headers import COMPACT_FORMS, LIST_HEADERS, header_key, pretty_name
from .params import Params
from .uri import URI, parse_uri

_FOLD_RE = re.compile(r"[ \t]*\r?\n[ \t]+")

# Keys decoded eagerly; an edit to one of them refreshes the matching attribute.
_EAGER = frozenset(
    {"via", "from", "to", "call-id", "cseq", "route", "max-forwards", "content-length"}
)


_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
# The usual shapes of From/To (RFC 3261 §20.20, §20.39): [display-name] <URI> *(;param), or
# addr-spec *(;param). A value of another shape goes through the full parser.
_NAME_ADDR_FAST = re.compile(
    rf'(?:"(?:[^"\\\r\n]|\\.)*"[ \t]*|{_TOKEN}(?:[ \t]+{_TOKEN})*[ \t]*)?'
    r'(?:<[A-Za-z][A-Za-z0-9+.\-]*:[^<>"\s]+>|[A-Za-z][A-Za-z0-9+.\-]*:[^<>"\s;,?]+)'
    rf'((?:[ \t]*;[ \t]*{_TOKEN}(?:[ \t]*=[ \t]*(?:{_TOKEN}|"[^"\\]*"))?)*)[ \t]*'
)
_TAG_RE = re.compile(r";[ \t]*tag[ \t]*=[ \t]*([^ \t;]+)", re.IGNORECASE)
# The commonest of those shapes, with no optional LWS: a quicker regex whose matches all
# match _NAME_ADDR_FAST too, with the same parameters.
_NAME_ADDR_USUAL = re.compile(
    rf'(?:"[^"\\\r\n]*+" ?+|{_TOKEN}(?: {_TOKEN})*+ ?+)?+'
    rf'<[A-Za-z][A-Za-z0-9+.\-]*+:[^<>"\s]++>((?:;{_TOKEN}(?:={_TOKEN})?+)*+)'
)


def quick_tag(value: str) -> str | None:
    """Check a From/To value's syntax and return its tag, fast for the usual shapes."""
    m = _NAME_ADDR_USUAL.fullmatch(value) or _NAME_ADDR_FAST.fullmatch(value)
    if m is None:
        return parse_name_addr(value).tag
    params = m.group(1)
    if not params:
        return None
    t = _TAG_RE.search(params)
    return t.group(1) if t else None


class Field:
    """One header field as it appears in the message (possibly folded over lines).

    ``raw`` is the field's full text without the final line end; ``vstart`` indexes the
    first character after the colon. Untouched fields are written back from ``raw``.
    """

    __slots__ = ("key", "name", "raw", "vstart")

    def __init__(self, key: str, name: str, raw: str, vstart: int) -> None:
        self.key = key
        self.name = name
        self.raw = raw
        self.vstart = vstart

    @classmethod
    def make(cls, name: str, value: str) -> Field:
        """Build a new field ``name: value`` written by sipedge."""
        low = name.lower()
        return cls(COMPACT_FORMS.get(low, low), name, f"{name}: {value}", len(name) + 1)

    @property
    def value(self) -> str:
        """The field value, unfolded (RFC 3261 §7.3.1) and stripped of surrounding LWS."""
        v = self.raw[self.vstart :]
        if "\n" in v:
            v = _FOLD_RE.sub(" ", v)
        return v.strip(" \t")

    def __repr__(self) -> str:
        return f"Field({self.raw!r})"


def _split_head(data: bytes, head_len: int) -> list[Field]:
    """The fields of a header block the accelerator checked (ASCII, CRLF, unfolded)."""
    speedups = _accel.SPEEDUPS
    if speedups is not None:
        return speedups.fields(data, head_len, Field)
    fields: list[Field] = []
    for line in data[:head_len].decode("ascii").split("\r\n")[1:-1]:
        colon = line.find(":")
        name = line[:colon].rstrip(" \t")
        low = name.lower()
        fields.append(Field(COMPACT_FORMS.get(low, low), name, line, colon + 1))
    return fields


def via_from_parts(parts: _accel.ViaParts) -> Via:
    """The Via the accelerator read (what :func:`~sipedge.sip.hdr.via.parse_via` makes)."""
    transport, host, port, params = parts
    return Via(transport, host, port, Params._lazy(params) if params else Params(), "SIP/2.0")


def _top_via(text: str) -> Via:
    """The first via-parm of a Via value."""
    speedups = _accel.SPEEDUPS
    if speedups is not None:
        parts = speedups.via(text)
        if parts is not None:
            return via_from_parts(parts[0])
    return parse_via(text)[0]


_NO_CSEQ = CSeq(0, "")  # placeholder until the parser or the builder sets it (immutable)


class Message(ABC):
    """Common part of :class:`Request` and :class:`Response`.

    Eager attributes: ``vias`` (top first), ``from_``, ``to`` (with ``from_tag`` and
    ``to_tag``), ``call_id``, ``cseq``, ``routes``, ``max_forwards`` (None if absent),
    ``content_length`` (None if absent) and ``body``.
    """

    __slots__ = (
        "_cache",
        "_data",
        "_dirty",
        "_fields",
        "_from",
        "_from_raw",
        "_hlen",
        "_to",
        "_to_raw",
        "body",
        "call_id",
        "content_length",
        "cseq",
        "from_tag",
        "max_forwards",
        "routes",
        "to_tag",
        "vias",
    )

    is_request: bool = False

    def __init__(self, fields: list[Field], body: bytes, data: bytes | None = None) -> None:
        self._fields: list[Field] | None = fields
        self._hlen = 0
        self.body = body
        self._data = data
        self._dirty = data is None
        self._cache: dict[str, object] = {}
        self.vias: list[Via] = []
        self.routes: list[NameAddr] = []
        self.max_forwards: int | None = None
        self.content_length: int | None = None
        self.call_id = ""
        self.cseq = _NO_CSEQ
        self._from: NameAddr | None = None
        self._to: NameAddr | None = None
        self._from_raw = ""
        self._to_raw = ""
        self.from_tag: str | None = None
        self.to_tag: str | None = None

    @property
    def fields(self) -> list[Field]:
        """The header fields in order (a list the edit methods change in place)."""
        fields = self._fields
        if fields is None:
            # Parsed by the accelerator: split the header block on first use.
            fields = self._fields = _split_head(self._data or b"", self._hlen)
        return fields

    @fields.setter
    def fields(self, value: list[Field]) -> None:
        self._fields = value

    # ----------------------------------------------------------------- eager values
    @property
    def from_(self) -> NameAddr:
        """The From header, parsed on first access (``from_tag`` is read eagerly)."""
        if self._from is None:
            self._from = parse_name_addr(self._from_raw)
        return self._from

    @from_.setter
    def from_(self, value: NameAddr) -> None:
        self._from = value
        self._from_raw = str(value)
        self.from_tag = value.tag

    @property
    def to(self) -> NameAddr:
        """The To header, parsed on first access (``to_tag`` is read eagerly)."""
        if self._to is None:
            self._to = parse_name_addr(self._to_raw)
        return self._to

    @to.setter
    def to(self, value: NameAddr) -> None:
        self._to = value
        self._to_raw = str(value)
        self.to_tag = value.tag

    def set_from_raw(self, value: str) -> None:
        """Record the From value: its syntax is checked and its tag read now, the rest
        decoded on access."""
        self._from = None
        self._from_raw = value
        self.from_tag = quick_tag(value)

    def set_to_raw(self, value: str) -> None:
        """Record the To value (see :meth:`set_from_raw`)."""
        self._to = None
        self._to_raw = value
        self.to_tag = quick_tag(value)

    @property
    @abstractmethod
    def start_line(self) -> str:
        """The start line as text (request line or status line)."""

    def _refresh(self, key: str) -> None:
        """Recompute the eager attribute of ``key`` from the fields (after an edit)."""
        values = [f.value for f in self.fields if f.key == key]
        if key == "via":
            self.vias = [v for val in values for v in parse_via(val)]
        elif key == "route":
            self.routes = [r for val in values for r in parse_name_addr_list(val)]
        elif key == "max-forwards":
            self.max_forwards = parse_uint(values[0], "Max-Forwards", 255) if values else None
        elif key == "content-length":
            self.content_length = (
                parse_uint(values[0], "Content-Length", 2**31 - 1) if values else None
            )
        elif not values:
            raise ParseError(f"missing {pretty_name(key)} header")
        elif key == "from":
            self.set_from_raw(values[0])
        elif key == "to":
            self.set_to_raw(values[0])
        elif key == "call-id":
            self.call_id = values[0]
        elif key == "cseq":
            self.cseq = parse_cseq(values[0])

    # ----------------------------------------------------------------- lazy access
    def header(self, name: str) -> str | None:
        """Value of the first field called ``name`` (any case, compact or long form)."""
        key = header_key(name)
        for f in self.fields:
            if f.key == key:
                return f.value
        return None

    def header_list(self, name: str) -> list[str]:
        """Every value of ``name``: comma lists split for list headers (RFC 3261 §7.3.1)."""
        key = header_key(name)
        values = [f.value for f in self.fields if f.key == key]
        if key in LIST_HEADERS:
            return [v for val in values if val for v in split_commas(val)]
        return values

    def has_header(self, name: str) -> bool:
        """Whether at least one field called ``name`` is present."""
        key = header_key(name)
        return any(f.key == key for f in self.fields)

    def iter_headers(self) -> Iterator[tuple[str, str]]:
        """Yield ``(name as written, value)`` for every field, in order."""
        for f in self.fields:
            yield f.name, f.value

    def _cached(self, key: str) -> object | None:
        return self._cache.get(key)

    @property
    def contacts(self) -> list[NameAddr] | Literal["*"]:
        """The Contact values, or ``"*"`` for a wildcard (RFC 3261 §10.2.2)."""
        hit = self._cache.get("contact")
        if hit is None:
            values = [f.value for f in self.fields if f.key == "contact"]
            result: list[NameAddr] | Literal["*"] = []
            for val in values:
                parsed = parse_contact(val)
                if parsed == "*":
                    if values != [val]:
                        raise ParseError("Contact '*' mixed with other contacts")
                    result = "*"
                elif isinstance(result, list):
                    result.extend(parsed)
            self._cache["contact"] = hit = result
        return hit  # type: ignore[return-value]

    @property
    def record_routes(self) -> list[NameAddr]:
        """The Record-Route values, top first."""
        return self._name_addrs("record-route")

    @property
    def paths(self) -> list[NameAddr]:
        """The Path values (RFC 3327), top first."""
        return self._name_addrs("path")

    def _name_addrs(self, key: str) -> list[NameAddr]:
        hit = self._cache.get(key)
        if hit is None:
            vals = [f.value for f in self.fields if f.key == key]
            hit = [r for val in vals for r in parse_name_addr_list(val)]
            self._cache[key] = hit
        return hit  # type: ignore[return-value]

    def option_tags(self, name: str) -> list[str]:
        """Option tags of Require, Proxy-Require, Supported or Unsupported (lower-cased)."""
        return [t.lower() for t in self.header_list(name)]

    @property
    def content_type(self) -> str | None:
        """The Content-Type media type, lower-cased, without parameters."""
        v = self.header("content-type")
        return v.split(";", 1)[0].strip().lower() if v else None

    @property
    def expires(self) -> int | None:
        """The Expires header as seconds (RFC 3261 §20.19), None if absent."""
        v = self.header("expires")
        return None if v is None else parse_uint(v, "Expires", 2**32 - 1)

    # ----------------------------------------------------------------- edits
    def _touch(self, key: str) -> None:
        self._dirty = True
        self._cache.pop(key, None)
        if key in _EAGER:
            self._refresh(key)

    def _first_index(self, key: str) -> int:
        for i, f in enumerate(self.fields):
            if f.key == key:
                return i
        return -1

    def add_header(self, name: str, value: str, *, top: bool = False) -> None:
        """Add a field: first of its kind when ``top``, else after the last of its kind
        (or at the end of the header when there is none)."""
        new = Field.make(name, value)
        fields = self.fields
        first = self._first_index(new.key)
        if first < 0:
            fields.append(new)
        elif top:
            fields.insert(first, new)
        else:
            last = max(i for i in range(first, len(fields)) if fields[i].key == new.key)
            fields.insert(last + 1, new)
        self._touch(new.key)

    def set_header(self, name: str, value: str) -> None:
        """Replace every field called ``name`` by one, in the place of the first."""
        key = header_key(name)
        idx = self._first_index(key)
        if idx < 0:
            self.fields.append(Field.make(name, value))
        else:
            old = self.fields[idx]
            self.fields[idx] = Field.make(old.name, value)
            self.fields[idx + 1 :] = [f for f in self.fields[idx + 1 :] if f.key != key]
        self._touch(key)

    def remove_header(self, name: str) -> int:
        """Remove every field called ``name``; return how many were removed."""
        key = header_key(name)
        before = len(self.fields)
        self.fields = [f for f in self.fields if f.key != key]
        removed = before - len(self.fields)
        if removed:
            self._touch(key)
        return removed

    def _pop_first_value(self, key: str) -> str:
        idx = self._first_index(key)
        if idx < 0:
            raise ParseError(f"no {pretty_name(key)} header to remove")
        f = self.fields[idx]
        values = split_commas(f.value)
        if len(values) == 1:
            del self.fields[idx]
        else:
            self.fields[idx] = Field.make(f.name, ", ".join(values[1:]))
        return values[0]

    def _replace_first_value(self, key: str, text: str) -> None:
        idx = self._first_index(key)
        f = self.fields[idx]
        values = split_commas(f.value)
        self.fields[idx] = Field.make(f.name, ", ".join([text, *values[1:]]))

    def push_via(self, via: Via | str) -> None:
        """Insert a Via above all others (RFC 3261 §16.6 step 8)."""
        parsed = _top_via(via) if isinstance(via, str) else via
        new = Field.make("Via", str(via))
        idx = self._first_index("via")
        self.fields.insert(max(idx, 0), new)
        self.vias.insert(0, parsed)
        self._dirty = True

    def pop_via(self) -> Via:
        """Remove the top Via value and return it (RFC 3261 §16.7 step 3)."""
        top = self.vias.pop(0)
        self._pop_first_value("via")
        self._dirty = True
        return top

    def replace_top_via(self, via: Via) -> None:
        """Write the top Via anew, e.g. after adding received/rport (RFC 3261 §18.2.1)."""
        self._replace_first_value("via", str(via))
        self.vias[0] = via
        self._dirty = True

    def pop_route(self) -> NameAddr:
        """Remove the top Route value and return it (RFC 3261 §16.4, §16.12)."""
        top = self.routes[0]
        self._pop_first_value("route")
        self._touch("route")
        return top

    def pop_last_route(self) -> NameAddr:
        """Remove the last Route value and return it (strict-router fix, §16.4)."""
        last = self.routes[-1]
        idx = max(i for i, f in enumerate(self.fields) if f.key == "route")
        f = self.fields[idx]
        values = split_commas(f.value)
        if len(values) == 1:
            del self.fields[idx]
        else:
            self.fields[idx] = Field.make(f.name, ", ".join(values[:-1]))
        self._touch("route")
        return last

    def add_record_route(self, value: str | NameAddr) -> None:
        """Insert a Record-Route above the existing ones (RFC 3261 §16.6 step 4)."""
        self.add_header("Record-Route", str(value), top=True)

    def set_max_forwards(self, value: int) -> None:
        """Set Max-Forwards (RFC 3261 §16.6 step 3)."""
        fields = self.fields
        i = self._first_index("max-forwards")
        if i >= 0:
            fields[i] = Field.make(fields[i].name, str(value))
        else:
            fields.append(Field.make("Max-Forwards", str(value)))
        self.max_forwards = value
        self._dirty = True

    def set_body(self, body: bytes, content_type: str | None = None) -> None:
        """Replace the body; Content-Length (and Content-Type when given) follow."""
        self.body = body
        self.set_header("Content-Length", str(len(body)))
        if content_type is not None:
            self.set_header("Content-Type", content_type)
        elif not body:
            self.remove_header("Content-Type")
        self._dirty = True

    def _copy_into(self, new: Message) -> None:
        # Field objects are never mutated after parsing; an unsplit header block is shared.
        fields = self._fields
        new._fields = None if fields is None else list(fields)
        new._hlen = self._hlen
        new.body = self.body
        new._data = self._data
        new._dirty = self._dirty
        new._cache = {}
        new.vias = list(self.vias)
        new.routes = list(self.routes)
        new.max_forwards = self.max_forwards
        new.content_length = self.content_length
        new.call_id = self.call_id
        new.cseq = self.cseq
        new._from = self._from
        new._to = self._to
        new._from_raw = self._from_raw
        new._to_raw = self._to_raw
        new.from_tag = self.from_tag
        new.to_tag = self.to_tag

    # ----------------------------------------------------------------- output
    @property
    def size_hint(self) -> int:
        """Bytes of the message as received (or as it would serialise now)."""
        return len(self._data) if self._data is not None else len(self.to_bytes())

    @property
    def dirty(self) -> bool:
        """Whether the message was edited since it was parsed."""
        return self._dirty

    def to_bytes(self) -> bytes:
        """Serialise: the original bytes when untouched, else the start line and fields
        with every untouched field written back exactly as received."""
        if not self._dirty and self._data is not None:
            return self._data
        parts = [f.raw for f in self.fields]
        parts.insert(0, self.start_line)
        head = "\r\n".join(parts)
        return head.encode("utf-8", "surrogateescape") + b"\r\n\r\n" + self.body

    __bytes__ = to_bytes


class Request(Message):
    """A SIP request (RFC 3261 §7.1)."""

    __slots__ = ("_uri", "_uri_text", "method", "version")
    is_request = True

    def __init__(
        self,
        method: str,
        uri: str | URI,
        fields: list[Field],
        body: bytes = b"",
        data: bytes | None = None,
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(fields, body, data)
        self.method = method
        self.version = version
        self._uri: URI | None = uri if isinstance(uri, URI) else None
        self._uri_text = str(uri)

    def copy(self) -> Request:
        """An independent copy to edit (one per forwarded branch)."""
        new = Request.__new__(Request)
        self._copy_into(new)
        new.method = self.method
        new.version = self.version
        new._uri = self._uri
        new._uri_text = self._uri_text
        return new

    @property
    def uri(self) -> URI:
        """The Request-URI, parsed on first access."""
        if self._uri is None:
            self._uri = parse_uri(self._uri_text)
        return self._uri

    @property
    def uri_text(self) -> str:
        """The Request-URI exactly as written."""
        return self._uri_text

    def set_uri(self, uri: URI | str) -> None:
        """Rewrite the Request-URI (RFC 3261 §16.6 step 2)."""
        self._uri = uri if isinstance(uri, URI) else None
        self._uri_text = str(uri)
        self._dirty = True

    @property
    def start_line(self) -> str:
        return f"{self.method} {self._uri_text} {self.version}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self._uri_text} call-id={self.call_id!r}>"


class Response(Message):
    """A SIP response (RFC 3261 §7.2)."""

    __slots__ = ("reason", "status", "version")

    def __init__(
        self,
        status: int,
        reason: str,
        fields: list[Field],
        body: bytes = b"",
        data: bytes | None = None,
        version: str = "SIP/2.0",
    ) -> None:
        super().__init__(fields, body, data)
        self.status = status
        self.reason = reason
        self.version = version

    @property
    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def copy(self) -> Response:
        """An independent copy to edit."""
        new = Response.__new__(Response)
        self._copy_into(new)
        new.status = self.status
        new.reason = self.reason
        new.version = self.version
        return new

    @property
    def method(self) -> str:
        """The method of the request this answers (from CSeq)."""
        return self.cseq.method

    def set_status(self, status: int, reason: str) -> None:
        """Change the status line (a proxy may rewrite the reason phrase, §16.7)."""
        self.status = status
        self.reason = reason
        self._dirty = True

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call-id={self.call_id!r}>"
