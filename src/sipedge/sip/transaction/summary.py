"""What a transaction keeps of its request once it only lingers for retransmissions."""

from __future__ import annotations

from ..message import Request


class RequestSummary:
    """What a transaction keeps of its request once it only lingers for retransmissions."""

    __slots__ = ("call_id", "method", "to_tag")

    def __init__(self, method: str, call_id: str, to_tag: str | None) -> None:
        self.method = method
        self.call_id = call_id
        self.to_tag = to_tag

    @classmethod
    def of(cls, request: Request) -> RequestSummary:
        """The summary of ``request``."""
        return cls(request.method, request.call_id, request.to_tag)
