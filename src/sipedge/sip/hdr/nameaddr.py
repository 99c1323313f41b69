"""name-addr / addr-spec header values: From, To, Contact, Route, Record-Route, Path.

RFC 3261 §20.10 (Contact), §20.20 (From), §20.39 (To), §25.1 (name-addr grammar).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from .._scan import split_commas
from ..errors import ParseError
from ..params import FAST_PARAMS_RE, LWS, QUOTED_STRING, TOKEN_CHARS, Params, parse_params
from ..uri import URI, parse_uri

_QUOTED_RE = re.compile(QUOTED_STRING, re.ASCII)
# Fast path: optional simple quoted display name, <URI>, canonical parameters.
_FAST_RE = re.compile(
    rf'(?:"([^"\\\x00-\x1f\x7f]*+)" ?+)?+<([^<>"\x00-\x20\x7f]++)>({FAST_PARAMS_RE.pattern})',
    re.ASCII,
)
# display-name = *(token LWS) / quoted-string; LWS may be folded.
_TOKENS_RE = re.compile(rf"[{TOKEN_CHARS}]++(?:[ \t\r\n]++[{TOKEN_CHARS}]++)*+", re.ASCII)
_ESCAPE_RE = re.compile(r'(["\\])')
_UNESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


@dataclass(slots=True, eq=False)
class NameAddr:
    """A ``name-addr`` or ``addr-spec`` followed by header parameters.

    ``display_name`` is as written: for a quoted display name (``quoted`` true) it is
    the text between the quotes with its backslash escapes kept. ``params`` are the
    header parameters (``tag``, ``expires``, ``q``, ...), never the URI's own.
    """

    uri: URI
    display_name: str | None = None
    params: Params = field(default_factory=Params)
    bracketed: bool = True
    quoted: bool = True

    def __str__(self) -> str:
        uri = str(self.uri)
        dn = self.display_name
        if dn is not None:
            if self.quoted or _TOKENS_RE.fullmatch(dn) is None:
                return f'"{dn}" <{uri}>{self.params}'
            return f"{dn} <{uri}>{self.params}"
        if self.bracketed or _needs_brackets(uri):
            return f"<{uri}>{self.params}"
        return f"{uri}{self.params}"

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (RFC 3261 §19.3) or None."""
        return self.params.get("tag")

    @property
    def display_text(self) -> str | None:
        """The display name with quoted-pair escapes removed."""
        dn = self.display_name
        if dn is None or not self.quoted or "\\" not in dn:
            return dn
        return _UNESCAPE_RE.sub(r"\1", dn)

    def set_display_text(self, text: str | None) -> None:
        """Set the display name from plain text; it is written as a quoted string."""
        self.display_name = None if text is None else _ESCAPE_RE.sub(r"\\\1", text)
        self.quoted = True

    def copy(self) -> NameAddr:
        """An independent copy (URI and parameters included)."""
        return NameAddr(
            self.uri.copy(), self.display_name, self.params.copy(), self.bracketed, self.quoted
        )


def _needs_brackets(uri: str) -> bool:
    # RFC 3261 §20.10: a URI containing ',', '?' or ';' must be enclosed in <>.
    return "," in uri or ";" in uri or "?" in uri


def parse_name_addr(value: str) -> NameAddr:
    """Parse one From/To/Contact/Route value: ``"Name" <uri>;p=v`` or ``uri;p=v``.

    In the addr-spec form (no ``<>``) the URI ends at the first ``;`` and what follows
    are header parameters (RFC 3261 §20.10). Raises :class:`ParseError` (400).
    """
    m = _FAST_RE.fullmatch(value)
    if m is not None:
        display, uri, params_s = m.groups()
        params = Params._lazy(params_s) if params_s else Params()
        return NameAddr(parse_uri(uri), display, params, True, True)
    s = value.strip(LWS)
    if not s:
        raise ParseError("empty name-addr")
    c = s[0]
    if c == "<":
        return _bracketed(s, 0, None, True)
    if c == '"':
        m = _QUOTED_RE.match(s)
        if m is None:
            raise ParseError("unterminated or invalid quoted display name")
        lt = m.end()
        while lt < len(s) and s[lt] in LWS:
            lt += 1
        if lt >= len(s) or s[lt] != "<":
            raise ParseError("quoted display name not followed by <URI>")
        return _bracketed(s, lt, s[1 : m.end() - 1], True)
    lt = s.find("<")
    semi = s.find(";")
    if lt < 0 or 0 <= semi < lt:
        return _addr_spec(s, semi)
    display = s[:lt].rstrip(LWS)
    if _TOKENS_RE.fullmatch(display) is None:
        raise ParseError(f"display name must be tokens or a quoted string: {display[:40]!r}")
    return _bracketed(s, lt, display, False)


def _bracketed(s: str, lt: int, display: str | None, quoted: bool) -> NameAddr:
    gt = s.find(">", lt + 1)
    if gt < 0:
        raise ParseError("missing '>' after URI")
    text = s[lt + 1 : gt]
    if not text or text[0] in LWS or text[-1] in LWS:
        raise ParseError("whitespace inside <> around the addr-spec (RFC 3261 §25.1)")
    uri = parse_uri(text)
    rest = s[gt + 1 :]
    if not rest:
        return NameAddr(uri, display, Params(), True, quoted)
    if rest[0] != ";":
        rest = rest.lstrip(LWS)
        if rest[:1] != ";":
            raise ParseError("junk after '>' in name-addr")
    return NameAddr(uri, display, parse_params(rest), True, quoted)


def _addr_spec(s: str, semi: int) -> NameAddr:
    text = s if semi < 0 else s[:semi].rstrip(LWS)
    if "," in text or "?" in text:
        raise ParseError("addr-spec with ',' or '?' must be enclosed in <> (RFC 3261 §20.10)")
    uri = parse_uri(text)
    params = parse_params(s[semi:]) if semi >= 0 else Params()
    return NameAddr(uri, None, params, False, True)


def parse_name_addr_list(value: str) -> list[NameAddr]:
    """Parse a comma-separated list (Route, Record-Route, Path, Contact)."""
    return [parse_name_addr(part) for part in split_commas(value)]


def parse_contact(value: str) -> list[NameAddr] | Literal["*"]:
    """Parse a Contact value: ``*`` (RFC 3261 §10.2.2) or a list of name-addrs."""
    if value.strip(LWS) == "*":
        return "*"
    return parse_name_addr_list(value)
