"""The Via header field (RFC 3261 §20.42, §25.1; rport RFC 3581; IPv6 RFC 5118)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .._scan import split_commas
from ..errors import ParseError
from ..params import FAST_PARAMS_RE, LWS, TOKEN_CHARS, Params, parse_param_items
from ..uri import HOST, check_ipv6_reference

_T = rf"[{TOKEN_CHARS}]++"
# Canonical form: "SIP/2.0/UDP host:port;params" with no LWS and no quoted strings.
_FAST_RE = re.compile(
    rf"SIP/2\.0/({_T}) ({HOST})(?::([0-9]{{1,5}}))?+({FAST_PARAMS_RE.pattern})",
    re.ASCII,
)
# Any LWS the grammar allows (SLASH, COLON and SEMI carry SWS; LWS before sent-by).
_W = r"[ \t\r\n]"
_SLOW_RE = re.compile(
    rf"{_W}*({_T}){_W}*/{_W}*({_T}){_W}*/{_W}*({_T}){_W}+({HOST})"
    rf"(?:{_W}*:{_W}*([0-9]++))?+{_W}*(.*)",
    re.ASCII | re.DOTALL,
)
_PROTOCOL_RE = re.compile(rf"{_W}*{_T}{_W}*/{_W}*{_T}{_W}*/{_W}*{_T}", re.ASCII)
_DIGITS = re.compile(r"[0-9]{1,5}", re.ASCII)


@dataclass(slots=True, eq=False)
class Via:
    """One ``via-parm``: ``SIP/2.0/UDP host:port;branch=...``.

    ``transport`` is upper-cased; ``host`` keeps IPv6 brackets; ``port`` is None when
    absent. ``str()`` gives the canonical form (LWS dropped).
    """

    transport: str
    host: str
    port: int | None
    params: Params = field(default_factory=Params)
    protocol: str = "SIP/2.0"

    def __str__(self) -> str:
        if self.port is None:
            return f"{self.protocol}/{self.transport} {self.host}{self.params}"
        return f"{self.protocol}/{self.transport} {self.host}:{self.port}{self.params}"

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter (RFC 3261 §8.1.1.7) or None."""
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        """The ``received`` parameter (RFC 3261 §18.2.1) or None."""
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """RFC 3581: None when absent, -1 when present without a value, else the port."""
        if "rport" not in self.params:
            return None
        v = self.params.get("rport")
        return -1 if v is None else int(v)

    @property
    def maddr(self) -> str | None:
        """The ``maddr`` parameter or None."""
        return self.params.get("maddr")

    @property
    def ttl(self) -> int | None:
        """The ``ttl`` parameter as an int, or None."""
        v = self.params.get("ttl")
        return None if v is None else int(v)

    @property
    def alias(self) -> bool:
        """True when the ``alias`` flag (RFC 5923) is present."""
        return "alias" in self.params

    @property
    def sent_by(self) -> tuple[str, int | None]:
        """``(host, port)`` of the sent-by (RFC 3261 §18.2.1)."""
        return (self.host, self.port)

    def set_received(self, address: str) -> None:
        """Set ``received`` (RFC 3261 §18.2.1); IPv6 addresses are written bare (RFC 5118)."""
        if address.startswith("[") and address.endswith("]"):
            address = address[1:-1]
        self.params.set("received", address)

    def set_rport(self, port: int) -> None:
        """Fill in ``rport`` with the source port of the request (RFC 3581 §4)."""
        self.params.set("rport", str(port))


def parse_via(value: str) -> list[Via]:
    """Parse a Via header field value, which may hold several comma-separated via-parms.

    Raises :class:`ParseError` (400) naming the fault on malformed input.
    """
    if "," not in value and '"' not in value:
        return [_parse_one(value.strip(LWS))]
    return [_parse_one(part) for part in split_commas(value)]


def _parse_one(text: str) -> Via:
    m = _FAST_RE.fullmatch(text)
    if m is not None:
        transport, host, port_s, params_s = m.groups()
        protocol = "SIP/2.0"
        if not params_s:
            params = Params()
        else:
            params = Params._lazy(params_s)
            low = params_s.lower()
            if "rport=" in low or "ttl=" in low or ";branch;" in low + ";":
                _check_params(params)
    else:
        protocol, transport, host, port_s, params = _parse_slow(text)
    port = None
    if port_s is not None:
        port = int(port_s)
        if port > 65535:
            raise ParseError(f"Via port out of range: {port_s}")
    if host[0] == "[":
        check_ipv6_reference(host)
    return Via(transport.upper(), host, port, params, protocol)


def _parse_slow(text: str) -> tuple[str, str, str, str | None, Params]:
    m = _SLOW_RE.fullmatch(text)
    if m is None:
        raise ParseError(f"malformed Via: {_diagnose(text)}")
    name, version, transport, host, port_s, rest = m.groups()
    if port_s is not None and len(port_s) > 5:
        raise ParseError(f"Via port out of range: {port_s[:12]}")
    if rest and rest[0] != ";":
        raise ParseError("malformed Via: junk after sent-by")
    params = Params._trusted(parse_param_items(rest), None) if rest else Params()
    _check_params(params)
    return f"{name}/{version}", transport, host, port_s, params


def _diagnose(text: str) -> str:
    if not text.strip(LWS):
        return "empty Via value"
    m = _PROTOCOL_RE.match(text)
    if m is None:
        return "bad sent-protocol (expected SIP/2.0/transport)"
    if not text[m.end() :].strip(LWS) or text[m.end() : m.end() + 1] not in LWS:
        return "missing sent-by after sent-protocol"
    return "bad sent-by host or port"


def _check_params(params: Params) -> None:
    """Values the grammar constrains (RFC 3261 §20.42, RFC 3581)."""
    rport = params.get("rport")
    if rport is not None and (_DIGITS.fullmatch(rport) is None or int(rport) > 65535):
        raise ParseError("Via rport must be a port number")
    ttl = params.get("ttl")
    if ttl is not None and (_DIGITS.fullmatch(ttl) is None or int(ttl) > 255):
        raise ParseError("Via ttl must be 0..255")
    if "branch" in params and params.get("branch") is None:
        raise ParseError("Via branch without a value")
