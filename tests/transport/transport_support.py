"""Helpers shared by the transport tests (UDP/TCP, TLS, WS)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from sipedge.transport.base import Flow, TransportConfig
from sipedge.transport.manager import TransportManager

Runner = Callable[[Coroutine[Any, Any, None]], None]
Received = asyncio.Queue[tuple[bytes, Flow]]


def sip(body: bytes = b"", method: str = "OPTIONS") -> bytes:
    """A minimal SIP message with a correct Content-Length."""
    return (
        f"{method} sip:bob@example.com SIP/2.0\r\nCall-ID: x\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def make_manager(config: TransportConfig) -> tuple[TransportManager, Received]:
    """A transport manager whose received messages land in a queue."""
    queue: Received = asyncio.Queue()
    return TransportManager(lambda data, flow: queue.put_nowait((data, flow)), config), queue


async def next_message(queue: Received) -> tuple[bytes, Flow]:
    """The next received message, within a second."""
    return await asyncio.wait_for(queue.get(), 1.0)
