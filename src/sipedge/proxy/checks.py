"""Request validation (RFC 3261 §16.3).

Each check returns a :class:`Reject` with the status to answer, or None. Syntax errors
(step 1) were already raised as ParseError by the parser or by the first access to a lazily
decoded part.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..sip.errors import ParseError
from ..sip.message import Request

#: URI schemes a proxy can route (step 2; RFC 4475 §3.3.2 expects 416 for others).
SUPPORTED_SCHEMES = frozenset({"sip", "sips", "tel"})
#: Option tags this proxy supports in Proxy-Require (step 5). None so far.
SUPPORTED_PROXY_OPTIONS: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Reject:
    """A response the proxy answers instead of forwarding."""

    status: int
    reason: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


def validate_request(req: Request, *, addressed_to_us: bool) -> Reject | None:
    """Run the §16.3 checks in order; ``addressed_to_us`` means an OPTIONS for the proxy
    itself, which may be answered even with Max-Forwards 0 (§16.3 step 3)."""
    try:
        scheme = req.uri.scheme
    except ParseError as exc:
        return Reject(exc.status_hint, exc.reason)
    if scheme not in SUPPORTED_SCHEMES:
        return Reject(416)
    if req.max_forwards == 0 and not addressed_to_us and req.method != "ACK":
        return Reject(483)
    try:
        required = req.header_list("Proxy-Require")
    except ParseError as exc:
        return Reject(400, exc.reason)
    unsupported = [t for t in required if t.lower() not in SUPPORTED_PROXY_OPTIONS]
    if unsupported:
        return Reject(420, headers=[("Unsupported", ", ".join(unsupported))])
    return None
