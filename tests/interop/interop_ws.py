"""WebSocket interop plumbing: sipedge with WS/WSS listeners, and SIP clients written in
JavaScript (JsSIP in headless Chromium or in Node, SIP.js in Node) run as subprocesses.

A client is ``node js/agent.mjs KIND``: it takes JSON commands on stdin and prints one JSON
event per line (see agent.mjs). :class:`JsAgent` drives it from the synchronous tests.
The npm packages are pinned in js/package.json and js/package-lock.json; :func:`js_problem`
installs them with ``npm ci`` when node_modules is missing or stale and bundles JsSIP for
the browser with esbuild. Chromium is Debian's (never downloaded); its flags in agent.mjs
keep it on loopback. Everything here talks to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interop_net import HOST, is_bound, ping_udp, proc_port, proc_rows
from interop_proxy import ProxyProcess, Topology
from interop_reg import REALM, Reply, auth_params, digest_md5, parse_reply

JS_DIR = Path(__file__).parent / "js"
BUNDLE = JS_DIR / "build" / "jssip.bundle.js"
STAMP = JS_DIR / "node_modules" / ".sipedge-lock.sha256"  # also written by scripts/test.sh


def chromium_path() -> str | None:
    """Debian's Chromium (or $SIPEDGE_CHROMIUM), or None when it is not installed."""
    exe = os.environ.get("SIPEDGE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return exe if os.access(exe, os.X_OK) else None


def _lock_hash() -> str:
    return hashlib.sha256((JS_DIR / "package-lock.json").read_bytes()).hexdigest()


def js_problem() -> str | None:
    """Make js/node_modules and the JsSIP bundle current; a reason to skip, else None."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return "Node.js/npm not installed (Debian packages nodejs npm; scripts/test.sh adds them)"
    current = STAMP.read_text().strip() if STAMP.exists() else ""
    if current != _lock_hash():
        cmd = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
        done = _run(cmd, 240)
        if done.returncode != 0:
            return f"npm ci in {JS_DIR} failed (rc {done.returncode}):\n{done.stdout[-2000:]}"
        STAMP.write_text(_lock_hash() + "\n")
    marker = JS_DIR / "node_modules" / "jssip" / "package.json"
    if not BUNDLE.exists() or BUNDLE.stat().st_mtime < marker.stat().st_mtime:
        done = _run([npm, "run", "--silent", "bundle"], 60)
        if done.returncode != 0 or not BUNDLE.exists():
            return f"esbuild bundle of jssip failed (rc {done.returncode}):\n{done.stdout[-2000:]}"
    return None


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            cmd, cwd=JS_DIR, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(cmd, -9, f"timed out after {timeout}s: {exc}", "")


# --- sipedge with WebSocket listeners


@dataclass(frozen=True)
class WsPorts:
    """The proxy's WebSocket ports and the loopback DNS server it asks (see WsProxy)."""

    ws: int
    wss: int
    dns: int


def ws_toml(
    topo: Topology, ports: WsPorts, state: Path, certs: Path, tcp: bool, extra: str = ""
) -> str:
    """sipedge as registrar for WebSocket clients: UDP (+TCP when ``tcp``), WS and WSS on
    loopback, no trusted source, digest with MD5 offered last, debug logs, the resolver
    pointed at a loopback DNS server that records every question, and route "uas*" to the
    UDP SIPp UAS."""
    p = topo.proxy
    listen = [f"udp:{HOST}:{p}", f"ws:{HOST}:{ports.ws}", f"wss:{HOST}:{ports.wss}"]
    if tcp:
        listen.insert(1, f"tcp:{HOST}:{p}")
    items = ", ".join(f'"{x}"' for x in listen)
    return f"""\
[server]
listen = [{items}]
trusted = []
state_dir = "{state}"
log_level = "debug"

[tls]
cert = "{certs / "cert.pem"}"
key = "{certs / "key.pem"}"

[registrar]
min_expires = 1

[auth]
# JsSIP 3.13 and SIP.js 0.21 answer only the LAST challenge header and only MD5.
algorithms = ["SHA-256", "MD5"]

[dns]
nameservers = ["{HOST}"]
port = {ports.dns}
timeout = 1.0

[[proxy.routes]]
name = "uas"
user_prefix = "uas"
to = "sip:{HOST}:{topo.uas};transport=udp"
{extra}"""


class WsProxy(ProxyProcess):
    """sipedge from :func:`ws_toml`; users.db is copied into its state directory.

    Ready when UDP answers OPTIONS and the WS, WSS (and TCP) ports are bound."""

    def __init__(
        self,
        topo: Topology,
        workdir: Path,
        ports: WsPorts,
        users_db: Path,
        certs: Path,
        tcp: bool = False,
        extra: str = "",
    ) -> None:
        self.extra = extra
        self.ports = ports
        self.certs = certs
        self.tcp = tcp
        self.state_dir = workdir / "state"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(users_db, self.state_dir / "users.db")
        super().__init__("sipedge", topo, workdir)

    def _prepare(self) -> list[str]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "sipedge.toml"
        path.write_text(
            ws_toml(self.topo, self.ports, self.state_dir, self.certs, self.tcp, self.extra)
        )
        return [sys.executable, "-m", "sipedge", "run", "--config", str(path)]

    def start(self, ready_timeout: float = 8.0) -> None:
        self.starts += 1
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        streams = [self.ports.ws, self.ports.wss] + ([self.topo.proxy] if self.tcp else [])
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"proxy exited early\n{self.describe()}")
            bound = all(is_bound(p, socket.SOCK_STREAM) for p in streams)
            if bound and ping_udp(self.topo.proxy) is not None:
                return
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"proxy not ready in {ready_timeout}s\n{self.describe()}")

    def url(self, transport: str) -> str:
        """The WebSocket URL of the ``ws`` or ``wss`` listener."""
        port = self.ports.ws if transport == "ws" else self.ports.wss
        return f"{transport}://{HOST}:{port}"

    def aor(self, user: str) -> str:
        """A local user's URI: our address with our UDP port (is_domain needs the port)."""
        return f"sip:{user}@{HOST}:{self.topo.proxy}"


