"""Errors raised by the SIP core.

Every error says who is at fault and carries the SIP status a server should answer with
(the idea of h11's ``error_status_hint``). A proxy turns a :class:`ParseError` on a request
into that response; on a response it silently discards the message (RFC 3261 §16.7 step 1
and RFC 4475 §3.1.2).
"""

from __future__ import annotations


class SIPError(Exception):
    """Base class of every exception the SIP core raises on purpose."""


class ParseError(SIPError):
    """Malformed or unacceptable input from the remote peer.

    ``status_hint`` is the status to answer a request with: 400 for malformed syntax (the
    reason phrase names the fault), 416 for an unsupported URI scheme, 505 for an unknown
    SIP version, 513 for a message over a size limit.
    """

    def __init__(self, reason: str, status_hint: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_hint = status_hint

    def __repr__(self) -> str:
        return f"ParseError({self.reason!r}, status_hint={self.status_hint})"


class LimitExceeded(ParseError):
    """A configured limit (size, header count, Via count, line length) was exceeded."""

    def __init__(self, reason: str, status_hint: int = 513) -> None:
        super().__init__(reason, status_hint)


class ProtocolError(SIPError):
    """The local side asked a protocol object for something its state does not allow.

    Raised by the transaction state tables when an input has no legal transition.
    """
