"""The optional C accelerator of the parser, :mod:`sipedge.sip._speedups`.

:data:`SPEEDUPS` is that module, or None when it was not built (no C compiler when the
package was installed) or when the environment sets ``SIPEDGE_PURE=1``. The parser then
takes its pure-Python path, which gives the same results: the accelerator only recognises
well-formed messages of the usual shape and hands everything else to the Python code.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol, TypeVar

_T = TypeVar("_T")

#: What :func:`Speedups.scan` returns: status (0 for a request), SIP version, method or
#: reason phrase, Request-URI or "", Vias as (TRANSPORT, host, port, params), Route values
#: or None, Call-ID, CSeq number, CSeq method, From value, From tag, To value, To tag,
#: tags still to check (1 From, 2 To), Max-Forwards, Content-Length, body, the message's
#: bytes without leading CRLFs and trailing octets, length of its header block.
#: One via-parm: (TRANSPORT, host, port or None, parameters as ";a=b;c" or "").
ViaParts = tuple[str, str, int | None, str]
ScanResult = tuple[
    int,
    str,
    str,
    str,
    list[ViaParts],
    list[str] | None,
    str,
    int,
    str,
    str,
    str | None,
    str,
    str | None,
    int,
    int | None,
    int | None,
    bytes,
    bytes,
    int,
]


class Speedups(Protocol):
    """The functions of the C module (see ``_speedups.c``)."""

    def scan(
        self, data: bytes, max_headers: int, max_line: int, max_vias: int, /
    ) -> ScanResult | None:
        """Recognise a well-formed message; None sends it to the Python parser."""

    def fields(
        self, data: bytes, head_len: int, field: Callable[[str, str, str, int], _T], /
    ) -> list[_T]:
        """Split the header block of a message ``scan`` accepted into fields."""

    def via(self, value: str, /) -> list[ViaParts] | None:
        """The via-parms of a Via value of the usual shape; None for the Python parser."""


def _load() -> Speedups | None:
    if os.environ.get("SIPEDGE_PURE", "") not in ("", "0"):
        return None
    try:
        from . import _speedups
    except ImportError:
        return None
    return _speedups


SPEEDUPS: Speedups | None = _load()
