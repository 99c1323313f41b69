"""SDP parsing, inspection and minimal editing (RFC 8866, formerly RFC 4566).

A :class:`SessionDescription` keeps every line, in order and verbatim, split into the
session-level section and one :class:`MediaSection` per ``m=`` line. Only the lines an edit
touches are rebuilt, so ``parse_sdp(data).to_bytes() == data`` for well-formed input (CRLF
line ends; bare LF is accepted on input and written back as CRLF).

Structural lines (``v=``, ``o=``, ``s=``, ``t=``, ``m=``, ``c=``) are checked when parsing;
attribute values are interpreted on access. Either way, faulty peer input raises only
:class:`ParseError`; bad arguments to the edit methods raise :class:`ProtocolError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from .errors import ParseError, ProtocolError

__all__ = [
    "DIRECTIONS",
    "Attribute",
    "Candidate",
    "Connection",
    "Crypto",
    "Fingerprint",
    "Group",
    "Media",
    "MediaSection",
    "Origin",
    "Rtcp",
    "SdpLine",
    "SessionDescription",
    "parse_sdp",
]

# RFC 8866 §6.7 (and RFC 3264 §5.1): the default when none is present is sendrecv.
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_KINDS = frozenset("abcdefghijklmnopqrstuvwxyz")


@dataclass(slots=True)
class SdpLine:
    """One ``<type>=<value>`` line (RFC 8866 §5), without its line end."""

    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}={self.value}"


def _fields(value: str, what: str, minimum: int, maximum: int | None = None) -> list[str]:
    parts = value.split()
    if len(parts) < minimum or (maximum is not None and len(parts) > maximum):
        raise ParseError(f"malformed SDP {what}: {value[:60]!r}")
    return parts


def _port(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or int(text) > 65535:
        raise ParseError(f"bad port in SDP {what}: {text[:20]!r}")
    return int(text)


def _integer(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise ParseError(f"bad number in SDP {what}: {text[:20]!r}")
    return int(text)


def _clean(text: str) -> str:
    """Reject a value that cannot sit on one SDP line (local misuse)."""
    if any(c in text for c in "\r\n\x00"):
        raise ProtocolError("SDP values cannot contain CR, LF or NUL")
    return text


def _addrtype_for(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


@dataclass(frozen=True, slots=True)
class Origin:
    """The ``o=`` line (RFC 8866 §5.2)."""

    username: str
    sess_id: str
    sess_version: str
    nettype: str
    addrtype: str
    address: str

    @classmethod
    def parse(cls, value: str) -> Origin:
        """Parse an ``o=`` value; :class:`ParseError` unless it has six fields."""
        return cls(*_fields(value, "origin", 6, 6))

    def to_value(self) -> str:
        """The ``o=`` value."""
        head = (self.username, self.sess_id, self.sess_version)
        return " ".join((*head, self.nettype, self.addrtype, self.address))


@dataclass(frozen=True, slots=True)
class Connection:
    """A ``c=`` line (RFC 8866 §5.7); ``suffix`` keeps a multicast ``/ttl/count`` verbatim."""

    nettype: str
    addrtype: str
    address: str
    suffix: str = ""

    @classmethod
    def parse(cls, value: str) -> Connection:
        """Parse a ``c=`` value; :class:`ParseError` unless it has three fields."""
        nettype, addrtype, addr = _fields(value, "connection", 3, 3)
        host, slash, rest = addr.partition("/")
        if not host:
            raise ParseError(f"empty SDP connection address: {value[:60]!r}")
        return cls(nettype, addrtype, host, slash + rest)

    def to_value(self) -> str:
        """The ``c=`` value."""
        return f"{self.nettype} {self.addrtype} {self.address}{self.suffix}"


@dataclass(frozen=True, slots=True)
class Media:
    """The ``m=`` line (RFC 8866 §5.14); ``port_count`` is None when not written."""

    media: str
    port: int
    port_count: int | None
    proto: str
    formats: tuple[str, ...]

    @classmethod
    def parse(cls, value: str) -> Media:
        """Parse an ``m=`` value."""
        media, port_text, proto, *formats = _fields(value, "media line", 3)
        port_part, slash, count_part = port_text.partition("/")
        count = _integer(count_part, "port count") if slash else None
        if count == 0:
            raise ParseError("SDP port count of zero")
        return cls(media, _port(port_part, "media line"), count, proto, tuple(formats))

    def to_value(self) -> str:
        """The ``m=`` value."""
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        return " ".join((self.media, port, self.proto, *self.formats))


@dataclass(frozen=True, slots=True)
class Attribute:
    """An ``a=`` line (RFC 8866 §5.13): a property (``value`` None) or ``name:value``."""

    name: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Attribute:
        """Split an ``a=`` value at its first colon."""
        name, colon, value = text.partition(":")
        return cls(name, value if colon else None)

    def to_value(self) -> str:
        """The ``a=`` value."""
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class Candidate:
    """An ICE ``candidate`` attribute value (RFC 8839 §5.1)."""

    foundation: str
    component: int
    transport: str
    priority: int
    address: str
    port: int
    type: str
    raddr: str | None = None
    rport: int | None = None
    extensions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: str) -> Candidate:
        """Parse the text after ``a=candidate:``."""
        f = _fields(value, "candidate", 8)
        if f[6] != "typ" or len(f) % 2:
            raise ParseError(f"malformed SDP candidate: {value[:60]!r}")
        pairs = list(zip(f[8::2], f[9::2], strict=True))
        raddr = rport = None
        if pairs and pairs[0][0] == "raddr":
            raddr = pairs.pop(0)[1]
        if pairs and pairs[0][0] == "rport":
            rport = _port(pairs.pop(0)[1], "candidate rport")
        component = _integer(f[1], "candidate component")
        priority = _integer(f[3], "candidate priority")
        port = _port(f[5], "candidate")
        return cls(f[0], component, f[2], priority, f[4], port, f[7], raddr, rport, tuple(pairs))

    def to_value(self) -> str:
        """The text after ``a=candidate:``."""
        parts = [self.foundation, str(self.component), self.transport, str(self.priority)]
        parts += [self.address, str(self.port), "typ", self.type]
        if self.raddr is not None:
            parts += ["raddr", self.raddr]
        if self.rport is not None:
            parts += ["rport", str(self.rport)]
        for name, value in self.extensions:
            parts += [name, value]
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A DTLS ``fingerprint`` attribute (RFC 8122 §5): hash function and hex value."""

    hash_func: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        """Parse e.g. ``sha-256 AB:CD:...``."""
        hash_func, value = _fields(text, "fingerprint", 2, 2)
        return cls(hash_func.lower(), value)


