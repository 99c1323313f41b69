"""Two active nodes in one process sharing a real Redis (``ha.mode = "active-active"``): a
client registered over TCP on node A is called through node B, which sends the INVITE to
A with A's Path entry as Route; A relays it over the client's connection (RFC 3327 §5.3,
RFC 5626 §5.3). A call through A itself goes over the connection directly."""

from __future__ import annotations

import asyncio
import re
import socket

from ha_support import HOST, free_port

from sipedge.app import App
from sipedge.config import parse_config

SECRET = "flow-tokens-shared-by-both-nodes"


def node(port: int, redis_url: str, prefix: str, name: str) -> App:
    data = {
        "server": {
            "listen": [f"udp:{HOST}:{port}", f"tcp:{HOST}:{port}"],
            "trusted": ["127.0.0.0/8"],
            "domains": ["example.com"],
        },
        "registrar": {"persist": False},
        "nat": {"token_secret": SECRET},
        "ha": {
            "backend": "redis",
            "redis_url": redis_url,
            "key_prefix": prefix,
            "node": name,
            "mode": "active-active",
        },
        "api": {"enabled": False},
    }
    return App(parse_config(data))


class TcpClient:
    """A UA registered over its own TCP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.port = writer.get_extra_info("sockname")[1]

    async def send(self, text: str) -> None:
        self.writer.write(text.encode())
        await self.writer.drain()

    async def read(self, skip_acks: bool = False) -> str:
        """The next message (all of ours have no body); ``skip_acks``: the next non-ACK."""
        while True:
            head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
            if not (skip_acks and head.startswith(b"ACK ")):
                return head.decode()

    async def register(self, proxy_port: int) -> str:
        await self.send(
            f"REGISTER sip:example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP {HOST}:{self.port};branch=z9hG4bK-r1\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=r1\r\n"
            "To: <sip:bob@example.com>\r\nCall-ID: aa-reg@bob\r\nCSeq: 1 REGISTER\r\n"
            f"Contact: <sip:bob@{HOST}:{self.port};transport=tcp>\r\nExpires: 3600\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        return await self.read()

    async def answer_busy(self, invite: str) -> None:
        keep = [
            line
            for line in invite.split("\r\n")
            if line.lower().startswith(("via:", "from:", "call-id:", "cseq:", "to:"))
        ]
        lines = [f"{x};tag=bob1" if x.lower().startswith("to:") else x for x in keep]
        await self.send("SIP/2.0 486 Busy Here\r\n" + "\r\n".join(lines) + "\r\n")
        await self.send("Content-Length: 0\r\n\r\n")


async def call(port: int, n: int) -> list[str]:
    """INVITE sip:bob@example.com sent over UDP to ``port``: the status lines received
    until a final response."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        s.setblocking(False)
        me = s.getsockname()[1]
        invite = (
            "INVITE sip:bob@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{me};branch=z9hG4bK-c{n};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:carol@{HOST}:{me}>;tag=c{n}\r\n"
            f"To: <sip:bob@example.com>\r\nCall-ID: aa-call-{n}@carol\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:carol@{HOST}:{me}>\r\nContent-Length: 0\r\n\r\n"
        )
        await loop.sock_sendto(s, invite.encode(), (HOST, port))
        statuses: list[str] = []
        while not statuses or statuses[-1] < "SIP/2.0 2":
            data = await asyncio.wait_for(loop.sock_recv(s, 65535), 5)
            statuses.append(data.decode().split("\r\n", 1)[0])
    return statuses


def test_each_active_node_reaches_the_users_of_the_other(redis_url: str, prefix: str) -> None:
    async def scenario() -> None:
        pa, pb = free_port(), free_port()
        a, b = node(pa, redis_url, prefix, "a"), node(pb, redis_url, prefix, "b")
        await a.start()
        await b.start()
        writer = None
        try:
            reader, writer = await asyncio.open_connection(HOST, pa)
            bob = TcpClient(reader, writer)
            ok = await bob.register(pa)
            assert ok.startswith("SIP/2.0 200"), ok
            assert ";expires=300" in ok  # a stream client: ha.stream_max_expires
            # Through node B: B -> A (A's Path entry as Route) -> bob's connection.
            caller = asyncio.create_task(call(pb, 1))
            invite = await bob.read(skip_acks=True)
            assert invite.startswith(f"INVITE sip:bob@{HOST}:{bob.port};transport=tcp "), invite
            vias = re.findall(r"(?im)^Via: SIP/2.0/\w+ ([^;]+);", invite)
            assert vias[:2] == [f"{HOST}:{pa}", f"{HOST}:{pb}"], invite  # A, then B
            assert "ft-" not in "".join(re.findall(r"(?im)^Route:.*$", invite))  # consumed
            await bob.answer_busy(invite)
            assert (await caller)[-1] == "SIP/2.0 486 Busy Here"
            # Through node A: its own binding, straight over the connection.
            caller = asyncio.create_task(call(pa, 2))
            invite = await bob.read(skip_acks=True)
            vias = re.findall(r"(?im)^Via: SIP/2.0/\w+ ([^;]+);", invite)
            assert vias[0] == f"{HOST}:{pa}" and f"{HOST}:{pb}" not in vias, invite
            await bob.answer_busy(invite)
            assert (await caller)[-1] == "SIP/2.0 486 Busy Here"
        finally:
            if writer is not None:
                writer.close()
            for app in (a, b):
                await app.stop(0.0)

    asyncio.run(scenario())
