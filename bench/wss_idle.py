"""Idle WSS clients benchmark: how many registered, idle WebSocket-over-TLS clients one
sipedge holds, and what they cost it in memory and CPU.

Not a test. On loopback only, it starts sipedge (a ``wss`` and a ``udp`` listener, loopback
trusted so REGISTER needs no digest, WebSocket pings every ``--ping-interval`` s), then from
this one asyncio process opens ``--clients`` WSS connections (``websockets``, subprotocol
``sip``, spread over ``--sources`` 127.0.0.x source addresses), each sending one REGISTER
(Contact ``sip:uN@cN.invalid;transport=ws``) and waiting for its 200. With all of them
registered it samples sipedge's RSS and CPU from /proc while they stay idle for ``--idle``
s (sipedge pings them; ``websockets`` answers the pings), checks that every connection is
still open, then calls one registered client picked at random from a UDP caller
(INVITE/200/ACK/BYE/200 through the proxy) and prints ``RESULT`` lines. Everything it started
is stopped by pid at the end, and the whole run is bounded by ``--deadline``.

    .venv/bin/python bench/wss_idle.py --clients 10000 --idle 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import resource
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode
from websockets.protocol import Event, State
from websockets.typing import Subprotocol

from procfs import HZ


@dataclass(frozen=True)
class Options:
    """The command line, parsed."""

    clients: int
    idle: float
    ip: str
    wss_port: int
    udp_port: int
    sources: int
    concurrency: int
    ping_interval: float
    ping_timeout: float
    client_ping: float
    persist: bool
    deadline: float
    workdir: Path


def parse_args(argv: list[str] | None = None) -> Options:
    """Parse and check the command line (loopback addresses only)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, default=10_000, help="WSS clients to open (10000)")
    ap.add_argument("--idle", type=float, default=30.0, help="idle seconds measured (30)")
    ap.add_argument("--ip", default="127.0.0.1", help="sipedge's loopback address")
    ap.add_argument("--wss-port", type=int, default=15443)
    ap.add_argument("--udp-port", type=int, default=15060)
    ap.add_argument("--sources", type=int, default=4, help="client source addresses 127.0.0.x")
    ap.add_argument("--concurrency", type=int, default=200, help="handshakes in flight (200)")
    ap.add_argument("--ping-interval", type=float, default=10.0, help="sipedge ws.ping_interval")
    ap.add_argument("--ping-timeout", type=float, default=10.0, help="sipedge ws.ping_timeout")
    ap.add_argument("--client-ping", type=float, default=0.0, help="client pings, s (0 = none)")
    ap.add_argument("--persist", action="store_true", help="registrar.persist (SQLite) on")
    ap.add_argument("--deadline", type=float, default=900.0, help="bound on the whole run (s)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/sipedge-wss-bench"))
    a = ap.parse_args(argv)
    if not a.ip.startswith("127."):
        ap.error("--ip must be a loopback address (127.x.y.z)")
    if not 1 <= a.sources <= 200:
        ap.error("--sources must be 1..200")
    return Options(
        a.clients,
        a.idle,
        a.ip,
        a.wss_port,
        a.udp_port,
        a.sources,
        a.concurrency,
        a.ping_interval,
        a.ping_timeout,
        a.client_ping,
        a.persist,
        a.deadline,
        a.workdir,
    )


# --- /proc ---------------------------------------------------------------------------------


def cpu_ticks(pid: int) -> int:
    """utime + stime of one process, in clock ticks."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rfind(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def rss_kib(pid: int) -> int:
    """Resident set size of one process (VmRSS), KiB."""
    m = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    return int(m.group(1)) if m else 0


def fd_count(pid: int) -> int:
    """Open file descriptors of a process."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def raise_nofile(need: int) -> int:
    """Raise RLIMIT_NOFILE (soft) as far as the hard limit allows; the new soft limit.
    sipedge, started afterwards, inherits it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- sipedge -------------------------------------------------------------------------------


def config_toml(o: Options, cert: Path, key: Path) -> str:
    """sipedge for the run: wss + udp, loopback trusted (no digest), connection limits
    above the client count, pings every --ping-interval s."""
    limit = o.clients + 1000
    return f"""\
[server]
listen = ["udp:{o.ip}:{o.udp_port}", "wss:{o.ip}:{o.wss_port}"]
trusted = ["127.0.0.0/8"]
state_dir = "{o.workdir / "state"}"
log_level = "warning"

[registrar]
persist = {"true" if o.persist else "false"}
max_expires = 7200

[tls]
cert = "{cert}"
key = "{key}"