@dataclass(frozen=True, slots=True)
class Crypto:
    """An SDES ``crypto`` attribute (RFC 4568 §9.1)."""

    tag: int
    suite: str
    key_params: tuple[str, ...]  # each e.g. "inline:<base64>|2^20|1:32"
    session_params: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Crypto:
        """Parse ``<tag> <suite> <key-params> *(<session-param>)``."""
        tag, suite, keys, *session = _fields(text, "crypto", 3)
        if len(tag) > 9:
            raise ParseError("SDP crypto tag too long")
        return cls(_integer(tag, "crypto tag"), suite, tuple(keys.split(";")), tuple(session))


@dataclass(frozen=True, slots=True)
class Rtcp:
    """An ``rtcp`` attribute (RFC 3605 §2.1): port and optional address."""

    port: int
    nettype: str | None = None
    addrtype: str | None = None
    address: str | None = None

    @classmethod
    def parse(cls, text: str) -> Rtcp:
        """Parse ``<port> [<nettype> <addrtype> <address>]``."""
        f = _fields(text, "rtcp attribute", 1, 4)
        if len(f) not in (1, 4):
            raise ParseError(f"malformed SDP rtcp attribute: {text[:60]!r}")
        port = _port(f[0], "rtcp attribute")
        return cls(port) if len(f) == 1 else cls(port, f[1], f[2], f[3])


