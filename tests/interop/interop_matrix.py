"""Transport-matrix plumbing: a sipedge on UDP, TCP, TLS, WS and WSS, an stunnel client
for SIPp's TLS leg, and a tiny SIP user agent over real sockets of every transport.

The user agent is deliberately small and independent of sipedge's own SIP code (the tests
check the proxy from outside): it frames stream messages by Content-Length, keeps a route
set (RFC 3261 §12.1) and answers only what a test asks it to.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interop_net import HOST, wait_bound
from interop_proxy import ProxyProcess, Topology
from interop_sipmsg import Traced, entries, header_values
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

TRANSPORTS = ("udp", "tcp", "tls", "ws", "wss")
STREAMS = ("tcp", "tls", "ws", "wss")
SDP = "v=0\r\no=mx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
SDP += "m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"


# --- the proxy ------------------------------------------------------------------------


def make_cert(out_dir: Path) -> tuple[Path, Path]:
    """``sipedge cert selfsigned`` into ``out_dir``: (cert.pem, key.pem), SANs 127.0.0.1."""
    cmd = [sys.executable, "-m", "sipedge", "cert", "selfsigned", "--out-dir", str(out_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} -> {done.returncode}\n{done.stdout}{done.stderr}")
    return out_dir / "cert.pem", out_dir / "key.pem"


@dataclass(frozen=True)
class MatrixPorts:
    """Ports of the matrix proxy (``sip`` serves UDP and TCP) and of the routed UASes."""

    sip: int
    tls: int
    ws: int
    wss: int
    udp_uas: int  # route "to-udp"
    tcp_uas: int  # route "to-tcp"
    tls_uas: int  # route "to-tls"

    def proxy_port(self, transport: str) -> int:
        """The proxy's listener port for a transport."""
        return {"udp": self.sip, "tcp": self.sip}.get(transport) or getattr(self, transport)


def matrix_toml(ports: MatrixPorts, cert: Path, key: Path, state: Path, extra: str = "") -> str:
    """sipedge on all five transports, trusting loopback, routing users to-udp*, to-tcp*
    and to-tls* to static UASes; TLS next hops verified against our self-signed cert."""
    p = ports
    return f"""\
[server]
listen = ["udp:{HOST}:{p.sip}", "tcp:{HOST}:{p.sip}", "tls:{HOST}:{p.tls}",
          "ws:{HOST}:{p.ws}", "wss:{HOST}:{p.wss}"]
trusted = ["127.0.0.0/8"]
state_dir = "{state}"
log_level = "info"

[registrar]
persist = false

[tls]
cert = "{cert}"
key = "{key}"
ca_bundle = "{cert}"

[[proxy.routes]]
name = "to-udp"
user_prefix = "to-udp"
to = "sip:{HOST}:{p.udp_uas}"

[[proxy.routes]]
name = "to-tcp"
user_prefix = "to-tcp"
to = "sip:{HOST}:{p.tcp_uas};transport=tcp"

[[proxy.routes]]
name = "to-tls"
user_prefix = "to-tls"
to = "sip:{HOST}:{p.tls_uas};transport=tls"
{extra}"""


class MatrixProxy(ProxyProcess):
    """sipedge from :func:`matrix_toml`; ready once UDP, TCP, TLS, WS and WSS are bound."""

    def __init__(
        self, ports: MatrixPorts, workdir: Path, cert: Path, key: Path, extra: str = ""
    ) -> None:
        self.ports, self.cert, self.key, self.extra = ports, cert, key, extra
        topo = Topology(ports.sip, ports.udp_uas, ports.tcp_uas, ports.tls_uas, ports.tls_uas)
        super().__init__("sipedge", topo, workdir)

    def _prepare(self) -> list[str]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "sipedge.toml"
        state = self.workdir / "state"
        path.write_text(matrix_toml(self.ports, self.cert, self.key, state, self.extra))
        return [sys.executable, "-m", "sipedge", "run", "--config", str(path)]

    def start(self, ready_timeout: float = 5.0) -> None:
        """Start, wait for OPTIONS on UDP/TCP, then for the TLS, WS and WSS ports."""
        super().start(ready_timeout)
        for port in (self.ports.tls, self.ports.ws, self.ports.wss):
            if not wait_bound(port, "tcp", ready_timeout):
                self.kill()
                raise AssertionError(f"proxy did not bind {port}\n{self.describe()}")

    @property
    def domain(self) -> str:
        """host:port that is "us" for AORs and the registrar (RFC 3261 §10.2)."""
        return f"{HOST}:{self.ports.sip}"


# --- stunnel (SIPp has no TLS: SIPp TCP -> stunnel -> sipedge TLS) ---------------------


def stunnel_path() -> str | None:
    """The stunnel executable (Debian stunnel4), or None."""
    return shutil.which("stunnel4") or shutil.which("stunnel")


