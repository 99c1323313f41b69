"""CSeq (RFC 3261 §20.16, §8.1.1.5) and unsigned integer header values."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ParseError
from ..params import LWS, TOKEN_CHARS

#: Largest CSeq number accepted: it must fit a 32-bit unsigned integer (RFC 3261 §8.1.1.5).
#: RFC 4475 §3.1.2.4 (scalar02) expects anything larger to be answered with 400.
CSEQ_MAX = 2**32 - 1

_CSEQ_RE = re.compile(rf"0*([0-9]{{1,10}})[ \t\r\n]++([{TOKEN_CHARS}]++)", re.ASCII)
_LONG_NUMBER_RE = re.compile(r"0*[1-9][0-9]{10}", re.ASCII)


@dataclass(frozen=True, slots=True)
class CSeq:
    """``CSeq: 4711 INVITE``: sequence number and method (method case is kept)."""

    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(value: str) -> CSeq:
    """Parse ``1*DIGIT LWS Method``; the number must fit 32 bits (RFC 3261 §8.1.1.5).

    Raises :class:`ParseError` (400) naming the fault.
    """
    s = value.strip(LWS)
    m = _CSEQ_RE.fullmatch(s)
    if m is None:
        if _LONG_NUMBER_RE.match(s) is not None:
            raise ParseError("CSeq number too large (must fit 32 bits)")
        raise ParseError("malformed CSeq (expected number and method)")
    number = int(m.group(1))
    if number > CSEQ_MAX:
        raise ParseError("CSeq number too large (must fit 32 bits)")
    return CSeq(number, m.group(2))


def parse_uint(value: str, what: str, max_value: int) -> int:
    """Parse a header value that is ``1*DIGIT`` with at most ``max_value``.

    For Max-Forwards (max 255, RFC 3261 §20.22), Expires (max 2**32-1, §20.19) and
    Content-Length. Raises :class:`ParseError` (400) whose reason names ``what``.
    """
    s = value.strip(LWS)
    if len(s) < 10 and s.isdigit() and s.isascii():
        n = int(s)  # short: no conversion cost to bound
        if n <= max_value:
            return n
    if not s or not s.isascii() or not s.isdigit():
        raise ParseError(f"{what} is not a non-negative integer")
    # Bound the conversion: leading zeros are legal, huge values are not (RFC 4475 scalar02).
    t = s.lstrip("0") or "0"
    if len(t) > len(str(max_value)) or int(t) > max_value:
        raise ParseError(f"{what} too large (maximum {max_value})")
    return int(t)
