"""SIP, SIPS and tel URIs: parsing, serialisation and comparison.

Grammar from RFC 3261 §19.1 and §25.1 (SIP-URI, SIPS-URI), RFC 3966 §3 (tel) and
RFC 5118 (IPv6 references). Any other ``absoluteURI`` scheme is kept opaque.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from .errors import ParseError
from .params import Params

# --- grammar fragments (RFC 3261 §25.1) ------------------------------------------------
# Character runs with %HH escapes, unrolled ("[c]*+(?:%HH[c]*+)*+") so the regex engine
# scans plain runs in one step.
_ESC = r"%[0-9A-Fa-f]{2}"
_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"


def _run(chars: str, min_one: bool) -> str:
    body = rf"[{chars}]*+(?:{_ESC}[{chars}]*+)*+"
    return rf"(?=[{chars}%]){body}" if min_one else body


_USER = _run(rf"{_UNRESERVED}&=+$,;?/", True)
_PASSWORD = _run(rf"{_UNRESERVED}&=+$,", False)
_LABEL = r"[A-Za-z0-9]++(?:-++[A-Za-z0-9]++)*+"
HOSTNAME = rf"{_LABEL}(?:\.{_LABEL})*+\.?+"
IPV6_REFERENCE = r"\[[0-9A-Fa-f:.]++\]"
#: ``host`` = hostname / IPv4address / IPv6reference (IPv4 is a subset of the hostname form).
HOST = rf"(?:{HOSTNAME}|{IPV6_REFERENCE})"
_PARAMCHAR = _run(rf"{_UNRESERVED}\[\]/:&+$", True)
_URI_PARAMS = rf"(?:;{_PARAMCHAR}(?:={_PARAMCHAR})?+)*+"
_HNV = rf"{_UNRESERVED}\[\]/?:+$"
_HEADER = rf"{_run(_HNV, True)}={_run(_HNV, False)}"
_HEADERS = rf"{_HEADER}(?:&{_HEADER})*+"

# Fast path: lower-case scheme and the whole URI in one match.
_SIP_RE = re.compile(
    rf"(sips?+):(?:({_USER})(?::({_PASSWORD}))?@)?({HOST})(?::([0-9]{{1,5}}))?+"
    rf"({_URI_PARAMS})(?:\?({_HEADERS}))?+",
    re.ASCII,
)
_HOST_RE = re.compile(HOST, re.ASCII)
_USER_RE = re.compile(_USER, re.ASCII)
_PASSWORD_RE = re.compile(_PASSWORD, re.ASCII)
_URI_PARAMS_RE = re.compile(_URI_PARAMS, re.ASCII)
_HEADERS_RE = re.compile(_HEADERS, re.ASCII)
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*+", re.ASCII)
# RFC 3261 absoluteURI: uric characters (RFC 2396; '[' ']' from RFC 2732).
_OPAQUE_RE = re.compile(_run(rf"{_UNRESERVED};/?:@&=+$,\[\]", True), re.ASCII)
# RFC 3966 §3: global-number-digits / local-number-digits, then *par.
_TEL_RE = re.compile(
    r"(\+(?=[0-9().\-]*[0-9])[0-9().\-]++"
    r"|(?=[0-9A-Fa-f*#().\-]*[0-9A-Fa-f*#])[0-9A-Fa-f*#().\-]++)"
    rf"((?:;[A-Za-z0-9\-]++(?:={_PARAMCHAR})?+)*+)",
    re.ASCII,
)
_ESC_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_BAD_ESC_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# RFC 2396 "reserved" characters stay escaped when comparing (RFC 3261 §19.1.4); '%' too,
# so that the normal form is unambiguous.
_KEEP_ESCAPED = frozenset(";/?:@&=+$,%")
# RFC 3261 §19.1.4: these parameters never match when present in only one URI. The RFC's
# own examples also treat transport this way (sip:bob@biloxi.com vs ;transport=udp).
_MUST_MATCH = frozenset(("user", "ttl", "method", "maddr", "transport"))
_TEL_SEPARATORS = str.maketrans("", "", "-.()")


@dataclass(slots=True, eq=False)
class URI:
    """A parsed URI. ``str()`` of a freshly parsed URI gives back its input.

    For ``sip``/``sips`` every field is used; for ``tel`` the number is in ``user`` and
    its parameters in ``params``; any other scheme keeps the rest in ``opaque``.
    Compare with :func:`uri_equal` (RFC 3261 §19.1.4), not ``==``.
    """

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: Params = field(default_factory=Params)
    headers: str | None = None
    opaque: str | None = None

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        if self.scheme == "tel":
            return f"tel:{self.user or ''}{self.params}"
        user = self.user
        if user is None:
            s = f"{self.scheme}:{self.host}"
        elif self.password is None:
            s = f"{self.scheme}:{user}@{self.host}"
        else:
            s = f"{self.scheme}:{user}:{self.password}@{self.host}"
        if self.port is not None:
            s = f"{s}:{self.port}"
        if self.params:
            s += str(self.params)
        if self.headers is not None:
            s = f"{s}?{self.headers}"
        return s

    @property
    def is_sip(self) -> bool:
        """True for ``sip`` and ``sips`` URIs."""
        return self.scheme == "sip" or self.scheme == "sips"

    @property
    def is_secure(self) -> bool:
        """True for ``sips`` (RFC 3261 §19.1)."""
        return self.scheme == "sips"

    @property
    def is_ipv6(self) -> bool:
        """True when the host is an IPv6 reference (RFC 5118)."""
        return self.host.startswith("[")

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased, or None."""
        t = self.params.get("transport")
        return t.lower() if t else None

    @property
    def lr(self) -> bool:
        """True when the ``lr`` parameter is present (RFC 3261 §19.1.1, loose routing)."""
        return "lr" in self.params

    @property
    def maddr(self) -> str | None:
        """The ``maddr`` parameter or None."""
        return self.params.get("maddr")

    @property
    def user_param(self) -> str | None:
        """The ``user`` parameter (``phone``, ``ip``, ...), lower-cased, or None."""
        u = self.params.get("user")
        return u.lower() if u else None

    def host_port(self) -> str:
        """``host`` or ``host:port``, as it would appear in the URI."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def copy(self) -> URI:
        """An independent copy (parameters included)."""
        return URI(
            self.scheme,
            self.user,
            self.password,
            self.host,
            self.port,
            self.params.copy(),
            self.headers,
            self.opaque,
        )


def parse_uri(text: str) -> URI:
    """Parse a URI (RFC 3261 §19.1, §25.1; RFC 3966 for ``tel``).

    Malformed ``sip``/``sips``/``tel`` URIs raise :class:`ParseError` (400). Other
    schemes parse to ``URI(scheme, opaque=...)`` when they are a syntactically valid
    ``absoluteURI``; whether a scheme is supported is the caller's decision (416).
    """
    m = _SIP_RE.fullmatch(text)
    if m is not None:
        scheme, user, password, host, port_s, params_s, headers = m.groups()
        params = Params._lazy(params_s) if params_s else Params()
        if port_s is None and host[0] != "[":
            return URI(scheme, user, password, host, None, params, headers)
        return URI(scheme, user, password, host, _check_hostport(host, port_s), params, headers)
    return _parse_other(text)


def _check_hostport(host: str, port_s: str | None) -> int | None:
    if host[0] == "[":
        check_ipv6_reference(host)
    if port_s is None:
        return None
    port = int(port_s)
    if port > 65535:
        raise ParseError(f"port out of range in URI: {port_s}")
    return port


def _parse_other(text: str) -> URI:
    colon = text.find(":")
    if colon <= 0:
        raise ParseError(f"URI without scheme: {_clip(text)}")
    scheme = text[:colon].lower()
    rest = text[colon + 1 :]
    if scheme == "sip" or scheme == "sips":
        m = _SIP_RE.fullmatch(f"{scheme}:{rest}")
        if m is None:
            raise ParseError(f"bad {scheme.upper()} URI ({_diagnose_sip(rest)}): {_clip(rest)}")
        return parse_uri(f"{scheme}:{rest}")
    if scheme == "tel":
        return _parse_tel(rest)
    if _SCHEME_RE.fullmatch(scheme) is None:
        raise ParseError(f"bad URI scheme: {_clip(text)}")
    if _OPAQUE_RE.fullmatch(rest) is None:
        raise ParseError(f"malformed {scheme}: URI: {_clip(text)}")
    return URI(scheme, opaque=rest)


def _diagnose_sip(rest: str) -> str:
    """Name the component of a SIP URI that does not match the grammar."""
    if not rest:
        return "empty"
    if any(c in rest for c in " \t\r\n"):
        return "whitespace"
    at = rest.find("@")
    if at >= 0:
        user, _, password = rest[:at].partition(":")
        if _USER_RE.fullmatch(user) is None:
            return "invalid user part"
        if _PASSWORD_RE.fullmatch(password) is None:
            return "invalid password"
        rest = rest[at + 1 :]
    hostport, _, headers = rest.partition("?")
    hostport, semi, params = hostport.partition(";")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return "unterminated IPv6 reference"
        host, port = hostport[: end + 1], hostport[end + 1 :]
        if port and not port.startswith(":"):
            return "junk after IPv6 reference"
        port = port[1:]
    else:
        host, _, port = hostport.partition(":")
    if _HOST_RE.fullmatch(host) is None:
        return "invalid host"
    if hostport.endswith(":") or (port and not port.isdigit()) or len(port) > 5:
        return "invalid port"
    if semi and _URI_PARAMS_RE.fullmatch(";" + params) is None:
        return "invalid uri-parameters"
    if _HEADERS_RE.fullmatch(headers) is None:
        return "invalid headers"
    return "malformed"


def check_ipv6_reference(host: str) -> None:
    """Raise :class:`ParseError` unless ``host`` is a valid ``[IPv6address]`` (RFC 5118)."""
    inner = host[1:-1]
    try:
        ipaddress.IPv6Address(inner)
    except ValueError:
        raise ParseError(f"invalid IPv6 reference {_clip(host)}") from None


def _parse_tel(rest: str) -> URI:
    m = _TEL_RE.fullmatch(rest)
    if m is None:
        raise ParseError(f"bad tel URI (RFC 3966): {_clip(rest)}")
    number, params_s = m.groups()
    params = Params._lazy(params_s) if params_s else Params()
    if number[0] != "+" and "phone-context" not in params:
        raise ParseError("local tel number without phone-context (RFC 3966 §5.1.5)")
    return URI("tel", user=number, params=params)


def unescape(s: str) -> str:
    """Undo ``%HH`` escapes (RFC 3261 §19.1.2); bytes are decoded as UTF-8.

    Invalid UTF-8 is kept as surrogate escapes; ``%`` not followed by two hex digits
    raises :class:`ParseError`.
    """
    if "%" not in s:
        return s
    if _BAD_ESC_RE.search(s) is not None:
        raise ParseError(f"bad %-escape in {_clip(s)}")
    return unquote(s, errors="surrogateescape")


def _norm(s: str) -> str:
    """Normal form for comparison: unreserved escapes decoded, the others upper-cased."""
    if "%" not in s:
        return s
    return _ESC_RE.sub(_norm_escape, s)


def _opt_norm(s: str | None) -> str | None:
    return None if s is None else _norm(s)


def _norm_escape(m: re.Match[str]) -> str:
    c = chr(int(m.group(1), 16))
    return "%" + m.group(1).upper() if c in _KEEP_ESCAPED else c


def _host_key(host: str) -> str:
    if host.startswith("["):
        try:
            return "[" + ipaddress.IPv6Address(host[1:-1]).compressed + "]"
        except ValueError:
            pass
    return host.lower()


def _param_map(params: Params) -> dict[str, str | None]:
    # Reversed, so that a repeated name keeps its first value (as Params.get does).
    return {
        _norm(n).lower(): (None if v is None else _norm(v).lower())
        for n, v in reversed(params.items())
    }


def _header_list(headers: str | None) -> list[tuple[str, str]]:
    if not headers:
        return []
    out = []
    for h in headers.split("&"):
        name, _, value = h.partition("=")
        out.append((_norm(name).lower(), _norm(value)))
    return sorted(out)


def uri_equal(a: URI, b: URI) -> bool:
    """URI equivalence per RFC 3261 §19.1.4 (sip/sips), RFC 3966 §4 (tel), else exact."""
    if a.scheme != b.scheme:
        return False
    if a.opaque is not None or b.opaque is not None:
        return a.opaque == b.opaque
    if a.scheme == "tel":
        return _tel_equal(a, b)
    # userinfo is compared case-sensitively, escapes normalised (RFC 3261 §19.1.4).
    if _opt_norm(a.user) != _opt_norm(b.user) or _opt_norm(a.password) != _opt_norm(b.password):
        return False
    if a.port != b.port or _host_key(a.host) != _host_key(b.host):
        return False
    pa, pb = _param_map(a.params), _param_map(b.params)
    for name in pa.keys() | pb.keys():
        if name in pa and name in pb:
            if pa[name] != pb[name]:
                return False
        elif name in _MUST_MATCH:
            return False
    return _header_list(a.headers) == _header_list(b.headers)


#: Ends the key of a URI that has parameters outside ``_MUST_MATCH`` (no key ends in
#: ``;`` otherwise: hosts, ports, parameter values and headers never do).
_MORE = ";"


def uri_key(uri: URI, text: str = "") -> str | None:
    """The comparison key of a SIP URI, or None for a non-SIP URI (compared in full).

    The key holds, normalised as :func:`uri_equal` compares them, the
    scheme, user, password, host, port, the parameters that must match when present
    (sorted), the headers (sorted) and, as a final ``;``, whether other parameters exist.
    For a plain ``sip:user@host:port`` (lower-case host, no escapes, no parameters) the
    key equals ``str(uri)``: pass that as ``text`` (and nothing else) to get that very
    string back, cheaply (a stored key then costs no memory).
    """
    scheme = uri.scheme
    if (scheme != "sip" and scheme != "sips") or uri.opaque is not None:
        return None
    user, password, params, host = uri.user, uri.password, uri.params, uri.host
    if (
        text
        and not params
        and uri.headers is None
        and password is None
        and (user is None or "%" not in user)
        and host[0] != "["
        and host.lower() == host
    ):
        return text  # already in normal form
    if user is None:
        key = f"{scheme}:{_host_key(host)}"
    elif password is None:
        key = f"{scheme}:{_norm(user)}@{_host_key(host)}"
    else:
        key = f"{scheme}:{_norm(user)}:{_norm(password)}@{_host_key(host)}"
    if uri.port is not None:
        key = f"{key}:{uri.port}"
    more = False
    if params:
        found = _param_map(params)
        for name in sorted(found):
            if name in _MUST_MATCH:
                value = found[name]
                key += f";{name}" if value is None else f";{name}={value}"
            else:
                more = True
    if uri.headers:
        key += "?" + "&".join(f"{n}={v}" for n, v in _header_list(uri.headers))
    if more:
        return key + _MORE
    return key


def uri_keys_equal(a: str, b: str) -> bool | None:
    """Whether the URIs of keys ``a`` and ``b`` are equivalent (RFC 3261 §19.1.4), or
    None when both have parameters outside the must-match set (compare them in full)."""
    a_more, b_more = a[-1] == _MORE, b[-1] == _MORE
    if a_more and b_more:
        return None if a == b else False
    return (a[:-1] if a_more else a) == (b[:-1] if b_more else b)


def _tel_equal(a: URI, b: URI) -> bool:
    """RFC 3966 §4: numbers without visual separators; same parameters in any order."""
    na = (a.user or "").translate(_TEL_SEPARATORS).lower()
    nb = (b.user or "").translate(_TEL_SEPARATORS).lower()
    if na != nb:
        return False
    pa, pb = _param_map(a.params), _param_map(b.params)
    for p in (pa, pb):
        ctx = p.get("phone-context")
        if ctx is not None and ctx.startswith("+"):
            p["phone-context"] = ctx.translate(_TEL_SEPARATORS)
    return pa == pb


def _clip(s: str, limit: int = 60) -> str:
    return repr(s if len(s) <= limit else s[:limit] + "...")
