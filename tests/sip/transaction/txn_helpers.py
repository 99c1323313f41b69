"""Message builders and a manual-clock driver for the transaction tests."""

from __future__ import annotations

from sipedge.sip.message import Request, Response
from sipedge.sip.parser import parse_message
from sipedge.sip.transaction import Output, SendMessage, TransactionLayer


def request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bK-1",
    transport: str = "UDP",
    sent_by: str = "client.example.com:5060",
    uri: str = "sip:bob@example.com",
    call_id: str = "call-1@example.com",
    cseq: int = 1,
    cseq_method: str | None = None,
    from_tag: str | None = "ft1",
    to_tag: str | None = None,
) -> Request:
    """A minimal request; ``branch=None`` leaves the Via without a branch (RFC 2543)."""
    via = f"SIP/2.0/{transport} {sent_by}" + (f";branch={branch}" if branch is not None else "")
    frm = "<sip:alice@example.com>" + (f";tag={from_tag}" if from_tag else "")
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    text = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: {frm}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {cseq_method or method}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, Request)
    return msg


def response(
    req: Request, status: int, *, to_tag: str | None = "tt1", cseq_method: str | None = None
) -> Response:
    """A response to ``req`` as a peer would send it (all of req's Vias copied)."""
    vias = "".join(f"Via: {v}\r\n" for v in req.vias)
    to = req.header("To") or ""
    if to_tag is not None and status != 100 and req.to_tag is None:
        to += f";tag={to_tag}"
    text = (
        f"SIP/2.0 {status} Reason\r\n"
        f"{vias}"
        f"From: {req.header('From')}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {req.call_id}\r\n"
        f"CSeq: {req.cseq.number} {cseq_method or req.cseq.method}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, Response)
    return msg


def sends(outputs: list[Output]) -> list[bytes]:
    """The data of every SendMessage in ``outputs``."""
    return [o.data for o in outputs if isinstance(o, SendMessage)]


def others(outputs: list[Output]) -> list[Output]:
    """Every output that is not a SendMessage."""
    return [o for o in outputs if not isinstance(o, SendMessage)]


def first_line(data: bytes) -> str:
    return data.split(b"\r\n", 1)[0].decode()


def run_timers(layer: TransactionLayer, until: float) -> list[tuple[float, Output]]:
    """Drive ``layer`` with a manual clock: jump to each deadline up to ``until``."""
    seen: list[tuple[float, Output]] = []
    while (deadline := layer.get_timer()) is not None and deadline <= until:
        layer.handle_timer(deadline)
        seen += [(deadline, o) for o in layer.events()]
    return seen