@dataclass(frozen=True, slots=True)
class Group:
    """A session-level ``group`` attribute (RFC 5888 §5), e.g. ``BUNDLE 0 1``."""

    semantics: str
    mids: tuple[str, ...]


class _Section:
    """Lines of one SDP section, with attribute access and edits shared by both levels."""

    # RFC 8866 §5: line types that precede c= in the section, and where c= goes.
    _BEFORE_C = frozenset("vosiuepm")

    def __init__(self, lines: list[SdpLine]) -> None:
        self.lines = lines

    def attributes(self) -> list[Attribute]:
        """All ``a=`` lines of this section, in order."""
        return [Attribute.parse(ln.value) for ln in self.lines if ln.kind == "a"]

    def attribute_values(self, name: str) -> list[str]:
        """Values of every ``a=name`` line (``""`` for a property attribute)."""
        return [a.value or "" for a in self.attributes() if a.name == name]

    def attribute(self, name: str) -> str | None:
        """Value of the first ``a=name`` line, ``""`` for a property, None when absent."""
        values = self.attribute_values(name)
        return values[0] if values else None

    def has_attribute(self, name: str) -> bool:
        """Whether an ``a=name`` line is present."""
        return self.attribute(name) is not None

    def add_attribute(self, name: str, value: str | None = None) -> None:
        """Append ``a=name[:value]`` at the end of this section (RFC 8866 §5: a= come last)."""
        if not name or ":" in name or " " in name:
            raise ProtocolError(f"bad SDP attribute name {name!r}")
        text = Attribute(_clean(name), None if value is None else _clean(value)).to_value()
        self.lines.append(SdpLine("a", text))

    def remove_attributes(self, name: str, value: str | None = None) -> int:
        """Remove the ``a=name`` lines (only those with ``value`` if given); return how many."""
        keep = [
            ln
            for ln in self.lines
            if not (
                ln.kind == "a"
                and (a := Attribute.parse(ln.value)).name == name
                and (value is None or a.value == value)
            )
        ]
        removed = len(self.lines) - len(keep)
        self.lines[:] = keep
        return removed

    @property
    def connection(self) -> Connection | None:
        """This section's own ``c=`` line (the first one), if any."""
        for ln in self.lines:
            if ln.kind == "c":
                return Connection.parse(ln.value)
        return None

    def set_connection(self, address: str, addrtype: str | None = None) -> None:
        """Point every ``c=`` line of this section at ``address``, adding one if missing.

        ``addrtype`` defaults to IP6 for an address with a colon, else IP4.
        """
        new = Connection("IN", addrtype or _addrtype_for(address), _clean(address))
        touched = False
        for ln in self.lines:
            if ln.kind == "c":
                old = Connection.parse(ln.value)
                ln.value = Connection(old.nettype, new.addrtype, new.address).to_value()
                touched = True
        if not touched:
            at = 0
            while at < len(self.lines) and self.lines[at].kind in self._BEFORE_C:
                at += 1
            self.lines.insert(at, SdpLine("c", new.to_value()))

    @property
    def own_direction(self) -> str | None:
        """The direction attribute written in this section, if any (last one wins)."""
        found = [ln.value for ln in self.lines if ln.kind == "a" and ln.value in DIRECTIONS]
        return found[-1] if found else None

    def set_direction(self, direction: str) -> None:
        """Replace this section's direction attribute in place, or append one."""
        if direction not in DIRECTIONS:
            raise ProtocolError(f"unknown SDP direction {direction!r}")
        found = [i for i, ln in enumerate(self.lines) if ln.kind == "a" and ln.value in DIRECTIONS]
        at = found[0] if found else None
        for name in DIRECTIONS:
            self.remove_attributes(name)
        if at is None:
            self.lines.append(SdpLine("a", direction))
        else:
            self.lines.insert(at, SdpLine("a", direction))

    def fingerprints(self) -> list[Fingerprint]:
        """This section's ``fingerprint`` attributes (RFC 8122 §5)."""
        return [Fingerprint.parse(v) for v in self.attribute_values("fingerprint")]