def client_options(
    proxy: WsProxy, transport: str, user: str, password: str, **extra: Any
) -> dict[str, Any]:
    """The ``start`` argument of an agent: register ``user`` over ``transport``."""
    opts: dict[str, Any] = {
        "url": proxy.url(transport),
        "uri": proxy.aor(user),
        "user": user,
        "password": password,
        "registrar": f"sip:{HOST}:{proxy.topo.proxy}",
        "expires": 60,
        "debug": "JsSIP:*",
    }
    opts.update(extra)
    return opts


# --- a JavaScript SIP client process

_ids = itertools.count(1)


class JsAgent:
    """``node js/agent.mjs KIND`` with its events; stderr (the client's SIP trace and the
    browser console) goes to a log file quoted by :meth:`report`."""

    def __init__(self, kind: str, workdir: Path, ready_timeout: float = 30.0) -> None:
        self.kind = kind
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"agent-{kind}-{next(_ids)}.log"
        self.events: list[dict[str, Any]] = []
        self._replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self._cond = threading.Condition()
        env = dict(os.environ, NODE_TLS_REJECT_UNAUTHORIZED="0")  # self-signed test cert
        env["SIPEDGE_CHROMIUM"] = chromium_path() or "/usr/bin/chromium"
        env["SIPEDGE_TMP"] = str(workdir)  # Chromium's profile: left behind only here
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [shutil.which("node") or "node", str(JS_DIR / "agent.mjs"), kind],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=JS_DIR,
                env=env,
                start_new_session=True,
            )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_event("ready", timeout=ready_timeout)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = {"ev": "garbage", "line": raw.decode("utf-8", "replace")}
            if "reply" in obj:
                self._replies.put(obj)
                continue
            with self._cond:
                self.events.append(obj)
                self._cond.notify_all()
        with self._cond:
            self.events.append({"ev": "exited"})
            self._cond.notify_all()

    def command(self, cmd: str, arg: Any = None, timeout: float = 10.0) -> Any:
        """Send one command and return its value; AssertionError if it failed."""
        assert self.proc.stdin is not None
        ident = next(_ids)
        line = json.dumps({"id": ident, "cmd": cmd, "arg": arg}) + "\n"
        self.proc.stdin.write(line.encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no reply to {cmd!r} in {timeout}s\n{self.report()}"
                ) from None
            if reply.get("reply") == ident:
                break
        if not reply.get("ok"):
            raise AssertionError(f"{cmd!r} failed: {reply.get('error')}\n{self.report()}")
        return reply.get("value")

    def wait_event(self, *names: str, timeout: float) -> dict[str, Any]:
        """The first event named one of ``names``; AssertionError at the bound or when the
        process exits first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if event.get("ev") in names:
                        return event
                left = deadline - time.monotonic()
                if any(e.get("ev") == "exited" for e in self.events) or left <= 0:
                    raise AssertionError(
                        f"no {'/'.join(names)} event within {timeout}s\n{self.report()}"
                    )
                self._cond.wait(left)

    def names(self) -> list[str]:
        """The names of the events so far, in order."""
        with self._cond:
            return [str(e.get("ev")) for e in self.events]

    def kill(self) -> None:
        """SIGKILL the agent and everything it started (Chromium included)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def close(self, timeout: float = 8.0) -> None:
        """Ask the agent to exit (it closes the browser), then make sure it is gone."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                assert self.proc.stdin is not None
                self.proc.stdin.write(b'{"cmd": "exit"}\n')
                self.proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        self.kill()

    def report(self, tail: int = 6000) -> str:
        """Events, exit code and the tail of the agent's log (SIP trace, console)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            text = ""
        with self._cond:
            events = "\n".join(json.dumps(e) for e in self.events)
        return (
            f"--- {self.kind} agent rc={self.proc.poll()} events:\n{events}\n"
            f"--- {self.kind} agent log {self.log_path} (last {tail} chars):\n{text[-tail:]}"
        )