class Stunnel:
    """An stunnel client: plain TCP on ``accept`` to TLS on ``connect``, verifying the
    server against ``ca`` (IP 127.0.0.1). Runs in the foreground, stopped by its pid."""

    def __init__(self, workdir: Path, accept: int, connect: int, ca: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.accept = accept
        self.log = workdir / "stunnel.log"
        conf = workdir / "stunnel.conf"
        conf.write_text(
            "foreground = yes\npid =\ndebug = 5\n"
            f"output = {self.log}\n[sip-tls]\nclient = yes\n"
            f"accept = {HOST}:{accept}\nconnect = {HOST}:{connect}\n"
            f"CAfile = {ca}\nverifyChain = yes\ncheckIP = {HOST}\n"
        )
        exe = stunnel_path() or "stunnel4"
        self.proc = subprocess.Popen(
            [exe, str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if not wait_bound(accept, "tcp", 5.0):
            self.stop()
            raise AssertionError(f"stunnel did not bind {accept}\n{self.report()}")

    def report(self) -> str:
        """The tail of stunnel's log."""
        try:
            return "--- stunnel log:\n" + self.log.read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return "--- stunnel wrote no log"

    def stop(self) -> None:
        """Kill stunnel (its own process group only)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


# --- links: one transport endpoint of the tiny UA ---------------------------------------


def client_tls(ca: Path) -> ssl.SSLContext:
    """A TLS client context trusting only ``ca`` (hostname 127.0.0.1 checked)."""
    return ssl.create_default_context(cafile=str(ca))


def server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS server context with our self-signed certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


class Link:
    """Base of the transports: received messages land in ``inbox``; ``send`` goes to the
    proxy (UDP), or back over the connection the last message came on (streams)."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.inbox: asyncio.Queue[Traced] = asyncio.Queue()
        self.port = 0  # local port (UDP socket, stream server, or client socket)
        self.tasks: list[asyncio.Task[None]] = []

    def got(self, data: bytes) -> None:
        """Queue one received SIP message."""
        self.inbox.put_nowait(Traced(sent=False, text=data.decode("utf-8", "replace")))

    async def send(self, text: str) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Stop the reader tasks."""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, link: UdpLink) -> None:
        self.link = link

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.link.got(data)


class UdpLink(Link):
    """A UDP socket; everything it sends goes to the proxy's UDP listener."""

    def __init__(self, proxy_port: int) -> None:
        super().__init__("udp")
        self.proxy_port = proxy_port
        self.sock: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls, proxy_port: int, port: int = 0) -> UdpLink:
        link = cls(proxy_port)
        loop = asyncio.get_running_loop()
        sock, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(link), local_addr=(HOST, port)
        )
        link.sock = sock
        link.port = sock.get_extra_info("sockname")[1]
        return link

    async def send(self, text: str) -> None:
        assert self.sock is not None
        self.sock.sendto(text.encode(), (HOST, self.proxy_port))

    async def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


async def read_sip(reader: asyncio.StreamReader) -> bytes | None:
    """One SIP message from a stream, framed by Content-Length (RFC 3261 §18.3); CRLF
    keepalives are skipped. None at end of stream."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        head = head.lstrip(b"\r\n")
        if head:
            break
    m = re.search(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)", head, re.I | re.M)
    length = int(m.group(1)) if m else 0
    try:
        return head + await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


class StreamLink(Link):
    """TCP or TLS: a client connection to the proxy, or a server the proxy connects to.
    ``send`` writes on the connection the last message arrived on (the client's own)."""

    def __init__(self, transport: str) -> None:
        super().__init__(transport)
        self.writer: asyncio.StreamWriter | None = None
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    @classmethod
    async def connect(cls, transport: str, port: int, ctx: ssl.SSLContext | None) -> StreamLink:
        link = cls(transport)
        reader, writer = await asyncio.open_connection(HOST, port, ssl=ctx)
        link.writer = writer
        link.writers.append(writer)
        link.port = writer.get_extra_info("sockname")[1]
        link.tasks.append(asyncio.create_task(link._read(reader, writer)))
        return link

    @classmethod
    async def serve(cls, transport: str, port: int, ctx: ssl.SSLContext | None) -> StreamLink:
        link = cls(transport)

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            link.writers.append(writer)
            await link._read(reader, writer)

        link.server = await asyncio.start_server(accepted, HOST, port, ssl=ctx)
        link.port = port
        return link

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (data := await read_sip(reader)) is not None:
            self.writer = writer
            self.got(data)

    async def send(self, text: str) -> None:
        assert self.writer is not None, "no connection to send on"
        self.writer.write(text.encode())
        await self.writer.drain()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            writer.close()
        await super().close()


class WsLink(Link):
    """A WebSocket (RFC 7118) client connection to the proxy, subprotocol ``sip``."""

    def __init__(self, transport: str, ws: ClientConnection) -> None:
        super().__init__(transport)
        self.ws = ws
        self.port = ws.local_address[1]

    @classmethod
    async def connect(cls, transport: str, port: int, ca: Path | None) -> WsLink:
        scheme = "wss" if transport == "wss" else "ws"
        ws = await connect(
            f"{scheme}://{HOST}:{port}/",
            subprotocols=[Subprotocol("sip")],
            ssl=client_tls(ca) if scheme == "wss" and ca else None,
            open_timeout=5,
            ping_interval=None,
        )
        link = cls(transport, ws)
        link.tasks.append(asyncio.create_task(link._read()))
        return link

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for message in self.ws:
                self.got(message.encode() if isinstance(message, str) else message)

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    async def close(self) -> None:
        await self.ws.close()
        await super().close()


# --- the tiny user agent -------------------------------------------------------------------


def bare_uri(value: str) -> str:
    """The URI inside a name-addr (``"x" <sip:a@b>;tag=1`` -> ``sip:a@b``)."""
    m = re.search(r"<([^>]*)>", value)
    return m.group(1) if m else value.split(";", 1)[0].strip()


def rr_transport(entry: str) -> str:
    """The transport a Record-Route entry names; none means UDP."""
    m = re.search(r";\s*transport=([a-z]+)", bare_uri(entry), re.I)
    return m.group(1).lower() if m else "udp"


def rr_user(entry: str) -> str:
    """The user part of a Record-Route entry's URI ("" when it has none)."""
    uri = bare_uri(entry)
    return uri.split(":", 1)[1].split("@", 1)[0] if "@" in uri else ""


def call_id_of(msg: Traced) -> str:
    values = header_values(msg.text, "call-id")
    return values[0] if values else ""


def cseq_of(msg: Traced) -> str:
    values = header_values(msg.text, "cseq")
    return values[0].split()[-1].upper() if values else ""


@dataclass
class Dialog:
    """One side of a dialog (RFC 3261 §12): tags in ``local``/``remote``, the remote
    target, the route set and the Record-Route it was built from."""

    call_id: str
    local: str
    remote: str
    target: str
    routes: list[str]
    record_route: list[str]
    cseq: int = 1


@dataclass
class MiniUA:
    """A tiny UA on one link: REGISTER, place a call, answer one, send or take a BYE."""

    name: str
    link: Link
    user: str
    pending: list[Traced] = field(default_factory=list)

    @property
    def sent_by(self) -> str:
        """Via sent-by: a made-up .invalid host on WebSocket (RFC 7118 §5), else ours."""
        if self.link.transport in ("ws", "wss"):
            return f"{self.name}.invalid"
        return f"{HOST}:{self.link.port}"

    @property
    def contact_uri(self) -> str:
        """Our Contact: .invalid with transport=ws on WebSocket (RFC 7118 §5)."""
        t = self.link.transport
        if t in ("ws", "wss"):
            return f"sip:{self.user}@{self.name}.invalid;transport=ws"
        tp = "" if t == "udp" else f";transport={t}"
        return f"sip:{self.user}@{HOST}:{self.link.port}{tp}"

    def via(self) -> str:
        branch = "z9hG4bK" + uuid.uuid4().hex[:16]
        return f"Via: SIP/2.0/{self.link.transport.upper()} {self.sent_by};branch={branch}"

    async def wait(self, pred: Callable[[Traced], bool], what: str, timeout: float = 5.0) -> Traced:
        """The first received message matching ``pred``; others are kept for later."""
        for i, msg in enumerate(self.pending):
            if pred(msg):
                return self.pending.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                msg = await asyncio.wait_for(self.link.inbox.get(), deadline - loop.time())
            except TimeoutError:
                seen = "\n---\n".join(m.text for m in self.pending[-5:])
                raise AssertionError(
                    f"{self.name} ({self.link.transport}): no {what} in {timeout}s; "
                    f"last messages:\n{seen}"
                ) from None
            if pred(msg):
                return msg
            self.pending = [*self.pending[-30:], msg]

    async def request(
        self, method: str, ruri: str, dlg: Dialog, cseq: int, *, body: str = "", extra: str = ""
    ) -> None:
        lines = [f"{method} {ruri} SIP/2.0", self.via()]
        lines += [f"Route: {r}" for r in dlg.routes]
        lines += [
            "Max-Forwards: 70",
            f"From: {dlg.local}",
            f"To: {dlg.remote}",
            f"Call-ID: {dlg.call_id}",
            f"CSeq: {cseq} {method}",
        ]
        if method in ("INVITE", "REGISTER"):
            lines.append(f"Contact: <{self.contact_uri}>{extra}")
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        await self.link.send("\r\n".join(lines) + "\r\n\r\n" + body)

    async def respond(self, req: Traced, status: str, *, to_tag: str = "", body: str = "") -> None:
        """A response copying Via, Record-Route, From, To, Call-ID and CSeq (§8.2.6)."""
        text = req.text
        lines = [f"SIP/2.0 {status}"]
        lines += [f"Via: {v}" for v in header_values(text, "via")]
        if req.method == "INVITE":
            lines += [f"Record-Route: {r}" for r in header_values(text, "record-route")]
        to = header_values(text, "to")[0] + (f";tag={to_tag}" if to_tag else "")
        lines += [f"From: {header_values(text, 'from')[0]}", f"To: {to}"]
        lines += [f"Call-ID: {call_id_of(req)}", f"CSeq: {header_values(text, 'cseq')[0]}"]
        if req.method == "INVITE":
            lines.append(f"Contact: <{self.contact_uri}>")
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        await self.link.send("\r\n".join(lines) + "\r\n\r\n" + body)

    async def register(self, registrar: str, aor: str, expires: int = 600) -> Traced:
        """REGISTER our Contact for ``aor``; returns the final response."""
        tag = uuid.uuid4().hex[:8]
        dlg = Dialog(uuid.uuid4().hex, f"<{aor}>;tag={tag}", f"<{aor}>", "", [], [])
        await self.request("REGISTER", registrar, dlg, 1, extra=f";expires={expires}")
        return await self.final(dlg.call_id, "REGISTER")

    async def final(self, call_id: str, method: str) -> Traced:
        """The final response to our request ``method`` in call ``call_id``."""

        def match(m: Traced) -> bool:
            s = m.status
            return s is not None and s >= 200 and call_id_of(m) == call_id and cseq_of(m) == method

        return await self.wait(match, f"final response to {method}")

    async def invite(self, ruri: str) -> Dialog:
        """Call ``ruri``: INVITE, expect 200, ACK it; the caller's side of the dialog."""
        dlg = Dialog(
            uuid.uuid4().hex,
            f"<sip:{self.user}@{HOST}>;tag={uuid.uuid4().hex[:8]}",
            f"<{ruri}>",
            ruri,
            [],
            [],
        )
        await self.request("INVITE", ruri, dlg, 1, body=SDP)
        ok = await self.final(dlg.call_id, "INVITE")
        assert ok.status == 200, f"{self.name}: INVITE {ruri} got\n{ok.text}"
        dlg.record_route = entries(ok.text, "record-route")
        dlg.routes = list(reversed(dlg.record_route))  # RFC 3261 §12.1.2
        dlg.remote = header_values(ok.text, "to")[0]
        dlg.target = bare_uri(header_values(ok.text, "contact")[0])
        await self.request("ACK", dlg.target, dlg, 1)
        return dlg

    async def answer(self) -> Dialog:
        """Take the next INVITE: answer 200, wait for the ACK; the callee's dialog."""
        inv = await self.wait(lambda m: m.method == "INVITE", "INVITE")
        tag = uuid.uuid4().hex[:8]
        await self.respond(inv, "200 OK", to_tag=tag, body=SDP)
        call_id = call_id_of(inv)
        await self.wait(lambda m: m.method == "ACK" and call_id_of(m) == call_id, "ACK")
        rr = entries(inv.text, "record-route")
        return Dialog(
            call_id,
            header_values(inv.text, "to")[0] + f";tag={tag}",
            header_values(inv.text, "from")[0],
            bare_uri(header_values(inv.text, "contact")[0]),
            list(rr),  # RFC 3261 §12.1.1: the callee keeps Record-Route order
            rr,
            cseq=0,
        )

    async def bye(self, dlg: Dialog) -> Traced:
        """Send BYE in ``dlg`` and return its final response."""
        dlg.cseq += 1
        await self.request("BYE", dlg.target, dlg, dlg.cseq)
        return await self.final(dlg.call_id, "BYE")

    async def take_bye(self, dlg: Dialog) -> Traced:
        """Wait for the BYE of ``dlg``, answer 200 and return the BYE as received."""
        bye = await self.wait(lambda m: m.method == "BYE" and call_id_of(m) == dlg.call_id, "BYE")
        await self.respond(bye, "200 OK")
        return bye


async def both(first: Awaitable[Any], second: Awaitable[Any], timeout: float = 8.0) -> list[Any]:
    """Run two steps concurrently; a failure or the timeout cancels the other."""
    async with asyncio.timeout(timeout), asyncio.TaskGroup() as group:
        tasks = [group.create_task(_wrap(first)), group.create_task(_wrap(second))]
    return [t.result() for t in tasks]


async def _wrap(step: Awaitable[Any]) -> Any:
    return await step
