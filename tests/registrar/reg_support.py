"""Shared builders for the registrar tests: REGISTER requests and flows."""

from __future__ import annotations

from collections.abc import Sequence

from sipedge.sip.message import Request
from sipedge.sip.parser import parse_message
from sipedge.transport.base import Flow

FLOW = Flow("udp", ("192.0.2.1", 5060), ("198.51.100.7", 40000))
TCP_FLOW = Flow("tcp", ("192.0.2.1", 5060), ("198.51.100.8", 51000), conn_id=42)
ALICE = "sip:alice@example.com"


def register(
    *contacts: str,
    call_id: str = "reg-1@ua",
    cseq: int = 1,
    expires: int | str | None = None,
    to: str = "sip:alice@Example.COM",
    extra: Sequence[str] = (),
) -> Request:
    """A REGISTER with one Contact header per ``contacts`` entry."""
    lines = [
        "REGISTER sip:example.com SIP/2.0",
        f"Via: SIP/2.0/UDP 198.51.100.7:40000;branch=z9hG4bK-{abs(hash(call_id))}-{cseq}",
        "Max-Forwards: 70",
        f"To: <{to}>",
        f"From: <{to}>;tag=ft{cseq}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        "User-Agent: TestPhone/1.0",
        *(f"Contact: {c}" for c in contacts),
    ]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    lines.extend(extra)
    lines += ["Content-Length: 0", "", ""]
    msg = parse_message("\r\n".join(lines).encode())
    assert isinstance(msg, Request)
    return msg


def contacts_of(headers: list[tuple[str, str]]) -> list[str]:
    """The Contact values of a response's extra headers."""
    return [v for n, v in headers if n == "Contact"]


def header(headers: list[tuple[str, str]], name: str) -> str | None:
    """The first value of ``name`` among a response's extra headers."""
    return next((v for n, v in headers if n == name), None)
