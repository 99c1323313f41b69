"""Test support for the media tests: free loopback ports, a real rtpengine, SDPs, UDP probes.

rtpengine (Debian ``rtpengine-daemon``) runs in userspace mode (``--table=-1``) on
127.0.0.1 with its own ng ports, ``--config-file=none`` so that /etc/rtpengine is ignored,
and ``--delete-delay=0`` so that a deleted call leaves ``list`` at once.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sipedge.media.ng import NgMessage, encode_message, parse_message

HOST = "127.0.0.1"
T = TypeVar("T")

SDP_OFFER = (
    "v=0\r\no=- 1545997027 1 IN IP4 198.51.100.1\r\ns=tester\r\nt=0 0\r\n"
    "m=audio 2000 RTP/AVP 0 8 101\r\nc=IN IP4 198.51.100.1\r\na=sendrecv\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
)
SDP_ANSWER = SDP_OFFER.replace("198.51.100.1", "203.0.113.7").replace("2000", "4000")


def sdp_with_streams(n: int, host: str = "198.51.100.1") -> str:
    """An SDP with ``n`` audio m-lines: its query/delete reply grows by ~1.4 KB a stream."""
    media = "".join(f"m=audio {2000 + 2 * i} RTP/AVP 0\r\na=sendrecv\r\n" for i in range(n))
    return f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=t\r\nt=0 0\r\nc=IN IP4 {host}\r\n{media}"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one test coroutine on a fresh event loop."""
    return asyncio.run(coro)


def free_port(kind: socket.SocketKind = socket.SOCK_DGRAM) -> int:
    """A loopback port free for UDP and TCP right now (below the ephemeral range)."""
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(20000, 32000)
        if _is_free(port, socket.SOCK_DGRAM) and _is_free(port, socket.SOCK_STREAM):
            return port
    raise RuntimeError("no free loopback port")


def _is_free(port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def udp_exchange(port: int, cookie: str, body: dict[str, Any], timeout: float = 2.0) -> NgMessage:
    """One ng command over a fresh UDP socket (blocking; for fixtures and setup)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((HOST, port))
        s.send(encode_message(cookie, body))
        return parse_message(s.recv(1 << 17))


class RtpEngineDaemon:
    """One rtpengine process on fresh loopback ports."""

    def __init__(self, workdir: Path) -> None:
        self.ng_udp, self.ng_tcp, self.http = free_port(), free_port(), free_port()
        base = random.Random().randrange(40000, 59000, 100)
        self.port_min, self.port_max = base, base + 999
        self.log = workdir / "rtpengine.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> str | None:
        """Path of the rtpengine binary, or None when the package is missing."""
        return shutil.which("rtpengine")

    @property
    def udp(self) -> str:
        return f"udp:{HOST}:{self.ng_udp}"

    @property
    def tcp(self) -> str:
        return f"tcp:{HOST}:{self.ng_tcp}"

    @property
    def ws(self) -> str:
        return f"ws://{HOST}:{self.http}/ng"

    def start(self) -> None:
        """Start the daemon and wait until it answers a ping (about 0.1 s)."""
        binary = self.binary()
        assert binary is not None
        args = [
            binary, "--config-file=none", "--foreground", "--log-stderr", "--table=-1",
            f"--interface={HOST}", f"--listen-ng={HOST}:{self.ng_udp}",
            f"--listen-tcp-ng={HOST}:{self.ng_tcp}", f"--listen-http={HOST}:{self.http}",
            f"--port-min={self.port_min}", f"--port-max={self.port_max}",
            "--delete-delay=0", "--log-level=5",
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"rtpengine exited: {self.log.read_text()[-2000:]}")
            try:
                udp_exchange(self.ng_udp, "ready", {"command": "ping"}, timeout=0.1)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("rtpengine did not answer a ping within 10 s")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; only our own process."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)

    @classmethod
    def running(cls, workdir: Path) -> Iterator[RtpEngineDaemon]:
        """A started daemon, stopped when the fixture that yields from this ends; the test
        is skipped when rtpengine is not installed."""
        if cls.binary() is None:
            pytest.skip("rtpengine is not installed (Debian package rtpengine-daemon)")
        daemon = cls(workdir)
        daemon.start()
        try:
            yield daemon
        finally:
            daemon.stop()

    def calls(self) -> list[str]:
        """The Call-IDs the daemon holds (ng ``list`` over UDP)."""
        reply = udp_exchange(self.ng_udp, f"list{time.monotonic_ns()}", {"command": "list"})
        calls = reply.body["calls"]
        assert isinstance(calls, list)
        return [str(c) for c in calls]

    def tags(self, call_id: str) -> list[str]:
        """The tags (call legs) rtpengine knows for ``call_id`` (ng ``query``)."""
        body = {"command": "query", "call-id": call_id}
        reply = udp_exchange(self.ng_udp, f"query{time.monotonic_ns()}", body)
        tags = reply.body.get("tags", {})
        return [str(t) for t in tags] if isinstance(tags, dict) else []