class MediaSection(_Section):
    """One ``m=`` section; ``session`` gives the session-level fallbacks."""

    def __init__(self, lines: list[SdpLine], session: _Section) -> None:
        super().__init__(lines)
        self.session = session
        Media.parse(lines[0].value)

    @property
    def media(self) -> Media:
        """The parsed ``m=`` line."""
        return Media.parse(self.lines[0].value)

    def set_port(self, port: int) -> None:
        """Rewrite the ``m=`` line with a new port (0 rejects the stream, RFC 3264 §6)."""
        if not 0 <= port <= 65535:
            raise ProtocolError(f"port out of range: {port}")
        m = self.media
        self.lines[0].value = Media(m.media, port, m.port_count, m.proto, m.formats).to_value()

    @property
    def effective_connection(self) -> Connection | None:
        """The media-level ``c=``, else the session-level one (RFC 8866 §5.7)."""
        return self.connection or self.session.connection

    def _inherited(self, name: str) -> str | None:
        own = self.attribute(name)
        return own if own is not None else self.session.attribute(name)

    @property
    def direction(self) -> str:
        """Effective direction: media level, else session level, else sendrecv (§6.7)."""
        return self.own_direction or self.session.own_direction or "sendrecv"

    @property
    def mid(self) -> str | None:
        """The ``mid`` attribute (RFC 5888 §4)."""
        return self.attribute("mid")

    @property
    def ice_ufrag(self) -> str | None:
        """``ice-ufrag``, media level overriding session level (RFC 8839 §5.4)."""
        return self._inherited("ice-ufrag")

    @property
    def ice_pwd(self) -> str | None:
        """``ice-pwd``, media level overriding session level (RFC 8839 §5.4)."""
        return self._inherited("ice-pwd")

    def candidates(self) -> list[Candidate]:
        """The ICE candidates of this media section (RFC 8839 §5.1)."""
        return [Candidate.parse(v) for v in self.attribute_values("candidate")]

    def effective_fingerprints(self) -> list[Fingerprint]:
        """Media-level fingerprints, else the session-level ones (RFC 8122 §5)."""
        return self.fingerprints() or self.session.fingerprints()

    @property
    def setup(self) -> str | None:
        """DTLS ``setup`` role (RFC 4145 §4, RFC 8842 §5), media level else session."""
        return self._inherited("setup")

    def crypto(self) -> list[Crypto]:
        """SDES ``crypto`` attributes, in preference order (RFC 4568 §9.1)."""
        return [Crypto.parse(v) for v in self.attribute_values("crypto")]

    @property
    def rtcp_mux(self) -> bool:
        """Whether ``a=rtcp-mux`` is present (RFC 5761 §5.1.1)."""
        return self.has_attribute("rtcp-mux")

    @property
    def rtcp(self) -> Rtcp | None:
        """The ``rtcp`` attribute (RFC 3605), if any."""
        value = self.attribute("rtcp")
        return None if value is None else Rtcp.parse(value)