# --- observing from outside: sockets, raw requests


def stream_peers(server_port: int) -> list[tuple[int, str]]:
    """(remote port, TCP state) of every IPv4 socket on 127.0.0.1:``server_port`` with a
    remote end (accepted connections), from /proc/net/tcp. States: 01 established,
    06 time-wait, 08 close-wait, ..."""
    return [
        (proc_port(f[2]), f[3])
        for f in proc_rows("tcp")
        if proc_port(f[1]) == server_port and proc_port(f[2]) != 0
    ]


def sockets_on(port: int) -> list[tuple[str, str, str]]:
    """(local, remote, state) of every IPv4 TCP socket whose local port is ``port``."""
    return [(f[1], f[2], f[3]) for f in proc_rows("tcp") if proc_port(f[1]) == port]


def wait_server_closed(server_port: int, client_port: int, timeout: float) -> bool:
    """Wait until the proxy has closed its side of the connection from ``client_port``
    (no established or close-wait socket left)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = [s for p, s in stream_peers(server_port) if p == client_port]
        if not any(state in ("01", "08") for state in live):
            return True
        time.sleep(0.02)
    return False


class ConnectTrap:
    """A TCP listener on 127.0.0.1:``port`` that counts connections made to it."""

    def __init__(self, port: int, wait: float = 3.0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + wait
        while True:  # the client's socket may take a moment to leave the table
            try:
                self.sock.bind((HOST, port))
                break
            except OSError as exc:
                if time.monotonic() >= deadline:
                    self.sock.close()
                    raise AssertionError(
                        f"port {port} still taken after {wait}s: {sockets_on(port)}"
                    ) from exc
                time.sleep(0.05)
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@dataclass(frozen=True)
class Final:
    """The outcome of :func:`invite_once`: final status, seconds until it arrived and the
    status of every response in order."""

    status: int
    elapsed: float
    statuses: list[int]


def invite_once(proxy_port: int, ruri: str, caller: str, timeout: float = 5.0) -> Final:
    """Send one INVITE over UDP from a fresh socket, wait for its final response and ACK
    it (a non-2xx ACK is hop-by-hop, RFC 3261 §17.1.1.3). Status 0: nothing final came."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        local = sock.getsockname()[1]
        branch, tag = "z9hG4bK-ws-" + uuid.uuid4().hex[:12], uuid.uuid4().hex[:8]
        call_id = uuid.uuid4().hex + "@" + HOST
        head = [
            f"Via: SIP/2.0/UDP {HOST}:{local};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <{caller}>;tag={tag}",
            f"To: <{ruri}>",
            f"Call-ID: {call_id}",
        ]
        invite = [f"INVITE {ruri} SIP/2.0", *head, "CSeq: 1 INVITE"]
        invite += [f"Contact: <sip:caller@{HOST}:{local}>", "Content-Length: 0"]
        start = time.perf_counter()
        sock.sendto(("\r\n".join(invite) + "\r\n\r\n").encode(), (HOST, proxy_port))
        statuses: list[int] = []
        sock.settimeout(timeout)
        while True:
            try:
                data = sock.recv(65535)
            except TimeoutError:
                return Final(0, time.perf_counter() - start, statuses)
            reply = parse_reply(data, time.perf_counter() - start)
            statuses.append(reply.status)
            if reply.status >= 200:
                break
        to = reply.values("To")[0] if reply.values("To") else f"<{ruri}>"
        ack = [f"ACK {ruri} SIP/2.0", *head[:3], f"To: {to}", head[4], "CSeq: 1 ACK"]
        sock.sendto(
            ("\r\n".join([*ack, "Content-Length: 0"]) + "\r\n\r\n").encode(), (HOST, proxy_port)
        )
        return Final(reply.status, reply.rtt, statuses)


