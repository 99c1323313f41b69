"""Client keepalives answered by the transport (RFC 5626 §3.5.1 CRLF, RFC 6455 ping), on
real loopback sockets: the NAT binding of a stream client stays open both ways."""

from __future__ import annotations

import asyncio
import os

from sipedge.transport.base import Flow, TransportConfig
from sipedge.transport.manager import TransportManager
from sipedge.transport.ws import WsConfig

UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: sip\r\n\r\n"
)


def masked(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (RFC 6455 §5.2), payload under 126 bytes."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


def test_ws_ping_is_answered_with_pong_and_crlf_with_crlf() -> None:
    async def main() -> None:
        got: list[tuple[bytes, Flow]] = []
        mgr = TransportManager(lambda d, f: got.append((d, f)), TransportConfig())
        ws = await mgr.start_listener("ws", "127.0.0.1", 0, ws=WsConfig(ping_interval=None))
        tcp = await mgr.start_listener("tcp", "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*ws)
        writer.write(UPGRADE)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
        assert head.startswith(b"HTTP/1.1 101 ")
        writer.write(masked(0x9, b"nat-keepalive"))  # ping
        first, size = await asyncio.wait_for(reader.readexactly(2), 2.0)
        assert first & 0x0F == 0xA  # pong ...
        assert await reader.readexactly(size & 0x7F) == b"nat-keepalive"  # ... same payload
        writer.close()
        r2, w2 = await asyncio.open_connection(*tcp)
        w2.write(b"\r\n\r\n")  # RFC 5626 §3.5.1 ping
        assert await asyncio.wait_for(r2.readexactly(2), 2.0) == b"\r\n"  # pong
        w2.close()
        assert got == []  # keepalives never reach the SIP layer
        await mgr.close()

    asyncio.run(main())