class SessionDescription(_Section):
    """A parsed SDP body: session-level ``lines`` plus ``media`` sections."""

    def __init__(self, lines: list[SdpLine], media: list[MediaSection] | None = None) -> None:
        super().__init__(lines)
        self.media: list[MediaSection] = media if media is not None else []

    @property
    def origin(self) -> Origin:
        """The parsed ``o=`` line."""
        for ln in self.lines:
            if ln.kind == "o":
                return Origin.parse(ln.value)
        raise ParseError("SDP without o= line")

    def set_origin_address(self, address: str, addrtype: str | None = None) -> None:
        """Replace the address (and address type) in the ``o=`` line."""
        for ln in self.lines:
            if ln.kind == "o":
                o = Origin.parse(ln.value)
                kind = addrtype or _addrtype_for(address)
                head = (o.username, o.sess_id, o.sess_version, o.nettype)
                ln.value = Origin(*head, kind, _clean(address)).to_value()

    @property
    def ice_lite(self) -> bool:
        """Whether the session declares ``a=ice-lite`` (RFC 8839 §5.3)."""
        return self.has_attribute("ice-lite")

    def groups(self) -> list[Group]:
        """The ``group`` attributes (RFC 5888 §5)."""
        out = []
        for value in self.attribute_values("group"):
            semantics, *mids = _fields(value, "group attribute", 1)
            out.append(Group(semantics, tuple(mids)))
        return out

    def bundle_mids(self) -> tuple[str, ...]:
        """The mids of the first BUNDLE group (RFC 9143), or ``()``."""
        return next((g.mids for g in self.groups() if g.semantics == "BUNDLE"), ())

    def media_by_mid(self, mid: str) -> MediaSection | None:
        """The media section with ``a=mid:<mid>``, if any."""
        return next((m for m in self.media if m.mid == mid), None)

    def all_lines(self) -> list[SdpLine]:
        """Session lines followed by every media section's lines."""
        return self.lines + [ln for m in self.media for ln in m.lines]

    def to_text(self) -> str:
        """The SDP as text, each line ending in CRLF."""
        return "".join(f"{ln.kind}={ln.value}\r\n" for ln in self.all_lines())

    def to_bytes(self) -> bytes:
        """The SDP as bytes (the input's bytes are kept for lines not edited)."""
        return self.to_text().encode("utf-8", "surrogateescape")

    def __bytes__(self) -> bytes:
        return self.to_bytes()


def _split_lines(text: str) -> list[SdpLine]:
    raw = text.split("\n")
    if raw[-1] == "":
        raw.pop()
    while raw and raw[-1] in ("", "\r"):
        raw.pop()  # tolerate trailing blank lines
    out = []
    for number, line in enumerate(raw, 1):
        line = line.removesuffix("\r")
        if len(line) < 2 or line[1] != "=" or line[0] not in _KINDS:
            raise ParseError(f"malformed SDP line {number}: {line[:40]!r}")
        if "\r" in line or "\x00" in line:
            raise ParseError(f"SDP line {number} contains CR or NUL")
        out.append(SdpLine(line[0], line[2:]))
    return out


def _check_session(lines: list[SdpLine]) -> None:
    if not lines or lines[0].kind != "v":
        raise ParseError("SDP does not start with v=")
    if lines[0].value != "0":
        raise ParseError(f"unsupported SDP version {lines[0].value[:10]!r}")
    kinds = [ln.kind for ln in lines]
    for kind, name in (("o", "origin"), ("s", "session name")):
        if kinds.count(kind) != 1:
            raise ParseError(f"SDP needs exactly one {kind}= ({name}) line")
    if "t" not in kinds:
        raise ParseError("SDP without t= line")
    if kinds.count("v") > 1:
        raise ParseError("SDP with more than one v= line")
    Origin.parse(lines[kinds.index("o")].value)


def _check_connections(lines: list[SdpLine]) -> None:
    for ln in lines:
        if ln.kind == "c":
            Connection.parse(ln.value)


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse an SDP body (RFC 8866 §5); :class:`ParseError` names the first fault found.

    Bytes are decoded as UTF-8, keeping any invalid bytes so they are written back as is.
    Line types this module does not know are kept verbatim.
    """
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    lines = _split_lines(text)
    starts = [i for i, ln in enumerate(lines) if ln.kind == "m"] + [len(lines)]
    session = SessionDescription(lines[: starts[0]])
    _check_session(session.lines)
    _check_connections(session.lines)
    for begin, end in pairwise(starts):
        chunk = lines[begin:end]
        if any(ln.kind in ("v", "o", "s", "t") for ln in chunk):
            raise ParseError("v=, o=, s= or t= line inside a media section")
        _check_connections(chunk)
        session.media.append(MediaSection(chunk, session))
    return session
