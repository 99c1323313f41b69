"""Shared helpers of the HA tests: a real redis-server on a loopback port, links with a
fresh key prefix, bindings and a poll helper."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from sipedge.ha.client import RedisLink
from sipedge.registrar.binding import Binding
from sipedge.sip.message import Request
from sipedge.sip.parser import parse_message
from sipedge.transport.base import Flow

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process (no persistence) that a test can stop and start again on
    the same port."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise FileNotFoundError("redis-server")
        self.exe = exe
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self, timeout: float = 5.0) -> None:
        args = [self.exe, "--bind", HOST, "--port", str(self.port), "--save", ""]
        args += ["--appendonly", "no", "--daemonize", "no", "--dir", str(self.workdir)]
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited: {(self.workdir / 'redis.log').read_text()}"
                )
            if self.ping():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not answer PING")

    def ping(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None


def new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}:"


def link(url: str, prefix: str, node: str = "", timeout: float = 1.0) -> RedisLink:
    """A link like :func:`sipedge.ha.client.connect` makes, with short timeouts."""
    redis = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    return RedisLink(redis, prefix, node)


@contextlib.asynccontextmanager
async def links(url: str, prefix: str, *nodes: str) -> AsyncIterator[list[RedisLink]]:
    """One link per node name, closed at the end."""
    made = [link(url, prefix, n) for n in nodes]
    try:
        yield made
    finally:
        for each in made:
            await each.close()


def binding(aor: str, contact: str, expires_at: float, **kw: Any) -> Binding:
    return Binding(aor=aor, contact=contact, expires_at=expires_at, **kw)


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Poll ``check`` every 10 ms until it is true (True) or the timeout passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.01)
    return check()


FLOW = Flow("udp", ("192.0.2.1", 5060), ("198.51.100.7", 40000))


def register(contact: str, user: str = "alice", call_id: str = "reg-1@ua") -> Request:
    """A REGISTER for ``sip:USER@example.com`` with one Contact."""
    lines = [
        "REGISTER sip:example.com SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.7:40000;branch=z9hG4bK-ha-1",
        "Max-Forwards: 70",
        f"To: <sip:{user}@example.com>",
        f"From: <sip:{user}@example.com>;tag=ft1",
        f"Call-ID: {call_id}",
        "CSeq: 1 REGISTER",
        f"Contact: {contact}",
        "Content-Length: 0",
        "",
        "",
    ]
    msg = parse_message("\r\n".join(lines).encode())
    assert isinstance(msg, Request)
    return msg
