"""Loopback plumbing for the interop tests: free ports, bind probes and an OPTIONS pinger.

Everything here talks to 127.0.0.1 only.
"""

from __future__ import annotations

import random
import socket
import time
import uuid

HOST = "127.0.0.1"

# Below the Linux ephemeral range (32768-60999), so an outgoing connection of SIPp or of
# the proxy never takes a port a test has planned to listen on.
_PORT_RANGE = (20000, 32000)


class PortAllocator:
    """Hands out loopback ports that are free on both UDP and TCP, never the same twice."""

    def __init__(self, seed: int | None = None) -> None:
        self._given: set[int] = set()
        self._rng = random.Random(seed)

    def take(self) -> int:
        """Return a port free for UDP and TCP on 127.0.0.1 right now."""
        for _ in range(500):
            port = self._rng.randrange(*_PORT_RANGE)
            if port in self._given:
                continue
            if is_free(port, socket.SOCK_DGRAM) and is_free(port, socket.SOCK_STREAM):
                self._given.add(port)
                return port
        raise RuntimeError("no free loopback port found")


def is_free(port: int, kind: socket.SocketKind) -> bool:
    """True when nothing is bound to 127.0.0.1:port for this socket type."""
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def proc_rows(table: str) -> list[list[str]]:
    """The fields of every socket row of /proc/net/``table`` (``tcp``, ``udp6``...), or none
    when the table does not exist. Addresses are ``HEXIP:HEXPORT`` (see :func:`proc_ipv4`);
    field 3 is the state (TCP: 01 established, 06 time-wait, 08 close-wait, 0A listen)."""
    try:
        with open(f"/proc/net/{table}") as rows:
            return [row.split() for row in rows.read().splitlines()[1:]]
    except FileNotFoundError:
        return []


def proc_ipv4(ip: str) -> str:
    """An IPv4 address as /proc/net writes it (a host-order word: little-endian here)."""
    return socket.inet_aton(ip)[::-1].hex().upper()


def proc_port(address: str) -> int:
    """The port of a /proc/net ``HEXIP:HEXPORT`` address."""
    return int(address.rsplit(":", 1)[1], 16)


def is_bound(port: int, kind: socket.SocketKind, ip: str | None = None) -> bool:
    """Whether a UDP socket is bound to, or a TCP socket listens on, ``port`` (on IPv4
    ``ip`` or the wildcard when given, else any local address), read from /proc/net. Never
    a bind of our own: a probe that binds the port for a moment can make the process that
    is starting up fail with EADDRINUSE."""
    tables = ["tcp", "tcp6"] if kind == socket.SOCK_STREAM else ["udp", "udp6"]
    wanted = None
    if ip is not None:
        tables = tables[:1]
        wanted = {proc_ipv4(ip), "00000000"}
    for table in tables:
        for fields in proc_rows(table):
            local, state = fields[1], fields[3]
            listening = kind == socket.SOCK_DGRAM or state == "0A"
            here = wanted is None or local.rsplit(":", 1)[0] in wanted
            if listening and here and proc_port(local) == port:
                return True
    return False


def wait_bound(port: int, transport: str, timeout: float) -> bool:
    """Wait until some process has bound 127.0.0.1:port ("udp" or "tcp")."""
    kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_bound(port, kind):
            return True
        time.sleep(0.02)
    return False


def options_request(port: int, transport: str, local_port: int) -> bytes:
    """An OPTIONS addressed to the proxy itself (no user part), with rport (RFC 3581)."""
    tag = uuid.uuid4().hex[:12]
    via = f"SIP/2.0/{transport.upper()} {HOST}:{local_port};branch=z9hG4bK-ping-{tag};rport"
    lines = [
        f"OPTIONS sip:{HOST}:{port} SIP/2.0",
        f"Via: {via}",
        "Max-Forwards: 70",
        f"From: <sip:ping@{HOST}>;tag={tag}",
        f"To: <sip:{HOST}:{port}>",
        f"Call-ID: ping-{tag}@{HOST}",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def ping_udp(port: int, wait: float = 0.2) -> str | None:
    """Send one OPTIONS over UDP; return the status line of any answer, else None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        s.settimeout(wait)
        s.sendto(options_request(port, "udp", s.getsockname()[1]), (HOST, port))
        try:
            data = s.recv(65535)
        except OSError:
            return None
    return status_line(data)


def ping_tcp(port: int, wait: float = 0.3) -> str | None:
    """Send one OPTIONS over a fresh TCP connection; return the status line, else None."""
    try:
        with socket.create_connection((HOST, port), timeout=wait) as s:
            s.settimeout(wait)
            s.sendall(options_request(port, "tcp", s.getsockname()[1]))
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(65535)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    return status_line(data)


def status_line(data: bytes) -> str | None:
    """The first line of a SIP response, or None if data is not a response."""
    first = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
    return first if first.startswith("SIP/2.0 ") else None
