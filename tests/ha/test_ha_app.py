"""Two sipedge instances in one process sharing a real Redis through ``[ha]``: a REGISTER
to one is visible to the other, a ban on one drops the source on the other, and a node
starting later takes over the dialogs and bans (what happens at a failover)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from ha_support import HOST, eventually, free_port

from sipedge.app import App
from sipedge.config import parse_config
from sipedge.dialog import Dialog, Leg


def config(port: int, redis_url: str, prefix: str, node: str) -> App:
    data = {
        "server": {"listen": [f"udp:{HOST}:{port}"], "trusted": ["127.0.0.0/8"]},
        "registrar": {"persist": False},
        "ha": {"backend": "redis", "redis_url": redis_url, "key_prefix": prefix, "node": node},
        "api": {"enabled": False},
    }
    return App(parse_config(data))


def register_msg(port: int, local: int, contact: str | None) -> bytes:
    lines = [
        f"REGISTER sip:{HOST}:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP {HOST}:{local};branch=z9hG4bK-{port}-{contact is None};rport",
        "Max-Forwards: 70",
        f"From: <sip:alice@{HOST}>;tag=1",
        f"To: <sip:alice@{HOST}>",
        f"Call-ID: ha-app-{port}",
        f"CSeq: {1 if contact else 2} REGISTER",
        *([f"Contact: <{contact}>", "Expires: 120"] if contact else []),
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def ask(port: int, contact: str | None) -> str:
    """Send a REGISTER (a query when ``contact`` is None) and return the response text."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        s.setblocking(False)
        await loop.sock_sendto(s, register_msg(port, s.getsockname()[1], contact), (HOST, port))
        data = await asyncio.wait_for(loop.sock_recv(s, 65535), 3)
    return data.decode()


async def stored(redis: Any, key: str, field: str) -> None:
    """Wait for the tracker's write-behind to reach Redis."""
    while not await redis.hexists(key, field):
        await asyncio.sleep(0.01)


def test_two_nodes_share_registrations_bans_and_dialogs(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        p1, p2, p3 = free_port(), free_port(), free_port()
        a1, a2 = config(p1, redis_url, prefix, "a1"), config(p2, redis_url, prefix, "a2")
        await a1.start()
        await a2.start()
        a3 = None
        try:
            reply = await ask(p1, "sip:alice@127.0.0.1:40000")
            assert reply.startswith("SIP/2.0 200"), reply
            query = await ask(p2, None)  # RFC 3261 §10.2.3: the other node lists the binding
            assert query.startswith("SIP/2.0 200") and "sip:alice@127.0.0.1:40000" in query
            assert a1.security is not None and a2.security is not None
            for _ in range(10):
                a1.security.auth_failed("203.0.113.7", "alice", a1.loop.time())
            assert await eventually(lambda: a2.security.is_banned("203.0.113.7", a2.loop.time()))
            a1.dialogs.started(Dialog("c1", Leg(tag="t1"), created=a1.loop.time()), a1.loop.time())
            assert a1.shared is not None
            await asyncio.wait_for(stored(a1.shared.link.redis, prefix + "dialogs", "c1;t1"), 3)
            a3 = config(p3, redis_url, prefix, "a3")
            await a3.start()  # a node taking over
            assert a3.dialogs.get("c1;t1") is not None
            assert a3.security is not None and a3.security.is_banned("203.0.113.7", a3.loop.time())
        finally:
            for app in (a1, a2, a3):
                if app is not None:
                    await app.stop(0.0)

    asyncio.run(scenario())
