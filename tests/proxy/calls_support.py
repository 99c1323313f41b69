"""A fake media relay and SDP messages for the call-control tests of the proxy."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sipedge.media.ng import RelayTimeout
from sipedge.sip.message import Request


def sdp(origin: str, ip: str, port: int) -> str:
    return (
        f"v=0\r\no={origin} 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\n"
    )


SDP_A = sdp("a", "127.0.0.1", 6000)
SDP_B = sdp("b", "127.0.0.1", 7000)


def relayed_sdp(n: int) -> str:
    return sdp("r", "203.0.113.9", 30000 + n)


@dataclass
class Command:
    name: str
    call_id: str
    from_tag: str
    to_tag: str | None
    sdp: str | None
    options: dict[str, Any]
    flags: list[str]


@dataclass
class FakeRelay:
    """Records ng commands; ``fail`` makes offers and answers time out; ``delay`` (seconds)
    holds answers back."""

    fail: bool = False
    delay: float = 0.0
    commands: list[Command] = field(default_factory=list)

    async def offer(
        self,
        call_id: str,
        from_tag: str,
        sdp: str,
        *,
        flags: Sequence[str] = (),
        options: Mapping[str, Any] | None = None,
        via_branch: str | None = None,
        node_set: str | None = None,
    ) -> dict[str, Any]:
        return await self._do("offer", call_id, from_tag, None, sdp, flags, options)

    async def answer(
        self,
        call_id: str,
        from_tag: str,
        to_tag: str,
        sdp: str,
        *,
        flags: Sequence[str] = (),
        options: Mapping[str, Any] | None = None,
        via_branch: str | None = None,
    ) -> dict[str, Any]:
        return await self._do("answer", call_id, from_tag, to_tag, sdp, flags, options)

    async def delete(self, call_id: str, from_tag: str, to_tag: str | None = None) -> Any:
        self.commands.append(Command("delete", call_id, from_tag, to_tag, None, {}, []))
        return {"result": "ok"}

    def node_of(self, call_id: str) -> str | None:
        return "udp:127.0.0.1:22222"

    async def _do(
        self,
        name: str,
        call_id: str,
        from_tag: str,
        to_tag: str | None,
        sdp: str,
        flags: Sequence[str],
        options: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        self.commands.append(
            Command(name, call_id, from_tag, to_tag, sdp, dict(options or {}), list(flags))
        )
        if self.fail:
            raise RelayTimeout("no answer")
        if self.delay and name == "answer":
            await asyncio.sleep(self.delay)
        return {"result": "ok", "sdp": relayed_sdp(len(self.commands))}

    def names(self) -> list[str]:
        return [c.name for c in self.commands]


def with_sdp(data: bytes, sdp: str) -> bytes:
    """``data`` (a message with Content-Length: 0 and no body) carrying ``sdp``."""
    body = sdp.encode()
    head = data.replace(
        b"Content-Length: 0\r\n",
        b"Content-Type: application/sdp\r\nContent-Length: " + str(len(body)).encode() + b"\r\n",
    )
    return head + body


def ack_for(ok: Any, cseq: int = 1, sdp: str | None = None) -> bytes:
    """The caller's ACK for a 2xx (sent to the proxy, following the Record-Route)."""
    rr = [v for v in ok.header_list("Record-Route")]
    routes = "".join(f"Route: {v}\r\n" for v in reversed(rr))
    data = (
        f"ACK sip:bob@127.0.0.1:5070 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKack{cseq};rport\r\n"
        f"{routes}From: {ok.header('From')}\r\nTo: {ok.header('To')}\r\n"
        f"Call-ID: {ok.call_id}\r\nCSeq: {cseq} ACK\r\nMax-Forwards: 70\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()
    return with_sdp(data, sdp) if sdp else data


def bye_from_caller(ok: Any, cseq: int = 2) -> bytes:
    rr = [v for v in ok.header_list("Record-Route")]
    routes = "".join(f"Route: {v}\r\n" for v in reversed(rr))
    return (
        f"BYE sip:bob@127.0.0.1:5070 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKbye{cseq};rport\r\n"
        f"{routes}From: {ok.header('From')}\r\nTo: {ok.header('To')}\r\n"
        f"Call-ID: {ok.call_id}\r\nCSeq: {cseq} BYE\r\nMax-Forwards: 70\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def body_of(msg: Request | Any) -> str:
    return bytes(msg.body).decode()