def query_bindings(proxy_port: int, user: str, password: str) -> list[str]:
    """The Contacts of ``user``'s bindings: a REGISTER without Contact (RFC 3261 §10.2.3)
    answered through the MD5 digest challenge."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(2.0)
        call_id, uri = uuid.uuid4().hex, f"sip:{HOST}:{proxy_port}"
        reply = _register(sock, proxy_port, user, call_id, 1, "")
        challenges = [v for v in reply.values("WWW-Authenticate") if "algorithm=MD5" in v]
        if reply.status != 401 or not challenges:
            raise AssertionError(f"query REGISTER for {user}: {reply.status} without MD5 challenge")
        nonce = {n: v for n, v, _ in auth_params(challenges[0])}["nonce"]
        cnonce, nc = uuid.uuid4().hex[:16], "00000001"
        response = digest_md5(user, password, uri, nonce, nc, cnonce)
        creds = (
            f'Digest username="{user}", realm="{REALM}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"'
        )
        reply = _register(sock, proxy_port, user, call_id, 2, creds)
        if reply.status != 200:
            raise AssertionError(f"query REGISTER for {user}: {reply.status} {reply.reason}")
        return reply.values("Contact")


def _register(
    sock: socket.socket, port: int, user: str, call_id: str, cseq: int, creds: str
) -> Reply:
    local = sock.getsockname()[1]
    branch = "z9hG4bK-wsq-" + uuid.uuid4().hex[:12]
    lines = [
        f"REGISTER sip:{HOST}:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP {HOST}:{local};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{HOST}:{port}>;tag={call_id[:8]}",
        f"To: <sip:{user}@{HOST}:{port}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
    ]
    if creds:
        lines.append(f"Authorization: {creds}")
    sock.sendto(("\r\n".join([*lines, "Content-Length: 0"]) + "\r\n\r\n").encode(), (HOST, port))
    while True:
        data = sock.recv(65535)
        reply = parse_reply(data, 0.0)
        if reply.status >= 200 and branch.encode() in data:
            return reply


def connect_lines(log: str, *needles: str) -> list[str]:
    """Proxy log lines about opening a connection (connect, connecting, connected; not
    "connection" or "disconnect") that mention one of ``needles``."""
    pattern = re.compile(r"\bconnect(?:s|ing|ed)?\b", re.IGNORECASE)
    return [
        line
        for line in log.splitlines()
        if pattern.search(line) and any(n in line for n in needles)
    ]