[tcp]
max_connections = {limit}
max_connections_per_ip = {limit}

[ws]
ping_interval = {o.ping_interval}
ping_timeout = {o.ping_timeout}
"""


class Sipedge:
    """The sipedge process, in its own session, stopped by pid."""

    def __init__(self, o: Options) -> None:
        o.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "sipedge", "cert", "selfsigned", "--out-dir"]
        subprocess.run([*cmd, str(o.workdir)], check=True, capture_output=True, timeout=60)
        self.cert, key = o.workdir / "cert.pem", o.workdir / "key.pem"
        conf = o.workdir / "sipedge.toml"
        conf.write_text(config_toml(o, self.cert, key))
        self.log = o.workdir / "sipedge.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sipedge", "run", "--config", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.proc.pid

    def wait_ready(self, ip: str, port: int, timeout: float = 10.0) -> None:
        """Until the UDP listener answers an OPTIONS."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"sipedge exited early:\n{self.log.read_text()[-3000:]}")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(0.2)
                s.bind((ip, 0))
                s.sendto(options(ip, port, s.getsockname()[1]), (ip, port))
                with contextlib.suppress(OSError):
                    if s.recv(65535).startswith(b"SIP/2.0 "):
                        return
        raise SystemExit("sipedge did not answer OPTIONS in time")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL the process group after 10 s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


