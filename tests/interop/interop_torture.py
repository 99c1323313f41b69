"""Put RFC 4475 torture messages on the wire against the proxy and record what happens.

Each message is sent over UDP from its own socket, so any answer can be told apart. Before
sending, only routing information is aimed at loopback (the torture content stays):

* the top Via's sent-by becomes this socket (transport UDP, plus ``rport`` on requests,
  RFC 3581), so answers come back here instead of to 192.0.2.x or example.com:5060;
* a sip: Request-URI in a well-formed request line, and the first Route URI, point at a
  *sink*: a small UDP+TCP responder standing in for the next hop. It records what the
  proxy forwards and answers every request but ACK with a 488 carrying ``X-Interop-Sink``,
  so a relayed answer is recognisable.
"""

from __future__ import annotations

import contextlib
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from interop_net import HOST

_LWS = rb"(?:[ \t]|\r\n[ \t])"
_TOP_VIA = re.compile(
    rb"(?im)^((?:via|v)[ \t]*:" + _LWS + rb"*SIP" + _LWS + rb"*/" + _LWS + rb"*[0-9.]+"
    rb"" + _LWS + rb"*/" + _LWS + rb"*)([A-Za-z]+)(" + _LWS + rb"+)([^;,\s]+)"
)
_REQUEST_LINE = re.compile(rb"(?m)^([A-Za-z0-9!%*_+`.'~-]+) (sips?:[^ \r\n]+) (SIP/2\.0)\r$")
_ROUTE = re.compile(rb"(?im)^(route[ \t]*:" + _LWS + rb"*<sips?:)([^;>?]+)")
_SINK_HEADER = "X-Interop-Sink"


def split_head(data: bytes) -> tuple[bytes, bytes]:
    """(header section including its final CRLF CRLF, rest)."""
    end = data.find(b"\r\n\r\n")
    return (data, b"") if end < 0 else (data[: end + 4], data[end + 4 :])


def aim_top_via(data: bytes, port: int, request: bool) -> bytes:
    """Point the top Via's sent-by at 127.0.0.1:port over UDP (rport on requests)."""
    head, rest = split_head(data)
    m = _TOP_VIA.search(head)
    if m is None:
        return data
    line_end = head.find(b"\r\n", m.end())
    params = head[m.end() : line_end]
    rport = request and not re.search(rb";\s*rport", params, re.I)
    sent_by = f"{HOST}:{port}{';rport' if rport else ''}".encode()
    aimed = m.group(1) + b"UDP" + m.group(3) + sent_by
    return head[: m.start()] + aimed + head[m.end() :] + rest


def _aim_uri(uri: bytes, port: int) -> bytes:
    """Replace the hostport of a sip/sips URI, keeping user part, params and headers."""
    scheme, _, tail = uri.partition(b":")
    at = tail.rfind(b"@")
    start = at + 1 if at >= 0 else 0
    end = len(tail)
    for stop in (b";", b"?"):
        i = tail.find(stop, start)
        if i >= 0:
            end = min(end, i)
    return scheme + b":" + tail[:start] + f"{HOST}:{port}".encode() + tail[end:]


def aim_request_uris(data: bytes, port: int) -> bytes:
    """Point every well-formed request line's sip: Request-URI at 127.0.0.1:port (also a
    second request trailing in the same datagram, as in dblreq)."""

    def repl(m: re.Match[bytes]) -> bytes:
        return m.group(1) + b" " + _aim_uri(m.group(2), port) + b" " + m.group(3) + b"\r"

    return _REQUEST_LINE.sub(repl, data)


def aim_routes(data: bytes, port: int) -> bytes:
    """Point the host of the first URI of each Route header at 127.0.0.1:port."""
    head, rest = split_head(data)
    return _ROUTE.sub(lambda m: m.group(1) + f"{HOST}:{port}".encode(), head) + rest


def is_request(data: bytes) -> bool:
    return not data.startswith(b"SIP/")


def unfolded_headers(head: bytes) -> list[bytes]:
    """Header lines of a header section, continuation lines joined."""
    lines: list[bytes] = []
    for line in head.split(b"\r\n")[1:]:
        if line[:1] in (b" ", b"\t") and lines:
            lines[-1] += b" " + line.strip()
        elif line:
            lines.append(line)
    return lines


def header_name(line: bytes) -> str:
    return line.split(b":", 1)[0].strip().decode("latin-1").lower()


def sink_answer(request: bytes, name: str) -> bytes:
    """A 488 for a forwarded request: Via, From, To (tagged), Call-ID and CSeq copied."""
    keep = {"via", "v", "from", "f", "to", "t", "call-id", "i", "cseq"}
    out = [b"SIP/2.0 488 Not Acceptable Here"]
    for line in unfolded_headers(split_head(request)[0]):
        hname = header_name(line)
        if hname not in keep:
            continue
        if hname in ("to", "t") and not re.search(rb";\s*tag\s*=", line, re.I):
            line += b";tag=sink"
        out.append(line)
    out += [f"{_SINK_HEADER}: {name}".encode(), b"Content-Length: 0", b"", b""]
    return b"\r\n".join(out)


