"""Low-level scanners shared by the header parsers (RFC 3261 §7.3.1, §25.1).

Header values may hold several comma-separated elements; commas inside quoted strings,
inside ``<...>`` and inside a quoted-pair do not separate elements.
"""

from __future__ import annotations

from .errors import ParseError


def split_commas(value: str) -> list[str]:
    """Split a header value at the commas that separate list elements.

    Commas inside a quoted string or an angle-bracketed URI are kept. Elements are
    stripped of surrounding whitespace; empty elements are an error (RFC 3261 §7.3.1
    forbids them), so ``a,,b`` raises :class:`ParseError`.
    """
    if '"' not in value and "," not in value:
        # One element (the usual Contact, Route, Path): only an unclosed '<' can be wrong,
        # i.e. a '<' after the last '>' (what the scan below would find at the end).
        if value.rfind("<") > value.rfind(">"):
            raise ParseError("unterminated '<' in header value")
        part = value.strip()
        if not part:
            raise ParseError("empty element in comma-separated header value")
        return [part]
    if '"' not in value and "<" not in value:
        parts = [p.strip() for p in value.split(",")]
    else:
        parts = _split_slow(value)
    if any(not p for p in parts):
        raise ParseError("empty element in comma-separated header value")
    return parts


def _split_slow(value: str) -> list[str]:
    parts: list[str] = []
    start = 0
    i = 0
    n = len(value)
    in_quote = False
    in_angle = False
    while i < n:
        c = value[i]
        if in_quote:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif in_angle:
            if c == ">":
                in_angle = False
        elif c == "<":
            in_angle = True
        elif c == ",":
            parts.append(value[start:i].strip())
            start = i + 1
        i += 1
    if in_quote:
        raise ParseError("unterminated quoted string")
    if in_angle:
        raise ParseError("unterminated '<' in header value")
    parts.append(value[start:].strip())
    return parts


def find_unquoted(value: str, char: str, start: int = 0) -> int:
    """Index of the first ``char`` at or after ``start`` outside quoted strings, or -1."""
    if '"' not in value:
        return value.find(char, start)
    i = start
    n = len(value)
    in_quote = False
    while i < n:
        c = value[i]
        if in_quote:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif c == char:
            return i
        i += 1
    return -1