def options(ip: str, port: int, local: int) -> bytes:
    tag = uuid.uuid4().hex[:10]
    return (
        f"OPTIONS sip:{ip}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:{local};branch=z9hG4bK{tag}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:bench@{ip}>;tag={tag}\r\nTo: <sip:{ip}:{port}>\r\n"
        f"Call-ID: {tag}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


# --- SIP text ------------------------------------------------------------------------------


def header(text: str, name: str) -> list[str]:
    """Values of header ``name`` (no compact forms, no folding: sipedge sends neither)."""
    want = name.lower() + ":"
    head = text.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
    return [line[len(want) :].strip() for line in head if line.lower().startswith(want)]


def split_rr(values: list[str]) -> list[str]:
    """Record-Route entries (the proxy writes <...> entries; commas only between them)."""
    return [e.strip() for v in values for e in re.findall(r"<[^>]*>[^,]*", v)]


def request(method: str, ruri: str, lines: list[str], body: str = "") -> str:
    ctype = ["Content-Type: application/sdp"] if body else []
    head = [f"{method} {ruri} SIP/2.0", *lines, *ctype, f"Content-Length: {len(body)}"]
    return "\r\n".join(head) + "\r\n\r\n" + body


# --- clients -------------------------------------------------------------------------------


class CountingConnection(ClientConnection):
    """A client connection counting the pings it receives (and answers: the library
    sends the pong itself, RFC 6455 §5.5.3)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pings = 0

    def process_event(self, event: Event) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            self.pings += 1
        super().process_event(event)


@dataclass
class Ramp:
    """Ramp progress: clients registered, failures, and samples (clients, rss KiB, s)."""

    conns: list[CountingConnection | None] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    samples: list[tuple[int, int, float]] = field(default_factory=list)


async def open_client(o: Options, n: int, ctx: ssl.SSLContext, domain: str) -> CountingConnection:
    """Connect client ``n`` over WSS from its source address and REGISTER it."""
    src = f"127.0.0.{11 + n % o.sources}"
    ws = await connect(
        f"wss://{o.ip}:{o.wss_port}/",
        subprotocols=[Subprotocol("sip")],
        ssl=ctx,
        server_hostname="127.0.0.1",
        local_addr=(src, 0),
        open_timeout=30,
        ping_interval=o.client_ping or None,
        max_queue=4,
        compression=None,
        create_connection=CountingConnection,
    )
    tag, call = uuid.uuid4().hex[:8], uuid.uuid4().hex
    aor = f"sip:u{n}@{domain}"
    lines = [
        f"Via: SIP/2.0/WSS c{n}.invalid;branch=z9hG4bK{tag}",
        "Max-Forwards: 70",
        f"From: <{aor}>;tag={tag}",
        f"To: <{aor}>",
        f"Call-ID: {call}",
        "CSeq: 1 REGISTER",
        f"Contact: <sip:u{n}@c{n}.invalid;transport=ws>;expires=7200",
    ]
    assert isinstance(ws, CountingConnection)
    await ws.send(request("REGISTER", f"sip:{domain}", lines))
    answer = str(await asyncio.wait_for(ws.recv(), 30))
    if not answer.startswith("SIP/2.0 200"):
        await ws.close()
        raise RuntimeError(answer.split("\r\n", 1)[0])
    return ws


async def ramp(o: Options, edge: Sipedge, ctx: ssl.SSLContext, domain: str) -> Ramp:
    """Open and register every client, ``--concurrency`` at a time."""
    state = Ramp(conns=[None] * o.clients)
    gate = asyncio.Semaphore(o.concurrency)
    start = time.monotonic()
    done = 0

    async def one(n: int) -> None:
        nonlocal done
        async with gate:
            try:
                state.conns[n] = await open_client(o, n, ctx, domain)
            except Exception as exc:
                kind = type(exc).__name__ + ": " + str(exc)[:60]
                state.failures[kind] = state.failures.get(kind, 0) + 1
            done += 1
            if done % 1000 == 0 or done == o.clients:
                ok = sum(c is not None for c in state.conns)
                took = time.monotonic() - start
                state.samples.append((ok, rss_kib(edge.pid), took))
                print(f"  {done} tried, {ok} registered, {took:.1f}s", file=sys.stderr)

    await asyncio.gather(*(one(n) for n in range(o.clients)))
    return state


async def call_one(o: Options, ws: ClientConnection, n: int, domain: str) -> float:
    """A UDP caller calls client ``n`` through sipedge: INVITE, 200, ACK, BYE, 200 (the
    client answers from its WebSocket). Returns the INVITE-to-200 time in ms."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[str] = asyncio.Queue()

    class Udp(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            inbox.put_nowait(data.decode())

    sock, _ = await loop.create_datagram_endpoint(Udp, local_addr=(o.ip, 0))
    port = sock.get_extra_info("sockname")[1]
    ruri, call, tag = f"sip:u{n}@{domain}", uuid.uuid4().hex, uuid.uuid4().hex[:8]

    def caller_lines(cseq: str, routes: list[str], to: str) -> list[str]:
        via = f"Via: SIP/2.0/UDP {o.ip}:{port};branch=z9hG4bK{uuid.uuid4().hex[:12]}"
        return [
            via,
            *(f"Route: {r}" for r in routes),
            "Max-Forwards: 70",
            f"From: <sip:bench@{o.ip}>;tag={tag}",
            f"To: {to}",
            f"Call-ID: {call}",
            f"CSeq: {cseq}",
            f"Contact: <sip:bench@{o.ip}:{port}>",
        ]

    async def final(method: str) -> str:
        while True:
            msg = await asyncio.wait_for(inbox.get(), 5)
            if msg.startswith("SIP/2.0 ") and int(msg[8:11]) >= 200 and method in msg:
                return msg

    async def callee() -> None:
        """The WSS client: answer the INVITE, take the ACK, answer the BYE."""
        while True:
            msg = str(await asyncio.wait_for(ws.recv(), 5))
            method = msg.split(" ", 1)[0]
            if method == "ACK":
                continue
            lines = [f"Via: {v}" for v in header(msg, "via")]
            lines += [f"Record-Route: {v}" for v in header(msg, "record-route")]
            to = header(msg, "to")[0] + (";tag=w1" if method == "INVITE" else "")
            lines += [f"From: {header(msg, 'from')[0]}", f"To: {to}"]
            lines += [f"Call-ID: {header(msg, 'call-id')[0]}", f"CSeq: {header(msg, 'cseq')[0]}"]
            lines += [f"Contact: <sip:u{n}@c{n}.invalid;transport=ws>", "Content-Length: 0"]
            await ws.send("SIP/2.0 200 OK\r\n" + "\r\n".join(lines) + "\r\n\r\n")
            if method == "BYE":
                return

    answering = asyncio.create_task(callee())
    try:
        start = time.monotonic()
        sdp = f"v=0\r\no=b 1 1 IN IP4 {o.ip}\r\ns=-\r\nc=IN IP4 {o.ip}\r\nt=0 0\r\n"
        sdp += "m=audio 9 RTP/AVP 0\r\n"
        sock.sendto(
            request("INVITE", ruri, caller_lines("1 INVITE", [], f"<{ruri}>"), sdp).encode(),
            (o.ip, o.udp_port),
        )
        ok = await final("INVITE")
        setup_ms = (time.monotonic() - start) * 1000
        if not ok.startswith("SIP/2.0 200"):
            raise RuntimeError(f"INVITE answered {ok.splitlines()[0]}")
        routes = list(reversed(split_rr(header(ok, "record-route"))))
        to = header(ok, "to")[0]
        target = re.sub(r"^.*<([^>]*)>.*$", r"\1", header(ok, "contact")[0])
        for cseq in ("1 ACK", "2 BYE"):
            text = request(cseq.split()[1], target, caller_lines(cseq, routes, to))
            sock.sendto(text.encode(), (o.ip, o.udp_port))
        bye_ok = await final("BYE")
        if not bye_ok.startswith("SIP/2.0 200"):
            raise RuntimeError(f"BYE answered {bye_ok.splitlines()[0]}")
        await asyncio.wait_for(answering, 5)
        return setup_ms
    finally:
        answering.cancel()
        sock.close()


# --- the run -------------------------------------------------------------------------------


async def idle_window(o: Options, edge: Sipedge) -> tuple[float, int, int]:
    """Sleep ``--idle`` s; sipedge's CPU % of one core over it, and max/last RSS KiB."""
    t0, c0 = time.monotonic(), cpu_ticks(edge.pid)
    peak = 0
    while time.monotonic() - t0 < o.idle:
        await asyncio.sleep(1.0)
        peak = max(peak, rss_kib(edge.pid))
    ticks = cpu_ticks(edge.pid) - c0
    return 100.0 * ticks / HZ / (time.monotonic() - t0), peak, rss_kib(edge.pid)


async def run(o: Options, edge: Sipedge) -> None:
    domain = f"{o.ip}:{o.udp_port}"
    ctx = ssl.create_default_context(cafile=str(edge.cert))
    base_rss = rss_kib(edge.pid)
    t0, c0 = time.monotonic(), cpu_ticks(edge.pid)
    state = await ramp(o, edge, ctx, domain)
    ramp_s, ramp_cpu = time.monotonic() - t0, (cpu_ticks(edge.pid) - c0) / HZ
    held = [n for n, c in enumerate(state.conns) if c is not None]
    loaded_rss = rss_kib(edge.pid)
    print(f"ramp: {len(held)} registered in {ramp_s:.1f}s; idling {o.idle:g}s", file=sys.stderr)
    pings0 = sum(c.pings for c in state.conns if c is not None)
    idle_cpu, peak_rss, end_rss = await idle_window(o, edge)
    pings = sum(c.pings for c in state.conns if c is not None) - pings0
    alive = [n for n in held if (c := state.conns[n]) is not None and c.state is State.OPEN]
    pick = random.choice(alive) if alive else -1
    setup_ms, call_ok = -1.0, "none"
    if pick >= 0:
        conn = state.conns[pick]
        assert conn is not None
        try:
            setup_ms = await call_one(o, conn, pick, domain)
            call_ok = "ok"
        except Exception as exc:
            call_ok = f"FAILED({type(exc).__name__}: {exc})"
    per_conn = (loaded_rss - base_rss) / max(len(held), 1)
    print(
        f"RESULT clients={o.clients} registered={len(held)} alive_after_idle={len(alive)} "
        f"failures={sum(state.failures.values())} ramp_s={ramp_s:.1f} "
        f"ramp_rate={len(held) / ramp_s:.0f}/s ramp_cpu_s={ramp_cpu:.1f} "
        f"rss_base_mib={base_rss / 1024:.1f} rss_loaded_mib={loaded_rss / 1024:.1f} "
        f"rss_idle_peak_mib={peak_rss / 1024:.1f} rss_idle_end_mib={end_rss / 1024:.1f} "
        f"kib_per_client={per_conn:.1f} idle_cpu={idle_cpu:.1f}% idle_s={o.idle:g} "
        f"ping_interval={o.ping_interval:g} pings_in_idle={pings} fds={fd_count(edge.pid)} "
        f"call=u{pick}:{call_ok} setup_ms={setup_ms:.1f} persist={o.persist}"
    )
    for kind, count in sorted(state.failures.items()):
        print(f"FAILURE {count} x {kind}")
    for ok, rss, took in state.samples:
        print(f"SAMPLE registered={ok} rss_mib={rss / 1024:.1f} t={took:.1f}s")
    await close_all([c for c in state.conns if c is not None])


async def close_all(conns: list[ClientConnection]) -> None:
    """Drop every client at once (no closing handshakes: the proxy is stopped next)."""
    for c in conns:
        c.transport.abort()
    await asyncio.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    o = parse_args(argv)
    limit = raise_nofile(o.clients + 1000)
    if limit < o.clients + 100:
        raise SystemExit(f"RLIMIT_NOFILE hard limit too low ({limit}) for {o.clients} clients")
    print(f"nofile={limit}; starting sipedge on {o.ip}", file=sys.stderr)
    edge = Sipedge(o)
    try:
        edge.wait_ready(o.ip, o.udp_port)
        asyncio.run(asyncio.wait_for(run(o, edge), o.deadline))
    finally:
        edge.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
