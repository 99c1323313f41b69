"""Ordered, case-insensitive ``;name=value`` parameter lists (RFC 3261 §7.3.1, §25.1).

The same :class:`Params` container holds URI parameters (``uri-parameters``) and header
parameters (``generic-param`` of Via, From, To, Contact, ...). Parameter names compare
case-insensitively but keep their original spelling and order, so an unchanged list
serialises exactly as it was parsed (whitespace around ``;`` and ``=`` is dropped).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from .errors import ParseError

#: Linear white space as it may reach us: SP, HTAB and the CRLF of a folded line.
LWS = " \t\r\n"

#: RFC 3261 §25.1 ``token`` characters.
TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"

#: ``quoted-string`` (RFC 3261 §25.1): qdtext or quoted-pair between double quotes.
_QDTEXT = r'[^"\\\x00-\x08\x0a-\x1f\x7f]*+'
QUOTED_STRING = rf'"{_QDTEXT}(?:\\[\x00-\x09\x0b\x0c\x0e-\x7f]{_QDTEXT})*+"'

# generic-param value: token / host / quoted-string (RFC 3261 §25.1); host adds ':' '[' ']'.
_GEN_VALUE = rf"[{TOKEN_CHARS}:\[\]]++"
FAST_PARAMS_RE = re.compile(rf"(?:;[{TOKEN_CHARS}]++(?:={_GEN_VALUE})?+)*+", re.ASCII)
_TOKEN_RE = re.compile(rf"[{TOKEN_CHARS}]++", re.ASCII)
_GEN_VALUE_RE = re.compile(rf"{_GEN_VALUE}|{QUOTED_STRING}", re.ASCII)


class Params:
    """Ordered parameter list with case-insensitive names; a ``None`` value is a flag.

    ``str()`` gives ``";a=b;lr"`` (leading ``;`` included, empty string when empty).
    Equality ignores order and name case but not value case. A list built by the
    parsers keeps its validated text and is only split into pairs when first read.
    """

    __slots__ = ("_items", "_str")

    def __init__(self, items: Iterable[tuple[str, str | None]] | None = None) -> None:
        self._items: list[tuple[str, str | None]] | None = list(items) if items else []
        self._str: str | None = None

    @classmethod
    def _lazy(cls, text: str) -> Params:
        """Wrap validated canonical text (``;a=b;c``, no LWS, no quotes); split on demand."""
        p = cls.__new__(cls)
        p._items = None
        p._str = text
        return p

    @classmethod
    def _trusted(cls, items: list[tuple[str, str | None]] | None, text: str | None) -> Params:
        """Build from validated items and/or their canonical text (one of them not None)."""
        p = cls.__new__(cls)
        p._items = items
        p._str = text
        return p

    def _list(self) -> list[tuple[str, str | None]]:
        items = self._items
        if items is None:
            items = self._items = split_params_fast(self._str or "")
        return items

    def _index(self, name: str) -> int:
        items = self._items
        if items is None:
            items = self._list()
        for i, (n, _) in enumerate(items):
            if n == name:
                return i
        lname = name.lower()
        size = len(lname)
        for i, (n, _) in enumerate(items):
            # Lower-casing keeps an ASCII name's length: most names are skipped unlowered.
            if (len(n) == size or not n.isascii()) and n.lower() == lname:
                return i
        return -1

    def get(self, name: str, default: str | None = None) -> str | None:
        """Value of the first parameter called ``name`` (any case), else ``default``.

        A flag parameter (no ``=value``) gives ``None``; use ``in`` to test presence.
        """
        i = self._index(name)
        return default if i < 0 else self._list()[i][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._index(name) >= 0

    def __getitem__(self, name: str) -> str | None:
        i = self._index(name)
        if i < 0:
            raise KeyError(name)
        return self._list()[i][1]

    def set(self, name: str, value: str | None) -> None:
        """Replace the value of ``name`` in place (keeping its spelling), or append it."""
        i = self._index(name)
        items = self._list()
        if i < 0:
            items.append((name, value))
        else:
            items[i] = (items[i][0], value)
        self._str = None

    def remove(self, name: str) -> None:
        """Remove every parameter called ``name`` (any case); absent names are ignored."""
        lname = name.lower()
        self._items = [it for it in self._list() if it[0].lower() != lname]
        self._str = None

    def items(self) -> list[tuple[str, str | None]]:
        """A copy of the ``(name, value)`` pairs in order."""
        return list(self._list())

    def names(self) -> list[str]:
        """Parameter names in order, as spelled."""
        return [n for n, _ in self._list()]

    def copy(self) -> Params:
        """An independent copy."""
        items = self._items
        return Params._trusted(None if items is None else list(items), self._str)

    def __len__(self) -> int:
        return len(self._list())

    def __bool__(self) -> bool:
        return bool(self._str) if self._items is None else bool(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter([n for n, _ in self._list()])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Params):
            return NotImplemented
        return _key(self._list()) == _key(other._list())

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        s = self._str
        if s is None:
            s = "".join(f";{n}" if v is None else f";{n}={v}" for n, v in self._list())
            self._str = s
        return s

    def __repr__(self) -> str:
        return f"Params({self._list()!r})"


def _key(items: list[tuple[str, str | None]]) -> list[tuple[str, str]]:
    return sorted((n.lower(), "\0" if v is None else "=" + v) for n, v in items)


def split_params_fast(text: str) -> list[tuple[str, str | None]]:
    """Split a validated canonical ``;a=b;c`` string (no LWS, no quotes) into pairs."""
    out: list[tuple[str, str | None]] = []
    for part in text[1:].split(";"):
        name, eq, value = part.partition("=")
        out.append((name, value if eq else None))
    return out


def parse_params(text: str) -> Params:
    """Parse header parameters: ``";a=b;lr"`` or ``"a=b;lr"`` (RFC 3261 §7.3.1 generic-param).

    Names are tokens; values are a token, a host (IPv6 reference included) or a quoted
    string, which keeps its quotes. LWS around ``;`` and ``=`` is tolerated and dropped.
    Raises :class:`ParseError` (400) on malformed input.
    """
    if not text:
        return Params()
    if text[0] != ";":
        text = text.lstrip(LWS)
        if text[:1] != ";":
            text = ";" + text
    if FAST_PARAMS_RE.fullmatch(text) is not None:
        return Params._lazy(text)
    return Params._trusted(parse_param_items(text), None)


def parse_param_items(text: str) -> list[tuple[str, str | None]]:
    """Slow path of :func:`parse_params`: ``;a = "b" ; c`` with LWS and quoted strings."""
    items: list[tuple[str, str | None]] = []
    for part in _split_semis(text.strip(LWS)):
        name, eq, value = part.partition("=")
        name = name.strip(LWS)
        if _TOKEN_RE.fullmatch(name) is None:
            raise ParseError(f"bad parameter name {name!r}" if name else "empty parameter")
        if not eq:
            items.append((name, None))
            continue
        value = value.strip(LWS)
        if _GEN_VALUE_RE.fullmatch(value) is None:
            raise ParseError(f"bad value for parameter {name!r}")
        items.append((name, value))
    return items


def _split_semis(text: str) -> list[str]:
    """Split ``;a;b="x;y"`` at semicolons outside quoted strings (leading ';' required)."""
    if not text.startswith(";"):
        raise ParseError("parameters must start with ';'")
    parts: list[str] = []
    start = 1
    i = 1
    n = len(text)
    in_quote = False
    while i < n:
        c = text[i]
        if in_quote:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif c == ";":
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if in_quote:
        raise ParseError("unterminated quoted string in parameter")
    parts.append(text[start:])
    return parts
