"""Loopback DNS for the RFC 3263 interop tests: a tiny authoritative server, a UDP sink
and a sipedge configuration that routes by name.

The zone logic follows the server in tests/transport/test_dns.py, but runs in a thread (the
interop tests are synchronous) and answers NODATA, not NXDOMAIN, for a name that only
exists as the parent of another owner (an empty non-terminal, RFC 8020 §2). Nothing here
ever talks to a DNS server other than itself.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
from interop_net import HOST
from interop_proxy import ProxyProcess, Topology

ZONE_APEX = "sipedge.test."
SOA = "ns.sipedge.test. admin.sipedge.test. 1 3600 600 86400 {minimum}"


@dataclass
class Zone:
    """Records as {(owner, rdtype): (ttl, [rdata text])}; owners absolute, lower-case.

    ``queries`` counts every question received, per (owner, rdtype); ``negative_ttl`` is
    the SOA MINIMUM sent with NXDOMAIN/NODATA (the negative caching TTL, RFC 2308 §5).
    """

    records: dict[tuple[str, str], tuple[int, list[str]]] = field(default_factory=dict)
    negative_ttl: int = 300
    queries: Counter[tuple[str, str]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, owner: str, rdtype: str, ttl: int, *rdata: str) -> None:
        """Add (replace) the RRset of ``owner``/``rdtype``."""
        with self.lock:
            self.records[(owner.lower(), rdtype)] = (ttl, list(rdata))

    def counts(self) -> Counter[tuple[str, str]]:
        """A snapshot of the query counts."""
        with self.lock:
            return Counter(self.queries)

    def names_asked(self) -> set[str]:
        """Every owner name asked about so far."""
        return {name for name, _ in self.counts()}

    def _exists(self, name: str) -> bool:
        return any(owner == name or owner.endswith("." + name) for owner, _ in self.records)

    def answer(self, wire: bytes) -> bytes | None:
        """The response to one query in wire format; None for garbage."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if not query.question:
            return None
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        with self.lock:
            self.queries[(name, rdtype)] += 1
            found = self.records.get((name, rdtype))
            exists = self._exists(name)
        if found is not None:
            ttl, rdata = found
            response.answer.append(dns.rrset.from_text_list(name, ttl, "IN", rdtype, rdata))
        else:
            if not exists:
                response.set_rcode(dns.rcode.NXDOMAIN)
            soa = SOA.format(minimum=self.negative_ttl)
            response.authority.append(dns.rrset.from_text(ZONE_APEX, 3600, "IN", "SOA", soa))
        return response.to_wire()


class _UdpThread:
    """A UDP socket on 127.0.0.1 served by a daemon thread until close()."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, port))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self.handle(data)
            if reply is not None:
                with contextlib.suppress(OSError):
                    self.sock.sendto(reply, addr)

    def handle(self, data: bytes) -> bytes | None:
        """Process one datagram; the reply to send back, if any."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop the thread and close the socket."""
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


class DnsServer(_UdpThread):
    """An authoritative server for ``zone`` on 127.0.0.1:``port`` (UDP)."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        super().__init__()

    def handle(self, data: bytes) -> bytes | None:
        return self.zone.answer(data)


class UdpSink(_UdpThread):
    """A UDP port that reads and keeps every datagram and never answers (a black hole)."""

    def __init__(self, port: int) -> None:
        self.received: list[bytes] = []
        self._lock = threading.Lock()
        super().__init__(port)

    def handle(self, data: bytes) -> bytes | None:
        with self._lock:
            self.received.append(data)
        return None

    def first_lines(self) -> list[str]:
        """The first line of every datagram received."""
        with self._lock:
            return [d.split(b"\r\n", 1)[0].decode("utf-8", "replace") for d in self.received]


@dataclass(frozen=True)
class NameRoute:
    """A static route of users ``user_prefix``* to the URI ``to``."""

    name: str
    user_prefix: str
    to: str


def dns_toml(proxy_port: int, dns_port: int, routes: list[NameRoute], t1: float = 0.05) -> str:
    """A sipedge configuration resolving next hops through the loopback DNS on ``dns_port``.

    A small T1 makes Timer B (64*T1, RFC 3261 §17.1.1.2) short enough for timeout tests.
    """
    p = proxy_port
    text = f"""\
[server]
listen = ["udp:{HOST}:{p}", "tcp:{HOST}:{p}"]
trusted = ["127.0.0.0/8"]
log_level = "debug"

[dns]
nameservers = ["{HOST}"]
port = {dns_port}
timeout = 1.0

[timers]
t1 = {t1}
"""
    for route in routes:
        text += f"""
[[proxy.routes]]
name = "{route.name}"
user_prefix = "{route.user_prefix}"
to = "{route.to}"
"""
    return text


class DnsProxy(ProxyProcess):
    """sipedge with a configuration from :func:`dns_toml` (the Kamailio stand-in has no
    equivalent); otherwise exactly :class:`ProxyProcess`."""

    def __init__(self, topo: Topology, workdir: Path, toml: str) -> None:
        self.toml = toml
        super().__init__("sipedge", topo, workdir)

    def _prepare(self) -> list[str]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "sipedge.toml"
        path.write_text(self.toml)
        return [sys.executable, "-m", "sipedge", "run", "--config", str(path)]