def content_length(head: bytes) -> int:
    for line in unfolded_headers(head):
        if header_name(line) in ("content-length", "l"):
            try:
                return int(line.split(b":", 1)[1].strip())
            except ValueError:
                return 0
    return 0


@dataclass
class Sink:
    """One next hop: a UDP socket and a TCP listener on the same loopback port."""

    name: str
    udp: socket.socket
    tcp: socket.socket
    received: list[bytes] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.udp.getsockname()[1])

    def methods(self) -> set[str]:
        """Methods of the requests received, ACK aside."""
        found = {m.split(b" ", 1)[0].decode("latin-1") for m in self.received if is_request(m)}
        return found - {"ACK"}


def _udp_tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A bound UDP socket and a listening TCP socket on the same loopback port."""
    for _ in range(100):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((HOST, 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind((HOST, udp.getsockname()[1]))
        except OSError:  # that port is taken for TCP: try another
            udp.close()
            tcp.close()
            continue
        tcp.listen(8)
        return udp, tcp
    raise RuntimeError("no loopback port free for both UDP and TCP")


class SinkServer:
    """Sinks served by one background thread (selectors), closed by close()."""

    def __init__(self) -> None:
        self.sinks: dict[str, Sink] = {}
        self._sel = selectors.DefaultSelector()
        self._buffers: dict[socket.socket, bytes] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sinks", daemon=True)

    def add(self, name: str) -> Sink:
        """A new sink on a loopback port free for both UDP and TCP."""
        udp, tcp = _udp_tcp_pair()
        sink = Sink(name, udp, tcp)
        self.sinks[name] = sink
        self._sel.register(udp, selectors.EVENT_READ, ("udp", sink))
        self._sel.register(tcp, selectors.EVENT_READ, ("listen", sink))
        return sink

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(timeout=0.05):
                kind, sink = key.data
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    self._serve(kind, sink, sock)
                except OSError:
                    self._drop(sock)

    def _serve(self, kind: str, sink: Sink, sock: socket.socket) -> None:
        if kind == "udp":
            data, addr = sock.recvfrom(65535)
            self._handle(sink, data, lambda out: sock.sendto(out, addr))
        elif kind == "listen":
            conn, _ = sock.accept()
            self._buffers[conn] = b""
            self._sel.register(conn, selectors.EVENT_READ, ("conn", sink))
        else:
            chunk = sock.recv(65535)
            if not chunk:
                self._drop(sock)
                return
            self._buffers[sock] += chunk
            for msg in self._frames(sock):
                self._handle(sink, msg, sock.sendall)

    def _frames(self, conn: socket.socket) -> list[bytes]:
        """Complete messages buffered on a TCP connection (RFC 3261 18.3 framing)."""
        out = []
        buf = self._buffers[conn].lstrip(b"\r\n")
        while b"\r\n\r\n" in buf:
            head, _ = split_head(buf)
            size = len(head) + content_length(head)
            if len(buf) < size:
                break
            out.append(buf[:size])
            buf = buf[size:].lstrip(b"\r\n")
        self._buffers[conn] = buf
        return out

    def _handle(self, sink: Sink, data: bytes, reply: Callable[[bytes], object]) -> None:
        sink.received.append(data)
        if is_request(data) and not data.startswith(b"ACK "):
            reply(sink_answer(data, sink.name))

    def _drop(self, sock: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(sock)
        self._buffers.pop(sock, None)
        sock.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for key in list(self._sel.get_map().values()):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            sock.close()
        self._sel.close()


@dataclass
class Probe:
    """One torture message sent from its own socket, and the answers it got."""

    name: str
    sock: socket.socket
    answers: list[bytes] = field(default_factory=list)

    def statuses(self) -> list[int]:
        """Status codes of the answers, in arrival order."""
        return [s for s in map(status_of, self.answers) if s is not None]

    def final(self) -> bytes | None:
        """The first final (>= 200) answer."""
        for data in self.answers:
            status = status_of(data)
            if status is not None and status >= 200:
                return data
        return None


def status_of(data: bytes) -> int | None:
    """The status code of a response, None for anything else."""
    parts = data.split(b" ", 2)
    if data.startswith(b"SIP/2.0 ") and len(parts) > 1 and parts[1].isdigit():
        return int(parts[1])
    return None


def open_probe(name: str) -> Probe:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    return Probe(name, sock)


def collect(
    probes: list[Probe], done: Callable[[], bool], min_wait: float, max_wait: float
) -> None:
    """Read answers into the probes for at least min_wait s, then until done() or max_wait."""
    sel = selectors.DefaultSelector()
    for probe in probes:
        sel.register(probe.sock, selectors.EVENT_READ, probe)
    start = time.monotonic()
    try:
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= max_wait or (elapsed >= min_wait and done()):
                return
            for key, _ in sel.select(timeout=0.05):
                probe = key.data
                with contextlib.suppress(OSError):
                    probe.answers.append(probe.sock.recv(65535))
    finally:
        sel.close()
