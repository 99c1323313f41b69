"""Authentication challenges and credentials (RFC 3261 §20.7, §20.27, §20.28, §20.44, §22).

Digest parameters follow RFC 7616 (quoting) and RFC 8760 (SHA-256/SHA-512-256 algorithms);
other schemes use the generic ``auth-param`` list, or a ``token68`` (RFC 7235 §2.1, as in
RFC 8898 Bearer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import ParseError
from ..params import LWS, QUOTED_STRING, TOKEN_CHARS

_TOKEN = rf"[{TOKEN_CHARS}]++"
_TOKEN_RE = re.compile(_TOKEN, re.ASCII)
_W = r"[ \t\r\n]*+"
# auth-param and the COMMA after it; empty list elements (",,") are legal (RFC 7230 §7).
_PARAM_RE = re.compile(
    rf"({_TOKEN}){_W}={_W}(?:({_TOKEN})|({QUOTED_STRING})){_W}(,[ \t\r\n,]*+)?+", re.ASCII
)
# The same auth-param for a list without backslashes (no quoted-pair), ending in its COMMA
# or at the end: re.split() by it leaves only empty strings between the pieces exactly when
# the _PARAM_RE loop of _parse_params_slow would accept the list, and splits it the same way
# (every quantifier is possessive, so an auth-param matches one way only).
_QDTEXT = r'[^"\\\x00-\x08\x0a-\x1f\x7f]*+'  # RFC 3261 §25.1 qdtext
_PLAIN_PARAM_RE = re.compile(
    rf'({_TOKEN}){_W}={_W}(?:({_TOKEN})|"({_QDTEXT})"){_W}(?:,[ \t\r\n,]*+|\Z)', re.ASCII
)
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]++=*+", re.ASCII)
_UNESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)

# RFC 7616 §3.3, §3.4: parameters always written as quoted strings ...
_QUOTED = frozenset(("realm", "domain", "nonce", "opaque", "username", "uri", "response", "cnonce"))
# ... and those always written bare (when they are tokens).
_BARE = frozenset(("algorithm", "stale", "nc", "userhash", "charset", "username*"))


@dataclass(slots=True)
class Challenge:
    """A WWW-Authenticate / Proxy-Authenticate value (RFC 3261 §20.44, §20.27).

    ``params`` has lower-cased names and unquoted values.
    """

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None

    def __str__(self) -> str:
        return _serialise(self.scheme, self.params, self.token68, challenge=True)


@dataclass(slots=True)
class Credentials:
    """An Authorization / Proxy-Authorization value (RFC 3261 §20.7, §20.28).

    ``params`` has lower-cased names and unquoted values.
    """

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None

    def __str__(self) -> str:
        return _serialise(self.scheme, self.params, self.token68, challenge=False)


def parse_challenge(value: str) -> Challenge:
    """Parse ``Digest realm="x", nonce="y", ...`` or any other scheme's challenge."""
    return Challenge(*_parse(value, "challenge"))


def parse_credentials(value: str) -> Credentials:
    """Parse ``Digest username="x", ...``; unknown schemes parse too (RFC 4475 regaut01)."""
    return Credentials(*_parse(value, "credentials"))


def _parse(value: str, what: str) -> tuple[str, dict[str, str], str | None]:
    s = value.strip(LWS)
    m = _TOKEN_RE.match(s)
    if m is None:
        raise ParseError(f"missing auth-scheme in {what}")
    scheme = s[: m.end()]
    rest = s[m.end() :]
    if not rest:
        return scheme, {}, None
    if rest[0] not in LWS:
        raise ParseError(f"bad auth-scheme in {what}")
    rest = rest.lstrip(LWS)
    if _TOKEN68_RE.fullmatch(rest) is not None:
        return scheme, {}, rest
    return scheme, _parse_params(rest, what), None


def _parse_params(s: str, what: str) -> dict[str, str]:
    """The auth-params of ``s`` by one ``re.split`` when that is possible, else (quoted-pairs,
    errors, repeated names) by the slow loop, which raises the precise :class:`ParseError`."""
    if s and "\\" not in s:
        parts = _PLAIN_PARAM_RE.split(s)  # gap, name, token, quoted text, gap, ...
        if not any(parts[::4]):
            names, tokens, texts = parts[1::4], parts[2::4], parts[3::4]
            params = {n.lower(): t or q for n, t, q in zip(names, tokens, texts, strict=True)}
            if len(params) == len(names):
                return params
    return _parse_params_slow(s, what)


def _parse_params_slow(s: str, what: str) -> dict[str, str]:
    params: dict[str, str] = {}
    pos = 0
    n = len(s)
    while True:
        m = _PARAM_RE.match(s, pos)
        if m is None:
            raise ParseError(f"malformed auth-param in {what} at {s[pos : pos + 20]!r}")
        name, token, quoted, sep = m.groups()
        name = name.lower()
        if name in params:
            raise ParseError(f"repeated auth-param {name!r} in {what} (RFC 7235 §2.1)")
        if token is None:
            quoted = quoted[1:-1]
            token = _UNESCAPE_RE.sub(r"\1", quoted) if "\\" in quoted else quoted
        params[name] = token
        pos = m.end()
        if pos == n:  # a trailing "," is an empty list element, legal too
            return params
        if sep is None:
            raise ParseError(f"expected ',' between auth-params in {what}")


def _serialise(scheme: str, params: dict[str, str], token68: str | None, challenge: bool) -> str:
    if token68 is not None:
        return f"{scheme} {token68}"
    if not params:
        return scheme
    return (
        scheme
        + " "
        + ", ".join(
            f"{k}={_quote(v) if _wants_quotes(k, v, challenge) else v}" for k, v in params.items()
        )
    )


def _wants_quotes(name: str, value: str, challenge: bool) -> bool:
    if name in _QUOTED or (name == "qop" and challenge):
        return True
    return _TOKEN_RE.fullmatch(value) is None


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
